"""The roofline helpers on inputs worked out by hand, the microarchitecture table, and a quick-mode
run of scripts/roofline.py under mpirun -n 2."""

from __future__ import annotations

import pytest
from conftest import take_results

from dlscale import cpu, roofline
from dlscale.launch import mpirun


def cpuinfo(vendor: str, family: int, model: int, name: str, flags: str = "avx2 fma") -> dict:
    return {"vendor_id": vendor, "cpu family": str(family), "model": str(model), "model name": name,
            "flags": flags}


@pytest.mark.parametrize("info, name, units, bits, flops", [
    (cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC", "avx2 fma avx512f avx512_bf16"), "AMD Zen 4", 2, 256, 32),
    (cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC 7763 64-Core Processor"), "AMD Zen 3", 2, 256, 32),
    (cpuinfo("GenuineIntel", 6, 85, "Intel(R) Xeon(R) Silver 4210 CPU @ 2.20GHz"),
     "Intel Xeon Scalable 1st/2nd gen (Gold 5xxx, Silver, Bronze)", 1, 512, 32),
    (cpuinfo("GenuineIntel", 6, 85, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"),
     "Intel Xeon Scalable 1st/2nd gen (Platinum, Gold 6xxx, Gold 5122)", 2, 512, 64),
    (cpuinfo("GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8480+"), "Intel Sapphire/Emerald Rapids",
     2, 512, 64),
    (cpuinfo("GenuineIntel", 6, 85, "Intel Xeon Processor (Cascadelake)"), "unknown", None, None, None),
    (cpuinfo("CentaurHauls", 7, 59, "VIA something"), "unknown", None, None, None),
])
def test_the_table_knows_the_fma_units_or_says_unknown(info, name, units, bits, flops):
    assert cpu.microarchitecture(info) == {"name": name, "fma_units": units, "fma_bits": bits}
    assert cpu.fp32_flops_per_cycle(info) == flops


def test_intensity_of_a_matmul_a_dense_and_a_convolution():
    square = roofline.matmul_cost(1024, 1024, 1024)
    assert (square.flops, square.bytes) == (2 * 1024**3, 3 * 4 * 1024**2)
    assert square.intensity == pytest.approx(1024 / 6)
    dense = roofline.dense_cost(3136, 1024, batch=64)  # the CNN's dense1 at batch 64
    assert dense.flops == 2 * 64 * 3136 * 1024
    assert dense.bytes == 4 * (64 * 3136 + 3136 * 1024 + 64 * 1024)
    conv = roofline.conv2d_cost(28, 28, 1, 28, 28, 32, 5, 5, batch=1)  # the CNN's conv1
    assert conv.flops == 2 * 28 * 28 * 32 * 25 == 1_254_400
    assert conv.bytes == 4 * (784 + 800 + 25_088)
    assert conv.intensity == pytest.approx(1_254_400 / 106_688)


def test_a_keras_model_costs_the_sum_of_its_layers():
    from dlscale.cnn import build_model, flops_per_image

    model = build_model()
    one = roofline.keras_model_cost(model, batch=1)
    assert one.flops == flops_per_image(model)  # one FLOP count in the course
    training = roofline.training_cost(roofline.keras_model_cost(model, 64), model.count_params())
    assert training.flops == 3 * 64 * one.flops
    assert training.bytes > 3 * roofline.keras_model_cost(model, 64).bytes


def test_kmeans_and_triad_byte_counts():
    cost = roofline.kmeans_cost(pixels=1000, colours=16)
    assert (cost.flops, cost.bytes) == (3 * 1000 * 16 * 3, 8 * 1016 * 3 + 4 * 1000)
    assert roofline.triad_bytes(1_000_000) == 24_000_000  # 3 arrays x 8 bytes per element


def test_the_triad_computes_a_equals_b_plus_s_times_c_without_temporaries():
    import numpy as np

    a, b, c = np.zeros(100_003), np.arange(100_003.0), np.full(100_003, 2.0)
    roofline.triad(a, b, c, 3.0, np.empty(1000))  # chunks that do not divide the length
    assert np.array_equal(a, b + 6.0)


def test_placing_a_workload_names_the_roof_that_bounds_it():
    roofs = {"fp32": 100.0, "bandwidth_gb_per_s": 10.0}  # ridge at 10 FLOPs/byte
    low = roofline.place("low", roofline.Cost(2e9, 1e9), 10.0, roofs)  # 2 FLOPs/byte: 20 GFLOP/s at most
    assert (low["bound"], low["attainable_gflops"], low["fraction"]) == ("memory bandwidth", 20.0, 0.5)
    high = roofline.place("high", roofline.Cost(50e9, 1e9), 80.0, roofs)
    assert (high["bound"], high["fraction"]) == ("FP32 compute", 0.8)
    assert roofline.verdict(high).startswith("verdict: high: 50.0 FLOPs/byte, bound by FP32 compute; ")


@pytest.mark.mpi
def test_roofline_script_measures_every_roof_on_two_ranks(in_course_env):
    mpirun("scripts/roofline.py", "--size", 512, "--seconds", 0.1, "--triad-mib", 32,
           "--name", "test_roofline", ranks=2, threads=1, echo=False, timeout=300)
    record = take_results("test_roofline")
    m = record["measurements"]
    assert record["machine"]["ranks"] == 2 and record["machine"]["quick_mode"] is True
    assert set(m["ceilings"]) | set(m["skipped"]) == {"fp32", "bf16", "int8"}
    for ceiling in m["ceilings"].values():
        assert len(ceiling["per_rank_gflops"]) == 2
        assert ceiling["aggregate_gflops"] == pytest.approx(sum(ceiling["per_rank_gflops"]))
    if "bf16" in m["ceilings"]:  # oneDNN's trace: BF16 kernels ran, not FP32 ones
        assert any("bf16" in k for k in m["ceilings"]["bf16"]["kernels"])
    if "int8" in m["ceilings"]:
        assert all(k.split()[0] in ("u8", "i8") for k in m["ceilings"]["int8"]["kernels"])
    triad = m["triad"]
    assert triad["bytes_per_element"] == 24 and triad["elements_per_rank"] == 32 * 2**20 // 8
    assert triad["aggregate_gb_per_s"] == pytest.approx(sum(triad["per_rank_gb_per_s"]))
    assert (m["nominal"]["fp32_gflops"] is None) == (cpu.fp32_flops_per_cycle() is None)


def test_the_kmeans_diagnostic_names_a_narrower_dispatch_than_the_cpu_has(monkeypatch, capsys):
    from dlscale import surprises

    monkeypatch.setattr(cpu, "isa", lambda: {"avx512f": True})
    found = {"onedal_dispatch": "Intel(R) Advanced Vector Extensions 2", "gemm_calls": 4,
             "gemm_shapes": [(512, 16, 3)], "sklearn_pools": []}
    surprises.report_kmeans_code_paths(found)
    out = capsys.readouterr().out
    assert "has AVX-512 but oneDAL runs its Intel(R) Advanced Vector Extensions 2 build" in out
    assert "(512, 16, 3)" in out


def test_the_roofline_plot_numbers_every_point_and_names_it_with_its_fraction():
    from dlscale import plots

    found = {"fp32": 200.0, "bf16": 400.0, "bandwidth_gb_per_s": 20.0}
    points = [roofline.place("matmul", roofline.matmul_cost(512, 512, 512), 150.0, found),
              roofline.place("K-Means", roofline.kmeans_cost(1000, 16), 2.0, found)]
    ax = plots.roofline(found, points, "test CPU").axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "1  K-Means: 2% of its memory bandwidth roof\n2  matmul: 75% of its FP32 compute roof" in texts
    assert ax.get_title() == "test CPU: FP32 ridge at 10 FLOPs/byte; closest to its roof: matmul (75%)"
