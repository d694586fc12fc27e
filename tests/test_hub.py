"""A room of learners (make hub): a real JupyterHub as root, two learners with their own accounts,
servers, copies of the course, results and CPU share; the instructor's admin view; HTTPS beyond
loopback; an idle server culled; a learner's JupyterLab in a real browser through the hub.

The shared install these tests start the hub from is built once in TEST_PREFIX (the same
`make hub-stack` as `make hub`) and kept, as the course's venv is; the accounts, homes, hubs,
servers and network interfaces the tests create are removed, by process id, even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import in_ci

from dlscale import hub
from dlscale.env import ROOT

TEST_PREFIX = Path(os.environ.get("DLSCALE_HUB_TEST_PREFIX", "/var/tmp/dl-at-scale-hub-test"))
ARTIFACTS = ROOT / "tests" / "artifacts"
LEARNERS = ("dlhub-learner1", "dlhub-learner2")
ADMIN = "dlhub-teacher"
LINK = ("dlhub0", "169.254.78.1")  # a dummy interface with a link-local address: beyond loopback


# --- what needs no root ------------------------------------------------------------------------

def test_accounts_are_read_from_a_csv_file_with_clear_errors(tmp_path):
    good = tmp_path / "room.csv"
    good.write_text("name,password\nada,s3cret-one\nalan\n\ngrace,\n")
    assert hub.read_accounts(good) == {"ada": "s3cret-one", "alan": None, "grace": None}
    bad = tmp_path / "bad.csv"
    bad.write_text("ada\nAlan Turing\n")
    with pytest.raises(hub.HubError, match=r"bad.csv, line 2: 'Alan Turing' is not an account name"):
        hub.read_accounts(bad)
    (tmp_path / "empty.csv").write_text("name\n")
    with pytest.raises(hub.HubError, match="names no accounts"):
        hub.read_accounts(tmp_path / "empty.csv")


def test_memory_sizes_and_the_https_rule(tmp_path, monkeypatch):
    assert (hub.parse_size("4G"), hub.parse_size("7GiB"), hub.parse_size("512m"), hub.parse_size(""),
            hub.parse_size("1000")) == (4 * 2**30, 7 * 2**30, 512 * 2**20, 0, 1000)
    with pytest.raises(hub.HubError, match="not a memory size"):
        hub.parse_size("lots")
    monkeypatch.setattr(hub, "certificate", lambda folder, ip, own: (folder / "c", folder / "k"))
    common = {"venv": tmp_path / "course" / ".venv", "port": 8000, "admin": "t", "cores": 0, "memory": 0,
              "idle_seconds": 600}
    assert hub.write_settings(tmp_path / "a", ip="127.0.0.1", https=None, **common)["ssl"] is None
    assert hub.write_settings(tmp_path / "b", ip="10.1.2.3", https=None, **common)["ssl"]
    assert hub.write_settings(tmp_path / "c", ip="127.0.0.1", https=True, **common)["ssl"]
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700  # the hub's secrets: root only


# --- the live hub (root) -----------------------------------------------------------------------

def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the hub creates accounts and runs servers as them: root (sudo make test)"
    for tool, package in (("runuser", "util-linux"), ("useradd", "passwd"), ("npm", "npm"),
                          ("openssl", "openssl")):
        if not shutil.which(tool, path=os.environ["PATH"] + ":/usr/sbin:/sbin"):
            return f"{tool} ({package})"
    return None


@pytest.fixture(scope="module")
def stack():
    reason = _unavailable()
    if reason:
        if in_ci():
            pytest.fail(f"needs {reason}: CI runs as root with it")
        pytest.skip(f"needs {reason}")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    return hub.install(TEST_PREFIX, echo=lambda *_: None, quiet=True, timeout=1800)


@pytest.fixture(scope="module")
def accounts(stack, tmp_path_factory):
    """Two learners and the instructor, created in bulk from a CSV file; removed afterwards."""
    listing = tmp_path_factory.mktemp("room") / "room.csv"
    listing.write_text(f"name,password\n{ADMIN},teach-{uuid.uuid4().hex[:8]}\n"
                       + "".join(f"{n}\n" for n in LEARNERS))  # the learners' passwords generated
    for name in (ADMIN, *LEARNERS):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            pytest.fail(f"an account {name} exists already: remove it "
                        "(python -m dlscale.hub remove-accounts)")
    try:
        given = hub.create_accounts(hub.read_accounts(listing))
        yield given
    finally:
        hub.remove_accounts([n for n in (ADMIN, *LEARNERS) if n in hub.members()], echo=lambda *_: None)
        assert not any(Path("/home", n).exists() for n in (ADMIN, *LEARNERS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the redirect comes back as an HTTPError with its own status


class Client:
    """The hub's REST API and a learner's server, with a token or as nobody."""

    def __init__(self, base: str, cafile: str | None = None):
        self.base = base
        self.context = ssl.create_default_context(cafile=cafile) if cafile else None

    def call(self, method: str, path: str, body=None, token: str | None = None, timeout=60, follow=True):
        """(status, JSON or text); with follow=False a redirect is answered as its own status."""
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
        if token:
            request.add_header("Authorization", f"token {token}")
        try:
            handlers = [urllib.request.HTTPSHandler(context=self.context)]
            if not follow:
                handlers.append(NoRedirect())
            with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text.startswith(("{", "[")) else text
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode() or error.headers.get("Location", "")

    def token(self, name: str, password: str) -> str | None:
        status, body = self.call("POST", f"hub/api/users/{name}/tokens",
                                 {"auth": {"username": name, "password": password}, "note": "test"})
        return body["token"] if status in (200, 201) else None

    def page_after_login(self, name: str, password: str, path: str) -> int:
        """The status of page `path` for a browser that logged in through the hub's form."""
        import http.cookiejar
        import re

        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.context),
                                             urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(self.base + "hub/login", timeout=30) as page:
            xsrf = re.search(r'name="_xsrf"[^>]*value="([^"]+)"', page.read().decode()).group(1)
        form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf}).encode()
        with opener.open(self.base + "hub/login", data=form, timeout=60):
            pass
        try:
            with opener.open(self.base + path, timeout=30) as page:
                return page.status
        except urllib.error.HTTPError as error:
            return error.code

    def start_server(self, name: str, token: str, timeout: float = 120) -> None:
        status, body = self.call("POST", f"hub/api/users/{name}/server", {}, token)
        assert status in (201, 202) or "is already running" in str(body), (status, body)
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, model = self.call("GET", f"hub/api/users/{name}", token=token)
            server = model.get("servers", {}).get("", {}) if status == 200 else {}
            if server.get("ready"):
                return
            time.sleep(0.5)
        pytest.fail(f"{name}'s server was not ready within {timeout:.0f} s")


