#!/usr/bin/env bash
# Crash-failover benchmark: a three-node cluster under a write workload; the primary's agent and
# postmaster are killed (-9) again and again. Prints each run's write unavailability (fault to
# first acknowledged write on the new primary), then median, p95, max and the lost-write count.
# Usage: scripts/bench-failover.sh [RUNS]   (default 20)
#        scripts/bench-failover.sh --engine opengauss [RUNS]   (openGauss: TRIBUNE_OPENGAUSS_BIN, default the
#        6.0.2 build scripts/setup.sh unpacks; needs root, as its test suite does)
# TRIBUNE_BENCH_AGENT_TLS=1 runs the agents with mutual TLS between them (=password: raft.password).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--engine" ]; then
  export TRIBUNE_BENCH_ENGINE=${2:?--engine takes postgres or opengauss}
  shift 2
fi
scripts/setup.sh
cargo build --workspace --all-targets --quiet
TRIBUNE_BENCH_RUNS=${1:-20} cargo test --quiet --test integration bench_crash_failover \
  -- --ignored --nocapture --test-threads=1 2>&1 | grep -E '^(engine|bootstrap|run |crash failover)|panicked|FAILED'
