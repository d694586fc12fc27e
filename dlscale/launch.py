"""Launch a course script under `mpirun`, the way the workshop does, from a notebook or a test.

    from dlscale import mpirun
    mpirun("scripts/00_mpi_hello.py", ranks=2)

prints the command (`mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u ...`), streams
every rank's output live, and raises MPIRunError with the last lines when any rank fails.
The thread layout (threads per rank) is decided here and nowhere else.
"""

from __future__ import annotations

import collections
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .cpu import physical_cores, usable_cores
from .env import ROOT, require_mpi_environment, shown


class MPIRunError(RuntimeError):
    """An mpirun launch (or a `!mpirun` line) that did not exit with status 0."""

    def __init__(self, message: str, output: list[str] | None = None):
        super().__init__(message)
        self.output = output or []  # every line the ranks printed, for a closer look


@dataclass
class MPIRun:
    command: list[str]
    returncode: int
    seconds: float
    output: list[str]


def threads_per_rank(ranks: int, cores: int | None = None) -> int:
    """Threads each rank may use so that ranks x threads <= cores (at least one thread)."""
    if not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be a whole number >= 1, got {ranks!r}")
    return max(1, (cores or usable_cores()) // ranks)


def rank_and_size() -> tuple[int, int]:
    """This process's MPI rank and the number of ranks, read from the launcher's environment.

    Works before (and without) importing any MPI library; a plain `python script.py` is rank 0 of 1.
    """
    for rank_var, size_var in (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")):
        if rank_var in os.environ and size_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[size_var])
    return 0, 1


def start_rank() -> tuple[int, int, int]:
    """Call first in every course script. Returns (rank, size, threads per rank).

    Makes each printed line reach mpirun in one piece (with `python -u`, print() writes the text
    and the newline separately, and -prepend-rank would label the lone newline as a line of its
    own), and has rank 0 print the layout the launcher chose.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=False)
    rank, size = rank_and_size()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or threads_per_rank(size, physical_cores())
    if rank == 0:
        cores = physical_cores()
        note = " (oversubscribed on purpose?)" if size * threads > cores else ""
        print(f"layout: {size} rank(s) x {threads} thread(s) per rank on {cores} cores{note}")
    return rank, size, threads


def _python_word() -> str:
    """`python` when that resolves to this interpreter (the workshop's spelling), else its path."""
    found = shutil.which("python")
    if found and Path(found).resolve() == Path(sys.executable).resolve():
        return "python"
    return sys.executable


def mpirun_command(
    script: str | os.PathLike,
    *args,
    ranks: int = 2,
    threads: int | None = None,
    genv: dict[str, object] | None = None,
    prepend_rank: bool = True,
    options: list[str] | None = None,
) -> list[str]:
    """The seed-style command line, e.g. mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u x.py.

    A script not ending in .py is a program (such as IMB-MPI1) and runs as it is; `options` are
    more mpirun options (such as ["-f", "hostfile", "-ppn", "1"]), placed before -n.
    """
    threads = threads_per_rank(ranks) if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    command = ["mpirun"]
    if prepend_rank:
        command.append("-prepend-rank")
    for key, value in {"OMP_NUM_THREADS": threads, **(genv or {})}.items():
        command += ["-genv", f"{key}={value}"]
    program = [_python_word(), "-u", str(script)] if str(script).endswith(".py") else [str(script)]
    command += [*(options or []), "-n", str(ranks), *program, *map(str, args)]
    return command


def mpirun(
    script: str | os.PathLike,
    *args,
    ranks: int = 2,
    threads: int | None = None,
    genv: dict[str, object] | None = None,
    prepend_rank: bool = True,
    options: list[str] | None = None,
    timeout: float | None = None,
    echo: bool = True,
    tail_lines: int = 40,
) -> MPIRun:
    """Run `script` on `ranks` MPI processes with `threads` threads each; raise MPIRunError on failure.

    Relative script paths are taken from the course root, so notebooks can say "scripts/x.py";
    a name not ending in .py is a program found on PATH (mpirun("IMB-MPI1", "Allreduce")).
    """
    path = Path(script)
    program = not str(script).endswith(".py")
    if not program and not path.is_absolute() and not path.exists():
        path = ROOT / path
    if not program and not path.is_file():
        raise FileNotFoundError(f"no script {script} (looked in {Path.cwd()} and {ROOT})")
    require_mpi_environment()
    if program and not shutil.which(str(script)):
        raise FileNotFoundError(f"no program {script} on PATH (IMB-MPI1 ships with impi-rt: run make setup)")
    command = mpirun_command(path, *args, ranks=ranks, threads=threads, genv=genv,
                             prepend_rank=prepend_rank, options=options)
    printable = shlex.join(shown(word) if word == str(path) else word for word in command)
    if echo:
        print("$ " + printable, flush=True)

    output: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    start = time.perf_counter()
    # A new session lets us stop mpirun and every rank it started, not just mpirun.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1, start_new_session=True)

    def stop() -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.start()
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            output.append(line)
            tail.append(line)
            if echo:
                print(line, flush=True)
        process.wait()
    except BaseException:  # KeyboardInterrupt (the notebook's stop button) must not orphan ranks
        stop()
        process.wait()
        raise
    finally:
        if timer:
            timer.cancel()
    seconds = time.perf_counter() - start
    if timeout and seconds >= timeout:
        raise MPIRunError(
            f"mpirun did not finish within {timeout:.0f} s and was stopped: {printable}\n"
            "Last lines of output:\n" + "\n".join(tail), output
        )
    if process.returncode != 0:
        raise MPIRunError(
            f"mpirun failed with exit status {process.returncode} after {seconds:.1f} s: "
            f"{printable}\nLast lines of output:\n" + "\n".join(tail), output
        )
    return MPIRun(command, process.returncode, seconds, output)


def check_exit(exit_code: int | None, what: str = "the command above") -> None:
    """Raise when a `!command` line failed. In a notebook: `!mpirun ...` then `check_exit(_exit_code)`.

    IPython's `!` never raises, so without this a notebook (and nbval) would carry on after every
    rank crashed.
    """
    if exit_code is None:
        raise MPIRunError(f"{what} did not report an exit status (was it a `!` line?)")
    if exit_code != 0:
        raise MPIRunError(f"{what} failed with exit status {exit_code}: read its output above")
