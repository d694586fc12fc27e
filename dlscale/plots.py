"""Every figure the course draws, in one place: notebooks call one function, and titles are
computed from the measurements they show (the learner's CPU is not the reference machine).

Each function takes results (the `measurements` of a results record, or a list of them) and
returns the matplotlib Figure (or Axes) it drew, so a notebook cell reads `plots.x(...)`.
"""

from __future__ import annotations

import numpy as np

BLUE, GREY, RED = "#0071c5", "#7f7f7f", "#c50000"


def _figure(*shape, **options):
    import matplotlib.pyplot as plt

    return plt.subplots(*shape, **options)


def bar_chart(labels, values, *, ylabel: str, title: str, ax=None, annotate: str = "{:.2f}"):
    """The course's bar chart of measured values, each bar labelled with its number."""
    if ax is None:
        _, ax = _figure(figsize=(7, 3.5))
    bars = ax.bar([str(label) for label in labels], values, color=BLUE)
    ax.bar_label(bars, labels=[annotate.format(v) for v in values], padding=2)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(y=0.15)
    ax.figure.tight_layout()
    return ax


def _ratio_words(faster: float, slower: float, what: str) -> str:
    ratio = faster / slower
    return f"{what} {ratio:.2f}x" if ratio >= 1 else f"{what} {ratio:.2f}x (slower)"


# Notebook 00 ------------------------------------------------------------------------------------

def layouts(runs: dict[str, dict]):
    """{"ranks x threads": 00_mpi_hello measurements}: GFLOP/s and time to the slowest rank."""
    fig, (left, right) = _figure(1, 2, figsize=(11, 3.8))
    gflops = [m["gflops"] for m in runs.values()]
    best = list(runs)[int(np.argmax(gflops))]
    bar_chart(runs, gflops, ax=left, annotate="{:.0f}", ylabel="GFLOP/s (higher is better)",
              title=f"Same work, different layouts: {best} was fastest")
    bar_chart(runs, [m["wall_seconds"] for m in runs.values()], ax=right, ylabel="seconds (lower is better)",
              title="Time until the slowest rank finished")
    return fig


# Notebook 01 ------------------------------------------------------------------------------------

def number_formats(rows: list[tuple]):
    """Dynamic range of FP32 / FP16 / BF16 / INT8 and their rounding near 1.

    rows: (name, bits, largest, smallest > 0, epsilon), the floating-point formats first.
    """
    import ml_dtypes

    fig, (ranges, grid) = _figure(1, 2, figsize=(14, 3.6))
    shown = rows[:4]
    for i, (_, _, largest, smallest, _) in enumerate(shown):
        ranges.barh(i, np.log10(largest) - np.log10(smallest), left=np.log10(smallest), color=BLUE)
        ranges.text(np.log10(largest) + 1, i, f"{smallest:.1e} to {largest:.1e}", va="center", fontsize=8)
    ranges.set(yticks=range(len(shown)), yticklabels=[r[0] for r in shown], xlabel="log10 of magnitude",
               title="Dynamic range (positive normal values)", xlim=(-45, 60))
    values = np.linspace(0.9, 1.1, 2001)
    for name, dtype in (("FP16", np.float16), ("BF16", ml_dtypes.bfloat16)):
        grid.plot(values, values.astype(dtype).astype(np.float64), label=f"{name} rounding of x")
    grid.plot(values, np.round(values * 20) / 20, label="INT8 with scale 1/20")
    grid.set(xlabel="x", ylabel="stored value", title="Representable values near 1")
    grid.legend()
    return fig


def int8_speed(runs: dict[str, dict]):
    """{setting label: int8_inference measurements}: FP32 and INT8 images/s, and their ratio."""
    fig, (speed, ratio) = _figure(1, 2, figsize=(15, 4), gridspec_kw={"width_ratios": [2, 1]})
    positions = np.arange(len(runs))
    for offset, kind, colour in ((-0.2, "fp32", GREY), (0.2, "int8", BLUE)):
        speed.bar(positions + offset, [m["images_per_second_total"][kind] for m in runs.values()], 0.4,
                  label=kind.upper(), color=colour)
    speed.set(xticks=positions, xticklabels=list(runs), ylabel="images/s",
              title="TFLite inference, MNIST CNN")
    speed.legend()
    ratios = [m["int8_speedup"] for m in runs.values()]
    ratio.bar(list(runs), ratios, color=BLUE)
    ratio.axhline(1, color="black", linewidth=0.8)
    ratio.set(ylabel="INT8 / FP32",
              title=f"INT8 / FP32 from {min(ratios):.2f}x to {max(ratios):.2f}x (above 1: INT8 faster)")
    ratio.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


