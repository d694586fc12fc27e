"""Notebook 04: the MNIST CNN of cnn_mnist.py, trained data-parallel with Horovod over MPI.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -genv I_MPI_DEBUG=5 -n 2 python -u scripts/cnn_mnist_hvd.py

Every rank trains the same model on its own part of the data; after each step Horovod averages
the gradients over all ranks (an allreduce: with the MPI controller, MPI_Allreduce of Intel MPI),
so all ranks keep identical weights. The six steps that turn cnn_mnist.py into this script are
marked "Horovod step N"; they use Horovod's own API, the course's helpers do everything else.
"""

from __future__ import annotations

import os
import socket
import time

from dlscale import cli


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
    threads = args.threads or threads
    from dlscale import cnn, load_mnist, shard
    from dlscale.cnn import tf
    from dlscale.data import quick_test_images
    from dlscale.results import write_results
    from dlscale.spmd import import_horovod

    hvd = import_horovod()  # horovod.tensorflow.keras, with a clear error if MPI is missing
    from horovod.tensorflow import allgather_object, broadcast_object

    # Horovod step 1: initialise Horovod: it joins the MPI job that mpirun started, and every
    # process learns its rank (hvd.rank()) and the number of ranks (hvd.size()).
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    rank, size = hvd.rank(), hvd.size()

    # Horovod step 2: pin each rank's resources. On GPUs each rank takes the GPU of its local rank;
    # on a CPU it takes its share of the cores: set TensorFlow's intra-op threads to `threads`
    # (the cores of this node divided by its hvd.local_size() ranks, computed above).
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    tf_info = cnn.tensorflow_threads()
    if rank == 0:
        print(f"Horovod: {size} rank(s); oneDNN {'on' if tf_info['onednn'] else 'off'}; "
              f"{tf_info['intra_op_threads']} intra-op thread(s) per rank")

    # Each rank trains on its own, disjoint part of the data; every rank runs the same number of
    # steps per epoch (an allreduce waits for all ranks, so one extra step on one rank would hang).
    x_train, y_train, x_test, y_test = cnn.as_inputs(load_mnist(), args.train_images,
                                                     quick_test_images())
    mine = shard(len(x_train), rank, size, min_items=args.batch_size)
    steps = len(x_train) // size // args.batch_size
    dataset = (tf.data.Dataset.from_tensor_slices((x_train[mine], y_train[mine]))
               .shuffle(10_000, seed=rank).repeat().batch(args.batch_size))

    # Horovod step 3: scale the learning rate `lr` by the number of ranks (unless the option
    # --no-lr-scaling is given): each step now averages gradients over size x batch-size images.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    optimizer = tf.keras.optimizers.Adam(lr)

    # Horovod step 4: wrap the optimizer in Horovod's, so that the gradients are averaged over
    # all ranks (allreduce) before every update.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    model = cnn.build_model(optimizer=optimizer)  # each rank starts from its own random weights
    # Every rank creates its optimizer's variables now, alike: Horovod matches the tensors it
    # broadcasts by name, and rank 0 restoring a checkpoint must not name them differently.
    model.optimizer.build(model.trainable_variables)

    # Rank 0 resumes from its latest intact checkpoint and tells the others how many epochs it holds
    # (or that none is intact: then every rank stops, and rank 0 says why).
    checkpoints = cnn.Checkpoints(model, cli.checkpoint_dir(args), fresh=args.fresh and rank == 0)
    first_epoch = checkpoints.restore_on_rank(0, rank, broadcast_object)
    callbacks = []

    # Horovod step 5: broadcast rank 0's weights and optimizer state to every rank (Horovod's
    # callback does it once, at the end of the first step), so that all ranks hold one model.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    # Horovod step 6: only rank 0 prints progress (set `verbose`) and saves checkpoints (add
    # `checkpoints`, a Keras callback, to its callbacks): the other ranks hold the same model,
    # and several processes writing the same files at once can corrupt them.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    log = cnn.EpochLog(args.epochs, steps, args.batch_size * size, verbose=verbose)
    first_step = cnn.AfterFirstStep(cnn.weights_digest)  # evidence for the check: same model after step 1?
    callbacks += [hvd.callbacks.MetricAverageCallback(), log, first_step]  # metrics averaged over ranks
    if args.warmup_epochs > 0:
        callbacks.append(hvd.callbacks.LearningRateWarmupCallback(
            initial_lr=lr, warmup_epochs=args.warmup_epochs, steps_per_epoch=steps, verbose=0))
    if rank == args.crash_rank:
        def crash(*_):
            raise SystemExit(f"rank {rank} crashed on purpose (--crash-rank)")
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_train_batch_end=crash))
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=steps, initial_epoch=first_epoch,
                        epochs=args.epochs, verbose=0, callbacks=callbacks)
    # CPU seconds of all this rank's threads per second of training: more than its share of the
    # cores means Horovod's background thread or MPI's polling compete with the kernels.
    cores_busy = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)

    results = cnn.evaluate(model, x_test, y_test)
    digests = allgather_object(cnn.weights_digest(model))
    flops = cnn.flops_per_image(model)
    rate = steps * args.batch_size * size / min(log.seconds) if log.seconds else None
    results |= {
        "train_images": len(x_train), "images_per_rank": mine.stop - mine.start,
        "steps_per_epoch": steps, "global_batch": args.batch_size * size,
        "base_learning_rate": args.lr, "learning_rate": float(lr),
        "lr_scaled": not args.no_lr_scaling, "warmup_epochs": args.warmup_epochs,
        "epochs_done": first_epoch + len(log.seconds), "resumed_from_epoch": first_epoch,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "epoch_seconds": log.seconds,
        "train_images_per_second": rate,
        "train_images_per_second_per_rank": rate and rate / size,
        "train_gflops": rate and rate * cnn.TRAINING_FLOPS_FACTOR * flops / 1e9,
        # What each rank did, gathered from every rank: the evidence the notebook's check reads.
        "weights_digest_per_rank": digests, "weights_identical": len(set(digests)) == 1,
        "weights_digest_after_first_step_per_rank": allgather_object(first_step.value),
        "checkpoints_saved_per_rank": allgather_object(checkpoints.saved),
        "host_per_rank": allgather_object(socket.gethostname()),  # which machine (node) each rank ran on
        "progress_lines_per_rank": allgather_object(log.lines),
        "intra_op_threads_per_rank": allgather_object(tf_info["intra_op_threads"]),
        "threads_per_rank_planned": threads,
        "cores_busy_per_rank": allgather_object(cores_busy),
        # What Horovod and Intel MPI read from the environment at start-up, as this rank saw it.
        "environment": {k: os.environ.get(k) for k in ("HOROVOD_CYCLE_TIME", "I_MPI_WAIT_MODE")},
        "distributed_optimizer_per_rank": allgather_object(cnn.averages_gradients(model.optimizer)),
        "tensorflow": tf_info,
    }
    if rank == 0:
        print(f"test accuracy {results['test_accuracy']:.4f}; "
              + (f"{rate:.0f} img/s over {size} rank(s); " if rate else "")
              + f"weights identical on all ranks: {results['weights_identical']}")
    write_results(args.name, results, threads_per_rank=tf_info["intra_op_threads"])


if __name__ == "__main__":
    main()
