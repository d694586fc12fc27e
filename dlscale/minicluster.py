"""The mini cluster from Python: two network-namespace "nodes" and Slurm, for the tests and notebook 06.

    from dlscale import minicluster
    if minicluster.unavailable() is None:          # root, `ip netns`, Slurm and munge are here
        with minicluster.running() as cluster:     # up; down (by process id) even on an error
            cluster.run("node1", "srun", "-N2", "hostname")
            mpirun("IMB-MPI1", "PingPong", prefix=cluster.login, options=cluster.hostfile_options())

multinode/minicluster.sh does the work (`up`, `down`, `status`, `exec NODE CMD`); this module runs
it under a time limit, reads what it recorded (its environment file, the daemons' process ids)
and says what is left after `down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .env import ROOT

SCRIPT = ROOT / "multinode" / "minicluster.sh"
STATE = Path(os.environ.get("MINICLUSTER_DIR", "/tmp/dlscale-minicluster"))
NODES = ("node1", "node2")
NAMESPACE = "dlscale-{}"  # the network namespace of a node (minicluster.sh's PREFIX)
SWITCH = "dlscale-switch"  # the bridge on this machine that the nodes are cabled to
HOST = "host"  # this machine, as the nodes' hosts files name it (its address on the switch)
PACKAGES = {"slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "sbatch": "slurm-wlm", "munged": "munge"}


class MiniClusterError(RuntimeError):
    """The mini cluster did not start, or a command on it failed: the message says why."""


def _path() -> str:
    """PATH with the system folders Slurm's and munge's daemons and `ip` live in (a kernel started
    from a user's PATH may lack them)."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    extra = [p for p in ("/usr/sbin", "/sbin", "/usr/bin", "/bin") if p not in parts]
    return os.pathsep.join([*parts, *extra])


def unavailable() -> str | None:
    """Why the mini cluster cannot run here, as a short phrase; None when it can."""
    if os.uname().sysname != "Linux":
        return "Linux (network namespaces)"
    if os.geteuid() != 0:
        return ("root, to create network namespaces (the tests run it as root; in a terminal: "
                "sudo multinode/minicluster.sh up)")
    ip = shutil.which("ip", path=_path())
    if not ip or subprocess.run([ip, "netns", "list"], capture_output=True, timeout=30).returncode:
        return "iproute2's `ip netns` (Debian: apt-get install iproute2)"
    missing = sorted({package for tool, package in PACKAGES.items() if not shutil.which(tool, path=_path())})
    if missing:
        return f"{' and '.join(missing)} (Debian: apt-get install slurm-wlm munge)"
    return None


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat); None when it has exited (a zombie
    has too: only its parent has not collected it yet)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def namespaces() -> list[str]:
    """The mini cluster's network namespaces that exist now."""
    return [NAMESPACE.format(node) for node in NODES if Path("/run/netns", NAMESPACE.format(node)).exists()]


