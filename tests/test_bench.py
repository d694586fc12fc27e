"""`make bench` works (in quick mode: benchmarks are never timed tests) and summarizes real results."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys

import pytest

from dlscale import bench
from dlscale.env import ROOT

pytestmark = pytest.mark.mpi


def test_bench_summarizes_the_results_files_it_ran(course_env):
    out = subprocess.run([sys.executable, "-m", "dlscale.bench"], cwd=ROOT, env=course_env,
                         capture_output=True, text=True, timeout=1800, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[1/9] mpi_layouts" in out.stdout and "[9/9] horovod_fusion" in out.stdout
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
    tf_bench = entries["tf_bench"]
    tf_runs = {}
    for path in tf_bench["results_files"][:-1]:  # every run, then the table's own record
        tf_runs.setdefault(path.split("_")[-2], []).append(measured(path)["images_per_second"])
    assert sorted(tf_runs) == ["default", "horovod", "optimized"]
    rows = tf_bench["summary"]["rows"]
    assert {name: row["median"] for name, row in rows.items()} == {
        name: statistics.median(rates) for name, rates in tf_runs.items()}
    ratio = rows["optimized"]["median"] / rows["default"]["median"]
    assert tf_bench["summary"]["optimized_over_default"] == ratio
    imb = measured(entries["mpi_collectives"]["results_files"][0])
    assert entries["mpi_collectives"]["summary"] == imb["fits"]
    fusion = measured(entries["horovod_fusion"]["results_files"][-1])
    default = next(r for r in fusion["runs"] if r["HOROVOD_FUSION_THRESHOLD"] == 128 * 2**20
                   and r["HOROVOD_CYCLE_TIME"] == 1.0)["train_images_per_second"]
    best = max(r["train_images_per_second"] for r in fusion["runs"])
    assert entries["horovod_fusion"]["summary"]["best_over_default"] == best / default
    table = (results / f"benchmarks_{socket.gethostname()}.md").read_text()
    assert "| cnn_onednn | 03 |" in table and "train_speedup" in table
    assert "| workshop, optimized | ResNet-50 | | 17.69 |" in table
    assert f"{rows['optimized']['median']:.2f} (" in table
    figure = results / f"benchmarks_{socket.gethostname()}.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000


def test_the_reference_run_is_a_full_run_of_every_entry():
    reference = {path.name: json.loads(path.read_text()) for path in bench.REFERENCE.glob("*.json")}
    assert reference, "benchmarks/reference/ should hold a full make bench run to compare with"
    for record in reference.values():
        assert record["machine"]["quick_mode"] is False and record["machine"]["cpu"]["model"]
        assert list(record["measurements"]) == [entry.name for entry in bench.ENTRIES]
        assert len(bench.speedups(record["measurements"])) == 6
    records = bench.benchmark_records()
    def run(record):
        return record["machine"]["hostname"], record["machine"]["timestamp"]

    assert {run(r) for r in reference.values()} <= {run(r) for r in records.values()}  # compared, once
    figure = bench.comparison_figure(records)
    drawn = [bar.get_width() for bar in figure.axes[0].patches]
    first = bench.speedups(next(iter(records.values()))["measurements"])
    assert drawn[:len(first)] == list(first.values())  # the first machine's bars are its own ratios


def test_bench_refuses_unknown_entries(course_env):
    out = subprocess.run([sys.executable, "-m", "dlscale.bench", "nope"], cwd=ROOT, env=course_env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "unknown entries ['nope']" in out.stderr
