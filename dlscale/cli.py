"""The course's one command-line vocabulary: every script spells the same option the same way.

    p = cli.parser(__doc__, name="cnn_mnist")        # --name, and defaults shown by --help
    cli.add_threads(p)                                # --threads (and --inter-threads for TensorFlow)
    cli.add_batch_size(p, 64)                         # --batch-size
    cli.add_data_format(p)                            # --data-format channels_last|channels_first

Defaults that shrink in quick mode come from `sized(full, quick)`, so --help shows the one in force.
Nothing here imports TensorFlow: `--help` answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .env import checkpoints_dir, output_dir, quick_mode

DATA_FORMATS = ("channels_last", "channels_first")  # NHWC (TensorFlow's default) or NCHW


def positive(kind=int):
    """An argparse type: a number of `kind` (int or float) that must be > 0, or a clear message."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be {what} > 0, got {text}")
        return value

    return parse


def zero_or_positive(text: str) -> int:
    """A thread count where 0 means "the library chooses"."""
    return 0 if text.strip() == "0" else positive(int)(text)


def sized(full, quick):
    """A default: `full` for the learner's run, `quick` in quick mode (DLSCALE_QUICK=1)."""
    return quick if quick_mode() else full


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's own "(default: ...)", left out where there is no value to show (None, a flag)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """A script's parser: the first line of its docstring, --name, and --help showing defaults."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0], formatter_class=_ShowDefaults)
    p.add_argument("--name", default=name, help="results file name (results/NAME.json)")
    return p


def add_threads(p: argparse.ArgumentParser, *, inter: bool = False, library_chooses: bool = False) -> None:
    """--threads (intra-op threads per rank; default: the rank's layout), optionally --inter-threads."""
    kind = zero_or_positive if library_chooses else positive(int)
    p.add_argument("--threads", type=kind, default=None,
                   help="threads per rank (default: the rank's layout, OMP_NUM_THREADS)"
                        + ("; 0 lets the library choose" if library_chooses else ""))
    if inter:
        p.add_argument("--inter-threads", type=kind, default=1,
                       help="TensorFlow inter-op threads (independent operations side by side)"
                            + ("; 0 lets TensorFlow choose" if library_chooses else ""))


def add_batch_size(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--batch-size", type=positive(int), default=default, help="images per step and rank")


def add_data_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-format", choices=DATA_FORMATS, default="channels_last",
                   help="tensor layout: channels_last (NHWC, TensorFlow's default) or channels_first (NCHW)")


def add_checkpoint_dir(p: argparse.ArgumentParser, folder: str) -> None:
    """--checkpoint-dir; resolve it with checkpoint_dir(args) once the arguments are parsed."""
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help=f"where checkpoints go; a relative path lies in the output folder "
                        f"(default: checkpoints/{folder} there)")
    p.set_defaults(checkpoint_folder=folder)


def checkpoint_dir(args: argparse.Namespace) -> Path:
    """The folder --checkpoint-dir names (relative: inside the output folder, as results are),
    else checkpoints/FOLDER of the output folder."""
    if args.checkpoint_dir is None:
        return checkpoints_dir() / args.checkpoint_folder
    return output_dir() / args.checkpoint_dir  # an absolute path stays as it is


def training_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """The command line of cnn_mnist.py, which cnn_mnist_hvd.py extends."""
    p = parser(doc, name)
    p.add_argument("--epochs", type=positive(int), default=sized(6, 1),
                   help="train until this many epochs are done")
    add_batch_size(p, 64)
    p.add_argument("--lr", type=positive(float), default=1e-3, help="Adam's learning rate")
    add_threads(p, inter=True)
    p.add_argument("--train-images", type=positive(int), default=sized(None, 512),
                   help="use only the first N training images (default: all)")
    add_checkpoint_dir(p, name)
    p.add_argument("--fresh", action="store_true", help="delete the checkpoints and start over")
    p.add_argument("--profile", action="store_true", help="also profile one training step")
    return p


TF_BENCH_MODELS = {  # tf_bench --model: the Keras application and its input side
    "resnet50": ("ResNet50", 224),
    "resnet101": ("ResNet101", 224),
    "vgg16": ("VGG16", 224),
    "inception_v3": ("InceptionV3", 299),
    "mobilenet_v2": ("MobileNetV2", 224),
}


def add_tf_bench_workload(p: argparse.ArgumentParser) -> None:
    """What one tf_bench run trains and for how long: scripts/tf_bench.py and its driver share it."""
    p.add_argument("--model", choices=sorted(TF_BENCH_MODELS), default="resnet50", help="network")
    add_batch_size(p, sized(16, 8))  # the workshop ran batch 16, so compare like with like
    p.add_argument("--num-batches", type=positive(int), default=sized(10, 2), help="timed steps per run")
    p.add_argument("--warmup-batches", type=positive(int), default=sized(2, 1), help="untimed steps first")
    p.add_argument("--image-size", type=positive(int), default=None,
                   help="input side in pixels (default: the model's own, 224 for resnet50)")
    add_data_format(p)
