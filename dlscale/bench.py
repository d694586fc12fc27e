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

from . import comms, tfbench
from .cpu import usable_cores
from .env import ROOT, quick_mode
from .launch import mpirun
from .results import RESULTS, read_results, write_results

REFERENCE = ROOT / "benchmarks" / "reference"  # full runs shipped with the course, to compare with
INDENT = "      "  # an entry's own progress lines, under the entry's


@dataclass
class Launch:
    script: str
    args: list
    ranks: int
    threads: int
    name: str  # results/NAME.json that the script writes
    genv: dict | None = None


@dataclass
class Entry:
    name: str
    notebook: str
    description: str
    measure: Callable[[int], tuple[list[str], dict]]  # usable cores -> (results files, summary)


def launched(launches: Callable[[int], list[Launch]], summarize: Callable[[dict[str, dict]], dict]):
    """An entry's `measure` that runs course scripts under mpirun, then summarizes their results files."""
    def measure(cores: int) -> tuple[list[str], dict]:
        chosen = launches(cores)
        for launch in chosen:
            mpirun(launch.script, *launch.args, ranks=launch.ranks, threads=launch.threads,
                   genv=launch.genv, echo=False, timeout=3600)
        runs = {launch.name: read_results(launch.name)["measurements"] for launch in chosen}
        return [f"results/{launch.name}.json" for launch in chosen], summarize(runs)
    return measure


def _mpi_layouts(cores: int) -> list[Launch]:
    layouts = dict.fromkeys([(1, 1), (1, cores), (cores, 1), (2 * cores, 1)])
    return [Launch("scripts/00_mpi_hello.py", ["--name", f"bench_00_{r}x{t}"], r, t, f"bench_00_{r}x{t}")
            for r, t in layouts]


def _summarize_mpi_layouts(runs: dict[str, dict]) -> dict:
    gflops = {name.removeprefix("bench_00_"): m["gflops"] for name, m in runs.items()}
    cores = usable_cores()
    return {"gflops_by_layout": gflops,
            "oversubscription_slowdown": gflops[f"{cores}x1"] / gflops[f"{2 * cores}x1"]}


def _int8(cores: int) -> list[Launch]:
    settings = dict.fromkeys([(1, 1), (32, cores)])  # (batch, threads): latency-bound, then throughput
    names = {(b, t): f"bench_01_b{b}_t{t}" for b, t in settings}
    return [Launch("scripts/int8_inference.py", ["--batch", b, "--threads", t, "--name", name], 1, t, name)
            for (b, t), name in names.items()]


def _summarize_int8(runs: dict[str, dict]) -> dict:
    first = next(iter(runs.values()))
    return {
        **{name.removeprefix("bench_01_"): {"int8_over_fp32": m["int8_speedup"],
                                             "images_per_second": m["images_per_second_total"]}
           for name, m in runs.items()},
        "accuracy_change_points": 100 * (first["accuracy"]["int8"] - first["accuracy"]["fp32"]),
        "size_ratio": first["model_bytes"]["fp32"] / first["model_bytes"]["int8"],
    }


def _onednn_threads(cores: int) -> list[Launch]:
    launches = [Launch("scripts/onednn_bench.py", ["--name", f"bench_02_onednn_{s}"], 1, cores,
                       f"bench_02_onednn_{s}", {"TF_ENABLE_ONEDNN_OPTS": int(s == "on")})
                for s in ("off", "on")]
    for intra in sorted({1, cores, 2 * cores}):
        name = f"bench_02_intra_{intra}"
        launches.append(Launch("scripts/onednn_bench.py", ["--intra", intra, "--name", name], 1, cores, name))
    name = f"bench_02_ranks_{cores}"
    return [*launches, Launch("scripts/onednn_bench.py", ["--intra", 1, "--name", name], cores, 1, name)]


def _summarize_onednn_threads(runs: dict[str, dict]) -> dict:
    rate, infer = "train_images_per_second", "inference_images_per_second"
    off, on = runs.pop("bench_02_onednn_off"), runs.pop("bench_02_onednn_on")
    return {"onednn_train_speedup": on[rate] / off[rate],
            "onednn_inference_speedup": on[infer] / off[infer],
            "train_images_per_second": {name.removeprefix("bench_02_"): m[rate] for name, m in runs.items()}}


