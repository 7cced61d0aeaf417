#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test.
# Integration tests start real agents and PostgreSQL servers as the postgres user; they run one
# at a time because each starts a whole cluster and the lease timings assume a machine that is
# not running three clusters at once.
#
# openGauss: where scripts/setup.sh unpacked the shared builds (../shared/opengauss/), the
# integration suite includes the openGauss tests on 6.0.2 (the LTS release), and then the core
# ones again on 7.0.0-RC2. They need root (CI runs as root): openGauss refuses a password-less
# rebuild from 127.0.0.1, so its members get addresses of their own on the loopback interface.
# TRIBUNE_OPENGAUSS_BIN set by the caller wins; without openGauss the tests report themselves
# ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

og_home=${TRIBUNE_OPENGAUSS_HOME:-/opt/tribune/opengauss}
og_next=""
if [ -z "${TRIBUNE_OPENGAUSS_BIN:-}" ] && [ -x "$og_home/6.0.2/bin/gaussdb" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    export TRIBUNE_OPENGAUSS_BIN=$og_home/6.0.2/bin
    [ -x "$og_home/7.0.0-RC2/bin/gaussdb" ] && og_next=$og_home/7.0.0-RC2/bin
  else
    echo "test: openGauss is unpacked in $og_home, but its suite needs root; it is reported ignored" >&2
  fi
fi
echo "test: openGauss suite: ${TRIBUNE_OPENGAUSS_BIN:-not run (TRIBUNE_OPENGAUSS_BIN unset)}"

# Deployment and monitoring files, each check a few seconds: the alerting rules and their unit
# tests, the dashboard's queries (promtool), the Kubernetes manifests against the API schemas.
scripts/check-monitoring.sh
scripts/check-kubernetes.sh

cargo build --workspace --all-targets
# The systemd unit (systemd-analyze verify), the example configurations, the scripts.
scripts/check-packaging.sh
cargo test --workspace --lib --bins
cargo test --test integration -- --test-threads=1
if [ -n "$og_next" ]; then
  echo "test: the core openGauss tests on $og_next"
  TRIBUNE_OPENGAUSS_BIN=$og_next cargo test --test integration -- --test-threads=1 \
    opengauss_three_nodes opengauss_a_switchover opengauss_synchronous_mode
fi
