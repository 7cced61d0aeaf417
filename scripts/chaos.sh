#!/usr/bin/env bash
# Tribune's chaos suite: builds the agent, tribunectl and the harness (jepsen/), then runs it with
# the arguments given. `scripts/chaos.sh --help` lists every option, mode and nemesis.
#   scripts/chaos.sh --faults 20 --seed 7 --out DIR   # a few minutes; what CI runs
#   scripts/chaos.sh --faults 1000 --mode async       # hours
#   scripts/chaos.sh --replay DIR                     # the same schedule again
# Needs root (network namespaces, nftables, mounts); scripts/setup.sh installs what it uses.
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    -h|--help)
      cargo build -q -p tribune-jepsen
      exec target/debug/tribune-jepsen --help ;;
  esac
done
cargo build -q -p tribune -p tribune-agent -p tribune-jepsen --bins
exec target/debug/tribune-jepsen "$@"
