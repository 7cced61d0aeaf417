#!/usr/bin/env bash
# Checks the monitoring files with Prometheus's own tool (promtool, Debian's `prometheus`
# package; scripts/setup.sh installs it): the alerting rules parse and pass their unit tests
# (monitoring/prometheus/tribune-alerts.test.yml), the example configuration is valid, and every
# query of the Grafana dashboard is valid PromQL (Grafana's variables replaced by values).
# That the queries name metrics the agent serves is a unit test (src/telemetry/monitoring_tests.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null 2>&1 || { echo "check-monitoring: promtool is missing (scripts/setup.sh installs it)" >&2; exit 1; }

promtool check rules monitoring/prometheus/tribune-alerts.yml
promtool test rules monitoring/prometheus/tribune-alerts.test.yml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The example configuration names its rule file where a package would install it.
sed "s#/etc/prometheus/tribune-alerts.yml#$PWD/monitoring/prometheus/tribune-alerts.yml#" \
  monitoring/prometheus/prometheus.yml > "$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"

# Each dashboard query as a recording rule, so that promtool parses it.
python3 - monitoring/grafana/tribune-dashboard.json > "$tmp/dashboard-rules.yml" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
exprs += [a["expr"] for a in doc["annotations"]["list"] if "expr" in a]
grafana = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m", "$scope": ".*"}
print("groups:\n  - name: dashboard\n    rules:")
for i, expr in enumerate(exprs):
    for var, value in grafana.items():
        expr = expr.replace(var, value)
    if "$" in expr:
        sys.exit(f"unknown Grafana variable in: {expr}")
    print(f"      - record: dashboard:query{i}\n        expr: {json.dumps(expr)}")
print(f"{len(exprs)} dashboard queries", file=sys.stderr)
PY
promtool check rules "$tmp/dashboard-rules.yml"
echo "check-monitoring: rules, their tests, the example configuration and the dashboard's queries are valid"
