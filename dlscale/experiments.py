"""The course's experiment grids, defined once: the notebooks and `make bench` launch the same runs.

    for run in experiments.mpi_layouts(cores):
        run.launch("00_layout")                    # mpirun ... --name 00_layout_ranks2_threads1
    measured = {run.label: run.results("00_layout") for run in experiments.mpi_layouts(cores)}

A Run knows its script, its layout (ranks x threads), its arguments and what it varies (`key`,
such as {"ranks": 2, "threads": 1}); a results name is made from a prefix and the key, and
summaries are keyed by the Run, never by parsing names back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cli import sized
from .launch import MPIRun, mpirun
from .results import read_results


@dataclass(frozen=True)
class Run:
    script: str
    ranks: int
    threads: int
    key: dict = field(hash=False)  # what this run varies: ranks, threads, batch size, oneDNN, ...
    label: str = ""  # how plots and tables name it
    args: tuple = ()
    genv: dict = field(default_factory=dict, hash=False)
    trains: bool = False  # a training script: give it its own, fresh checkpoint folder

    def name(self, prefix: str) -> str:
        return "_".join([prefix, *(f"{k.replace('_', '')}{_word(v)}" for k, v in self.key.items())])

    def launch(self, prefix: str, **options) -> MPIRun:
        """mpirun this run, its results in results/NAME.json (NAME from `prefix` and the key)."""
        name = self.name(prefix)
        own = ["--checkpoint-dir", f"checkpoints/{name}"] if self.trains else []  # in the output folder
        return mpirun(self.script, *self.args, *own, "--name", name, ranks=self.ranks, threads=self.threads,
                      genv=self.genv or None, **options)

    def results(self, prefix: str) -> dict:
        return read_results(self.name(prefix))["measurements"]


def _word(value) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def layouts(cores: int) -> list[tuple[int, int]]:
    """(ranks, threads per rank) at equal cores: one rank with every core, one rank per core, and
    two ranks per core (oversubscribed on purpose)."""
    return list(dict.fromkeys([(1, cores), (cores, 1), (2 * cores, 1)]))


def training_images() -> int:
    """Training images of the short scaling and oneDNN runs: enough for steady timings."""
    return sized(4000, 512)


def mpi_layouts(cores: int) -> list[Run]:
    """Notebook 00: the same matrix multiplies on 1 x 1 and the equal-core layouts."""
    return [Run("scripts/00_mpi_hello.py", r, t, {"ranks": r, "threads": t}, f"{r} x {t}")
            for r, t in dict.fromkeys([(1, 1), *layouts(cores)])]


def int8_settings(cores: int) -> list[Run]:
    """Notebook 01: INT8 vs FP32 at batch 1 and 32, on one thread and on every core."""
    return [Run("scripts/int8_inference.py", 1, t, {"batch_size": b, "threads": t},
                f"batch {b}, {t} thread(s)", ("--batch-size", b, "--threads", t))
            for b, t in dict.fromkeys([(1, 1), (1, cores), (32, 1), (32, cores)])]


def onednn_on_off(script: str, cores: int, *args) -> list[Run]:
    """TensorFlow's own kernels, then oneDNN's (TF_ENABLE_ONEDNN_OPTS is read when TensorFlow loads)."""
    return [Run(script, 1, cores, {"onednn": on}, "oneDNN" if on else "TensorFlow kernels", tuple(args),
                {"TF_ENABLE_ONEDNN_OPTS": int(on)}, trains="cnn_mnist" in script)
            for on in (False, True)]


def thread_sweep(cores: int, inter: tuple[int, ...] = (1, 2)) -> list[Run]:
    """Notebook 02: TensorFlow's intra-op x inter-op threads, one rank."""
    intra = sorted({1, max(1, cores // 2), cores, 2 * cores})
    return [Run("scripts/onednn_bench.py", 1, cores, {"intra": i, "inter": j}, f"intra {i}, inter {j}",
                ("--threads", i, "--inter-threads", j)) for i in intra for j in inter]


def onednn_threads(cores: int) -> list[Run]:
    """`make bench`'s entry for notebook 02: oneDNN off and on, intra-op threads (one inter-op
    thread), then one rank per core."""
    ranks = Run("scripts/onednn_bench.py", cores, 1, {"ranks": cores, "threads": 1}, f"{cores} ranks x 1",
                ("--threads", 1))
    return [*onednn_on_off("scripts/onednn_bench.py", cores), *thread_sweep(cores, inter=(1,)), ranks]


def cnn_onednn(cores: int) -> list[Run]:
    """Notebook 03: the MNIST CNN trained two epochs with TensorFlow's kernels, then oneDNN's."""
    return onednn_on_off("scripts/cnn_mnist.py", cores, "--fresh", "--epochs", 2,
                         "--train-images", training_images())


def horovod_scaling(cores: int) -> list[Run]:
    """Notebook 04: Horovod training at equal cores, ranks x threads."""
    return [Run("scripts/cnn_mnist_hvd.py", r, t, {"ranks": r, "threads": t}, f"{r} x {t}",
                ("--fresh", "--epochs", 2, "--train-images", training_images()), trains=True)
            for r, t in layouts(cores)]


ENGINES = {"horovod": ("Horovod", "scripts/cnn_mnist_hvd.py", ("--warmup-epochs", 0)),
           "tfdistribute": ("MultiWorkerMirroredStrategy", "scripts/cnn_mnist_mwms.py", ())}


def engines(cores: int) -> list[Run]:
    """Notebook 07: the same training with Horovod and with TensorFlow's own collectives, at one
    layout (2 ranks sharing the cores), alternated round by round so that both see the same
    machine; Horovod's learning-rate warm-up is off, as the strategy script has none."""
    threads = max(1, cores // 2)
    # The speed is each run's fastest epoch: at least two, so that one is past TensorFlow's start-up.
    sizes = ("--fresh", "--epochs", sized(3, 2), "--train-images", training_images())
    return [Run(script, 2, threads, {"engine": key, "round": i}, label, sizes + extra, trains=True)
            for i in range(1, sized(2, 1) + 1) for key, (label, script, extra) in ENGINES.items()]


def horovod_settings(cores: int) -> list[Run]:
    """Notebook 04's diagnostic: one rank per core with Horovod's and Intel MPI's defaults, then one
    setting changed at a time (Horovod's cycle time, Intel MPI waiting instead of polling,
    TensorFlow's inter-op threads; the script's default is 1), and one rank with every core as
    the reference, run first and last."""
    sizes = ("--fresh", "--epochs", sized(2, 1), "--train-images", sized(training_images(), 1024))
    script = "scripts/cnn_mnist_hvd.py"
    changed = [("default", "defaults", (), {}),
               ("cycle10", "HOROVOD_CYCLE_TIME=10 ms", (), {"HOROVOD_CYCLE_TIME": 10}),
               ("waitmode", "I_MPI_WAIT_MODE=1", (), {"I_MPI_WAIT_MODE": 1}),
               ("inter2", "2 inter-op threads", ("--inter-threads", 2), {})]
    reference = [Run(script, 1, cores, {"ranks": 1, "threads": cores, "setting": "reference", "run": i},
                     f"1 x {cores} (reference, run {i})", sizes, trains=True) for i in (1, 2)]
    return [reference[0],
            *(Run(script, cores, 1, {"ranks": cores, "threads": 1, "setting": key}, f"{cores} x 1, {label}",
                  sizes + args, genv, trains=True) for key, label, args, genv in changed),
            reference[1]]  # first and last: how far it moves is the noise of the comparison


def kmeans_scale() -> int:
    """Notebook 05: how many times the photo is tiled in each direction for the layout runs."""
    return sized(3, 1)


def kmeans_layouts(cores: int) -> list[Run]:
    """Notebook 05: K-Means at equal cores from the same start; the one-rank run also times
    scikit-learn from that start."""
    return [Run("scripts/quantize_colors.py", r, t, {"ranks": r, "threads": t}, f"{r} x {t}",
                ("--scale", kmeans_scale(), "--init", "sample", *(["--compare-sklearn"] if r == 1 else [])))
            for r, t in layouts(cores)]


def relative(measured: dict[str, dict], base: str, metric: str) -> dict[str, float]:
    """Each run's `metric` over the `base` run's, from {label: measurements} (an exercise's check)."""
    return {label: m[metric] / measured[base][metric] for label, m in measured.items()}


def best(runs: list[Run], prefix: str, metric: str) -> Run:
    """The run of a grid whose results have the highest `metric` (the check of an exercise)."""
    return max(runs, key=lambda run: run.results(prefix)[metric])


def _ranks_over_threads(ranks: Run, threads: Run, prefix: str) -> float:
    metric = "train_images_per_second"
    return ranks.results(prefix)[metric] / threads.results(prefix)[metric]


def ranks_versus_threads(cores: int, prediction: float | None = None) -> dict:
    """Notebook 04 against notebook 02: one rank per core over one rank with all cores as threads.

    Notebook 02's ranks each train their own copy and never exchange a byte; notebook 04's share
    one model through an allreduce per step. Prints both ratios and a verdict (one fixed form, so
    tests/sanitize.cfg can mask it); returns the ratios.
    """
    scaling = {(run.ranks, run.threads): run for run in horovod_scaling(cores)}
    ratios = {"04": _ranks_over_threads(scaling[(cores, 1)], scaling[(1, cores)], "04_scaling")}
    print(f"one rank per core, over one rank with {cores} threads: {ratios['04']:.2f}x "
          "in this notebook (one model, an allreduce per step)")
    sweep = {(run.key["intra"], run.key["inter"]): run for run in thread_sweep(cores)}
    try:
        independent = read_results("02_ranks")["measurements"]["train_images_per_second"]
        ratios["02"] = independent / sweep[(cores, 1)].results("02_sweep")["train_images_per_second"]
        print(f"{'':>50}{ratios['02']:.2f}x in notebook 02 (independent ranks, no allreduce)")
    except FileNotFoundError:
        print("notebook 02 has no results in this output folder yet: run it to compare")
    if prediction is not None:
        print(f"{'':>50}{prediction:.2f}x your prediction")
    gain = ("ranks beat threads here" if ratios["04"] > 1.05 else
            "threads beat ranks here" if ratios["04"] < 0.95 else "ranks and threads are level here")
    if "02" not in ratios:
        print(f"verdict: {gain}.")
    elif ratios["04"] < 0.9 * ratios["02"]:
        print(f"verdict: {gain}, and ranks gain less than in notebook 02: the difference is what "
              "exchanging the gradients costs (the allreduce, and ranks waiting for each other).")
    elif ratios["04"] > 1.1 * ratios["02"]:
        print(f"verdict: {gain}, and ranks gain more than in notebook 02: the two scripts time "
              "different work (02 a benchmark step, 04 whole epochs), so only their direction compares.")
    else:
        print(f"verdict: {gain}, as in notebook 02: the allreduce costs little at this model size "
              "and rank count.")
    return ratios


def roofline_layouts(cores: int) -> list[Run]:
    """Notebook 06: the ceilings of the layouts the course uses, one rank with every core as
    threads and one rank per core (the roof is the best of them)."""
    return [Run("scripts/roofline.py", r, t, {"ranks": r, "threads": t}, f"{r} x {t}")
            for r, t in dict.fromkeys([(1, cores), (cores, 1)])]


DLBOOST_SCRIPT = "scripts/dlboost_inference.py"


def dlboost_settings(cores: int) -> list[Run]:
    """Notebook 01's OpenVINO runs: one stream with every core, one stream of one thread, and one
    stream per core (multi-stream inference); each at batch 1 and 32, FP32, BF16 and INT8."""
    return [Run(DLBOOST_SCRIPT, r, t, {"streams": r, "threads": t}, f"{r} stream(s) x {t} thread(s)")
            for r, t in dict.fromkeys([(1, cores), (1, 1), (cores, 1)])]


def dlboost_isa_cap(cores: int) -> Run | None:
    """The same FP32 and INT8 models with every core, DL Boost taken away: ONEDNN_MAX_CPU_ISA set to
    the level just below this CPU's VNNI (None on a CPU without VNNI: nothing to take away)."""
    from .cpu import isa_cap_below_dl_boost

    cap = isa_cap_below_dl_boost()
    if cap is None:
        return None
    return Run(DLBOOST_SCRIPT, 1, cores, {"streams": 1, "threads": cores, "isa": cap[0].lower()},
               f"capped at {cap[0]}", ("--precisions", "fp32", "int8"), {"ONEDNN_MAX_CPU_ISA": cap[0]})


def bf16_training(cores: int) -> list[Run]:
    """Notebook 01: the CNN trained with oneDNN in FP32, then with Keras' mixed_bfloat16 policy,
    the same epochs and images from the same start."""
    label = {"fp32": "FP32", "mixed_bfloat16": "BF16 (mixed)"}
    return [Run("scripts/cnn_mnist.py", 1, cores, {"precision": p}, label[p],
                ("--precision", p, "--fresh", "--epochs", sized(2, 1), "--train-images", training_images()),
                {"TF_ENABLE_ONEDNN_OPTS": 1}, trains=True) for p in ("fp32", "mixed_bfloat16")]


def bf16_training_trace(cores: int) -> dict:
    """oneDNN's trace of a few BF16 training steps (ONEDNN_VERBOSE=1, a short run of its own, so
    the timed runs are not slowed by it): convolution implementations and the data types they ran."""
    from .onednn import parse_verbose

    run = mpirun("scripts/cnn_mnist.py", "--precision", "mixed_bfloat16", "--fresh", "--epochs", 1,
                 "--train-images", 128, "--checkpoint-dir", "checkpoints/01_bf16_trace",
                 "--name", "01_bf16_trace",
                 ranks=1, threads=cores, genv={"TF_ENABLE_ONEDNN_OPTS": 1, "ONEDNN_VERBOSE": 1},
                 prepend_rank=False, echo=False, timeout=600)
    info = parse_verbose("\n".join(run.output))
    convs = [e for e in info["executions"] if e["primitive"] == "convolution"]
    return {"isa": info["isa"], "implementations": sorted({e["implementation"] for e in convs}),
            "data_types": sorted({kind for e in convs for kind in e["types"].values()})}
