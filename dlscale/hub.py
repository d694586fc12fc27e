"""A room of learners: one JupyterHub on this machine, each learner with their own course copy,
results, checkpoints and share of the cores, all running one shared install. `make hub` runs

    python -m dlscale.hub up --learners 20 --cores-per-learner 2 --memory-per-learner 4G

as root: it installs the shared stack (once), creates the accounts (passwords printed once),
writes the hub's configuration and runs the hub until Ctrl-C. `python -m dlscale.hub --help` lists
the rest (accounts from a CSV file, removing them, an address beyond loopback with HTTPS).

The shared stack: a copy of the course in PREFIX/course (read-only for learners) with its own
venv made by the course's Makefile from a Python every account can run (a venv made from a
Python under root's home, such as pyenv's, cannot be run by anyone else), plus JupyterHub, the
idle culler and configurable-http-proxy (`make hub-stack`). The Horovod wheel built for the
instructor's venv is reused. hub/jupyterhub_config.py reads the settings this module writes;
dlscale.hub_spawner starts each learner's server in their own copy and cgroup.
"""

from __future__ import annotations

import argparse
import csv
import grp
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .env import ROOT

PREFIX = Path(os.environ.get("DLSCALE_HUB_PREFIX", "/opt/dl-at-scale"))
GROUP = "dl-at-scale"  # every account the hub created, and the only ones allowed to log in
CONFIG = ROOT / "hub" / "jupyterhub_config.py"
# What each learner gets a copy of: what they open, edit and launch. The data, the helper package
# and the venv stay in the shared install (dlscale.env finds the learner's copy from the folder).
COPIED = ("README.md", "notebooks", "solutions", "scripts", "benchmarks", "docs", "multinode")
LEFT_OUT = (".git", ".venv", "results", "checkpoints", "tests/artifacts", "__pycache__",
            ".ipynb_checkpoints", ".pytest_cache", "dlscale.egg-info")


class HubError(RuntimeError):
    """A set-up step that cannot go on: the message says what to do."""


def system_tool(name: str) -> str:
    """A system command by its full path (root's tools live in sbin, not always on PATH)."""
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise HubError(f"no {name} command here (Debian: util-linux and passwd provide the account tools)")
    return found


def require_root() -> None:
    if os.geteuid() != 0:
        raise HubError("the hub creates accounts and starts servers as them: run it as root "
                       "(sudo make hub)")


def runnable_by_everyone(python: str) -> bool:
    """Whether an account with no rights of its own (nobody) can run `python` and make a venv."""
    found = shutil.which(python)
    if not found:
        return False
    check = subprocess.run([system_tool("runuser"), "-u", "nobody", "--", found, "-c",
                            "import ensurepip, venv"], capture_output=True, timeout=60)
    return check.returncode == 0


def shared_python(preferred: str = "python3.11") -> str:
    """A Python 3.11 that every learner can run: the instructor's, else the system's."""
    for python in (preferred, "/usr/bin/python3.11", "/usr/local/bin/python3.11"):
        if runnable_by_everyone(python):
            return shutil.which(python)
    raise HubError(f"{preferred} lives where learners cannot run it (such as pyenv's under root's home), "
                   "and no system Python 3.11 was found. Debian/Ubuntu: apt-get install python3.11 "
                   "python3.11-venv; or give one: make hub HUB_PYTHON=/path/to/python3.11")


def course_files(source: Path = ROOT) -> list[Path]:
    """The course's files, relative to `source`: the files git tracks (with the instructor's
    uncommitted edits), never an untracked one (a room's password list, a key), or every file but
    outputs and caches when it is not a clone."""
    if (source / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached"],
                                capture_output=True, check=True).stdout
        return [Path(p) for p in listed.decode().split("\0") if p and (source / p).is_file()]
    return [p.relative_to(source) for p in source.rglob("*") if p.is_file()
            and not any(part in LEFT_OUT for part in p.relative_to(source).parts)]


def _wheel_cache() -> list[str]:
    """Under sudo, HOME is root's: reuse the Horovod wheel the instructor built as themselves."""
    user = os.environ.get("SUDO_USER")
    if not user or user == "root":
        return []
    try:
        wheels = Path(pwd.getpwnam(user).pw_dir) / ".cache" / "dl-at-scale" / "wheels"
    except KeyError:
        return []
    return [f"WHEEL_ROOT={wheels}"] if any(wheels.glob("*/horovod-*.whl")) else []


