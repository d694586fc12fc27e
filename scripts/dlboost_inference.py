"""Notebook 01: INT8 and BF16 on the CPU's DL Boost units (OpenVINO + NNCF), measured and shown running.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=2 -n 1 python -u scripts/dlboost_inference.py
    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u scripts/dlboost_inference.py
    mpirun -prepend-rank -genv OMP_NUM_THREADS=2 -genv ONEDNN_MAX_CPU_ISA=AVX512_CORE -n 1 \\
        python -u scripts/dlboost_inference.py --precisions fp32 int8

Rank 0 converts two Keras models to OpenVINO and quantizes them to INT8 with NNCF (post-training):
the course's CNN (the one int8_inference.py trained and kept in checkpoints/int8/, else one
trained briefly here), calibrated on shipped training digits, and Keras' ResNet-50 with random
weights, calibrated on synthetic images: ResNet-50 is here for speed only, accuracy is the CNN's.
Every rank then compiles each model as FP32 (inference precision f32, explicitly: CPUs with BF16
units would otherwise run "FP32" in BF16), BF16 (where the CPU has it) and INT8, with its share of
the cores (INFERENCE_NUM_THREADS) and one stream of its own (NUM_STREAMS=1): several ranks are
the whitepaper's multi-stream inference. Images/s are measured side by side at each batch size.
Rank 0 also records accuracy on the test split, sizes on disk, and the kernel every convolution
and dense layer ran (from OpenVINO's runtime model). ONEDNN_MAX_CPU_ISA, set before the engine
loads (mpirun -genv), caps the instruction set: one process per setting.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from dlscale import cli

MODELS = ("cnn", "resnet50")
PRECISIONS = ("fp32", "bf16", "int8")
HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # INT8 layers in u8/i8, the rest kept in f32


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="dlboost_inference")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="networks to run")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                   help="precisions to run (bf16 only where the CPU has BF16 instructions)")
    p.add_argument("--batch-sizes", nargs="+", type=cli.positive(int), default=[1, 32],
                   help="images per inference call")
    cli.add_threads(p)
    p.add_argument("--seconds", type=cli.positive(float), default=cli.sized(2.0, 0.25),
                   help="timed seconds per model, precision and batch size")
    p.add_argument("--resnet-image-size", type=cli.positive(int), default=cli.sized(224, 32),
                   help="ResNet-50's input side in pixels (32 at least)")
    p.add_argument("--calibration-images", type=cli.positive(int), default=cli.sized(300, 64),
                   help="images NNCF runs to measure activation ranges")
    p.add_argument("--cnn-model", type=Path, default=None,
                   help="a saved Keras model of the CNN (default: checkpoints/int8/model.keras "
                        "from int8_inference.py, else one trained briefly here)")
    cli.add_checkpoint_dir(p, "dlboost")
    p.add_argument("--fresh", action="store_true", help="convert and quantize again even if models exist")
    args = p.parse_args()
    if args.resnet_image_size < 32:
        p.error("--resnet-image-size must be 32 or more (ResNet-50 halves it five times)")
    return args


def model_folder(args, name: str) -> Path:
    side = f"_{args.resnet_image_size}px" if name == "resnet50" else ""
    return cli.checkpoint_dir(args) / f"{name}{side}"


def keras_cnn(args, mnist):
    """The course's CNN and its calibration images (training digits)."""
    import tensorflow as tf

    from dlscale.cnn import as_inputs, train_briefly
    from dlscale.env import checkpoints_dir, shown

    saved = args.cnn_model or checkpoints_dir() / "int8" / "model.keras"
    if saved.exists():
        print(f"the CNN: {shown(saved)}, trained by int8_inference.py", flush=True)
        return tf.keras.models.load_model(saved), as_inputs(mnist, args.calibration_images)[0]
    if args.cnn_model:
        raise SystemExit(f"error: no model file {args.cnn_model}")
    model, x_train = train_briefly(mnist)
    return model, x_train[:args.calibration_images]


