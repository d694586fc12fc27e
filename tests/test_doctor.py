"""`make doctor`: all checks pass in the course environment, and a broken one is named with its fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dlscale import data, doctor
from dlscale.env import ROOT


def run_doctor(env):
    return subprocess.run([sys.executable, "-m", "dlscale.doctor"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.mpi
def test_doctor_names_a_missing_library_path_and_the_fix(course_env):
    broken = {k: v for k, v in course_env.items() if k != "LD_LIBRARY_PATH"}
    result = run_doctor(broken)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("MPI environment"))
    assert "FAIL" in line and "LD_LIBRARY_PATH" in line
    assert "fix: " in result.stdout and "export PATH=" in result.stdout
    assert "check(s) failed: MPI environment," in result.stdout
    assert "rebuild" not in result.stdout  # the fix is the environment, not a new build


def test_data_check_names_a_damaged_file(tmp_path, monkeypatch):
    shipped = data.DATA / "mnist-10k.npz"
    copy = tmp_path / "mnist-10k.npz"
    copy.write_bytes(shipped.read_bytes()[:-100])  # a truncated download
    (tmp_path / "SHA256SUMS").write_text(data.CHECKSUMS.read_text())
    monkeypatch.setattr(data, "DATA", tmp_path)
    monkeypatch.setattr(data, "CHECKSUMS", tmp_path / "SHA256SUMS")
    check = doctor.check_data()
    assert check.ok is False
    assert "data/mnist-10k.npz does not match its sha256" in check.detail
    assert "git checkout -- data/" in check.fix
    copy.unlink()
    assert "data/mnist-10k.npz is missing" in doctor.check_data().detail


def test_data_check_passes_on_the_shipped_files():
    assert doctor.check_data().ok is True


def test_report_prints_the_fix_only_for_failures():
    table = doctor.report([doctor.Check("A", True, "fine", "never shown"),
                           doctor.Check("B", False, "broken", "do this"),
                           doctor.Check("C", None, "a fact")])
    assert "never shown" not in table
    assert "fix: do this" in table
    assert [line.split()[1] for line in table.splitlines()[2:] if not line.startswith(" ")] == [
        "OK", "FAIL", "info"]


def test_doctor_names_openvino_and_what_the_cpu_can_run():
    check = doctor.check_openvino()
    assert check.ok is True, check.detail
    assert check.detail.startswith("openvino 2026.4.1, nncf 3.4.0; CPU OPTIMIZATION_CAPABILITIES ")
    assert "FP32" in check.detail and "INT8" in check.detail and "telemetry off" in check.detail