@contextlib.contextmanager
def running_hub(stack: Path, tmp: Path, **chosen):
    """A hub from the shared stack with its own state folder; stopped (by process group) after."""
    state = TEST_PREFIX / f"hub-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    options = {"ip": "127.0.0.1", "port": free_port(), "admin": ADMIN, "https": None, "cores": 0,
               "memory": 0, "idle_seconds": 3600} | chosen
    settings = hub.write_settings(state, venv=stack, **options)
    log = open(tmp / "hub.log", "w")
    process = hub.start(state, stack, log=log)
    client = Client(hub.url(settings), cafile=settings["ssl"][0] if settings["ssl"] else None)
    try:
        deadline = time.time() + 90
        while not _answers(client):
            if process.poll() is not None or time.time() > deadline:
                pytest.fail("the hub did not start:\n" + (tmp / "hub.log").read_text()[-3000:])
            time.sleep(0.5)
        yield client, settings, process
    finally:
        proxy = int((state / "proxy.pid").read_text()) if (state / "proxy.pid").exists() else None
        hub.stop(process, state)
        log.close()
        assert proxy is None or not psutil.pid_exists(proxy) or psutil.Process(proxy).status() == "zombie"
        shutil.rmtree(state, ignore_errors=True)
        for name in LEARNERS:  # nothing of a learner's may outlive the hub
            subprocess.run(["pkill", "-KILL", "-u", name], check=False)


def _answers(client: Client) -> bool:
    try:
        return client.call("GET", "hub/api/", timeout=5)[0] == 200
    except (urllib.error.URLError, OSError):
        return False


