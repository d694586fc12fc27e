"""A notebook whose distributed cell failed must fail nbval (IPython's `!` never raises by itself)."""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import run_nbval, write_notebook

from dlscale.env import ROOT

pytestmark = pytest.mark.mpi

CRASH = "import sys\nsys.exit('this rank crashed on purpose')\n"
FINE = "print('fine')\n"


@pytest.fixture
def scripts(tmp_path):
    (tmp_path / "crash.py").write_text(CRASH)
    (tmp_path / "fine.py").write_text(FINE)
    return tmp_path


def launcher_notebook(folder, script):
    return write_notebook(folder / f"launcher_{script}.ipynb",
                          f"from dlscale import mpirun\nmpirun({str(folder / script)!r}, ranks=2)")


def bang_notebook(folder, script):
    return write_notebook(
        folder / f"bang_{script}.ipynb",
        f"!mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u {folder / script}\n"
        "from dlscale import check_exit\ncheck_exit(_exit_code)",
    )


@pytest.mark.parametrize("make_notebook", [launcher_notebook, bang_notebook])
def test_a_failed_launch_fails_nbval(scripts, course_env, make_notebook):
    result = run_nbval(make_notebook(scripts, "crash.py"), course_env)
    assert result.returncode == 1, result.stdout
    assert "MPIRunError" in result.stdout and "1 failed" in result.stdout


@pytest.mark.parametrize("make_notebook", [launcher_notebook, bang_notebook])
def test_a_good_launch_passes_nbval(scripts, course_env, make_notebook):
    result = run_nbval(make_notebook(scripts, "fine.py"), course_env)
    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout


def test_an_unchecked_bang_line_would_pass(scripts, course_env):
    """Why check_exit exists: without it nbval passes a notebook whose ranks all crashed."""
    nb = write_notebook(scripts / "unchecked.ipynb",
                        f"!mpirun -n 2 python -u {scripts / 'crash.py'}")
    assert run_nbval(nb, course_env).returncode == 0


@pytest.mark.parametrize("notebook", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_bang_line_in_the_course_is_checked(notebook):
    for cell in nbformat.read(notebook, as_version=4).cells:
        lines = cell.source.splitlines() if cell.cell_type == "code" else []
        for number, line in enumerate(lines):
            if line.startswith("!"):
                end = number
                while lines[end].endswith("\\"):  # the command goes on on the next line
                    end += 1
                following = lines[end + 1] if end + 1 < len(lines) else ""
                assert re.match(r"check_exit\(_exit_code[,)]", following), (
                    f"{notebook.name}: `{line}` must be followed by check_exit(_exit_code)")
