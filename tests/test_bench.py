"""`make bench` works (in quick mode: benchmarks are never timed tests) and summarizes real results."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys

import pytest

from dlscale import bench, experiments, plots
from dlscale.env import ROOT, results_dir

pytestmark = pytest.mark.mpi


def test_bench_summarizes_the_results_files_it_ran(course_env):
    out = subprocess.run([sys.executable, "-m", "dlscale.bench"], cwd=ROOT, env=course_env,
                         capture_output=True, text=True, timeout=1800, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[1/12] roofline" in out.stdout and "[12/12] after_horovod" in out.stdout
    results = results_dir()
    record = json.loads((results / f"benchmarks_{socket.gethostname()}.json").read_text())
    assert record["machine"]["quick_mode"] is True and record["machine"]["cpu"]["model"]
    entries = record["measurements"]

    def measured(name):
        return json.loads((results / f"{name}.json").read_text())["measurements"]

    onednn = entries["cnn_onednn"]
    off, on = (measured(n) for n in onednn["results"])
    rate = "train_images_per_second"
    assert onednn["summary"]["train_speedup"] == on[rate] / off[rate]
    assert off["tensorflow"]["onednn"] is False and on["tensorflow"]["onednn"] is True
    scaling = entries["horovod_scaling"]["summary"]
    assert all(layout["weights_identical"] for layout in scaling.values())
    assert next(iter(scaling.values()))["efficiency"] == 1.0
    layouts = entries["mpi_layouts"]["summary"]["gflops_by_layout"]
    assert list(layouts.values()) == [measured(n)["gflops"] for n in entries["mpi_layouts"]["results"]]
    int8 = entries["int8_inference"]
    assert int8["summary"]["batch1_int8_over_fp32"] == measured(int8["results"][0])["int8_speedup"]
    assert int8["summary"]["size_ratio"] > 3.5  # 4 bytes per weight become 1
    dlboost = entries["dlboost_inference"]
    first = measured(dlboost["results"][0])["models"]
    assert dlboost["summary"]["cnn"]["int8_over_fp32_batch32"] == first["cnn"]["int8_over_fp32"]["32"]
    assert dlboost["summary"]["cnn"]["int8_all_layers_int8"] is True
    kmeans = entries["kmeans_daal4py"]
    assert kmeans["summary"]["sklearn_seconds"] == measured(kmeans["results"][0])["sklearn"]["seconds"]
    assert kmeans["summary"]["inertia_relative_difference"] < 1e-8
    tf_bench = entries["tf_bench"]
    table_record = measured(tf_bench["results"][-1])  # every run, then the table's own record
    tf_runs = {config: [measured(n)["images_per_second"] for n in names]
               for config, names in table_record["runs"].items()}
    assert sorted(tf_runs) == ["default", "horovod", "optimized"]
    rows = tf_bench["summary"]["rows"]
    assert {name: row["median"] for name, row in rows.items()} == {
        name: statistics.median(rates) for name, rates in tf_runs.items()}
    assert entries["mpi_collectives"]["summary"] == measured(entries["mpi_collectives"]["results"][0])["fits"]
    fusion = measured(entries["horovod_fusion"]["results"][-1])
    default = next(r for r in fusion["runs"] if r["HOROVOD_FUSION_THRESHOLD"] == 128 * 2**20
                   and r["HOROVOD_CYCLE_TIME"] == 1.0)["train_images_per_second"]
    best = max(r["train_images_per_second"] for r in fusion["runs"])
    assert entries["horovod_fusion"]["summary"]["best_over_default"] == best / default
    after = entries["after_horovod"]
    engines = [measured(n) for n in after["results"][:-1]]
    assert {m["engine"] if "engine" in m else "horovod" for m in engines} == {
        "horovod", "tf.distribute.MultiWorkerMirroredStrategy"}
    assert after["summary"]["elastic_one_failure"]["steps_repeated"] is not None
    table = (results / f"benchmarks_{socket.gethostname()}.md").read_text()
    assert "| cnn_onednn | 03 |" in table and "train_speedup" in table
    assert "| workshop, optimized | ResNet-50 | | 17.69 |" in table
    assert f"{rows['optimized']['median']:.2f} (" in table
    figure = results / f"benchmarks_{socket.gethostname()}.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000


def test_the_reference_run_is_a_full_run_of_every_entry():
    reference = {path.name: json.loads(path.read_text())
                 for path in bench.REFERENCE.glob("benchmarks_*.json")}
    assert reference, "benchmarks/reference/ should hold a full make bench run to compare with"
    for record in reference.values():
        assert record["machine"]["quick_mode"] is False and record["machine"]["cpu"]["model"]
        assert list(record["measurements"]) == [e.name for e in bench.ENTRIES]
        assert len(bench.speedups(record["measurements"])) == 8
    records = bench.benchmark_records()
    def run(record):
        return record["machine"]["hostname"], record["machine"]["timestamp"]

    assert {run(r) for r in reference.values()} <= {run(r) for r in records.values()}  # compared, once
    figure = plots.bench_comparison(records)
    drawn = [bar.get_width() for bar in figure.axes[0].patches]
    first = bench.speedups(next(iter(records.values()))["measurements"])
    assert drawn[:len(first)] == list(first.values())  # the first machine's bars are its own ratios


def test_bench_refuses_unknown_entries(course_env):
    out = subprocess.run([sys.executable, "-m", "dlscale.bench", "nope"], cwd=ROOT, env=course_env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "unknown entries ['nope']" in out.stderr


SAVED = ROOT / "tests" / "data" / "bench_results"  # a few small results records, numbers chosen by hand


@pytest.fixture
def saved_results(monkeypatch):
    monkeypatch.setenv("DLSCALE_OUTPUT_DIR", str(SAVED))
    return SAVED


def test_layout_and_scaling_summaries_compute_the_right_ratios(saved_results):
    runs = experiments.mpi_layouts(2)  # 1 x 1, 1 x 2, 2 x 1, 4 x 1: 10, 30, 40 and 25 GFLOP/s
    summary = bench.summarize_mpi_layouts(runs, "saved_00")
    assert summary == {"gflops_by_layout": {"1 x 1": 10.0, "1 x 2": 30.0, "2 x 1": 40.0, "4 x 1": 25.0},
                       "oversubscription_slowdown": 40.0 / 25.0}
    scaling = bench.summarize_horovod_scaling(experiments.horovod_scaling(2), "saved_04")
    assert [layout["efficiency"] for layout in scaling.values()] == [1.0, 0.75, 0.5]  # 400, 300, 200 img/s


def test_onednn_and_kmeans_summaries_compute_the_right_ratios(saved_results):
    onednn = bench.summarize_cnn_onednn(experiments.cnn_onednn(2), "saved_03")
    assert (onednn["train_speedup"], onednn["inference_speedup"]) == (2.5, 0.8)  # 500/200, 800/1000
    assert "fraction_of_measured_fp32_ceiling" not in onednn  # no ceiling was measured there
    kmeans = bench.summarize_kmeans(experiments.kmeans_layouts(2), "saved_05")
    assert kmeans["daal4py_speedup_over_sklearn"] == 3.0 / 1.5
    assert kmeans["iterate_seconds_by_layout"] == {"1 x 2": 1.5, "2 x 1": 1.0, "4 x 1": 2.0}
    assert kmeans["inertia_relative_difference"] == pytest.approx(1e-3)
