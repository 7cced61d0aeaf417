#!/usr/bin/env bash
# No false failovers on a loaded machine: a three-node cluster with the default settings sits
# idle while stress-ng keeps both cores busy. Prints primary changes, timeline switches,
# self-fencings and probes that found no primary.
# Usage: scripts/bench-idle.sh [SECONDS]   (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! command -v stress-ng >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "bench-idle: install stress-ng (apt-get install stress-ng)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
fi
cargo build --workspace --all-targets --quiet
TRIBUNE_IDLE_SECONDS=${1:-600} cargo test --quiet --test integration bench_idle_under_cpu_stress \
  -- --ignored --nocapture --test-threads=1 2>&1 | grep -E '^( *[0-9]+s:|idle )|panicked|FAILED'
