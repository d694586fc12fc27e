"""The INT8 script: a real full-INT8 model, multi-stream runs, clear errors."""

from __future__ import annotations

import pytest
from conftest import take_results

from dlscale.launch import mpirun

pytestmark = [pytest.mark.mpi, pytest.mark.usefixtures("in_course_env")]


def test_int8_model_is_smaller_and_as_accurate_and_streams_add_up(tmp_path):
    common = ["--checkpoint-dir", tmp_path, "--iterations", 20]
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
    mpirun("scripts/int8_inference.py", "--checkpoint-dir", tmp_path, "--iterations", 5,
           "--name", "test_int8_kind", ranks=1, threads=1, echo=False)
    take_results("test_int8_kind")
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "int8.tflite"))
    kinds = {d["dtype"].__name__ for d in interpreter.get_tensor_details() if "conv2d" in d["name"].lower()
             or "matmul" in d["name"].lower()}
    assert interpreter.get_input_details()[0]["dtype"].__name__ == "int8"
    assert "int8" in kinds and "float32" not in kinds
