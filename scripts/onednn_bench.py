"""Notebook 02: one thread layout of TensorFlow on the MNIST CNN, timed, optionally with oneDNN's trace.

    mpirun -prepend-rank -genv TF_ENABLE_ONEDNN_OPTS=1 -n 1 python -u scripts/onednn_bench.py --trace

Trains --steps steps of --batch-size images and times inference, with --threads intra-op threads
(one operation split over threads) and --inter-threads inter-op threads (independent operations
side by side).
TensorFlow fixes its thread pools when it starts, so each layout is its own process: the notebook
launches one per layout. With several ranks, every rank runs its own copy (independent streams)
and rank 0 adds up their throughput. --trace records ONEDNN_VERBOSE=1 and summarizes it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from dlscale import cli


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="onednn_bench")
    cli.add_threads(p, inter=True)
    cli.add_batch_size(p, 64)
    p.add_argument("--steps", type=cli.positive(int), default=cli.sized(30, 3), help="timed training steps")
    cli.add_data_format(p)
    p.add_argument("--trace", action="store_true", help="record and summarize oneDNN's verbose trace")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.trace:
        os.environ["ONEDNN_VERBOSE"] = "1"  # read by oneDNN when it creates its first primitive
    from dlscale.rank import start_rank

    rank, size, threads = start_rank()  # before TensorFlow loads: it reads OMP_NUM_THREADS once
    import numpy as np
    import tensorflow as tf
    from mpi4py import MPI

    from dlscale.cnn import build_model, configure_tensorflow
    from dlscale.native import native_output
    from dlscale.onednn import blocked_layouts, parse_verbose, summarize
    from dlscale.results import write_results

    tf_info = configure_tensorflow(args.threads or threads, args.inter_threads)
    channels_first = args.data_format == "channels_first"
    shape = (args.batch_size, 1, 28, 28) if channels_first else (args.batch_size, 28, 28, 1)
    rng = np.random.default_rng(rank)
    x, y = rng.random(shape, dtype=np.float32), rng.integers(0, 10, args.batch_size).astype(np.int32)
    model = build_model(data_format=args.data_format)
    result = {"data_format": args.data_format, "batch_size": args.batch_size, "steps": args.steps,
              "tensorflow": tf_info}
    try:
        with native_output() as trace:
            model.train_on_batch(x, y)  # warm-up: builds the step's graph and oneDNN's kernels
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            train = args.steps * args.batch_size / (time.perf_counter() - start)
            model.predict_on_batch(x)
            start = time.perf_counter()
            for _ in range(args.steps):
                model.predict_on_batch(x)
            infer = args.steps * args.batch_size / (time.perf_counter() - start)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:  # NCHW, no oneDNN
        # TensorFlow's message ends with the reason, after a traceback of the graph's construction.
        message = next(line.strip() for line in reversed(error.message.splitlines())
                       if line.strip() and not line.strip().startswith(("[[", "File")))
        print(f"{args.data_format} is not supported by this configuration: {message}")
        result["unsupported"] = message
        train = infer = 0.0
    if args.trace and "unsupported" not in result:
        parsed = parse_verbose(trace.text)
        result["trace"] = {"version": parsed["version"], "isa": parsed["isa"], "runtime": parsed["runtime"],
                           "executions": len(parsed["executions"]),
                           "summary": summarize(parsed["executions"]),
                           "blocked_layouts": blocked_layouts(parsed["executions"]),
                           "first_lines": [line for line in trace.text.splitlines()
                                           if line.startswith("onednn_verbose,")][:12]}
    comm = MPI.COMM_WORLD
    rates = comm.gather((train, infer), root=0)
    if rank != 0:
        return
    result |= {"train_images_per_second": sum(r[0] for r in rates),
               "inference_images_per_second": sum(r[1] for r in rates),
               "per_rank": [{"train": t, "inference": i} for t, i in rates]}
    print(f"{size} rank(s) x intra {tf_info['intra_op_threads']} / inter {tf_info['inter_op_threads']}, "
          f"oneDNN {'on' if tf_info['onednn'] else 'off'}, {args.data_format}: training "
          f"{result['train_images_per_second']:.0f} img/s, "
          f"inference {result['inference_images_per_second']:.0f} img/s")
    write_results(args.name, result, threads_per_rank=tf_info["intra_op_threads"])


if __name__ == "__main__":
    sys.exit(main())
