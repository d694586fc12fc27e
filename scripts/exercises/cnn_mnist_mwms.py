"""Notebook 07: the CNN of notebook 04, data-parallel with TensorFlow's own collectives instead of Horovod.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u scripts/cnn_mnist_mwms.py

tf.distribute.MultiWorkerMirroredStrategy keeps a copy of every variable on every worker and, in
each step, sums the gradients over all workers with TensorFlow's collective operations (a ring
allreduce over gRPC, TensorFlow's own transport): the job Horovod did in notebook 04, without
Horovod. mpirun only starts the processes; the strategy finds its peers through TF_CONFIG. The
steps that differ from cnn_mnist_hvd.py are marked "Strategy step N".
"""

from __future__ import annotations

import time

from dlscale import cli


def main() -> None:
    parser = cli.training_parser(__doc__, "cnn_mnist_mwms")
    parser.add_argument("--no-lr-scaling", action="store_true",
                        help="keep --lr as it is instead of multiplying it by the number of workers")
    parser.add_argument("--connect-timeout", type=cli.positive(float), default=120,
                        help="stop with a clear message when no step has run after this many seconds")
    args = parser.parse_args()
    from dlscale.rank import start_rank

    _, _, threads = start_rank()
    threads = args.threads or threads
    from dlscale import strategy as tfconfig

    # Strategy step 1: tell TensorFlow who is in the job, before it starts: TF_CONFIG lists every
    # worker's host:port and names this one. The course's helper writes it from the MPI rank.
    try:
        config = tfconfig.tf_config_from_mpi()
    except tfconfig.TFConfigError as error:
        parser.error(str(error))
    deadline = tfconfig.ConnectDeadline(args.connect_timeout, config).start()

    from mpi4py import MPI  # only to gather the evidence at the end (tf_config_from_mpi started it)

    from dlscale import cnn, load_mnist, shard
    from dlscale.cnn import tf
    from dlscale.data import quick_test_images
    from dlscale.results import write_results

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)

    # Strategy step 2: create the strategy (Horovod: hvd.init()). It reads TF_CONFIG, starts this
    # worker's server and waits for the others. Ask for the RING implementation of its collectives
    # (tf.distribute.experimental.CommunicationOptions), the ring drawn in notebook 04, or leave
    # the choice to TensorFlow.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    workers = strategy.num_replicas_in_sync  # one replica per worker on CPUs (hvd.size())
    rank = strategy.cluster_resolver.task_id  # this worker's index (hvd.rank())
    if rank == 0:
        print(f"MultiWorkerMirroredStrategy: {workers} worker(s): {', '.join(config['cluster']['worker'])}; "
              f"{cnn.tensorflow_threads()['intra_op_threads']} intra-op thread(s) per worker")

    x_train, y_train, x_test, y_test = cnn.as_inputs(load_mnist(verbose=rank == 0), args.train_images,
                                                     quick_test_images())
    steps = len(x_train) // workers // args.batch_size

    def worker_dataset(context: tf.distribute.InputContext):
        # Each worker reads its own part of the data, as each Horovod rank did with shard().
        mine = shard(len(x_train), context.input_pipeline_id, context.num_input_pipelines,
                     min_items=args.batch_size)
        return (tf.data.Dataset.from_tensor_slices((x_train[mine], y_train[mine]))
                .shuffle(10_000, seed=rank).repeat().batch(context.get_per_replica_batch_size(
                    args.batch_size * workers)))

    dataset = strategy.distribute_datasets_from_function(worker_dataset)

    # Strategy step 3: scale the learning rate `lr` by the number of workers (unless
    # --no-lr-scaling), as in Horovod step 3: each step averages gradients over workers x batch.
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")

    # Strategy step 4: build and compile the model, cnn.build_model(lr), inside `with
    # strategy.scope():` (it replaces Horovod's DistributedOptimizer and the broadcast: variables
    # created in the scope are mirrored on every worker, start from worker 0's values, and their
    # gradients are summed over workers, of a loss Keras divides by the global batch: an average).
    raise NotImplementedError("Exercise: write your solution here (see the hint above)")
    if not all(isinstance(v, tf.distribute.DistributedValues) for v in model.trainable_variables):
        parser.exit(1, "Strategy step 4: the model's variables were created outside strategy.scope(), so "
                       "they are not mirrored (fit() would fail with 'PerReplica' inputs): build the model "
                       "inside `with strategy.scope():`\n")
    # Keras 2.15 would add up the metrics of all workers (an accuracy of 1.9 on two workers):
    # report the first worker's, as Horovod's MetricAverageCallback reports their average.
    model.distribute_reduction_method = "first"

    # Strategy step 5: checkpoints. Every worker takes part in saving (the variables are
    # distributed); Keras' BackupAndRestore keeps worker 0's copy and resumes from it after a restart.
    checkpoints = cli.checkpoint_dir(args)
    if args.fresh:
        import shutil

        shutil.rmtree(checkpoints, ignore_errors=True)
    callbacks = [tf.keras.callbacks.BackupAndRestore(str(checkpoints), delete_checkpoint=False)]

    class FirstStep(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            deadline.met()  # connected: every worker has run a step

    log = cnn.EpochLog(args.epochs, steps, args.batch_size * workers, verbose=rank == 0)
    callbacks += [FirstStep(), log]
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=args.epochs, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start

    results = cnn.evaluate(model, x_test, y_test)
    comm = MPI.COMM_WORLD
    digests = comm.allgather(cnn.weights_digest(model))
    rate = steps * args.batch_size * workers / min(log.seconds) if log.seconds else None
    mirrored = all(isinstance(v, tf.distribute.DistributedValues) for v in model.trainable_variables)
    results |= {
        "engine": "tf.distribute.MultiWorkerMirroredStrategy", "workers": workers,
        "tf_config_workers": config["cluster"]["worker"],
        "train_images": len(x_train), "steps_per_epoch": steps, "global_batch": args.batch_size * workers,
        "base_learning_rate": args.lr, "learning_rate": float(lr), "lr_scaled": not args.no_lr_scaling,
        "epochs_done": len(log.seconds), "epoch_seconds": log.seconds, "train_seconds": seconds,
        "train_images_per_second": rate,
        "weights_digest_per_rank": digests, "weights_identical": len(set(digests)) == 1,
        "variables_mirrored_per_rank": comm.allgather(mirrored),
        "intra_op_threads_per_rank": comm.allgather(cnn.tensorflow_threads()["intra_op_threads"]),
        "progress_lines_per_rank": comm.allgather(log.lines),
    }
    if rank == 0:
        print(f"test accuracy {results['test_accuracy']:.4f}; "
              + (f"{rate:.0f} img/s over {workers} worker(s); " if rate else "")
              + f"weights identical on all workers: {results['weights_identical']}")
    write_results(args.name, results, threads_per_rank=threads)


if __name__ == "__main__":
    main()
