"""The surprises' diagnostics: trace splitting and verdicts on literal inputs, and one short launch."""

from __future__ import annotations

import pytest

from dlscale import surprises

CONV = ("onednn_verbose,{op},cpu,convolution,brgconv:avx512_core,forward_training,src_f32::blocked:acdb::f0 "
        "wei_f32:a:blocked:Acdb32a::f0 dst_f32::blocked:acdb::f0,attr-post-ops:eltwise_relu ,"
        "alg:convolution_direct,mb{b}_ic32oc64_ih14oh14kh5sh1dh0ph2_iw14ow14kw5sw1dw0pw2,{ms}")
REORDER = ("onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:cdba::f0 "
           "dst_f32::blocked:Acdb32a::f0,,,64x32x5x5,{ms}")
DENSE = ("onednn_verbose,exec,cpu,inner_product,x64:gemm:jit,forward_training,src_f32::blocked:ab::f0 "
         "wei_f32::blocked:ba::f0 dst_f32::blocked:ab::f0,,,mb{b}ic3136oc1024,{ms}")
GEMM = ("onednn_verbose,exec,cpu,gemm_api,,undef,src_f32::blocked:ab:f0 wei_f32::blocked:ab:f0 "
        "dst_f32::blocked:ab:f0,,,{b}x1024:1024x10,{ms}")
POOL = ("onednn_verbose,exec,cpu,pooling,jit:avx512_core,forward_training,src_f32::blocked:acdb::f0 "
        "dst_f32::blocked:acdb::f0,,alg:pooling_max,mb{b}ic64_ih14oh7kh2sh2dh0ph0_iw14ow7kw2sw2dw0pw0,{ms}")

TRACE = "\n".join([
    "onednn_verbose,info,oneDNN v3.2.1 (commit N/A)",
    CONV.format(op="create:cache_miss", b=32, ms=9.0),  # the warm-up's creation: not counted
    CONV.format(op="exec", b=32, ms=5.0),
    "MARK batch=32 calls=2",
    REORDER.format(ms=0.5), CONV.format(op="exec", b=32, ms=4.0), DENSE.format(b=32, ms=2.0),
    GEMM.format(b=32, ms=0.5), POOL.format(b=32, ms=1.0),
    REORDER.format(ms=0.5), CONV.format(op="exec", b=32, ms=4.0), DENSE.format(b=32, ms=2.0),
    "END",
    CONV.format(op="create:cache_miss", b=256, ms=9.0),  # the next batch's warm-up: not counted
    "MARK batch=256 calls=1",
    CONV.format(op="create:cache_hit", b=256, ms=0.1), CONV.format(op="create:cache_miss", b=256, ms=3.0),
    CONV.format(op="exec", b=256, ms=30.0), DENSE.format(b=256, ms=10.0),
    "END",
])


def test_trace_is_split_by_batch_and_primitive_group():
    found = surprises.trace_by_batch(TRACE)
    assert set(found) == {32, 256}
    small = found[32]
    assert small["calls"] == 2
    assert small["ms"] == pytest.approx({"reorders": 1.0, "convolutions": 8.0, "dense": 4.5, "other": 1.0})
    assert (small["created"], small["cache_misses"]) == (0, 0)  # the warm-up's creations lie outside
    assert (found[256]["created"], found[256]["cache_misses"]) == (2, 1)


def row(ratio, conv=10.0, reorders=1.0, misses=0.0):
    return {"ratio": ratio, "cache_misses_per_call": misses,
            "ms_per_call": {"reorders": reorders, "convolutions": conv, "dense": 3.0, "other": 1.0}}


def test_inference_verdict_names_where_the_time_goes_and_the_batch_that_fixes_it():
    verdict = surprises.cnn_inference_verdict({32: row(0.7), 256: row(0.84, misses=2), 1024: row(1.2)}, 256)
    assert verdict.startswith("oneDNN is slower at batch 256 (0.84x)")
    assert "mostly to convolutions" in verdict and "2.0 new primitive(s) per call" in verdict
    assert "batch 1024 (1.20x) brings oneDNN level or ahead" in verdict


def test_inference_verdict_says_when_no_batch_helps_or_nothing_is_wrong():
    slow = surprises.cnn_inference_verdict({32: row(0.7), 256: row(0.8, conv=1.0, reorders=9.0)}, 256)
    assert "mostly to reorders" in slow and "no batch size tested changes it (32: 0.70x, 256: 0.80x)" in slow
    assert "not slower" in surprises.cnn_inference_verdict({256: row(1.5)}, 256)


def runs(**fractions_and_busy):
    made = {"1 x 2 (reference, run 1)": {"setting": "reference", "fraction": 1.0, "cores_busy": 1.9}}
    for setting, (fraction, busy) in fractions_and_busy.items():
        made[f"2 x 1, {setting}"] = {"setting": setting, "fraction": fraction, "cores_busy": busy}
    return made


def test_horovod_verdict_picks_the_setting_that_reaches_90_percent():
    verdict = surprises.horovod_verdict(runs(default=(0.8, 2.4), waitmode=(0.93, 2.0)), 2)
    assert verdict == "2 x 1 reaches 93% of 1 x 2 at best, at least 90%: 2 x 1, waitmode does."


def test_horovod_verdict_without_a_fix_gives_the_evidence_and_the_noise():
    competing = surprises.horovod_verdict(runs(default=(0.8, 2.4), cycle10=(0.85, 2.3)), 2, noise=0.2)
    assert "no setting brings 2 x 1 to 90%" in competing and "+5% against the defaults" in competing
    assert "keep 2.3 cores busy on 2" in competing and "compete" in competing
    assert "moved 20% between its runs" in competing
    waiting = surprises.horovod_verdict(runs(default=(0.7, 1.2)), 2)
    assert "wait" in waiting and "moved" not in waiting


def test_horovod_settings_grid_changes_one_setting_at_a_time():
    """The grid itself; notebook 04 launches it (under nbval too), and the diagnostic raises when a
    setting did not reach the ranks, so a setting that is not applied fails the suite there."""
    from dlscale import experiments

    grid = experiments.horovod_settings(2)
    assert [run.key["setting"] for run in grid] == ["reference", "default", "cycle10", "waitmode", "inter2",
                                                    "reference"]
    assert len({run.name("x") for run in grid}) == len(grid)  # every run has its own results file
    assert grid[3].genv == {"I_MPI_WAIT_MODE": 1} and grid[2].genv == {"HOROVOD_CYCLE_TIME": 10}
    assert ("--inter-threads", 2) == grid[4].args[-2:]
