#!/usr/bin/env bash
# The Intel MPI Benchmarks that ship with Intel MPI: Allreduce, Reduce_scatter, Allgather and
# Alltoall on 2 and 4 ranks over message sizes, read as latency + size / bandwidth.
#   benchmarks/imb_collectives.sh                  # 1 B to 128 MiB (about 35 s on 2 cores)
#   DLSCALE_QUICK=1 benchmarks/imb_collectives.sh  # 1 B to 16 MiB (a few seconds)
#   benchmarks/imb_collectives.sh --ranks 8        # 2, 4 and 8 ranks
# Writes results/imb_collectives.json; notebook 06 plots it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../tools/course_env.sh"
cd "$COURSE_ROOT"
exec python -m dlscale.comms imb "$@"
