"""docs/MULTINODE.md's recipes parse and launch, as far as one machine allows."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import take_results

from dlscale.env import ROOT, checkpoints_dir, results_dir

DOC = ROOT / "docs" / "MULTINODE.md"
SBATCH = ROOT / "multinode" / "course.sbatch"
DEFINITION = ROOT / "multinode" / "dl-at-scale.def"


def bash(script: str, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.mpi
def test_the_guides_one_machine_block_runs_as_written(course_env):
    blocks = re.findall(r"```bash\n# runs here\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/MULTINODE.md should have one block marked '# runs here'"
    checkpoints = checkpoints_dir() / "job_local"
    shutil.rmtree(checkpoints, ignore_errors=True)  # the Slurm script resumes from its checkpoints
    out = bash("set -euo pipefail\n" + blocks[0], course_env)
    shutil.rmtree(checkpoints, ignore_errors=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '-f "$hosts" -n 2 -ppn 1' in blocks[0]
    assert re.search(r"^\[1\] hello from rank 1 of 2", out.stdout, re.M), out.stdout[-2000:]
    assert take_results("multinode_hello")["machine"]["ranks"] == 2
    assert "weights identical on all ranks: True" in out.stdout  # the Slurm script's Horovod run
    assert take_results("job_local_horovod")["measurements"]["weights_identical"]


@pytest.mark.mpi
def test_the_slurm_script_runs_kmeans_without_slurm(course_env):
    out = bash("RUNS=kmeans bash multinode/course.sbatch", course_env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "dl-at-scale: 1 node(s) x 2 rank(s)" in out.stdout
    assert take_results("job_local_kmeans")["machine"]["ranks"] == 2
    (results_dir() / "job_local_kmeans.png").unlink()


def test_the_slurm_script_refuses_an_unknown_run(course_env):
    out = bash("RUNS=bogus bash multinode/course.sbatch", course_env, timeout=60)
    assert out.returncode == 2 and "unknown run 'bogus'" in out.stderr


def test_the_slurm_directives_are_well_formed():
    assert subprocess.run(["bash", "-n", str(SBATCH)], check=False).returncode == 0
    directives = re.findall(r"^#SBATCH (\S+)$", SBATCH.read_text(), re.M)
    options = dict(d.removeprefix("--").partition("=")[::2] for d in directives)
    assert set(options) == {"job-name", "nodes", "ntasks-per-node", "cpus-per-task", "exclusive", "time",
                            "output"}
    assert all(options[k].isdigit() for k in ("nodes", "ntasks-per-node", "cpus-per-task"))
    assert re.fullmatch(r"\d\d:\d\d:\d\d", options["time"])
    # Directives count only before the first command.
    first_command = next(i for i, line in enumerate(SBATCH.read_text().splitlines()[1:])
                         if line and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(SBATCH.read_text().splitlines()[1:])
               if line.startswith("#SBATCH"))


def test_the_container_sets_up_and_runs_as_the_course_does():
    text = DEFINITION.read_text()
    sections = dict(re.findall(r"^%(\w+)\n(.*?)(?=^%|\Z)", text, re.M | re.S))
    assert set(sections) == {"files", "post", "environment", "runscript", "test", "help"}
    assert text.startswith("Bootstrap: docker\nFrom: python:3.11-")
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^\s*make (\w[\w-]*)", sections["post"], re.M):
        assert re.search(rf"^{target}:", makefile, re.M), f"%post runs make {target}: no such target"
    exported = set(re.findall(r"export (\w+)=", sections["environment"]))
    assert {"PATH", "LD_LIBRARY_PATH", "I_MPI_ROOT"} <= exported
    assert exported - {"COURSE_ROOT"} == set(re.findall(r"export (\w+)=",
                                                         (ROOT / "tools" / "course_env.sh").read_text()))
    assert "python -m dlscale.doctor" in sections["test"]
