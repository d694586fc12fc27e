"""`make bench` works (in quick mode: benchmarks are never timed tests) and summarizes real results."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from dlscale.env import ROOT

pytestmark = pytest.mark.mpi


def test_bench_summarizes_the_results_files_it_ran(course_env):
    out = subprocess.run([sys.executable, "-m", "dlscale.bench"], cwd=ROOT, env=course_env,
                         capture_output=True, text=True, timeout=1800, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[1/6] mpi_layouts" in out.stdout and "[6/6] kmeans_daal4py" in out.stdout
    results = ROOT / "results"
    record = json.loads((results / f"benchmarks_{socket.gethostname()}.json").read_text())
    assert record["machine"]["quick_mode"] is True and record["machine"]["cpu"]["model"]
    entries = record["measurements"]

    def measured(path):
        return json.loads((ROOT / path).read_text())["measurements"]

    onednn = entries["cnn_onednn"]
    off, on = (measured(p) for p in onednn["results_files"])
    rate = "train_images_per_second"
    assert onednn["summary"]["train_speedup"] == on[rate] / off[rate]
    assert off["tensorflow"]["onednn"] is False and on["tensorflow"]["onednn"] is True
    scaling = entries["horovod_scaling"]["summary"]
    assert all(layout["weights_identical"] for layout in scaling.values())
    assert next(iter(scaling.values()))["efficiency"] == 1.0
    layouts = entries["mpi_layouts"]["summary"]["gflops_by_layout"]
    assert layouts == {p.split("bench_00_")[1].removesuffix(".json"): measured(p)["gflops"]
                       for p in entries["mpi_layouts"]["results_files"]}
    int8 = entries["int8_inference"]
    batch1 = measured(int8["results_files"][0])
    assert int8["summary"]["b1_t1"]["int8_over_fp32"] == batch1["int8_speedup"]
    assert int8["summary"]["size_ratio"] > 3.5  # 4 bytes per weight become 1
    threads = entries["onednn_threads"]
    off2, on2 = (measured(p) for p in threads["results_files"][:2])
    assert threads["summary"]["onednn_train_speedup"] == on2[rate] / off2[rate]
    kmeans = entries["kmeans_daal4py"]
    single = measured(kmeans["results_files"][0])
    assert kmeans["summary"]["sklearn_seconds"] == single["sklearn"]["seconds"]
    assert kmeans["summary"]["inertia_relative_difference"] < 1e-8
    table = (results / f"benchmarks_{socket.gethostname()}.md").read_text()
    assert "| cnn_onednn | 03 |" in table and "train_speedup" in table


def test_bench_refuses_unknown_entries(course_env):
    out = subprocess.run([sys.executable, "-m", "dlscale.bench", "nope"], cwd=ROOT, env=course_env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "unknown entries ['nope']" in out.stderr
