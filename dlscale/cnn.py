"""The workshop's MNIST CNN and what trains and measures it: shared by scripts/cnn_mnist.py,
scripts/cnn_mnist_hvd.py and notebooks 03 and 04.

Importing this module imports TensorFlow, which reads TF_ENABLE_ONEDNN_OPTS and OMP_NUM_THREADS
once, at import: scripts import it after dlscale.rank.start_rank(), and mpirun's -genv sets
TF_ENABLE_ONEDNN_OPTS before the script starts.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from .data import Mnist, scaled


def configure_tensorflow(intra_op_threads: int, inter_op_threads: int = 1) -> dict:
    """Set TensorFlow's thread pools (before any operation runs) and report what TensorFlow uses."""
    tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    return tensorflow_threads()


def tensorflow_threads() -> dict:
    """TensorFlow's thread pools as set now (0: TensorFlow chooses, one per core), and oneDNN."""
    from tensorflow.python.util import _pywrap_util_port

    return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn": bool(_pywrap_util_port.IsMklEnabled()),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}


def _mixed_precision() -> bool:
    return tf.keras.mixed_precision.global_policy().name != "float32"


def build_model(learning_rate: float = 1e-3, optimizer=None, data_format: str = "channels_last"):
    """conv 5x5x32 + ReLU + max-pool, conv 5x5x64 + ReLU + max-pool, dense 1024 + dropout, dense 10.

    Compiled with `optimizer` (e.g. a Horovod DistributedOptimizer), by default Adam(learning_rate).
    data_format "channels_first" takes images as (1, 28, 28) (NCHW) instead of (28, 28, 1) (NHWC).
    """
    layers = tf.keras.layers
    layout = {"data_format": data_format}
    model = tf.keras.Sequential([
        layers.Input((28, 28, 1) if data_format == "channels_last" else (1, 28, 28)),
        layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1", **layout),
        layers.MaxPool2D(2, name="pool1", **layout),
        layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2", **layout),
        layers.MaxPool2D(2, name="pool2", **layout),
        layers.Flatten(name="flatten"),
        layers.Dense(1024, activation="relu", name="dense1"),
        layers.Dropout(0.4, name="dropout"),
        # Under mixed_bfloat16 the logits (and so the loss) stay float32, as Keras recommends.
        layers.Dense(10, name="logits", dtype="float32" if _mixed_precision() else None),
    ], name="workshop_cnn")
    model.compile(optimizer=optimizer or tf.keras.optimizers.Adam(learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def layer_flops(model) -> dict[str, int]:
    """Floating-point operations of one forward pass of one image, per layer (a multiply-add is 2).

    Convolutions and dense layers only: pooling, ReLU and bias are a few percent and left out.
    """
    flops = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kh, kw, c_in, c_out = layer.kernel.shape
            _, h_out, w_out, _ = layer.output.shape
            flops[layer.name] = 2 * h_out * w_out * c_out * kh * kw * c_in
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            flops[layer.name] = 2 * n_in * n_out
    return flops


def flops_per_image(model) -> int:
    return sum(layer_flops(model).values())


TRAINING_FLOPS_FACTOR = 3  # backward pass: gradients for inputs and for weights, each ~ one forward


def as_inputs(mnist: Mnist, n_train: int | None = None, n_test: int | None = None):
    """(x_train, y_train, x_test, y_test) as float32 in [0, 1] with a channel axis, for Keras."""
    return (scaled(mnist.x_train[:n_train]), mnist.y_train[:n_train].astype(np.int32),
            scaled(mnist.x_test[:n_test]), mnist.y_test[:n_test].astype(np.int32))


def train_briefly(mnist: Mnist, epochs: int | None = None):
    """The course's CNN trained for a quantization demo (notebook 01): a few epochs, batch 64.

    Returns (model, x_train): the training images are the calibration set of the INT8 models.
    """
    from .cli import sized

    epochs = epochs or sized(2, 1)
    x_train, y_train, _, _ = as_inputs(mnist, sized(None, 2048))
    print(f"training the course's CNN for the quantization demo ({epochs} epoch(s))...", flush=True)
    model = build_model()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    return model, x_train


def profile_training_step(model, x, y, top: int = 12) -> list[dict]:
    """Profile one training step with TensorFlow's profiler; the ops that took the most time.

    Returns [{"op": op type, "microseconds": total, "calls": n}], summed by op type over the
    step. Op types show which kernels ran: `_MklNative...` and `_MklFused...` are oneDNN's,
    `Conv2D`, `MatMul` and `_FusedConv2D` are TensorFlow's own (Eigen).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    model.train_on_batch(x, y)  # warm-up: compile the step before measuring it
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.train_on_batch(x, y)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    return summarize_xspace(space, top)


def busiest_kernel(profile: list[dict]) -> tuple[str, float]:
    """The kernel type that took the most time in a profile, and its share of the traced time."""
    top = max(profile, key=lambda row: row["microseconds"])
    return top["op"], top["microseconds"] / sum(row["microseconds"] for row in profile)


def summarize_xspace(space, top: int = 12) -> list[dict]:
    """Sum the host's TensorFlow op events of a profile by op type (the part after ':')."""
    time_us: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the threads that run kernels
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping, not a kernel
                    continue
                op = name.rsplit(":", 1)[1]
                time_us[op] += event.duration_ps / 1e6
                calls[op] += 1
    return [{"op": op, "microseconds": round(us, 1), "calls": calls[op]}
            for op, us in time_us.most_common(top)]


class EpochLog(tf.keras.callbacks.Callback):
    """Times every epoch's training and, if `verbose`, prints a progress line every tenth of one
    (one line each, so mpirun streams it)."""

    def __init__(self, epochs: int, steps: int, images_per_step: int, verbose: bool = True):
        super().__init__()
        self.epochs, self.steps, self.images_per_step = epochs, steps, images_per_step
        self.verbose = verbose
        self.seconds: list[float] = []
        self.lines = 0  # progress lines printed

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.start = epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.trained = time.perf_counter()  # the epoch's training ends here; validation follows
        if self.verbose and ((batch + 1) % max(1, self.steps // 10) == 0 or batch + 1 == self.steps):
            rate = (batch + 1) * self.images_per_step / (self.trained - self.start)
            print(f"epoch {self.epoch + 1}/{self.epochs} {100 * (batch + 1) // self.steps:3d}%  "
                  f"loss {logs['loss']:.4f}  accuracy {logs['accuracy']:.4f}  {rate:.0f} img/s")
            self.lines += 1

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.trained - self.start)


class AfterFirstStep(tf.keras.callbacks.Callback):
    """Keeps `measure(model)` as it is after the first training step (e.g. a weights digest)."""

    def __init__(self, measure):
        super().__init__()
        self.measure, self.value = measure, None

    def on_train_batch_end(self, batch, logs=None):
        if self.value is None:
            self.value = self.measure(self.model)


def weights_digest(model) -> str:
    """A fingerprint of every weight, to show whether all ranks (workers) hold the same model."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def averages_gradients(optimizer) -> bool:
    """Whether `optimizer` is wrapped by Horovod's DistributedOptimizer (it allreduces gradients)."""
    return hasattr(optimizer, "_allreduce")


class NoIntactCheckpoint(SystemExit):
    """Every checkpoint in the folder is damaged: the run stops with one line that says so.

    A SystemExit: Python prints the message (no traceback) and the process exits with status 1.
    """


def checkpoint_damage(path: str) -> str | None:
    """Why the checkpoint `path` (e.g. .../ckpt-3) cannot be restored; None when it is intact.

    Every tensor is read back, which checks its checksum: a data file cut short (a full disk, a
    node lost while writing) or with changed bytes is found here, before any weight is touched,
    instead of as a DataLossError halfway through a restore.
    """
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError) as error:  # IndexError: a file cut short
        reason = str(getattr(error, "message", error)).strip().splitlines()[0]
        # "TensorBundle at /path/ckpt-3 shard 0 (N bytes): Checksum does not match: ...": the cause
        reason = re.sub(r"^TensorBundle at \S+ shard \d+ \(\d+ bytes\): ", "", reason)
        return reason if len(reason) <= 100 else reason[:99] + "…"
    return None


class Checkpoints(tf.keras.callbacks.Callback):
    """Model, optimizer and the number of finished epochs, saved after every epoch.

    A Keras callback: in `model.fit(callbacks=[...])` it saves at the end of every epoch.
    `restore()` loads the latest intact checkpoint (if any) and returns the epochs already done;
    a damaged latest checkpoint is skipped for the one before it (two are kept). A `fresh` start
    deletes the folder first: TensorFlow would otherwise resume, and a model that already
    trained for all its epochs would not train at all.
    """

    def __init__(self, model, directory: Path, fresh: bool = False):
        super().__init__()
        if fresh and directory.exists():
            shutil.rmtree(directory)
        self.directory = Path(directory)
        self.done = tf.Variable(0, dtype=tf.int64, name="epochs_done")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              epochs_done=self.done)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=2)
        self.saved = 0

    def restore(self) -> int:
        damaged = []
        for path in reversed(self.manager.checkpoints):  # the newest first
            problem = checkpoint_damage(path)
            if problem is None:
                break
            damaged.append(f"{Path(path).name} is damaged ({problem})")
        else:
            if damaged:
                raise NoIntactCheckpoint(
                    f"error: no intact checkpoint in {self.directory}: {'; '.join(damaged)}. "
                    "Start over with --fresh (it deletes them), or give --checkpoint-dir another folder")
            return 0
        # Create Adam's slots now, so that they are restored now, not deferred to the step that
        # creates them.
        model = self.checkpoint.model
        model.optimizer.build(model.trainable_variables)
        self.checkpoint.restore(path).assert_existing_objects_matched()
        print(("; ".join(damaged) + ": " if damaged else "")
              + f"resuming from {Path(path).name}: {int(self.done)} epoch(s) done (--fresh starts over)")
        return int(self.done)

    def restore_on_rank(self, root: int, rank: int, broadcast) -> int:
        """restore() on rank `root`; its answer goes to every rank through `broadcast(value,
        root_rank=root)` (Horovod's broadcast_object), so that all ranks start from the same epoch,
        or all stop when no checkpoint is intact (rank `root` says why), none left waiting."""
        outcome = None
        if rank == root:
            try:
                outcome = self.restore()
            except NoIntactCheckpoint as stop:
                outcome = str(stop.code)
        outcome = broadcast(outcome, root_rank=root)
        if isinstance(outcome, str):
            raise NoIntactCheckpoint(outcome if rank == root else 1)
        return outcome

    def save(self, epoch: int) -> None:
        self.done.assign(epoch + 1)
        path = self.manager.save(checkpoint_number=epoch + 1)
        self.saved += 1
        print(f"saved {Path(path).name}")

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch)


INFERENCE_BATCH = 256  # the batch the course's inference figures (and notebook 03's diagnostic) use


def evaluate(model, x_test, y_test) -> dict:
    """Test accuracy, confusion matrix, the first misclassified images ([index, predicted digit]),
    and inference speed."""
    model.predict(x_test[:INFERENCE_BATCH], batch_size=INFERENCE_BATCH, verbose=0)  # warm-up
    start = time.perf_counter()
    logits = model.predict(x_test, batch_size=INFERENCE_BATCH, verbose=0)
    seconds = time.perf_counter() - start
    predicted = logits.argmax(axis=1)
    return {
        "test_accuracy": float((predicted == y_test).mean()),
        "test_images": len(x_test),
        "confusion_matrix": tf.math.confusion_matrix(y_test, predicted, num_classes=10).numpy().tolist(),
        "misclassified": [[int(i), int(predicted[i])] for i in (predicted != y_test).nonzero()[0][:32]],
        "inference_images_per_second": len(x_test) / seconds,
    }
