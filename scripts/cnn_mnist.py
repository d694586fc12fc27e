"""Notebook 03: train the workshop's MNIST CNN on the CPU, with checkpoints, and measure it.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=2 -n 1 python -u scripts/cnn_mnist.py --epochs 6

Set TF_ENABLE_ONEDNN_OPTS=0 or 1 (e.g. `-genv TF_ENABLE_ONEDNN_OPTS=1`) to run TensorFlow's own
kernels or oneDNN's. A checkpoint is saved after every epoch; a re-run resumes from the last intact one
unless --fresh is given. Results (accuracy, learning curve, confusion matrix, images/s, GFLOP/s,
optionally a profile of one training step) go to results/NAME.json. --precision mixed_bfloat16
trains with Keras' BF16 policy (oneDNN runs BF16 kernels where the CPU has AVX512_BF16 or AMX).
"""

from __future__ import annotations

from dlscale import cli


def main() -> None:
    p = cli.training_parser(__doc__, "cnn_mnist")
    p.add_argument("--precision", choices=("fp32", "mixed_bfloat16"), default="fp32",
                   help="fp32, or Keras' mixed_bfloat16 policy: BF16 compute, FP32 weights (notebook 01)")
    args = p.parse_args()
    from dlscale.rank import start_rank

    _, size, threads = start_rank()  # before TensorFlow loads: it reads OMP_NUM_THREADS once
    if size > 1:  # every rank would train its own copy and write the same checkpoints
        raise SystemExit(f"cnn_mnist.py trains on one rank, not {size}: launch it with -n 1, "
                         "or use cnn_mnist_hvd.py to train on several")
    from dlscale import cnn, load_mnist  # cnn imports TensorFlow
    from dlscale.cpu import nominal_fp32_gflops
    from dlscale.data import quick_test_images
    from dlscale.results import write_results

    tf_info = cnn.configure_tensorflow(args.threads or threads, args.inter_threads)
    if args.precision == "mixed_bfloat16":  # before the model is built: its layers take the policy
        cnn.tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    print(f"oneDNN {'on' if tf_info['onednn'] else 'off'}; {tf_info['intra_op_threads']} intra-op "
          f"and {tf_info['inter_op_threads']} inter-op thread(s)")
    x_train, y_train, x_test, y_test = cnn.as_inputs(load_mnist(), args.train_images, quick_test_images())
    model = cnn.build_model(args.lr)
    checkpoints = cnn.Checkpoints(model, cli.checkpoint_dir(args), fresh=args.fresh)
    first_epoch = checkpoints.restore()
    if first_epoch >= args.epochs:
        print(f"already trained for {first_epoch} epoch(s): nothing to train (more --epochs, or --fresh)")

    steps = -(-len(x_train) // args.batch_size)
    log = cnn.EpochLog(args.epochs, steps, args.batch_size)
    history = model.fit(x_train, y_train, batch_size=args.batch_size, initial_epoch=first_epoch,
                        epochs=args.epochs, validation_data=(x_test, y_test), verbose=0,
                        callbacks=[log, checkpoints])

    results = cnn.evaluate(model, x_test, y_test)
    flops = cnn.flops_per_image(model)
    train_rate = len(x_train) / min(log.seconds) if log.seconds else None  # the fastest epoch
    results |= {
        "train_images": len(x_train),
        "epochs_done": first_epoch + len(log.seconds), "resumed_from_epoch": first_epoch,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "epoch_seconds": log.seconds,
        "train_images_per_second": train_rate,
        "forward_flops_per_image": flops,
        "train_gflops": train_rate and train_rate * cnn.TRAINING_FLOPS_FACTOR * flops / 1e9,
        "inference_gflops": results["inference_images_per_second"] * flops / 1e9,
        "nominal_fp32_gflops": nominal_fp32_gflops(tf_info["intra_op_threads"]),
        "tensorflow": tf_info, "batch_size": args.batch_size, "learning_rate": args.lr,
        "precision": args.precision,
    }
    if args.profile:
        results["profile"] = cnn.profile_training_step(model, x_train[:args.batch_size],
                                                   y_train[:args.batch_size])
    print(f"test accuracy {results['test_accuracy']:.4f}; training "
          + (f"{train_rate:.0f} img/s" if train_rate else "skipped")
          + f"; inference {results['inference_images_per_second']:.0f} img/s")
    write_results(args.name, results, threads_per_rank=tf_info["intra_op_threads"])


if __name__ == "__main__":
    main()
