"""`make doctor`: one table of checks that the course's stack works on this machine.

Run it as `python -m dlscale.doctor` (exit status 1 when a check fails) or, in a notebook,
`from dlscale import doctor; doctor.run()`, which returns True when every check passed.
Each failing check prints the fix.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import cpu, data, dlboost, roofline
from .env import (
    ENVIRONMENT_FIX,
    ROOT,
    VENV,
    MPIEnvironmentError,
    export_line,
    mpi_environment_problems,
    shown,
)
from .launch import MPIRunError, mpirun

KERNEL_NAME = "dl-at-scale"
SETUP_FIX = "run `make setup` in the course folder"


@dataclass
class Check:
    name: str
    ok: bool | None  # None: a fact to read, not a pass/fail check
    detail: str
    fix: str = ""


def _quota_note() -> str:
    """What limits this learner's share of the machine, when something does."""
    quota = cpu.cpu_quota()
    return f" (a CPU quota of {quota:g} CPUs of {os.cpu_count()})" if quota else ""


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return Check("Python", ok, f"{platform.python_version()} in {shown(VENV)}",
                 "" if ok else "the course needs Python 3.11: make distclean && make PYTHON=python3.11 setup")


def check_environment() -> Check:
    problems = mpi_environment_problems()
    if problems:
        return Check("MPI environment", False, "; ".join(problems),
                     ENVIRONMENT_FIX.format(export=export_line()))
    return Check("MPI environment", True, "PATH, LD_LIBRARY_PATH and I_MPI_ROOT point at .venv")


def check_cpu() -> list[Check]:
    has = cpu.isa()
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512_VNNI",
             "avx_vnni": "AVX_VNNI", "amx_tile": "AMX"}
    flags = ", ".join(f"{label} {'yes' if has[key] else 'no'}" for key, label in names.items())
    return [
        Check("CPU", None, f"{cpu.cpu_model()}, {cpu.usable_cores()} usable cores{_quota_note()}; {flags}"),
        Check("DL Boost", None, cpu.dl_boost_summary()),
    ]


def check_ceilings() -> Check:
    """The two main roofs: the measured FP32 matrix-multiply ceiling and triad bandwidth from the
    newest scripts/roofline.py record, else a sub-second NumPy estimate labelled as one."""
    nominal = cpu.nominal_fp32_gflops()
    beside = (f"; nominal FP32 {nominal:.0f} GFLOP/s (computed, {cpu.microarchitecture()['name']} at the "
              f"nominal clock)" if nominal else "; nominal FP32 figure unknown for this CPU")
    record = roofline.last_measurement()
    if record:
        found, machine = roofline.roofs([record]), record["machine"]
        return Check("Ceilings", None, f"measured FP32 ceiling {found['fp32']:.0f} GFLOP/s, triad "
                     f"{found['bandwidth_gb_per_s']:.1f} GB/s ({machine['ranks']} rank(s) x "
                     f"{machine['threads_per_rank']} thread(s), {machine['timestamp'][:10]}){beside}")
    guess = roofline.numpy_estimate()
    return Check("Ceilings", None, f"estimate only (NumPy, one thread, under a second): FP32 "
                 f"{guess['fp32_gflops']:.0f} GFLOP/s, triad {guess['triad_gb_per_s']:.1f} GB/s; "
                 f"measure the ceilings with scripts/roofline.py (notebook 06){beside}")


def check_tensorflow() -> Check:
    tf, keras = version("tensorflow-cpu") or version("tensorflow"), version("keras")
    ok = tf == "2.15.1" and (keras or "").startswith("2.")
    return Check("TensorFlow", ok, f"tensorflow {tf}, keras {keras}",
                 "" if ok else "the course needs TensorFlow 2.15.1 with Keras 2: " + SETUP_FIX)


