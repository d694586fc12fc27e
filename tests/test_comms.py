"""IMB-MPI1's tables are read correctly, the latency/bandwidth reading is right, and the sweep runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import take_results

from dlscale import comms

SAMPLE = Path(__file__).parent / "data" / "imb_mpi1_4ranks.txt"  # a real IMB-MPI1 run, 4 ranks


def test_parse_reads_every_table_of_a_real_run():
    tables, cut_short = comms.parse_imb(SAMPLE.read_text().splitlines())
    assert sorted(tables) == sorted(comms.COLLECTIVES)
    assert all(sorted(by_ranks) == ["2", "4"] for by_ranks in tables.values())
    # Reductions count in floats, so they start at 4 bytes; the others at 1 byte.
    assert [r["bytes"] for r in tables["Allreduce"]["2"]] == [4, 8, 16, 32, 64]
    assert [r["bytes"] for r in tables["Alltoall"]["2"]] == [1, 2, 4, 8, 16, 32, 64]
    # This run's time limit was too short for 4 busy ranks on 2 cores: IMB said so, mid-table.
    assert [r["bytes"] for r in tables["Alltoall"]["4"]] == [1, 2, 4, 8]
    assert cut_short == ["Allgather on 4 ranks", "Alltoall on 4 ranks"]
    first = tables["Allreduce"]["2"][0]
    assert first == {"bytes": 4, "repetitions": 1000, "t_min_us": 10.71, "t_max_us": 13.73, "t_avg_us": 12.22}


def test_latency_and_bandwidth_come_back_from_a_known_curve():
    latency_us, bandwidth = 5.0, 2e9  # bytes per second
    rows = [{"bytes": 2**k, "t_avg_us": latency_us + 2**k / bandwidth * 1e6} for k in range(0, 25)]
    fit = comms.fit_latency_bandwidth(rows)
    assert fit["latency_us"] == pytest.approx(latency_us, rel=1e-2)
    assert fit["bandwidth_gb_per_s"] == pytest.approx(2.0, rel=1e-3)
    assert fit["n_half_bytes"] == pytest.approx(10_000, rel=1e-2)  # 5 us x 2 GB/s


def test_a_sweep_that_ends_latency_bound_has_no_bandwidth():
    fit = comms.fit_latency_bandwidth([{"bytes": 2**k, "t_avg_us": 5.0} for k in range(8)])
    assert fit == {"latency_us": 5.0, "bandwidth_gb_per_s": None, "n_half_bytes": None}


def test_fusion_settings_vary_one_knob_at_a_time():
    settings = comms.fusion_settings()
    defaults = comms.HOROVOD_DEFAULTS
    assert defaults in settings and len(settings) == len({tuple(s.values()) for s in settings})
    assert all(sum(s[k] != defaults[k] for k in defaults) <= 1 for s in settings)
    assert {"HOROVOD_FUSION_THRESHOLD": 0, "HOROVOD_CYCLE_TIME": 1.0} in settings  # fusion off


@pytest.mark.mpi
def test_imb_sweep_measures_four_collectives_on_2_and_4_ranks(in_course_env):
    record = comms.imb_sweep(ranks=4, max_log=18, name="test_imb")
    assert take_results("test_imb")["measurements"]["fits"] == record["fits"]
    for collective in comms.COLLECTIVES:
        for ranks in ("2", "4"):
            rows = record["tables"][collective][ranks]
            assert rows[-1]["bytes"] == 2**18 and all(r["t_avg_us"] > 0 for r in rows)
            assert record["fits"][collective][ranks]["latency_us"] > 0
    assert record["cut_short"] == []


TWO_NODES = Path(__file__).parent / "data" / "imb_two_nodes_debug5.txt"  # the mini cluster, I_MPI_DEBUG=5


def test_pingpong_rows_and_intel_mpis_startup_report_are_read():
    lines = TWO_NODES.read_text().splitlines()
    tables, cut_short = comms.parse_imb(lines)
    assert sorted(tables) == ["Allreduce", "PingPong"] and cut_short == []
    assert tables["PingPong"]["2"][0] == {"bytes": 1, "repetitions": 1000, "t_min_us": 27.87,
                                          "t_max_us": 27.87, "t_avg_us": 27.87}  # one time: half a round trip
    assert [r["bytes"] for r in tables["PingPong"]["2"]] == [1, 2, 4, 8, 16]
    startup = comms.mpi_startup(lines)
    assert startup == {"provider": "tcp", "tuning_file": "tuning_generic_shm-ofi.dat",
                       "node_per_rank": {"0": "node1", "1": "node2"}}
    assert comms.fabric_words(startup).startswith("libfabric's tcp provider between nodes")
    shared = comms.mpi_startup(["[0] MPI startup(): Load tuning file: \"/x/tuning_generic_shm.dat\""])
    assert comms.fabric_words(shared) == "shared memory only (tuning file tuning_generic_shm.dat)"


def test_the_pinning_table_is_read_when_the_launchers_rank_markers_land_inside_its_lines():
    # As `mpirun -prepend-rank` prints Intel MPI's report when a line reaches the launcher in
    # pieces, with another rank's line arriving between two of them.
    printed = ("node1\nnode2\n[0] [0] [0] MPI startup(): libfabric version: 2.4.0-impi[0] \n"
               "[0] [0] MPI startup(): libfabric provider: tcp\n"
               "[0] [0] MPI startup(): Rank    Pid      Node name  Pin cpu\n"
               "[0] [0] MPI startup(): 0       30090    node1 [0]      {0}\n"
               "[0] [0] MPI startup(): 1       30091[2] hello from rank 2 of 4 on node2\n[0]     node1      {1}\n"
               "[0] [0] MPI startup(): 2       30092    node2      {0}\n"
               "[0] [0] MPI startup(): 3  [0]      30093 [0]    node2      {1}\n")
    startup = comms.mpi_startup(printed.splitlines())
    assert startup["provider"] == "tcp"
    assert startup["node_per_rank"] == {"0": "node1", "1": "node1", "2": "node2", "3": "node2"}
    assert "hello from rank 2 of 4 on node2" in comms.lines_per_rank(printed.splitlines())


def test_the_reference_network_run_reads_as_the_notebook_prints_it():
    """What notebook 06 shows where it cannot start the mini cluster (without root)."""
    reference = comms.reference_network_record()
    assert reference["machine"]["quick_mode"] is False
    record = reference["measurements"]
    assert record["runs"]["two nodes"]["startup"]["provider"] == "tcp"
    assert record["runs"]["one node"]["startup"]["provider"] is None
    lines = comms.network_lines(record)
    assert lines[0].startswith("one node: rank 0 on node1, rank 1 on node1; Intel MPI's fabric: shared")
    assert lines[1].startswith("two nodes: rank 0 on node1, rank 1 on node2; Intel MPI's fabric: libfabric's")
    assert sum("the network's latency is" in line for line in lines) == len(record["benchmarks"])
    curves = comms.network_as_collectives(record)
    assert set(curves["tables"]) == set(record["benchmarks"]) and curves["max_bytes"] == 2**24
    fit = record["runs"]["two nodes"]["fits"]["Allreduce"]["2"]
    assert comms.model_time_us(fit, 0) == fit["latency_us"]
