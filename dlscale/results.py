"""One results format for the whole course: what a script measured, plus the machine it ran on.

Scripts call `write_results("00_mpi_hello", {...})` (rank 0 writes; other ranks do nothing);
notebooks and benchmarks call `read_results("00_mpi_hello")` and plot with dlscale.plots.
Files live in results/NAME.json of the output folder (dlscale.env.results_dir: the learner's
copy of the course, or DLSCALE_OUTPUT_DIR), and are not committed: they are the learner's own
measurements.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from importlib import metadata
from pathlib import Path

from .cpu import cpu_facts
from .env import quick_mode, results_dir, shown
from .rank import this_rank

LIBRARIES = ("tensorflow-cpu", "keras", "horovod", "openvino", "nncf", "scikit-learn-intelex",
             "scikit-learn", "numpy", "impi-rt", "mpi4py")


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_facts(ranks: int | None = None, threads_per_rank: int | None = None) -> dict:
    """The facts every results file carries, so numbers from different machines can be compared."""
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_facts(),
        "ranks": ranks if ranks is not None else this_rank().size,
        "threads_per_rank": threads_per_rank if threads_per_rank is not None else this_rank().threads,
        "python": platform.python_version(),
        "libraries": library_versions(),
        "quick_mode": quick_mode(),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, measurements: dict, *, ranks: int | None = None,
                  threads_per_rank: int | None = None, folder: Path | None = None) -> Path | None:
    """Write results/NAME.json on rank 0 (returns its path; None on other ranks).

    `ranks` and `threads_per_rank` default to this process's layout (dlscale.rank.this_rank).
    """
    if this_rank().rank != 0:
        return None
    folder = folder or results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = {"name": name, "measurements": measurements,
              "machine": machine_facts(ranks, threads_per_rank)}
    # A reader never sees half a file, and two runs writing the same name never share a half file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record, indent=2, default=float) + "\n")
    partial.replace(path)
    return path


def read_results(name: str, folder: Path | None = None) -> dict:
    """The record a script wrote; a clear error when the script has not been run yet."""
    path = (folder or results_dir()) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no {shown(path)} yet: run the cell that launches the script first")
    return json.loads(path.read_text())


def all_results(folder: Path | None = None) -> list[dict]:
    """Every results file in the folder (the learner's and any copied in from other machines).

    Other JSON there (a Horovod timeline, a half-written file) is not a results record: skipped.
    """
    records = []
    for path in sorted((folder or results_dir()).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and {"name", "measurements", "machine"} <= record.keys():
            records.append(record)
    return records
