"""The course's data, offline: MNIST digits, photos for colour quantization, and rank sharding.

Shipped files are listed with their sha256 in data/SHA256SUMS; a file that does not match (a
truncated download, an edited file) is refused with one clear error naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .env import ROOT, quick_mode
from .rank import this_rank

DATA = ROOT / "data"
CHECKSUMS = DATA / "SHA256SUMS"
MNIST_SUBSET = DATA / "mnist-10k.npz"
# sha256 of the full MNIST file that Keras downloads (keras.datasets.mnist.load_data).
MNIST_FULL_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_FULL_PLACES = (DATA / "mnist.npz", Path.home() / ".keras" / "datasets" / "mnist.npz")


class DataError(RuntimeError):
    """A data file is missing, damaged or not what the course expects."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest() -> dict[str, str]:
    """{file name in data/: expected sha256}, read from data/SHA256SUMS."""
    if not CHECKSUMS.exists():
        return {}
    entries = {}
    for line in CHECKSUMS.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.lstrip("*")] = digest
    return entries


def verify_checksums() -> list[str]:
    """One line per shipped file that is missing or does not match its checksum."""
    if not CHECKSUMS.exists():
        return ["data/SHA256SUMS is missing"]
    problems = []
    for name, expected in manifest().items():
        path = DATA / name
        if not path.exists():
            problems.append(f"data/{name} is missing")
        elif sha256(path) != expected:
            problems.append(f"data/{name} does not match its sha256 (damaged or edited)")
    return problems


def _require_intact(path: Path, expected: str, fix: str) -> None:
    if not path.exists():
        raise DataError(f"{path} is missing. Fix: {fix}")
    if sha256(path) != expected:
        raise DataError(f"{path} is damaged or was edited (its sha256 does not match). Fix: {fix}")


@dataclass
class Mnist:
    x_train: np.ndarray  # (n, 28, 28) uint8, grey levels 0..255
    y_train: np.ndarray  # (n,) uint8, digits 0..9
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # which file was used, in words

    def __str__(self) -> str:
        return (f"MNIST from {self.source}: {len(self.x_train):,} training and "
                f"{len(self.x_test):,} test images")


def _read_mnist(path: Path, fix: str) -> dict[str, np.ndarray]:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in keys}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path} is not a readable MNIST file ({error}). Fix: {fix}") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y) or y.max(initial=0) > 9:
            raise DataError(f"{path} does not hold 28x28 MNIST digits with labels 0-9. Fix: {fix}")
    return arrays


def load_mnist(prefer_full: bool = True, verbose: bool = True) -> Mnist:
    """MNIST as uint8 arrays: the full 70,000 images where mnist.npz is present, else the shipped 10k.

    The full set is looked for in data/mnist.npz and ~/.keras/datasets/mnist.npz (`make data-full`
    puts it there where there is internet). The choice is printed (by rank 0 only).
    """
    full = next((p for p in MNIST_FULL_PLACES if p.exists()), None) if prefer_full else None
    if full is not None:
        fix = f"delete {full} and run `make data-full` again, or delete it to use the shipped subset"
        _require_intact(full, MNIST_FULL_SHA256, fix)
        arrays, source = _read_mnist(full, fix), f"the full MNIST file {full.name}"
    else:
        fix = "restore the shipped file: git checkout -- data/mnist-10k.npz"
        _require_intact(MNIST_SUBSET, manifest().get(MNIST_SUBSET.name, ""), fix)
        arrays, source = _read_mnist(MNIST_SUBSET, fix), "the shipped 10k subset data/mnist-10k.npz"
    mnist = Mnist(**{k: v.astype(np.uint8, copy=False) for k, v in arrays.items()}, source=source)
    if verbose and this_rank().rank == 0:
        print(mnist, flush=True)
    return mnist


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 digits (n, 28, 28) as float32 in [0, 1] with a channel axis (n, 28, 28, 1)."""
    return (images.astype(np.float32) / 255.0)[..., None]


def quick_test_images() -> int | None:
    """How many test images the scripts evaluate: 256 in quick mode, all of them otherwise."""
    return 256 if quick_mode() else None


def shard(n_items: int, rank: int, size: int, min_items: int = 1) -> slice:
    """Rank `rank` of `size`'s part of n_items: disjoint, covering everything, sizes differing by <= 1.

    Refuses a rank count that would leave some rank fewer than `min_items` (e.g. one batch).
    """
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in 0..{size - 1}, got {rank}")
    if n_items // size < min_items:
        raise ValueError(
            f"{n_items:,} items over {size} ranks leaves a rank only {n_items // size} "
            f"(at least {min_items} needed, e.g. one batch): use fewer ranks, a smaller batch, "
            "or more data (leave quick mode)"
        )
    return slice(rank * n_items // size, (rank + 1) * n_items // size)


SAMPLE_IMAGES = ("china.jpg", "flower.jpg")  # photos that ship with scikit-learn


def smoke_sized(image: np.ndarray, max_pixels: int = 20_000) -> np.ndarray:
    """Every n-th row and column of a photo, so that quick mode works on at most ~max_pixels."""
    step = int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / max_pixels)))
    return image[::step, ::step] if step > 1 else image


def load_image(name_or_path: str | Path) -> np.ndarray:
    """An RGB photo as a (height, width, 3) uint8 array.

    Either one of scikit-learn's sample photos ("china.jpg", "flower.jpg") or any JPEG/PNG path;
    greyscale, palette and RGBA images are converted to RGB.
    """
    if str(name_or_path) in SAMPLE_IMAGES:
        from sklearn.datasets import load_sample_image

        return load_sample_image(str(name_or_path))
    from PIL import Image, UnidentifiedImageError

    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise DataError(f"no image file {path}; give a JPEG/PNG path or one of {SAMPLE_IMAGES}")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"cannot read {path} as an image ({error}); JPEG or PNG expected") from None


def picture_from_labels(labels_by_rank: list[np.ndarray], palette: np.ndarray,
                        shape: tuple[int, ...]) -> np.ndarray:
    """The quantized picture rank 0 rebuilds: every rank's labels in rank order, each pixel given
    its palette colour, in the image's shape."""
    return palette[np.concatenate(labels_by_rank)].reshape(shape)


def image_for_run(name_or_path: str | Path, scale: int = 1) -> np.ndarray:
    """The picture a quantize_colors run works on: the photo (every n-th pixel in quick mode,
    unless it is tiled), tiled `scale` x `scale` times for a larger problem."""
    image = load_image(name_or_path)
    if quick_mode() and scale == 1:
        image = smoke_sized(image)
    return np.tile(image, (scale, scale, 1))
