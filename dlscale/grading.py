"""Grading an exercise: the check cell that follows each one in the notebooks."""

from __future__ import annotations


def check(answer, expected, *, what: str, hint: str = "") -> None:
    """The check cell after an exercise: a short 'Correct' or an AssertionError with a hint."""
    if answer == expected:
        print(f"Correct: {what}.")
        return
    raise AssertionError(f"Not yet: {what}. You gave {answer!r}." + (f" Hint: {hint}" if hint else ""))

