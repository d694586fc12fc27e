"""Elastic Horovod on one machine, disturbed on purpose: notebook 07's driver and its timeline.

    from dlscale import elastic
    record = elastic.run("07_elastic", kill_after_steps=30, regrow_after_steps=20)

starts scripts/cnn_mnist_elastic.py with `horovodrun` (Gloo controller, --min-np/--max-np, a host
discovery script that prints a file this module edits), watches the workers' timeline file, and
SIGKILLs one worker from outside when the job has trained `kill_after_steps` steps; the dead
worker's host leaves the discovery output, as a failed node would. Once the smaller job has
trained `regrow_after_steps` steps, a host is listed again and the job grows at its next commit.

One machine stands in for several hosts through different names for itself: horovodrun starts a
worker without ssh on any name that resolves to an address of this machine (`localhost`,
`127.0.0.1`, the host name or an interface address), and treats each name as a host of its own.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from .env import ROOT, mpi_environment, results_dir, shown
from .rank import threads_per_rank

SCRIPT = ROOT / "scripts" / "cnn_mnist_elastic.py"


class ElasticRunError(RuntimeError):
    """A horovodrun job that failed, stopped early or ran past its time limit."""


class Timeline:
    """A JSON-lines file that every worker appends its events to (one write per line, so lines of
    several workers never mix), with the time, the worker's host name and process id."""

    def __init__(self, path: Path, host: str):
        self.path, self.host = Path(path), host

    def record(self, event: str, **fields) -> None:
        line = json.dumps({"t": time.time(), "event": event, "host": self.host, "pid": os.getpid(),
                           **fields}) + "\n"
        with open(self.path, "a") as stream:
            stream.write(line)


def read_timeline(path: Path) -> list[dict]:
    """The events in the file, in time order (a line cut short by a kill is skipped)."""
    events = []
    for line in Path(path).read_text().splitlines() if Path(path).exists() else []:
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return sorted(events, key=lambda e: e["t"])


def local_host_names(count: int = 3) -> list[str]:
    """Up to `count` different names for this machine that horovodrun starts workers on without ssh:
    localhost, 127.0.0.1, then the host name and interface addresses that resolve to this machine."""
    import psutil

    local = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs
             if a.family == socket.AF_INET}
    names = ["localhost", "127.0.0.1"]
    candidates = [socket.gethostname(), *sorted(local - {"127.0.0.1"})]
    for name in candidates:
        try:
            address = socket.gethostbyname(name)
        except OSError:
            continue
        if address in local and name not in names:
            names.append(name)
    return names[:count]


class HostFile:
    """What the discovery script prints: one `name:slots` line per host, one slot each."""

    def __init__(self, folder: Path, hosts: list[str]):
        self.path = folder / "hosts"
        self.script = folder / "discover.sh"
        self.script.write_text(f"#!/bin/sh\n# horovodrun asks which hosts exist\ncat '{self.path}'\n")
        self.script.chmod(0o755)
        self.hosts = []
        self.set(hosts)

    def set(self, hosts: list[str]) -> None:
        self.hosts = list(hosts)
        partial = self.path.with_suffix(".partial")
        partial.write_text("".join(f"{h}:1\n" for h in self.hosts))
        partial.replace(self.path)  # the discovery script never reads half a file


def _stop_worker(pid: int) -> None:
    """SIGKILL a worker of this course's elastic script, and nothing else that took its pid."""
    import psutil

    try:
        if str(SCRIPT.name) in " ".join(psutil.Process(pid).cmdline()):
            os.kill(pid, signal.SIGKILL)
    except (psutil.Error, ProcessLookupError):
        pass


def horovodrun_command(script_args: list[str], *, workers: int, min_workers: int, discovery: Path,
                       elastic_timeout: int) -> list[str]:
    return ["horovodrun", "-np", str(workers), "--min-np", str(min_workers), "--max-np", str(workers),
            "--host-discovery-script", str(discovery), "--elastic-timeout", str(elastic_timeout),
            sys.executable, "-u", str(SCRIPT), *script_args]