# Notebooks 02 and 03 ----------------------------------------------------------------------------

def kernels_compared(off: dict, on: dict, *, ceiling: float | None = None):
    """TensorFlow's own kernels (off) against oneDNN's (on): training and inference images/s, and
    with `ceiling` (the measured FP32 matrix-multiply ceiling, GFLOP/s) the training GFLOP/s
    against it, the nominal figure beside it where the CPU's FMA layout is known."""
    from .roofline import nominal_gflops

    labels = ["TensorFlow kernels", "oneDNN"]
    fig, axes = _figure(1, 3 if ceiling else 2, figsize=(15 if ceiling else 12, 3.8))
    for ax, kind, what in ((axes[0], "train_images_per_second", "Training"),
                           (axes[1], "inference_images_per_second", "Inference")):
        bar_chart(labels, [off[kind], on[kind]], ax=ax, annotate="{:.0f}", ylabel="images/s",
                  title=f"{what}: {_ratio_words(on[kind], off[kind], 'oneDNN')}")
    if ceiling:
        fraction = on["train_gflops"] / ceiling
        bar_chart(labels, [off["train_gflops"], on["train_gflops"]], ax=axes[2], annotate="{:.0f}",
                  ylabel="GFLOP/s", title=f"Training: oneDNN at {fraction:.0%} of the measured ceiling")
        axes[2].axhline(ceiling, color="red", linestyle="--")
        axes[2].text(0.5, ceiling, f"measured ceiling {ceiling:.0f}", color="red", ha="center", va="bottom")
        nominal = nominal_gflops(on)
        if nominal:
            axes[2].axhline(nominal, color=GREY, linestyle=":")
            axes[2].text(0.5, nominal, f"nominal (computed) {nominal:.0f}", color=GREY, ha="center",
                         va="bottom")
    return fig


def graph_edges(graph) -> tuple[list, list[tuple[str, str, str]]]:
    """(operations, [(producer, consumer, tensor name)]) of a tf.Graph or a FuncGraph."""
    operations = graph.get_operations()
    edges = [(tensor.op.name, op.name, tensor.name) for op in operations for tensor in op.inputs]
    return operations, edges


