# JupyterHub for a room of learners, as `make hub` (dlscale/hub.py) starts it. The settings the
# instructor chose are read from settings.json in the hub's state folder (root only: it also
# holds the hub's database, cookie secret and certificate).
import json
import os
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub provides it)
state = Path(os.environ["DLSCALE_HUB_STATE"])
settings = json.loads((state / "settings.json").read_text())
venv = Path(settings["venv"])

# Where the hub listens: loopback unless the instructor named an address, and HTTPS beyond it.
c.JupyterHub.bind_url = f"{'https' if settings['ssl'] else 'http'}://{settings['ip']}:{settings['port']}"
if settings["ssl"]:
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = settings["ssl"]
c.JupyterHub.hub_port = settings["hub_api_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [str(venv / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

# Who may log in: the accounts of the course's group (their system passwords, through PAM), and
# the instructor, who alone has the admin view.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {settings["group"]}
# The group's accounts are listed now too, so that the admin view shows every learner before
# their first login (and each can ask the REST API for a token at once).
from dlscale.hub import members  # noqa: E402

c.Authenticator.allowed_users = set(members()) | {settings["admin"]}
c.Authenticator.admin_users = {settings["admin"]}

# Each learner's server runs as that learner, in their own copy of the course, with the shared
# venv's JupyterLab and kernel, in a cgroup with the instructor's share of CPUs and memory.
c.JupyterHub.spawner_class = "dlscale.hub_spawner.CourseSpawner"
c.CourseSpawner.course = settings["course"]
c.CourseSpawner.cpus = settings["cores_per_learner"]
c.CourseSpawner.memory = settings["memory_per_learner"]
c.Spawner.cmd = [str(venv / "bin" / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~/dl-at-scale"
c.Spawner.default_url = "/lab/tree/notebooks/00_getting_started.ipynb"
c.Spawner.environment = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}  # not root's PATH
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120

# An idle learner's server is stopped (their files stay): the culler runs as a hub service.
if settings["idle_seconds"] > 0:  # 0: never
    c.JupyterHub.load_roles = [{
        "name": "idle-culler", "services": ["idle-culler"],
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}]
    c.JupyterHub.services = [{"name": "idle-culler", "command": [
        str(venv / "bin" / "python"), "-m", "jupyterhub_idle_culler",
        f"--timeout={settings['idle_seconds']}", f"--cull-every={settings['cull_every']}"]}]
    # How often the hub asks the proxy which servers were used: at least as often as the culler looks.
    c.JupyterHub.last_activity_interval = min(300, settings["cull_every"])

# The same room on Slurm (make hub SLURM=1 with the mini cluster up): each learner's JupyterLab
# is a Slurm job on a node; their kernels, and the ranks of their `mpirun`, run in that job's
# allocation. The nodes reach the hub's API at this machine's address on the cluster's switch.
if settings["slurm"]:
    slurm = settings["slurm"]
    c.JupyterHub.spawner_class = "dlscale.hub_spawner.CourseSlurmSpawner"
    c.JupyterHub.hub_ip = slurm["hub_address"]
    c.CourseSlurmSpawner.course = settings["course"]
    c.CourseSlurmSpawner.node_addresses = slurm["nodes"]
    c.CourseSlurmSpawner.exec_prefix = f"{slurm['runuser']} -u {{username}} --"  # sbatch as the learner
    c.CourseSlurmSpawner.req_partition = slurm["partition"]
    c.CourseSlurmSpawner.req_nprocs = str(max(1, round(settings["cores_per_learner"] or 1)))
    c.CourseSlurmSpawner.batch_script = """#!/bin/bash
#SBATCH --job-name=jupyterlab
#SBATCH --output={{homedir}}/.jupyterlab-slurm-%j.log
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
#SBATCH --partition={{partition}}
#SBATCH --cpus-per-task={{nprocs}}
{{cmd}}
"""
    # Slurm's commands find the cluster through SLURM_CONF: the hub's own (squeue, scancel), the
    # submission's (sbatch runs with the learner's environment) and so the job's (srun, mpirun).
    os.environ["SLURM_CONF"] = c.Spawner.environment["SLURM_CONF"] = slurm["conf"]
    c.Spawner.start_timeout = 180  # a job may wait in the queue
