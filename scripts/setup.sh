#!/usr/bin/env bash
# Installs the system packages Tribune's demo and tests need, when they are missing
# (Debian/Ubuntu). Safe to run again: it installs nothing that is already there.
set -euo pipefail

need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/pg_ctl" ] || [ ! -x "$pg_bin/pg_rewind" ]; then
  need+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Partition tests drop a member's traffic with nftables (they run only as root).
[ "$(id -u)" -ne 0 ] || command -v nft >/dev/null 2>&1 || need+=(nftables)
# The demo and the HAProxy tests put HAProxy in front of the cluster. Debian installs it in
# /usr/sbin, which is not on an ordinary user's PATH. Its packaged service starts with a
# configuration that listens on nothing; Tribune never uses that service.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's postgresql package starts a cluster of its own on 5432; Tribune does not use it.
if ! id postgres >/dev/null 2>&1; then
  echo "setup: the postgres OS user is missing (the postgresql package creates it)" >&2
  exit 1
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