def check_prerequisites() -> None:
    """What the hub needs beyond the course's own set-up, before anything slow starts."""
    for tool, package in (("npm", "nodejs npm (Node.js 20 or newer)"), ("openssl", "openssl"),
                          ("runuser", "util-linux"), ("useradd", "passwd")):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise HubError(f"no {tool} command: install {package} (Debian/Ubuntu: apt-get install ...)")


def install(prefix: Path = PREFIX, python: str | None = None, echo=print, quiet: bool = False,
            timeout: float | None = None) -> Path:
    """The shared stack in prefix/course, made or brought up to date; returns its venv.
    quiet: make's output only when it fails; timeout: seconds before make is stopped."""
    course = prefix / "course"
    echo(f"==> The course for every learner in {course} (read-only for them)")
    for relative in course_files():
        target = course / relative
        if not target.exists() or target.read_bytes() != (ROOT / relative).read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target)
    python = shared_python(python or "python3.11")
    echo(f"==> Its venv and JupyterHub, with {python} (the first time: several minutes)")
    made = subprocess.run(["make", "--no-print-directory", "-C", str(course), "hub-stack",
                           f"PYTHON={python}", *_wheel_cache()], capture_output=quiet, text=True,
                          timeout=timeout)
    if made.returncode:
        raise HubError(f"the shared install in {course} failed (make hub-stack)"
                       + (":\n" + (made.stdout + made.stderr)[-3000:] if quiet else ": see above"))
    prefix.chmod(0o755)
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(course)], check=True)  # not the hub's state folder
    return course / ".venv"


