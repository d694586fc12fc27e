"""Facts about the learner's CPU: model, cores and the instruction sets deep learning cares about."""

from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path

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


def cgroup_folders(proc: Path = Path("/proc/self"), controller: str = "cpu") -> list[tuple[str, list[Path]]]:
    """("v1" or "v2", [its folder, its parent, ... up to the mount]) for this process's cgroups
    that can hold a `controller` limit: the v1 hierarchy with that controller, and the v2
    (unified) one, found through /proc/self/cgroup and where /proc/self/mountinfo mounts each."""
    try:
        memberships = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        version = "v2" if hierarchy == "0" else "v1"
        if version == "v1" and controller not in controllers.split(","):
            continue
        for mount in mounts:
            fields, _, tail = mount.partition(" - ")
            fstype, _, options = (tail.split() + ["", "", ""])[:3]
            root, point = fields.split()[3:5]
            wanted = fstype == "cgroup2" if version == "v2" else (
                fstype == "cgroup" and controller in options.split(","))
            if wanted and (path + "/").startswith(root.rstrip("/") + "/"):
                inside = Path(path[len(root.rstrip("/")):].lstrip("/"))
                levels = [Path(point) / inside, *(Path(point) / p for p in inside.parents)]
                found.append((version, levels))
    return found


def cpu_quota(proc: Path = Path("/proc/self")) -> float | None:
    """The CPUs this process's cgroup may keep busy (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
    `cpu.cfs_period_us`), the tightest of its cgroup and their parents; None when unlimited.

    A quota is not an affinity: a learner limited to 2 CPUs of a 64-core server still sees 64
    cores in os.sched_getaffinity, and 64 threads would then take turns on 2 CPUs' worth of time.
    """
    limits = []
    for version, levels in cgroup_folders(proc):
        for level in levels:
            try:
                if version == "v2":
                    quota, _, period = (level / "cpu.max").read_text().partition(" ")
                else:
                    quota = (level / "cpu.cfs_quota_us").read_text()
                    period = (level / "cpu.cfs_period_us").read_text()
            except OSError:  # no such controller at this level
                continue
            if quota.strip() not in ("max", "-1") and int(period) > 0:
                limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def usable_cores() -> int:
    """Physical cores this process may use: fewer than the machine's inside a container, in an
    MPI rank that Intel MPI pinned to its own cores, or under a CPU quota (a hub's share)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(allowed, physical_cores(), int(quota) if quota else allowed))


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


def cpu_identity(info: dict[str, str] | None = None) -> dict:
    """What the CPU says it is: vendor, family and model numbers, model name and flags.

    `info` is one processor's block of /proc/cpuinfo (default: this machine's). Inside a virtual
    machine the model name may be only "AMD EPYC": the family and model numbers still tell.
    """
    info = _cpuinfo() if info is None else info

    def number(key: str) -> int | None:
        text = info.get(key, "").strip()
        return int(text) if text.isdigit() else None

    return {"vendor": info.get("vendor_id", ""), "family": number("cpu family"), "model": number("model"),
            "model_name": info.get("model name", ""), "flags": set(info.get("flags", "").split())}


# Known microarchitectures and their FMA units: (name, vendor, family, model numbers, model-name
# rule, FMA units per core, bits per unit). Sources: AMD's and Intel's optimization manuals.
# A rule is a regular expression the model name must match; the first matching row wins, so a
# family/model with SKUs that differ (Xeon Scalable 1st/2nd generation) lists its rules first and
# leaves the rest unknown. Zen 4 runs AVX-512 on 256-bit units (two passes per instruction).
MICROARCHITECTURES = [
    ("AMD Zen 2", "AuthenticAMD", 0x17, [*range(0x30, 0x40), *range(0x60, 0x80)], None, 2, 256),
    ("AMD Zen 3", "AuthenticAMD", 0x19, [*range(0x00, 0x10), *range(0x20, 0x60)], None, 2, 256),
    ("AMD Zen 4", "AuthenticAMD", 0x19, [*range(0x10, 0x20), *range(0x60, 0x80), *range(0xA0, 0xB0)],
     None, 2, 256),
    ("Intel Haswell/Broadwell", "GenuineIntel", 6, [0x3C, 0x3F, 0x45, 0x46, 0x3D, 0x47, 0x4F, 0x56],
     None, 2, 256),
    ("Intel Skylake/Kaby/Coffee/Comet Lake (client)", "GenuineIntel", 6, [0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6],
     None, 2, 256),
    ("Intel Xeon Scalable 1st/2nd gen (Platinum, Gold 6xxx, Gold 5122)", "GenuineIntel", 6, [0x55],
     r"Platinum|Gold 6\d{3}|Gold 5122", 2, 512),
    ("Intel Xeon Scalable 1st/2nd gen (Gold 5xxx, Silver, Bronze)", "GenuineIntel", 6, [0x55],
     r"Gold 5\d{3}|Silver|Bronze", 1, 512),
    # Gold and Platinum only: Silver and Bronze parts of these generations are left unknown.
    ("Intel Ice Lake server", "GenuineIntel", 6, [0x6A, 0x6C], r"Platinum|Gold", 2, 512),
    ("Intel Sapphire/Emerald Rapids", "GenuineIntel", 6, [0x8F, 0xCF], r"Platinum|Gold|CPU Max", 2, 512),
]


def microarchitecture(info: dict[str, str] | None = None) -> dict:
    """{"name", "fma_units", "fma_bits"} of this CPU (or of a /proc/cpuinfo block `info`) from
    MICROARCHITECTURES; name "unknown" and None for the rest when the table does not know it (a
    Xeon whose VM hides the SKU, a CPU not in the table): never a guess."""

    me = cpu_identity(info)
    for name, vendor, family, models, rule, units, bits in MICROARCHITECTURES:
        if (me["vendor"], me["family"]) == (vendor, family) and me["model"] in models \
                and (rule is None or re.search(rule, me["model_name"])):
            return {"name": name, "fma_units": units, "fma_bits": bits}
    return {"name": "unknown", "fma_units": None, "fma_bits": None}


def fp32_flops_per_cycle(info: dict[str, str] | None = None) -> int | None:
    """FP32 FLOPs one core can finish per cycle: FMA units x FP32 lanes per unit x 2 (an FMA is a
    multiply and an add); None when the microarchitecture is not in the table."""
    arch = microarchitecture(info)
    if arch["fma_units"] is None:
        return None
    return arch["fma_units"] * (arch["fma_bits"] // 32) * 2


# Multiply-accumulates (MACs) per cycle and core for each ISA level, assuming two full-width vector
# units (one AMX unit): the ratios between levels, not this CPU's figures (see microarchitecture()).
# A MAC is 2 operations. Without VNNI, an INT8 dot product of 4 pairs takes three instructions
# (VPMADDUBSW, VPMADDWD, VPADDD); VNNI's VPDPBUSD does it in one.
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


def nominal_fp32_gflops(cores: int | None = None) -> float | None:
    """The computed FP32 figure of `cores` cores (default: all usable): FLOPs per cycle from the
    microarchitecture table x the nominal clock (clock_ghz()) x cores. None when the table does not
    know this CPU. Computed, not measured: cores may run faster (boost) or slower (AVX-512 clock);
    scripts/roofline.py measures the ceiling the course compares with."""
    ghz, per_cycle = clock_ghz(), fp32_flops_per_cycle()
    return None if ghz is None or per_cycle is None else per_cycle * ghz * (cores or usable_cores())


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
        "microarchitecture": microarchitecture()["name"],
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
