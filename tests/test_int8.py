"""The INT8 script: a real full-INT8 model, multi-stream runs, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import take_results

from dlscale.env import ROOT
from dlscale.launch import MPIRunError, mpirun

pytestmark = [pytest.mark.mpi, pytest.mark.usefixtures("in_course_env")]


def test_int8_model_is_smaller_and_as_accurate_and_streams_add_up(tmp_path):
    common = ["--workdir", tmp_path, "--iterations", 20]
    mpirun("scripts/int8_inference.py", *common, "--name", "test_int8", ranks=1, threads=1, echo=False)
    mpirun("scripts/int8_inference.py", *common, "--name", "test_int8_streams", ranks=2, threads=1,
           echo=False)
    one, two = (take_results(n)["measurements"] for n in ("test_int8", "test_int8_streams"))
    assert one["model_bytes"]["fp32"] / one["model_bytes"]["int8"] > 3.5
    assert abs(one["accuracy"]["int8"] - one["accuracy"]["fp32"]) < 0.03
    assert one["accuracy"]["fp32"] > 0.5  # a trained network, even in quick mode
    assert len(two["images_per_second_per_stream"]) == 2
    assert two["images_per_second_total"]["int8"] == pytest.approx(
        sum(s["int8"] for s in two["images_per_second_per_stream"]))


def test_the_int8_model_really_is_int8(tmp_path):
    mpirun("scripts/int8_inference.py", "--workdir", tmp_path, "--iterations", 5, "--name", "test_int8_kind",
           ranks=1, threads=1, echo=False)
    take_results("test_int8_kind")
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "int8.tflite"))
    kinds = {d["dtype"].__name__ for d in interpreter.get_tensor_details() if "conv2d" in d["name"].lower()
             or "matmul" in d["name"].lower()}
    assert interpreter.get_input_details()[0]["dtype"].__name__ == "int8"
    assert "int8" in kinds and "float32" not in kinds


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--iterations", "-5"], ["--threads", "two"]])
def test_bad_values_get_a_clear_error(bad):
    out = subprocess.run([sys.executable, "scripts/int8_inference.py", *bad], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 2 and f"argument {bad[0]}:" in out.stderr


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(MPIRunError) as failure:
        mpirun("scripts/int8_inference.py", "--model", tmp_path / "nope.keras", "--workdir", tmp_path,
               ranks=1, threads=1, echo=False, timeout=120)
    assert any("error: no model file" in line for line in failure.value.output)
