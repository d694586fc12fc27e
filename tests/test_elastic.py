"""Notebook 07: an elastic Horovod job survives a worker killed from outside and trains exactly its
planned steps; too few workers end it with a clear error; TensorFlow's strategy script keeps its
workers identical, and stops quickly with a clear message when TF_CONFIG is wrong or a peer is
unreachable. Every run here has a hard time limit (Horovod's own elastic timeout is 600 s)."""

from __future__ import annotations

import json
import time

import psutil
import pytest
from conftest import take_results

from dlscale import MPIRunError, elastic, mpirun
from dlscale.grading import check_strategy_script
from dlscale.results import write_results
from dlscale.strategy import TFConfigError, parse_tf_config

pytestmark = pytest.mark.mpi


def elastic_workers() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if elastic.SCRIPT.name in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_a_worker_killed_from_outside_costs_only_the_steps_since_the_last_commit(in_course_env):
    record = elastic.run("test_elastic", kill_after_steps=25, timeout=300, echo=False)
    m, summary = record["measurements"], record["measurements"]["summary"]
    timeline = m["timeline"]
    kill = next(e for e in timeline if e["event"] == "killed a worker")
    victim = [e for e in timeline if e.get("pid") == kill["pid"] and not e.get("driver")]
    assert victim and not any(e["event"] == "done" for e in victim), "the killed worker never finished"
    assert not psutil.pid_exists(kill["pid"]) or psutil.Process(kill["pid"]).status() == psutil.STATUS_ZOMBIE
    # The job went on with one worker and did exactly the steps it planned: none lost, none twice
    # beyond the rollback to the last commit, no epoch repeated, nothing restarted from zero.
    assert summary["workers_before"] == 2 and summary["workers_during"] == 1
    assert m["steps_done"] == m["planned_steps"] == m["epochs"] * m["steps_per_epoch"]
    commit = m["batches_per_commit"]
    assert summary["killed_at_step"] >= 25
    assert summary["resumed_at_step"] == summary["killed_at_step"] // commit * commit + 1 > 1
    assert summary["steps_trained_by_survivor"] == m["planned_steps"] + summary["steps_repeated"]
    survivor = [e for e in timeline if e["event"] == "batch" and e["pid"] != kill["pid"]
                and e["t"] > kill["t"]]
    assert survivor[-1]["steps_done"] == m["planned_steps"] > summary["killed_at_step"]
    epochs = [e["epoch"] for e in survivor]
    assert epochs == sorted(epochs), "an epoch ran again after the reset"
    assert m["workers_at_end"] == 1 and m["weights_identical"]
    assert not elastic_workers()


def test_fewer_workers_than_min_np_end_the_job_with_a_clear_error(in_course_env):
    start = time.monotonic()
    with pytest.raises(elastic.ElasticRunError, match=r"fewer than --min-np 2 worker\(s\) were left"):
        elastic.run("test_elastic_too_few", kill_after_steps=10, min_workers=2, elastic_timeout=10,
                    timeout=180, echo=False)
    assert time.monotonic() - start < 150
    assert not elastic_workers()


def test_the_strategy_keeps_workers_identical_and_passes_its_check(in_course_env):
    run = mpirun("scripts/cnn_mnist_mwms.py", "--fresh", "--name", "test_mwms",
                 "--checkpoint-dir", "checkpoints/test_mwms", ranks=2, threads=1, echo=False, timeout=300)
    assert "weights identical on all workers: True" in "\n".join(run.output)
    check_strategy_script("test_mwms")  # the notebook's check passes on the solution
    record = take_results("test_mwms")
    m = record["measurements"]
    assert m["workers"] == 2 and m["weights_identical"] and all(m["variables_mirrored_per_rank"])
    ports = [w.rsplit(":", 1)[1] for w in m["tf_config_workers"]]
    assert len(set(ports)) == 2, "each worker took a port of its own"
    m["variables_mirrored_per_rank"] = [True, False]  # a model built outside strategy.scope()
    write_results("test_mwms_wrong", m)
    with pytest.raises(AssertionError, match="strategy.scope"):
        check_strategy_script("test_mwms_wrong")
    take_results("test_mwms_wrong")


def test_the_untouched_exercise_script_stops_at_the_first_step_to_write(in_course_env):
    with pytest.raises(MPIRunError) as failure:
        mpirun("scripts/exercises/cnn_mnist_mwms.py", "--name", "test_mwms_exercise", ranks=2, threads=1,
               echo=False, timeout=120)
    assert "NotImplementedError: Exercise: write your solution here" in "\n".join(failure.value.output)


def test_a_malformed_tf_config_is_refused_at_once(in_course_env):
    with pytest.raises(MPIRunError) as failure:
        mpirun("scripts/cnn_mnist_mwms.py", ranks=1, threads=1, echo=False, timeout=60,
               genv={"TF_CONFIG": '{"cluster": {"worker": ["localhost"]}}'})
    assert 'TF_CONFIG needs "cluster"' in "\n".join(failure.value.output)
    for text in ("not json", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}'):
        with pytest.raises(TFConfigError):
            parse_tf_config(text)


def test_an_unreachable_peer_fails_fast_with_a_clear_message(in_course_env, unused_port):
    config = {"cluster": {"worker": [f"localhost:{unused_port()}", f"localhost:{unused_port()}"]},
              "task": {"type": "worker", "index": 0}}
    start = time.monotonic()
    with pytest.raises(MPIRunError) as failure:
        mpirun("scripts/cnn_mnist_mwms.py", "--connect-timeout", 10, "--checkpoint-dir",
               "checkpoints/test_mwms_alone", ranks=1, threads=1, echo=False, timeout=120,
               genv={"TF_CONFIG": json.dumps(config)})
    assert time.monotonic() - start < 90, "it waited for the time limit instead of its own deadline"
    said = "\n".join(failure.value.output)
    assert "could not reach the other worker(s) " + config["cluster"]["worker"][1] in said


@pytest.fixture
def unused_port():
    import socket

    def pick() -> int:
        with socket.socket() as probe:
            probe.bind(("", 0))
            return probe.getsockname()[1]

    return pick
