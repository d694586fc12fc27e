"""Every course script runs under `mpirun -n 2` in quick mode, writes its results, and refuses bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import take_results

from dlscale.env import ROOT
from dlscale.launch import MPIRunError, mpirun

pytestmark = pytest.mark.mpi
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
SINGLE_RANK = {"cnn_mnist.py"}  # trains one model on one rank; its Horovod twin uses several


def own_files(script: str, folder) -> list:
    """Arguments that keep a test's checkpoints and models out of the learner's folders."""
    return {"cnn_mnist.py": ["--fresh", "--checkpoint-dir", folder],
            "cnn_mnist_hvd.py": ["--fresh", "--checkpoint-dir", folder],
            "int8_inference.py": ["--workdir", folder],
            "quantize_colors.py": ["--out", folder / "quantized.png"]}.get(script, [])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_runs_under_mpirun_in_quick_mode(script, in_course_env, tmp_path):
    """Every script, launched as the notebooks launch it: 2 ranks (1 for single-rank scripts)."""
    name, ranks = f"test_{script.stem}", 1 if script.name in SINGLE_RANK else 2
    run = mpirun(script, "--name", name, *own_files(script.name, tmp_path), ranks=ranks, threads=1,
                 echo=False, timeout=600)
    record = take_results(name)
    assert record["machine"]["ranks"] == ranks and record["machine"]["quick_mode"] is True
    assert f"[0] layout: {ranks} rank(s)" in "\n".join(run.output)


def test_single_rank_scripts_refuse_several_ranks(in_course_env):
    with pytest.raises(MPIRunError, match="trains on one rank, not 2"):
        mpirun("scripts/cnn_mnist.py", ranks=2, threads=1, echo=False)


def test_mpi_hello_splits_the_work_over_every_rank(in_course_env):
    mpirun("scripts/00_mpi_hello.py", "--tasks", "7", "--name", "test_split", ranks=4, threads=1,
           echo=False)
    per_rank = take_results("test_split")["measurements"]["per_rank"]
    assert sorted(p["rank"] for p in per_rank) == [0, 1, 2, 3]
    assert sum(p["tasks"] for p in per_rank) == 7 and min(p["tasks"] for p in per_rank) >= 1


def test_mpi_hello_refuses_ranks_without_work(in_course_env):
    with pytest.raises(MPIRunError, match="leaves some of the 4 ranks without work"):
        mpirun("scripts/00_mpi_hello.py", "--tasks", "3", ranks=4, threads=1, echo=False)


def test_mpi_hello_refuses_bad_values(in_course_env):
    out = subprocess.run([sys.executable, "scripts/00_mpi_hello.py", "--size", "0"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "--size: must be a whole number > 0, got 0" in out.stderr
