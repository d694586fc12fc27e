"""The hub's spawners (they run inside JupyterHub, from hub/jupyterhub_config.py): each learner's
server runs as that learner, in their own copy of the course, in their share of the machine:

- CourseSpawner: on this machine, in a cgroup with the instructor's CPU and memory share;
- CourseSlurmSpawner: as a Slurm job (batchspawner) on a node of the cluster (the mini cluster
  of multinode/minicluster.sh in the tests), where the learner's `mpirun` runs in that allocation.

On every start, the files of the installed course the learner has not got yet are copied into
~/dl-at-scale, as the learner (so a link they made cannot send the copy anywhere else): the first
login gets the whole course, a later one only what the instructor added, and nothing a learner
edited is ever overwritten.
"""

from __future__ import annotations

import asyncio
import pwd
from pathlib import Path

from batchspawner import SlurmSpawner
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Dict, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from .hub import COPIED, Share, system_tool

COPY_FOLDER = "dl-at-scale"


async def copy_course(course: Path, user: str) -> None:
    home = Path(pwd.getpwnam(user).pw_dir)
    sources = [str(course / item) for item in COPIED if (course / item).exists()]
    command = [system_tool("runuser"), "-u", user, "--", "sh", "-c",
               'mkdir -p "$0" && cp -R --no-clobber --preserve=timestamps "$@" "$0"',
               str(home / COPY_FOLDER), *sources]
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    _, errors = await process.communicate()
    # Some coreutils releases (9.2 to 9.4) exit with 1 when --no-clobber skipped a file: not a failure.
    problems = [line for line in errors.decode().splitlines() if "not replacing" not in line]
    if process.returncode and problems:
        raise RuntimeError(f"copying the course for {user} failed: {' '.join(problems)}")


class OwnCopy(LoggingConfigurable):
    """Before the server starts: the learner's copy of the course, brought up to date."""

    course = Unicode(help="the installed course every learner's copy comes from", config=True)

    async def start(self):
        await copy_course(Path(self.course), self.user.name)
        return await super().start()


class CourseSpawner(OwnCopy, LocalProcessSpawner):
    cpus = Float(0, help="CPUs' worth of time per learner (a cgroup quota); 0: no limit", config=True)
    memory = Integer(0, help="bytes of memory per learner (a cgroup limit); 0: no limit", config=True)

    async def start(self):
        self.share = Share(self.user.name, self.cpus, self.memory).create()
        return await super().start()

    def make_preexec_fn(self, name):
        become_learner = super().make_preexec_fn(name)
        share = self.share

        def preexec():  # in the new process: into the share while still root, then the learner
            share.enter()
            become_learner()

        return preexec

    async def stop(self, now=False):
        await super().stop(now=now)
        share = getattr(self, "share", None)
        if share is not None:
            await asyncio.to_thread(share.remove)


class CourseSlurmSpawner(OwnCopy, SlurmSpawner):
    # The server listens on the node's network (batchspawner starts from this default, not the
    # configured value), where the hub's proxy reaches it at the node's address.
    ip = Unicode("0.0.0.0", config=True)
    node_addresses = Dict(help="{node name: address} where the hub reaches a node's servers", config=True)

    def state_gethost(self):
        host = super().state_gethost()  # the node's name, as squeue prints it
        return self.node_addresses.get(host, host)
