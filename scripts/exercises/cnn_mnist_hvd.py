"""Notebook 04: the MNIST CNN of cnn_mnist.py, trained data-parallel with Horovod over MPI.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -genv I_MPI_DEBUG=5 -n 2 python -u scripts/cnn_mnist_hvd.py

Every rank trains the same model on its own part of the data; after each step Horovod averages
the gradients over all ranks (ring-allreduce), so all ranks keep identical weights. The six
steps that turn cnn_mnist.py into this script are marked "Horovod step N".
"""

from __future__ import annotations

import hashlib

from dlscale import cli


def weights_digest(model) -> str:
    """A fingerprint of every weight, to show that all ranks hold the same model."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def main() -> None:
    parser = cli.training_parser(__doc__, "cnn_mnist_hvd")
    parser.add_argument("--warmup-epochs", type=float, default=cli.sized(1.0, 0.0),
                        help="ramp the learning rate up over this many epochs")
    parser.add_argument("--no-lr-scaling", action="store_true",
                        help="keep --lr as it is instead of multiplying it by the number of ranks")
    parser.add_argument("--crash-rank", type=int, default=None,
                        help="for the failure demo: this rank exits with an error after one step")
    args = parser.parse_args()
    if args.crash_rank is not None and args.crash_rank < 0:
        parser.error(f"--crash-rank must be a rank number >= 0, got {args.crash_rank}")
    from dlscale.rank import start_rank

    _, _, threads = start_rank()  # before TensorFlow loads: it reads OMP_NUM_THREADS once
    from dlscale import load_mnist, shard
    from dlscale.cnn import (
        TRAINING_FLOPS_FACTOR,
        Checkpoints,
        EpochLog,
        as_inputs,
        build_model,
        configure_tensorflow,
        evaluate,
        flops_per_image,
        quick_test_images,
        tf,
    )
    from dlscale.results import write_results
    from dlscale.spmd import horovod_init

    # Horovod step 1: initialise Horovod (it joins the MPI job mpirun started).
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    from horovod.tensorflow import allgather_object, broadcast_object, broadcast_variables

    rank, size = hvd.rank(), hvd.size()

    # Horovod step 2: pin each rank's threads. On GPUs each rank takes the GPU of its local rank;
    # on a CPU each rank takes its share of the cores: the threads the launcher gave it.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    if rank == 0:
        print(f"Horovod: {size} rank(s); oneDNN {'on' if tf_info['onednn'] else 'off'}; "
              f"{tf_info['intra_op_threads']} intra-op thread(s) per rank")

    # Each rank trains on its own, disjoint part of the data; every rank runs the same number of
    # steps per epoch (an allreduce waits for all ranks, so one extra step on one rank would hang).
    x_train, y_train, x_test, y_test = as_inputs(load_mnist(), args.train_images,
                                                 quick_test_images())
    mine = shard(len(x_train), rank, size, min_items=args.batch_size)
    steps = len(x_train) // size // args.batch_size
    dataset = (tf.data.Dataset.from_tensor_slices((x_train[mine], y_train[mine]))
               .shuffle(10_000, seed=rank).repeat().batch(args.batch_size))

    # Horovod step 3: scale the learning rate by the number of ranks: each step now averages
    # gradients over size x batch-size images, so it can take a proportionally larger step.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    # Horovod step 4: wrap the optimizer, so that gradients are averaged over all ranks.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    # Rank 0 resumes from its checkpoint; the others learn how far it got in step 5.
    checkpoints = Checkpoints(model, cli.checkpoint_dir(args), fresh=args.fresh and rank == 0)
    first_epoch = checkpoints.restore() if rank == 0 else 0

    # Horovod step 5: broadcast rank 0's state (initial or restored weights, optimizer state,
    # epochs done) to every rank, so that all ranks start from the same model.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    # Horovod step 6: only rank 0 saves checkpoints and prints progress (the others would write
    # the same files and lines again).
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    callbacks = [hvd.callbacks.MetricAverageCallback(), log]  # metrics averaged over ranks
    if args.warmup_epochs > 0:
        callbacks.insert(0, hvd.callbacks.LearningRateWarmupCallback(
            initial_lr=lr, warmup_epochs=args.warmup_epochs, steps_per_epoch=steps, verbose=0))
    if rank == args.crash_rank:
        def crash(*_):
            raise SystemExit(f"rank {rank} crashed on purpose (--crash-rank)")
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_train_batch_end=crash))
    history = model.fit(dataset, steps_per_epoch=steps, initial_epoch=first_epoch,
                        epochs=args.epochs, verbose=0, callbacks=callbacks)

    results = evaluate(model, x_test, y_test)
    digests = allgather_object(weights_digest(model))
    saves = allgather_object(checkpoints.saved)
    flops = flops_per_image(model)
    rate = steps * args.batch_size * size / min(log.seconds) if log.seconds else None
    results |= {
        "train_images": len(x_train), "images_per_rank": mine.stop - mine.start,
        "steps_per_epoch": steps, "global_batch": args.batch_size * size,
        "learning_rate": lr, "lr_scaled": not args.no_lr_scaling, "warmup_epochs": args.warmup_epochs,
        "epochs_done": first_epoch + len(log.seconds), "resumed_from_epoch": first_epoch,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "epoch_seconds": log.seconds,
        "train_images_per_second": rate,
        "train_images_per_second_per_rank": rate and rate / size,
        "train_gflops": rate and rate * TRAINING_FLOPS_FACTOR * flops / 1e9,
        "weights_digest_per_rank": digests, "weights_identical": len(set(digests)) == 1,
        "checkpoints_saved_per_rank": saves, "tensorflow": tf_info,
    }
    if rank == 0:
        print(f"test accuracy {results['test_accuracy']:.4f}; "
              + (f"{rate:.0f} img/s over {size} rank(s); " if rate else "")
              + f"weights identical on all ranks: {results['weights_identical']}")
    write_results(args.name, results, threads_per_rank=tf_info["intra_op_threads"])


if __name__ == "__main__":
    main()
