"""Who this process is in an MPI job, and how many threads it may use: decided here, once.

    from dlscale.rank import start_rank
    me = start_rank()          # first thing in every course script, after parsing its arguments
    me.rank, me.size, me.threads

Everything else (TensorFlow's thread pools, daal4py's, the results record, what a script
prints) takes `me.threads` instead of working it out again. The layout comes from, in order:
OMP_NUM_THREADS when the launcher (or the learner) set it, else the cores this rank may run on,
shared with the other ranks of its node unless mpirun pinned each rank to its own cores. So a
plain `mpirun -n 2 python scripts/x.py`, or one inside a Slurm allocation, gets real numbers too.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import NamedTuple

from .cpu import physical_cores, usable_cores


class RankLayout(NamedTuple):
    rank: int  # this process's MPI rank
    size: int  # ranks in the job
    threads: int  # threads this rank uses (OpenMP, TensorFlow's intra-op pool, daal4py)


def threads_per_rank(ranks: int, cores: int | None = None) -> int:
    """Threads each of `ranks` ranks may use so that ranks x threads <= cores (at least one).

    The one place the course divides cores among ranks: the launcher uses it for the layout it
    passes with -genv OMP_NUM_THREADS, a rank started without one uses it for itself.
    """
    if not isinstance(ranks, int) or isinstance(ranks, bool) or ranks < 1:
        raise ValueError(f"ranks must be a whole number >= 1, got {ranks!r}")
    return max(1, (cores or usable_cores()) // ranks)


def _first_int(*names: str) -> int | None:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return None


def rank_and_size() -> tuple[int, int]:
    """This process's MPI rank and the number of ranks, from the launcher's environment.

    Works before (and without) importing any MPI library; a plain `python script.py` is rank 0 of 1.
    """
    rank = _first_int("PMI_RANK", "OMPI_COMM_WORLD_RANK")  # Intel MPI / MPICH (also under Slurm), Open MPI
    size = _first_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
    return (rank, size) if rank is not None and size is not None else (0, 1)


def ranks_on_this_node() -> int:
    """How many ranks of this job share this machine (Intel MPI / MPICH, Open MPI)."""
    return _first_int("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE") or rank_and_size()[1]


@functools.cache
def this_rank() -> RankLayout:
    """The layout of this process, decided once (see the module's docstring)."""
    rank, size = rank_and_size()
    chosen = _first_int("OMP_NUM_THREADS")
    if chosen:
        return RankLayout(rank, size, chosen)
    local = ranks_on_this_node()
    pinned = local > 1 and len(os.sched_getaffinity(0)) * local <= (os.cpu_count() or 1)
    # Intel MPI pins each rank to its own share of the cores by default: then this rank's cores
    # are all its own; unpinned ranks share the machine's.
    return RankLayout(rank, size, usable_cores() if pinned else threads_per_rank(local))


def start_rank() -> RankLayout:
    """Call first in every course script, before TensorFlow, NumPy's BLAS or daal4py load.

    Sets OMP_NUM_THREADS to the rank's threads (the libraries read it when they load), makes each
    printed line reach mpirun in one piece (with `python -u`, print() writes the text and the
    newline separately, and -prepend-rank would label the lone newline as a line of its own),
    and has rank 0 print the layout.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=False)
    me = this_rank()
    os.environ["OMP_NUM_THREADS"] = str(me.threads)
    if me.rank == 0:
        cores = physical_cores()
        note = " (oversubscribed on purpose?)" if ranks_on_this_node() * me.threads > cores else ""
        print(f"layout: {me.size} rank(s) x {me.threads} thread(s) per rank on {cores} cores{note}")
    return me
