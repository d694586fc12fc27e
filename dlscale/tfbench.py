"""benchmarks/tf_bench.sh: the workshop's "default vs optimized" TensorFlow table, measured here.

    python -m dlscale.tfbench --model resnet50 --batch-size 16 --num-batches 10 --repeats 3

Configurations, each launched as its own process (scripts/tf_bench.py) and repeated, taking turns
so that a noisy neighbour slows all of them alike:
  default     oneDNN off, TensorFlow chooses its thread pools, NHWC (its own kernels' only layout)
  optimized   oneDNN on, intra-op threads = cores, one inter-op thread, --data-format
  horovod     the optimized settings on --horovod-ranks ranks sharing the cores, gradients allreduced
The table gives the median images/s with the spread (lowest-highest) and the optimized/default
ratio, beside the workshop's published 3.84 vs 17.69 img/s; results/NAME.json names every run's
own record (results/NAME_CONFIGURATION_N.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

from . import cli
from .cpu import usable_cores
from .env import results_dir, shown
from .launch import mpirun
from .rank import threads_per_rank
from .results import read_results, write_results
from .roofline import nominal_gflops

SCRIPT = "scripts/tf_bench.py"
WORKSHOP = {"default": 3.84, "optimized": 17.69, "network": "ResNet-50",
            "source": "the 2019 workshop's slides (Intel Optimization for TensorFlow on a Xeon server)"}


@dataclass
class Configuration:
    name: str
    environment: str  # the table's first column
    ranks: int
    threads: int
    onednn: bool
    args: list


def configurations(cores: int, data_format: str, horovod_ranks: int) -> list[Configuration]:
    chosen = [
        Configuration("default", "default (oneDNN off, TensorFlow's threads, NHWC)", 1, cores, False,
                      ["--threads", 0, "--inter-threads", 0, "--data-format", "channels_last"]),
        Configuration("optimized", f"optimized (oneDNN on, {cores} intra / 1 inter threads, "
                      f"{'NCHW' if data_format == 'channels_first' else 'NHWC'})", 1, cores, True,
                      ["--threads", cores, "--inter-threads", 1, "--data-format", data_format]),
    ]
    if horovod_ranks > 1:
        threads = threads_per_rank(horovod_ranks, cores)
        environment = f"optimized, Horovod on {horovod_ranks} ranks x {threads} thread{'s' * (threads > 1)}"
        chosen.append(Configuration("horovod", environment, horovod_ranks, threads, True,
                                    ["--threads", threads, "--inter-threads", 1,
                                     "--data-format", data_format]))
    return chosen


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "lowest": min(values), "highest": max(values),
            "runs": len(values)}


def summarize(runs: dict[str, list[dict]]) -> dict:
    """{configuration: [scripts/tf_bench.py results, one per repeat]} -> the table's numbers."""
    rows = {name: spread([r["images_per_second"] for r in results]) | {
                "batch_size": results[0]["batch_size"], "model": results[0]["model"],
                "onednn": results[0]["tensorflow"]["onednn"],
                "train_gflops": statistics.median(r["train_gflops"] for r in results),
                "nominal_fp32_gflops": nominal_gflops(results[0])}
            for name, results in runs.items()}
    summary = {"rows": rows,
               "optimized_over_default": rows["optimized"]["median"] / rows["default"]["median"],
               "workshop": WORKSHOP | {"ratio": WORKSHOP["optimized"] / WORKSHOP["default"]}}
    if "horovod" in rows:
        summary["horovod_over_optimized"] = rows["horovod"]["median"] / rows["optimized"]["median"]
    return summary


def table(summary: dict) -> str:
    """The workshop's table (Environment | Network | Batch Size | Images/Second) as markdown."""
    lines = ["| Environment | Network | Batch Size | Images/Second (median, lowest-highest) |",
             "|---|---|---|---|"]
    for name, row in summary["rows"].items():
        lines.append(f"| {summary['environments'][name]} | {row['model']} | {row['batch_size']} per rank | "
                     f"{row['median']:.2f} ({row['lowest']:.2f}-{row['highest']:.2f}, {row['runs']} runs) |")
    workshop = summary["workshop"]
    lines.append(f"| workshop, default | {workshop['network']} | | {workshop['default']:.2f} |")
    lines.append(f"| workshop, optimized | {workshop['network']} | | {workshop['optimized']:.2f} |")
    lines.append("")
    lines.append(f"optimized / default: {summary['optimized_over_default']:.2f}x here, "
                 f"{workshop['ratio']:.2f}x in the workshop")
    if "horovod_over_optimized" in summary:
        lines.append(f"Horovod / optimized on one rank, same cores: {summary['horovod_over_optimized']:.2f}x")
    return "\n".join(lines) + "\n"


def run(*, model: str, batch_size: int, num_batches: int, warmup_batches: int, data_format: str,
        repeats: int, horovod_ranks: int, name: str, image_size: int | None = None,
        cores: int | None = None, echo: bool = True, indent: str = "") -> dict:
    """Run every configuration `repeats` times, taking turns; write results/NAME.json; return it."""
    cores = cores or usable_cores()
    chosen = configurations(cores, data_format, horovod_ranks)
    common = ["--model", model, "--batch-size", batch_size, "--num-batches", num_batches,
              "--warmup-batches", warmup_batches, *(["--image-size", image_size] if image_size else [])]
    names: dict[str, list[str]] = {c.name: [] for c in chosen}  # each configuration's results records
    total = repeats * len(chosen)
    for repeat in range(repeats):
        for number, config in enumerate(chosen, 1):
            run_name = f"{name}_{config.name}_{repeat + 1}"
            print(f"{indent}[{repeat * len(chosen) + number}/{total}] {config.environment}, "
                  f"run {repeat + 1}/{repeats}", flush=True)
            done = mpirun(SCRIPT, *common, *config.args, "--name", run_name, ranks=config.ranks,
                          threads=config.threads, genv={"TF_ENABLE_ONEDNN_OPTS": int(config.onednn)},
                          echo=echo, timeout=3600)
            measured = read_results(run_name)["measurements"]
            print(f"{indent}      {measured['images_per_second']:.2f} img/s "
                  f"({done.seconds:.0f} s with start-up)", flush=True)
            names[config.name].append(run_name)
    runs = {config: [read_results(run)["measurements"] for run in ns] for config, ns in names.items()}
    summary = summarize(runs) | {"environments": {c.name: c.environment for c in chosen}}
    record = {"summary": summary, "runs": names, "table": table(summary)}
    write_results(name, record, ranks=1, threads_per_rank=cores)
    return record


def parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__, name="tf_bench")
    p.prog = "benchmarks/tf_bench.sh"
    cli.add_tf_bench_workload(p)  # --data-format: the layout of the optimized runs
    p.add_argument("--repeats", type=cli.positive(int), default=cli.sized(3, 2),
                   help="runs of each configuration")
    p.add_argument("--horovod-ranks", type=int, default=2,
                   help="ranks of the Horovod run (0 or 1 leaves it out)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    record = run(model=args.model, batch_size=args.batch_size, num_batches=args.num_batches,
                 warmup_batches=args.warmup_batches, data_format=args.data_format, repeats=args.repeats,
                 horovod_ranks=args.horovod_ranks, name=args.name, image_size=args.image_size)
    print()
    print(record["table"], end="")
    print(f"wrote {shown(results_dir() / f'{args.name}.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
