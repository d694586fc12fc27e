"""`make bench`: run every benchmark entry the notebooks define, and record them with the machine.

    python -m dlscale.bench                 # full sizes (about 25 minutes on 2 cores)
    DLSCALE_QUICK=1 python -m dlscale.bench # smoke sizes: proves every entry works
    python -m dlscale.bench cnn_onednn      # only some entries

Each entry launches course scripts (or IMB-MPI1) under mpirun, whose results go to
results/bench_*.json, and summarizes those files; configurations are compared as ratios measured
side by side in the same run. Everything lands in results/benchmarks_HOSTNAME.json, with a
markdown table (beside the workshop's published figures) and a summary figure next to it.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import comms, elastic, plots, tfbench
from .cli import sized
from .cpu import usable_cores
from .env import ROOT, results_dir, shown
from .experiments import (
    Run,
    cnn_onednn,
    dlboost_isa_cap,
    dlboost_settings,
    engines,
    horovod_scaling,
    int8_settings,
    kmeans_layouts,
    mpi_layouts,
    onednn_threads,
    roofline_layouts,
)
from .results import read_results, write_results

REFERENCE = ROOT / "benchmarks" / "reference"  # full runs shipped with the course, to compare with
INDENT = "      "  # an entry's own progress lines, under the entry's


@dataclass
class Entry:
    name: str
    notebook: str
    description: str
    measure: Callable[[int], tuple[list[str], dict]]  # usable cores -> (results records, summary)


def launched(grid: Callable[[int], list[Run]], summarize: Callable[[list[Run], str], dict], prefix: str):
    """An entry's `measure` that launches a grid's runs, then summarizes their results records."""
    def measure(cores: int) -> tuple[list[str], dict]:
        runs = grid(cores)
        for run in runs:
            run.launch(prefix, echo=False, timeout=3600)
        return [run.name(prefix) for run in runs], summarize(runs, prefix)
    return measure


def summarize_mpi_layouts(runs: list[Run], prefix: str) -> dict:
    gflops = {run.label: run.results(prefix)["gflops"] for run in runs}
    one_per_core, oversubscribed = runs[-2:]  # cores x 1, then 2 cores x 1
    return {"gflops_by_layout": gflops,
            "oversubscription_slowdown": gflops[one_per_core.label] / gflops[oversubscribed.label]}


def summarize_int8(runs: list[Run], prefix: str) -> dict:
    measured = {run.label: run.results(prefix) for run in runs}
    first = measured[runs[0].label]  # batch 1, one thread
    return {
        **{label: {"int8_over_fp32": m["int8_speedup"], "images_per_second": m["images_per_second_total"]}
           for label, m in measured.items()},
        "batch1_int8_over_fp32": first["int8_speedup"],
        "accuracy_change_points": 100 * (first["accuracy"]["int8"] - first["accuracy"]["fp32"]),
        "size_ratio": first["model_bytes"]["fp32"] / first["model_bytes"]["int8"],
    }


def dlboost_runs(cores: int) -> list[Run]:
    """Notebook 01's OpenVINO run with every core, and the same with DL Boost capped (if any)."""
    capped = dlboost_isa_cap(cores)
    return [dlboost_settings(cores)[0], *([capped] if capped else [])]


def summarize_dlboost(runs: list[Run], prefix: str) -> dict:
    from . import dlboost

    m = runs[0].results(prefix)
    summary = {}
    for name, model in m["models"].items():
        summary[name] = {f"{p}_over_fp32_batch{b}": model[f"{p}_over_fp32"][b]
                         for p in m["precisions"] if p != "fp32" for b in model[f"{p}_over_fp32"]}
        summary[name]["kernels"] = {p: dlboost.kernel_lines(model, p) for p in m["precisions"]}
    cnn = m["models"].get("cnn")
    if cnn:
        accuracy = cnn["accuracy"]
        summary["cnn"].update({f"{p}_accuracy_change_points": 100 * (accuracy[p] - accuracy["fp32"])
                               for p in m["precisions"] if p != "fp32"})
        summary["cnn"]["int8_all_layers_int8"] = cnn["int8_layers_all_int8"]
    if m["skipped"]:  # precisions this CPU cannot run, and why
        summary["skipped"] = m["skipped"]
    if len(runs) > 1:
        effect = dlboost.isa_cap_effect(m, runs[1].results(prefix))
        summary["isa_cap"] = {"cap": effect["isa_cap"], "model": effect["model"], "batch": effect["batch"],
                              "int8_capped_over_uncapped": effect["int8"]["capped_over_uncapped"],
                              "fp32_capped_over_uncapped": effect["fp32"]["capped_over_uncapped"],
                              "int8_implementations": effect.get("int8_implementations")}
    else:
        summary["isa_cap"] = "this CPU has no VNNI: no DL Boost to take away, not run"
    return summary


