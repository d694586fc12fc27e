"""DL Boost shown running: OpenVINO's CPU plugin, the kernel each layer ran, and what it means.

    from dlscale import dlboost
    rows = dlboost.layer_kernels(compiled_model)    # Convolution / FullyConnected / MatMul layers
    dlboost.kernel_summary(rows)                    # grouped: precision, kernel, and which unit ran it

Importing this module does not import OpenVINO (doctor and notebooks stay light). OpenVINO's
runtime model names, for every layer, its type, the precision it ran at and the oneDNN kernel
(`primitiveType`, e.g. brgconv_avx512_I8). The kernel's name does not change when VNNI is taken
away with ONEDNN_MAX_CPU_ISA (brgconv_avx512_I8 runs with or without it), so `unit()` reads the
CPU's flags and the cap as well as the name.

Offline: OpenVINO's model converter and NNCF report usage through the `openvino-telemetry`
package, which sends unless the learner's home holds an opt-out file or a CI variable is set.
`keep_offline()` (called when dlscale is imported, and the same variables are set by the
Makefile, the Jupyter kernel and tools/course_env.sh) sets the package's own switches for
every process of the course, whoever runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .cpu import isa

# openvino-telemetry turns itself off (no consent prompt, nothing sent, no file written in the
# home folder) for tools created with disable_in_ci=True, which OpenVINO's converter and NNCF
# are, when CI=true; NNCF_CI=1 makes NNCF use its no-op telemetry object outright.
OFFLINE_ENVIRONMENT = {"CI": "true", "NNCF_CI": "1"}

COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul")
INT8_PRECISIONS = ("u8", "i8")
ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"  # oneDNN's own cap; OpenVINO's CPU plugin honours it


def keep_offline() -> None:
    """Switch OpenVINO's and NNCF's telemetry off for this process and what it starts."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def layer_kernels(compiled) -> list[dict]:
    """{name, type, precision, kernel} of every convolution and dense layer of a compiled model,
    read from its runtime model (what actually ran, after OpenVINO's fusions)."""
    rows = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else ""
        if kind in COMPUTE_LAYERS:
            rows.append({"name": op.get_friendly_name(), "type": kind,
                         "precision": info["runtimePrecision"].astype(str),
                         "kernel": info["primitiveType"].astype(str)})
    return rows


def unit(precision: str, kernel: str, isa_cap: str | None = None, flags: dict | None = None) -> str:
    """Which of the CPU's units a layer ran on, in words a learner reads: "VNNI", "AVX512_BF16",
    "AMX", "AVX2 INT8", "AVX-512 INT8 (no VNNI)", "FP32", ...

    `isa_cap` is the ONEDNN_MAX_CPU_ISA the run had (None: uncapped), `flags` dlscale.cpu.isa().
    """
    flags = isa() if flags is None else flags
    name, cap = kernel.lower(), (isa_cap or "").upper()
    if "ref" in name.split("_") or name.startswith("ref"):
        return "reference C++ (no vector kernel)"
    if "amx" in name:
        return "AMX"
    if precision in INT8_PRECISIONS:
        if "avx512" in name:
            below = cap not in ("", "ALL") and not any(k in cap for k in ("VNNI", "BF16", "FP16", "AMX"))
            return "VNNI" if flags.get("avx512_vnni") and not below else "AVX-512 INT8 (no VNNI)"
        if "avx" in name or cap in ("AVX2", "AVX2_VNNI", "AVX2_VNNI_2"):
            below = cap in ("AVX2", "AVX", "SSE41")
            return "AVX-VNNI" if flags.get("avx_vnni") and not below else "AVX2 INT8"
        # A name without its ISA (e.g. a gemm_s8u8s32 kernel): the best INT8 unit left to oneDNN.
        if cap in ("", "ALL"):
            best = "VNNI" if flags.get("avx512_vnni") else "AVX-VNNI" if flags.get("avx_vnni") else ""
            return best or "AVX2 INT8"
        return "INT8 (other)"
    if precision == "bf16":
        below = cap not in ("", "ALL") and not any(k in cap for k in ("BF16", "FP16", "AMX"))
        native = (flags.get("avx512_bf16") or flags.get("amx_bf16")) and not below
        return "AVX512_BF16" if native else "BF16 emulated (no BF16 instructions)"
    if precision in ("f32", "fp32"):
        return "FP32"
    return precision.upper()


def kernel_summary(rows: list[dict], isa_cap: str | None = None) -> list[dict]:
    """Layers grouped by (type, precision, kernel, unit), in the order they first appear."""
    groups: dict[tuple, int] = {}
    for row in rows:
        key = (row["type"], row["precision"], row["kernel"], unit(row["precision"], row["kernel"], isa_cap))
        groups[key] = groups.get(key, 0) + 1
    return [{"type": t, "precision": p, "kernel": k, "unit": u, "layers": n}
            for (t, p, k, u), n in groups.items()]


