"""Diagnostics for what surprises on a CPU: each runs anywhere and prints what it found as facts.

    from dlscale import surprises
    surprises.report_kmeans_code_paths()   # which code path daal4py and scikit-learn run here

K-Means: oneDAL (daal4py) picks one of its builds at start-up from the CPU's features; with
ONEDAL_VERBOSE=1 it prints that choice ("Processor optimization: ..."), and with MKL_VERBOSE=1 the
BLAS calls its Lloyd iterations make (blocks of pixels x colours x 3 channels: matrix multiplies
with an inner dimension of 3, where call overhead weighs more than arithmetic). scikit-learn runs
its own OpenMP kernels on top of the BLAS that threadpoolctl names, with the kernel architecture
that BLAS chose for this CPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

# Runs in a process of its own: both variables are read when oneDAL and oneMKL load.
DAAL4PY_PROBE = """
import numpy as np, daal4py as d4p
x = np.random.default_rng(0).random((20000, 3))
start = d4p.kmeans_init(16, method="plusPlusDense").compute(x)
d4p.kmeans(16, 2).compute(x, start.centroids)
"""
SKLEARN_PROBE = """
import json, numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_info
KMeans(16, n_init=1, max_iter=2).fit(np.random.default_rng(0).random((20000, 3)))
print("POOLS" + json.dumps([{k: p.get(k) for k in ("user_api", "internal_api", "version", "architecture",
                                                     "num_threads")} for p in threadpool_info()]))
"""


def kmeans_code_paths() -> dict:
    """{"onedal_dispatch": the instruction set oneDAL chose, "gemm_calls": BLAS matrix multiplies of
    two Lloyd iterations on 20,000 pixels and 16 colours, "gemm_shapes": their (m, n, k) shapes,
    "sklearn_pools": threadpoolctl's view of scikit-learn's OpenMP and BLAS}."""
    env = dict(os.environ, ONEDAL_VERBOSE="1", MKL_VERBOSE="1")
    done = subprocess.run([sys.executable, "-c", DAAL4PY_PROBE], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    daal = done.stdout + done.stderr  # oneDAL's lines go to one stream, oneMKL's to the other
    dispatch = re.search(r"Processor optimization:\s*(.+)", daal)
    shapes = re.findall(r"MKL_VERBOSE [DS]GEMM\(\w,\w,(\d+),(\d+),(\d+),", daal)
    sk = subprocess.run([sys.executable, "-c", SKLEARN_PROBE], capture_output=True, text=True, timeout=300,
                        check=True).stdout
    pools = json.loads(next(line[5:] for line in sk.splitlines() if line.startswith("POOLS")))
    return {"onedal_dispatch": dispatch.group(1).strip() if dispatch else None,
            "gemm_calls": len(shapes), "gemm_shapes": sorted({tuple(map(int, s)) for s in shapes}),
            "sklearn_pools": pools}


def report_kmeans_code_paths(found: dict | None = None) -> dict:
    """Print which code path each library runs on this CPU, and the rule that follows."""
    from .cpu import cpu_identity, isa

    found = found or kmeans_code_paths()
    vendor = cpu_identity()["vendor"]
    print(f"oneDAL (daal4py) chose: {found['onedal_dispatch'] or 'not reported'}")
    print(f"its Lloyd iterations called BLAS {found['gemm_calls']} time(s), shapes (m, n, k): "
          + ", ".join(map(str, found["gemm_shapes"][:4])))
    for pool in found["sklearn_pools"]:
        print(f"scikit-learn's {pool['user_api']}: {pool['internal_api']} {pool['version']}, "
              f"kernel {pool['architecture'] or '-'}, {pool['num_threads']} thread(s)")
    avx512 = isa()["avx512f"]
    chose_avx512 = "512" in (found["onedal_dispatch"] or "")
    if found["onedal_dispatch"] is None:
        print("verdict: oneDAL did not report its choice (ONEDAL_VERBOSE): compare the libraries by timing.")
    elif avx512 and not chose_avx512:
        print(f"verdict: this CPU ({vendor}) has AVX-512 but oneDAL runs its "
              f"{found['onedal_dispatch']} build: the library's dispatch, not the CPU, decides; "
              "measure both libraries on the learner's CPU before choosing one.")
    else:
        print("verdict: oneDAL runs the build for this CPU's widest vectors; "
              "differences from scikit-learn come from the algorithms and their threading.")
    return found


# ---------------------------------------------------------------------------------------------
# CNN inference: oneDNN against TensorFlow's own kernels, and where oneDNN's time goes.

# Runs in a process of its own: TensorFlow reads TF_ENABLE_ONEDNN_OPTS, and oneDNN ONEDNN_VERBOSE,
# when they load. argv: threads, images, repeats, then the batch sizes. With ONEDNN_VERBOSE set it
# predicts once per batch size between a MARK and an END line, so the trace's steady state (after
# the warm-up built the primitives) can be cut out.
INFERENCE_PROBE = """
import json, sys, time
import numpy as np
from dlscale import cnn
threads, images, repeats, *batches = map(int, sys.argv[1:])
cnn.configure_tensorflow(threads, 1)
model = cnn.build_model()
x = np.random.default_rng(0).random((images, 28, 28, 1), dtype=np.float32)
traced = bool(cnn.os.environ.get("ONEDNN_VERBOSE"))
seconds = {}
for batch in batches:
    model.predict(x[:2 * batch], batch_size=batch, verbose=0)  # warm-up: graph and primitives built
    if traced:
        print(f"MARK batch={batch} calls={images // batch}", flush=True)
        model.predict(x, batch_size=batch, verbose=0)
        print("END", flush=True)
        continue
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=batch, verbose=0)
        times.append(time.perf_counter() - start)
    seconds[batch] = min(times)
