"""Output that C and C++ libraries write straight to the process's file descriptors.

oneDNN's ONEDNN_VERBOSE trace and TFLite's converter diagnostics bypass Python's sys.stdout, so
redirecting sys.stdout does not catch them: this redirects the descriptors themselves.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Captured:
    text: str = ""


@contextlib.contextmanager
def native_output(show_on_error: bool = True) -> Iterator[Captured]:
    """Capture file descriptors 1 and 2 (C, C++ and Python output alike) into `.text`.

    If the block raises and show_on_error is set, what was captured is written to stderr first,
    so that a failure still shows its diagnostics.
    """
    captured = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        failed = False
        try:
            yield captured
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            log.seek(0)
            captured.text = log.read().decode(errors="replace")
            if failed and show_on_error:
                sys.stderr.write(captured.text)