def check_openvino() -> Check:
    """Notebook 01's DL Boost engine: OpenVINO's version, what its CPU plugin can run here, and
    that its telemetry is off (dlscale.dlboost.OFFLINE_ENVIRONMENT)."""
    ov_version, nncf_version = version("openvino"), version("nncf")
    if ov_version is None or nncf_version is None:
        return Check("OpenVINO", False, f"openvino {ov_version}, nncf {nncf_version}: not installed",
                     "notebook 01 needs both: " + SETUP_FIX)
    try:
        facts = dlboost.openvino_facts()
    except Exception as error:  # a broken install: say what, not a traceback
        return Check("OpenVINO", False, f"openvino {ov_version} does not load: {error}", SETUP_FIX)
    offline = all(os.environ.get(k) == v for k, v in dlboost.OFFLINE_ENVIRONMENT.items())
    caps = ", ".join(facts["capabilities"])
    return Check("OpenVINO", offline and "INT8" in facts["capabilities"],
                 f"openvino {ov_version}, nncf {nncf_version}; CPU OPTIMIZATION_CAPABILITIES {caps}; "
                 f"telemetry {'off' if offline else 'ON'}",
                 "" if offline else "start the course through make, its kernel or tools/course_env.sh, "
                 "which set " + " ".join(f"{k}={v}" for k, v in dlboost.OFFLINE_ENVIRONMENT.items()))


# Runs in a fresh process per setting: TF reads TF_ENABLE_ONEDNN_OPTS once, at import.
ONEDNN_PROBE = """
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
x = tf.random.normal([1, 16, 16, 8])
tf.nn.relu(tf.nn.conv2d(x, tf.random.normal([3, 3, 8, 8]), 1, "SAME")).numpy()
print("onednn_enabled", _pywrap_util_port.IsMklEnabled(), flush=True)
"""


def onednn_probes() -> dict[str | None, tuple[bool, str | None, str]]:
    """{setting: (oneDNN enabled?, implementation that ran the convolution, output)}.

    Setting None is TensorFlow's default for this CPU; "1"/"0" is TF_ENABLE_ONEDNN_OPTS=1/0.
    The three processes run side by side.
    """
    processes = {}
    for setting in (None, "1", "0"):
        env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
        if setting is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = setting
        processes[setting] = subprocess.Popen([sys.executable, "-c", ONEDNN_PROBE], env=env,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True)
    results = {}
    for setting, process in processes.items():
        output, _ = process.communicate(timeout=300)
        implementation = None
        for line in output.splitlines():
            fields = line.split(",")
            if line.startswith("onednn_verbose") and "exec" in fields and "convolution" in fields:
                implementation = fields[fields.index("convolution") + 1]
                break
        results[setting] = ("onednn_enabled True" in output, implementation, output)
    return results


def check_onednn() -> Check:
    probes = onednn_probes()
    default_on, on, off = probes[None][0], probes["1"], probes["0"]
    default = "on by default on this CPU" if default_on else "off by default on this CPU (Eigen kernels)"
    if on[0] and on[1] and not off[0]:
        return Check("oneDNN", True, f"{default}; TF_ENABLE_ONEDNN_OPTS=1 turns it on "
                     f"(convolution ran as {on[1]}), =0 turns it off")
    return Check("oneDNN", False, f"{default}; TF_ENABLE_ONEDNN_OPTS did not switch oneDNN on and "
                 f"off. Output with =1:\n{on[2][-1500:]}", "reinstall the stack: " + SETUP_FIX)


HOROVOD_PROBE = """
import json, horovod, horovod.tensorflow as hvd
print(json.dumps({"version": horovod.__version__, "tensorflow": True,
                  "mpi": hvd.mpi_built(), "gloo": hvd.gloo_built()}))
"""


