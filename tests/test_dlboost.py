"""Notebook 01's DL Boost script (OpenVINO + NNCF): offline, INT8 where it says INT8, the ISA cap."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import take_results

from dlscale import bench, dlboost, experiments
from dlscale.env import ROOT, mpi_environment
from dlscale.launch import mpirun, mpirun_command
from dlscale.results import write_results

SCRIPT = "scripts/dlboost_inference.py"
SMALL = ("--seconds", 0.1, "--batch-sizes", 1, 8, "--resnet-image-size", 32, "--calibration-images", 16)


def network_namespace() -> list[str] | None:
    """A prefix that runs a command in a new network namespace with only loopback up (Intel MPI's
    launcher needs loopback), or None where this machine cannot make one (not root, no unshare)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return None
    probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True,
                           timeout=30, check=False)
    inside = 'ip link set lo up && exec "$@"'
    return None if probe.returncode else ["unshare", "--net", "sh", "-c", inside, "sh"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """One 2-rank quick run that trains, converts and quantizes from scratch, with no network
    (where a namespace can be made) and an empty home folder: (measurements, home, namespaced)."""
    home, models = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("dlboost")
    prefix = network_namespace()
    command = mpirun_command(ROOT / SCRIPT, "--checkpoint-dir", models, "--fresh", *SMALL,
                             "--name", "test_dlboost", ranks=2, threads=1)
    env = mpi_environment() | {"DLSCALE_QUICK": "1", "HOME": str(home)}
    out = subprocess.run([*(prefix or []), *command], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=420, check=False)  # a hard cap: about 40 s on a quiet 2-core machine
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return take_results("test_dlboost")["measurements"], home, models, prefix is not None


pytestmark = pytest.mark.mpi


def test_it_runs_without_a_network_and_writes_nothing_home(offline):
    measurements, home, _, namespaced = offline
    assert not (home / "intel").exists(), "OpenVINO's telemetry wrote its consent/client-id files"
    assert set(measurements["models"]) == {"cnn", "resnet50"}
    if not namespaced:
        pytest.skip("no network namespace here (needs root and unshare): ran with the network up")


def test_every_conv_and_dense_layer_of_the_int8_models_runs_int8(offline):
    """Valid on every CPU: VNNI, AMX or AVX2 kernels alike are u8/i8 (jit_avx2_I8 on AVX2)."""
    for name, model in offline[0]["models"].items():
        rows = model["kernels"]["int8"]
        assert {row["type"] for row in rows} & {"Convolution", "FullyConnected", "MatMul"}, name
        wrong = [row for row in rows if row["precision"] not in dlboost.INT8_PRECISIONS]
        assert not wrong, f"{name}: layers not in INT8: {wrong}"
        assert model["int8_layers_all_int8"] is True
        assert all(row["precision"] == "f32" for row in model["kernels"]["fp32"]), \
            f"{name}: the FP32 baseline must run in f32 (INFERENCE_PRECISION_HINT), not BF16"


def test_streams_sizes_and_accuracy_add_up(offline):
    m = offline[0]
    assert m["streams"] == 2 and m["threads_per_stream"] == 1 and m["batch_sizes"] == [1, 8]
    cnn = m["models"]["cnn"]
    for p in m["precisions"]:
        per_stream = cnn["images_per_second_per_stream"][p]["8"]
        assert len(per_stream) == 2 and cnn["images_per_second"][p]["8"] == pytest.approx(sum(per_stream))
    assert cnn["bytes"]["fp32"] / cnn["bytes"]["int8"] > 3  # 4 bytes per weight become 1
    assert cnn["accuracy"]["fp32"] > 0.5 and abs(cnn["accuracy"]["int8"] - cnn["accuracy"]["fp32"]) < 0.03
    rates = cnn["images_per_second"]
    assert cnn["int8_over_fp32"]["8"] == rates["int8"]["8"] / rates["fp32"]["8"]
    assert "synthetic" in m["models"]["resnet50"]["calibration"]
    assert cnn["int8_trace"]["implementations"]  # oneDNN's own word on the INT8 convolutions


def test_capped_at_avx2_the_int8_model_still_runs_int8_on_avx2_kernels(offline):
    """ONEDNN_MAX_CPU_ISA reaches OpenVINO's oneDNN: every x86-64 CPU of the course has AVX2."""
    mpirun(SCRIPT, "--checkpoint-dir", offline[2], "--models", "cnn", "--precisions", "fp32", "int8",
           *SMALL, "--name", "test_dlboost_avx2", ranks=1, threads=1, genv={"ONEDNN_MAX_CPU_ISA": "AVX2"},
           echo=False, timeout=180)
    m = take_results("test_dlboost_avx2")["measurements"]
    cnn = m["models"]["cnn"]
    assert m["isa_cap"] == "AVX2" and cnn["int8_layers_all_int8"]
    trace = cnn["int8_trace"]
    assert "AVX2" in trace["isa"] and any("avx2" in i for i in trace["implementations"])
    assert {u["unit"] for u in cnn["kernel_units"]["int8"]} == {"AVX2 INT8"}


VNNI_CPU = {"avx512_vnni": True, "avx_vnni": False, "avx512_bf16": True, "amx_bf16": False}


@pytest.mark.parametrize("precision, kernel, cap, flags, expected", [
    ("u8", "brgconv_avx512_I8", None, VNNI_CPU, "VNNI"),
    ("u8", "brgconv_avx512_I8", "AVX512_CORE", VNNI_CPU, "AVX-512 INT8 (no VNNI)"),
    ("u8", "brgconv_avx512_I8", None, {"avx512_vnni": False}, "AVX-512 INT8 (no VNNI)"),
    ("u8", "jit_avx2_I8", "AVX2", VNNI_CPU, "AVX2 INT8"),
    ("u8", "jit_avx2_I8", None, {"avx_vnni": True}, "AVX-VNNI"),
    ("i8", "brgconv_avx512_amx_I8", None, VNNI_CPU, "AMX"),
    ("bf16", "brgconv_avx512_bf16", None, VNNI_CPU, "AVX512_BF16"),
    ("bf16", "jit_avx512_bf16", "AVX512_CORE", VNNI_CPU, "BF16 emulated (no BF16 instructions)"),
    ("f32", "brgconv_avx512_f32", None, VNNI_CPU, "FP32"),
    ("f32", "ref_any_f32", None, VNNI_CPU, "reference C++ (no vector kernel)"),
])
def test_kernel_names_become_units_a_learner_reads(precision, kernel, cap, flags, expected):
    assert dlboost.unit(precision, kernel, cap, flags) == expected


@pytest.mark.parametrize("flags, cap", [({"avx512_vnni": True, "avx_vnni": True}, "AVX512_CORE"),
                                        ({"avx512_vnni": False, "avx_vnni": True}, "AVX2"),
                                        ({"avx512_vnni": False, "avx_vnni": False}, None)])
def test_the_cap_is_the_level_just_below_dl_boost(monkeypatch, flags, cap):
    from dlscale import cpu

    monkeypatch.setattr(cpu, "isa", lambda: flags)
    found = cpu.isa_cap_below_dl_boost()
    assert (found and found[0]) == cap
    assert (experiments.dlboost_isa_cap(2) is None) == (cap is None)


def fake(rates_fp32: float, rates_int8: float, cap: str | None, impl: str) -> dict:
    rows = [{"type": "Convolution", "precision": "u8", "kernel": "brgconv_avx512_I8", "name": "c"}]
    model = {"images_per_second": {"fp32": {"1": 10.0, "32": rates_fp32},
                                   "int8": {"1": 20.0, "32": rates_int8}},
             "int8_over_fp32": {"1": 2.0, "32": rates_int8 / rates_fp32},
             "accuracy": {"fp32": 0.95, "int8": 0.945},
             "kernels": {"int8": rows}, "kernel_units": {"int8": dlboost.kernel_summary(rows, cap)},
             "int8_layers_all_int8": True, "int8_trace": {"isa": "x", "implementations": [impl]}}
    return {"models": {"cnn": model}, "precisions": ["fp32", "int8"], "batch_sizes": [1, 32], "skipped": {},
            "isa_cap": cap}


def test_bench_summary_reads_the_ratios_and_the_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSCALE_OUTPUT_DIR", str(tmp_path))
    runs = bench.dlboost_runs(2)
    write_results(runs[0].name("t"), fake(100.0, 400.0, None, "brg_conv_fwd:avx512_core_vnni"))
    if len(runs) == 1:
        pytest.skip("this CPU has no VNNI: the cap run is not part of the entry")
    write_results(runs[1].name("t"), fake(100.0, 200.0, "AVX512_CORE", "brg_conv_fwd:avx512_core"))
    summary = bench.summarize_dlboost(runs, "t")
    assert summary["cnn"]["int8_over_fp32_batch32"] == 4.0
    assert summary["cnn"]["int8_accuracy_change_points"] == pytest.approx(-0.5)
    assert summary["isa_cap"]["int8_capped_over_uncapped"] == 0.5
    assert summary["isa_cap"]["fp32_capped_over_uncapped"] == 1.0
    first = summary["cnn"]["kernels"]["int8"][0]
    assert first.startswith("1 Convolution layer(s) at u8 ran as brgconv_avx512_I8: ")


def test_the_gain_verdict_names_the_largest_and_smallest_gain():
    verdict = dlboost.gain_verdict(fake(100.0, 400.0, None, "x"))
    assert verdict == ("verdict: INT8 gained most for cnn at batch 32 (4.00x FP32) "
                       "and least for cnn at batch 1 (2.00x)")
