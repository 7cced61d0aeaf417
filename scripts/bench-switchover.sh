#!/usr/bin/env bash
# Planned-switchover benchmark: a three-node cluster in synchronous mode under a write workload;
# `POST /switchover` is sent again and again to a member that is not the primary. Prints each
# run's write unavailability (last write acknowledged by the old primary to the first by the
# new), then median, p95, max, the lost-write count, and the median wall time of
# `tribunectl list`.
# Usage: scripts/bench-switchover.sh [RUNS]   (default 20)
#        scripts/bench-switchover.sh --engine opengauss [RUNS]   (openGauss: TRIBUNE_OPENGAUSS_BIN, default the
#        6.0.2 build scripts/setup.sh unpacks; needs root, as its test suite does)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--engine" ]; then
  export TRIBUNE_BENCH_ENGINE=${2:?--engine takes postgres or opengauss}
  shift 2
fi
scripts/setup.sh
cargo build --workspace --all-targets --quiet
TRIBUNE_BENCH_RUNS=${1:-20} cargo test --quiet --test integration bench_switchover \
  -- --ignored --nocapture --test-threads=1 2>&1 | grep -E '^(engine|bootstrap|run |switchover over|tribunectl list)|panicked|FAILED'
