#!/usr/bin/env bash
# Checks the packaging files without building the package (scripts/package.sh does that, with
# lintian): `systemd-analyze verify` on the systemd unit, the example configurations against the
# agent's own validation, the shell syntax of the maintainer scripts and the container's
# entrypoint, the agent's manual page. Needs the agent built (target/debug/tribune, or
# TRIBUNE_AGENT). systemd need not be running (it is not PID 1 in CI): verify reads the unit.
set -euo pipefail
cd "$(dirname "$0")/.."
agent=${TRIBUNE_AGENT:-$PWD/target/debug/tribune}
[ -x "$agent" ] || { echo "check-packaging: build the agent first ($agent)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify insists that ExecStart's program exists: point the unit at the built agent (the
# packaged one is /usr/bin/tribune), and at this machine's kill.
sed -e "s#/usr/bin/tribune#$agent#g" -e "s#/bin/kill#$(command -v kill || echo /bin/kill)#" \
  packaging/systemd/tribune@.service > "$tmp/tribune@.service"
# verify exits 0 on a setting it ignores (a misspelt value), so any message is a failure.
findings=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/tribune@node1.service" 2>&1) \
  || { echo "$findings" >&2; exit 1; }
[ -z "$findings" ] || { echo "check-packaging: tribune@.service: $findings" >&2; exit 1; }
echo "check-packaging: tribune@.service verified"

for example in packaging/examples/*.yml; do
  "$agent" --validate-config "$example" >/dev/null
done
echo "check-packaging: the example configurations are valid"

for script in packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
              deploy/container/entrypoint.sh; do
  sh -n "$script"
done
if command -v man >/dev/null 2>&1; then
  warnings=$(man --warnings -l packaging/man/tribune.1 2>&1 >/dev/null)
  [ -z "$warnings" ] || { echo "check-packaging: tribune.1: $warnings" >&2; exit 1; }
fi
echo "check-packaging: maintainer scripts, entrypoint and manual page are well formed"
