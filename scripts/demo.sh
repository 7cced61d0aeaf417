#!/usr/bin/env bash
# Starts a local three-node Tribune cluster: three agents, each managing its own PostgreSQL on
# 127.0.0.1 (PostgreSQL ports 15432-15434, REST 8008-8010, Raft 12222-12224), one primary and
# two streaming standbys. Prints `tribunectl list`, then keeps running until Ctrl-C, when it
# stops everything it started. Data stays in $TRIBUNE_DEMO_DIR (default /tmp/tribune-demo).
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
  echo "stopping the agents (they stop their PostgreSQL servers)..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped. Data and logs are in $demo (node*/data, node*/agent.log); remove it to start afresh."
  exit 0
}
trap stop INT TERM

echo "waiting for the cluster to bootstrap (logs: $demo/node*/agent.log)..."
for _ in $(seq 1 120); do
  streaming=$(curl -s http://127.0.0.1:8008/cluster 2>/dev/null | grep -o '"state":"streaming"' | wc -l || true)
  if curl -sf -o /dev/null http://127.0.0.1:8008/cluster && [ "${streaming:-0}" -ge 2 ]; then break; fi
  sleep 1
done
"$demo/tribunectl" --url http://127.0.0.1:8008,http://127.0.0.1:8009,http://127.0.0.1:8010 list || true
primary_port=$(curl -s http://127.0.0.1:8008/cluster | grep -o '"role":"leader"[^}]*"port":[0-9]*' \
  | grep -o '"port":[0-9]*' | cut -d: -f2 || true)
cat <<TXT

Primary:   psql "host=127.0.0.1 port=${primary_port:-15432} user=postgres password=postgres"
Replicas:  the other ports of 15432-15434 (read-only)
List:      $demo/tribunectl --url http://127.0.0.1:8008 list
Primary?   curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8008/primary
Press Ctrl-C to stop the cluster.
TXT
wait