class Share:
    """A learner's share of the machine: a cgroup with a CPU quota (`cpus` CPUs' worth of time)
    and a memory limit (`memory` bytes), under the hub's own cgroup; 0 means no limit.

    No systemd runs here to hand out slices, so the hub writes the cgroup files itself: a v1
    hierarchy with the controller where one is mounted, else the v2 (unified) tree. Everything the
    learner's server starts (kernels, mpirun, its ranks) stays in it; dlscale.cpu.usable_cores()
    reads the quota back, so the thread layout follows it.
    """

    def __init__(self, name: str, cpus: float = 0, memory: int = 0):
        self.name, self.cpus, self.memory = name, cpus, memory
        self.folders: list[Path] = []

    @staticmethod
    def _base(controller: str) -> tuple[str, Path] | None:
        from .cpu import cgroup_folders

        found = dict(cgroup_folders(controller=controller))
        if "v1" in found:
            return "v1", found["v1"][0]
        # v2: from the tree's root, which may hand controllers down whatever runs in it (a
        # cgroup with processes of its own, such as a login session's, may not).
        top = found.get("v2", [None])[-1]
        if top is not None and controller in (top / "cgroup.controllers").read_text().split():
            return "v2", top
        return None

    def create(self) -> Share:
        """Make the cgroup(s) and write the limits (as root): HubError when the system refuses,
        so that the learner's server does not start without its share."""
        try:
            return self._create()
        except OSError as error:
            raise HubError(f"could not give {self.name} their share of the machine ({error}); "
                           "start the hub without CORES_PER_LEARNER / MEMORY_PER_LEARNER, or on a "
                           "machine where root may create cgroups") from error

    def _create(self) -> Share:
        wanted = {"cpu": self.cpus, "memory": self.memory}
        for controller, limit in wanted.items():
            if not limit:
                continue
            base = self._base(controller)
            if base is None:
                print(f"warning: no cgroup {controller} controller here: {self.name} gets no "
                      f"{controller} limit", file=sys.stderr)
                continue
            version, top = base
            folder = top / "dl-at-scale-hub" / self.name
            if version == "v2":  # a v2 controller must be handed down level by level
                for level in (top, top / "dl-at-scale-hub"):
                    level.mkdir(exist_ok=True)
                    (level / "cgroup.subtree_control").write_text(f"+{controller}")
            folder.mkdir(parents=True, exist_ok=True)
            if controller == "cpu" and version == "v2":
                (folder / "cpu.max").write_text(f"{int(limit * 100000)} 100000")
            elif controller == "cpu":
                (folder / "cpu.cfs_period_us").write_text("100000")
                (folder / "cpu.cfs_quota_us").write_text(str(int(limit * 100000)))
            else:
                limit_file = "memory.max" if version == "v2" else "memory.limit_in_bytes"
                (folder / limit_file).write_text(str(limit))
            if folder not in self.folders:
                self.folders.append(folder)
        return self

    def enter(self) -> None:
        """Move the calling process into the share (in the child, before it becomes the learner)."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self, wait: float = 5) -> None:
        """Remove the cgroup(s) once every process has left them."""
        deadline = time.time() + wait
        for folder in self.folders:
            while folder.exists():
                try:
                    folder.rmdir()
                except OSError:
                    if time.time() > deadline:
                        break
                    time.sleep(0.1)
        self.folders = []


def _password() -> str:
    letters = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"  # none that look alike
    return "".join(secrets.choice(letters) for _ in range(12))


def read_accounts(path: Path) -> dict[str, str | None]:
    """{name: password or None} from a CSV file of `name[,password]` lines (a header is allowed)."""
    accounts = {}
    with open(path, newline="") as stream:
        for number, row in enumerate(csv.reader(stream), 1):
            if not row or not row[0].strip() or row[0].strip().lower() in ("name", "username", "user"):
                continue
            name = row[0].strip()
            if not name.replace("-", "").replace("_", "").isalnum() or not name[0].isalpha() \
                    or name != name.lower() or len(name) > 32:
                raise HubError(f"{path}, line {number}: {name!r} is not an account name (lower-case "
                               "letters, digits, - and _, starting with a letter)")
            accounts[name] = row[1].strip() if len(row) > 1 and row[1].strip() else None
    if not accounts:
        raise HubError(f"{path} names no accounts: one `name[,password]` per line")
    return accounts


def create_accounts(accounts: dict[str, str | None]) -> dict[str, str | None]:
    """Accounts in the course's group, each home readable by its owner only. A new account gets
    the password given, or a generated one; an existing account keeps its own unless the list
    gives one (so restarting the hub does not change the room's passwords). Returns {name: the
    password set, or None where it was left alone}."""
    require_root()
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run([system_tool("groupadd"), GROUP], check=True)
    set_now = {}
    for name, password in accounts.items():
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            subprocess.run([system_tool("useradd"), "--create-home", "--shell", "/bin/bash",
                            "--gid", GROUP, name], check=True)
            password = password or _password()
        else:
            if account.pw_gid != grp.getgrnam(GROUP).gr_gid:
                raise HubError(f"an account {name} exists already and is not one of the course's "
                               f"(group {GROUP}): choose another name; it was left as it was")
        if password:
            subprocess.run([system_tool("chpasswd")], input=f"{name}:{password}\n", text=True, check=True)
        set_now[name] = password
        os.chmod(pwd.getpwnam(name).pw_dir, 0o700)  # useradd makes homes others can read
    return set_now


def print_accounts(set_now: dict[str, str | None], given: dict[str, str | None]) -> None:
    """The passwords generated now, once; the others are the file's, or the account's own."""
    print(f"\n{'account':<16} password (shown once: hand them out now)")
    for name, password in set_now.items():
        shown = ("(its own: the account existed)" if password is None
                 else "(as given in the file)" if given.get(name) else password)
        print(f"{name:<16} {shown}")
    print()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # the process ended meanwhile
        return ""


def members() -> list[str]:
    """The accounts this module created: those whose own group is the course's."""
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return []
    return sorted(u.pw_name for u in pwd.getpwall() if u.pw_gid == gid)


def remove_accounts(names: list[str], echo=print) -> None:
    """Delete the accounts and their homes (only accounts of the course's group), and their lines
    in the account files' backups (useradd and userdel leave them in /etc/passwd- and the like)."""
    require_root()
    ours = set(members())
    for name in names:
        if name not in ours:
            raise HubError(f"{name} is not an account of the course's group {GROUP}: not removed")
        uid = pwd.getpwnam(name).pw_uid
        for _ in range(100):  # userdel refuses while a process of the account runs
            subprocess.run([system_tool("pkill"), "-KILL", "-U", str(uid)], check=False)
            if not any(Path(p, "status").exists() and f"\nUid:\t{uid}\t" in _read(Path(p, "status"))
                       for p in Path("/proc").glob("[0-9]*")):
                break
            time.sleep(0.1)
        done = subprocess.run([system_tool("userdel"), "--remove", name], capture_output=True, text=True)
        if done.returncode not in (0, 12):  # 12: the home could not be removed (already gone)
            raise HubError(f"userdel {name} failed: {done.stderr.strip()}")
        echo(f"removed {name} and its home")
    for backup in ("/etc/passwd-", "/etc/shadow-", "/etc/group-", "/etc/gshadow-"):
        path = Path(backup)
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            kept = [line for line in lines if line.split(":", 1)[0] not in names]
            if kept != lines:
                path.write_text("".join(kept))
    if not members():
        subprocess.run([system_tool("groupdel"), GROUP], check=False, capture_output=True)


