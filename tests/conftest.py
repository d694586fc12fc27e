"""Shared helpers for the course's tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dlscale.env import ROOT, mpi_environment

KERNEL = "dl-at-scale"


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


def take_results(name: str) -> dict:
    """The record a script wrote to results/NAME.json; the file is removed (tests leave no results)."""
    path = ROOT / "results" / f"{name}.json"
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
