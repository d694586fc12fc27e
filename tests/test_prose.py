"""The solutions' prose states no figure measured on this machine: the learner's CPU is not ours.

Interpretations of measurements are printed by code, next to the numbers they read. A markdown
cell may hold a number with a unit only when it is a constant from elsewhere (the workshop's
slides, a hardware definition, a published figure, a fixed model's size, a time budget), and
each such constant is listed in ALLOWED with its source. Notebook outputs, likewise, are masked
number by number (tests/sanitize.cfg) rather than ignored cell by cell.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from dlscale.env import ROOT

NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb"))

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
MEASURED = re.compile(
    rf"(?<![\w.,])(?<![A-Za-z][-‐])(?:{_NUM})(?:\s?[-–]\s?(?:{_NUM}))?"  # not "ResNet-50", "v2.15"
    r"(?:[x×](?=[\s.,;:!?)*_]|$)"  # a speed-up "2x", "1.9×"; not "4x1", "3x`", "2x·c"
    r"|\s(?:times\s)?(?:faster|slower)\b"  # "1.9 faster", "2 times slower"
    r"|\s?(?:img/s|images/s|[GMT]B/s|[GT]FLOP/s|%|dB|ms|[µμu]s|seconds?|minutes?|s|MiB|KiB|MB|GB)"
    r"(?![\w/]))")

# Figures from elsewhere, as matched, each with its source. Never a number this machine measured.
ALLOWED = {
    "3.84 images/s": "the workshop's 2019 slide: ResNet-50 training, default TensorFlow",
    "17.69 images/s": "the workshop's 2019 slide: ResNet-50 training, optimized TensorFlow",
    "4.6x": "the workshop's 2019 slide: 17.69 / 3.84",
    "4×": "INT8 is 1 byte to FP32's 4: VNNI's 4 multiply-adds per 32-bit lane, the workshop slide's "
          "'4× INT8 over FP32', the model's size",
    "2x": "VPDPWSSD's two s16 x s16 products per 32-bit lane against FP32's one multiply-add: "
          "the seed's '2x INT16 ops'",
    "3×": "a training step costs about 3 forward passes (forward, input and weight gradients)",
    "100%": "the definition of efficiency/peak, not a measurement",
    "30 dB": "the common PSNR rule of thumb for 8-bit images (the cell says it is not yours)",
    "12.25 MiB": "the MNIST CNN's dense1 kernel, 3136 × 1024 FP32 (dlscale.cnn.build_model)",
    "100 MB": "ResNet-50's 25.6 M FP32 parameters × 4 bytes (He et al. 2016)",
    "1 ms": "Horovod's default HOROVOD_CYCLE_TIME: SetCycleTimeMs(1) in horovod/common/operations.cc",
    "128 MiB": "Horovod's default HOROVOD_FUSION_THRESHOLD: SetTensorFusionThresholdBytes(128 * 1024 * "
               "1024) in horovod/common/operations.cc (its docs/tensor-fusion.rst still says 64 MB)",
}
# Whole classes of machine-independent figures: the **Time:** line is each notebook's time budget.
ALLOWED_CONTEXT = [re.compile(r"\*\*Time:\*\*[^\n]*")]

IGNORED_OUTPUT_BUDGET = {
    "00_getting_started.ipynb": 6, "01_int8_dl_boost.ipynb": 9, "02_tensorflow_onednn.ipynb": 12,
    "03_mnist_cnn.ipynb": 11, "04_horovod.ipynb": 10, "05_kmeans_daal4py.ipynb": 11,
    "06_performance_summary.ipynb": 12, "07_elastic_and_beyond.ipynb": 8,
}


def typed_figures(text: str) -> list[tuple[str, str]]:
    """(figure, context) for every number with a unit in text that no allow-list covers."""
    allowed_spans = [m.span() for p in ALLOWED_CONTEXT for m in p.finditer(text)]
    found = []
    for m in MEASURED.finditer(text):
        if m.group() in ALLOWED or any(a <= m.start() and m.end() <= b for a, b in allowed_spans):
            continue
        found.append((m.group(), text[max(0, m.start() - 60):m.end() + 20].replace("\n", " ")))
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_measured_figure_in_markdown(notebook):
    cells = nbformat.read(notebook, as_version=4).cells
    bad = [f"cell {i}: {figure!r} in …{context}…"
           for i, cell in enumerate(cells) if cell.cell_type == "markdown"
           for figure, context in typed_figures(cell.source)]
    assert not bad, (f"{notebook.name} states figures in prose; print interpretations from code, or add "
                     "a constant from elsewhere to ALLOWED with its source:\n" + "\n".join(bad))


def test_the_check_catches_a_typed_figure():
    typed = "oneDNN made training 1.89x faster, 41% of peak, at 5,997 img/s; sklearn was 1.9 faster"
    assert [f for f, _ in typed_figures(typed)] == ["1.89x", "41%", "5,997 img/s", "1.9 faster"]
    assert [m.group() for m in MEASURED.finditer("4-6 dB, 1.2–3.6 GB/s, 30 ms")] == [
        "4-6 dB", "1.2–3.6 GB/s", "30 ms"]
    for fine in ("a 2 x 1 layout", "4x1", "n x the model", "ResNet-50", "ResNet-50 images/s",
                 "`z = x² + 3x`", "2x·c", "TensorFlow 2.15", "512-bit"):
        assert not MEASURED.search(fine), fine


def test_no_more_ignored_output_cells():
    for notebook in NOTEBOOKS:
        cells = nbformat.read(notebook, as_version=4).cells
        ignored = sum("NBVAL_IGNORE_OUTPUT" in cell.source for cell in cells)
        assert ignored <= IGNORED_OUTPUT_BUDGET.get(notebook.name, 0), (
            f"{notebook.name} has {ignored} NBVAL_IGNORE_OUTPUT cells, over its budget of "
            f"{IGNORED_OUTPUT_BUDGET.get(notebook.name, 0)}: mask the machine-dependent numbers with a "
            "named sanitizer in tests/sanitize.cfg instead of ignoring a whole cell's output")
