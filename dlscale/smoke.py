"""Two-rank smoke tests that `make doctor` launches under mpirun; each rank exits 1 on a wrong answer.

    mpirun -n 2 python -u dlscale/smoke.py horovod   # allreduce: sum of (rank + 1) over ranks
    mpirun -n 2 python -u dlscale/smoke.py daal4py   # SPMD mean of rank-local data
"""

from __future__ import annotations

import sys

from dlscale.rank import start_rank


def horovod_allreduce() -> bool:
    from dlscale.spmd import horovod_init

    hvd = horovod_init()
    import tensorflow as tf

    rank, size = hvd.rank(), hvd.size()
    total = hvd.allreduce(tf.fill([4], float(rank + 1)), op=hvd.Sum).numpy()
    expected = size * (size + 1) / 2
    ok = bool((total == expected).all())
    print(f"horovod rank {rank}/{size}: allreduce sum {total[0]:g}, expected {expected:g} "
          + ("OK" if ok else "WRONG"))
    return ok


def daal4py_mean() -> bool:
    import numpy as np

    from dlscale.spmd import daal4py_spmd

    rows = 1000
    with daal4py_spmd(1) as (d4p, comm):
        rank, size = comm.Get_rank(), comm.Get_size()
        local = np.arange(rank * rows, (rank + 1) * rows, dtype=np.float64).reshape(-1, 1)
        mean = float(d4p.low_order_moments(distributed=True).compute(local).mean[0, 0])
    expected = (size * rows - 1) / 2  # mean of 0 .. size*rows-1, which no single rank holds
    ok = abs(mean - expected) < 1e-9
    print(f"daal4py rank {rank}/{size}: distributed mean {mean:g}, expected {expected:g} "
          + ("OK" if ok else "WRONG"))
    return ok


CHECKS = {"horovod": horovod_allreduce, "daal4py": daal4py_mean}

if __name__ == "__main__":
    start_rank()
    if len(sys.argv) != 2 or sys.argv[1] not in CHECKS:
        sys.exit(f"usage: python dlscale/smoke.py {{{','.join(CHECKS)}}}")
    sys.exit(0 if CHECKS[sys.argv[1]]() else 1)
