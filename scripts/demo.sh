#!/usr/bin/env bash
# Starts a local three-node Tribune cluster: three agents, each managing its own PostgreSQL on
# 127.0.0.1 (PostgreSQL ports 15432-15434, REST 8008-8010, Raft 12222-12224), one primary and
# two streaming standbys, and HAProxy in front of them (127.0.0.1:5000 reaches the primary,
# :5001 a standby, :7000 is its stats page), configured by `tribunectl haproxy-config`.
# Prints `tribunectl list` and a psql line for each HAProxy port, then keeps running until
# Ctrl-C, when it stops everything it started. Data and logs stay in $TRIBUNE_DEMO_DIR
# (default /tmp/tribune-demo).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --workspace --quiet

demo=${TRIBUNE_DEMO_DIR:-/tmp/tribune-demo}
mkdir -p "$demo"
cp target/debug/tribune target/debug/tribunectl "$demo/"
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres:postgres "$demo"
  chmod 755 "$demo"
  # setpriv execs the agent directly (runuser would wrap it in a PAM session that kills it two
  # seconds after a stop signal, before it has stopped PostgreSQL cleanly).
  run_as=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
fi

partners() {
  local self=$1 out=() p
  for p in 12222 12223 12224; do [ "$p" = "$self" ] || out+=("'127.0.0.1:$p'"); done
  (IFS=,; echo "${out[*]}")
}

pids=()
haproxy_pid=
for i in 0 1 2; do
  node="$demo/node$i"
  mkdir -p "$node"
  cat >"$node/tribune.yml" <<YAML
scope: demo
name: node$i
restapi:
  listen: 127.0.0.1:$((8008 + i))
  connect_address: 127.0.0.1:$((8008 + i))
raft:
  self_addr: 127.0.0.1:$((12222 + i))
  partner_addrs: [$(partners $((12222 + i)))]
  data_dir: $node/raft
bootstrap:
  dcs:
    ttl: 3
    loop_wait: 1
    retry_timeout: 0.5
    postgresql:
      use_pg_rewind: true
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:$((15432 + i))
  connect_address: 127.0.0.1:$((15432 + i))
  data_dir: $node/data
  pgpass: $node/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
watchdog:
  mode: off   # three agents on one host must not share the host's watchdog
YAML
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$node"
  (cd "$node" && exec "${run_as[@]}" env HOME="$node" "$demo/tribune" "$node/tribune.yml" \
    >>"$node/agent.log" 2>&1) &
  pids+=($!)
done

stop() {
  echo
  if [ -n "$haproxy_pid" ]; then
    echo "stopping HAProxy..."
    kill -TERM "$haproxy_pid" 2>/dev/null || true
    wait "$haproxy_pid" 2>/dev/null || true
  fi
  echo "stopping the agents (they stop their PostgreSQL servers)..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped. Data and logs are in $demo (node*/data, node*/agent.log, haproxy.log); remove it to start afresh."
  exit "${1:-0}"
}
trap stop INT TERM

echo "waiting for the cluster to bootstrap (logs: $demo/node*/agent.log)..."
for _ in $(seq 1 120); do
  streaming=$(curl -s http://127.0.0.1:8008/cluster 2>/dev/null | grep -o '"state":"streaming"' | wc -l || true)
  if curl -sf -o /dev/null http://127.0.0.1:8008/cluster && [ "${streaming:-0}" -ge 2 ]; then break; fi
  sleep 1
done
members=http://127.0.0.1:8008,http://127.0.0.1:8009,http://127.0.0.1:8010
"$demo/tribunectl" --url "$members" list || true

# HAProxy in front of the members, with the configuration the cluster itself describes.
if ! "$demo/tribunectl" --url "$members" haproxy-config --stats-port 7000 >"$demo/haproxy.cfg"; then
  echo "could not write the HAProxy configuration (see the error above)" >&2
  stop 1
fi
if ! cmp -s "$demo/haproxy.cfg" scripts/haproxy.cfg; then
  echo "note: $demo/haproxy.cfg differs from scripts/haproxy.cfg (the members are not the demo's?)"
fi
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
# -db: HAProxy stays in the foreground, so this PID is HAProxy's and stop() ends it.
(exec "${run_as[@]}" "$haproxy_bin" -f "$demo/haproxy.cfg" -db >"$demo/haproxy.log" 2>&1) &
haproxy_pid=$!

# HAProxy counts every server up until its first check; wait until port 5000 reaches the primary.
reached=
for _ in $(seq 1 30); do
  if ! kill -0 "$haproxy_pid" 2>/dev/null; then
    echo "HAProxy exited (are ports 5000, 5001 and 7000 free?); its log, $demo/haproxy.log:" >&2
    tail -n 20 "$demo/haproxy.log" >&2
    haproxy_pid=
    stop 1
  fi
  reached=$(PGPASSWORD=postgres PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p 5000 -U postgres \
    -d postgres -XAtc "SELECT current_setting('port') WHERE NOT pg_is_in_recovery()" 2>/dev/null || true)
  [ -n "$reached" ] && break
  sleep 0.5
done
if [ -n "$reached" ]; then
  echo "HAProxy's port 5000 reaches the primary, node$((reached - 15432)) (PostgreSQL port $reached)."
else
  echo "HAProxy's port 5000 does not reach a primary yet; see $demo/node*/agent.log and $demo/haproxy.log" >&2
fi
cat <<TXT

Through HAProxy, as clients connect (it follows failovers; servers are checked on their REST API):
  Primary (read-write):  psql "host=127.0.0.1 port=5000 user=postgres password=postgres"
  Replica (read-only):   psql "host=127.0.0.1 port=5001 user=postgres password=postgres"
  HAProxy stats:         http://127.0.0.1:7000/   config: $demo/haproxy.cfg
Members directly:        PostgreSQL ports 15432-15434, REST API ports 8008-8010
List:      $demo/tribunectl --url http://127.0.0.1:8008 list
Primary?   curl -s -o /dev/null -w '%{http_code}\n' -X OPTIONS http://127.0.0.1:8008/primary
Press Ctrl-C to stop the cluster and HAProxy.
TXT
wait
