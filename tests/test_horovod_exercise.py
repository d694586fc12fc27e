"""Notebook 04's main exercise: the learner's own Horovod script, launched and checked by the notebook.

The exercise notebook's launch and check cells are run as nbval runs them, in a copy of the course:
with the solved script in place of the exercise script they pass; with the untouched exercise
script the launch fails with its hint. The check itself is tested on recorded evidence.
"""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from conftest import run_nbval, write_notebook

from dlscale.env import ROOT, results_dir
from dlscale.exercises import LEARNER_SCRIPT_TAG
from dlscale.grading import check_horovod_script

SCRIPT = "cnn_mnist_hvd.py"


def exercise_cells() -> list[str]:
    """The set-up cell, the launch of the learner's script and the check after it, from notebooks/."""
    cells = [c for c in nbformat.read(ROOT / "notebooks" / "04_horovod.ipynb", as_version=4).cells
             if c.cell_type == "code"]
    launch = next(i for i, c in enumerate(cells) if LEARNER_SCRIPT_TAG in c.metadata.get("tags", []))
    assert f"scripts/exercises/{SCRIPT}" in cells[launch].source, "the exercise launches the learner's copy"
    return [cells[0].source, cells[launch].source, cells[launch + 1].source]


@pytest.fixture
def course_copy(tmp_path):
    for folder in ("scripts", "solutions", "notebooks"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


@pytest.fixture
def own_output(course_env, tmp_path):
    """The course environment with an output folder of this test's own: no results from another."""
    return course_env | {"DLSCALE_OUTPUT_DIR": str(tmp_path / "output")}


@pytest.mark.mpi
@pytest.mark.slow
def test_the_solved_script_passes_the_exercise_cells(course_copy, own_output):
    shutil.copy(ROOT / "scripts" / SCRIPT, course_copy / "scripts" / "exercises" / SCRIPT)
    notebook = write_notebook(course_copy / "notebooks" / "exercise.ipynb", *exercise_cells())
    result = run_nbval(notebook, own_output)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "3 passed" in result.stdout


@pytest.mark.mpi
@pytest.mark.slow
def test_the_untouched_exercise_fails_with_its_hint(course_copy, own_output):
    notebook = write_notebook(course_copy / "notebooks" / "exercise.ipynb", *exercise_cells())
    result = run_nbval(notebook, own_output)
    assert result.returncode == 1
    assert "2 failed" in result.stdout  # the launch, and the check that finds no results
    assert "your script failed with exit status" in result.stdout
    assert "Hint: the first Traceback above names the step" in result.stdout
    assert "run the cell that launches the script first" in result.stdout


def evidence(**changes) -> dict:
    """What two ranks of a right script record, with `changes` (a mistake) applied."""
    measurements = {
        "weights_digest_per_rank": ["a", "a"], "weights_digest_after_first_step_per_rank": ["b", "b"],
        "weights_identical": True, "intra_op_threads_per_rank": [1, 1], "threads_per_rank_planned": 1,
        "lr_scaled": True, "learning_rate": 0.002, "base_learning_rate": 0.001,
        "distributed_optimizer_per_rank": [True, True], "epochs_done": 2, "resumed_from_epoch": 0,
        "checkpoints_saved_per_rank": [2, 0], "progress_lines_per_rank": [8, 0],
    }
    return measurements | changes


@pytest.mark.parametrize("mistake, step", [
    ({}, None),
    ({"intra_op_threads_per_rank": [0, 0]}, "step 2"),
    ({"learning_rate": 0.001}, "step 3"),
    ({"distributed_optimizer_per_rank": [False, False], "weights_identical": False}, "step 4"),
    ({"weights_digest_after_first_step_per_rank": ["b", "c"], "weights_identical": False}, "step 5"),
    ({"checkpoints_saved_per_rank": [2, 2]}, "step 6"),
    ({"progress_lines_per_rank": [8, 8]}, "step 6"),
], ids=["right", "threads", "lr", "optimizer", "broadcast", "checkpoints", "printing"])
def test_the_check_names_the_step_that_is_wrong(mistake, step, capsys):
    path = results_dir() / "04_graded.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"measurements": evidence(**mistake)}))
    try:
        if step is None:
            check_horovod_script("04_graded")
            assert capsys.readouterr().out.count("Correct:") == 8
        else:
            with pytest.raises(AssertionError, match=rf"Not yet: {step}.*Hint: "):
                check_horovod_script("04_graded")
    finally:
        path.unlink()
