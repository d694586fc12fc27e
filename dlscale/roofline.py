"""The roofline of the learner's CPU: measured ceilings, and every workload placed under them.

    from dlscale import roofline
    roofs = roofline.roofs(roofline.last_measurement())   # from scripts/roofline.py's results
    point = roofline.place("MNIST CNN training", cost, achieved_gflops, roofs)

A workload's arithmetic intensity is the FLOPs it does per byte it moves to and from memory.
Below roof / bandwidth FLOPs per byte, memory bandwidth bounds it (the sloped roof); above it,
the multiply-add units do (the flat roofs: FP32, BF16, INT8). The roofs are measured here
(scripts/roofline.py: large matrix multiplies, a STREAM-style triad), not computed from a
datasheet: a virtual machine hides the clock the cores run at, and the FMA layout differs between
CPUs (dlscale.cpu.microarchitecture).

The byte model of every cost below: each layer reads its inputs and weights once and writes its
outputs once, in float32 (4 bytes), as if nothing stayed in the caches between layers. Only
convolutions, dense layers and matrix multiplies are counted: element-wise layers (ReLU, batch
normalization, pooling, residual additions) add bytes but few FLOPs, so a network's intensity
here is an upper bound, and its real point lies further left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

FLOAT32 = 4


@dataclass(frozen=True)
class Cost:
    """FLOPs and bytes moved by a piece of work; intensity = FLOPs per byte."""

    flops: float
    bytes: float

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.bytes + other.bytes)

    def __mul__(self, times: float) -> Cost:
        return Cost(self.flops * times, self.bytes * times)


def matmul_cost(m: int, k: int, n: int, itemsize: int = FLOAT32) -> Cost:
    """(m x k) @ (k x n): a multiply-add (2 FLOPs) per m x k x n; reads both operands, writes the product."""
    return Cost(2 * m * k * n, itemsize * (m * k + k * n + m * n))


def dense_cost(n_in: int, n_out: int, batch: int = 1) -> Cost:
    """A dense layer on `batch` inputs: a (batch x n_in) @ (n_in x n_out) matrix multiply."""
    return matmul_cost(batch, n_in, n_out)


def conv2d_cost(h_in: int, w_in: int, c_in: int, h_out: int, w_out: int, c_out: int,
                kh: int, kw: int, batch: int = 1) -> Cost:
    """A 2-D convolution: kh x kw x c_in multiply-adds per output value; reads the input images and
    the kh x kw x c_in x c_out weights, writes the output images."""
    flops = 2 * batch * h_out * w_out * c_out * kh * kw * c_in
    moved = FLOAT32 * (batch * h_in * w_in * c_in + kh * kw * c_in * c_out + batch * h_out * w_out * c_out)
    return Cost(flops, moved)


def _spatial(shape, channels_first: bool) -> tuple[int, int, int]:
    """(height, width, channels) of a Keras shape (None, H, W, C) or (None, C, H, W)."""
    return (shape[2], shape[3], shape[1]) if channels_first else (shape[1], shape[2], shape[3])


def keras_model_cost(model, batch: int = 1) -> Cost:
    """One forward pass of `batch` images through a Keras model's Conv2D and Dense layers."""
    total = Cost(0, 0)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            first = layer.data_format == "channels_first"
            h_in, w_in, c_in = _spatial(layer.input_shape, first)
            h_out, w_out, c_out = _spatial(layer.output_shape, first)
            total += conv2d_cost(h_in, w_in, c_in, h_out, w_out, c_out, *layer.kernel_size, batch=batch)
        elif kind == "Dense":
            total += dense_cost(layer.input_shape[-1], layer.units, batch)
    return total


ADAM_WEIGHT_PASSES = 7  # reads weights, gradients and two moments; writes weights and two moments


def training_cost(forward: Cost, weights: int) -> Cost:
    """One training step from its forward pass: the backward pass computes the gradients of the
    inputs and of the weights, each about one forward pass in FLOPs and bytes (3 forward passes in
    all), then Adam updates `weights` float32 parameters once per step."""
    return forward * 3 + Cost(0, ADAM_WEIGHT_PASSES * FLOAT32 * weights)


