"""Shared helpers for the course's tests, and the guard that keeps a learner's files safe.

Every script, notebook (nbval) and benchmark the suite runs writes its results and checkpoints
to a temporary output folder (DLSCALE_OUTPUT_DIR, set here for the whole session, so nbval's
kernels and every mpirun rank inherit it). The guard proves it: before the suite, the learner's
results/ and checkpoints/ are fingerprinted (when they are empty, as on a fresh clone, a learner's
run fills them first, the way the course does: the script under mpirun, no setting given); after
the suite, anything changed, added or removed there fails the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from dlscale.env import OUTPUT_VARIABLE, ROOT, course_dir, mpi_environment, results_dir
from dlscale.launch import TIMEOUT_VARIABLE

KERNEL = "dl-at-scale"
LEARNER = course_dir(ROOT)  # the course copy the suite runs from
LEARNER_FOLDERS = (LEARNER / "results", LEARNER / "checkpoints")


def fingerprint(folders=LEARNER_FOLDERS) -> dict[str, str]:
    """{file: sha256} of everything in the learner's output folders."""
    found = {}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
            found[str(path.relative_to(LEARNER))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def learner_run(env: dict[str, str]) -> None:
    """What a learner's own runs leave behind: a results file and a checkpoint, written where the
    course writes them when no output folder is set."""
    env = {k: v for k, v in env.items() if k != OUTPUT_VARIABLE}
    for script, args in (("scripts/00_mpi_hello.py", ["--name", "learner_hello"]),
                         ("scripts/cnn_mnist.py", ["--train-images", "256", "--name", "learner_cnn"])):
        subprocess.run(["mpirun", "-n", "1", sys.executable, "-u", script, *args], cwd=LEARNER, env=env,
                       check=True, capture_output=True, timeout=300)


def pytest_configure(config):
    # Every dlscale.mpirun of the session (tests, notebooks under nbval) has a hard time limit.
    os.environ.setdefault(TIMEOUT_VARIABLE, "600")
    if os.environ.get(OUTPUT_VARIABLE):
        return  # the caller chose the output folder
    config.output_dir = Path(tempfile.mkdtemp(prefix="dlscale-test-"))
    os.environ[OUTPUT_VARIABLE] = str(config.output_dir)
    environment = mpi_environment() | {"DLSCALE_QUICK": "1"}
    config.seeded = not fingerprint()
    if config.seeded:
        learner_run(environment)
    config.learner_files = fingerprint()
    assert config.learner_files, "the learner's run left no results or checkpoints to guard"


FAST_MPI = {"test_scripts.py", "test_launch.py"}  # one short mpirun per script, and the launcher's own


def pytest_collection_modifyitems(config, items):
    """`make test-fast` (-m "not slow") keeps the units and one short mpirun per script: every
    other launch, the notebooks (nbval), the browser and the benchmarks are slow."""
    for item in items:
        launches = item.get_closest_marker("mpi") and item.path.name not in FAST_MPI
        if launches or item.path.suffix == ".ipynb" or item.path.name == "test_jupyterlab.py":
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not hasattr(config, "learner_files"):
        return
    after = fingerprint()
    changed = sorted(name for name in config.learner_files.keys() | after.keys()
                     if config.learner_files.get(name) != after.get(name))
    if config.seeded:  # leave the learner's folders as the suite found them: empty
        for folder in LEARNER_FOLDERS:
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(config.output_dir, ignore_errors=True)
    if changed:
        print(f"\nFAILED: the test suite touched the learner's files: {changed}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def course_env() -> dict[str, str]:
    """The environment `make` gives every command: the venv's Intel MPI on the paths, quick mode on."""
    return mpi_environment() | {"DLSCALE_QUICK": "1"}


@pytest.fixture
def in_course_env(course_env, monkeypatch) -> dict[str, str]:
    """Run this test's own process (and what it starts) in the course environment."""
    for key, value in course_env.items():
        monkeypatch.setenv(key, value)
    return course_env


def in_ci() -> bool:
    """True in the course's CI (.ci/run sets DLSCALE_CI=1): a test that would skip for a missing
    piece fails instead, since CI installs it. Not CI=true: the Makefile exports that for
    everyone, as OpenVINO's telemetry switch, so a learner's `make test` would fail, not skip."""
    return os.environ.get("DLSCALE_CI") == "1"


def take_results(name: str) -> dict:
    """The record a script wrote to results/NAME.json of the test output folder; the file is removed."""
    path = results_dir() / f"{name}.json"
    record = json.loads(path.read_text())
    path.unlink()
    return record


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook of code cells run by the course kernel, as nbval will see it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "DL at Scale", "language": "python"}
    nbformat.write(nb, path)
    return path


def run_nbval(notebook: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run nbval on one notebook in a separate pytest, the way `make test` runs solutions/."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", KERNEL,
         "-p", "no:cacheprovider", "-q", str(notebook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