def _cnn_onednn(cores: int) -> list[Launch]:
    images = "512" if quick_mode() else "4000"
    return [Launch("scripts/cnn_mnist.py",
                   ["--fresh", "--epochs", 2, "--train-images", images, "--checkpoint-dir",
                    f"checkpoints/bench_03_{setting}", "--name", f"bench_03_onednn_{setting}"],
                   1, cores, f"bench_03_onednn_{setting}", {"TF_ENABLE_ONEDNN_OPTS": int(setting == "on")})
            for setting in ("off", "on")]


def _summarize_cnn_onednn(runs: dict[str, dict]) -> dict:
    off, on = runs["bench_03_onednn_off"], runs["bench_03_onednn_on"]
    train, infer = "train_images_per_second", "inference_images_per_second"
    return {
        train: {"off": off[train], "on": on[train]},
        infer: {"off": off[infer], "on": on[infer]},
        "train_speedup": on[train] / off[train],
        "inference_speedup": on[infer] / off[infer],
        "train_gflops_on": on["train_gflops"],
        "fraction_of_fp32_peak": on["train_gflops"] / on["peak_fp32_gflops"],
    }


def _horovod_scaling(cores: int) -> list[Launch]:
    images = "512" if quick_mode() else "4000"
    layouts = dict.fromkeys([(1, cores), (cores, 1), (2 * cores, 1)])
    return [Launch("scripts/cnn_mnist_hvd.py",
                   ["--fresh", "--epochs", 2, "--train-images", images, "--checkpoint-dir",
                    f"checkpoints/bench_04_{r}x{t}", "--name", f"bench_04_{r}x{t}"],
                   r, t, f"bench_04_{r}x{t}") for r, t in layouts]


def _summarize_horovod_scaling(runs: dict[str, dict]) -> dict:
    layouts = {name.removeprefix("bench_04_"): m for name, m in runs.items()}
    base = next(iter(layouts.values()))["train_images_per_second"]  # one rank, all cores as threads
    return {layout: {"images_per_second": m["train_images_per_second"],
                     "efficiency": m["train_images_per_second"] / base,
                     "test_accuracy": m["test_accuracy"], "weights_identical": m["weights_identical"]}
            for layout, m in layouts.items()}


def _kmeans(cores: int) -> list[Launch]:
    scale = "1" if quick_mode() else "3"
    layouts = dict.fromkeys([(1, cores), (cores, 1), (2 * cores, 1)])
    return [Launch("scripts/quantize_colors.py",
                   ["--scale", scale, "--init", "sample", "--name", f"bench_05_{r}x{t}",
                    "--out", f"results/bench_05_{r}x{t}.png", *(["--compare-sklearn"] if r == 1 else [])],
                   r, t, f"bench_05_{r}x{t}") for r, t in layouts]


def _summarize_kmeans(runs: dict[str, dict]) -> dict:
    layouts = {name.removeprefix("bench_05_"): m for name, m in runs.items()}
    single = next(iter(layouts.values()))  # one rank, all cores as threads, with scikit-learn beside it
    return {
        "pixels": single["pixels"], "colors": single["colors"], "iterations": single["iterations"],
        "iterate_seconds_by_layout": {layout: m["seconds"]["iterate"] for layout, m in layouts.items()},
        "sklearn_seconds": single["sklearn"]["seconds"],
        "daal4py_speedup_over_sklearn": single["sklearn"]["seconds"] / single["seconds"]["iterate"],
        "inertia_relative_difference":
            abs(single["sklearn"]["inertia"] - single["inertia"]) / single["inertia"],
    }


def _tf_bench(cores: int) -> tuple[list[str], dict]:
    defaults = tfbench.parser().parse_args([])  # the quick or full sizes of benchmarks/tf_bench.sh
    record = tfbench.run(model=defaults.model, batch_size=defaults.batch_size,
                         num_batches=defaults.num_batches, warmup_batches=defaults.warmup_batches,
                         data_format=defaults.data_format, repeats=defaults.repeats,
                         horovod_ranks=2, name="bench_06_tf_bench", cores=cores, echo=False,
                         indent=INDENT)
    files = [path for paths in record["results_files"].values() for path in paths]
    return [*files, "results/bench_06_tf_bench.json"], record["summary"]


