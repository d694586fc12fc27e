"""Command-line checks shared by the course's scripts."""

from __future__ import annotations

import argparse


def positive(kind=int):
    """An argparse type: a number of `kind` (int or float) that must be > 0, or a clear message."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be {what} > 0, got {text}")
        return value

    return parse