def tf_graph(graph, title: str = ""):
    """A TensorFlow graph: each operation in a box (name and type), tensors as arrows, operations
    placed in columns by their distance from the inputs."""
    fig, ax = _figure(figsize=(12, 3.5))
    operations, edges = graph_edges(graph)
    depth: dict[str, int] = {}
    for op in operations:  # get_operations() lists producers before consumers
        depth[op.name] = 1 + max((depth[t.op.name] for t in op.inputs), default=-1)
    rows: dict[int, int] = {}
    where = {}
    for op in operations:
        column = depth[op.name]
        where[op.name] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    for producer, consumer, tensor in edges:
        (x0, y0), (x1, y1) = where[producer], where[consumer]
        ax.annotate("", (x1 - 0.32, -y1), (x0 + 0.32, -y0),
                    arrowprops=dict(arrowstyle="->", color=BLUE, lw=1.2))
        ax.text((x0 + x1) / 2, -(y0 + y1) / 2 + 0.12, tensor.split("/")[-1], fontsize=7, ha="center",
                color=BLUE)
    for op in operations:
        x, y = where[op.name]
        ax.text(x, -y, f"{op.name}\n{op.type}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="black"))
    ax.set(xlim=(-0.6, max(depth.values()) + 0.6), ylim=(-max(rows.values()) + 0.4, 0.6), title=title)
    ax.axis("off")
    return fig


def thread_sweep(grid: np.ndarray, intra: list[int], inter: list[int], compared: dict[str, float]):
    """Training images/s over intra-op x inter-op threads (a heat map), beside other layouts."""
    fig, (heat, compare) = _figure(1, 2, figsize=(13, 4))
    image = heat.imshow(grid, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        heat.text(j, i, f"{value:.0f}", ha="center", va="center",
                  color="white" if value < grid.mean() else "black")
    heat.set(xticks=range(len(inter)), xticklabels=inter, yticks=range(len(intra)), yticklabels=intra,
             xlabel="inter-op threads", ylabel="intra-op threads",  # the winner is exercise 3's to find
             title=f"Training images/s, 1 rank: {grid.min():.0f}-{grid.max():.0f} in {grid.size} settings")
    fig.colorbar(image, ax=heat)
    bar_chart(list(compared), list(compared.values()), ax=compare, annotate="{:.0f}",
              ylabel="images/s (all ranks)", title="Ranks vs threads; OpenMP's variable")
    compare.tick_params(axis="x", labelrotation=15)
    return fig


def training_curves(train: dict):
    """cnn_mnist measurements: loss and accuracy per epoch (training and test), confusion matrix."""
    history = train["history"]
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (curve, accuracy, matrix) = _figure(1, 3, figsize=(15, 4))
    for ax, key, what in ((curve, "loss", "Learning curve"), (accuracy, "accuracy", "Accuracy")):
        ax.plot(epochs, history[key], "o-", label="training")
        ax.plot(epochs, history[f"val_{key}"], "s-", label="test")
        ax.set(xlabel="epoch", ylabel=key, title=what, xticks=epochs)
        ax.legend()
    confusion = np.array(train["confusion_matrix"])
    matrix.imshow(np.log1p(confusion), cmap="Blues")
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            matrix.text(j, i, n, ha="center", va="center", fontsize=7, color="white" if i == j else "black")
    matrix.set(xlabel="predicted digit", ylabel="true digit", xticks=range(10), yticks=range(10),
               title=f"Confusion matrix: {np.trace(confusion) / confusion.sum():.2%} right")
    fig.tight_layout()
    return fig


def misclassified(train: dict, data):
    """The first test digits the network got wrong, with what it read."""
    fig, axes = _figure(2, 8, figsize=(12, 3.4))
    for axis, (index, guess) in zip(axes.flat, train["misclassified"], strict=False):
        axis.imshow(data.x_test[index], cmap="gray_r")
        axis.set_title(f"{data.y_test[index]} read as {guess}", fontsize=9)
    for axis in axes.flat:
        axis.axis("off")
    fig.suptitle(f"Test digits the network got wrong (the first {min(16, len(train['misclassified']))})")
    return fig


# Notebook 04 ------------------------------------------------------------------------------------

def allreduce_patterns(n: int = 4):
    """A parameter server (every worker talks to one server) beside MPI's allreduce among peers."""
    fig, (left, right) = _figure(1, 2, figsize=(12, 4))
    server = np.array([0, 0.7])
    workers = np.c_[np.linspace(-0.9, 0.9, n), np.full(n, -0.6)]
    for w in workers:
        left.annotate("", server - [0, 0.1], w + [0, 0.1], arrowprops=dict(arrowstyle="<->", color=RED, lw=2))
    boxed = dict(ha="center", va="center")
    left.text(*server, "parameter server", **boxed, bbox=dict(boxstyle="round", fc="white", ec=RED))
    for i, w in enumerate(workers):
        left.text(*w, f"worker {i}", **boxed, bbox=dict(boxstyle="round", fc="white", ec=RED))
    left.set_title("Parameter server: every worker talks to one server")
    angles = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    xy = np.c_[np.cos(angles), np.sin(angles)]
    for i in range(n):
        right.annotate("", xy[(i + 1) % n] * 0.8, xy[i] * 0.8,
                       arrowprops=dict(arrowstyle="->", color=BLUE, lw=2))
        right.text(*(xy[i] * 0.8), f"rank {i}", **boxed, bbox=dict(boxstyle="round", fc="white", ec=BLUE))
    right.set_title("Ring-allreduce: each rank talks to its neighbour")
    for axis in (left, right):
        axis.set(xlim=(-1.3, 1.3), ylim=(-1.1, 1.1), aspect="equal")
        axis.axis("off")
    return fig


def scaling(runs: dict[str, dict]):
    """{"ranks x threads": cnn_mnist_hvd measurements}: epoch time, throughput, per rank, accuracy."""
    fig, axes = _figure(1, 4, figsize=(17, 3.8))
    rates = [m["train_images_per_second"] for m in runs.values()]
    best = list(runs)[int(np.argmax(rates))]
    bar_chart(runs, [min(m["epoch_seconds"]) for m in runs.values()], ax=axes[0], ylabel="seconds",
              title="Time per epoch (ranks x threads)")
    bar_chart(runs, rates, ax=axes[1], annotate="{:.0f}", ylabel="images/s",
              title=f"Throughput, all ranks: {best} fastest")
    bar_chart(runs, [m["train_images_per_second_per_rank"] for m in runs.values()], ax=axes[2],
              annotate="{:.0f}", ylabel="images/s", title="Throughput per rank")
    bar_chart(runs, [m["test_accuracy"] for m in runs.values()], ax=axes[3], annotate="{:.3f}",
              ylabel="test accuracy", title="Accuracy after the same images")
    return fig


def learning_rates(runs: dict[str, dict]):
    """{label: cnn_mnist_hvd measurements}: training loss per epoch for each learning-rate choice."""
    fig, axis = _figure(figsize=(7, 3.8))
    for label, m in runs.items():
        axis.plot(range(1, len(m["history"]["loss"]) + 1), m["history"]["loss"], "o-",
                  label=f"{label}: test accuracy {m['test_accuracy']:.3f}")
    ranks = {len(m["checkpoints_saved_per_rank"]) for m in runs.values()}
    axis.set(xlabel="epoch", ylabel="training loss (averaged over ranks)",
             title=f"Learning-rate scaling on {', '.join(map(str, sorted(ranks)))} ranks")
    axis.legend()
    return fig


# Notebook 05 ------------------------------------------------------------------------------------

def colour_cube(image: np.ndarray, name: str, sample: int = 4000):
    """A photo beside `sample` of its pixels as points in RGB space."""
    import matplotlib.pyplot as plt

    pixels = image.reshape(-1, 3)
    chosen = pixels[np.random.default_rng(0).choice(len(pixels), min(sample, len(pixels)), replace=False)]
    fig = plt.figure(figsize=(12, 4.5))
    photo = fig.add_subplot(1, 2, 1)
    photo.imshow(image)
    photo.set(title=name)
    photo.axis("off")
    cube = fig.add_subplot(1, 2, 2, projection="3d")
    cube.scatter(*chosen.T, c=chosen / 255, s=3)
    cube.set(xlabel="red", ylabel="green", zlabel="blue", title=f"{len(chosen):,} of its pixels in RGB space")
    return fig


def before_after(original: np.ndarray, quantized: np.ndarray, run: dict):
    """The photo a quantize_colors run worked on, and what it made of it."""
    fig, (left, right) = _figure(1, 2, figsize=(12, 4.2))
    left.imshow(original)
    left.set_title(f"original: {run['distinct_colors_before']:,} colours")
    right.imshow(quantized)
    right.set_title(f"quantized: {run['colors']} colours, PSNR {run['psnr_db']:.1f} dB")
    for axis in (left, right):
        axis.axis("off")
    return fig


def palettes(runs: dict[int, dict]):
    """{colours: quantize_colors measurements}: each quantized picture, then PSNR and time."""
    from PIL import Image

    fig, axes = _figure(2, len(runs), figsize=(18, 6.5), gridspec_kw={"height_ratios": [1, 1.1]})
    for axis, (k, m) in zip(axes[0], runs.items(), strict=True):
        axis.imshow(Image.open(m["output"]))
        axis.set_title(f"{k} colours")
        axis.axis("off")
    for axis in axes[1]:
        axis.remove()
    quality, timing = fig.add_subplot(2, 2, 3), fig.add_subplot(2, 2, 4)
    colours = list(runs)
    psnr = [runs[k]["psnr_db"] for k in colours]
    gains = np.diff(psnr) / np.diff(np.log2(colours))  # dB per doubling of the colours
    quality.plot(colours, psnr, "o-")
    quality.set(xscale="log", xticks=colours, xticklabels=colours, xlabel="colours", ylabel="PSNR (dB)",
                title=f"Doubling the colours added {gains[0]:.1f} dB at first, {gains[-1]:.1f} dB at the end")
    timing.plot(colours, [runs[k]["seconds"]["iterate"] for k in colours], "o-")
    ranks = next(iter(runs.values()))["per_rank"]
    timing.set(xscale="log", xticks=colours, xticklabels=colours, xlabel="colours", ylabel="seconds",
               title=f"K-Means iterations on {len(ranks)} rank(s)")
    fig.tight_layout()
    return fig


def kmeans_layouts(runs: dict[str, dict]):
    """{"ranks x threads": quantize_colors measurements}: time per phase, and daal4py against
    scikit-learn (the first run, one rank, carries scikit-learn's time from the same start)."""
    fig, (stack, versus) = _figure(1, 2, figsize=(13, 4))
    phases = list(next(iter(runs.values()))["seconds"])
    bottom = np.zeros(len(runs))
    for phase in phases:
        values = np.array([m["seconds"][phase] for m in runs.values()])
        stack.bar(list(runs), values, bottom=bottom, label=phase)
        bottom += values
    single_label, single = next(iter(runs.items()))
    stack.set(ylabel="seconds (slowest rank)",
              title=f"{single['pixels']:,} pixels, {single['colors']} colours: time per phase")
    stack.legend()
    daal, sklearn = single["seconds"]["iterate"], single["sklearn"]["seconds"]
    bar_chart(["daal4py", "scikit-learn"], [daal, sklearn], ax=versus, ylabel="seconds",
              title=f"K-Means, same start, {single['iterations']} iterations, {single_label}: "
                    + ("daal4py" if daal < sklearn else "scikit-learn") + " faster")
    return fig


def kmeans_growth(by_pixels: list[dict], by_colours: dict[int, dict]):
    """K-Means time against pixels (tiled photos) and against colours."""
    fig, (pixels, colours) = _figure(1, 2, figsize=(12, 3.8))
    pixels.plot([m["pixels"] / 1e6 for m in by_pixels], [m["seconds"]["iterate"] for m in by_pixels], "o-")
    pixels.set(xlabel="million pixels", ylabel="seconds",
               title=f"K-Means time against pixels ({by_pixels[0]['colors']} colours)")
    colours.plot(list(by_colours), [m["seconds"]["iterate"] for m in by_colours.values()], "o-")
    colours.set(xlabel="colours", ylabel="seconds", title="... and against colours (1 image)")
    for axis in (pixels, colours):
        axis.set_ylim(bottom=0)
    return fig


# Notebook 06 and make bench ---------------------------------------------------------------------

def _tf_bench_panel(ax, summary: dict, spread: bool = True) -> None:
    """ResNet-50 images/s here (median, and the runs' spread) beside the workshop's published ones."""
    workshop = summary["workshop"]
    labels = ["workshop\ndefault", "workshop\noptimized", *[f"here\n{n}" for n in summary["rows"]]]
    values = [workshop["default"], workshop["optimized"],
              *[row["median"] for row in summary["rows"].values()]]
    bars = ax.bar(labels, values, color=["#999999"] * 2 + [BLUE] * len(summary["rows"]))
    ax.bar_label(bars, fmt="%.2f", padding=2)
    if spread:
        for x, row in enumerate(summary["rows"].values(), start=2):
            ax.plot([x, x], [row["lowest"], row["highest"]], color="black", lw=2)
    batch = next(iter(summary["rows"].values()))["batch_size"]
    ax.set(ylabel="images/s", title=f"ResNet-50 training, batch {batch} per rank: optimized / default "
           f"{summary['optimized_over_default']:.2f}x here, {workshop['ratio']:.2f}x in the workshop")
    ax.margins(y=0.15)


def tf_bench(summary: dict, ceiling: float | None = None):
    """The tf_bench table as a figure: images/s beside the workshop's, and each configuration's
    share of the measured FP32 ceiling (`ceiling`, GFLOP/s; without one, that panel is left out)."""
    fig, axes = _figure(1, 2 if ceiling else 1, figsize=(14 if ceiling else 8, 4), squeeze=False)
    _tf_bench_panel(axes[0][0], summary)
    if ceiling:
        share = axes[0][1]
        fractions = {name: row["train_gflops"] / ceiling for name, row in summary["rows"].items()}
        bars = share.bar(list(fractions), [100 * f for f in fractions.values()], color=BLUE)
        share.bar_label(bars, fmt="%.0f%%", padding=2)
        top = max(100, *[100 * f for f in fractions.values()])
        share.set(ylabel="% of the measured FP32 ceiling", ylim=(0, top),
                  title=f"achieved / measured ceiling ({ceiling:.0f} GFLOP/s here)")
    fig.tight_layout()
    return fig


def collectives(record: dict, marks: dict[str, int] | None = None, label: str = "{} ranks"):
    """One panel per collective of an IMB sweep: time against message size, the latency-bound
    region shaded, and `marks` ({label: bytes}, such as a model's gradient size) as lines.
    `label` names each curve from its key in the tables (the number of ranks, or a layout)."""
    tables = record["tables"]
    fig, axes = _figure(1, len(tables), figsize=(16, 4), sharey=True)
    for ax, (collective, by_ranks) in zip(axes, tables.items(), strict=True):
        for processes, rows in by_ranks.items():
            ax.loglog([r["bytes"] for r in rows], [r["t_avg_us"] for r in rows], marker=".",
                      label=label.format(processes))
        fits = record["fits"][collective].values()
        n_half = max(fit["n_half_bytes"] or record["max_bytes"] for fit in fits)  # None: all latency-bound
        ax.axvspan(1, n_half, color="#ffd966", alpha=0.35, lw=0)
        ax.text(1.5, 0.92, "latency-bound", transform=ax.get_xaxis_transform(), fontsize=8)
        ax.text(0.97, 0.03, "bandwidth-bound", transform=ax.transAxes, ha="right", fontsize=8)
        for label, size in (marks or {}).items():
            ax.axvline(size, color=RED, ls="--", lw=1)
            ax.text(size, 0.5, f" {label}", rotation=90, color=RED, fontsize=8,
                    transform=ax.get_xaxis_transform(), va="center")
        ax.set(title=collective, xlabel="message size (bytes)")
        ax.legend(loc="upper left", bbox_to_anchor=(0, 0.88), fontsize=8)
    axes[0].set_ylabel("time per call (microseconds)")
    fig.tight_layout()
    return fig


def fusion(record: dict):
    """Training throughput against each Horovod knob of a fusion sweep, the default marked."""
    defaults = record["defaults"]
    fig, axes = _figure(1, 2, figsize=(12, 3.6), sharey=True)
    for ax, knob, unit, scale in ((axes[0], "HOROVOD_FUSION_THRESHOLD", "MiB", 2**20),
                                  (axes[1], "HOROVOD_CYCLE_TIME", "ms", 1)):
        other = next(k for k in defaults if k != knob)
        runs = sorted((r for r in record["runs"] if r[other] == defaults[other]), key=lambda r: r[knob])
        bars = ax.bar([f"{r[knob] / scale:g}" for r in runs], [r["train_images_per_second"] for r in runs],
                      color=[BLUE if r[knob] != defaults[knob] else "#00a3e0" for r in runs])
        ax.bar_label(bars, fmt="%.0f", padding=2)
        ax.set(xlabel=f"{knob} ({unit}; light bar = default)", title=f"{knob} varied")
        ax.margins(y=0.15)
    axes[0].set_ylabel(f"training images/s, {record['ranks']} ranks")
    fig.tight_layout()
    return fig


def bench_summary(record: dict):
    """A `make bench` record: ResNet-50 beside the workshop's, and every side-by-side speed-up."""
    from .bench import speedups as ratios

    measurements = record["measurements"]
    speedups = ratios(measurements)
    panels = ("tf_bench" in measurements) + bool(speedups)
    fig, axes = _figure(1, max(1, panels), figsize=(14 if panels > 1 else 8, 4.2), squeeze=False)
    axes = list(axes[0])
    if "tf_bench" in measurements:
        _tf_bench_panel(axes.pop(0), measurements["tf_bench"]["summary"], spread=False)
    if speedups:
        ax = axes.pop(0)
        bars = ax.barh(list(speedups), list(speedups.values()), color=BLUE)
        ax.bar_label(bars, fmt="%.2fx", padding=2)
        ax.axvline(1, color="black", lw=0.8)
        ax.invert_yaxis()
        ax.set(xlabel="speed-up, measured side by side in this run",
               title="What each optimization bought here")
        ax.margins(x=0.15)
    cpu = record["machine"]["cpu"]
    fig.suptitle(f"{record['machine']['hostname']}: {cpu['model']}, {cpu['physical_cores']} cores"
                 + (" (quick mode)" if record["machine"]["quick_mode"] else ""), fontsize=10)
    fig.tight_layout()
    return fig


def bench_comparison(records: dict[str, dict]):
    """The side-by-side speed-ups of several machines (or runs), grouped by optimization.

    records: {path: make bench record}, as bench.benchmark_records() finds them.
    """
    from .bench import speedups as ratios

    speedups = {path: ratios(record["measurements"]) for path, record in records.items()}
    labels = list(dict.fromkeys(label for found in speedups.values() for label in found))
    fig, ax = _figure(figsize=(11, 1.5 + 0.5 * len(labels) * max(1, len(records)) ** 0.5))
    height = 0.8 / max(1, len(records))
    for number, (path, found) in enumerate(speedups.items()):
        machine = records[path]["machine"]
        name = (f"{machine['hostname']}: {machine['cpu']['model']}, {machine['cpu']['physical_cores']} cores"
                f"{' (quick)' if machine['quick_mode'] else ''}"
                f"{' [reference]' if path.startswith('benchmarks/reference/') else ''}")
        values = [found.get(label, np.nan) for label in labels]
        bars = ax.barh(np.arange(len(labels)) + number * height, values, height=height, label=name)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.2f}x" for v in values], padding=2, fontsize=8)
    ax.set_yticks(np.arange(len(labels)) + height * (len(records) - 1) / 2, labels)
    ax.axvline(1, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set(xlabel="speed-up, measured side by side on each machine",
           title="The same optimizations, machine by machine")
    ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.12)
    fig.tight_layout()
    return fig


def roofline(found_roofs: dict, points: list[dict], machine: str = ""):
    """The roofline: log-log GFLOP/s against FLOPs per byte, the bandwidth slope and the flat
    FP32 / BF16 / INT8 roofs (as measured), and each workload (roofline.place) as a labelled point
    with its fraction of the roof that bounds it."""
    fig, ax = _figure(figsize=(10, 5.5))
    bandwidth = found_roofs["bandwidth_gb_per_s"]
    flat = {p: found_roofs[p] for p in ("fp32", "bf16", "int8") if p in found_roofs}
    low = min([0.05, *[pt["intensity"] / 2 for pt in points]])
    high = max([4 * max(flat.values()) / bandwidth, *[pt["intensity"] * 2 for pt in points]])
    x = np.geomspace(low, high, 200)
    styles = {"fp32": ("-", BLUE), "bf16": ("--", "#00a3e0"), "int8": (":", RED)}
    for precision, roof in flat.items():
        style, colour = styles[precision]
        ax.loglog(x, np.minimum(roof, x * bandwidth), style, color=colour, lw=2,
                  label=f"{precision.upper()} roof {roof:.0f} GFLOP/s")
    ax.loglog(x, x * bandwidth, color=GREY, lw=0.8, alpha=0.6)
    ax.text(x[10], x[10] * bandwidth * 1.3, f"memory {bandwidth:.1f} GB/s", color=GREY, rotation=30,
            fontsize=8)
    # Points are numbered beside the marker and named in a list in the empty upper left: points
    # close together would make their labels collide.
    named = []
    for k, pt in enumerate(sorted(points, key=lambda pt: pt["intensity"]), start=1):
        ax.loglog(pt["intensity"], pt["achieved_gflops"], "o", color="black")
        ax.annotate(str(k), (pt["intensity"], pt["achieved_gflops"]), textcoords="offset points",
                    xytext=(4, -11), fontsize=8, fontweight="bold")
        named.append(f"{k}  {pt['label']}: {pt['fraction']:.0%} of its {pt['bound']} roof")
    if named:
        ax.text(0.02, 0.97, "\n".join(named), transform=ax.transAxes, va="top", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": GREY, "alpha": 0.9})
    ax.set(xlabel="arithmetic intensity (FLOPs per byte moved)", ylabel="GFLOP/s (measured)")
    ridge = flat.get("fp32", max(flat.values())) / bandwidth
    best = max(points, key=lambda pt: pt["fraction"]) if points else None
    title = f"{machine}: FP32 ridge at {ridge:.0f} FLOPs/byte" + (
        f"; closest to its roof: {best['label']} ({best['fraction']:.0%})" if best else "")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    return fig


# Notebook 07 ------------------------------------------------------------------------------------

def elastic_timeline(measurements: dict):
    """An elastic run disturbed on purpose: workers over time, the job's step counter (a rollback
    shows as a step back), and throughput before, during and after the failure."""
    events = sorted(measurements["timeline"], key=lambda e: e["t"])
    summary = measurements["summary"]
    t0 = events[0]["t"]
    batches = [e for e in events if e["event"] == "batch"]
    fig, axes = _figure(1, 3, figsize=(17, 3.8), gridspec_kw={"width_ratios": [3, 3, 2]})
    hosts = list(dict.fromkeys(e["host"] for e in batches))
    colours = dict(zip(hosts, (BLUE, "#e8a317", "#2ca02c", GREY), strict=False))
    for host in hosts:
        mine = [e for e in batches if e["host"] == host]
        axes[0].scatter([e["t"] - t0 for e in mine], [hosts.index(host)] * len(mine), s=6,
                        color=colours[host], label=host)
        axes[1].scatter([e["t"] - t0 for e in mine], [e["steps_done"] for e in mine], s=6,
                        color=colours[host], label=f"worker on {host}")
    axes[0].set_yticks(range(len(hosts)), hosts)
    axes[0].set(xlabel="seconds", title="Which host trained when (a dot per step)")
    axes[0].set_ylim(-0.6, len(hosts) - 0.4)
    commits = [e for e in events if e["event"] == "commit"]
    axes[1].scatter([e["t"] - t0 for e in commits], [e["steps_done"] for e in commits], marker="|",
                    s=80, color=RED, label="commit", zorder=3)
    for height, (event, style) in enumerate((("killed a worker", "-"), ("host added to discovery", "--"))):
        for e in (e for e in events if e["event"] == event):
            for ax in axes[:2]:
                ax.axvline(e["t"] - t0, color=RED, ls=style, lw=1)
            axes[0].text(e["t"] - t0, len(hosts) - 0.45 - 0.3 * height, f" {event} ({e['host']})", color=RED,
                         fontsize=8, va="top")
    title = "Steps of the job"
    if summary.get("resumed_at_step"):
        title += (f": killed after step {summary['killed_at_step']}, "
                  f"resumed at {summary['resumed_at_step']} ({summary['steps_repeated']} repeated)")
    axes[1].set(xlabel="seconds", ylabel="steps done", title=title)
    axes[1].legend(fontsize=8, loc="lower right")
    phases = {f"{name}\n{summary.get('workers_' + name)} worker(s)": summary.get(f"images_per_second_{name}")
              for name in ("before", "during", "after")}
    phases = {k: v for k, v in phases.items() if v}
    if phases:
        bar_chart(phases, list(phases.values()), ax=axes[2], annotate="{:.0f}", ylabel="images/s",
                  title="Training speed of the job (median step)")
    fig.tight_layout()
    return fig


def engines(runs: dict[str, dict]):
    """The same training with two engines at one layout: throughput, and accuracy after it."""
    fig, axes = _figure(1, 2, figsize=(11, 3.6))
    rates = {k: m["train_images_per_second"] for k, m in runs.items()}
    fast, slow = max(rates, key=rates.get), min(rates, key=rates.get)
    bar_chart(runs, list(rates.values()), ax=axes[0], annotate="{:.0f}", ylabel="training images/s",
              title=f"{fast}: {rates[fast] / rates[slow]:.2f}x {slow}" if fast != slow else "Throughput")
    bar_chart(runs, [m["test_accuracy"] for m in runs.values()], ax=axes[1], annotate="{:.3f}",
              ylabel="test accuracy", title="Accuracy after the same images")
    return fig
