"""The course's one results format."""

from __future__ import annotations

import json

import pytest

from dlscale import results


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
    assert results.write_results("demo", {}, folder=tmp_path) is None
    assert not (tmp_path / "demo.json").exists()


def test_missing_results_say_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the cell that launches the script first"):
        results.read_results("never_ran", folder=tmp_path)


def test_bar_chart_labels_every_bar():
    import matplotlib

    matplotlib.use("Agg")
    ax = results.bar_chart(["1 x 2", "2 x 1"], [10.0, 12.5], ylabel="GFLOP/s", title="t")
    assert [t.get_text() for t in ax.texts] == ["10.00", "12.50"]