def run_in_kernel(client: Client, name: str, token: str, code: str, timeout: float = 300) -> str:
    """Start a course kernel in the learner's notebooks/ folder, run `code` in it over the kernel's
    websocket (the way JupyterLab does), and return what it printed; fails on an error."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    status, kernel = client.call("POST", f"user/{name}/api/kernels",
                                 {"name": "dl-at-scale", "path": "notebooks"}, token)
    assert status == 201, (status, kernel)
    url = client.base.replace("http", "ws", 1) + f"user/{name}/api/kernels/{kernel['id']}/channels"

    async def execute() -> str:
        request = HTTPRequest(url, headers={"Authorization": f"token {token}"}, ssl_options=client.context)
        socket_ = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        socket_.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": name,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        printed, failed = [], None
        while True:
            message = json.loads(await socket_.read_message())
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                failed = "\n".join(content["traceback"])
            elif kind == "execute_reply":
                socket_.close()
                assert failed is None and content["status"] == "ok", failed or content
                return "".join(printed)

    try:
        return asyncio.run(asyncio.wait_for(execute(), timeout))
    finally:
        client.call("DELETE", f"user/{name}/api/kernels/{kernel['id']}", token=token)


def launch_cell() -> str:
    """Notebook 00's launch cell (the first `!mpirun`), after its set-up lines (the course folder)."""
    import nbformat

    cells = nbformat.read(ROOT / "solutions" / "00_getting_started.ipynb", as_version=4).cells
    launch = next(c.source for c in cells if c.cell_type == "code" and "!mpirun" in c.source)
    return "import os, dlscale\nfrom dlscale import check_exit\nos.chdir(dlscale.course_dir())\n" + launch


def memory_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def peak_memory_mb(name: str) -> float | None:
    """The most memory the learner's share (their server, kernels and ranks) has held so far."""
    from dlscale.cpu import cgroup_folders

    for version, levels in cgroup_folders(controller="memory"):
        peak_file = "memory.peak" if version == "v2" else "memory.max_usage_in_bytes"
        peak = levels[0] / "dl-at-scale-hub" / name / peak_file
        if peak.exists():
            return int(peak.read_text()) / 2**20
    return None


@pytest.fixture(scope="module")
def room(stack, accounts, tmp_path_factory):
    """A hub on loopback for the two learners: one CPU's time and 3 GB each."""
    with running_hub(stack, tmp_path_factory.mktemp("hub"), cores=1.0, memory=3 * 2**30) as (client, settings,
                                                                                               process):
        tokens = {name: client.token(name, accounts[name]) for name in (ADMIN, *LEARNERS)}
        yield client, settings, process, tokens


def test_learners_get_their_own_server_course_results_and_cpu_share(room):
    client, settings, process, tokens = room
    started = time.time()
    for name in LEARNERS:
        client.start_server(name, tokens[name])
    seconds_to_servers = time.time() - started
    outputs, kernel_mb = {}, {}
    for name in LEARNERS:
        outputs[name] = run_in_kernel(client, name, tokens[name], launch_cell() + "\nimport psutil\n"
                                      "print('kernel rss', psutil.Process().memory_info().rss)")
        kernel_mb[name] = int(outputs[name].split("kernel rss ")[1].split()[0]) / 2**20
        home = Path(pwd.getpwnam(name).pw_dir)
        result = home / "dl-at-scale" / "results" / "00_first_run.json"
        assert result.is_file() and result.stat().st_uid == pwd.getpwnam(name).pw_uid, outputs[name]
        assert json.loads(result.read_text())["machine"]["ranks"] == 2
        assert home.stat().st_mode & 0o077 == 0  # nobody else may read it
    # The share the hub set is what the course's thread layout sees inside the learner's kernel.
    seen = run_in_kernel(client, LEARNERS[0], tokens[LEARNERS[0]],
                         "import dlscale, dlscale.cpu as c; print(dlscale.usable_cores(), c.cpu_quota())")
    assert seen.split() == ["1", "1.0"]
    # Memory of each part, for the instructor's sizing (written beside the other test artifacts).
    hub_process = psutil.Process(process.pid)
    parts = {"hub": memory_mb(hub_process)}
    for child in hub_process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            line = " ".join(child.cmdline())
            key = ("proxy" if "configurable-http-proxy" in line else
                   f"server {child.username()}" if "jupyterhub-singleuser" in line else None)
            if key:
                parts[key] = memory_mb(child)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "hub.json").write_text(json.dumps({
        "seconds_to_two_servers": seconds_to_servers, "rss_mb": parts, "kernel_rss_mb": kernel_mb,
        "peak_mb_per_learner": {name: peak_memory_mb(name) for name in LEARNERS}}, indent=2) + "\n")
    assert {f"server {n}" for n in LEARNERS} <= set(parts), parts


def test_learners_cannot_read_or_reach_each_other(room):
    client, _, _, tokens = room
    one, two = LEARNERS
    for name in LEARNERS:
        client.start_server(name, tokens[name])
    assert client.call("GET", f"user/{two}/api/contents", token=tokens[one])[0] == 403
    assert client.call("GET", f"user/{one}/api/contents", token=tokens[one])[0] == 200
    probe = (f"import pathlib\ntry:\n    pathlib.Path('/home/{two}/dl-at-scale/README.md').read_text()\n"
             "    print('read')\nexcept PermissionError:\n    print('refused')")
    assert run_in_kernel(client, one, tokens[one], probe).strip() == "refused"