def kmeans_cost(pixels: int, colours: int, channels: int = 3, itemsize: int = 8) -> Cost:
    """One Lloyd iteration's distance computation: for every pixel and colour, a subtraction, a
    multiply and an add per channel (3 FLOPs); reads the pixels and the colours once (float64, as
    quantize_colors.py passes them) and writes one 4-byte label per pixel."""
    flops = 3 * pixels * colours * channels
    return Cost(flops, itemsize * (pixels + colours) * channels + 4 * pixels)


# STREAM-style triad, a = b + s * c -------------------------------------------------------------

TRIAD_ARRAYS = 3  # b and c read, a written (STREAM's count: the write-allocate read of a is not counted)


def triad_bytes(elements: int, itemsize: int = 8) -> int:
    """Bytes one triad over `elements` float64 values moves: 3 arrays x 8 bytes per element."""
    return TRIAD_ARRAYS * itemsize * elements


TRIAD_CHUNK = 32_768  # elements per step: 256 KiB of float64, a buffer that stays in the L2 cache


def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, scalar: float, scratch: np.ndarray) -> None:
    """a = b + scalar * c without a temporary array (a temporary would time allocation and add a
    pass over memory): chunk by chunk, scalar * c goes into a small cache-resident `scratch`, and
    only b and c are read from memory and a written, once each."""
    step = len(scratch)
    for start in range(0, len(a), step):
        end = min(start + step, len(a))
        part = scratch[:end - start]
        np.multiply(c[start:end], scalar, out=part)
        np.add(part, b[start:end], out=a[start:end])


def last_level_cache_bytes() -> int | None:
    """The largest cache of cpu0, from sysfs (None where sysfs does not say)."""
    from pathlib import Path

    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper()
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * unit)
    return max(sizes) if sizes else None


def triad_elements(min_mib: int = 64) -> int:
    """float64 elements per array: four times the last-level cache (at least `min_mib` MiB), so
    the arrays cannot stay in cache between passes."""
    cache = last_level_cache_bytes() or 0
    return max(4 * cache, min_mib * 2**20) // 8


def measure_triad(elements: int, seconds: float, before=None) -> float:
    """GB/s (1e9 bytes/s) of repeated triads over `elements` float64 values, one thread.

    `before` (e.g. an MPI barrier) runs after the untimed first pass, so ranks start together."""
    a, b, c = np.zeros(elements), np.full(elements, 1.0), np.full(elements, 2.0)
    scratch = np.empty(min(TRIAD_CHUNK, elements))
    triad(a, b, c, 3.0, scratch)  # untimed: pages touched, caches warm
    if before:
        before()
    passes, start = 0, time.perf_counter()
    while True:
        triad(a, b, c, 3.0, scratch)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and passes >= 2:
            break
    if a[0] != 7.0:  # 1 + 3 x 2: the triad did run
        raise RuntimeError(f"triad computed {a[0]}, expected 7.0")
    return passes * triad_bytes(elements) / elapsed / 1e9


# Matrix-multiply ceilings -------------------------------------------------------------------------

def timed_calls(call, seconds: float, warmup: int = 2, before=None) -> tuple[int, float]:
    """(calls, elapsed seconds) of `call` repeated for `seconds` (3 calls at least) after `warmup`
    untimed ones; `before` runs between, so that ranks start together."""
    for _ in range(warmup):
        call()
    if before:
        before()
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls, elapsed


def tensorflow_matmul_gflops(size: int, dtype: str, seconds: float, before=None) -> float:
    """GFLOP/s of size x size matrix multiplies through TensorFlow (oneDNN where it is on), in
    float32 or bfloat16; TensorFlow's thread pools must be set before."""
    import tensorflow as tf

    kind = {"fp32": tf.float32, "bf16": tf.bfloat16}[dtype]
    a = tf.cast(tf.random.uniform((size, size), seed=1), kind)
    b = tf.cast(tf.random.uniform((size, size), seed=2), kind)
    multiply = tf.function(lambda: tf.matmul(a, b))

    def call():
        multiply().numpy()  # .numpy() waits for the result: timing the work, not its launch

    calls, elapsed = timed_calls(call, seconds, before=before)
    return calls * matmul_cost(size, size, size).flops / elapsed / 1e9


