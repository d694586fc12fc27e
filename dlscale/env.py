"""Where the course lives, where its outputs go, and the environment MPI needs.

The installed course (ROOT: data, scripts, the venv) may serve many learners, each working in
their own copy of the course folder. Results and checkpoints go to the folder DLSCALE_OUTPUT_DIR
names, else to results/ and checkpoints/ of the learner's copy: the course folder the current
directory lies in (ROOT when it lies in none). The test suite points DLSCALE_OUTPUT_DIR at a
temporary folder, so a test run never touches a learner's measurements.

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
OUTPUT_VARIABLE = "DLSCALE_OUTPUT_DIR"  # the one setting that says where results and checkpoints go


def quiet_tensorflow() -> None:
    """TensorFlow's start-up chatter hides the lesson: keep its C++ log to warnings and errors.

    Read once, when TensorFlow loads: `import dlscale` calls this, before any TensorFlow import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def course_dir(start: str | os.PathLike | None = None) -> Path:
    """The learner's copy of the course: the nearest folder at or above `start` (default: the
    current directory) that holds scripts/ and solutions/; ROOT when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "scripts").is_dir() and (folder / "solutions").is_dir():
            return folder
    return ROOT


def output_dir() -> Path:
    """Where results/ and checkpoints/ live: DLSCALE_OUTPUT_DIR, else the learner's course copy."""
    chosen = os.environ.get(OUTPUT_VARIABLE, "").strip()
    return Path(chosen).expanduser().resolve() if chosen else course_dir()


def results_dir() -> Path:
    return output_dir() / "results"


def checkpoints_dir() -> Path:
    return output_dir() / "checkpoints"


def course_folders() -> tuple[Path, ...]:
    """The learner's copy of the course, then the installed course (one folder when they are one)."""
    return tuple(dict.fromkeys((course_dir(), ROOT)))


def shown(path: str | os.PathLike) -> str:
    """A path as seen from the course folder (no machine-specific prefix) when it lies inside it."""
    resolved = Path(path).resolve()
    for base in course_folders():
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
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
