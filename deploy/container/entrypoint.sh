#!/bin/sh
# The image's entrypoint: writes a base configuration for a member (or a witness) in a
# container and starts the agent with it, as Spilo does for Patroni. Everything else comes from
# the environment, which the agent reads itself: PATRONI_* variables as Patroni names them,
# TRIBUNE_* ones winning over them (see the README's "On Kubernetes").
#
# Required: PATRONI_SCOPE (the cluster), PATRONI_RAFT_PARTNER_ADDRS (every member's Raft address,
# this one's included or not), and for a database member PATRONI_SUPERUSER_PASSWORD and
# PATRONI_REPLICATION_PASSWORD.
# Optional: PATRONI_NAME (default: the host name, a pod's name), TRIBUNE_HOST (the address other
# members reach this one at; default POD_IP, else this host's first address), TRIBUNE_WITNESS=true
# (a Raft voter without a database), TRIBUNE_PG_HBA_CIDR (who may connect with a password;
# default everyone: 0.0.0.0/0 and ::/0), PGDATA.
# Files in /etc/tribune/*.yml (a ConfigMap) are merged over the base, in name order; the
# variables win over both.
# Arguments other than options are run instead of the agent (`sh`, `tribunectl list`).
set -eu

case "${1:-}" in
  ""|-*) ;;
  *) exec "$@" ;;
esac

scope=${TRIBUNE_SCOPE:-${PATRONI_SCOPE:-}}
[ -n "$scope" ] || { echo "tribune-entrypoint: set PATRONI_SCOPE (the cluster's name)" >&2; exit 1; }
partners=${TRIBUNE_RAFT_PARTNER_ADDRS:-${PATRONI_RAFT_PARTNER_ADDRS:-}}
[ -n "$partners" ] || { echo "tribune-entrypoint: set PATRONI_RAFT_PARTNER_ADDRS (every member's Raft host:port)" >&2; exit 1; }
name=${TRIBUNE_NAME:-${PATRONI_NAME:-$(hostname)}}
host=${TRIBUNE_HOST:-${POD_IP:-$(hostname -i | awk '{print $1}')}}
witness=${TRIBUNE_WITNESS:-false}
pgdata=${PGDATA:-/var/lib/postgresql/data/pgdata}
data=$(dirname "$pgdata")
cidr=${TRIBUNE_PG_HBA_CIDR:-}

dir=$(mktemp -d "${TMPDIR:-/tmp}/tribune.XXXXXX")
base=$dir/00-base.yml
{
  printf 'scope: %s\nname: %s\n' "$scope" "$name"
  printf 'restapi:\n  listen: 0.0.0.0:8008\n  connect_address: %s:8008\n' "$host"
  printf 'raft:\n  self_addr: %s:2222\n  bind_addr: 0.0.0.0:2222\n  data_dir: %s/raft\n' "$host" "$data"
  if [ "$witness" != "true" ]; then
    : "${PATRONI_SUPERUSER_PASSWORD:=${TRIBUNE_SUPERUSER_PASSWORD:-}}"
    : "${PATRONI_REPLICATION_PASSWORD:=${TRIBUNE_REPLICATION_PASSWORD:-}}"
    if [ -z "$PATRONI_SUPERUSER_PASSWORD" ] || [ -z "$PATRONI_REPLICATION_PASSWORD" ]; then
      echo "tribune-entrypoint: set PATRONI_SUPERUSER_PASSWORD and PATRONI_REPLICATION_PASSWORD (or TRIBUNE_WITNESS=true)" >&2
      exit 1
    fi
    printf 'postgresql:\n  listen: 0.0.0.0:5432\n  connect_address: %s:5432\n' "$host"
    printf '  data_dir: %s\n  pgpass: %s/pgpass\n' "$pgdata" "$data"
    printf '  authentication:\n'
    printf '    superuser: {username: %s}\n' "${PATRONI_SUPERUSER_USERNAME:-postgres}"
    printf '    replication: {username: %s}\n' "${PATRONI_REPLICATION_USERNAME:-replicator}"
    printf '  pg_hba:\n    - local all all trust\n'
    if [ -n "$cidr" ]; then
      printf '    - host all all %s scram-sha-256\n    - host replication all %s scram-sha-256\n' "$cidr" "$cidr"
    else
      for net in 0.0.0.0/0 ::/0; do
        printf '    - host all all %s scram-sha-256\n    - host replication all %s scram-sha-256\n' "$net" "$net"
      done
    fi
  fi
} > "$base"
# The usernames above are defaults; the variables (passwords included) are applied by the agent.
export PATRONI_SUPERUSER_PASSWORD PATRONI_REPLICATION_PASSWORD 2>/dev/null || true
export PATRONI_RAFT_PARTNER_ADDRS="$partners"

for file in /etc/tribune/*.yml /etc/tribune/*.yaml; do
  [ -f "$file" ] && cp "$file" "$dir/50-$(basename "$file")"
done
exec tribune "$dir"
