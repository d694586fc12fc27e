"""Distributed colour quantization: every pixel comes back, any rank count agrees, bad input fails fast."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from conftest import take_results
from PIL import Image

from dlscale.launch import MPIRunError, mpirun

pytestmark = [pytest.mark.mpi, pytest.mark.usefixtures("in_course_env")]


def quantize(tmp_path, ranks, *args, name="test_quantize"):
    out = tmp_path / f"{name}_{ranks}.png"
    mpirun("scripts/quantize_colors.py", *args, "--out", out, "--name", name, ranks=ranks, threads=1,
           echo=False, timeout=300)
    return take_results(name)["measurements"], np.asarray(Image.open(out))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """An odd-sized photo (101 x 67 = 6,767 pixels: no rank count divides it evenly)."""
    from dlscale import load_image

    path = tmp_path_factory.mktemp("img") / "odd.png"
    Image.fromarray(load_image("flower.jpg")[100:167, 200:301]).save(path)
    return path


def test_one_two_and_three_ranks_rebuild_every_pixel_and_agree(tmp_path, photo):
    runs = {n: quantize(tmp_path, n, "--image", photo, "--colors", 8, "--init", "sample") for n in (1, 2, 3)}
    original = np.asarray(Image.open(photo))
    for n, (record, picture) in runs.items():
        assert picture.shape == original.shape, f"{n} ranks lost pixels"
        assert sum(r["pixels"] for r in record["per_rank"]) == original.shape[0] * original.shape[1]
        palette = np.clip(np.rint(record["centroids"]), 0, 255).astype(np.uint8)
        assert {tuple(p) for p in picture.reshape(-1, 3)} <= {tuple(p) for p in palette}  # all assigned
    pictures = [picture for _, picture in runs.values()]
    assert all(np.array_equal(pictures[0], p) for p in pictures[1:])
    centroids = [np.array(record["centroids"]) for record, _ in runs.values()]
    assert all(np.allclose(centroids[0], c, atol=1e-6) for c in centroids[1:])
    assert [len(r["per_rank"]) for r, _ in runs.values()] == [1, 2, 3]
    assert [r["pixels"] for r in runs[3][0]["per_rank"]] == [2255, 2256, 2256]  # balanced, none lost


def test_scikit_learn_agrees_from_the_same_start(tmp_path, photo):
    record, _ = quantize(tmp_path, 1, "--image", photo, "--colors", 8, "--init", "sample",
                         "--compare-sklearn")
    assert record["sklearn"]["inertia"] == pytest.approx(record["inertia"], rel=1e-9)
    assert np.abs(np.array(record["sklearn"]["centroids"]) - np.array(record["centroids"])).max() < 1e-6


def test_psnr_grows_with_the_colours(tmp_path, photo):
    psnr = [quantize(tmp_path, 2, "--image", photo, "--colors", k, "--init", "sample")[0]["psnr_db"]
            for k in (2, 8, 32)]
    assert psnr == sorted(psnr) and psnr[0] > 10


@pytest.mark.parametrize(("ranks", "args", "message"), [
    (2, ["--image", "{junk}"], "error: cannot read .*junk.jpg as an image"),
    (2, ["--image", "{missing}"], "error: no image file"),
    (2, ["--colors", "0"], "error: --colors must be between 1 and the image's"),
    (2, ["--image", "{tiny}", "--colors", "3"], "error: --colors must be .* the image's 2 distinct"),
    (3, ["--image", "{tiny}", "--colors", "1"], "error: 2 pixels cannot be shared by 3 ranks"),
    (2, ["--iterations", "-1"], "error: --iterations must be >= 0"),
])
def test_bad_input_fails_fast_on_every_rank_with_one_line(tmp_path, ranks, args, message):
    (tmp_path / "junk.jpg").write_text("not a photo")
    Image.fromarray(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)).save(tmp_path / "tiny.png")
    places = {name: tmp_path / file for name, file in
              (("junk", "junk.jpg"), ("missing", "missing.png"), ("tiny", "tiny.png"))}
    start = time.monotonic()
    with pytest.raises(MPIRunError, match="exit status 2") as failure:
        mpirun("scripts/quantize_colors.py", *[a.format(**places) for a in args], ranks=ranks, threads=1,
               echo=False, timeout=120)
    assert time.monotonic() - start < 60
    errors = [line for line in failure.value.output if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("[0] "), failure.value.output
    assert re.search(message, errors[0]), errors[0]


def test_a_crash_on_one_rank_aborts_all_ranks(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text("from dlscale.spmd import daal4py_spmd\n"
                      "with daal4py_spmd(1) as (d4p, comm):\n"
                      "    if comm.Get_rank() == 1:\n"
                      "        raise ValueError('rank 1 failed')\n"
                      "    comm.Barrier()  # rank 0 would wait here for ever without the abort\n")
    with pytest.raises(MPIRunError, match="exit status") as failure:
        mpirun(script, ranks=2, threads=1, echo=False, timeout=60)
    assert "did not finish" not in str(failure.value)
    assert any("rank 1 failed" in line for line in failure.value.output)
