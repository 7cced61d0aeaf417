#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test.
# Integration tests start real agents and PostgreSQL servers as the postgres user; they run one
# at a time because each starts a whole cluster and the lease timings assume a machine that is
# not running three clusters at once.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace --lib --bins
# 10,000 seeded fault schedules of the deterministic simulation (a couple of minutes).
scripts/simulate.sh --schedules 10000
cargo test --test integration -- --test-threads=1