def is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def certificate(folder: Path, ip: str, own: tuple[Path, Path] | None = None) -> tuple[Path, Path]:
    """The instructor's certificate and key (`own`), copied in; else a self-signed certificate for
    `ip` and this host's name, made once (browsers will ask the learners to accept it)."""
    cert, key = folder / "hub.crt", folder / "hub.key"
    if own:
        for source, target in zip(own, (cert, key), strict=True):
            shutil.copyfile(source, target)
        key.chmod(0o600)
    elif not _certificate_fits(cert, ip):
        names = f"IP:{ip},DNS:{os.uname().nodename},DNS:localhost"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                        "-days", "30", "-subj", f"/CN={os.uname().nodename}", "-addext",
                        f"subjectAltName={names}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


def _certificate_fits(cert: Path, ip: str) -> bool:
    """Whether the generated certificate exists, names `ip` and stays valid for a week more."""
    if not cert.exists():
        return False
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text", "-checkend", "604800"],
                          capture_output=True, text=True)
    return text.returncode == 0 and f"IP Address:{ip}" in text.stdout


def parse_size(text: str | None) -> int:
    """Bytes from '4G', '512M' or a number of bytes; 0 (no limit) for None or ''."""
    if not text:
        return 0
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    size = text.strip().upper().removesuffix("B").removesuffix("I")  # 4G, 4GB and 4GiB alike
    try:
        return int(float(size[:-1]) * units[size[-1]]) if size[-1] in units else int(size)
    except (ValueError, IndexError):
        raise HubError(f"not a memory size: {text!r} (such as 4G or 512M)") from None