def keras_resnet50(args):
    """ResNet-50 with random weights (nothing to download) and synthetic calibration images."""
    import tensorflow as tf

    side = args.resnet_image_size
    model = tf.keras.applications.ResNet50(weights=None, input_shape=(side, side, 3))
    images = np.random.default_rng(0).uniform(-1, 1, (args.calibration_images, side, side, 3))
    return model, images.astype(np.float32)


def convert(args, name: str, mnist) -> None:
    """Write fp32.xml/.bin (FP32 weights: no FP16 compression) and int8.xml/.bin for one model."""
    import nncf
    import openvino as ov

    from dlscale.native import native_output

    keras_model, calibration = keras_cnn(args, mnist) if name == "cnn" else keras_resnet50(args)
    print(f"{name}: converting to OpenVINO and quantizing to INT8 with NNCF "
          f"({len(calibration)} {'training digits' if name == 'cnn' else 'synthetic images'})...",
          flush=True)
    folder = model_folder(args, name)
    folder.mkdir(parents=True, exist_ok=True)
    with native_output():  # progress bars and converter chatter: shown only on failure
        model = ov.convert_model(keras_model, input=[[-1, *keras_model.input_shape[1:]]])
        ov.save_model(model, folder / "fp32.xml", compress_to_fp16=False)
        dataset = nncf.Dataset(list(calibration[:, None]))  # one image per calibration item
        quantized = nncf.quantize(model, dataset, subset_size=len(calibration))
        ov.save_model(quantized, folder / "int8.xml", compress_to_fp16=False)


def disk_bytes(folder: Path, stem: str) -> int:
    return sum((folder / f"{stem}.{ext}").stat().st_size for ext in ("xml", "bin"))


def compile_model(core, folder: Path, precision: str, batch: int, threads: int):
    model = core.read_model(folder / f"{'int8' if precision == 'int8' else 'fp32'}.xml")
    dims = model.input().get_partial_shape()  # [?, H, W, C] as converted
    model.reshape([batch, *(d.get_length() for d in list(dims)[1:])])  # static: kernels chosen for it
    return core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": HINT[precision], "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1})


def images_per_second(compiled, images: np.ndarray, seconds: float, comm) -> float:
    """Calls on one batch until `seconds` have passed (3 calls at least), after 2 untimed ones;
    every rank starts together."""
    request = compiled.create_infer_request()
    for _ in range(2):
        request.infer({0: images})
    comm.Barrier()
    calls, start = 0, time.perf_counter()
    while True:
        request.infer({0: images})
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * len(images) / elapsed


