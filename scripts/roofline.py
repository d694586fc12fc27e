"""Notebook 06: the roofs of this CPU, measured: FP32, BF16 and INT8 matrix multiplies and memory bandwidth.

    mpirun -prepend-rank -genv OMP_NUM_THREADS=2 -n 1 python -u scripts/roofline.py
    mpirun -prepend-rank -genv OMP_NUM_THREADS=1 -n 2 python -u scripts/roofline.py

Every rank measures at the same time, after a barrier, and rank 0 adds up what they reached:
- FP32: --size x --size matrix multiplies through TensorFlow (oneDNN), warm-up calls first;
- BF16, where the CPU has AVX512_BF16 or AMX: the same through TensorFlow in bfloat16; oneDNN's
  trace (ONEDNN_VERBOSE) shows the kernel that ran (e.g. brg:avx512_core_bf16);
- INT8, where the CPU has VNNI or AMX: the same size through OpenVINO (u8 x i8 kernels), with the
  kernel its runtime model names;
- memory bandwidth: a STREAM-style triad a = b + s * c in NumPy (one thread per rank) over arrays
  far larger than the last-level cache, first on rank 0 alone, then on every rank together.
With one rank per core the aggregate bandwidth is the machine's: ranks share the memory.
"""

from __future__ import annotations

import argparse
import os

from dlscale import cli

PRECISIONS = ("fp32", "bf16", "int8")
NEEDS = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "avx_vnni", "amx_int8")}


def parse_args() -> argparse.Namespace:
    p = cli.parser(__doc__, name="roofline")
    cli.add_threads(p)
    p.add_argument("--size", type=cli.positive(int), default=cli.sized(4096, 1024),
                   help="side of the square matrices multiplied")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                   help="matrix-multiply ceilings to measure (bf16 and int8 only where the CPU has them)")
    p.add_argument("--seconds", type=cli.positive(float), default=cli.sized(3.0, 0.3),
                   help="timed seconds per measurement")
    p.add_argument("--triad-mib", type=cli.positive(int), default=None,
                   help="MiB per triad array and rank (default: 4x the last-level cache, 64 at least)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    os.environ["ONEDNN_VERBOSE"] = "1"  # read when oneDNN creates its first primitive: the kernels' names
    from dlscale.rank import start_rank

    rank, size, threads = start_rank()  # before TensorFlow loads: it reads OMP_NUM_THREADS once
    threads = args.threads or threads
    from mpi4py import MPI

    from dlscale import roofline
    from dlscale.cnn import configure_tensorflow
    from dlscale.cpu import isa, microarchitecture, nominal_fp32_gflops, physical_cores
    from dlscale.native import native_output
    from dlscale.onednn import parse_verbose
    from dlscale.results import write_results

    comm = MPI.COMM_WORLD
    tf_info = configure_tensorflow(threads, 1)
    flags = isa()
    chosen = [p for p in args.precisions if p not in NEEDS or any(flags.get(f) for f in NEEDS[p])]
    skipped = {p: f"this CPU has none of {', '.join(NEEDS[p])}: not measured"
               for p in args.precisions if p not in chosen}
    elements = (args.triad_mib * 2**20 // 8) if args.triad_mib else roofline.triad_elements()

    mine, kernels = {}, {}
    with native_output() as trace:  # oneDNN's lines go here, not to the learner's screen
        for precision in chosen:
            if precision == "int8":
                mine["int8"], rows = roofline.openvino_int8_matmul(args.size, threads, args.seconds,
                                                                  before=comm.Barrier)
                kernels["int8"] = sorted({f"{r['precision']} {r['kernel']}" for r in rows})
            else:
                mine[precision] = roofline.tensorflow_matmul_gflops(args.size, precision, args.seconds,
                                                                    before=comm.Barrier)
    executed = parse_verbose(trace.text)["executions"]
    onednn_type = {"fp32": "f32", "bf16": "bf16"}
    for precision, kind in onednn_type.items():
        if precision in mine:
            kernels[precision] = sorted({e["primitive"] if e["implementation"] == "(library call)"
                                         else e["implementation"] for e in executed
                                         if e["primitive"] in ("matmul", "gemm_api", "inner_product")
                                         and e["types"].get("src") == kind})
    alone = roofline.measure_triad(elements, args.seconds) if rank == 0 else None
    comm.Barrier()  # rank 0 measured alone; now every rank together
    together = roofline.measure_triad(elements, args.seconds, before=comm.Barrier)

    gathered = comm.gather({"matmul_gflops": mine, "triad_gb_per_s": together}, root=0)
    if rank != 0:
        return
    ceilings = {p: {"aggregate_gflops": sum(g["matmul_gflops"][p] for g in gathered),
                    "per_rank_gflops": [g["matmul_gflops"][p] for g in gathered],
                    "kernels": kernels.get(p, [])} for p in chosen}
    cores = min(physical_cores(), size * threads)
    nominal = nominal_fp32_gflops(cores)
    arch = microarchitecture()
    record = {
        "matrix_size": args.size, "seconds_per_measurement": args.seconds, "precisions": chosen,
        "skipped": skipped, "ceilings": ceilings,
        "triad": {"elements_per_rank": elements, "bytes_per_element": roofline.triad_bytes(1),
                  "rank0_alone_gb_per_s": alone,
                  "per_rank_gb_per_s": [g["triad_gb_per_s"] for g in gathered],
                  "aggregate_gb_per_s": sum(g["triad_gb_per_s"] for g in gathered)},
        "nominal": {"fp32_gflops": nominal, "cores": cores, "microarchitecture": arch["name"],
                    "how": "computed: FMA units x lanes x 2 x nominal clock x cores" if nominal else
                    "this microarchitecture's FMA units are not in dlscale.cpu's table"},
        "tensorflow": tf_info,
    }
    for precision, c in ceilings.items():
        print(f"{precision.upper()} matrix multiplies ({args.size}x{args.size}): {c['aggregate_gflops']:.1f} "
              f"GFLOP/s on {size} rank(s) x {threads} thread(s) "
              f"({', '.join(c['kernels']) or 'kernel not traced'})")
    for why in skipped.values():
        print(why)
    triad = record["triad"]
    print(f"triad ({elements * 8 / 2**20:.0f} MiB per array): rank 0 alone {alone:.1f} GB/s, "
          f"{size} rank(s) together {triad['aggregate_gb_per_s']:.1f} GB/s")
    write_results(args.name, record, threads_per_rank=threads)


if __name__ == "__main__":
    main()