def write_settings(state: Path, *, venv: Path, ip: str, port: int, admin: str, https: bool | None,
                   cores: float, memory: int, idle_seconds: int, cull_every: int | None = None,
                   slurm: dict | None = None, own_certificate: tuple[Path, Path] | None = None) -> dict:
    """The hub's settings file (read by hub/jupyterhub_config.py), in a folder only root reads:
    it holds the hub's database and cookie secret too."""
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    https = (not is_loopback(ip) or own_certificate is not None) if https is None else https
    internal = {}  # the hub's API and the proxy's API, on loopback: ports free now, so that
    for key in ("hub_api_port", "proxy_api_port"):  # two hubs on one machine never collide
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            internal[key] = probe.getsockname()[1]
    settings = {
        "venv": str(venv), "course": str(venv.parent), "ip": ip, "port": port, "group": GROUP,
        "admin": admin, "cores_per_learner": cores, "memory_per_learner": memory,
        "idle_seconds": idle_seconds, "cull_every": cull_every or max(5, min(60, idle_seconds // 4 or 60)),
        "ssl": [str(p) for p in certificate(state, ip, own_certificate)] if https else None,
        "slurm": slurm, **internal,
    }
    (state / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return settings


def slurm_settings(cluster) -> dict:
    """What the hub needs to start learners' servers as Slurm jobs on a running mini cluster
    (dlscale.minicluster.MiniCluster): its configuration, the nodes' addresses, and this
    machine's address on the cluster's network, where the hub's API listens for the nodes."""
    from .minicluster import HOST, NODES

    addresses = cluster.addresses()
    return {"conf": cluster.environment()["SLURM_CONF"], "hub_address": addresses[HOST],
            "nodes": {node: addresses[node] for node in NODES}, "partition": "course",
            "runuser": system_tool("runuser")}


def hub_command(venv: Path) -> list[str]:
    return [str(venv / "bin" / "jupyterhub"), "-f", str(venv.parent / "hub" / "jupyterhub_config.py")]


def start(state: Path, venv: Path, log=None) -> subprocess.Popen:
    """JupyterHub from the shared stack, in its own session (stopped as a group by stop())."""
    env = {"PATH": f"{venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "DLSCALE_HUB_STATE": str(state), "LANG": "C.UTF-8"}
    return subprocess.Popen(hub_command(venv), cwd=state, env=env, stdout=log,
                            stderr=subprocess.STDOUT if log else None, start_new_session=True)


def stop(process: subprocess.Popen, state: Path, timeout: float = 20) -> None:
    """Stop the hub: SIGTERM lets it stop the learners' servers and its proxy, then SIGKILL what
    is left of its session, and of the proxy (in a session of its own: a hub that failed at
    start-up leaves it running), found through the pid file the hub writes in `state`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    try:
        proxy = int((state / "proxy.pid").read_text())
        if "configurable-http-proxy" in Path(f"/proc/{proxy}/cmdline").read_text():
            os.kill(proxy, signal.SIGKILL)
    except (OSError, ValueError):  # no pid file, or the proxy is gone
        pass


def url(settings: dict) -> str:
    host = settings["ip"] if ":" not in settings["ip"] else f"[{settings['ip']}]"
    return f"{'https' if settings['ssl'] else 'http'}://{host}:{settings['port']}/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dlscale.hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="install (once), create accounts, write the settings, run the hub")
    who = up.add_mutually_exclusive_group()
    who.add_argument("--learners", type=int, default=0, help="create learner01..learnerNN")
    who.add_argument("--accounts", type=Path, help="a CSV file of name[,password] lines")
    up.add_argument("--admin", default="instructor", help="the instructor's account (the admin view)")
    up.add_argument("--ip", default="127.0.0.1", help="the address to listen on (beyond loopback: HTTPS)")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--https", action="store_true", default=None, help="HTTPS on loopback too")
    up.add_argument("--certificate", nargs=2, type=Path, metavar=("CERT", "KEY"),
                    help="your certificate and key in PEM files (default: a self-signed one is made)")
    up.add_argument("--cores-per-learner", type=float, default=0, help="CPU time per learner (0: no limit)")
    up.add_argument("--memory-per-learner", default="",
                    help="memory per learner, such as 4G (default: no limit)")
    up.add_argument("--idle-minutes", type=float, default=60, help="stop a learner's server idle this long")
    up.add_argument("--slurm", action="store_true",
                    help="each learner's JupyterLab a Slurm job on the mini cluster "
                         "(multinode/minicluster.sh up first)")
    up.add_argument("--prefix", type=Path, default=PREFIX, help="where the shared stack goes")
    up.add_argument("--python", default="python3.11", help="the Python 3.11 for the shared stack")
    remove = commands.add_parser("remove-accounts", help="delete the course's accounts and their homes")
    remove.add_argument("names", nargs="*", help="accounts to remove (default: every account of the course)")
    args = parser.parse_args(argv)
    try:
        require_root()
        if args.command == "remove-accounts":
            remove_accounts(args.names or members())
            return
        memory = parse_size(args.memory_per_learner)  # every setting checked before anything slow
        try:
            address = ipaddress.ip_address(args.ip)
        except ValueError:
            raise HubError(f"--ip {args.ip}: give an address of this machine (such as 10.0.0.5), "
                           "not a host name") from None
        if address.is_unspecified:
            raise HubError(f"--ip {args.ip}: name the address the room reaches (the certificate "
                           "and the printed URL carry it)")
        if args.cores_per_learner < 0 or args.idle_minutes < 0:
            raise HubError("--cores-per-learner and --idle-minutes are 0 (no limit) or more")
        check_prerequisites()
        slurm = None
        if args.slurm:
            from .minicluster import MiniCluster

            cluster = MiniCluster()
            if not (cluster.state / "env").exists():
                raise HubError("the mini cluster is not up: sudo multinode/minicluster.sh up, "
                               "then make hub SLURM=1")
            slurm = slurm_settings(cluster)
        venv = install(args.prefix, args.python)
        wanted = (read_accounts(args.accounts) if args.accounts
                  else {f"learner{i:02d}": None for i in range(1, args.learners + 1)})
        try:  # an existing account keeps its own password
            pwd.getpwnam(args.admin)
        except KeyError:
            wanted = {args.admin: None} | wanted
        if wanted:
            print_accounts(create_accounts(wanted), wanted)
        settings = write_settings(args.prefix / "hub", venv=venv, ip=args.ip, port=args.port,
                                  admin=args.admin, https=args.https, cores=args.cores_per_learner,
                                  memory=memory,
                                  idle_seconds=int(args.idle_minutes * 60), slurm=slurm,
                                  own_certificate=tuple(args.certificate) if args.certificate else None)
    except (HubError, subprocess.CalledProcessError) as error:
        sys.exit(f"error: {error}")
    print(f"==> JupyterHub at {url(settings)} (Ctrl-C stops it and every learner's server)\n"
          f"    {len(members())} account(s) of group {GROUP}; the instructor's admin view: "
          f"{url(settings)}hub/admin", flush=True)
    hub = start(args.prefix / "hub", venv)
    try:
        hub.wait()
    except KeyboardInterrupt:
        print("\nstopping the hub and every learner's server", flush=True)
    finally:
        stop(hub, args.prefix / "hub")


if __name__ == "__main__":
    main()
