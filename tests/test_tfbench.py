"""benchmarks/tf_bench.sh: the table is computed from the runs' results files, and failures are loud."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import take_results

from dlscale import tfbench
from dlscale.env import ROOT, results_dir
from dlscale.launch import MPIRunError, mpirun


def result(rate: float, model: str = "resnet50") -> dict:
    return {"images_per_second": rate, "batch_size": 32, "model": model, "tensorflow": {"onednn": True},
            "train_gflops": 3 * rate, "peak_fp32_gflops": 100.0}


def test_summary_takes_medians_spreads_and_ratios():
    summary = tfbench.summarize({"default": [result(2.0), result(4.0), result(3.0)],
                                 "optimized": [result(9.0), result(6.0), result(7.5)],
                                 "horovod": [result(15.0)]})
    assert (summary["rows"]["default"]["median"], summary["rows"]["default"]["lowest"],
            summary["rows"]["default"]["highest"], summary["rows"]["default"]["runs"]) == (3.0, 2.0, 4.0, 3)
    assert summary["optimized_over_default"] == 7.5 / 3.0
    assert summary["horovod_over_optimized"] == 15.0 / 7.5
    assert summary["workshop"]["ratio"] == pytest.approx(17.69 / 3.84)
    summary["environments"] = {"default": "plain", "optimized": "tuned", "horovod": "two ranks"}
    text = tfbench.table(summary)
    assert "| tuned | resnet50 | 32 per rank | 7.50 (6.00-9.00, 3 runs) |" in text
    assert "| workshop, optimized | ResNet-50 | | 17.69 |" in text
    assert "optimized / default: 2.50x here, 4.61x in the workshop" in text


def test_configurations_follow_the_cores():
    default, optimized, horovod = tfbench.configurations(8, "channels_first", 2)
    assert (default.onednn, default.args[:4]) == (False, ["--threads", 0, "--inter-threads", 0])
    assert "channels_last" in default.args  # TensorFlow's own kernels run NHWC only
    assert (optimized.onednn, optimized.threads, optimized.args[:2]) == (True, 8, ["--threads", 8])
    assert (horovod.ranks, horovod.threads) == (2, 4) and "channels_first" in horovod.args
    assert len(tfbench.configurations(8, "channels_last", 0)) == 2


@pytest.mark.mpi
def test_tf_bench_sh_prints_the_table_from_its_runs(course_env):
    out = subprocess.run(
        ["benchmarks/tf_bench.sh", "--image-size", "32", "--batch-size", "4", "--num-batches", "2",
         "--warmup-batches", "1", "--repeats", "2", "--name", "test_tf_bench"],
        cwd=ROOT, env=course_env, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[6/6] optimized, Horovod on 2 ranks" in out.stdout
    record = take_results("test_tf_bench")["measurements"]
    runs = {config: [take_results(name)["measurements"] for name in names]
            for config, names in record["runs"].items()}
    assert [r["tensorflow"]["onednn"] for r in runs["default"]] == [False, False]
    assert [r["tensorflow"]["onednn"] for r in runs["optimized"]] == [True, True]
    assert len(runs["horovod"][0]["images_per_second_per_rank"]) == 2
    assert record["summary"] == tfbench.summarize(runs) | {"environments": record["summary"]["environments"]}
    assert record["table"] in out.stdout and "Images/Second" in record["table"]


@pytest.mark.mpi
def test_nchw_without_onednn_fails_the_launch_with_the_reason(in_course_env):
    with pytest.raises(MPIRunError) as failure:
        mpirun("scripts/tf_bench.py", "--image-size", "32", "--batch-size", "2", "--num-batches", "1",
               "--data-format", "channels_first", "--name", "test_tf_bench_nchw", ranks=1, threads=1,
               genv={"TF_ENABLE_ONEDNN_OPTS": 0}, echo=False, timeout=300)
    assert "channels_first does not run in this configuration (oneDNN off)" in str(failure.value)
    assert not (results_dir() / "test_tf_bench_nchw.json").exists()


def test_tf_bench_sh_names_the_fix_without_a_course_environment(tmp_path):
    for part in ("benchmarks/tf_bench.sh", "tools/course_env.sh"):
        (tmp_path / part).parent.mkdir(exist_ok=True)
        shutil.copy2(ROOT / part, tmp_path / part)
    out = subprocess.run([str(tmp_path / "benchmarks" / "tf_bench.sh")], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"]}, check=False, timeout=60)
    assert out.returncode == 1 and "run 'make setup'" in out.stderr
