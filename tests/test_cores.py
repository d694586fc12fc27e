"""The cores a learner really has: the thread layout follows a restricted affinity and a cgroup CPU
quota (what a hub gives each learner), not only the machine's core count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import in_ci

from dlscale import cpu

LAYOUT = ("import dlscale, dlscale.cpu as c; "
          "print(dlscale.usable_cores(), dlscale.threads_per_rank(1), c.cpu_quota())")


def fake_proc(tmp_path: Path, cgroup: str, mounts: list[str]) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("".join(line + "\n" for line in mounts))
    return proc


def test_a_v2_quota_is_read_from_the_learners_cgroup_and_its_parents(tmp_path):
    unified = tmp_path / "unified"
    (unified / "hub" / "learner1").mkdir(parents=True)
    (unified / "hub" / "cpu.max").write_text("300000 100000\n")  # the hub's share: 3 CPUs
    (unified / "hub" / "learner1" / "cpu.max").write_text("150000 100000\n")  # the learner's: 1.5
    proc = fake_proc(tmp_path, "0::/hub/learner1\n",
                     [f"41 31 0:38 / {unified} rw,relatime - cgroup2 cgroup2 rw"])
    assert cpu.cpu_quota(proc) == 1.5
    (unified / "hub" / "learner1" / "cpu.max").write_text("max 100000\n")
    assert cpu.cpu_quota(proc) == 3.0  # the tightest limit on the way up


def test_a_v1_quota_is_read_beside_other_controllers(tmp_path):
    cpu_mount, cpuset = tmp_path / "cpu", tmp_path / "cpuset"
    (cpu_mount / "room" / "learner2").mkdir(parents=True)
    (cpu_mount / "room" / "learner2" / "cpu.cfs_quota_us").write_text("200000\n")
    (cpu_mount / "room" / "learner2" / "cpu.cfs_period_us").write_text("100000\n")
    (cpu_mount / "room" / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu_mount / "room" / "cpu.cfs_period_us").write_text("100000\n")
    proc = fake_proc(tmp_path, "3:cpuset:/\n1:cpu:/room/learner2\n0::/\n", [
        f"32 31 0:29 / {cpu_mount} rw,relatime - cgroup cgroup rw,cpu",
        f"34 31 0:31 / {cpuset} rw,relatime - cgroup cgroup rw,cpuset"])
    assert cpu.cpu_quota(proc) == 2.0
    assert cpu.cpu_quota(fake_proc(tmp_path / "x", "1:cpu:/\n", [])) is None  # nowhere mounted


def run_layout(**popen) -> list[str]:
    out = subprocess.run([sys.executable, "-c", LAYOUT], capture_output=True, text=True, timeout=120,
                         check=True, **popen)
    return out.stdout.split()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_a_restricted_affinity_gives_one_thread():
    assert run_layout(preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) == [
        "1", "1", "None"]


@pytest.fixture
def one_cpu_cgroup():
    """A v1 or v2 cgroup limited to one CPU's time, removed afterwards (needs root)."""
    hierarchies = dict(cpu.cgroup_folders())  # {"v1": [folder, parents...], "v2": [...]}
    version = "v1" if "v1" in hierarchies else "v2"
    top = hierarchies.get(version, [None])[0]
    reason = ("creating a cgroup needs root" if os.geteuid() != 0
              else "no cgroup hierarchy with a CPU controller" if top is None or (
                  version == "v2" and "cpu" not in (top / "cgroup.controllers").read_text().split())
              else None)
    if reason:
        if in_ci():
            pytest.fail(f"{reason}: CI runs as root on a machine with cgroups")
        pytest.skip(reason)
    if version == "v2":
        (top / "cgroup.subtree_control").write_text("+cpu")
    folder = top / f"dlscale-test-{os.getpid()}"
    folder.mkdir()
    try:
        if version == "v2":
            (folder / "cpu.max").write_text("100000 100000")
        else:
            (folder / "cpu.cfs_period_us").write_text("100000")
            (folder / "cpu.cfs_quota_us").write_text("100000")
        yield folder
    finally:
        for _ in range(50):  # the child has left the cgroup when it exits
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_a_cpu_quota_gives_one_thread_although_every_core_is_allowed(one_cpu_cgroup):
    procs = str(one_cpu_cgroup / "cgroup.procs")

    def enter():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    cores, threads, quota = run_layout(preexec_fn=enter)
    assert (cores, threads, float(quota)) == ("1", "1", 1.0)
