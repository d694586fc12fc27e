"""notebooks/ is exactly what the generator makes from solutions/, and exercises really are exercises."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from dlscale.env import ROOT
from dlscale.exercises import DISCUSS, TODO, exercise_notebook, out_of_date, strip_solutions
from dlscale.grading import check

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_exercises_are_in_sync_with_solutions():
    assert out_of_date() == [], "run `make exercises` and commit notebooks/"


def test_editing_a_solution_without_regenerating_is_caught(tmp_path):
    for folder in ("solutions", "notebooks", "scripts"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    solution = tmp_path / "solutions" / SOLUTIONS[0].name
    nb = nbformat.read(solution, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.source += "\nprint('a change')"
    nbformat.write(nb, solution)
    assert out_of_date(tmp_path) == [tmp_path / "notebooks" / solution.name]


def test_marked_code_becomes_a_todo_that_keeps_hint_and_indentation():
    code = ("def f(x):\n    # Hint: double it.\n    ### BEGIN SOLUTION\n    y = 2 * x\n"
            "    return y\n    ### END SOLUTION\n\nprint(f)\n")
    assert strip_solutions(code) == f"def f(x):\n    # Hint: double it.\n    {TODO}\n\nprint(f)\n"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_notebooks_are_valid_clean_and_unsolved(solution):
    exercise = nbformat.read(ROOT / "notebooks" / solution.name, as_version=4)
    nbformat.validate(exercise)
    code = [c for c in exercise.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert not any("BEGIN SOLUTION" in c.source for c in code)
    todo = [c.source for c in code if TODO in c.source]
    assert todo, "every notebook has at least one exercise"
    assert all("# Hint" in source for source in todo), "every exercise keeps its hint"
    for source in todo:
        compile(source, "exercise", "exec")  # the cut left valid Python for the learner to complete
    for cell in exercise.cells:
        if "answer" in cell.metadata.get("tags", []):
            assert cell.source == DISCUSS


def test_every_exercise_has_a_check_cell():
    for solution in SOLUTIONS:
        cells = [c.source for c in nbformat.read(solution, as_version=4).cells if c.cell_type == "code"]
        for i, source in enumerate(cells):
            if "### BEGIN SOLUTION" in source:
                assert "check(" in cells[i + 1], f"{solution.name}: no check cell after exercise {i}"


def test_answer_cells_are_hidden(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("the answer is 42")])
    nb.cells[0].metadata["tags"] = ["answer"]
    assert exercise_notebook(nb).cells[0].source == DISCUSS


def test_check_tells_right_from_wrong(capsys):
    check(4, 4, what="two plus two")
    assert capsys.readouterr().out == "Correct: two plus two.\n"
    with pytest.raises(AssertionError, match="Not yet: two plus two. You gave 5. Hint: count"):
        check(5, 4, what="two plus two", hint="count")


def test_marked_scripts_get_an_exercise_twin(tmp_path):
    for folder in ("solutions", "notebooks"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train.py").write_text(
        "import horovod\n# Hint: initialise Horovod.\n### BEGIN SOLUTION\nhvd.init()\n### END SOLUTION\n")
    (tmp_path / "scripts" / "plain.py").write_text("print('no exercise here')\n")
    twin = tmp_path / "scripts" / "exercises" / "train.py"
    assert out_of_date(tmp_path) == [twin]
    twin.parent.mkdir()
    twin.write_text(f"import horovod\n# Hint: initialise Horovod.\n{TODO}\n")
    assert out_of_date(tmp_path) == []
