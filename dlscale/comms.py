"""Notebook 06: what data-parallel training spends on communication, measured on this machine.

    python -m dlscale.comms imb      # benchmarks/imb_collectives.sh: IMB-MPI1 over message sizes
    python -m dlscale.comms fusion   # Horovod's fusion threshold and cycle time on a short MNIST run

imb_sweep() runs the Intel MPI Benchmarks that ship with impi-rt (IMB-MPI1) for the collectives of
the workshop's MLSL slide: Allreduce (or Reduce_scatter + Allgather) for data parallelism,
Alltoall for model parallelism, on 2 up to --ranks ranks. fit_latency_bandwidth() reads each
curve as t(n) = latency + n / bandwidth; below n_half = latency x bandwidth bytes a message is
latency-bound (its size hardly matters), above it bandwidth-bound (time grows with size).
fusion_sweep() trains scripts/cnn_mnist_hvd.py with HOROVOD_FUSION_THRESHOLD and
HOROVOD_CYCLE_TIME varied one at a time. summarize_horovod_timeline() reads what Horovod's own
timeline says each step spent on negotiating and reducing. dlscale.plots draws all three.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from .env import ROOT, quick_mode, results_dir, shown
from .experiments import training_images
from .launch import mpirun, shown_command
from .results import read_results, write_results

COLLECTIVES = ("Allreduce", "Reduce_scatter", "Allgather", "Alltoall")
HOROVOD_DEFAULTS = {"HOROVOD_FUSION_THRESHOLD": 128 * 2**20, "HOROVOD_CYCLE_TIME": 1.0}  # Horovod >= 0.21


def data_parallel_plan(ranks: int, parameters: int, base_lr: float, images: int, batch: int) -> dict:
    """One data-parallel training step on `ranks` ranks: what notebook 04's first exercise computes.

    A bandwidth-optimal allreduce (ring, or Rabenseifner's reduce-scatter + allgather) sends, and
    receives, 2 (n - 1) / n times the FP32 gradients per rank; a parameter server receives n times.
    """
    gradients = 4 * parameters
    return {"learning_rate": base_lr * ranks, "steps_per_epoch": images // ranks // batch,
            "bytes_sent_per_rank": round(2 * (ranks - 1) / ranks * gradients),
            "bytes_into_parameter_server": ranks * gradients}


def parse_imb(lines: list[str]) -> tuple[dict[str, dict[str, list[dict]]], list[str]]:
    """IMB-MPI1's tables -> ({collective: {processes: [{bytes, repetitions, t_min/t_max/t_avg_us}]}},
    the tables IMB cut short at its time limit, as "Collective on N ranks"). PingPong's one time
    (half a round trip) fills all three times."""
    tables: dict[str, dict[str, list[dict]]] = {}
    cut_short = []
    rows = None
    benchmark = processes = None
    for line in lines:
        if match := re.match(r"# Benchmarking (\S+)", line):
            benchmark = match.group(1)
        elif (match := re.match(r"# #processes = (\d+)", line)) and benchmark:
            processes = match.group(1)
            rows = tables.setdefault(benchmark, {}).setdefault(processes, [])
        elif rows is not None and "time-out" in line:
            cut_short.append(f"{benchmark} on {processes} ranks")
        elif rows is not None and (numbers := line.split()) and len(numbers) in (4, 5) \
                and numbers[0].isdigit():
            if len(numbers) == 5:  # a collective: #bytes #repetitions t_min t_max t_avg
                size, repetitions, t_min, t_max, t_avg = numbers
            else:  # PingPong: #bytes #repetitions t (half a round trip) Mbytes/sec
                size, repetitions, t_avg, _ = numbers
                t_min = t_max = t_avg
            rows.append({"bytes": int(size), "repetitions": int(repetitions), "t_min_us": float(t_min),
                         "t_max_us": float(t_max), "t_avg_us": float(t_avg)})
        elif not line.strip():
            rows = None  # a blank line ends a table
    return tables, cut_short


def fit_latency_bandwidth(rows: list[dict]) -> dict:
    """t(n) = latency + n / bandwidth, from the small messages (latency: the median time of those up
    to 256 bytes, robust to a noisy one) and the largest (bandwidth)."""
    ordered = sorted(rows, key=lambda r: r["bytes"])
    small = max(256, ordered[0]["bytes"])
    latency_us = statistics.median(r["t_avg_us"] for r in ordered if r["bytes"] <= small)
    # The slope of the largest messages, where latency is negligible; a sweep that stops while
    # still latency-bound (times no longer than the latency) has no bandwidth to read.
    slopes = [r["bytes"] / (r["t_avg_us"] - latency_us) * 1e6 for r in ordered[-3:]
              if r["t_avg_us"] > latency_us]
    if not slopes:
        return {"latency_us": latency_us, "bandwidth_gb_per_s": None, "n_half_bytes": None}
    bandwidth = statistics.median(slopes)  # bytes per second
    return {"latency_us": latency_us, "bandwidth_gb_per_s": bandwidth / 1e9,
            "n_half_bytes": latency_us * 1e-6 * bandwidth}


def imb_run(benchmarks=COLLECTIVES, ranks: int = 2, max_log: int = 20, seconds_per_size: float = 10,
            options: list[str] | None = None, prefix: list[str] | None = None,
            genv: dict | None = None, echo: bool = False) -> dict:
    """One IMB-MPI1 launch of `benchmarks` on 2..ranks ranks over 1 B .. 2**max_log B, read:
    {"tables", "fits", "cut_short", "seconds", "startup"}. `options` and `prefix` go to
    dlscale.mpirun (a hostfile, a launcher; a command that runs mpirun on another node).

    IMB repeats small messages many times and large ones a few (about 40 MB per size in all);
    `seconds_per_size` only caps a size that is slower still (IMB's own limit, 10 s by default).
    """
    # One rank per core at most is not required: IMB measures whatever layout it is given, and
    # oversubscribed ranks show what busy-polling MPI costs when cores are shared.
    done = mpirun("IMB-MPI1", *benchmarks, "-npmin", 2, "-msglog", f"0:{max_log}", "-time", seconds_per_size,
                  "-mem", 4, "-zero_size", "off", ranks=ranks, threads=1, prepend_rank=False, echo=echo,
                  genv=genv, options=options, prefix=prefix, timeout=3600)
    tables, cut_short = parse_imb(done.output)
    missing = [c for c in benchmarks if c not in tables]
    if missing:
        raise RuntimeError(f"IMB-MPI1 printed no table for {missing}; its output ends:\n"
                           + "\n".join(done.output[-20:]))
    fits = {collective: {processes: fit_latency_bandwidth(rows) for processes, rows in by_ranks.items()}
            for collective, by_ranks in tables.items()}
    return {"tables": tables, "fits": fits, "cut_short": cut_short, "seconds": done.seconds,
            "startup": mpi_startup(done.output), "command": shown_command(done.command)}


def fit_line(fit: dict) -> str:
    """A fit as words: latency, bandwidth and where a message turns bandwidth-bound."""
    if not fit["n_half_bytes"]:
        return f"latency {fit['latency_us']:.1f} us, still latency-bound at the largest size"
    return (f"latency {fit['latency_us']:.1f} us, bandwidth {fit['bandwidth_gb_per_s']:.2f} GB/s, "
            f"latency-bound below {fit['n_half_bytes'] / 1024:.0f} KiB")


def imb_sweep(ranks: int = 4, max_log: int | None = None, seconds_per_size: float = 10,
              name: str = "imb_collectives", echo: bool = False, indent: str = "") -> dict:
    """Run IMB-MPI1 for COLLECTIVES on 2..ranks ranks over 1 B .. 2**max_log B; write results/NAME.json."""
    max_log = max_log or (24 if quick_mode() else 27)
    print(f"{indent}IMB-MPI1 {' '.join(COLLECTIVES)}: 2 and {ranks} ranks, "
          f"1 B to {2**max_log / 2**20:g} MiB ...", flush=True)
    run = imb_run(COLLECTIVES, ranks, max_log, seconds_per_size, echo=echo)
    if run["cut_short"]:
        print(f"{indent}  IMB stopped these sweeps early, at its time limit: {', '.join(run['cut_short'])}")
    for collective, by_ranks in run["fits"].items():
        for processes, fit in by_ranks.items():
            print(f"{indent}  {collective:>14} on {processes} ranks: {fit_line(fit)}")
    record = {"tables": run["tables"], "fits": run["fits"], "ranks": ranks, "max_bytes": 2**max_log,
              "cut_short": run["cut_short"], "seconds": run["seconds"]}
    write_results(name, record, ranks=ranks, threads_per_rank=1)
    return record


def lines_per_rank(lines: list[str]) -> list[str]:
    """Output of `mpirun -prepend-rank` put back together rank by rank. The launcher writes "[rank] "
    before every piece it reads from a rank, and a rank that writes a line in several pieces (as
    Intel MPI's start-up report does) can have the marker land inside it: "node1 [0] {0}". Text
    before any marker counts as its own stream."""
    streams: dict[str, list[str]] = {}
    pieces = re.split(r"\[(\d+)\] ", "\n".join(lines))
    streams["launcher"] = [pieces[0]]
    for rank, piece in zip(pieces[1::2], pieces[2::2]):
        streams.setdefault(rank, []).append(piece)
    return [line for stream in streams.values() for line in "".join(stream).splitlines()]


def mpi_startup(lines: list[str]) -> dict:
    """What Intel MPI said at start-up with I_MPI_DEBUG=5: the libfabric provider between nodes
    (none when every rank is on one node: shared memory only), its tuning file (named after the
    fabrics: shm, or shm-ofi), and the node each rank runs on (its pinning table)."""
    facts: dict = {"provider": None, "tuning_file": None, "node_per_rank": {}}
    for line in lines_per_rank(lines):
        if match := re.search(r"MPI startup\(\): libfabric provider: (\S+)", line):
            facts["provider"] = match.group(1)
        elif match := re.search(r"MPI startup\(\): Load tuning file: \"?([^\"]+)\"?", line):
            facts["tuning_file"] = Path(match.group(1).strip()).name
        elif match := re.search(r"MPI startup\(\): (\d+)\s+\d+\s+(\S+)\s+\{", line):  # rank pid node {cpus}
            facts["node_per_rank"][match.group(1)] = match.group(2)
    return facts


def fabric_words(startup: dict) -> str:
    if startup["provider"] is None:
        return f"shared memory only (tuning file {startup['tuning_file']})"
    return f"libfabric's {startup['provider']} provider between nodes (tuning file {startup['tuning_file']})"


NETWORK_BENCHMARKS = ("PingPong", "Allreduce", "Allgather")
LAYOUTS = {"one node": "shared memory", "two nodes": "network"}


def network_vs_shared_memory(cluster, max_log: int | None = None, name: str = "minicluster_imb",
                             benchmarks=NETWORK_BENCHMARKS, indent: str = "") -> dict:
    """IMB on 2 ranks of the mini cluster (dlscale.minicluster), side by side: both ranks on node1
    (Intel MPI uses shared memory) and one rank on each node (the network between them), with
    I_MPI_DEBUG=5 for the fabric Intel MPI chose and the bytes node1's network interface carried
    in each run. Writes results/NAME.json."""
    max_log = max_log or (20 if quick_mode() else 24)
    layouts = {"one node": ["-hosts", "node1", "-ppn", "2"],
               "two nodes": [*cluster.hostfile_options(), "-ppn", "1"]}
    runs = {}
    for layout, options in layouts.items():
        before = cluster.interface_bytes("node1")
        run = imb_run(benchmarks, 2, max_log, options=options, prefix=cluster.login, genv={"I_MPI_DEBUG": 5})
        run["interface_bytes"] = cluster.interface_bytes("node1") - before
        print(f"{indent}{layout}: $ {run['command']}", flush=True)
        runs[layout] = run
    record = {"runs": runs, "benchmarks": list(benchmarks), "ranks": 2, "max_bytes": 2**max_log}
    write_results(name, record, ranks=2, threads_per_rank=1)
    return record


def network_lines(record: dict) -> list[str]:
    """What a network_vs_shared_memory record says, line by line (the notebook prints these)."""
    one, two = record["runs"]["one node"], record["runs"]["two nodes"]
    lines = []
    for layout, run in record["runs"].items():
        nodes = sorted(run["startup"]["node_per_rank"].items(), key=lambda item: int(item[0]))
        placement = ", ".join(f"rank {r} on {node}" for r, node in nodes)
        lines.append(f"{layout}: {placement}; Intel MPI's fabric: {fabric_words(run['startup'])}; "
                     f"node1's network interface carried {run['interface_bytes'] / 1e6:.1f} MB")
    for benchmark in record["benchmarks"]:
        a, b = one["fits"][benchmark]["2"], two["fits"][benchmark]["2"]
        lines.append(f"{benchmark:>9}, shared memory: {fit_line(a)}")
        lines.append(f"{'':>9}  network:       {fit_line(b)}")
        if a["bandwidth_gb_per_s"] and b["bandwidth_gb_per_s"]:
            latency = b["latency_us"] / a["latency_us"]
            bandwidth = b["bandwidth_gb_per_s"] / a["bandwidth_gb_per_s"]
            lines.append(f"{'':>9}  the network's latency is {latency:.1f}x, its bandwidth {bandwidth:.2f}x "
                         "shared memory's")
    return lines


def network_as_collectives(record: dict) -> dict:
    """A network_vs_shared_memory record shaped as an IMB sweep, for dlscale.plots.collectives:
    one panel per benchmark, one curve per layout."""
    names = {"one node": "one node (shared memory)", "two nodes": "two nodes (network)"}
    return {"tables": {b: {names[layout]: run["tables"][b]["2"] for layout, run in record["runs"].items()}
                       for b in record["benchmarks"]},
            "fits": {b: {names[layout]: run["fits"][b]["2"] for layout, run in record["runs"].items()}
                     for b in record["benchmarks"]},
            "max_bytes": record["max_bytes"]}


def model_time_us(fit: dict, n_bytes: float) -> float:
    """t(n) = latency + n / bandwidth, in microseconds, from a fit_latency_bandwidth() fit."""
    return fit["latency_us"] + n_bytes / (fit["bandwidth_gb_per_s"] * 1e9) * 1e6


REFERENCE_NETWORK = "minicluster_imb"  # benchmarks/reference/NAME.json: the reference run's record


def reference_network_record() -> dict:
    """The reference run's network_vs_shared_memory record (with its machine), shipped with the
    course, for a notebook that cannot start the mini cluster (it needs root)."""
    return read_results(REFERENCE_NETWORK, folder=ROOT / "benchmarks" / "reference")


def fusion_settings() -> list[dict[str, float]]:
    """Horovod's two knobs, each varied with the other at its default."""
    thresholds = [0, 2**20, HOROVOD_DEFAULTS["HOROVOD_FUSION_THRESHOLD"]] if quick_mode() else \
        [0, 2**16, 2**20, 2**22, HOROVOD_DEFAULTS["HOROVOD_FUSION_THRESHOLD"]]
    cycles = [1.0, 20.0] if quick_mode() else [0.2, 1.0, 5.0, 20.0, 50.0]
    settings = [{"HOROVOD_FUSION_THRESHOLD": t, "HOROVOD_CYCLE_TIME": HOROVOD_DEFAULTS["HOROVOD_CYCLE_TIME"]}
                for t in thresholds]
    settings += [{"HOROVOD_FUSION_THRESHOLD": HOROVOD_DEFAULTS["HOROVOD_FUSION_THRESHOLD"],
                  "HOROVOD_CYCLE_TIME": c} for c in cycles if c != HOROVOD_DEFAULTS["HOROVOD_CYCLE_TIME"]]
    return settings


def fusion_sweep(ranks: int = 2, train_images: int | None = None, name: str = "horovod_fusion",
                 echo: bool = False, indent: str = "") -> dict:
    """Train the MNIST CNN for 2 short epochs under each fusion setting; write results/NAME.json."""
    train_images = train_images or training_images()
    settings = fusion_settings()
    runs = []
    for number, setting in enumerate(settings, 1):
        run_name = f"{name}_{number}"
        threshold, cycle = setting["HOROVOD_FUSION_THRESHOLD"], setting["HOROVOD_CYCLE_TIME"]
        print(f"{indent}[{number}/{len(settings)}] fusion threshold {threshold / 2**20:g} MiB, "
              f"cycle time {cycle:g} ms", flush=True)
        mpirun("scripts/cnn_mnist_hvd.py", "--fresh", "--epochs", 2, "--train-images", train_images,
               "--checkpoint-dir", f"checkpoints/{run_name}", "--name", run_name, ranks=ranks,
               genv=setting,
               echo=echo, timeout=3600)
        measured = read_results(run_name)["measurements"]
        print(f"{indent}      {measured['train_images_per_second']:.0f} img/s", flush=True)
        runs.append(setting | {"train_images_per_second": measured["train_images_per_second"],
                               "results_name": run_name})
    record = {"ranks": ranks, "train_images": train_images, "defaults": HOROVOD_DEFAULTS, "runs": runs}
    write_results(name, record, ranks=ranks)
    return record


def summarize_horovod_timeline(path) -> dict[str, dict[str, float]]:
    """Wall-clock time and count of each activity in a HOROVOD_TIMELINE file (Chrome trace format).

    Activities nest per tensor: NEGOTIATE_ALLREDUCE (waiting until every rank has the tensor
    ready), then ALLREDUCE, which holds MEMCPY_IN_FUSION_BUFFER, MPI_ALLREDUCE and
    MEMCPY_OUT_FUSION_BUFFER. Tensors fused into one buffer share one allreduce, so their events
    overlap: each activity's time is the length of the union of its intervals, not their sum.
    Returns {activity: {"ms": wall-clock time, "count": events}}, longest first.
    """
    text = Path(path).read_text().rstrip().rstrip(",")
    events = json.loads(text if text.endswith("]") else text + "]")  # a live run has no closing ]
    open_events: dict[int, list[tuple[str, float]]] = {}
    intervals: dict[str, list[tuple[float, float]]] = {}
    for event in events:
        stack = open_events.setdefault(event.get("pid", 0), [])
        if event.get("ph") == "B":
            stack.append((event["name"], event["ts"]))
        elif event.get("ph") == "E" and stack:
            name, start = stack.pop()
            intervals.setdefault(name, []).append((start, event["ts"]))
    totals = {}
    for name, spans in intervals.items():
        covered, reach = 0.0, float("-inf")
        for start, end in sorted(spans):
            covered += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        totals[name] = {"ms": covered / 1000, "count": len(spans)}
    return dict(sorted(totals.items(), key=lambda item: -item[1]["ms"]))


def against_horovod_timeline(predicted_ms: float, run: str = "04_timeline_run",
                             timeline: str = "04_timeline.json") -> float | None:
    """Notebook 06 against notebook 04: the IMB model's allreduce time for the CNN's gradients
    beside what Horovod's timeline measured in MPI_Allreduce per training step. Prints both and a
    verdict (one fixed form, masked in tests/sanitize.cfg); returns the measured ms per step."""
    path = results_dir() / timeline
    if not path.exists():
        print("notebook 04's Horovod timeline is not in this output folder yet: run notebook 04 to compare")
        return None
    m = read_results(run)["measurements"]
    steps = m["steps_per_epoch"] * (m["epochs_done"] - m["resumed_from_epoch"])
    measured = summarize_horovod_timeline(path).get("MPI_ALLREDUCE", {"ms": 0.0})["ms"] / steps
    print(f"MNIST CNN, 2 ranks: {predicted_ms:.2f} ms per allreduce from the IMB model; "
          f"{measured:.2f} ms of MPI_Allreduce per step in notebook 04's Horovod timeline")
    ratio = measured / predicted_ms
    print("verdict: " + ("they agree within a factor of 2: IMB's curve predicts Horovod's allreduce."
                         if 0.5 <= ratio <= 2 else
                         "they differ by more than a factor of 2: in training, the ranks also compute "
                         "on the same cores, and Horovod's buffers are not IMB's warm, repeated ones."))
    return measured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("imb", "fusion"))
    p.add_argument("--ranks", type=int, default=None, help="ranks (default: 4 for imb, 2 for fusion)")
    args = p.parse_args(argv)
    if args.ranks is not None and args.ranks < 2:
        p.error(f"--ranks must be 2 or more: a collective needs partners, got {args.ranks}")
    if args.what == "imb":
        imb_sweep(ranks=args.ranks or 4)
        print(f"wrote {shown(results_dir() / 'imb_collectives.json')}")
    else:
        fusion_sweep(ranks=args.ranks or 2)
        print(f"wrote {shown(results_dir() / 'horovod_fusion.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
