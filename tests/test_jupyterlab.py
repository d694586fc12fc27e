"""JupyterLab starts, answers with token authentication, lists the course kernel, and renders."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import in_ci
from PIL import Image

from dlscale.env import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except urllib.error.URLError:  # not listening yet
        return 0, ""


@pytest.fixture
def lab(tmp_path, course_env):
    port, token = free_port(), secrets.token_hex(16)
    env = course_env | {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = open(tmp_path / "lab.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.prefix) / "bin" / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if get(f"{base}/api/status?token={token}")[0] == 200:
                break
            if process.poll() is not None:
                pytest.fail("jupyter lab exited: " + (tmp_path / "lab.log").read_text()[-2000:])
            time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not answer within 60 s")
        yield base, token
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_lab_answers_with_a_token_and_lists_the_course_kernel(lab):
    base, token = lab
    assert get(f"{base}/api/kernelspecs")[0] == 403  # no token, no access
    status, page = get(f"{base}/lab?token={token}")
    assert status == 200 and "JupyterLab" in page
    status, body = get(f"{base}/api/kernelspecs?token={token}")
    spec = json.loads(body)["kernelspecs"]["dl-at-scale"]["spec"]
    assert spec["display_name"] == "Python 3.11 (DL at Scale)"
    assert spec["env"]["LD_LIBRARY_PATH"] == str(Path(sys.prefix) / "lib")
    assert spec["env"]["I_MPI_ROOT"] == sys.prefix


def test_lab_fetches_no_news_and_checks_no_updates(lab):
    """An offline room: no "get notified about official Jupyter news?" question, nothing fetched."""
    base, token = lab
    status, body = get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}")
    defaults = {k: v["default"] for k, v in json.loads(body)["schema"]["properties"].items()}
    assert status == 200 and defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False
    status, page = get(f"{base}/lab?token={token}")
    assert status == 200 and '"news": {"disabled": true}' in page  # the server has no feed to fetch


def test_lab_renders_in_a_real_browser(lab, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if in_ci():
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium here (Debian: apt-get install chromium); CI installs it")
    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "jupyterlab.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,800",
         "--virtual-time-budget=30000", f"--screenshot={screenshot}",
         f"{base}/lab/tree/README.md?token={token}"],
        capture_output=True, timeout=180, check=True)
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    assert pixels.shape[:2] == (800, 1280)
    # A rendered lab has panels, icons and text: many colours, not a blank or single-colour page.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