print("SECONDS" + json.dumps({"onednn": cnn.tensorflow_threads()["onednn"], "seconds": seconds}), flush=True)
"""

# oneDNN's primitives as the split names them: a Dense layer runs as an inner product, or as a
# plain matrix multiply (gemm_api, matmul) when TensorFlow calls oneDNN's sgemm for it.
PRIMITIVE_GROUPS = {"reorder": "reorders", "convolution": "convolutions", "inner_product": "dense",
                    "matmul": "dense", "gemm_api": "dense"}
SPLIT_ORDER = ("reorders", "convolutions", "dense", "other")


def trace_by_batch(text: str) -> dict[int, dict]:
    """Cut an INFERENCE_PROBE trace at its MARK lines: {batch: {"calls": predict steps, "ms": oneDNN's
    execution time by group, "created": primitives created, "cache_misses": those the primitive cache
    did not hold}}, each after the warm-up, so that creations are per call of a warm model."""
    from .onednn import parse_verbose

    found = {}
    steady = re.findall(r"^MARK batch=(\d+) calls=(\d+)$(.*?)^END$", text, flags=re.M | re.S)
    for batch, calls, trace in steady:
        info = parse_verbose(trace)
        ms = dict.fromkeys(SPLIT_ORDER, 0.0)
        for e in info["executions"]:
            ms[PRIMITIVE_GROUPS.get(e["primitive"], "other")] += e["ms"]
        found[int(batch)] = {"calls": int(calls), "ms": ms, "created": len(info["created"]),
                             "cache_misses": sum(c["cache"] == "cache_miss" for c in info["created"])}
    return found


def _probe(args: list, env: dict, timeout: float) -> str:
    done = subprocess.run([sys.executable, "-u", "-c", INFERENCE_PROBE, *map(str, args)],
                          env={**os.environ, **{k: str(v) for k, v in env.items()}},
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the inference probe failed ({env}):\n{done.stderr[-2000:]}")
    return done.stdout


def cnn_inference_paths(batches: tuple[int, ...] | None = None, images: int | None = None,
                        threads: int | None = None, timeout: float = 600) -> dict:
    """Time the course's CNN inference (model.predict, as cnn.evaluate does) with oneDNN off and on,
    then trace oneDNN (ONEDNN_VERBOSE=2: executions and creations) in a third process.

    Returns {"threads", "images", "batches", "isa", "version", "rows": {batch: {"off_seconds",
    "on_seconds", "ratio" (oneDNN's speed over TensorFlow's kernels), "ms_per_call" (oneDNN's traced
    time split into SPLIT_ORDER's groups), "creations_per_call", "cache_misses_per_call"}}}.
    The trace slows what it traces: its milliseconds split oneDNN's time, the untraced runs time it.
    """
    from .cli import sized
    from .cnn import INFERENCE_BATCH  # the batch cnn.evaluate() predicts at (imports TensorFlow)
    from .cpu import usable_cores
    from .onednn import parse_verbose

    batches = tuple(batches or (INFERENCE_BATCH // 8, INFERENCE_BATCH, INFERENCE_BATCH * 4))
    images = images or sized(4096, 1024)
    images -= images % max(batches)  # whole batches only: a ragged last one is a new primitive shape
    threads = threads or usable_cores()
    args = [threads, images, sized(3, 2), *batches]
    layout = {"OMP_NUM_THREADS": threads}
    timed = {}
    for on in (False, True):
        out = _probe(args, {**layout, "TF_ENABLE_ONEDNN_OPTS": int(on)}, timeout)
        found = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("SECONDS")))
        if found["onednn"] != on:
            raise RuntimeError(f"TF_ENABLE_ONEDNN_OPTS={int(on)} did not set oneDNN {'on' if on else 'off'}")
        timed[on] = {int(b): s for b, s in found["seconds"].items()}
    trace = _probe(args, {**layout, "TF_ENABLE_ONEDNN_OPTS": 1, "ONEDNN_VERBOSE": 2}, timeout)
    traced = trace_by_batch(trace)
    header = parse_verbose(trace)
    rows = {}
    for batch in batches:
        calls = traced[batch]["calls"]
        split = {group: ms / calls for group, ms in traced[batch]["ms"].items()}
        rows[batch] = {"off_seconds": timed[False][batch], "on_seconds": timed[True][batch],
                       "ratio": timed[False][batch] / timed[True][batch], "ms_per_call": split,
                       "creations_per_call": traced[batch]["created"] / calls,
                       "cache_misses_per_call": traced[batch]["cache_misses"] / calls}
    return {"threads": threads, "images": images, "course_batch": INFERENCE_BATCH, "isa": header["isa"],
            "version": header["version"], "rows": rows}


def cnn_inference_verdict(rows: dict[int, dict], course_batch: int) -> str:
    """The verdict on oneDNN's inference speed, from the measured rows (see cnn_inference_paths)."""
    here = rows[course_batch]
    split = here["ms_per_call"]
    biggest = max(split, key=split.get)
    share = split[biggest] / sum(split.values())
    reorders = split["reorders"] / sum(split.values())
    where = (f"its time goes mostly to {biggest} ({share:.0%} of its traced time at batch {course_batch}; "
             f"reorders {reorders:.0%})")
    misses = here["cache_misses_per_call"]
    where += (f", and it creates {misses:.1f} new primitive(s) per call (primitive cache misses)"
              if misses > 0 else ", no primitive created per call once warm (the primitive cache holds them)")
    if here["ratio"] >= 0.95:
        return (f"oneDNN is not slower than TensorFlow's kernels at batch {course_batch} here "
                f"({here['ratio']:.2f}x); {where}.")
    level = [b for b, row in sorted(rows.items()) if row["ratio"] >= 0.95]
    if level:
        fix = ("batch " + ", ".join(f"{b} ({rows[b]['ratio']:.2f}x)" for b in level)
               + " brings oneDNN level or ahead: batch size is the setting that changes it")
    else:
        fix = ("no batch size tested changes it (" + ", ".join(f"{b}: {row['ratio']:.2f}x"
               for b, row in sorted(rows.items())) + ")")
    return f"oneDNN is slower at batch {course_batch} ({here['ratio']:.2f}x); {where}; {fix}."


def report_cnn_inference(found: dict | None = None) -> dict:
    """Print oneDNN's inference against TensorFlow's kernels per batch size, where oneDNN's time
    goes, how many primitives it creates per call, and the verdict."""
    found = found or cnn_inference_paths()
    print(f"oneDNN {found['version']}, {found['isa']}; {found['threads']} thread(s); "
          f"model.predict on {found['images']:,} images per batch size")
    print(f"{'batch':>5} {'TF img/s':>9} {'oneDNN':>8} {'ratio':>6} {'new/call':>8}   "
          "ms per call: " + " | ".join(SPLIT_ORDER))
    for batch, row in sorted(found["rows"].items()):
        split = row["ms_per_call"]
        rates = [found["images"] / row[f"{s}_seconds"] for s in ("off", "on")]
        print(f"{batch:5d} {rates[0]:9.0f} {rates[1]:8.0f} "
              f"{row['ratio']:5.2f}x {row['cache_misses_per_call']:8.1f}   "
              + " | ".join(f"{split[g]:.2f}" for g in SPLIT_ORDER))
    print("verdict: " + cnn_inference_verdict(found["rows"], found["course_batch"]))
    return found


# ---------------------------------------------------------------------------------------------
# Horovod: one rank per core against one rank with every core as threads, setting by setting.

HOROVOD_PREFIX = "04_settings"


def horovod_settings_measured(cores: int | None = None, timeout: float = 600) -> dict:
    """Launch experiments.horovod_settings (each run under a hard `timeout`) and read what each one
    measured: {label: {"setting", "images_per_second", "fraction" (of the reference 1 x cores run),
    "cores_busy" (CPU seconds per second of training, summed over the ranks), "environment",
    "inter_op_threads"}}."""
    from .cpu import usable_cores
    from .experiments import horovod_settings

    cores = cores or usable_cores()
    runs = horovod_settings(cores)
    found = {}
    for run in runs:
        run.launch(HOROVOD_PREFIX, echo=False, timeout=timeout)
        m = run.results(HOROVOD_PREFIX)
        found[run.label] = {"setting": run.key["setting"], "images_per_second": m["train_images_per_second"],
                            "cores_busy": sum(m["cores_busy_per_rank"]), "environment": m["environment"],
                            "inter_op_threads": m["tensorflow"]["inter_op_threads"], "expected": run}
    # The reference runs first and last: how far it moved is the noise of this machine right now.
    references = [v["images_per_second"] for v in found.values() if v["setting"] == "reference"]
    reference = sum(references) / len(references)
    for entry in found.values():
        entry["fraction"] = entry["images_per_second"] / reference
        run = entry.pop("expected")
        # Each setting must have reached the ranks, or the comparison compares nothing.
        for key, value in run.genv.items():
            if entry["environment"].get(key) != str(value):
                raise RuntimeError(f"{run.label}: the ranks saw {key}={entry['environment'].get(key)}")
        if "--inter-threads" in run.args:
            wanted = run.args[run.args.index("--inter-threads") + 1]
            if entry["inter_op_threads"] != wanted:
                raise RuntimeError(f"{run.label}: TensorFlow ran {entry['inter_op_threads']} inter-op")
    return {"cores": cores, "runs": found, "noise": (max(references) - min(references)) / reference}


def horovod_verdict(runs: dict[str, dict], cores: int, noise: float = 0.0) -> str:
    """Which setting brings one rank per core closest to the reference, from measured fractions;
    `noise`: how far the reference moved between its two runs (a fraction of it)."""
    tried = {label: r for label, r in runs.items() if r["setting"] != "reference"}
    best = max(tried, key=lambda label: tried[label]["fraction"])
    default = next(r for r in tried.values() if r["setting"] == "default")
    fraction = tried[best]["fraction"]
    how = "the defaults already do" if tried[best] is default else f"{best} does"
    verdict = f"{cores} x 1 reaches {fraction:.0%} of 1 x {cores} at best, at least 90%: {how}."
    busy = tried[best]["cores_busy"]
    evidence = (f"the ranks keep {busy:.1f} cores busy on {cores}: besides the kernels, Horovod's "
                "background thread and MPI's progress polling compete for the same cores"
                if busy > 1.05 * cores else
                f"the ranks keep {busy:.1f} of {cores} cores busy: they wait (for each other in the "
                "allreduce, or for work), rather than compete")
    gain = fraction - default["fraction"]
    caveat = (f" The reference moved {noise:.0%} between its runs (a busy machine): differences smaller "
              "than that are noise; run it again on a quiet machine." if noise > 0.1 else "")
    if fraction >= 0.9:
        return verdict + caveat
    return (f"no setting brings {cores} x 1 to 90% of 1 x {cores}: the best is {best} at {fraction:.0%} "
            f"({gain:+.0%} against the defaults); {evidence}.{caveat}")


def report_horovod_settings(found: dict | None = None) -> dict:
    """Print each setting's images/s as a fraction of one rank with every core, and the verdict."""
    found = found or horovod_settings_measured()
    for label, r in found["runs"].items():
        print(f"{label:34s} {r['images_per_second']:6.0f} img/s  {r['fraction']:4.0%} of the reference  "
              f"cores busy {r['cores_busy']:.2f}")
    print("verdict: " + horovod_verdict(found["runs"], found["cores"], found["noise"]))
    return found
