"""Notebook 00: MPI from zero. Every rank says who it is, then the ranks share a fixed amount of work.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u scripts/00_mpi_hello.py

The work is `--tasks` matrix multiplies of `--size` x `--size`, split over the ranks; each rank's
BLAS uses the rank's threads (OMP_NUM_THREADS when the launcher sets it, else the rank's share of
the cores). Rank 0 gathers the timings and writes results/NAME.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

from dlscale import cli


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="00_mpi_hello")
    p.add_argument("--tasks", type=cli.positive(int), default=cli.sized(192, 16),
                   help="matrix multiplies shared by all ranks")
    p.add_argument("--size", type=cli.positive(int), default=cli.sized(1024, 384), help="matrix size")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    from dlscale.rank import start_rank

    me = start_rank()  # sets OMP_NUM_THREADS before NumPy's BLAS loads
    import numpy as np
    from mpi4py import MPI

    from dlscale import shard
    from dlscale.results import write_results

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if args.tasks < size:
        if rank == 0:
            print(f"error: --tasks {args.tasks} leaves some of the {size} ranks without work; "
                  f"use --tasks >= {size}", flush=True)
        raise SystemExit(2)
    threads = me.threads
    cores = sorted(os.sched_getaffinity(0))
    print(f"hello from rank {rank} of {size} on {socket.gethostname()} (pid {os.getpid()}), "
          f"{threads} thread(s), may run on cores {cores}", flush=True)

    mine = range(args.tasks)[shard(args.tasks, rank, size)]
    rng = np.random.default_rng(rank)
    a = rng.standard_normal((args.size, args.size), dtype=np.float32)
    b = rng.standard_normal((args.size, args.size), dtype=np.float32)
    comm.Barrier()  # everyone starts the clock together
    start = time.perf_counter()
    for _ in mine:
        a @ b
    seconds = time.perf_counter() - start
    comm.Barrier()
    wall = time.perf_counter() - start  # until the slowest rank is done

    per_rank = comm.gather({"rank": rank, "tasks": len(mine), "seconds": seconds}, root=0)
    if rank == 0:
        flops = 2 * args.size**3 * args.tasks
        gflops = flops / wall / 1e9
        print(f"{args.tasks} multiplies of {args.size}x{args.size} on {size} rank(s) x {threads} "
              f"thread(s): {wall:.2f} s, {gflops:.1f} GFLOP/s", flush=True)
        write_results(args.name, {"tasks": args.tasks, "matrix_size": args.size, "wall_seconds": wall,
                                  "gflops": gflops, "per_rank": per_rank})


if __name__ == "__main__":
    main()