def accuracy(compiled, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy with a fixed-batch model: the last batch padded, its padding not counted."""
    batch = compiled.input(0).get_shape()[0]
    correct = 0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        logits = compiled(padded)[0]
        correct += int((logits[:len(chunk)].argmax(axis=1) == labels[start:start + batch]).sum())
    return correct / len(images)


def main() -> None:
    args = parse_args()
    from dlscale.rank import start_rank

    rank, size, threads = start_rank()  # before OpenVINO loads: the layout decides its threads
    from mpi4py import MPI

    from dlscale import dlboost, load_mnist
    from dlscale.data import quick_test_images, scaled
    from dlscale.results import write_results

    dlboost.keep_offline()
    import openvino as ov

    threads = args.threads or threads
    comm = MPI.COMM_WORLD
    mnist = load_mnist(verbose=rank == 0)
    if rank == 0:
        for name in args.models:
            folder = model_folder(args, name)
            if args.fresh or not (folder / "int8.xml").exists():
                convert(args, name, mnist)
    comm.Barrier()  # the other ranks wait for rank 0's models

    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    isa_cap = os.environ.get(dlboost.ISA_VARIABLE)
    precisions = [p for p in args.precisions if p != "bf16" or "BF16" in capabilities]
    skipped = {} if precisions == args.precisions else {
        "bf16": f"OpenVINO reports no BF16 on this CPU{' under the cap ' + isa_cap if isa_cap else ''} "
                f"(capabilities {', '.join(capabilities)}): BF16 not run"}
    if rank == 0:
        print(f"OpenVINO {ov.get_version().split('-')[0]}; CPU capabilities {', '.join(capabilities)}"
              + (f"; {dlboost.ISA_VARIABLE}={isa_cap}" if isa_cap else "")
              + "".join(f"; {why}" for why in skipped.values()), flush=True)

    trace = None  # the ISA oneDNN reports for the CNN's INT8 layers, in a process of its own, first
    if rank == 0 and "cnn" in args.models and "int8" in precisions:
        trace = dlboost.isa_trace(model_folder(args, "cnn") / "int8.xml", max(args.batch_sizes))
    x_test, y_test = scaled(mnist.x_test), mnist.y_test.astype(np.int64)
    models = {}
    for name in args.models:
        folder = model_folder(args, name)
        side = args.resnet_image_size
        sample = x_test if name == "cnn" else np.random.default_rng(rank).uniform(
            -1, 1, (max(args.batch_sizes), side, side, 3)).astype(np.float32)
        compiled = {(p, b): compile_model(core, folder, p, b, threads)
                    for p in precisions for b in args.batch_sizes}
        rates = {p: {} for p in precisions}
        for b in args.batch_sizes:  # precisions side by side at each batch size
            for p in precisions:
                rates[p][b] = images_per_second(compiled[p, b], sample[:b], args.seconds, comm)
        per_rank = comm.gather(rates, root=0)
        if rank != 0:
            continue
        largest = max(args.batch_sizes)
        kernels = {p: dlboost.layer_kernels(compiled[p, largest]) for p in precisions}
        total = {p: {str(b): sum(r[p][b] for r in per_rank) for b in args.batch_sizes} for p in precisions}
        record = {
            "images_per_second": total,
            "images_per_second_per_stream": {p: {str(b): [r[p][b] for r in per_rank]
                                                 for b in args.batch_sizes} for p in precisions},
            "bytes": {"fp32": disk_bytes(folder, "fp32"), "int8": disk_bytes(folder, "int8")},
            "kernels": kernels,
            "kernel_units": {p: dlboost.kernel_summary(rows, isa_cap) for p, rows in kernels.items()},
            "int8_layers_all_int8": dlboost.all_int8(kernels.get("int8", [])),
            **{f"{p}_over_fp32": {str(b): total[p][str(b)] / total["fp32"][str(b)] for b in args.batch_sizes}
               for p in precisions if p != "fp32" and "fp32" in precisions},
        }
        if name == "cnn":
            n = quick_test_images() or len(x_test)
            record["test_images"] = n
            record["accuracy"] = {p: accuracy(compiled[p, largest], x_test[:n], y_test[:n])
                                  for p in precisions}
            if trace:
                record["int8_trace"] = trace
        else:
            record["image_size"] = side
            record["calibration"] = "synthetic images (random weights: speed only, no accuracy)"
        models[name] = record
        for b in args.batch_sizes:
            line = ", ".join(f"{p.upper()} {total[p][str(b)]:.1f} img/s" for p in precisions)
            print(f"{name}, {size} stream(s) x {threads} thread(s), batch {b}: {line}", flush=True)

    if rank == 0:
        write_results(args.name, {
            "streams": size, "threads_per_stream": threads, "batch_sizes": args.batch_sizes,
            "seconds_per_measurement": args.seconds, "isa_cap": isa_cap,
            "openvino": {"version": ov.get_version(), "capabilities": capabilities},
            "precisions": precisions, "skipped": skipped, "models": models,
        }, threads_per_rank=threads)


if __name__ == "__main__":
    main()
