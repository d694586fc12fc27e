"""The mpirun launcher: the command it builds, the thread layout, and failing loudly."""

from __future__ import annotations

import os

import pytest

from dlscale import rank
from dlscale.env import ROOT, mpi_environment_problems, shown
from dlscale.launch import TIMEOUT_VARIABLE, MPIRunError, check_exit, mpirun, mpirun_command
from dlscale.rank import threads_per_rank


@pytest.mark.parametrize(("ranks", "cores", "threads"),
                         [(1, 2, 2), (2, 2, 1), (4, 2, 1), (2, 16, 8), (3, 16, 5)])
def test_threads_never_oversubscribe_unless_ranks_exceed_cores(ranks, cores, threads):
    assert threads_per_rank(ranks, cores) == threads
    assert ranks * threads <= max(cores, ranks)


@pytest.mark.parametrize("ranks", [0, -1, 1.5, "2"])
def test_bad_rank_counts_are_refused(ranks):
    with pytest.raises(ValueError, match="ranks must be"):
        threads_per_rank(ranks)


def test_command_is_the_workshops_seed_line():
    command = mpirun_command("scripts/x.py", "--epochs", 1, ranks=2, threads=1,
                             genv={"I_MPI_DEBUG": 5})
    assert command[:8] == ["mpirun", "-prepend-rank", "-genv", "OMP_NUM_THREADS=1",
                           "-genv", "I_MPI_DEBUG=5", "-n", "2"]
    assert command[9:] == ["-u", "scripts/x.py", "--epochs", "1"]


def test_a_program_runs_as_it_is_with_mpirun_options_before_the_ranks():
    command = mpirun_command("IMB-MPI1", "Allreduce", ranks=4, threads=1, prepend_rank=False,
                             options=["-f", "hosts", "-ppn", "2"])
    assert command == ["mpirun", "-genv", "OMP_NUM_THREADS=1", "-f", "hosts", "-ppn", "2", "-n", "4",
                       "IMB-MPI1", "Allreduce"]


def test_launcher_refuses_a_missing_program(in_course_env):
    with pytest.raises(FileNotFoundError, match="no program IMB-NOPE on PATH"):
        mpirun("IMB-NOPE")


def test_bad_thread_counts_are_refused():
    with pytest.raises(ValueError, match="threads must be"):
        mpirun_command("x.py", ranks=1, threads=0)


def test_rank_and_size_come_from_the_launcher(monkeypatch):
    monkeypatch.delenv("PMI_RANK", raising=False)
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK", raising=False)
    assert rank.rank_and_size() == (0, 1)
    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("PMI_SIZE", "4")
    assert rank.rank_and_size() == (3, 4)


def test_check_exit():
    check_exit(0)
    with pytest.raises(MPIRunError, match="exit status 1"):
        check_exit(1)
    with pytest.raises(MPIRunError, match="did not report"):
        check_exit(None)


def test_environment_problems_name_each_missing_variable(course_env):
    assert mpi_environment_problems(course_env) == []
    broken = {k: v for k, v in course_env.items() if k not in ("LD_LIBRARY_PATH", "I_MPI_ROOT")}
    problems = " ".join(mpi_environment_problems(broken))
    assert "LD_LIBRARY_PATH" in problems and "I_MPI_ROOT" in problems


def test_paths_are_shown_from_the_course_folder():
    assert shown(ROOT / "scripts" / "x.py") == os.path.join("scripts", "x.py")


@pytest.mark.mpi
def test_launcher_streams_every_rank(tmp_path, in_course_env, capsys):
    script = tmp_path / "hello.py"
    script.write_text("from dlscale.rank import start_rank\n"
                      "rank, size, threads = start_rank()\n"
                      "print('hello from', rank, size, threads)\n")
    run = mpirun(script, ranks=2, threads=1)
    out = capsys.readouterr().out
    assert out.startswith("$ mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 ")
    lines = out.splitlines()
    assert "[0] hello from 0 2 1" in lines and "[1] hello from 1 2 1" in lines
    assert "[0] layout: 2 rank(s) x 1 thread(s) per rank on " in out
    assert run.returncode == 0


@pytest.mark.mpi
def test_launcher_raises_with_the_tail_when_a_rank_fails(tmp_path, in_course_env):
    script = tmp_path / "crash.py"
    script.write_text("from dlscale import rank_and_size\nif rank_and_size()[0] == 1:\n"
                      "    raise SystemExit('rank 1 gives up')\n")
    with pytest.raises(MPIRunError, match="(?s)exit status.*rank 1 gives up"):
        mpirun(script, ranks=2, threads=1, echo=False)


@pytest.mark.mpi
def test_launcher_stops_a_hung_run(tmp_path, in_course_env, monkeypatch):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(600)\n")
    with pytest.raises(MPIRunError, match="did not finish within 3 s"):
        mpirun(script, ranks=2, threads=1, echo=False, timeout=3)
    monkeypatch.setenv(TIMEOUT_VARIABLE, "2")  # the suite's own cap, for launches that name none
    with pytest.raises(MPIRunError, match="did not finish within 2 s"):
        mpirun(script, ranks=2, threads=1, echo=False)


def test_launcher_refuses_a_missing_script():
    with pytest.raises(FileNotFoundError, match="no script"):
        mpirun("scripts/does_not_exist.py")


def test_launcher_refuses_a_broken_environment(tmp_path, in_course_env, monkeypatch):
    script = tmp_path / "x.py"
    script.write_text("")
    monkeypatch.delenv("LD_LIBRARY_PATH")
    with pytest.raises(OSError, match="LD_LIBRARY_PATH.*\n.*Fix: .*export"):
        mpirun(script)