def summarize_onednn(runs: list[Run], prefix: str) -> dict:
    rate, infer = "train_images_per_second", "inference_images_per_second"
    off, on = (run.results(prefix) for run in runs[:2])
    return {"onednn_train_speedup": on[rate] / off[rate], "onednn_inference_speedup": on[infer] / off[infer],
            "train_images_per_second": {run.label: run.results(prefix)[rate] for run in runs[2:]}}


def fraction_of_ceiling(gflops: float) -> dict:
    """`gflops` as a fraction of the measured FP32 ceiling (the newest roofline record in the
    results folder: make bench runs that entry first), or nothing where none was measured."""
    from .roofline import fp32_ceiling

    ceiling = fp32_ceiling()
    return {"fraction_of_measured_fp32_ceiling": gflops / ceiling} if ceiling else {}


def summarize_cnn_onednn(runs: list[Run], prefix: str) -> dict:
    off, on = (run.results(prefix) for run in runs)
    train, infer = "train_images_per_second", "inference_images_per_second"
    return {
        train: {"off": off[train], "on": on[train]},
        infer: {"off": off[infer], "on": on[infer]},
        "train_speedup": on[train] / off[train],
        "inference_speedup": on[infer] / off[infer],
        "train_gflops_on": on["train_gflops"],
        **fraction_of_ceiling(on["train_gflops"]),
    }


def summarize_horovod_scaling(runs: list[Run], prefix: str) -> dict:
    measured = {run.label: run.results(prefix) for run in runs}
    base = measured[runs[0].label]["train_images_per_second"]  # one rank, all cores as threads
    return {label: {"images_per_second": m["train_images_per_second"],
                    "efficiency": m["train_images_per_second"] / base,
                    "test_accuracy": m["test_accuracy"], "weights_identical": m["weights_identical"]}
            for label, m in measured.items()}


def summarize_kmeans(runs: list[Run], prefix: str) -> dict:
    measured = {run.label: run.results(prefix) for run in runs}
    single = measured[runs[0].label]  # one rank, all cores as threads, with scikit-learn beside it
    return {
        "pixels": single["pixels"], "colors": single["colors"], "iterations": single["iterations"],
        "iterate_seconds_by_layout": {label: m["seconds"]["iterate"] for label, m in measured.items()},
        "sklearn_seconds": single["sklearn"]["seconds"],
        "daal4py_speedup_over_sklearn": single["sklearn"]["seconds"] / single["seconds"]["iterate"],
        "inertia_relative_difference":
            abs(single["sklearn"]["inertia"] - single["inertia"]) / single["inertia"],
    }


def summarize_roofline(runs: list[Run], prefix: str) -> dict:
    from .roofline import roofs

    records = [{"measurements": run.results(prefix), "machine": {}} for run in runs]
    first = records[0]["measurements"]

    def layout(m: dict) -> dict:
        return {**{p: c["aggregate_gflops"] for p, c in m["ceilings"].items()},
                "triad_gb_per_s": m["triad"]["aggregate_gb_per_s"]}

    return {"ceilings": roofs(records),
            "by_layout": {run.label: layout(r["measurements"]) for run, r in zip(runs, records, strict=True)},
            "nominal_fp32_gflops": first["nominal"]["fp32_gflops"], "skipped": first["skipped"]}


def _tf_bench(cores: int) -> tuple[list[str], dict]:
    defaults = tfbench.parser().parse_args([])  # the quick or full sizes of benchmarks/tf_bench.sh
    record = tfbench.run(model=defaults.model, batch_size=defaults.batch_size,
                         num_batches=defaults.num_batches, warmup_batches=defaults.warmup_batches,
                         data_format=defaults.data_format, repeats=defaults.repeats,
                         horovod_ranks=2, name="bench_06_tf_bench", cores=cores, echo=False,
                         indent=INDENT)
    runs = [run for repeats in record["runs"].values() for run in repeats]
    return [*runs, "bench_06_tf_bench"], record["summary"]


def _collectives(cores: int) -> tuple[list[str], dict]:
    record = comms.imb_sweep(ranks=4, name="bench_06_imb", indent=INDENT)
    return ["bench_06_imb"], record["fits"]


