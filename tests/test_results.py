"""The course's one results format."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dlscale import plots, results
from dlscale.env import OUTPUT_VARIABLE, ROOT
from dlscale.rank import this_rank


def test_results_round_trip_with_the_machine_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSCALE_QUICK", "1")
    path = results.write_results("demo", {"images_per_second": 12.5}, ranks=2, threads_per_rank=1,
                                 folder=tmp_path)
    record = results.read_results("demo", folder=tmp_path)
    assert path == tmp_path / "demo.json" and record == json.loads(path.read_text())
    assert record["measurements"] == {"images_per_second": 12.5}
    machine = record["machine"]
    assert machine["ranks"] == 2 and machine["threads_per_rank"] == 1 and machine["quick_mode"] is True
    assert machine["cpu"]["model"] and machine["cpu"]["physical_cores"] >= 1
    assert set(machine["cpu"]["isa"]) >= {"avx2", "avx512_vnni", "avx_vnni", "amx_tile"}
    assert machine["libraries"]["tensorflow-cpu"] == "2.15.1"
    assert machine["timestamp"].endswith("+00:00")
    assert results.all_results(tmp_path) == [record]


def test_all_results_skips_what_is_not_a_results_record(tmp_path):
    results.write_results("kept", {"x": 1}, folder=tmp_path)
    (tmp_path / "timeline.json").write_text('[{"name": "ALLREDUCE", "ph": "B"},')  # a live Horovod timeline
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"name": "x"}')
    assert [r["name"] for r in results.all_results(tmp_path)] == ["kept"]


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("PMI_RANK", "1")
    monkeypatch.setenv("PMI_SIZE", "2")
    this_rank.cache_clear()  # the layout is decided once per process: decide it again for this test
    try:
        assert results.write_results("demo", {}, folder=tmp_path) is None
    finally:
        monkeypatch.undo()
        this_rank.cache_clear()
    assert not (tmp_path / "demo.json").exists()


def test_missing_results_say_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the cell that launches the script first"):
        results.read_results("never_ran", folder=tmp_path)


def test_bar_chart_labels_every_bar():
    import matplotlib

    matplotlib.use("Agg")
    ax = plots.bar_chart(["1 x 2", "2 x 1"], [10.0, 12.5], ylabel="GFLOP/s", title="t")
    assert [t.get_text() for t in ax.texts] == ["10.00", "12.50"]


def course_copy(folder: Path) -> Path:
    """A learner's own copy of the course (what course_dir() recognizes), without the venv."""
    for part in ("scripts", "solutions"):
        (folder / part).mkdir(parents=True)
    return folder


def run_hello(cwd: Path, env: dict) -> None:
    subprocess.run(["mpirun", "-n", "1", sys.executable, "-u", str(ROOT / "scripts" / "00_mpi_hello.py"),
                    "--tasks", "1", "--size", "64", "--name", "where"], cwd=cwd, env=env, check=True,
                   capture_output=True, timeout=120)


@pytest.mark.mpi
def test_results_go_to_the_learners_copy_or_where_the_caller_says(course_env, tmp_path):
    learner = course_copy(tmp_path / "learner")
    plain = {k: v for k, v in course_env.items() if k != OUTPUT_VARIABLE}
    run_hello(learner / "solutions", plain)  # a notebook's kernel starts in solutions/ or notebooks/
    assert (learner / "results" / "where.json").is_file()
    assert not (ROOT / "results" / "where.json").exists()  # not the installed course's folder
    run_hello(learner / "solutions", plain | {OUTPUT_VARIABLE: str(tmp_path / "elsewhere")})
    assert (tmp_path / "elsewhere" / "results" / "where.json").is_file()


def test_the_output_setting_is_read_in_one_place():
    readers = [path.name for path in (ROOT / "dlscale").glob("*.py")
               if re.search(r"environ\b.*(OUTPUT_VARIABLE|DLSCALE_OUTPUT_DIR)", path.read_text())]
    assert readers == ["env.py"]
