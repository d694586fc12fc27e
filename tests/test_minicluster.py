"""The course's multi-node lines on a real (if small) cluster: two network-namespace nodes and Slurm.

multinode/minicluster.sh starts two "nodes" joined by a virtual cable (their own network stacks,
host names and hosts files) and a Slurm cluster over them; these tests run the course's own
`multinode/course.sbatch` with `sbatch`, the hostfile recipe of docs/MULTINODE.md across the two
network stacks, a node lost mid-job and the requeued job resuming, and IMB across the nodes and
within one. The cluster is up for the module and down at its end, by process id, even when a test
fails; the last test takes it down itself and checks that nothing is left.

Needs root, `ip netns`, slurm-wlm and munge: skipped without them, failing under CI (`.ci/run`
installs them and runs as root).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import in_ci, take_results
from PIL import Image

from dlscale import comms, minicluster
from dlscale.env import ROOT, checkpoints_dir, mpi_environment, results_dir

pytestmark = pytest.mark.mpi
SCRIPT = ROOT / "multinode" / "minicluster.sh"
DOC = ROOT / "docs" / "MULTINODE.md"


def require_cluster() -> None:
    reason = minicluster.unavailable()
    if reason:
        if in_ci():
            pytest.fail(f"the mini cluster needs {reason}; .ci/run installs slurm-wlm and munge")
        pytest.skip(f"the mini cluster needs {reason}")


def environment(**extra: str) -> dict[str, str]:
    """The course environment (quick mode, the session's output folder) plus `extra`."""
    return mpi_environment() | {"DLSCALE_QUICK": "1"} | extra


def script(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


# --- the script's own guards (no cluster needed) ---------------------------------------------------

def test_it_refuses_to_start_without_root():
    command = ["bash", str(SCRIPT), "up"]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3 and "needs root" in done.stderr, done.stderr


def test_without_root_a_notebook_is_told_why():
    command = [sys.executable, "-c", "from dlscale import minicluster; print(minicluster.unavailable())"]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 and "Permission denied" in done.stderr:
        pytest.skip("this venv's Python cannot be run by another user")
    assert done.stdout.startswith("root, to create network namespaces"), done.stdout + done.stderr


def test_it_names_the_missing_packages(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the check for Slurm comes after the check for root")
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("ip", "nsenter", "unshare"):  # namespaces yes; Slurm's and munge's daemons (sbin) no
        (tools / tool).symlink_to(shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"))
    done = script("up", env={"PATH": f"{tools}:/usr/bin:/bin", "MINICLUSTER_DIR": str(tmp_path / "state")},
                  timeout=60)
    assert done.returncode in (4, 5), done.stderr  # 4 when this machine has no network namespaces
    if done.returncode == 5:
        assert "apt-get install slurm-wlm munge" in done.stderr and "slurmctld" in done.stderr
    assert not (tmp_path / "state").exists()


def test_down_after_an_interrupted_up_leaves_nothing(tmp_path):
    require_cluster()
    cluster = minicluster.MiniCluster()
    assert not cluster.leftovers(), "a mini cluster is already running: multinode/minicluster.sh down"
    up = subprocess.Popen(["bash", str(SCRIPT), "up"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    pids = cluster.state / "pids"
    deadline = time.monotonic() + 60
    while not (pids.exists() and "slurmctld" in pids.read_text()):  # half-way: nodes, munged, slurmctld
        assert up.poll() is None and time.monotonic() < deadline, "up finished before it could be stopped"
        time.sleep(0.01)
    os.kill(up.pid, signal.SIGKILL)  # no chance to clean up after itself; its daemons run on
    up.wait(timeout=30)
    cluster.remember_processes()
    assert cluster.leftovers(), "the interrupted start left nothing to clean up: the test proves nothing"
    done = script("down")
    assert done.returncode == 0, done.stderr
    assert cluster.leftovers() == []
    assert script("down").returncode == 0  # idempotent


# --- the cluster ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    require_cluster()
    with minicluster.running() as up:  # down by process id at the end of the module, even on failure
        yield up


ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "PREEMPTED")


def sbatch(cluster, out_dir: Path, *options: str, env: dict, wait: str = "poll",
           timeout: float = 600) -> tuple[str, Path]:
    """Submit multinode/course.sbatch from node1 (the login node); (job id, its output file).

    wait: "sbatch" (`sbatch --wait`, which checks on the job at growing intervals: up to ten
    seconds late), "poll" (every half second, for a shorter test) or "no".
    """
    command = ["sbatch", "--parsable", f"--output={out_dir}/%j.out", *options, "multinode/course.sbatch"]
    if wait == "sbatch":
        command.insert(1, "--wait")
    done = cluster.run("node1", *command, env=env, timeout=timeout, check=False)
    job = done.stdout.strip().split(";")[0]
    out = out_dir / f"{job}.out"
    if done.returncode == 0 and wait == "poll":
        state = cluster.wait_for_job(job, lambda fields: fields.get("JobState") in ENDED, timeout=timeout)
        done.returncode = 0 if state["JobState"] == "COMPLETED" else 1
        done.stderr += f"job {job}: {state.get('JobState')}, exit code {state.get('ExitCode')}"
    assert done.returncode == 0, (f"sbatch: {done.stdout}{done.stderr}\njob output:\n"
                                  + (out.read_text()[-4000:] if job and out.exists() else "none"))
    return job, out


SIZES = "--epochs 2 --train-images 2048"  # two epochs: the second is the steady one images/s reads


@pytest.fixture(scope="module")
def course_jobs(cluster, tmp_path_factory):
    """The Slurm script on 2 nodes x 1 rank, then on 1 node x 2 ranks: {layout: (job, output, records)}."""
    out_dir = tmp_path_factory.mktemp("jobs")
    env = environment(HOROVOD_ARGS=SIZES)
    jobs = {}
    for layout, nodes, ranks, wait in (("2x1", 2, 1, "sbatch"), ("1x2", 1, 2, "poll")):
        job, out = sbatch(cluster, out_dir, f"--nodes={nodes}", f"--ntasks-per-node={ranks}",
                          "--cpus-per-task=1", "--time=10", env=env, wait=wait)
        picture = results_dir() / f"job_{job}_kmeans.png"
        records = {run: take_results(f"job_{job}_{run}")["measurements"] for run in ("horovod", "kmeans")}
        jobs[layout] = {"job": job, "output": out.read_text(), "records": records,
                        "folder": checkpoints_dir() / f"job_{job}", "run_time": cluster.job(job)["RunTime"],
                        "picture": np.asarray(Image.open(picture))}
        picture.unlink()
    yield jobs
    for done in jobs.values():
        for path in sorted(done["folder"].glob("*")):
            path.unlink()
        done["folder"].rmdir()


def test_sbatch_trains_with_horovod_across_two_nodes(course_jobs):
    job = course_jobs["2x1"]
    assert "dl-at-scale: 2 node(s) x 1 rank(s) x 1 thread(s); runs: horovod kmeans" in job["output"]
    assert "weights identical on all ranks: True" in job["output"]
    m = job["records"]["horovod"]
    assert m["host_per_rank"] == ["node1", "node2"]  # one rank on each node
    assert m["weights_identical"] and len(set(m["weights_digest_after_first_step_per_rank"])) == 1
    assert m["checkpoints_saved_per_rank"] == [2, 0]  # rank 0 only
    assert sorted(p.name for p in job["folder"].glob("*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    one_node = course_jobs["1x2"]["records"]["horovod"]
    assert one_node["host_per_rank"] == ["node1", "node1"]
    print(f"\nHorovod, MNIST CNN, {m['train_images']} images: 2 nodes x 1 rank "
          f"{m['train_images_per_second']:.0f} img/s, "
          f"1 node x 2 ranks {one_node['train_images_per_second']:.0f} "
          f"img/s (ratio {m['train_images_per_second'] / one_node['train_images_per_second']:.2f}); "
          f"the jobs ran {course_jobs['2x1']['run_time']} and {course_jobs['1x2']['run_time']}")


def test_sbatch_kmeans_on_two_nodes_rebuilds_every_pixel_as_one_node_does(course_jobs):
    two, one = course_jobs["2x1"], course_jobs["1x2"]
    m = two["records"]["kmeans"]
    assert [r["host"] for r in m["per_rank"]] == ["node1", "node2"]
    assert [r["host"] for r in one["records"]["kmeans"]["per_rank"]] == ["node1", "node1"]
    assert sum(r["pixels"] for r in m["per_rank"]) == m["pixels"] == m["height"] * m["width"]
    assert two["picture"].shape == (m["height"], m["width"], 3)
    assert np.array_equal(two["picture"], one["picture"]), "2 nodes and 1 node made different pictures"
    assert m["centroids"] == one["records"]["kmeans"]["centroids"]


def test_the_guides_hostfile_recipe_runs_across_the_two_nodes(cluster):
    blocks = re.findall(r"```bash\n# runs on the mini cluster\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/MULTINODE.md should have one block marked '# runs on the mini cluster'"
    env = environment() | cluster.environment()
    done = cluster.run("node1", "bash", "-c", "set -euo pipefail\n" + blocks[0], env=env, timeout=300,
                       check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "-ppn 2" in blocks[0] and "-f" in blocks[0]
    lines = comms.lines_per_rank(done.stdout.splitlines() + done.stderr.splitlines())
    out = "\n".join(lines)  # each rank's lines whole, wherever the launcher cut them
    for rank, node in ((0, "node1"), (1, "node1"), (2, "node2"), (3, "node2")):  # node by node
        assert f"hello from rank {rank} of 4 on {node}" in out, out[-3000:]
    assert re.search(r"MPI startup\(\): libfabric provider: tcp", out), out[-3000:]
    placement = comms.mpi_startup(lines)["node_per_rank"]
    report = "\n".join(line for line in lines if "MPI startup" in line)
    assert placement == {"0": "node1", "1": "node1", "2": "node2", "3": "node2"}, report
    assert take_results("cluster_hello")["machine"]["ranks"] == 4
    assert out.count("allreduce sum 3, expected 3 OK") == 2  # Horovod across the nodes


def test_a_node_lost_mid_job_fails_fast_and_the_requeued_job_resumes(cluster, tmp_path):
    env = environment(RUNS="horovod", HOROVOD_ARGS="--epochs 5 --train-images 1024")
    job, out = sbatch(cluster, tmp_path, "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--time=5",
                      "--requeue", "--open-mode=append", env=env, wait="no", timeout=60)
    deadline = time.monotonic() + 240
    while "saved ckpt-2" not in (out.read_text() if out.exists() else ""):
        state = cluster.job(job).get("JobState")
        assert state in ("PENDING", "RUNNING", "CONFIGURING") and time.monotonic() < deadline, (
            f"job {job} {state}, no second checkpoint:\n" + (out.read_text()[-3000:] if out.exists() else ""))
        time.sleep(0.1)
    lost = cluster.lose_node("node2")  # slurmd, the step, Hydra's proxy and the rank, at once
    killed = time.monotonic()
    assert len(lost) >= 3
    failed = cluster.wait_for_job(job, lambda f: f.get("Restarts") == "1", timeout=120)  # requeued
    noticed = time.monotonic() - killed
    assert noticed < 90, f"the job ran on for {noticed:.0f} s after its node was lost"
    text = out.read_text()
    assert "Downstream from host node2 exited abnormally" in text, text[-3000:]  # Intel MPI's
    assert "Node failure on node2" in text or "NODE FAILURE" in text, text[-3000:]  # Slurm's
    assert failed["JobState"] in ("PENDING", "REQUEUED", "COMPLETING"), failed
    cluster.restart_node("node2")  # the machine is back: Slurm returns it to service, the job runs again
    done = cluster.wait_for_job(job, lambda f: f.get("JobState") not in ("PENDING", "REQUEUED", "RUNNING",
                                                                        "CONFIGURING", "COMPLETING"),
                                timeout=300, poll=1)
    text = out.read_text()
    assert done["JobState"] == "COMPLETED", f"{done}\n{text[-3000:]}"
    resumed = re.findall(r"resuming from ckpt-(\d+): (\d+) epoch", text)
    assert resumed and int(resumed[-1][1]) >= 2, text[-3000:]  # same job id, same checkpoint folder
    m = take_results(f"job_{job}_horovod")["measurements"]
    assert m["resumed_from_epoch"] >= 2 and m["epochs_done"] == 5 and m["host_per_rank"] == ["node1", "node2"]
    print(f"\nnode2 lost: Slurm ended the job's run {noticed:.0f} s later (its limit: 5 minutes); "
          f"requeued as job {job}, it resumed from epoch {m['resumed_from_epoch']}")

    # By hand, a new job gets a new id: CHECKPOINT_DIR points it at the old job's folder.
    again, out = sbatch(cluster, tmp_path, "--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=1",
                        "--time=5",
                        env=env | {"CHECKPOINT_DIR": f"checkpoints/job_{job}",
                                   "HOROVOD_ARGS": "--epochs 6 --train-images 1024"})
    assert again != job and "resuming from ckpt-5: 5 epoch(s) done" in out.read_text()
    assert take_results(f"job_{again}_horovod")["measurements"]["resumed_from_epoch"] == 5
    folder = checkpoints_dir() / f"job_{job}"
    for path in folder.glob("*"):
        path.unlink()
    folder.rmdir()


def test_imb_across_the_two_nodes_is_tcp_and_slower_than_within_one(cluster):
    record = comms.network_vs_shared_memory(cluster, max_log=20, name="test_network")
    assert take_results("test_network")["measurements"]["runs"].keys() == {"one node", "two nodes"}
    one, two = record["runs"]["one node"], record["runs"]["two nodes"]
    assert one["startup"]["provider"] is None  # shared memory only
    assert one["startup"]["node_per_rank"] == {"0": "node1", "1": "node1"}
    assert two["startup"]["provider"] == "tcp"
    assert two["startup"]["node_per_rank"] == {"0": "node1", "1": "node2"}
    assert one["interface_bytes"] < 1e6 < 1e8 < two["interface_bytes"]  # the network carried the messages
    for benchmark in record["benchmarks"]:
        shm, tcp = one["fits"][benchmark]["2"], two["fits"][benchmark]["2"]
        assert tcp["latency_us"] > 2 * shm["latency_us"], (benchmark, shm, tcp)
    print("\n" + "\n".join(comms.network_lines(record)))


def test_down_leaves_no_namespace_daemon_or_file(cluster):
    """Last in the module: the fixture's own `down` then finds nothing to do."""
    cluster.remember_processes()
    recorded = {name for name, runs in cluster.recorded.items() if runs}
    assert {"munged", "slurmctld", "slurmd-node1", "slurmd-node2"} <= recorded
    cluster.down()
    assert cluster.leftovers() == []
    status = script("status")
    assert status.returncode == 1 and "down" in status.stdout
