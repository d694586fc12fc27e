"""environment.yml (conda) and requirements.txt (pip) pin the same versions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from dlscale.env import ROOT


def pip_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_every_pin_is_exact_and_commented():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Za-z0-9_.-]+==[0-9][^ ]*\s+# \S", line), line


def test_conda_environment_has_the_same_pins():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in spec["dependencies"]
    pip_section = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    conda_pins = dict(item.lower().split("==") for item in pip_section)
    assert conda_pins == pip_pins()


def test_makefile_builds_horovod_against_the_pins():
    makefile = (ROOT / "Makefile").read_text()
    assert "HOROVOD_VERSION := 0.28.1" in makefile
    assert "tf$(call pin,tensorflow-cpu)-impi$(call pin,impi-rt)" in makefile


def run_make(folder, *args, path=None):
    env = dict(os.environ, PATH=path or os.environ["PATH"])
    return subprocess.run([shutil.which("make"), "--no-print-directory", "-C", str(folder), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def bare_course(tmp_path):
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_a_missing_python_stops_with_one_clear_line(bare_course):
    result = run_make(bare_course, "setup", "PYTHON=python3.99")
    assert result.returncode != 0
    assert "error: python3.99 not found. Install Python 3.11" in result.stdout
    assert not (bare_course / ".venv").exists()


def test_a_missing_compiler_stops_the_horovod_build_with_one_clear_line(bare_course, tmp_path_factory):
    # A venv whose stack is installed but whose Horovod wheel was never built, on a PATH without cmake.
    (bare_course / ".venv" / "bin").mkdir(parents=True)
    (bare_course / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (bare_course / ".venv" / ".stack-installed").touch()
    tools = tmp_path_factory.mktemp("bin")
    for tool in ("ls", "sed", "mktemp", "nproc"):
        (tools / tool).symlink_to(shutil.which(tool))
    result = run_make(bare_course, "setup", f"WHEEL_CACHE={tools / 'empty'}", path=str(tools))
    assert result.returncode != 0
    assert "Building Horovod 0.28.1" in result.stdout and "about 10 minutes" in result.stdout
    assert ("error: cmake not found; Horovod's build needs it. Debian/Ubuntu: apt install cmake"
            in result.stdout)