def _collectives(cores: int) -> tuple[list[str], dict]:
    record = comms.imb_sweep(ranks=4, name="bench_06_imb", indent=INDENT)
    return ["results/bench_06_imb.json"], record["fits"]


def _fusion(cores: int) -> tuple[list[str], dict]:
    record = comms.fusion_sweep(ranks=2, name="bench_06_fusion", indent=INDENT)
    rates = {f"threshold_{r['HOROVOD_FUSION_THRESHOLD'] / 2**20:g}MiB_cycle_{r['HOROVOD_CYCLE_TIME']:g}ms":
             r["train_images_per_second"] for r in record["runs"]}
    default = next(r["train_images_per_second"] for r in record["runs"]
                   if all(r[k] == v for k, v in comms.HOROVOD_DEFAULTS.items()))
    fusion_off = next(v for k, v in rates.items() if k.startswith("threshold_0MiB_"))
    return [r["results_file"] for r in record["runs"]] + ["results/bench_06_fusion.json"], {
        "train_images_per_second": rates, "best_over_default": max(rates.values()) / default,
        "fusion_off_over_default": fusion_off / default}


ENTRIES = [
    Entry("mpi_layouts", "00", "matrix multiplies: ranks x threads layouts, oversubscription",
          launched(_mpi_layouts, _summarize_mpi_layouts)),
    Entry("int8_inference", "01", "MNIST CNN in TFLite: full INT8 vs FP32, batch 1 and 32",
          launched(_int8, _summarize_int8)),
    Entry("onednn_threads", "02", "TensorFlow's kernels vs oneDNN; intra-op threads; ranks vs threads",
          launched(_onednn_threads, _summarize_onednn_threads)),
    Entry("cnn_onednn", "03", "MNIST CNN: TensorFlow's kernels vs oneDNN, training and inference",
          launched(_cnn_onednn, _summarize_cnn_onednn)),
    Entry("horovod_scaling", "04", "MNIST CNN with Horovod: ranks x threads at equal cores",
          launched(_horovod_scaling, _summarize_horovod_scaling)),
    Entry("kmeans_daal4py", "05", "colour quantization: ranks x threads, daal4py vs scikit-learn",
          launched(_kmeans, _summarize_kmeans)),
    Entry("tf_bench", "06", "ResNet-50 training (benchmarks/tf_bench.sh): default vs optimized vs Horovod",
          _tf_bench),
    Entry("mpi_collectives", "06",
          "IMB-MPI1 Allreduce, Reduce_scatter, Allgather, Alltoall over message sizes", _collectives),
    Entry("horovod_fusion", "06", "Horovod's fusion threshold and cycle time on a short MNIST run", _fusion),
]


def run_entry(entry: Entry, cores: int) -> dict:
    files, summary = entry.measure(cores)
    return {"notebook": entry.notebook, "description": entry.description, "results_files": files,
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
        "int8_inference": ("INT8 / FP32, batch 1 (01)", lambda s: s["b1_t1"]["int8_over_fp32"]),
        "onednn_threads": ("oneDNN / Eigen, CNN training step (02)", lambda s: s["onednn_train_speedup"]),
        "cnn_onednn": ("oneDNN / Eigen, MNIST training (03)", lambda s: s["train_speedup"]),
        "kmeans_daal4py": ("daal4py / scikit-learn K-Means (05)",
                           lambda s: s["daal4py_speedup_over_sklearn"]),
        "tf_bench": ("optimized / default, ResNet-50 (06)", lambda s: s["optimized_over_default"]),
        "horovod_fusion": ("best / default Horovod fusion (06)", lambda s: s["best_over_default"]),
    }
    for entry, (label, get) in pick.items():
        if entry in measurements:
            found[label] = get(measurements[entry]["summary"])
    return found


