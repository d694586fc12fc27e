#!/usr/bin/env bash
# The workshop's tf_bench.sh: ResNet-50 training images/s with synthetic data, default TensorFlow
# vs optimized (oneDNN on, tuned threads), then the optimized settings on 2 ranks with Horovod.
#   benchmarks/tf_bench.sh                  # batch 16 (the workshop's), 10 timed steps, 3 runs each
#   DLSCALE_QUICK=1 benchmarks/tf_bench.sh  # batch 8, 2 timed steps, 2 runs each (a few minutes)
#   benchmarks/tf_bench.sh --help           # --model, --batch-size, --num-batches, --data-format, ...
# Prints the workshop's table and writes results/tf_bench.json (every run is kept beside it).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../tools/course_env.sh"
cd "$COURSE_ROOT"
exec python -m dlscale.tfbench "$@"