def check_horovod_build() -> Check:
    fix = "rebuild Horovod: rm .venv/.horovod-installed && make setup"
    out = subprocess.run([sys.executable, "-c", HOROVOD_PROBE], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        if "libmpi" in last:  # built fine, but this environment hides MPI's library
            fix = ENVIRONMENT_FIX.format(export=export_line())
        return Check("Horovod build", False, f"import horovod.tensorflow failed: {last}", fix)
    built = json.loads(out.stdout.strip().splitlines()[-1])
    labels = {"tensorflow": "TensorFlow", "mpi": "MPI", "gloo": "Gloo"}
    parts = [label for key, label in labels.items() if built[key]]
    ok = len(parts) == len(labels)
    return Check("Horovod build", ok, f"horovod {built['version']} with " + " + ".join(parts),
                 "" if ok else fix)


def check_mpirun() -> Check:
    path = shutil.which("mpirun")
    if path is None:
        return Check("mpirun", False, "no mpirun on PATH", ENVIRONMENT_FIX.format(export=export_line()))
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    first = (out.stdout.strip().splitlines() or ["(no version)"])[0]
    ok = "Intel(R) MPI" in first and Path(path).resolve().parent == (VENV / "bin").resolve()
    return Check("mpirun", ok, f"{shown(path)}: {first}",
                 "" if ok else ENVIRONMENT_FIX.format(export=export_line()))


def check_two_ranks(name: str, engine: str) -> Check:
    """Launch dlscale/smoke.py on 2 ranks; pass when every rank got the right answer."""
    try:
        run = mpirun(ROOT / "dlscale" / "smoke.py", engine, ranks=2, threads=1, echo=False,
                     timeout=300)
    except MPIEnvironmentError:
        return Check(name, False, "not run: the MPI environment is not set up (see above)")
    except MPIRunError as error:
        return Check(name, False, str(error).strip(), "read the output above; then " + SETUP_FIX)
    answers = re.findall(r"\w+ rank \d+/2: [^\n\[]*? OK", "\n".join(run.output))
    return Check(name, len(answers) == 2, f"2 ranks, {run.seconds:.1f} s: {answers[0] if answers else ''}")


def check_jupyter() -> Check:
    found = {pkg: version(pkg) for pkg in ("jupyterlab", "nbval", "ipykernel")}
    missing = [pkg for pkg, v in found.items() if v is None]
    if missing:
        return Check("Jupyter", False, "missing " + ", ".join(missing), SETUP_FIX)
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        return Check("Jupyter", False, f"kernel '{KERNEL_NAME}' is not registered",
                     f"rm -f .venv/share/jupyter/kernels/{KERNEL_NAME}/kernel.json && make setup")
    kernel_problems = mpi_environment_problems({**os.environ, **spec.env})
    versions = ", ".join(f"{pkg} {v}" for pkg, v in found.items())
    if kernel_problems:
        return Check("Jupyter", False, f"{versions}; kernel '{KERNEL_NAME}' lacks the MPI "
                     f"environment: {'; '.join(kernel_problems)}",
                     f"rm -f .venv/share/jupyter/kernels/{KERNEL_NAME}/kernel.json && make setup")
    return Check("Jupyter", True, f"{versions}; kernel '{KERNEL_NAME}' carries the MPI environment")


def check_data() -> Check:
    problems = data.verify_checksums()
    files = data.manifest()
    if problems:
        return Check("Data", False, "; ".join(problems),
                     "restore the shipped files: git checkout -- data/ (or git pull)")
    return Check("Data", True, f"{len(files)} shipped file(s) in data/, sha256 checked")


def all_checks(launch: bool = True) -> list[Check]:
    """Every check; launch=False leaves out those that start processes (a few seconds instead of 20)."""
    checks = [check_python(), check_environment(), *check_cpu(), check_ceilings(), check_tensorflow(),
              check_openvino()]
    if launch:
        checks += [check_onednn(), check_horovod_build()]
    checks.append(check_mpirun())
    if launch:
        checks += [check_two_ranks("Horovod allreduce", "horovod"),
                   check_two_ranks("daal4py SPMD", "daal4py")]
    return checks + [check_jupyter(), check_data()]


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  {'-' * 40}"]
    for c in checks:
        status = "info" if c.ok is None else "OK" if c.ok else "FAIL"
        detail = c.detail.replace("\n", "\n" + " " * (width + 10))
        lines.append(f"{c.name:<{width}}  {status:<6}  {detail}")
        if c.ok is False and c.fix:
            lines.append(f"{'':<{width}}  {'':<6}  fix: {c.fix}")
    return "\n".join(lines)


def run(launch: bool = True) -> bool:
    """Print the table of checks; True when none failed. Notebooks after 00 use launch=False."""
    print("Checking the course environment" + (" (about 20 seconds)..." if launch else "..."), flush=True)
    checks = all_checks(launch)
    print(report(checks), flush=True)
    failed = [c.name for c in checks if c.ok is False]
    print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "\nAll checks passed.")
    return not failed


if __name__ == "__main__":
    sys.exit(0 if run() else 1)
