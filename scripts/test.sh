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
cargo test --test integration -- --test-threads=1

# The chaos suite's smoke run: 20 faults of every kind in synchronous mode with a fixed seed, on
# real clusters in network namespaces (so only as root, as CI runs); fails on any violation. Its
# report stays in runs/.
if [ "$(id -u)" -eq 0 ]; then
  scripts/chaos.sh --faults 20 --seed 7 --out "runs/ci-smoke-$(date +%Y%m%d-%H%M%S)"
else
  echo "chaos smoke run skipped: it needs root (network namespaces, nftables, mounts); CI runs as root"
fi
