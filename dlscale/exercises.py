"""Exercise notebooks (notebooks/) and exercise scripts, generated from the solutions.

    python -m dlscale.exercises           # regenerate (what `make exercises` runs)
    python -m dlscale.exercises --check   # exit 1 when a generated file is out of date

In a solution, code between `### BEGIN SOLUTION` and `### END SOLUTION` becomes a line that
raises NotImplementedError; comments just above the markers (the hint) stay. A markdown cell
tagged `answer` (the solution's answer to a discussion question) is replaced by an invitation to
discuss. Outputs and execution counts are cleared. Scripts in scripts/ that contain the markers
get an exercise twin in scripts/exercises/, and a code cell tagged `learner-script` launches that
twin in the exercise notebook (scripts/NAME.py becomes scripts/exercises/NAME.py): the learner's
own script is what the check after it grades.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .env import ROOT

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MARKED = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*(\n|$)",
                    re.MULTILINE | re.DOTALL)
TODO = 'raise NotImplementedError("Exercise: write your solution here (see the hint above)")'
ANSWER_TAG = "answer"
LEARNER_SCRIPT_TAG = "learner-script"
SCRIPT = re.compile(r"\bscripts/(\w+\.py)")
DISCUSS = "*Your answer:* discuss it, write it here, then compare with the solution notebook."


def strip_solutions(code: str) -> str:
    """Code with every marked solution block replaced by an indented NotImplementedError line."""
    return MARKED.sub(lambda m: f"{m.group(1)}{TODO}{m.group(2)}", code)


def exercise_notebook(solution):
    """The exercise version of a solution notebook (an nbformat.NotebookNode)."""
    import nbformat

    exercise = nbformat.from_dict(solution)  # a deep copy
    for cell in exercise.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            if LEARNER_SCRIPT_TAG in cell.metadata.get("tags", []):
                cell.source = SCRIPT.sub(r"scripts/exercises/\1", cell.source)
            cell.outputs, cell.execution_count = [], None
        elif ANSWER_TAG in cell.metadata.get("tags", []):
            cell.source = DISCUSS
    return exercise


def generated_files(root: Path = ROOT) -> dict[Path, str]:
    """{exercise file: the text it must hold}, for every solution notebook and marked script."""
    import nbformat

    files = {}
    for solution in sorted((root / "solutions").glob("*.ipynb")):
        nb = exercise_notebook(nbformat.read(solution, as_version=4))
        files[root / "notebooks" / solution.name] = nbformat.writes(nb) + "\n"
    for script in sorted((root / "scripts").glob("*.py")):
        text = script.read_text()
        if BEGIN in text:
            files[root / "scripts" / "exercises" / script.name] = strip_solutions(text)
    return files


def out_of_date(root: Path = ROOT) -> list[Path]:
    """Generated files that are missing or differ from what the solutions give."""
    return [path for path, text in generated_files(root).items()
            if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate exercises from solutions.")
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args(argv)
    stale = out_of_date()
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run `make exercises`)")
        return 1 if stale else 0
    for path, text in generated_files().items():
        if path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

