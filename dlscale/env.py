"""Where the course lives and the environment MPI needs (PATH, LD_LIBRARY_PATH, I_MPI_ROOT).

Intel MPI from PyPI installs into the virtual environment itself: `mpirun` in `.venv/bin`,
`libmpi.so.12` in `.venv/lib`. Processes started by mpirun find that library only through
LD_LIBRARY_PATH, and the compiler wrappers only through I_MPI_ROOT, so every way into the course
(the Makefile, the Jupyter kernel, a terminal) must carry these three variables.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the course repository
VENV = Path(sys.prefix)
QUICK_VARIABLE = "DLSCALE_QUICK"  # the one switch that shrinks every notebook and script


def shown(path: str | os.PathLike) -> str:
    """A path as seen from the course folder (no machine-specific prefix) when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def quick_mode() -> bool:
    """True when the course runs as a smoke test (CI), False for the learner's full run."""
    return os.environ.get(QUICK_VARIABLE, "0").strip().lower() not in ("", "0", "false", "no")


def mpi_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The variables that make this venv's Intel MPI work, merged into `base` (default os.environ)."""
    base = dict(os.environ if base is None else base)
    bin_dir, lib_dir = str(VENV / "bin"), str(VENV / "lib")

    def prepend(value: str | None, entry: str) -> str:
        parts = [p for p in (value or "").split(os.pathsep) if p and p != entry]
        return os.pathsep.join([entry, *parts])

    base["PATH"] = prepend(base.get("PATH"), bin_dir)
    base["LD_LIBRARY_PATH"] = prepend(base.get("LD_LIBRARY_PATH"), lib_dir)
    base["I_MPI_ROOT"] = str(VENV)
    return base


def export_line() -> str:
    """A shell line that sets the MPI environment, for error messages and the README."""
    return (
        f"export PATH={shlex.quote(str(VENV / 'bin'))}:$PATH "
        f"LD_LIBRARY_PATH={shlex.quote(str(VENV / 'lib'))} I_MPI_ROOT={shlex.quote(str(VENV))}"
    )


def mpi_environment_problems(env: dict[str, str] | None = None) -> list[str]:
    """What is wrong with `env` (default os.environ) for running this venv's MPI; empty if nothing."""
    env = os.environ if env is None else env
    problems = []
    mpirun = shutil.which("mpirun", path=env.get("PATH", ""))
    if mpirun is None:
        problems.append("no `mpirun` on PATH")
    elif Path(mpirun).resolve().parent != (VENV / "bin").resolve():
        problems.append(f"`mpirun` on PATH is {mpirun}, not the course's Intel MPI in {VENV / 'bin'}")
    lib_dirs = [Path(p).resolve() for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if (VENV / "lib").resolve() not in lib_dirs:
        problems.append(
            f"{VENV / 'lib'} is not on LD_LIBRARY_PATH, so Horovod cannot load libmpi.so.12"
        )
    if Path(env.get("I_MPI_ROOT", "/nonexistent")).resolve() != VENV.resolve():
        problems.append(f"I_MPI_ROOT is {env.get('I_MPI_ROOT', 'unset')}, not {VENV}")
    return problems


class MPIEnvironmentError(OSError):
    """PATH, LD_LIBRARY_PATH or I_MPI_ROOT do not point at the course's Intel MPI."""


ENVIRONMENT_FIX = (
    "start the course with `make lab` (its kernel carries the variables), run commands through "
    "`make`, or in a terminal: {export}"
)


def require_mpi_environment() -> None:
    """Raise a clear error, naming the fix, when MPI would not work from this process."""
    problems = mpi_environment_problems()
    if problems:
        raise MPIEnvironmentError(
            "MPI is not set up in this environment: "
            + "; ".join(problems)
            + ".\nFix: "
            + ENVIRONMENT_FIX.format(export=export_line())
        )
