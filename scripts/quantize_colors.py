"""Notebook 05: colour quantization of a photo with distributed K-Means (daal4py SPMD over MPI).

    mpirun -prepend-rank -genv I_MPI_DEBUG=5 -n 2 python -u scripts/quantize_colors.py --colors 16

Every rank takes its own balanced slice of the pixels (no pixel is lost, whatever the image size
and rank count); the ranks find the colours together (K-Means++ start, then Lloyd iterations, the
centroids combined over all ranks at every iteration); each rank assigns its pixels to the nearest
colour; rank 0 gathers the labels, rebuilds the whole picture and writes it with the results.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

import numpy as np

from dlscale import cli


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="quantize_colors")
    p.add_argument("--image", default="china.jpg",
                   help="a JPEG/PNG path, or scikit-learn's china.jpg / flower.jpg")
    p.add_argument("--colors", type=int, default=16, help="number of colours to keep")
    p.add_argument("--iterations", type=int, default=cli.sized(30, 5), help="Lloyd iterations")
    cli.add_threads(p)
    p.add_argument("--scale", type=cli.positive(int), default=1,
                   help="tile the image SCALE x SCALE times, for a larger problem")
    p.add_argument("--init", choices=("plusplus", "sample"), default="plusplus",
                   help="start: K-Means++ over all ranks (the workshop's), or colours drawn from the "
                        "image with --seed, the same for any rank count")
    p.add_argument("--seed", type=int, default=0, help="seed for --init sample")
    p.add_argument("--compare-sklearn", action="store_true",
                   help="rank 0 also runs scikit-learn's K-Means from the same start, same iterations")
    p.add_argument("--out", type=Path, default=None, help="quantized image (default: results/NAME.png)")
    return p.parse_args()


def refuse(message: str) -> None:
    """Bad input: every rank reaches the same verdict, rank 0 says it, and all exit at once."""
    from dlscale.rank import this_rank

    if this_rank().rank == 0:
        print(f"error: {message}", flush=True)
    raise SystemExit(2)


def packed(pixels: np.ndarray) -> np.ndarray:
    """Each RGB pixel as one integer, to count and pick distinct colours quickly."""
    rgb = pixels.astype(np.uint32)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def psnr(original: np.ndarray, quantized: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(255² / mean squared error)."""
    mse = np.mean((original.astype(np.float64) - quantized.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    args = parse_args()
    from dlscale.rank import start_rank

    rank, size, threads = start_rank()  # before daal4py loads: it reads OMP_NUM_THREADS once
    from dlscale import DataError, shard
    from dlscale.data import image_for_run, picture_from_labels
    from dlscale.env import results_dir, shown
    from dlscale.results import write_results
    from dlscale.spmd import daal4py_spmd

    threads = args.threads or threads
    if args.iterations < 0:
        refuse(f"--iterations must be >= 0, got {args.iterations}")
    clock = {"start": time.perf_counter()}

    # Read: every rank opens the image (a shared file system on a cluster) and keeps its slice.
    try:
        image = image_for_run(args.image, args.scale)
    except DataError as error:
        refuse(str(error))
    pixels = image.reshape(-1, 3)
    present = np.unique(packed(pixels))  # the image's distinct colours, packed
    distinct = len(present)
    if len(pixels) < size:
        refuse(f"{len(pixels)} pixels cannot be shared by {size} ranks: use fewer ranks")
    if not 1 <= args.colors <= distinct:
        refuse(f"--colors must be between 1 and the image's {distinct} distinct colours, got {args.colors}")
    mine = shard(len(pixels), rank, size)
    local = pixels[mine].astype(np.float64)
    clock["read"] = time.perf_counter()

    with daal4py_spmd(threads) as (d4p, comm):
        if args.init == "plusplus":
            start = d4p.kmeans_init(args.colors, method="plusPlusDense", distributed=True).compute(local)
            initial = start.centroids
        else:  # the same draw on every rank: all ranks hold the whole image
            rng = np.random.default_rng(args.seed)
            colours = rng.choice(present, args.colors, replace=False)
            initial = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
            # Nudged by under half a grey level: from whole-number starting colours, many (whole-
            # number) pixels would lie exactly halfway between two of them, and libraries break
            # such ties differently.
            initial = initial + rng.uniform(-0.25, 0.25, initial.shape)
        clock["init"] = time.perf_counter()
        trained = d4p.kmeans(args.colors, args.iterations, accuracyThreshold=0.0,
                             distributed=True).compute(local, initial)
        centroids = trained.centroids
        clock["iterate"] = time.perf_counter()
        # Inference: the same algorithm with zero iterations assigns each pixel to its nearest
        # centroid. Every rank does its own pixels: nothing needs combining.
        labels = d4p.kmeans(args.colors, 0, assignFlag=True).compute(local, centroids)
        labels = labels.assignments.ravel().astype(np.int32)
        clock["assign"] = time.perf_counter()
        counts = comm.gather(len(labels), root=0)
        gathered = np.empty(len(pixels), np.int32) if rank == 0 else None
        comm.Gatherv(labels, (gathered, counts) if rank == 0 else None, root=0)
        clock["gather"] = time.perf_counter()
        phases = ["read", "init", "iterate", "assign", "gather"]
        marks = [clock["start"], *(clock[p] for p in phases)]
        mine_seconds = dict(zip(phases, np.diff(marks).tolist(), strict=True))
        per_rank = comm.gather({"rank": rank, "host": socket.gethostname(), "pixels": len(labels),
                                "seconds": mine_seconds}, root=0)
        iterations_done = int(trained.nIterations[0, 0])

    if rank != 0:
        return
    # Rank 0 rebuilds the whole picture from every rank's labels.
    assert len(gathered) == len(pixels) and gathered.min() >= 0 and gathered.max() < args.colors
    # Inertia: the sum of squared distances from each pixel to its colour (what K-Means minimises).
    inertia = float(np.sum((pixels - centroids[gathered]) ** 2))
    palette = np.clip(np.rint(centroids), 0, 255).astype(np.uint8)
    quantized = picture_from_labels([gathered], palette, image.shape)
    out = args.out or results_dir() / f"{args.name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(quantized).save(out)
    seconds = {p: max(r["seconds"][p] for r in per_rank) for p in phases}  # the slowest rank sets the pace
    results = {
        "image": str(args.image), "height": image.shape[0], "width": image.shape[1], "pixels": len(pixels),
        "distinct_colors_before": distinct,
        "distinct_colors_after": len(np.unique(packed(palette[gathered]))),
        "colors": args.colors, "iterations": iterations_done, "init": args.init,
        "inertia": inertia, "psnr_db": psnr(image, quantized),
        "initial_centroids": initial.tolist(), "centroids": centroids.tolist(),
        "seconds": seconds, "per_rank": per_rank, "daal4py_threads_per_rank": threads,
        "output": str(out.resolve()),
    }
    print(f"{len(pixels):,} pixels, {distinct:,} colours -> {args.colors} on {size} rank(s) x {threads} "
          f"thread(s): K-Means {seconds['iterate']:.2f} s for {iterations_done} iterations, "
          f"PSNR {results['psnr_db']:.1f} dB; wrote {shown(out)}")
    if args.compare_sklearn:
        from sklearn.cluster import KMeans

        started = time.perf_counter()
        reference = KMeans(args.colors, init=initial, n_init=1, max_iter=args.iterations, tol=0.0,
                           algorithm="lloyd").fit(pixels.astype(np.float64))
        results["sklearn"] = {"seconds": time.perf_counter() - started, "inertia": float(reference.inertia_),
                              "iterations": int(reference.n_iter_),
                              "centroids": reference.cluster_centers_.tolist()}
        print(f"scikit-learn from the same start: {results['sklearn']['seconds']:.2f} s for "
              f"{reference.n_iter_} iterations, inertia {reference.inertia_:.10g} (daal4py {inertia:.10g})")
    write_results(args.name, results, threads_per_rank=threads)


if __name__ == "__main__":
    main()
