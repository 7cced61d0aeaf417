#!/usr/bin/env bash
# REST benchmark: a three-node cluster runs; wrk loads GET /primary, then GET /patroni, of the
# primary's agent. Prints requests/s, p50 and p99 latency of each, and the agent's resident
# memory (VmRSS) and its peak (VmHWM) after each load.
# Usage: scripts/bench-rest.sh [--debug] [SECONDS]   (default: release build, 10 s per endpoint)
#   TRIBUNE_BENCH_CONNECTIONS (32) and TRIBUNE_BENCH_THREADS (1) are passed to wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release)
if [ "${1:-}" = "--debug" ]; then
  profile=()
  shift
fi
scripts/setup.sh
if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "bench-rest: install wrk (apt-get install wrk)" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
# The agent as shipped (release: whole-program optimised), and the test binary that starts it.
cargo build "${profile[@]}" -p tribune-agent --quiet
TRIBUNE_BENCH_SECONDS=${1:-10} cargo test "${profile[@]}" --quiet --test integration \
  bench_rest_endpoints -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep -E '^(agent |GET |after the load)|panicked|FAILED'