class MiniCluster:
    """The cluster minicluster.sh keeps in `state` (MINICLUSTER_DIR): node1 is its login node."""

    def __init__(self, state: Path = STATE):
        self.state = Path(state)
        self.on_node = self.state / "bin" / "on-node"
        self.login = [str(self.on_node), "node1"]  # a command prefix: run it on node1
        self.hostfile = self.state / "hosts"
        self.rsh = self.state / "bin" / "rsh"
        self.recorded: dict[str, list[tuple[int, str]]] = {}

    def _script(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        env = os.environ | {"MINICLUSTER_DIR": str(self.state), "PATH": _path()}
        return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def up(self, timeout: float = 120) -> None:
        try:
            done = self._script("up", timeout=timeout)
        except subprocess.TimeoutExpired as error:
            self.remember_processes()
            raise MiniClusterError(f"minicluster.sh up did not finish within {timeout:.0f} s") from error
        self.remember_processes()
        if done.returncode != 0:
            raise MiniClusterError(f"minicluster.sh up failed (exit status {done.returncode}):\n"
                                   + (done.stdout + done.stderr).strip())

    def down(self, timeout: float = 120) -> None:
        self.remember_processes()
        done = self._script("down", timeout=timeout)
        if done.returncode != 0:
            raise MiniClusterError(f"minicluster.sh down failed (exit status {done.returncode}):\n"
                                   + (done.stdout + done.stderr).strip())

    def remember_processes(self) -> None:
        """Keep the process ids minicluster.sh recorded, to check after `down` that none is left."""
        with contextlib.suppress(OSError):
            for line in (self.state / "pids").read_text().splitlines():
                name, pid, started = (line.split() + ["", ""])[:3]
                if (int(pid), started) not in self.recorded.get(name, []):
                    self.recorded.setdefault(name, []).append((int(pid), started))

    def environment(self) -> dict[str, str]:
        """What minicluster.sh wrote to its env file (SLURM_CONF, MINICLUSTER_HOSTFILE, ...)."""
        found = {}
        for line in (self.state / "env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                found[key] = value
        return found

    def run(self, node: str, *command, timeout: float = 120, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run `command` on `node` (its network, host name and hosts file; SLURM_CONF set)."""
        done = subprocess.run([str(self.on_node), node, *map(str, command)], env=env, capture_output=True,
                              text=True, timeout=timeout, check=False, cwd=ROOT)
        if check and done.returncode != 0:
            raise MiniClusterError(f"{' '.join(map(str, command))} on {node} failed (exit status "
                                   f"{done.returncode}):\n{(done.stdout + done.stderr).strip()[-3000:]}")
        return done

    def addresses(self) -> dict[str, str]:
        """{name: address} on the cluster's network, as the nodes' hosts files give them: node1,
        node2, and `host` (this machine on the switch: where a hub here is reached from a node)."""
        found = {}
        for line in Path("/etc/netns", NAMESPACE.format(NODES[0]), "hosts").read_text().splitlines():
            address, *names = line.split()
            found.update({name: address for name in names if name != "localhost"})
        return found

    def hostfile_options(self) -> list[str]:
        """mpirun options for a run across the nodes from node1: the hostfile, and Hydra's rsh
        launcher pointed at the wrapper that enters a node (there is no ssh between them)."""
        return ["-f", str(self.hostfile), "-launcher", "rsh", "-launcher-exec", str(self.rsh)]

    def job(self, job_id: int | str) -> dict[str, str]:
        """`scontrol show job`'s fields ({} once Slurm has forgotten the job)."""
        done = self.run("node1", "scontrol", "-o", "show", "job", job_id, check=False)
        fields = {}
        for word in done.stdout.split():
            key, _, value = word.partition("=")
            fields[key] = value
        return fields

    def wait_for_job(self, job_id: int | str, until, timeout: float, poll: float = 0.5) -> dict[str, str]:
        """Poll the job until `until(fields)` holds; its fields then. MiniClusterError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            fields = self.job(job_id)
            if until(fields):
                return fields
            if time.monotonic() > deadline:
                raise MiniClusterError(f"job {job_id} still {fields.get('JobState')} after {timeout:.0f} s")
            time.sleep(poll)

    def lose_node(self, node: str) -> list[int]:
        """Everything that runs on `node` killed at once (SIGKILL), as when a machine fails:
        its slurmd, the job's steps and ranks. Returns the process ids."""
        pids = subprocess.run([shutil.which("ip", path=_path()), "netns", "pids", NAMESPACE.format(node)],
                              capture_output=True,
                              text=True, timeout=30, check=True).stdout.split()
        for pid in map(int, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return list(map(int, pids))

    def restart_node(self, node: str, timeout: float = 60) -> None:
        """The node comes back: its slurmd starts again (Slurm puts it back in service)."""
        done = self._script("restart-node", node, timeout=timeout)
        self.remember_processes()
        if done.returncode != 0:
            raise MiniClusterError(f"restarting {node} failed:\n{(done.stdout + done.stderr).strip()}")

    def interface_bytes(self, node: str = "node1") -> int:
        """Bytes sent plus received so far by the node's network interface (its cable to the switch).
        Read from the host: inside a node, /sys still shows the host's interfaces."""
        done = subprocess.run([shutil.which("ip", path=_path()), "-s", "-j", "-n", NAMESPACE.format(node),
                               "link", "show", "eth0"],
                              capture_output=True, text=True, timeout=30, check=True)
        stats = json.loads(done.stdout)[0]["stats64"]
        return stats["rx"]["bytes"] + stats["tx"]["bytes"]

    def leftovers(self) -> list[str]:
        """What of the mini cluster still exists: namespaces, hosts files, its folder, and any
        process it recorded (matched by start time, so a reused process id does not count)."""
        left = [f"network namespace {name}" for name in namespaces()]
        if Path("/sys/class/net", SWITCH).exists():
            left.append(f"the switch {SWITCH}")
        left += [f"/etc/netns/{NAMESPACE.format(node)}" for node in NODES
                 if Path("/etc/netns", NAMESPACE.format(node)).exists()]
        if self.state.exists():
            left.append(f"its folder {self.state}")
        left += [f"{name} (pid {pid})" for name, runs in self.recorded.items() for pid, started in runs
                 if started and _start_time(pid) == started]
        return left


@contextlib.contextmanager
def running(state: Path = STATE, timeout: float = 120):
    """The mini cluster, up for the `with` block and down after it, even when the block fails;
    MiniClusterError if anything of it is left after `down`."""
    cluster = MiniCluster(state)
    try:
        cluster.up(timeout=timeout)
        yield cluster
    finally:
        cluster.down(timeout=timeout)
        left = cluster.leftovers()
        if left:
            raise MiniClusterError(f"after down, still there: {', '.join(left)}")
