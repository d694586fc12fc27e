"""Every course script runs under `mpirun -n 2` in quick mode, writes its results, speaks the course's one
option vocabulary, and refuses bad input."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import take_results

from dlscale.env import ROOT
from dlscale.launch import MPIRunError, mpirun

pytestmark = pytest.mark.mpi
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
SINGLE_RANK = {"cnn_mnist.py"}  # trains one model on one rank; its Horovod twin uses several
HOROVODRUN = {"cnn_mnist_elastic.py"}  # started by horovodrun, not mpirun: tests/test_elastic.py runs it


def own_files(script: str, folder) -> list:
    """Arguments that give a test its own, fresh checkpoints (the output folder is the session's)."""
    return ["--fresh", "--checkpoint-dir", folder] if script in TRAINING else []


TRAINING = {"cnn_mnist.py", "cnn_mnist_hvd.py", "cnn_mnist_mwms.py", "int8_inference.py",
            "dlboost_inference.py"}
# The one vocabulary (dlscale.cli): each script and the shared options it takes.
VOCABULARY = {
    "00_mpi_hello.py": {"--name"},
    "cnn_mnist.py": {"--name", "--batch-size", "--threads", "--inter-threads", "--checkpoint-dir"},
    "cnn_mnist_hvd.py": {"--name", "--batch-size", "--threads", "--inter-threads", "--checkpoint-dir"},
    "cnn_mnist_mwms.py": {"--name", "--batch-size", "--threads", "--inter-threads", "--checkpoint-dir"},
    "cnn_mnist_elastic.py": {"--name", "--batch-size", "--threads"},
    "int8_inference.py": {"--name", "--batch-size", "--threads", "--checkpoint-dir"},
    "dlboost_inference.py": {"--name", "--threads", "--checkpoint-dir"},  # --batch-sizes: a list
    "onednn_bench.py": {"--name", "--batch-size", "--threads", "--inter-threads", "--data-format"},
    "quantize_colors.py": {"--name", "--threads"},
    "roofline.py": {"--name", "--threads"},
    "tf_bench.py": {"--name", "--batch-size", "--threads", "--inter-threads", "--data-format"},
}
BAD_VALUES = [  # (script, option, value, what the error says)
    ("00_mpi_hello.py", "--size", "0", "must be a whole number > 0, got 0"),
    ("00_mpi_hello.py", "--tasks", "x", "expected a whole number, got 'x'"),
    ("cnn_mnist.py", "--epochs", "0", "must be a whole number > 0"),
    ("cnn_mnist.py", "--lr", "-1", "must be a number > 0, got -1"),
    ("cnn_mnist_hvd.py", "--crash-rank", "-1", "must be a rank number >= 0"),
    ("cnn_mnist_elastic.py", "--batches-per-commit", "0", "must be a whole number > 0, got 0"),
    ("cnn_mnist_mwms.py", "--connect-timeout", "-1", "must be a number > 0, got -1"),
    ("int8_inference.py", "--iterations", "-5", "must be a whole number > 0"),
    ("dlboost_inference.py", "--resnet-image-size", "16", "must be 32 or more"),
    ("dlboost_inference.py", "--batch-sizes", "0", "must be a whole number > 0, got 0"),
    ("dlboost_inference.py", "--precisions", "int4", "invalid choice: 'int4'"),
    ("onednn_bench.py", "--data-format", "NCHW", "invalid choice: 'NCHW'"),
    ("quantize_colors.py", "--scale", "0", "must be a whole number > 0"),
    ("tf_bench.py", "--model", "alexnet", "invalid choice: 'alexnet'"),
    ("roofline.py", "--size", "0", "must be a whole number > 0, got 0"),
    ("roofline.py", "--seconds", "-1", "must be a number > 0, got -1"),
    ("roofline.py", "--precisions", "fp16", "invalid choice: 'fp16'"),
    *[(script, option, value, message) for script, options in VOCABULARY.items() for option in options
      for value, message in (("0", "must be a whole number > 0, got 0"), ("two", "expected a whole number"))
      if option in ("--batch-size", "--threads", "--inter-threads")
      and not (script == "tf_bench.py" and value == "0")],  # tf_bench: 0 threads lets TensorFlow choose
]


def help_text(script: str) -> str:
    out = subprocess.run([sys.executable, f"scripts/{script}", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)
    return out.stdout


@pytest.mark.parametrize("script", sorted(VOCABULARY))
def test_every_script_speaks_the_one_vocabulary(script):
    """Same spelling for the same option everywhere, defaults shown by --help, and no script left out."""
    assert sorted(VOCABULARY) == [p.name for p in SCRIPTS]
    text = help_text(script)
    assert {option for option in VOCABULARY[script]} <= set(re.findall(r"--[a-z-]+", text))
    assert not {"--batch", "--intra", "--inter", "--workdir"} & set(re.findall(r"--[a-z-]+\b", text))
    assert "--name NAME" in text and "(default: " in text


@pytest.mark.parametrize(("script", "option", "value", "message"), BAD_VALUES,
                         ids=[f"{s}{o}={v}" for s, o, v, _ in BAD_VALUES])
def test_bad_values_get_one_clear_line(script, option, value, message):
    out = subprocess.run([sys.executable, f"scripts/{script}", option, value], cwd=ROOT, capture_output=True,
                         text=True, check=False, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"argument {option}:" in out.stderr or f"{option} " in out.stderr
    assert message in out.stderr, out.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name not in HOROVODRUN], ids=lambda p: p.name)
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


def test_a_plain_mpirun_prints_real_numbers(course_env, tmp_path):
    """No -genv OMP_NUM_THREADS (Slurm's or a learner's own mpirun): the rank decides its layout itself."""
    env = {k: v for k, v in course_env.items() if k != "OMP_NUM_THREADS"}
    command = ["mpirun", "-prepend-rank", "-n", "2", sys.executable, "-u", "scripts/00_mpi_hello.py",
               "--name", "test_plain"]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "None" not in out.stdout
    threads = take_results("test_plain")["machine"]["threads_per_rank"]
    assert isinstance(threads, int) and threads >= 1
    assert re.search(rf"\[0\] hello from rank 0 of 2 .*, {threads} thread\(s\)", out.stdout), out.stdout
