"""Facts about the learner's CPU: model, cores and the instruction sets deep learning cares about."""

from __future__ import annotations

import functools
import os
import platform

# The ISA extensions the course talks about, as /proc/cpuinfo names them, with what each brings.
ISA_FEATURES = {
    "avx2": "AVX2: 256-bit vectors",
    "fma": "FMA: fused multiply-add",
    "avx512f": "AVX-512: 512-bit vectors",
    "avx512_vnni": "AVX512_VNNI: DL Boost INT8 dot products (VPDPBUSD) on 512-bit vectors",
    "avx_vnni": "AVX_VNNI: DL Boost INT8 dot products on 256-bit vectors",
    "avx512_bf16": "AVX512_BF16: bfloat16 dot products",
    "amx_tile": "AMX: tile registers for matrix multiplies",
    "amx_int8": "AMX-INT8: INT8 tile matrix multiplies",
    "amx_bf16": "AMX-BF16: bfloat16 tile matrix multiplies",
}


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    return set(_cpuinfo().get("flags", "").split())


def isa() -> dict[str, bool]:
    """Which of the course's ISA extensions this CPU has."""
    flags = cpu_flags()
    return {name: name in flags for name in ISA_FEATURES}


def physical_cores() -> int:
    """Physical cores of the machine (hyper-threads are not counted: they share FPUs)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def usable_cores() -> int:
    """Physical cores this process may run on: fewer than the machine's inside a container or an
    MPI rank that Intel MPI pinned to its own cores."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    return max(1, min(allowed, physical_cores()))


def dl_boost_summary() -> str:
    """One line on what this CPU means for INT8 / bfloat16 deep learning."""
    has = isa()
    if has["amx_int8"]:
        return "AMX + VNNI: INT8 and BF16 matrix multiplies run on tile units (DL Boost and beyond)."
    if has["avx512_vnni"]:
        return "AVX512_VNNI: DL Boost INT8 is available (one instruction per 4-way u8 x s8 dot product)."
    if has["avx_vnni"]:
        return "AVX_VNNI: DL Boost INT8 on 256-bit vectors (no AVX-512)."
    if has["avx512f"]:
        return "AVX-512 without VNNI: INT8 needs three instructions per dot product; no DL Boost."
    if has["avx2"]:
        return "AVX2 only: no DL Boost; INT8 still saves memory, but gains less than on a VNNI CPU."
    return "No AVX2: TensorFlow 2.15 wheels need AVX; this CPU is below the course's minimum."


def clock_ghz() -> float | None:
    """The core clock: the maximum the kernel reports, else the current speed /proc/cpuinfo shows."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1e6
    except (OSError, ValueError):
        mhz = _cpuinfo().get("cpu MHz")
        return float(mhz) / 1000 if mhz else None


def fp32_flops_per_cycle() -> int:
    """FP32 FLOPs one core can finish per cycle, assuming two FMA units (most server cores).

    An FMA is 2 FLOPs per lane: AVX-512 has 16 FP32 lanes, AVX2 8. Without FMA, one add and
    one multiply per cycle.
    """
    has = isa()
    lanes = 16 if has["avx512f"] else 8
    return 2 * lanes * 2 if has["fma"] else lanes * 2


# Multiply-accumulates (MACs) per cycle and core for each ISA level, assuming two vector units
# (one AMX unit). A MAC is 2 operations. Without VNNI, an INT8 dot product of 4 pairs takes three
# instructions (VPMADDUBSW, VPMADDWD, VPADDD); VNNI's VPDPBUSD does it in one.
ISA_LEVELS = [  # (name, flag that enables it, FP32 MACs, INT8 MACs)
    ("AVX2", "avx2", 2 * 8, 2 * 32 / 3),
    ("AVX_VNNI", "avx_vnni", 2 * 8, 2 * 32),
    ("AVX-512", "avx512f", 2 * 16, 2 * 64 / 3),
    ("AVX512_VNNI", "avx512_vnni", 2 * 16, 2 * 64),
    ("AMX-INT8", "amx_int8", 2 * 16, 1024),
]


def peak_ops_per_cycle() -> list[dict]:
    """Theoretical FP32 and INT8 operations per cycle and core for each ISA level, and whether
    this CPU has it."""
    flags = cpu_flags()
    return [{"isa": name, "available": flag in flags, "fp32_ops": 2 * fp32, "int8_ops": 2 * int8,
             "int8_over_fp32": int8 / fp32} for name, flag, fp32, int8 in ISA_LEVELS]


def peak_fp32_gflops(cores: int | None = None) -> float | None:
    """Theoretical FP32 peak of `cores` cores (default: all usable) at clock_ghz()."""
    ghz = clock_ghz()
    return None if ghz is None else fp32_flops_per_cycle() * ghz * (cores or usable_cores())


def cpu_facts() -> dict:
    """Everything above as one JSON-ready dict (what results files record)."""
    return {
        "model": cpu_model(),
        "machine": platform.machine(),
        "physical_cores": physical_cores(),
        "usable_cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "isa": isa(),
        "clock_ghz": clock_ghz(),
        "fp32_flops_per_cycle": fp32_flops_per_cycle(),
        "dl_boost": dl_boost_summary(),
    }


def isa_cap_below_dl_boost() -> tuple[str, str] | None:
    """(ONEDNN_MAX_CPU_ISA value, what it takes away): the instruction set just below this CPU's
    DL Boost INT8, so that the same INT8 model runs without VNNI; None on a CPU without VNNI.

    oneDNN's names: AVX512_CORE is AVX-512 without VNNI (below AVX512_VNNI, which it calls
    AVX512_CORE_VNNI); AVX2 is below AVX_VNNI (AVX2_VNNI). AMX and AVX512_BF16 sit above VNNI, so
    the cap takes them away too.
    """
    has = isa()
    if has["avx512_vnni"]:
        return "AVX512_CORE", "AVX512_VNNI (and AVX512_BF16, AMX above it)"
    if has["avx_vnni"]:
        return "AVX2", "AVX_VNNI"
    return None
