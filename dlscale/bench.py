"""`make bench`: run every benchmark entry the notebooks define, and record them with the machine.

    python -m dlscale.bench                 # full sizes (minutes)
    DLSCALE_QUICK=1 python -m dlscale.bench # smoke sizes: proves every entry works
    python -m dlscale.bench cnn_onednn      # only some entries

Each entry launches course scripts under mpirun (results go to results/bench_*.json) and
summarizes them; configurations are compared as ratios measured side by side in the same run.
Everything lands in results/benchmarks_HOSTNAME.json and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from .cpu import usable_cores
from .env import quick_mode
from .launch import mpirun
from .results import RESULTS, machine_facts, read_results, write_results


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
    launches: Callable[[int], list[Launch]]  # usable cores -> what to run
    summarize: Callable[[dict[str, dict]], dict]  # {results name: measurements} -> summary


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


ENTRIES = [
    Entry("mpi_layouts", "00", "matrix multiplies: ranks x threads layouts, oversubscription",
          _mpi_layouts, _summarize_mpi_layouts),
    Entry("int8_inference", "01", "MNIST CNN in TFLite: full INT8 vs FP32, batch 1 and 32",
          _int8, _summarize_int8),
    Entry("onednn_threads", "02", "TensorFlow's kernels vs oneDNN; intra-op threads; ranks vs threads",
          _onednn_threads, _summarize_onednn_threads),
    Entry("cnn_onednn", "03", "MNIST CNN: TensorFlow's kernels vs oneDNN, training and inference",
          _cnn_onednn, _summarize_cnn_onednn),
    Entry("horovod_scaling", "04", "MNIST CNN with Horovod: ranks x threads at equal cores",
          _horovod_scaling, _summarize_horovod_scaling),
    Entry("kmeans_daal4py", "05", "colour quantization: ranks x threads, daal4py vs scikit-learn",
          _kmeans, _summarize_kmeans),
]


def run_entry(entry: Entry, cores: int) -> dict:
    launches = entry.launches(cores)
    for launch in launches:
        mpirun(launch.script, *launch.args, ranks=launch.ranks, threads=launch.threads, genv=launch.genv,
               echo=False, timeout=3600)
    runs = {launch.name: read_results(launch.name)["measurements"] for launch in launches}
    return {"notebook": entry.notebook, "description": entry.description,
            "results_files": [f"results/{launch.name}.json" for launch in launches],
            "summary": entry.summarize(runs)}


def markdown(record: dict) -> str:
    cpu = record["machine"]["cpu"]
    lines = [f"# Benchmarks on {record['machine']['hostname']}", "",
             f"{cpu['model']}, {cpu['physical_cores']} cores, clock {cpu['clock_ghz'] or 0:.2f} GHz; "
             f"quick mode: {record['machine']['quick_mode']}; {record['machine']['timestamp']}", "",
             "| entry | notebook | measured |", "|---|---|---|"]
    for name, entry in record["measurements"].items():
        lines.append(f"| {name} | {entry['notebook']} | {_flatten(entry['summary'])} |")
    return "\n".join(lines) + "\n"


def _flatten(summary: dict, prefix: str = "") -> str:
    parts = []
    for key, value in summary.items():
        if isinstance(value, dict):
            parts.append(_flatten(value, f"{prefix}{key}."))
        else:
            shown = f"{value:.3g}" if isinstance(value, float) else value
            parts.append(f"{prefix}{key} = {shown}")
    return "; ".join(parts)


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
    table = RESULTS / f"{name}.md"
    table.write_text(markdown({"measurements": measured, "machine": machine_facts()}))
    print(f"wrote {path.relative_to(RESULTS.parent)} and {table.relative_to(RESULTS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