def test_wrong_password_is_refused_and_only_the_instructor_has_the_admin_view(room, accounts):
    client, _, _, tokens = room
    assert client.token(LEARNERS[0], "not-the-password") is None
    assert client.token("root", "anything") is None  # not in the course's group
    assert client.call("GET", "hub/api/users", token=tokens[LEARNERS[0]])[0] == 403
    status, users = client.call("GET", "hub/api/users", token=tokens[ADMIN])
    assert status == 200 and {u["name"] for u in users} >= set(LEARNERS)
    # The admin page, as a browser sees it: logged in through the form (pages take no tokens).
    assert client.page_after_login(LEARNERS[0], accounts[LEARNERS[0]], "hub/admin") == 403
    assert client.page_after_login(ADMIN, accounts[ADMIN], "hub/admin") == 200


def test_a_learners_edits_survive_the_next_login(room):
    client, _, _, tokens = room
    name = LEARNERS[1]
    notebook = Path(pwd.getpwnam(name).pw_dir, "dl-at-scale", "notebooks", "00_getting_started.ipynb")
    client.start_server(name, tokens[name])
    edited = notebook.read_text().replace("Getting started", "Getting started (my notes)", 1)
    notebook.write_text(edited)
    assert client.call("DELETE", f"hub/api/users/{name}/server", token=tokens[name])[0] in (202, 204)
    deadline = time.time() + 60
    while client.call("GET", f"hub/api/users/{name}", token=tokens[name])[1]["servers"]:
        assert time.time() < deadline, "the server did not stop within 60 s"
        time.sleep(0.5)
    client.start_server(name, tokens[name])
    assert notebook.read_text() == edited


@pytest.fixture
def link_local_address():
    """An address beyond loopback that nothing outside this machine can reach: a veth pair whose
    end holds a link-local address (169.254.x.y). Deleted afterwards."""
    ip = shutil.which("ip", path=os.environ["PATH"] + ":/usr/sbin:/sbin")
    if ip is None:
        pytest.fail("needs iproute2's ip (.ci/run installs it)") if in_ci() else pytest.skip("needs iproute2")
    device, address = LINK
    subprocess.run([ip, "link", "del", device], capture_output=True, check=False)  # a leftover
    subprocess.run([ip, "link", "add", device, "type", "veth", "peer", "name", device + "p"], check=True)
    try:
        subprocess.run([ip, "addr", "add", f"{address}/32", "dev", device], check=True)
        for end in (device, device + "p"):
            subprocess.run([ip, "link", "set", end, "up"], check=True)
        yield address
    finally:
        subprocess.run([ip, "link", "del", device], check=False)


def test_beyond_loopback_the_hub_serves_https_and_culls_an_idle_server(stack, accounts, link_local_address,
                                                                        tmp_path):
    name = LEARNERS[0]
    beyond_loopback = running_hub(stack, tmp_path, ip=link_local_address, idle_seconds=15, cull_every=5)
    with beyond_loopback as (client, settings, _):
        assert client.base.startswith(f"https://{link_local_address}:")
        with pytest.raises(urllib.error.URLError):  # the generated certificate is required...
            urllib.request.urlopen(client.base + "hub/api/", timeout=10)
        assert client.call("GET", "hub/api/")[0] == 200  # ...and verifies against it
        token = client.token(name, accounts[name])
        before = learner_processes(name)  # (the other test hub's server for this learner)
        client.start_server(name, token)
        started_here = learner_processes(name) - before
        assert started_here
        started = time.time()
        while client.call("GET", f"hub/api/users/{name}", token=token)[1]["servers"]:
            assert time.time() - started < 90, "the idle server was not culled within 90 s"
            time.sleep(1)
        culled_after = time.time() - started
        assert culled_after >= 10  # idle for the time the instructor set, not stopped at once
        time.sleep(2)
        assert not learner_processes(name) & started_here  # the server and its children are gone


def learner_processes(name: str) -> set[int]:
    return {p.pid for p in psutil.process_iter(["username"]) if p.info["username"] == name}


