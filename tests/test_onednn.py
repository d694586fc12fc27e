"""oneDNN's verbose trace, parsed from a real capture; the oneDNN benchmark script under mpirun."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import take_results

from dlscale.launch import mpirun
from dlscale.onednn import blocked_layouts, parse_verbose, summarize

# Captured with TF_ENABLE_ONEDNN_OPTS=1 ONEDNN_VERBOSE=1: one training step and one prediction of
# the course's CNN, batch 32, TensorFlow 2.15.1, on an AVX-512 + AMX Xeon.
TRACE = (Path(__file__).parent / "data" / "onednn_verbose_cnn.txt").read_text()


def test_the_trace_header_is_read():
    trace = parse_verbose(TRACE)
    assert trace["version"] == "v3.2.1" and trace["runtime"] == "threadpool"
    assert trace["isa"].startswith("Intel AVX-512")
    assert len(trace["executions"]) == 28


def test_the_summary_table_groups_primitives():
    rows = summarize(parse_verbose(TRACE)["executions"])
    assert rows[0] == {"primitive": "inner_product", "implementation": "x64:gemm:jit",
                       "prop_kind": "forward_training", "fused_post_ops": "eltwise_relu", "count": 2,
                       "ms": pytest.approx(22.123 + 3.99097, rel=1e-3)}
    kinds = {(r["primitive"], r["prop_kind"]) for r in rows}
    assert {("convolution", "forward_training"), ("convolution", "backward_weights"),
            ("convolution", "backward_data"), ("pooling", "forward_training"), ("reorder", "undef")} <= kinds
    assert sum(r["count"] for r in rows) == 28
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)


def test_fusion_and_blocked_layouts_are_visible():
    executions = parse_verbose(TRACE)["executions"]
    fused = [e for e in executions if e["primitive"] == "convolution" and e["post_ops"] == ["eltwise_relu"]]
    assert len(fused) == 4 and all(e["prop_kind"] == "forward_training" for e in fused)
    assert fused[0]["formats"] == {"src": "acdb", "wei": "Acdb16a", "bia": "a", "dst": "acdb"}
    assert blocked_layouts(executions) == ["ABcd16b16a", "Acdb16a", "Acdb32a", "Bcda32b"]


def test_lines_that_are_not_the_trace_are_ignored():
    noisy = "Epoch 1/1\nonednn_verbose,info,oneDNN v3.2.1 (commit N/A)\nsomething else\n" + TRACE
    assert len(parse_verbose(noisy)["executions"]) == 28


@pytest.mark.mpi
def test_the_script_traces_and_measures_each_setting(in_course_env):
    mpirun("scripts/onednn_bench.py", "--trace", "--steps", 2, "--name", "test_trace", ranks=1, threads=2,
           genv={"TF_ENABLE_ONEDNN_OPTS": 1}, echo=False)
    mpirun("scripts/onednn_bench.py", "--data-format", "channels_first", "--steps", 2, "--name", "test_nchw",
           ranks=2, threads=1, genv={"TF_ENABLE_ONEDNN_OPTS": 0}, echo=False)
    traced, nchw = (take_results(n)["measurements"] for n in ("test_trace", "test_nchw"))
    assert traced["tensorflow"]["onednn"] and traced["train_images_per_second"] > 0
    assert any(r["primitive"] == "convolution" for r in traced["trace"]["summary"])
    assert "NHWC" in nchw["unsupported"] and nchw["train_images_per_second"] == 0  # Eigen: NHWC only
    assert len(nchw["per_rank"]) == 2


def test_the_v1_trace_format_of_newer_onednn_is_read():
    """oneDNN >= 3.5 (as in OpenVINO 2026) prefixes every line with its format version."""
    trace = "\n".join([
        "onednn_verbose,v1,info,oneDNN v3.13.0 (commit 1289c3b)",
        "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support",
        "onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,"
        "memory_descriptors,attributes,auxiliary,problem_desc,exec_time",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_vnni,forward_inference,"
        "src:u8::blocked:acdb::f0 wei:s8:a:blocked:Adcb16a::f0,attr-post-ops:eltwise_relu,"
        "alg:convolution_direct,mb32_ic1oc32_ih28oh28kh5,0.05",
        "onednn_verbose,v1,primitive,create:cache_miss,cpu,inner_product,brgemm:avx512_core_vnni,"
        "forward_inference,src:u8::blocked:ab::f0 wei:s8:a:blocked:AB4b64a4b::f0,,,mb32ic3136oc1024,0.4"])
    info = parse_verbose(trace)
    assert info["version"] == "v3.13.0" and "DL Boost" in info["isa"]
    [conv] = info["executions"]
    assert conv["implementation"] == "brg_conv_fwd:avx512_core_vnni" and conv["ms"] == 0.05
    [dense] = info["created"]  # ONEDNN_VERBOSE=2's creation lines, kept apart from the executions
    assert dense["primitive"] == "inner_product" and dense["types"] == {"src": "u8", "wei": "s8"}
