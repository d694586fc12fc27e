"""Launch a course script under `mpirun`, the way the workshop does, from a notebook or a test.

    from dlscale import mpirun
    mpirun("scripts/00_mpi_hello.py", ranks=2)

prints the command (`mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u ...`), streams
every rank's output live, and raises MPIRunError with the last lines when any rank fails.
The layout it passes (-genv OMP_NUM_THREADS) comes from dlscale.rank.threads_per_rank.
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

from .env import course_folders, require_mpi_environment, shown
from .rank import threads_per_rank


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
    prefix: list[str] | None = None,
) -> list[str]:
    """The seed-style command line, e.g. mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u x.py.

    A script not ending in .py is a program (such as IMB-MPI1) and runs as it is; `options` are
    more mpirun options (such as ["-f", "hostfile", "-ppn", "1"]), placed before -n; `prefix` is a
    command that runs mpirun elsewhere (the mini cluster's login node: dlscale.minicluster).
    """
    threads = threads_per_rank(ranks) if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    command = [*(prefix or []), "mpirun"]
    if prepend_rank:
        command.append("-prepend-rank")
    for key, value in {"OMP_NUM_THREADS": threads, **(genv or {})}.items():
        command += ["-genv", f"{key}={value}"]
    program = [_python_word(), "-u", str(script)] if str(script).endswith(".py") else [str(script)]
    command += [*(options or []), "-n", str(ranks), *program, *map(str, args)]
    return command


def shown_command(command: list[str]) -> str:
    """The command as a learner reads it: paths inside the course folder shown relative to it."""
    text = shlex.join(command)
    for base in course_folders():
        text = text.replace(f"{base}{os.sep}", "")
    return text


TIMEOUT_VARIABLE = "DLSCALE_MPIRUN_TIMEOUT"


def mpirun(
    script: str | os.PathLike,
    *args,
    ranks: int = 2,
    threads: int | None = None,
    genv: dict[str, object] | None = None,
    prepend_rank: bool = True,
    options: list[str] | None = None,
    prefix: list[str] | None = None,
    timeout: float | None = None,
    echo: bool = True,
    tail_lines: int = 40,
) -> MPIRun:
    """Run `script` on `ranks` MPI processes with `threads` threads each; raise MPIRunError on failure.

    Relative script paths are looked for in the current folder, then in the learner's course copy
    and the installed course, so notebooks can say "scripts/x.py"; a name not ending in .py is a
    program found on PATH (mpirun("IMB-MPI1", "Allreduce")). Without a `timeout`, the seconds in
    DLSCALE_MPIRUN_TIMEOUT (the test suite sets it) cap the run, so that no launch can hang.
    """
    if timeout is None and os.environ.get(TIMEOUT_VARIABLE):
        timeout = float(os.environ[TIMEOUT_VARIABLE])
    path = Path(script)
    program = not str(script).endswith(".py")
    if not program and not path.is_absolute():
        places = (Path(), *course_folders())  # Path(): as given, relative to the current folder
        path = next((base / path for base in places if (base / path).is_file()), path)
    if not program and not path.is_file():
        raise FileNotFoundError(f"no script {script} here ({shown(Path.cwd())}) or in the course folder")
    require_mpi_environment()
    if program and not shutil.which(str(script)):
        raise FileNotFoundError(f"no program {script} on PATH (IMB-MPI1 ships with impi-rt: run make setup)")
    command = mpirun_command(path, *args, ranks=ranks, threads=threads, genv=genv,
                             prepend_rank=prepend_rank, options=options, prefix=prefix)
    printable = shown_command(command)
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


def check_exit(exit_code: int | None, what: str = "the command above", hint: str = "") -> None:
    """Raise when a `!command` line failed. In a notebook: `!mpirun ...` then `check_exit(_exit_code)`.

    IPython's `!` never raises, so without this a notebook (and nbval) would carry on after every
    rank crashed.
    """
    if exit_code is None:
        raise MPIRunError(f"{what} did not report an exit status (was it a `!` line?)")
    if exit_code != 0:
        raise MPIRunError(f"{what} failed with exit status {exit_code}: read its output above"
                          + (f". Hint: {hint}" if hint else ""))
