"""The instructor's guide agrees with the notebooks: every exercise it names exists, by number and title."""

from __future__ import annotations

import re

import nbformat

from dlscale.env import ROOT

NOTEBOOK = re.compile(r"notebook \**(\d\d)\b")
EXERCISE = re.compile(r"exercise (\d+)( \*([^*]+)\*)?", re.IGNORECASE)


def exercises(number: str) -> dict[str, str]:
    """{exercise number: title} from the headings of solutions/NN_*.ipynb."""
    notebook = next((ROOT / "solutions").glob(f"{number}_*.ipynb"))
    found = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for n, title in re.findall(r"^### Exercise (\d+) — (.+)$", cell.source, re.MULTILINE):
            found[n] = title.strip()
    return found


def named_in_guide() -> list[tuple[str, str, str | None]]:
    """(notebook, exercise number, title or None) for every exercise a timetable row names; a row
    without a notebook of its own (a later section) belongs to the last notebook named above it."""
    named, notebook = [], None
    for line in (ROOT / "docs" / "INSTRUCTOR.md").read_text().splitlines():
        if not line.startswith("|"):
            continue
        notebook = (NOTEBOOK.findall(line) or [notebook])[-1]
        named += [(notebook, n, title) for n, _, title in EXERCISE.findall(line)]
    return named


def test_the_guide_names_exercises():
    assert len(named_in_guide()) >= 15


def test_every_exercise_the_guide_names_exists_with_its_title():
    for notebook, number, title in named_in_guide():
        headings = exercises(notebook)
        assert number in headings, f"the guide names exercise {number} of notebook {notebook}: {headings}"
        assert title == headings[number], (
            f"notebook {notebook}, exercise {number}: the guide says {title!r}, "
            f"the notebook {headings[number]!r}")