def benchmark_records() -> dict[str, dict]:
    """Every `make bench` record to compare, by file: results/ (yours, and any copied in from other
    machines), then the full runs shipped in benchmarks/reference/."""
    found, seen = {}, set()
    for folder in (RESULTS, REFERENCE):
        for path in sorted(folder.glob("benchmarks_*.json")) if folder.is_dir() else []:
            record = json.loads(path.read_text())
            run = (record["machine"]["hostname"], record["machine"]["timestamp"])
            if run not in seen:  # the same run copied twice (the reference run on its own machine)
                seen.add(run)
                found[str(path.relative_to(ROOT))] = record
    return found


def comparison_figure(records: dict[str, dict]):
    """The side-by-side speed-ups of several machines (or runs), grouped by optimization."""
    import matplotlib.pyplot as plt
    import numpy as np

    ratios = {path: speedups(record["measurements"]) for path, record in records.items()}
    labels = list(dict.fromkeys(label for found in ratios.values() for label in found))
    fig, ax = plt.subplots(figsize=(11, 1.5 + 0.5 * len(labels) * max(1, len(records)) ** 0.5))
    height = 0.8 / max(1, len(records))
    for number, (path, found) in enumerate(ratios.items()):
        machine = records[path]["machine"]
        name = (f"{machine['hostname']}: {machine['cpu']['model']}, {machine['cpu']['physical_cores']} cores"
                f"{' (quick)' if machine['quick_mode'] else ''}"
                f"{' [reference]' if path.startswith('benchmarks/reference/') else ''}")
        positions = np.arange(len(labels)) + number * height
        values = [found.get(label, np.nan) for label in labels]
        bars = ax.barh(positions, values, height=height, label=name)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.2f}x" for v in values], padding=2, fontsize=8)
    ax.set_yticks(np.arange(len(labels)) + height * (len(records) - 1) / 2, labels)
    ax.axvline(1, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set(xlabel="speed-up, measured side by side on each machine",
           title="The same optimizations, machine by machine")
    ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.12)
    fig.tight_layout()
    return fig


def summary_figure(record: dict):
    """ResNet-50 images/s beside the workshop's, and every side-by-side speed-up, in one figure."""
    import matplotlib.pyplot as plt

    measurements = record["measurements"]
    ratios = speedups(measurements)
    panels = ("tf_bench" in measurements) + bool(ratios)
    fig, axes = plt.subplots(1, max(1, panels), figsize=(14 if panels > 1 else 8, 4.2), squeeze=False)
    axes = list(axes[0])
    if "tf_bench" in measurements:
        ax = axes.pop(0)
        summary = measurements["tf_bench"]["summary"]
        workshop = summary["workshop"]
        labels = ["workshop\ndefault", "workshop\noptimized", *[f"here\n{n}" for n in summary["rows"]]]
        values = [workshop["default"], workshop["optimized"],
                  *[row["median"] for row in summary["rows"].values()]]
        bars = ax.bar(labels, values, color=["#999999", "#999999", *["#0071c5"] * len(summary["rows"])])
        ax.bar_label(bars, fmt="%.2f", padding=2)
        ax.set(ylabel="images/s", title=f"ResNet-50 training, batch "
               f"{next(iter(summary['rows'].values()))['batch_size']} per rank (median of runs)")
        ax.margins(y=0.15)
    if ratios:
        ax = axes.pop(0)
        bars = ax.barh(list(ratios), list(ratios.values()), color="#0071c5")
        ax.bar_label(bars, fmt="%.2fx", padding=2)
        ax.axvline(1, color="black", lw=0.8)
        ax.invert_yaxis()
        ax.set(xlabel="speed-up, measured side by side in this run",
               title="What each optimization bought here")
        ax.margins(x=0.15)
    cpu = record["machine"]["cpu"]
    fig.suptitle(f"{record['machine']['hostname']}: {cpu['model']}, {cpu['physical_cores']} cores"
                 + (" (quick mode)" if record["machine"]["quick_mode"] else ""), fontsize=10)
    fig.tight_layout()
    return fig


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
    table = RESULTS / f"{name}.md"
    table.write_text(markdown(record))
    figure = RESULTS / f"{name}.png"
    summary_figure(record).savefig(figure, dpi=110)
    print(f"wrote {', '.join(str(p.relative_to(RESULTS.parent)) for p in (path, table, figure))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