def openvino_int8_matmul(size: int, threads: int, seconds: float, before=None) -> tuple[float, list[dict]]:
    """(GOP/s, kernels) of size x size INT8 matrix multiplies through OpenVINO (oneDNN's INT8
    kernels: VNNI or AMX where the CPU has them): a MatMul between FakeQuantize nodes, which
    OpenVINO's CPU plugin turns into a u8 x i8 kernel; `kernels` is what its runtime model says ran."""
    import openvino as ov
    import openvino.opset13 as ops

    from .dlboost import keep_offline, layer_kernels

    keep_offline()

    def quantized(node, low: float, high: float, levels: int):
        low_, high_ = (ops.constant(np.array(v, np.float32)) for v in (low, high))
        return ops.fake_quantize(node, low_, high_, low_, high_, levels)

    rng = np.random.default_rng(0)
    x = ops.parameter([size, size], np.float32, name="x")
    weights = ops.constant(rng.uniform(-1, 1, (size, size)).astype(np.float32))
    product = ops.matmul(quantized(x, 0.0, 1.0, 256), quantized(weights, -1.0, 1.0, 255), False, False)
    compiled = ov.Core().compile_model(ov.Model([product], [x]), "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    images = rng.random((size, size), dtype=np.float32)
    calls, elapsed = timed_calls(lambda: request.infer({0: images}), seconds, before=before)
    return calls * matmul_cost(size, size, size).flops / elapsed / 1e9, layer_kernels(compiled)


def numpy_estimate(seconds: float = 0.3) -> dict:
    """A sub-second estimate of the two main figures, for `make doctor` when nothing was measured:
    a float32 NumPy matrix multiply (NumPy's BLAS, not oneDNN) and a small triad, one thread each.
    An estimate, not the ceiling: scripts/roofline.py measures that."""
    size = 512
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    calls, elapsed = timed_calls(lambda: a @ a, seconds / 2, warmup=1)
    elements = triad_elements(min_mib=16) // 4  # the cache at most once over: a lower bound's worth
    return {"fp32_gflops": calls * matmul_cost(size, size, size).flops / elapsed / 1e9,
            "triad_gb_per_s": measure_triad(elements, seconds / 2), "threads": 1}


# Reading the measurements -------------------------------------------------------------------------

RESULTS_PREFIX = "roofline"  # results/roofline*.json: what scripts/roofline.py writes


def is_roofline(record: dict) -> bool:
    return isinstance(record.get("measurements"), dict) and "ceilings" in record["measurements"]


def last_measurement(folder=None) -> dict | None:
    """The newest record scripts/roofline.py wrote in the results folder (any layout), or None."""
    from .results import all_results

    found = [r for r in all_results(folder) if is_roofline(r)]
    return max(found, key=lambda r: r["machine"]["timestamp"]) if found else None


def roofs(records: list[dict]) -> dict:
    """The roofs from one or more roofline records (e.g. one per rank x thread layout): for each
    precision the best aggregate GFLOP/s any layout reached, and the best aggregate bandwidth."""
    found: dict[str, float] = {}
    for record in records:
        m = record["measurements"]
        for precision, ceiling in m["ceilings"].items():
            found[precision] = max(found.get(precision, 0.0), ceiling["aggregate_gflops"])
        found["bandwidth_gb_per_s"] = max(found.get("bandwidth_gb_per_s", 0.0),
                                          m["triad"]["aggregate_gb_per_s"])
    return found


def attainable(intensity: float, roof_gflops: float, bandwidth_gb_per_s: float) -> float:
    """The roofline: GFLOP/s a workload of `intensity` FLOPs/byte can reach at most."""
    return min(roof_gflops, intensity * bandwidth_gb_per_s)


def place(label: str, cost: Cost, achieved_gflops: float, found_roofs: dict, precision: str = "fp32") -> dict:
    """A workload on the roofline: its intensity, what it achieved, the roof that bounds it
    (memory bandwidth or the `precision` compute roof) and its fraction of that roof."""
    roof, bandwidth = found_roofs[precision], found_roofs["bandwidth_gb_per_s"]
    limit = attainable(cost.intensity, roof, bandwidth)
    bound = "memory bandwidth" if cost.intensity * bandwidth < roof else f"{precision.upper()} compute"
    return {"label": label, "intensity": cost.intensity, "achieved_gflops": achieved_gflops,
            "attainable_gflops": limit, "bound": bound, "fraction": achieved_gflops / limit,
            "precision": precision}


def verdict(point: dict) -> str:
    """One line on a placed workload (one fixed form, so tests/sanitize.cfg can mask the numbers)."""
    return (f"verdict: {point['label']}: {point['intensity']:.1f} FLOPs/byte, bound by "
            f"{point['bound']}; {point['achieved_gflops']:.1f} GFLOP/s is {point['fraction']:.0%} of "
            f"the {point['attainable_gflops']:.0f} GFLOP/s that roof allows here")


def nominal_gflops(measurements: dict) -> float | None:
    """The computed FP32 figure a results file carries: `nominal_fp32_gflops` (written since the
    microarchitecture table), or `peak_fp32_gflops` in files written before (computed assuming two
    512-bit FMA units: read it as the computed figure it is)."""
    return measurements.get("nominal_fp32_gflops", measurements.get("peak_fp32_gflops"))


def fp32_ceiling(folder=None) -> float | None:
    """The measured FP32 ceiling (GFLOP/s) of the newest roofline record, or None."""
    found = last_measurement(folder)
    return roofs([found])["fp32"] if found else None


def ceiling_lines(records: list[dict]) -> list[str]:
    """What each roofline record measured, one line per layout, with the nominal figure beside it."""
    lines = []
    for record in records:
        m, machine = record["measurements"], record["machine"]
        layout = f"{machine['ranks']} rank(s) x {machine['threads_per_rank']} thread(s)"
        parts = [f"{p.upper()} {c['aggregate_gflops']:.0f} GFLOP/s" for p, c in m["ceilings"].items()]
        parts.append(f"triad {m['triad']['aggregate_gb_per_s']:.1f} GB/s")
        lines.append(f"{layout}: " + ", ".join(parts))
    nominal = records[-1]["measurements"].get("nominal") if records else None
    if nominal and nominal["fp32_gflops"]:
        lines.append(f"nominal FP32 figure {nominal['fp32_gflops']:.0f} GFLOP/s ({nominal['how']})")
    elif nominal:
        lines.append(f"nominal FP32 figure: unknown ({nominal['how']})")
    return lines


INFERENCE_BATCH = 256  # dlscale.cnn.evaluate's batch


def course_workloads(cores: int, tf_bench_run: dict | None = None) -> tuple[list[dict], list[str]]:
    """The course's workloads with their cost and achieved GFLOP/s, from the results files the
    notebooks wrote: ([{"label", "cost", "achieved_gflops"}], [a note for each file not there yet]).

    `tf_bench_run` is one optimized tf_bench run's measurements (notebook 06, section 1)."""
    from . import experiments
    from .results import read_results

    found, missing = [], []

    def measured(name: str, notebook: str) -> dict | None:
        try:
            return read_results(name)["measurements"]
        except FileNotFoundError:
            missing.append(f"{name}: not measured yet (notebook {notebook})")
            return None

    layouts = [m for run in experiments.mpi_layouts(cores) if (m := measured(run.name("00_layout"), "00"))]
    if layouts:
        best = max(layouts, key=lambda m: m["gflops"])
        size = best["matrix_size"]
        found.append({"label": f"NumPy matmul {size}x{size} (00)", "cost": matmul_cost(size, size, size),
                      "achieved_gflops": best["gflops"]})
    cnn = measured("03_onednn_on", "03")
    if cnn:
        from .cnn import build_model

        model = build_model()
        forward = keras_model_cost(model, cnn["batch_size"])
        found.append({"label": "MNIST CNN training (03)", "achieved_gflops": cnn["train_gflops"],
                      "cost": training_cost(forward, model.count_params())})
        found.append({"label": "MNIST CNN inference (03)", "achieved_gflops": cnn["inference_gflops"],
                      "cost": keras_model_cost(model, INFERENCE_BATCH)})
    if tf_bench_run:
        import tensorflow as tf

        side = tf_bench_run["image_size"]
        resnet = tf.keras.applications.ResNet50(weights=None, input_shape=(side, side, 3))
        forward = keras_model_cost(resnet, tf_bench_run["batch_size"])
        found.append({"label": "ResNet-50 training (06)", "achieved_gflops": tf_bench_run["train_gflops"],
                      "cost": training_cost(forward, resnet.count_params())})
    kmeans = measured(experiments.kmeans_layouts(cores)[0].name("05_layout"), "05")
    if kmeans:
        cost = kmeans_cost(kmeans["pixels"], kmeans["colors"])
        achieved = kmeans["iterations"] * cost.flops / kmeans["seconds"]["iterate"] / 1e9
        found.append({"label": "K-Means distances (05)", "cost": cost, "achieved_gflops": achieved})
    return found, missing
