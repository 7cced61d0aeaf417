#!/usr/bin/env bash
# The cost of authenticating the agents to each other (issue 13): lease renewal latency through
# a follower (in-process, no PostgreSQL) without peer authentication, with raft.password and with
# mutual TLS; then crash failover under writes without and with mutual TLS. Prints figures only.
# Usage: scripts/bench-tls.sh [FAILOVER_RUNS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets --quiet
TRIBUNE_BENCH_RUNS=500 cargo test --quiet --lib bench_renewal_latency_by_peer_authentication \
  -- --ignored --nocapture 2>&1 | grep -E '^lease renewal|panicked|FAILED'
for tls in 0 1; do
  TRIBUNE_BENCH_AGENT_TLS=$tls scripts/bench-failover.sh "${1:-10}"
done