def _fusion(cores: int) -> tuple[list[str], dict]:
    record = comms.fusion_sweep(ranks=2, name="bench_06_fusion", indent=INDENT)
    rates = {f"threshold_{r['HOROVOD_FUSION_THRESHOLD'] / 2**20:g}MiB_cycle_{r['HOROVOD_CYCLE_TIME']:g}ms":
             r["train_images_per_second"] for r in record["runs"]}
    default = next(r["train_images_per_second"] for r in record["runs"]
                   if all(r[k] == v for k, v in comms.HOROVOD_DEFAULTS.items()))
    fusion_off = next(v for k, v in rates.items() if k.startswith("threshold_0MiB_"))
    return [r["results_name"] for r in record["runs"]] + ["bench_06_fusion"], {
        "train_images_per_second": rates, "best_over_default": max(rates.values()) / default,
        "fusion_off_over_default": fusion_off / default}


def _after_horovod(cores: int) -> tuple[list[str], dict]:
    """Notebook 07: Horovod vs MultiWorkerMirroredStrategy at one layout (each engine's best round),
    and what one killed worker costs an elastic Horovod job."""
    runs = engines(cores)
    rates: dict[str, float] = {}
    for run in runs:
        run.launch("bench_07", echo=False, timeout=3600)
        m = run.results("bench_07")
        if not m["weights_identical"]:
            raise RuntimeError(f"{run.label}: the workers ended with different weights")
        rates[run.label] = max(rates.get(run.label, 0), m["train_images_per_second"])
    name = "bench_07_elastic"
    summary = elastic.run(name, kill_after_steps=sized(60, 25), regrow_after_steps=sized(40, 15),
                          echo=False)["measurements"]["summary"]
    kept = ("killed_at_step", "steps_repeated", "seconds_to_training_again", "seconds_to_grow",
            "images_per_second_before", "images_per_second_during", "images_per_second_after")
    return [*(run.name("bench_07") for run in runs), name], {
        "train_images_per_second": rates,
        "tfdistribute_over_horovod": rates["MultiWorkerMirroredStrategy"] / rates["Horovod"],
        "elastic_one_failure": {key: summary.get(key) for key in kept}}


ENTRIES = [
    Entry("roofline", "06", "measured ceilings: FP32/BF16/INT8 matrix multiplies, triad bandwidth",
          launched(roofline_layouts, summarize_roofline, "bench_06_roofline")),
    Entry("mpi_layouts", "00", "matrix multiplies: ranks x threads layouts, oversubscription",
          launched(mpi_layouts, summarize_mpi_layouts, "bench_00")),
    Entry("int8_inference", "01", "MNIST CNN in TFLite: full INT8 vs FP32, batch 1 and 32",
          launched(int8_settings, summarize_int8, "bench_01")),
    Entry("dlboost_inference", "01",
          "OpenVINO: INT8 and BF16 over FP32 (CNN, ResNet-50), kernels, DL Boost capped",
          launched(dlboost_runs, summarize_dlboost, "bench_01_dlboost")),
    Entry("onednn_threads", "02", "TensorFlow's kernels vs oneDNN; intra-op threads; ranks vs threads",
          launched(onednn_threads, summarize_onednn, "bench_02")),
    Entry("cnn_onednn", "03", "MNIST CNN: TensorFlow's kernels vs oneDNN, training and inference",
          launched(cnn_onednn, summarize_cnn_onednn, "bench_03")),
    Entry("horovod_scaling", "04", "MNIST CNN with Horovod: ranks x threads at equal cores",
          launched(horovod_scaling, summarize_horovod_scaling, "bench_04")),
    Entry("kmeans_daal4py", "05", "colour quantization: ranks x threads, daal4py vs scikit-learn",
          launched(kmeans_layouts, summarize_kmeans, "bench_05")),
    Entry("tf_bench", "06", "ResNet-50 training (benchmarks/tf_bench.sh): default vs optimized vs Horovod",
          _tf_bench),
    Entry("mpi_collectives", "06",
          "IMB-MPI1 Allreduce, Reduce_scatter, Allgather, Alltoall over message sizes", _collectives),
    Entry("horovod_fusion", "06", "Horovod's fusion threshold and cycle time on a short MNIST run", _fusion),
    Entry("after_horovod", "07",
          "MNIST CNN: Horovod vs MultiWorkerMirroredStrategy; elastic Horovod's cost of one killed worker",
          _after_horovod),
]


def run_entry(entry: Entry, cores: int) -> dict:
    names, summary = entry.measure(cores)
    return {"notebook": entry.notebook, "description": entry.description, "results": names,
            "summary": summary}


