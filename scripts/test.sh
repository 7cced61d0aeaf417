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
# The fuzz harnesses again with a longer budget (12 s each, about 90 s in all): inputs tried per
# target, and any failure with its minimal input and the seed that replays it.
TRIBUNE_FUZZ_SECONDS=12 cargo test --lib fuzz_ -- --nocapture --test-threads=1 2>&1 \
  | grep -E 'fuzz target|panicked|test result|minimal input|replay with'
cargo test --test integration -- --test-threads=1