def all_int8(rows: list[dict]) -> bool:
    """True when every convolution and dense layer ran at u8 or i8."""
    return bool(rows) and all(row["precision"] in INT8_PRECISIONS for row in rows)


# Runs in a process of its own: ONEDNN_VERBOSE, like ONEDNN_MAX_CPU_ISA, is read when oneDNN loads.
# Level 2 adds a line for each primitive created, and those are read: OpenVINO runs primitives
# without waiting on oneDNN's stream, and some of their execution lines went missing. One thread:
# the ISA oneDNN picks does not depend on it, and with two, OpenVINO 2026.4's traced runs failed
# here ("could not execute a primitive"); with one, none did.
TRACE_PROBE = """
import sys, numpy as np, openvino as ov
core = ov.Core()
model = core.read_model(sys.argv[1])
model.reshape([int(sys.argv[2]), *(d.get_length() for d in list(model.input().get_partial_shape())[1:])])
compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                              "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
compiled(np.zeros(list(compiled.input(0).get_shape()), np.float32))
"""


def isa_trace(xml: Path, batch: int) -> dict:
    """One inference of an OpenVINO model with oneDNN's trace on, in a child process that inherits
    this one's ONEDNN_MAX_CPU_ISA: {"isa": what oneDNN says it may use, "implementations": the
    convolution and inner-product implementations with their ISA, e.g. brg_conv_fwd:avx512_core_vnni}.

    The runtime model's kernel names stay the same with and without VNNI; the trace's ISA does not.
    """
    from .onednn import parse_verbose

    env = dict(os.environ, ONEDNN_VERBOSE="2")
    with tempfile.TemporaryFile(mode="w+") as log:
        for _ in range(3):
            log.seek(0)
            log.truncate()
            done = subprocess.run([sys.executable, "-c", TRACE_PROBE, str(xml), str(batch)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, timeout=300, check=False)
            log.seek(0)
            text = log.read()
            if done.returncode == 0:
                break
        else:  # the trace is evidence beside the measurements, not a measurement: say so, carry on
            last = text.strip().splitlines()[-1:]
            print(f"warning: oneDNN's trace of {xml.name} failed 3 times ({' '.join(last)})", flush=True)
            return {"onednn": None, "isa": None, "implementations": [], "error": " ".join(last)}
    info = parse_verbose(text)
    used = [e["implementation"] for e in info["created"]
            if e["primitive"] in ("convolution", "inner_product", "matmul")]
    return {"onednn": info["version"], "isa": info["isa"], "implementations": sorted(set(used))}


def openvino_facts() -> dict:
    """OpenVINO's version and what its CPU plugin says this CPU can run (FP32, BF16, INT8, ...)."""
    keep_offline()
    import openvino as ov

    core = ov.Core()
    return {"version": ov.get_version(),
            "capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
            "isa_cap": os.environ.get(ISA_VARIABLE)}


def kernel_lines(model: dict, precision: str) -> list[str]:
    """["2 Convolution u8 brgconv_avx512_I8: VNNI", ...] from a model's record in a results file."""
    return [f"{g['layers']} {g['type']} layer(s) at {g['precision']} ran as {g['kernel']}: {g['unit']}"
            for g in model["kernel_units"].get(precision, [])]


def speed_rows(measurements: dict) -> list[dict]:
    """One row per model and batch size: images/s of each precision, and the ratios to FP32."""
    rows = []
    for name, model in measurements["models"].items():
        for batch in map(str, measurements["batch_sizes"]):
            rates = {p: model["images_per_second"][p][batch] for p in measurements["precisions"]}
            rows.append({"model": name, "batch": int(batch), **rates,
                         **{f"{p}_over_fp32": rates[p] / rates["fp32"] for p in rates if p != "fp32"}})
    return rows


def speed_lines(measurements: dict) -> list[str]:
    """One line per model and batch size: images/s of each precision and the ratios to FP32
    (one fixed form, numbers with their units, so tests/sanitize.cfg can mask them)."""
    lines = []
    for row in speed_rows(measurements):
        rates = ", ".join(f"{p.upper()} {row[p]:.0f} img/s" for p in measurements["precisions"])
        ratios = ", ".join(f"{p.upper()} {row[p + '_over_fp32']:.2f}x" for p in measurements["precisions"]
                           if p != "fp32")
        lines.append(f"{row['model']}, batch {row['batch']}: {rates}; over FP32: {ratios}")
    return lines


def gain_verdict(measurements: dict) -> str:
    """Where INT8 gained most and least over FP32 (model and batch), from the measurements."""
    rows = sorted(speed_rows(measurements), key=lambda row: row["int8_over_fp32"])
    low, high = rows[0], rows[-1]
    return (f"verdict: INT8 gained most for {high['model']} at batch {high['batch']} "
            f"({high['int8_over_fp32']:.2f}x FP32) and least for {low['model']} at batch {low['batch']} "
            f"({low['int8_over_fp32']:.2f}x)")


def isa_cap_effect(uncapped: dict, capped: dict, model: str | None = None) -> dict:
    """The same INT8 and FP32 models with and without DL Boost, at the largest batch: images/s,
    capped over uncapped, and the ISA oneDNN reported for the CNN's INT8 layers in each run.

    The model compared is ResNet-50 where it ran: its calls last long enough to time steadily on a
    shared machine, where the CNN's last about a millisecond.
    """
    model = model or ("resnet50" if "resnet50" in capped["models"] else "cnn")
    batch = str(max(capped["batch_sizes"]))
    effect = {"model": model, "batch": int(batch), "isa_cap": capped["isa_cap"]}
    for p in ("fp32", "int8"):
        before = uncapped["models"][model]["images_per_second"][p][batch]
        after = capped["models"][model]["images_per_second"][p][batch]
        effect[p] = {"uncapped": before, "capped": after, "capped_over_uncapped": after / before}
    traces = {when: m["models"].get("cnn", {}).get("int8_trace") for when, m in
              (("uncapped", uncapped), ("capped", capped))}
    if all(traces.values()):
        effect["int8_implementations"] = {when: trace["implementations"] for when, trace in traces.items()}
    return effect


def vpdpwssd(acc, a_s16, b_s16):
    """VPDPWSSD, the INT16 form of VNNI: each 32-bit lane adds two s16 x s16 products (wrapping
    around like the instruction)."""
    import numpy as np

    pairs = a_s16.reshape(-1, 2).astype(np.int64) * b_s16.reshape(-1, 2).astype(np.int64)
    return (acc.astype(np.int64) + pairs.sum(axis=1)).astype(np.int32)


def report_isa_cap(effect: dict) -> None:
    """Print the ISA-cap comparison (see isa_cap_effect) and what it means."""
    for p in ("int8", "fp32"):
        e = effect[p]
        print(f"{p.upper()}, {effect['model']} batch {effect['batch']}: {e['uncapped']:.0f} img/s with "
              f"DL Boost, {e['capped']:.0f} img/s capped at {effect['isa_cap']} "
              f"({e['capped_over_uncapped']:.2f}x)")
    for when, used in effect.get("int8_implementations", {}).items():
        print(f"INT8 convolutions {when}: " + (", ".join(f"ran as {i}" for i in used) or "no trace"))
    int8, fp32 = effect["int8"]["capped_over_uncapped"], effect["fp32"]["capped_over_uncapped"]
    if int8 < 0.9 and 0.9 <= fp32 <= 1.1:
        print(f"verdict: without VNNI the same INT8 model ran at {int8:.2f}x its speed while FP32 stayed "
              f"level ({fp32:.2f}x): that loss is DL Boost's own share of the INT8 gain.")
    elif int8 < 0.9:
        print(f"verdict: INT8 slowed to {int8:.2f}x without VNNI, but FP32 moved too ({fp32:.2f}x): the "
              "machine was busy or the cap reached FP32 kernels; run the cell again.")
    else:
        print(f"verdict: INT8 kept {int8:.2f}x of its speed without VNNI: this model is limited by "
              "memory or overhead here, not by multiply-adds; try a larger batch or ResNet-50.")


def report_bf16_training(fp32: dict, bf16: dict, trace: dict) -> None:
    """Print FP32 against mixed_bfloat16 training (cnn_mnist.py results) and oneDNN's trace."""
    for label, m in (("FP32", fp32), ("BF16 (mixed_bfloat16)", bf16)):
        print(f"{label}: {m['train_images_per_second']:.0f} img/s, test accuracy {m['test_accuracy']:.2%}")
    speed = bf16["train_images_per_second"] / fp32["train_images_per_second"]
    change = bf16["test_accuracy"] - fp32["test_accuracy"]
    print(f"BF16 over FP32: {speed:.2f}x the speed; accuracy {change:+.2%} after the same epochs")
    print(f"oneDNN's ISA: {trace['isa']}")
    print("BF16 training's convolutions: " + ", ".join(f"ran as {i}" for i in trace["implementations"]))
    print("their tensors' data types: " + ", ".join(t for t in trace["data_types"] if t != "undef"))
    native = any("bf16" in i for i in trace["implementations"]) and isa().get("avx512_bf16")
    if native:
        print("verdict: oneDNN ran BF16 convolutions on the CPU's AVX512_BF16 (or AMX) units.")
    else:
        print(f"verdict: this CPU has no BF16 instructions: oneDNN fell back to the kernels above, "
              f"and BF16 ran at {speed:.2f}x FP32's speed.")
