#!/usr/bin/env bash
# Fleet benchmark: `tribunectl fleet`'s wall time and peak memory over real clusters on this
# machine, and their projection to 1,000 clusters from the measured growth.
#
# Each cluster is one witness agent (a Raft group of one, no database: about 17 MB), started
# from the release build on an address of its own (127.N.B.H, N = TRIBUNE_TEST_NET, B from 1);
# no stand-in servers. tribunectl asks every cluster at once (GET /cluster, /members, /history,
# /config); each count is run 5 times and the median wall time and the largest peak RSS shown.
# Every agent started is stopped by its PID at the end, whatever happens.
#
# Usage: scripts/bench-fleet.sh [COUNT...]     (default: 10 50 200 400; the largest is started)
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 50 200 400)
max=0
for c in "${counts[@]}"; do [ "$c" -gt "$max" ] && max=$c; done
[ "$max" -le 60000 ] || { echo "bench-fleet: at most 60000 clusters" >&2; exit 1; }
net=${TRIBUNE_TEST_NET:-0}
runs=5

command -v /usr/bin/time >/dev/null 2>&1 || {
  [ "$(id -u)" -eq 0 ] || { echo "bench-fleet: install GNU time (apt-get install time)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
}
cargo build --release --quiet -p tribune-agent -p tribune --bins
agent=$PWD/target/release/tribune
ctl=$PWD/target/release/tribunectl

dir=$(mktemp -d "${TMPDIR:-/tmp}/tribune-bench-fleet.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

host() { echo "127.$net.$((1 + $1 / 250)).$((1 + $1 % 250))"; }
echo "bench-fleet: starting $max witness clusters (127.$net.1.1 onwards)"
for ((k = 0; k < max; k++)); do
  h=$(host "$k")
  mkdir -p "$dir/c$k"
  cat > "$dir/c$k/tribune.yml" <<YML
scope: bench-$k
name: w$k
restapi: {listen: '$h:8008', connect_address: '$h:8008'}
raft: {self_addr: '$h:2222', data_dir: '$dir/c$k/raft'}
log: {level: WARNING}
YML
  "$agent" "$dir/c$k/tribune.yml" > "$dir/c$k/agent.log" 2>&1 &
  pids+=($!)
  echo "http://$h:8008" >> "$dir/all.txt"
done

# Every cluster answers with its member before anything is measured.
deadline=$((SECONDS + 300))
for ((k = 0; k < max; k++)); do
  until curl -sf "http://$(host "$k"):8008/cluster" | grep -q '"name":"w'"$k"'"'; do
    [ $SECONDS -lt $deadline ] || { echo "bench-fleet: cluster $k did not come up:" >&2; tail -5 "$dir/c$k/agent.log" >&2; exit 1; }
    sleep 0.2
  done
done
agents_rss=$(for pid in "${pids[@]}"; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; done | awk '{s += $1} END {printf "%.0f", s / NR / 1024}')
echo "bench-fleet: every cluster answers; an agent's RSS is ${agents_rss} MB on average"

printf '\n%10s  %14s  %14s  %12s\n' clusters "wall (median)" "peak RSS" unreachable
results=()
for c in "${counts[@]}"; do
  head -n "$c" "$dir/all.txt" > "$dir/list-$c.txt"
  walls=()
  rss_max=0
  unreachable=0
  for ((r = 0; r < runs; r++)); do
    # Wall time from the shell's microsecond clock (GNU time's is in hundredths); peak RSS
    # from GNU time.
    start=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$dir/time" "$ctl" fleet --timeout 10 -f json "$dir/list-$c.txt" > "$dir/out.json"
    end=$EPOCHREALTIME
    wall=$(echo "$end - $start" | bc -l)
    read -r rss < "$dir/time"
    walls+=("$wall")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
    n=$(jq '[.[] | select(.Problem != null)] | length' "$dir/out.json")
    [ "$n" -gt "$unreachable" ] && unreachable=$n
    rows=$(jq length "$dir/out.json")
    [ "$rows" -eq "$c" ] || { echo "bench-fleet: $rows rows for $c clusters" >&2; exit 1; }
  done
  median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  printf '%10d  %12.4f s  %11.1f MB  %12d\n' "$c" "$median" "$(echo "$rss_max / 1024" | bc -l)" "$unreachable"
  results+=("$c $median $rss_max")
done

# Least-squares line through the measured points, evaluated at 1,000 clusters.
printf '%s\n' "${results[@]}" | awk '
  { n++; x[n] = $1; t[n] = $2; m[n] = $3 / 1024 }
  END {
    for (i = 1; i <= n; i++) { sx += x[i]; st += t[i]; sm += m[i]; sxx += x[i] * x[i]; sxt += x[i] * t[i]; sxm += x[i] * m[i] }
    d = n * sxx - sx * sx
    if (n < 2 || d == 0) { print "\nbench-fleet: two counts or more are needed for a projection"; exit }
    bt = (n * sxt - sx * st) / d; at = (st - bt * sx) / n
    bm = (n * sxm - sx * sm) / d; am = (sm - bm * sx) / n
    printf "\nprojection to 1000 clusters (least squares over the counts above):\n"
    printf "  wall time %.3f s  (%.3f s + %.2f ms per cluster)\n", at + bt * 1000, at, bt * 1000
    printf "  peak RSS  %.1f MB (%.1f MB + %.1f KB per cluster)\n", am + bm * 1000, am, bm * 1024
  }'
