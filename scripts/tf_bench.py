"""The workshop's tf_cnn_benchmarks, rebuilt in Keras: training throughput on synthetic images.

    mpirun -genv TF_ENABLE_ONEDNN_OPTS=1 -n 1 python -u scripts/tf_bench.py --model resnet50 --batch-size 16
    mpirun -genv TF_ENABLE_ONEDNN_OPTS=1 -n 2 python -u scripts/tf_bench.py --model resnet50 --batch-size 16

One configuration per process (TensorFlow fixes oneDNN and its thread pools when it starts):
a few warm-up steps (graph building, oneDNN kernel creation), then --num-batches timed steps of
forward + backward + SGD update on one fixed batch of random images, so only compute is timed.
On more than one rank every rank trains its own batch and Horovod averages the gradients after
each step, as in data-parallel training; the throughput is the sum over the ranks.
benchmarks/tf_bench.sh (python -m dlscale.tfbench) runs the default-vs-optimized comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from dlscale import cli


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="tf_bench")
    cli.add_tf_bench_workload(p)
    cli.add_threads(p, inter=True, library_chooses=True)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    from dlscale.rank import start_rank

    rank, size, threads = start_rank()  # before TensorFlow loads: it reads OMP_NUM_THREADS once
    import numpy as np

    from dlscale.cnn import TRAINING_FLOPS_FACTOR, configure_tensorflow, flops_per_image, tf
    from dlscale.cpu import nominal_fp32_gflops, physical_cores
    from dlscale.results import write_results
    from dlscale.roofline import fp32_ceiling

    intra = threads if args.threads is None else args.threads  # 0: TensorFlow chooses
    tf_info = configure_tensorflow(intra, args.inter_threads)
    if size > 1:  # data parallel: Horovod averages the gradients of all ranks after every step
        from dlscale.spmd import horovod_init

        horovod_init()
        import horovod.tensorflow as hvd

    application, side = cli.TF_BENCH_MODELS[args.model]
    side = args.image_size or side
    tf.keras.backend.set_image_data_format(args.data_format)
    shape = (3, side, side) if args.data_format == "channels_first" else (side, side, 3)
    model = getattr(tf.keras.applications, application)(weights=None, input_shape=shape, classes=1000)
    optimizer = tf.keras.optimizers.SGD(0.01, momentum=0.9)
    loss_function = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    rng = np.random.default_rng(rank)
    images = tf.constant(rng.random((args.batch_size, *shape), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 1000, args.batch_size), dtype=tf.int32)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_function(labels, model(images, training=True))
        if size > 1:
            tape = hvd.DistributedGradientTape(tape)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    if size > 1:  # every rank starts from rank 0's weights
        hvd.broadcast_variables(model.variables, root_rank=0)
    if rank == 0:
        print(f"{args.model}: {model.count_params() / 1e6:.1f} M parameters, input {shape}, "
              f"batch {args.batch_size} per rank, oneDNN {'on' if tf_info['onednn'] else 'off'}, "
              f"intra {intra} / inter {args.inter_threads} threads (0: TensorFlow chooses)")
    step_seconds = []
    try:
        for step in range(args.warmup_batches + args.num_batches):
            start = time.perf_counter()
            loss = float(train_step())  # float() waits for the step to finish
            seconds = time.perf_counter() - start
            warm = step < args.warmup_batches
            if not warm:
                step_seconds.append(seconds)
            if rank == 0:
                label = (f"warm-up {step + 1}/{args.warmup_batches}" if warm
                         else f"step {step + 1 - args.warmup_batches}/{args.num_batches}")
                print(f"{label}: {seconds:.2f} s, {args.batch_size / seconds:.2f} img/s per rank, "
                      f"loss {loss:.3f}")
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        reason = next(line.strip() for line in reversed(error.message.splitlines())
                      if line.strip() and not line.strip().startswith(("[[", "File")))
        print(f"rank {rank}: {args.data_format} does not run in this configuration "
              f"(oneDNN {'on' if tf_info['onednn'] else 'off'}): {reason}", file=sys.stderr)
        return 2

    rate = args.num_batches * args.batch_size / sum(step_seconds)
    rates = hvd.allgather_object(rate) if size > 1 else [rate]
    if rank != 0:
        return 0
    total = sum(rates)
    forward = flops_per_image(model)
    gflops = total * TRAINING_FLOPS_FACTOR * forward / 1e9
    nominal = nominal_fp32_gflops(min(physical_cores(), size * threads))  # the cores this job was given
    result = {
        "model": args.model, "batch_size": args.batch_size, "image_size": side,
        "data_format": args.data_format, "num_batches": args.num_batches,
        "warmup_batches": args.warmup_batches, "parameters": model.count_params(),
        "gradient_bytes": 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables),
        "tensorflow": tf_info,
        "step_seconds_median": statistics.median(step_seconds), "step_seconds": step_seconds,
        "images_per_second": total, "images_per_second_per_rank": rates,
        "forward_gflops_per_image": forward / 1e9, "train_gflops": gflops,
        "nominal_fp32_gflops": nominal,
    }
    ceiling = fp32_ceiling()  # scripts/roofline.py's newest measurement, if any
    print(f"{size} rank(s): {total:.2f} img/s in all, {gflops:.0f} GFLOP/s"
          + (f" ({gflops / ceiling:.0%} of the measured {ceiling:.0f} GFLOP/s FP32 ceiling)"
             if ceiling else "")
          + (f"; nominal FP32 figure {nominal:.0f} GFLOP/s (computed)" if nominal else ""))
    write_results(args.name, result, threads_per_rank=intra or threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
