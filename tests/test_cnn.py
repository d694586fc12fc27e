"""The MNIST CNN scripts: training, checkpoints and resuming, Horovod's guarantees, failing fast."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import take_results

from dlscale.comms import summarize_horovod_timeline
from dlscale.env import ROOT
from dlscale.launch import MPIRunError, mpirun, mpirun_command

pytestmark = pytest.mark.mpi


def results(name: str) -> dict:
    return take_results(name)["measurements"]


def test_flops_of_the_workshop_network():
    from dlscale.cnn import build_model, layer_flops

    flops = layer_flops(build_model())
    assert flops == {"conv1": 2 * 28 * 28 * 32 * 25, "conv2": 2 * 14 * 14 * 64 * 25 * 32,
                     "dense1": 2 * 7 * 7 * 64 * 1024, "logits": 2 * 1024 * 10}


def test_training_profiles_the_kernels_that_ran(in_course_env, tmp_path):
    mpirun("scripts/cnn_mnist.py", "--profile", "--checkpoint-dir", tmp_path, "--name", "test_profile",
           ranks=1, threads=2, genv={"TF_ENABLE_ONEDNN_OPTS": 1}, echo=False)
    record = results("test_profile")
    assert record["tensorflow"]["onednn"] is True
    ops = [row["op"] for row in record["profile"]]
    assert any(op.startswith("_Mkl") for op in ops), ops  # oneDNN's kernels ran
    assert record["train_gflops"] > 0
    nominal = record["nominal_fp32_gflops"]  # None where dlscale.cpu's table does not know the CPU
    assert nominal is None or nominal > record["train_gflops"]
    assert sum(map(sum, record["confusion_matrix"])) == record["test_images"]


@pytest.mark.parametrize(("script", "ranks"), [("scripts/cnn_mnist.py", 1), ("scripts/cnn_mnist_hvd.py", 2)])
def test_killed_after_an_epoch_a_run_resumes_from_its_checkpoint(in_course_env, tmp_path, script, ranks):
    args = ["--epochs", 3, "--train-images", 2048, "--checkpoint-dir", tmp_path, "--name", "test_resume"]
    command = mpirun_command(script, *args, ranks=ranks, threads=1)  # epochs long enough to kill one
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    state = tmp_path / "checkpoint"  # the manager's list of checkpoints, written after each one is complete
    while not (state.exists() and "ckpt-1" in state.read_text()):  # the first epoch's checkpoint
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "ckpt-3.index").exists(), "the run finished before it could be killed"
    run = mpirun(script, *args, ranks=ranks, threads=1, echo=False, timeout=300)
    record = results("test_resume")
    assert "resuming from ckpt-" in "\n".join(run.output)
    assert record["resumed_from_epoch"] >= 1 and record["epochs_done"] == 3
    assert len(record["epoch_seconds"]) == 3 - record["resumed_from_epoch"]


def damage(data_file, how: str) -> None:
    """What a full disk or a node lost while writing leaves: a data file cut short, or changed bytes."""
    size = data_file.stat().st_size
    with open(data_file, "r+b") as f:
        if how == "truncate":
            f.truncate(size // 2)
        else:  # bytes changed in the middle: the file's length is right, a tensor's checksum is not
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in f.read(64)))
            f.seek(size // 2)


@pytest.mark.parametrize(("script", "ranks"), [("scripts/cnn_mnist.py", 1), ("scripts/cnn_mnist_hvd.py", 2)])
def test_a_damaged_latest_checkpoint_falls_back_to_an_intact_one_or_stops_in_one_line(
        in_course_env, tmp_path, script, ranks):
    args = ["--train-images", 256, "--checkpoint-dir", tmp_path, "--name", "test_damaged"]

    def train(epochs: int):
        return mpirun(script, "--epochs", epochs, *args, ranks=ranks, threads=1, echo=False, timeout=300)

    train(2)
    take_results("test_damaged")
    damage(tmp_path / "ckpt-2.data-00000-of-00001", "truncate")
    output = train(3).output
    said = [line for line in output if "damaged" in line]
    assert len(said) == 1 and "ckpt-2 is damaged" in said[0], output[-20:]
    assert said[0].endswith("resuming from ckpt-1: 1 epoch(s) done (--fresh starts over)"), said
    assert not any("Traceback" in line for line in output)
    record = results("test_damaged")
    assert record["resumed_from_epoch"] == 1 and record["epochs_done"] == 3
    kept = sorted(p.name for p in tmp_path.glob("ckpt-*.index"))
    assert kept == ["ckpt-2.index", "ckpt-3.index"], kept  # ckpt-2 written again, whole

    for number, how in ((2, "truncate"), (3, "flip")):  # now none is intact
        damage(tmp_path / f"ckpt-{number}.data-00000-of-00001", how)
    with pytest.raises(MPIRunError) as failure:
        train(4)
    output = failure.value.output
    said = [line for line in output if "intact" in line or "damaged" in line or "Error" in line]
    assert len(said) == 1, output[-30:]
    assert f"no intact checkpoint in {tmp_path}" in said[0] and "--fresh" in said[0]
    assert "ckpt-3 is damaged (Checksum does not match" in said[0]  # TensorFlow's words
    assert "ckpt-2 is damaged (Read less bytes than requested)" in said[0]
    assert not any("Traceback" in line for line in output)


def test_horovod_ranks_agree_and_only_rank_zero_checkpoints(in_course_env, tmp_path):
    mpirun("scripts/cnn_mnist_hvd.py", "--epochs", 2, "--checkpoint-dir", tmp_path,
           "--name", "test_hvd", ranks=2, threads=1, echo=False)
    record = results("test_hvd")
    assert record["weights_identical"] and len(record["weights_digest_per_rank"]) == 2
    assert record["checkpoints_saved_per_rank"] == [2, 0]
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    assert record["learning_rate"] == pytest.approx(2 * 1e-3)  # scaled by the number of ranks


def test_a_crashing_rank_fails_the_whole_launch_fast(in_course_env, tmp_path):
    start = time.monotonic()
    with pytest.raises(MPIRunError, match="exit status") as failure:
        mpirun("scripts/cnn_mnist_hvd.py", "--epochs", 5, "--crash-rank", 1, "--checkpoint-dir",
               tmp_path, ranks=2, threads=1, echo=False, timeout=240)
    assert time.monotonic() - start < 120, "the other rank hung instead of stopping"
    assert "[1] rank 1 crashed on purpose (--crash-rank)" in failure.value.output


def test_a_rank_without_a_batch_is_refused(in_course_env, tmp_path):
    with pytest.raises(MPIRunError, match="use fewer ranks, a smaller batch"):
        mpirun("scripts/cnn_mnist_hvd.py", "--train-images", 100, "--batch-size", 64,
               "--checkpoint-dir", tmp_path, ranks=2, threads=1, echo=False)


def test_timeline_summary_counts_overlapping_tensors_once_and_reads_a_live_file(tmp_path):
    trace = tmp_path / "timeline.json"
    events = [("B", "NEGOTIATE_ALLREDUCE", 0, 1), ("E", None, 1000, 1),
              ("B", "ALLREDUCE", 1000, 1), ("B", "MPI_ALLREDUCE", 1200, 1), ("E", None, 2200, 1),
              ("E", None, 3000, 1),
              ("B", "ALLREDUCE", 1500, 2), ("E", None, 3500, 2)]  # a second tensor, fused: overlaps
    trace.write_text("[\n" + "".join(json.dumps({"ph": ph, "name": name, "ts": ts, "pid": pid}) + ","
                                      for ph, name, ts, pid in events))  # no closing ]: still running
    summary = summarize_horovod_timeline(trace)
    assert summary == {"ALLREDUCE": {"ms": 2.5, "count": 2}, "NEGOTIATE_ALLREDUCE": {"ms": 1.0, "count": 1},
                       "MPI_ALLREDUCE": {"ms": 1.0, "count": 1}}
