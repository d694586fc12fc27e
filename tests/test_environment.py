"""environment.yml (conda) and requirements.txt (pip) pin the same versions."""

from __future__ import annotations

import re

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