def test_a_learners_jupyterlab_through_the_hub_in_a_real_browser(room, accounts, tmp_path):
    """Headless Chromium logs in through the hub's form, as a learner would, and shows their lab."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if in_ci():
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("no chromium here")
    client, _, _, tokens = room
    name = LEARNERS[0]
    client.start_server(name, tokens[name])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "hub_learner_lab.png"
    screenshot.unlink(missing_ok=True)
    page = asyncio.run(browse(chromium, tmp_path / "chromium", client.base, name, accounts[name], screenshot))
    assert f"/user/{name}/lab" in page["url"], page
    assert "00_getting_started" in page["title"] or "JupyterLab" in page["title"], page
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a rendered lab, not a blank page


async def browse(chromium: str, profile: Path, base: str, name: str, password: str, screenshot: Path) -> dict:
    """Drive Chromium over its DevTools protocol: the login form, then the learner's lab."""
    from tornado.websocket import websocket_connect

    process = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1280,800", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as listing:
            target = next(t for t in json.load(listing) if t["type"] == "page")
        devtools = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=64 * 2**20)
        counter = iter(range(1, 10**6))

        async def send(method: str, **params) -> dict:
            number = next(counter)
            devtools.write_message(json.dumps({"id": number, "method": method, "params": params}))
            while True:
                reply = json.loads(await devtools.read_message())
                if reply.get("id") == number:
                    return reply.get("result", {})

        async def evaluate(expression: str):
            reply = await send("Runtime.evaluate", expression=expression, returnByValue=True)
            return reply["result"].get("value")

        async def wait_for(expression: str, seconds: float = 90):
            for _ in range(int(seconds * 4)):
                if await evaluate(expression):
                    return
                await asyncio.sleep(0.25)
            raise AssertionError(f"timed out waiting for {expression} at {await evaluate('location.href')}")

        await send("Page.navigate", url=base + "hub/login")
        await wait_for("!!document.querySelector('#username_input')")
        await evaluate(f"document.querySelector('#username_input').value = {json.dumps(name)};"
                       f"document.querySelector('#password_input').value = {json.dumps(password)};"
                       "document.querySelector('#login_submit').click(); true")
        await wait_for(f"location.pathname.startsWith('/user/{name}/lab')")
        await wait_for("!!document.querySelector('.jp-NotebookPanel .jp-Cell')")  # the notebook drawn
        await asyncio.sleep(2)
        shot = await send("Page.captureScreenshot", format="png")
        import base64

        screenshot.write_bytes(base64.b64decode(shot["data"]))
        page = {"url": await evaluate("location.href"), "title": await evaluate("document.title")}
        devtools.close()
        return page
    finally:
        os.killpg(process.pid, 9)
        process.wait()


def test_on_slurm_each_learners_lab_is_a_job_and_their_mpirun_runs_in_it(stack, accounts, tmp_path):
    """The same room with batchspawner on the mini cluster: the learner's server is a Slurm job
    on a node (another network namespace), reached through the cluster's switch."""
    from dlscale import minicluster

    reason = minicluster.unavailable()
    if reason:
        pytest.fail(f"the mini cluster needs {reason}") if in_ci() else pytest.skip(f"needs {reason}")
    name = LEARNERS[0]
    with minicluster.running() as cluster:
        slurm = hub.slurm_settings(cluster)
        with running_hub(stack, tmp_path, cores=1.0, slurm=slurm) as (client, _, _):
            token = client.token(name, accounts[name])
            client.start_server(name, token, timeout=180)
            queue = cluster.run("node1", "squeue", "-h", "-u", name, "-o", "%i %T %N").stdout
            job_id, state, node = queue.split()
            assert state == "RUNNING" and node in minicluster.NODES
            where = "import os, socket\nprint('job', os.environ['SLURM_JOB_ID'], 'on', socket.gethostname())"
            printed = run_in_kernel(client, name, token, launch_cell() + "\n" + where)
            assert f"job {job_id} on {node}" in printed, printed
            result = Path(pwd.getpwnam(name).pw_dir, "dl-at-scale", "results", "00_first_run.json")
            assert json.loads(result.read_text())["machine"]["hostname"] == node  # the ranks ran there
            assert client.call("DELETE", f"hub/api/users/{name}/server", token=token)[0] in (202, 204)
            deadline = time.time() + 60
            while cluster.run("node1", "squeue", "-h", "-u", name).stdout.strip():
                assert time.time() < deadline, "the learner's job outlived their server"
                time.sleep(1)


def test_restarting_the_hub_keeps_the_rooms_passwords(room, accounts):
    client, _, _, _ = room
    name = LEARNERS[0]
    assert hub.create_accounts({name: None}) == {name: None}  # as `make hub` again would
    assert client.token(name, accounts[name])
    with pytest.raises(hub.HubError, match="exists already and is not one of the course's"):
        hub.create_accounts({"root": None})  # an account of the machine is never taken over
