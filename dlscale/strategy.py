"""TensorFlow's own data parallelism (tf.distribute.MultiWorkerMirroredStrategy) under the course's mpirun.

The strategy learns who is in the job from TF_CONFIG, a JSON text every worker must set before
TensorFlow starts: the list of workers (host:port each) and this worker's index in it. A cluster
scheduler or a launcher writes it; here every rank writes its own from its MPI rank, with a port
the operating system just gave it (no fixed numbers: two jobs on one machine never collide).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket

VARIABLE = "TF_CONFIG"


class TFConfigError(ValueError):
    """TF_CONFIG that the strategy could not use: the message says what is wrong with it."""


def parse_tf_config(text: str) -> dict:
    """TF_CONFIG checked for what MultiWorkerMirroredStrategy needs, with a clear error otherwise."""
    try:
        config = json.loads(text)
    except ValueError as error:
        raise TFConfigError(f"TF_CONFIG is not valid JSON ({error}): {text!r}") from None
    workers = config.get("cluster", {}).get("worker") if isinstance(config, dict) else None
    if not workers or not isinstance(workers, list) or not all(isinstance(w, str) and ":" in w
                                                               for w in workers):
        raise TFConfigError(f'TF_CONFIG needs "cluster": {{"worker": ["host:port", ...]}}, got {text!r}')
    task = config.get("task", {})
    if task.get("type") != "worker" or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(workers):
        raise TFConfigError(f'TF_CONFIG needs "task": {{"type": "worker", "index": 0..{len(workers) - 1}}}, '
                            f"got {task!r}")
    return config


def tf_config_from_mpi() -> dict:
    """TF_CONFIG for this MPI rank: every rank takes a free port and tells the others (allgather).

    Call before TensorFlow is imported. When TF_CONFIG is already set (by a scheduler, or by hand),
    it is checked and kept. Uses mpi4py on the same Intel MPI that started the ranks.
    """
    if os.environ.get(VARIABLE):
        return parse_tf_config(os.environ[VARIABLE])
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    host = socket.gethostname()
    with socket.socket() as probe:
        probe.bind(("", 0))  # port 0: the system picks one that is free now
        port = probe.getsockname()[1]
    workers = comm.allgather(f"{host}:{port}")
    config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": comm.Get_rank()}}
    os.environ[VARIABLE] = json.dumps(config)
    return config


class ConnectDeadline:
    """Stops this worker with a clear message when the job has not trained its first step within
    `seconds`: a worker that cannot reach its peers otherwise waits for them (almost) forever.

    The strategy waits for its peers inside TensorFlow with Python's lock held, so no thread of
    this process could act: a small watchdog process, forked before TensorFlow loads, does.
    """

    def __init__(self, seconds: float, config: dict):
        self.seconds, self.config = seconds, config

    def start(self) -> ConnectDeadline:
        worker = os.getpid()
        read, self.pipe = os.pipe()
        self.watchdog = os.fork()
        if self.watchdog == 0:  # the watchdog: wait for a word (or the worker's end), else stop it
            os.close(self.pipe)
            heard, _, _ = select.select([read], [], [], self.seconds)
            if not heard:
                print(self.message(), flush=True)
                os.kill(worker, signal.SIGKILL)
            os._exit(0)
        os.close(read)
        return self

    def met(self) -> None:
        if self.pipe is not None:
            os.write(self.pipe, b"connected")
            os.close(self.pipe)
            os.waitpid(self.watchdog, 0)
            self.pipe = None

    def message(self) -> str:
        index = self.config["task"]["index"]
        peers = [w for i, w in enumerate(self.config["cluster"]["worker"]) if i != index]
        return (f"worker {index}: no training step within {self.seconds:.0f} s: it could not reach the "
                f"other worker(s) {', '.join(peers)} named in TF_CONFIG. Are they running, and do those "
                "host names and ports resolve and accept connections from here? Stopped (--connect-timeout).")
