#!/usr/bin/env bash
# Major-version upgrade benchmark: per run, a fresh three-node cluster on Debian's PostgreSQL 15
# in synchronous mode, filled to SIZE_MB, upgraded to PostgreSQL 18 with `tribunectl upgrade`
# under a write workload. Prints each run's database size, write unavailability (the longest
# time without an acknowledged write while the upgrade ran) and total time (the command's start
# to every member streaming on 18), then the medians.
# Usage: scripts/bench-upgrade.sh [RUNS [SIZE_MB]]   (default 3 runs, 200 MB)
# TRIBUNE_PG_UPGRADE_BIN names another PostgreSQL to upgrade to (default: the 18 that
# scripts/setup.sh installs in /opt/tribune/postgresql-18).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export TRIBUNE_PG_UPGRADE_BIN=${TRIBUNE_PG_UPGRADE_BIN:-/opt/tribune/postgresql-18/bin}
cargo build --workspace --all-targets --quiet
TRIBUNE_BENCH_RUNS=${1:-3} TRIBUNE_BENCH_UPGRADE_MB=${2:-200} \
  cargo test --quiet --test integration bench_upgrade -- --ignored --nocapture --test-threads=1 \
  2>&1 | grep -E '^(run |upgrade over)|panicked|FAILED'
