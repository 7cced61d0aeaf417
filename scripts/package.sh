#!/usr/bin/env bash
# Builds the Debian package target/debian/tribune_<version>-1_<arch>.deb with cargo-deb
# (installed into the default cargo home when missing): the release binaries `tribune` and
# `tribunectl`, the systemd unit tribune@.service, manual pages (the agent's written by hand,
# tribunectl's generated from its command line by examples/mangen.rs), example configurations,
# the monitoring files. Then checks it with lintian when lintian is installed.
# Usage: scripts/package.sh [--no-lintian]
set -euo pipefail
cd "$(dirname "$0")/.."
lint=1
[ "${1:-}" = "--no-lintian" ] && lint=0

if ! cargo deb --version >/dev/null 2>&1; then
  echo "package: installing cargo-deb"
  cargo install cargo-deb --locked
fi

# Both binaries: the agent is its own package of the workspace, tribunectl the root package's.
cargo build --release -p tribune-agent -p tribune --bins
rm -rf target/man
cargo run --quiet --example mangen -- target/man
cp packaging/man/tribune.1 target/man/
# The package's documentation is compressed, as Debian's policy asks.
gzip -9n --force target/man/*.1

# Debian's changelog for this version (policy: every package carries one).
version=$(target/release/tribune --version | awk '{print $2}')
mkdir -p target/package
cat > target/package/changelog <<CHANGELOG
tribune ($version-1) unstable; urgency=medium

  * Tribune $version: the agent and tribunectl, the systemd unit tribune@.service,
    manual pages, example configurations and monitoring files.

 -- Tribune developers <tribune@example.org>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}")
CHANGELOG

cargo deb -p tribune-agent --no-build --output target/debian/
deb=$(ls -t target/debian/tribune_*.deb | head -n 1)
echo "package: $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'

if [ "$lint" = 1 ] && command -v lintian >/dev/null 2>&1; then
  lintian --fail-on error,warning "$deb"
  echo "package: lintian found no error or warning"
fi