def run(name: str = "07_elastic", *script_args, workers: int = 2, min_workers: int = 1,
        kill_after_steps: int | None = None, regrow_after_steps: int | None = None,
        elastic_timeout: int = 60, timeout: float = 600, echo: bool = True) -> dict:
    """Run the elastic script, disturb it as asked, and return its results record with the timeline.

    kill_after_steps: SIGKILL the last-started worker once the job has trained this many steps,
    and drop its host from discovery. regrow_after_steps: then list a spare host once the smaller
    job has trained this many steps. elastic_timeout: how long Horovod waits for enough hosts
    (its default is 600 s). Raises ElasticRunError when the job fails or outlives `timeout`.
    """
    folder = results_dir() / "elastic" / name  # the discovery files and the workers' timeline
    folder.mkdir(parents=True, exist_ok=True)
    timeline_path = folder / "timeline.jsonl"
    timeline_path.unlink(missing_ok=True)
    names = local_host_names(workers + 1)
    if len(names) < workers:
        raise ElasticRunError(f"this machine has only {len(names)} name(s) for itself ({names}); "
                              f"{workers} workers need {workers}")
    hosts = HostFile(folder, names[:workers])
    spare = names[workers:]
    command = horovodrun_command(["--name", name, "--events", str(timeline_path), *map(str, script_args)],
                                 workers=workers, min_workers=min_workers, discovery=hosts.script,
                                 elastic_timeout=elastic_timeout)
    env = mpi_environment() | {"OMP_NUM_THREADS": str(threads_per_rank(workers))}
    if echo:
        print("$ " + " ".join(shown(c) if str(c).startswith("/") else str(c) for c in command), flush=True)

    driver: list[dict] = []  # what this driver did to the job, on the same clock as the timeline

    def note(event: str, **fields) -> None:
        driver.append({"t": time.time(), "event": event, "driver": True, **fields})
        if echo:
            print(f"[driver] {event}: " + ", ".join(f"{k} {v}" for k, v in fields.items()), flush=True)

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               bufsize=1, env=env, start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=40)

    too_few = []  # Horovod's line when it gave up waiting for --min-np workers

    def relay() -> None:
        for line in process.stdout:
            tail.append(line.rstrip("\n"))
            if "Timed out waiting for" in line:
                too_few.append(line.strip())
            if echo:
                print(line, end="", flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    start = time.time()
    killed = regrown = None
    try:
        while process.poll() is None:
            if time.time() - start > timeout:
                raise ElasticRunError(f"horovodrun did not finish within {timeout:.0f} s and was stopped."
                                      "\nLast lines:\n" + "\n".join(tail))
            time.sleep(0.1)
            events = read_timeline(timeline_path)
            batches = [e for e in events if e["event"] == "batch"]
            steps = max((e["steps_done"] for e in batches), default=0)
            if kill_after_steps is not None and killed is None and steps >= kill_after_steps:
                victim = [e for e in events if e["event"] == "start"][-1]  # the last worker to start
                os.kill(victim["pid"], signal.SIGKILL)
                hosts.set([h for h in hosts.hosts if h != victim["host"]])
                killed = time.time()
                note("killed a worker", host=victim["host"], pid=victim["pid"], at_step=steps)
                note("host removed from discovery", host=victim["host"])
            if regrow_after_steps is not None and killed and regrown is None:
                after = [e for e in batches if e["t"] > killed]
                if len(after) >= regrow_after_steps:
                    regrown = time.time()
                    if spare:
                        hosts.set([*hosts.hosts, spare[0]])
                        note("host added to discovery", host=spare[0])
                    else:
                        note("no spare name for this machine", left=f"{workers - 1} worker(s) to the end")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(timeout=5)
        for event in read_timeline(timeline_path):  # a worker horovodrun left running
            if event["event"] == "start":
                _stop_worker(event["pid"])
    if process.returncode != 0:
        why = (f"fewer than --min-np {min_workers} worker(s) were left and no host came back within "
               f"--elastic-timeout {elastic_timeout} s, so Horovod stopped the job" if too_few
               else f"horovodrun failed with exit status {process.returncode}")
        raise ElasticRunError(f"{why}.\nLast lines:\n" + "\n".join(tail))
    from .results import read_results

    path = results_dir() / f"{name}.json"
    record = read_results(name)
    record["measurements"]["timeline"] = read_timeline(timeline_path) + driver
    record["measurements"]["summary"] = summarize(record["measurements"]["timeline"],
                                                  record["measurements"]["batch_size"])
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def summarize(timeline: list[dict], batch_size: int) -> dict:
    """What the timeline says: the kill, where the survivors resumed, how long it took, and the
    job's throughput before, during and after (images/s over all its workers)."""
    events = sorted(timeline, key=lambda e: e["t"])
    t0 = events[0]["t"]
    kill = next((e for e in events if e["event"] == "killed a worker"), None)
    added = next((e for e in events if e["event"] == "host added to discovery"), None)
    # The job's steps, as seen by the worker that finished and started first (it ran them all).
    started = {e["pid"]: e["t"] for e in events if e["event"] == "start"}
    finished = [e["pid"] for e in events if e["event"] == "done"]
    survivor = min(finished, key=started.get)
    steps = [e for e in events if e["event"] == "batch" and e["pid"] == survivor]
    summary = {"seconds": events[-1]["t"] - t0, "steps_trained_by_survivor": len(steps),
               "workers_at_start": steps[0]["size"] if steps else None}

    def rate(batch_events) -> float | None:
        """Images per second while training: the job's images per step over the median time
        between steps (the pauses at epoch ends and resets are left out; they are counted apart)."""
        gaps = [b["t"] - a["t"] for a, b in zip(batch_events, batch_events[1:], strict=False)]
        if len(gaps) < 2 or statistics.median(gaps) <= 0:
            return None
        return batch_size * batch_events[-1]["size"] / statistics.median(gaps)

    if not kill:
        return summary | {"images_per_second": rate(steps)}
    reset = next((e for e in events if e["event"] == "reset" and e["pid"] == survivor and e["t"] > kill["t"]),
                 None)
    if reset is None:
        return summary
    before = [e for e in steps if e["t"] < reset["t"]]
    after = [e for e in steps if e["t"] > reset["t"]]
    grew = next((e for e in after if added and e["t"] > added["t"] and e["size"] > reset["size"]), None)
    during = [e for e in after if grew is None or e["t"] < grew["t"]]
    grown = [e for e in after if grew is not None and e["t"] >= grew["t"]]
    summary |= {
        "killed_at_seconds": kill["t"] - t0, "killed_at_step": before[-1]["steps_done"],
        "resumed_at_step": after[0]["steps_done"] if after else None,
        "steps_repeated": before[-1]["steps_done"] - after[0]["steps_done"] + 1 if after else None,
        "seconds_to_training_again": after[0]["t"] - kill["t"] if after else None,
        "workers_before": before[-1]["size"], "workers_during": reset["size"],
        "images_per_second_before": rate(before), "images_per_second_during": rate(during),
    }
    if added:
        summary |= {"host_added_at_seconds": added["t"] - t0,
                    "seconds_to_grow": grew["t"] - added["t"] if grew else None,
                    "workers_after": grew["size"] if grew else None,
                    "images_per_second_after": rate(grown)}
    return summary
