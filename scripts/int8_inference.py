"""Notebook 01: post-training INT8 quantization of the MNIST CNN, measured against FP32 (TFLite).

    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 1 python -u scripts/int8_inference.py --batch-size 1
    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u scripts/int8_inference.py --batch-size 1

The first run trains the course's CNN briefly (or takes --model, a saved Keras model), converts it
to an FP32 and a full-INT8 TFLite model (calibrated on shipped MNIST training images) and keeps
both in --checkpoint-dir. Every rank then runs one inference stream per model with --threads
threads, --batch-size images per call, for --iterations calls: with several ranks, that is the whitepaper's
multi-stream inference. Rank 0 also measures model sizes and accuracy on the test split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dlscale import cli


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="int8_inference")
    p.add_argument("--model", type=Path, default=None,
                   help="a saved Keras model to quantize (default: train the course's CNN briefly)")
    cli.add_batch_size(p, 1)
    cli.add_threads(p)
    p.add_argument("--iterations", type=cli.positive(int), default=cli.sized(1000, 50),
                   help="timed inference calls per model")
    cli.add_checkpoint_dir(p, "int8")
    p.add_argument("--fresh", action="store_true", help="train and convert again even if models exist")
    return p.parse_args()


def build_tflite_models(args, mnist, workdir: Path) -> None:
    """Train (or load) the FP32 Keras model, then write fp32.tflite and int8.tflite."""
    import tensorflow as tf

    from dlscale.cnn import as_inputs, train_briefly
    from dlscale.native import native_output

    if args.model:
        if not args.model.exists():
            raise SystemExit(f"error: no model file {args.model}")
        model = tf.keras.models.load_model(args.model)
        x_train = as_inputs(mnist, cli.sized(None, 2048))[0]
    else:
        model, x_train = train_briefly(mnist)
    workdir.mkdir(parents=True, exist_ok=True)
    model.save(workdir / "model.keras")
    def calibration():  # the representative data set: real images, to measure activation ranges
        for image in x_train[:200]:
            yield [image[None]]

    print("converting it to FP32 and full-INT8 TFLite models...", flush=True)
    with native_output():  # the converter prints pages of MLIR diagnostics: shown only on failure
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        (workdir / "fp32.tflite").write_bytes(converter.convert())
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
        (workdir / "int8.tflite").write_bytes(converter.convert())


class Stream:
    """One TFLite interpreter with a fixed batch size; inputs quantized beforehand if INT8."""

    def __init__(self, path: Path, batch: int, threads: int):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.interpreter.resize_tensor_input(self.input["index"], [batch, 28, 28, 1])
        self.interpreter.allocate_tensors()
        self.batch = batch

    def prepare(self, images: np.ndarray) -> np.ndarray:
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] == np.int8:  # real = scale * (q - zero_point)
            return np.clip(np.rint(images / scale + zero_point), -128, 127).astype(np.int8)
        return images

    def run(self, prepared: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def accuracy(self, images, labels) -> float:
        correct = 0
        for start in range(0, len(images) - self.batch + 1, self.batch):
            logits = self.run(self.prepare(images[start:start + self.batch]))
            correct += int((logits.argmax(axis=1) == labels[start:start + self.batch]).sum())
        return correct / (len(images) // self.batch * self.batch)

    def images_per_second(self, images, iterations: int) -> float:
        batches = [self.prepare(images[i * self.batch % (len(images) - self.batch):][:self.batch])
                   for i in range(16)]
        for prepared in batches[:4]:
            self.run(prepared)  # warm-up
        start = time.perf_counter()
        for i in range(iterations):
            self.run(batches[i % len(batches)])
        return iterations * self.batch / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    from dlscale.rank import start_rank

    rank, size, threads = start_rank()  # before TensorFlow loads: it reads OMP_NUM_THREADS once
    from mpi4py import MPI

    from dlscale import load_mnist
    from dlscale.cnn import as_inputs
    from dlscale.data import quick_test_images
    from dlscale.results import write_results

    threads = args.threads or threads
    workdir = cli.checkpoint_dir(args)
    comm = MPI.COMM_WORLD
    mnist = load_mnist(verbose=rank == 0)
    rebuild = args.fresh or args.model is not None or not (workdir / "int8.tflite").exists()
    if rank == 0 and rebuild:
        build_tflite_models(args, mnist, workdir)
    comm.Barrier()  # the other ranks wait for rank 0's models

    _, _, x_test, y_test = as_inputs(mnist)
    streams = {kind: Stream(workdir / f"{kind}.tflite", args.batch_size, threads)
               for kind in ("fp32", "int8")}
    comm.Barrier()  # all streams start together
    mine = {kind: stream.images_per_second(x_test, args.iterations) for kind, stream in streams.items()}
    per_rank = comm.gather(mine, root=0)
    if rank != 0:
        return
    totals = {kind: sum(r[kind] for r in per_rank) for kind in streams}
    evaluated = x_test[:quick_test_images()]
    results = {
        "batch_size": args.batch_size, "threads_per_stream": threads, "streams": size,
        "iterations": args.iterations,
        "model_bytes": {kind: (workdir / f"{kind}.tflite").stat().st_size for kind in streams},
        "accuracy": {kind: s.accuracy(evaluated, y_test[:len(evaluated)]) for kind, s in streams.items()},
        "test_images": len(evaluated),
        "images_per_second_per_stream": per_rank,
        "images_per_second_total": totals,
        "int8_speedup": totals["int8"] / totals["fp32"],
    }
    print(f"{size} stream(s) x {threads} thread(s), batch {args.batch_size}: "
          f"FP32 {totals['fp32']:.0f} img/s, "
          f"INT8 {totals['int8']:.0f} img/s ({results['int8_speedup']:.2f}x); accuracy FP32 "
          f"{results['accuracy']['fp32']:.4f}, INT8 {results['accuracy']['int8']:.4f}; size "
          f"{results['model_bytes']['fp32'] / 1e6:.1f} MB -> {results['model_bytes']['int8'] / 1e6:.1f} MB")
    write_results(args.name, results, threads_per_rank=threads)


if __name__ == "__main__":
    main()