def markdown(record: dict) -> str:
    cpu = record["machine"]["cpu"]
    lines = [f"# Benchmarks on {record['machine']['hostname']}", "",
             f"{cpu['model']}, {cpu['physical_cores']} cores, clock {cpu['clock_ghz'] or 0:.2f} GHz; "
             f"quick mode: {record['machine']['quick_mode']}; {record['machine']['timestamp']}", ""]
    if "tf_bench" in record["measurements"]:
        lines += ["## ResNet-50 training beside the workshop's figures", "",
                  tfbench.table(record["measurements"]["tf_bench"]["summary"]), ""]
    lines += ["## Every entry", "", "| entry | notebook | measured |", "|---|---|---|"]
    for name, entry in record["measurements"].items():
        lines.append(f"| {name} | {entry['notebook']} | {_flatten(entry['summary'])} |")
    return "\n".join(lines) + "\n"


def _flatten(summary: dict, prefix: str = "") -> str:
    parts = []
    for key, value in summary.items():
        if key in ("environments", "workshop", "rows"):  # labels, published figures, tables shown above
            continue
        if isinstance(value, dict):
            parts.append(_flatten(value, f"{prefix}{key}."))
        else:
            shown = f"{value:.3g}" if isinstance(value, float) else value
            parts.append(f"{prefix}{key} = {shown}")
    return "; ".join(parts)


def speedups(measurements: dict) -> dict[str, float]:
    """The ratios each entry measured side by side (faster configuration / slower one)."""
    found = {}
    pick = {
        "int8_inference": ("INT8 / FP32, batch 1 (01)", lambda s: s["batch1_int8_over_fp32"]),
        "dlboost_inference": ("OpenVINO INT8 / FP32, CNN batch 32 (01)",
                              lambda s: s["cnn"]["int8_over_fp32_batch32"]),
        "onednn_threads": ("oneDNN / Eigen, CNN training step (02)", lambda s: s["onednn_train_speedup"]),
        "cnn_onednn": ("oneDNN / Eigen, MNIST training (03)", lambda s: s["train_speedup"]),
        "kmeans_daal4py": ("daal4py / scikit-learn K-Means (05)",
                           lambda s: s["daal4py_speedup_over_sklearn"]),
        "tf_bench": ("optimized / default, ResNet-50 (06)", lambda s: s["optimized_over_default"]),
        "horovod_fusion": ("best / default Horovod fusion (06)", lambda s: s["best_over_default"]),
        "after_horovod": ("MultiWorkerMirroredStrategy / Horovod (07)",
                          lambda s: s["tfdistribute_over_horovod"]),
    }
    for entry, (label, get) in pick.items():
        if entry in measurements:
            found[label] = get(measurements[entry]["summary"])
    return found


def benchmark_records() -> dict[str, dict]:
    """Every `make bench` record to compare, by file: results/ (yours, and any copied in from other
    machines), then the full runs shipped in benchmarks/reference/."""
    found, seen = {}, set()
    for folder in (results_dir(), REFERENCE):
        for path in sorted(folder.glob("benchmarks_*.json")) if folder.is_dir() else []:
            record = json.loads(path.read_text())
            run = (record["machine"]["hostname"], record["machine"]["timestamp"])
            if run not in seen:  # the same run copied twice (the reference run on its own machine)
                seen.add(run)
                found[shown(path)] = record
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course's benchmark entries.")
    names = [e.name for e in ENTRIES]
    parser.add_argument("entries", nargs="*", help=f"entries to run (default all: {names})")
    args = parser.parse_args(argv)
    unknown = set(args.entries) - set(names)
    if unknown:
        parser.error(f"unknown entries {sorted(unknown)}; choose from {names}")
    chosen = [e for e in ENTRIES if not args.entries or e.name in args.entries]
    cores = usable_cores()
    measured = {}
    for number, entry in enumerate(chosen, 1):
        print(f"[{number}/{len(chosen)}] {entry.name}: {entry.description} ...", flush=True)
        start = time.perf_counter()
        measured[entry.name] = run_entry(entry, cores)
        summary = _flatten(measured[entry.name]["summary"])
        print(f"      done in {time.perf_counter() - start:.0f} s: {summary}", flush=True)
    name = f"benchmarks_{socket.gethostname()}"
    path = write_results(name, measured)
    record = read_results(name)  # the summary is drawn from what was written, as anyone else would read it
    table = results_dir() / f"{name}.md"
    table.write_text(markdown(record))
    figure = results_dir() / f"{name}.png"
    plots.bench_summary(record).savefig(figure, dpi=110)
    print(f"wrote {', '.join(shown(p) for p in (path, table, figure))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
