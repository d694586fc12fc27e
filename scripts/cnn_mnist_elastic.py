"""Notebook 07: the CNN of notebook 04 trained with Elastic Horovod: workers may leave and join.

    horovodrun -np 2 --min-np 1 --max-np 2 --host-discovery-script ./discover.sh \
        python -u scripts/cnn_mnist_elastic.py --events run.jsonl

(the notebook starts it with dlscale.elastic.run, which also kills a worker and adds one back).
A plain Horovod job stops when one rank dies. Here the training state lives in an elastic state
object that every worker commits (keeps a copy of) every few batches: when a worker dies, the
others get an error from their next allreduce, roll back to the last commit, agree on a new
size and carry on; when the discovery script lists a new host, the job grows at the next commit.
Every worker appends what it does to the --events file, one JSON line per event, so the
notebook can draw who trained what, and when, even for a worker that was killed.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from dlscale import cli


def main() -> None:
    parser = cli.parser(__doc__, "07_elastic")
    parser.add_argument("--epochs", type=cli.positive(int), default=cli.sized(3, 2), help="epochs to train")
    parser.add_argument("--steps-per-epoch", type=cli.positive(int), default=cli.sized(120, 40),
                        help="batches per epoch on every worker, whatever the number of workers")
    cli.add_batch_size(parser, 64)
    parser.add_argument("--lr", type=cli.positive(float), default=1e-3,
                        help="Adam's learning rate for one worker (scaled by the number of workers)")
    parser.add_argument("--batches-per-commit", type=cli.positive(int), default=10,
                        help="commit (keep a copy of) the training state every N batches")
    parser.add_argument("--events", type=Path, required=True,
                        help="the JSON-lines file every worker appends its events to")
    cli.add_threads(parser)
    args = parser.parse_args()
    from dlscale.rank import start_rank

    threads = args.threads or start_rank().threads  # before TensorFlow loads
    import numpy as np

    from dlscale import cnn, load_mnist, shard
    from dlscale.cnn import tf
    from dlscale.data import quick_test_images
    from dlscale.elastic import Timeline
    from dlscale.results import write_results
    from dlscale.spmd import horovod_init

    hvd = horovod_init()
    from horovod.tensorflow import allgather_object
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    # horovodrun names the host it started this worker for: with two names for one machine, the
    # name is what tells the workers (and the notebook's timeline) apart.
    timeline = Timeline(args.events, host=os.environ.get("HOROVOD_HOSTNAME", socket.gethostname()))
    timeline.record("start", rank=hvd.rank(), size=hvd.size())

    x_train, y_train, x_test, y_test = cnn.as_inputs(load_mnist(verbose=False), None, quick_test_images())
    model = cnn.build_model(optimizer=hvd.DistributedOptimizer(tf.keras.optimizers.Adam(args.lr)))
    model.optimizer.build(model.trainable_variables)  # the state must hold Adam's slots from the start

    # Elastic Horovod's state: the model, its optimizer and two counters. commit() keeps a copy in
    # memory (and checks whether hosts were added); after a failure every worker restores the last
    # copy, and the new rank 0's copy is broadcast to everyone, including workers that just joined.
    state = hvd.elastic.KerasState(model, batch=0, epoch=0, steps_done=0)

    def scale_learning_rate():  # linear in the number of workers, as in notebook 04
        tf.keras.backend.set_value(model.optimizer.learning_rate, args.lr * hvd.size())

    def on_reset():  # the job changed size; a worker that joins scales its own rate when it starts
        scale_learning_rate()
        timeline.record("reset", rank=hvd.rank(), size=hvd.size(), epoch=state.epoch, batch=state.batch)

    scale_learning_rate()
    state.register_reset_callbacks([on_reset])

    class KeepCountAndCommit(tf.keras.callbacks.Callback):
        """After every batch: where the job is (Keras restarts `batch` at 0 in every fit() call),
        and every N batches a commit. Horovod's CommitStateCallback commits every N batches too,
        but counts from its own start and again at each epoch's end; this one commits at fixed
        positions of the epoch, so a rollback always lands on a multiple of N."""

        def __init__(self, first_batch):
            super().__init__()
            self.first_batch = first_batch

        def on_train_batch_end(self, batch, logs=None):
            state.batch = self.first_batch + batch + 1
            state.steps_done += 1
            timeline.record("batch", rank=hvd.rank(), size=hvd.size(), epoch=state.epoch,
                            batch=state.batch, steps_done=state.steps_done, loss=float(logs["loss"]))
            if state.batch % args.batches_per_commit == 0 and state.batch < args.steps_per_epoch:
                commit()

    def commit():
        timeline.record("commit", rank=hvd.rank(), size=hvd.size(), epoch=state.epoch,
                        batch=state.batch, steps_done=state.steps_done)
        state.commit()  # may raise HostsUpdatedInterrupt: a host was added, the job grows now

    @hvd.elastic.run
    def train(state):
        # Runs again on every worker after each reset, from the state of the last commit.
        while state.epoch < args.epochs:
            mine = shard(len(x_train), hvd.rank(), hvd.size(), min_items=args.batch_size)
            # This worker's part, shuffled here: fit() runs once per epoch, and a tf.data shuffle
            # buffer would cost about a second to fill and drop each time.
            order = np.random.default_rng(state.epoch * 1000 + state.batch).permutation(
                np.arange(mine.start, mine.stop))
            data = (tf.data.Dataset.from_tensor_slices((x_train[order], y_train[order]))
                    .repeat().batch(args.batch_size))
            model.fit(data, steps_per_epoch=args.steps_per_epoch - state.batch, epochs=1, verbose=0,
                      callbacks=[KeepCountAndCommit(state.batch)])
            state.epoch, state.batch = state.epoch + 1, 0
            commit()
            if hvd.rank() == 0:
                print(f"epoch {state.epoch}/{args.epochs} done on {hvd.size()} worker(s), "
                      f"{state.steps_done} steps so far", flush=True)

    start = time.perf_counter()
    train(state)
    seconds = time.perf_counter() - start
    results = cnn.evaluate(model, x_test, y_test)
    digests = allgather_object(cnn.weights_digest(model))
    timeline.record("done", rank=hvd.rank(), size=hvd.size(), epoch=state.epoch, steps_done=state.steps_done)
    if hvd.rank() == 0:
        results |= {
            "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
            "planned_steps": args.epochs * args.steps_per_epoch, "steps_done": state.steps_done,
            "batches_per_commit": args.batches_per_commit, "batch_size": args.batch_size,
            "workers_at_end": hvd.size(), "weights_digest_per_worker": digests,
            "weights_identical": len(set(digests)) == 1, "train_seconds": seconds,
            "timeline_file": str(args.events),
        }
        print(f"test accuracy {results['test_accuracy']:.4f}; {state.steps_done} of "
              f"{results['planned_steps']} planned steps; {hvd.size()} worker(s) at the end")
        write_results(args.name, results, ranks=hvd.size(), threads_per_rank=threads)


if __name__ == "__main__":
    main()
