#!/usr/bin/env bash
# The `medium` deployment measured: N release `duet serve` processes on PostgreSQL, Redis and
# NATS behind the sample nginx config (deploy/nginx/duet.conf), driven by `duet-bench run`.
#   0. the reference: one process on the same PostgreSQL with in-process delivery (closed loop);
#   1. send → delivery latency across processes: sends go to process A, every WebSocket is
#      on process B (open loop at a fixed rate, then closed loop);
#   2. messages/s through nginx with 1 process vs N processes (closed loop), same run;
#   3. history reads: the Redis history cache's hit ratio under a read load.
# Usage: scripts/bench/cluster.sh [processes=3] [duration=10s] [rate=500] [connections=32]
# Needs PostgreSQL (127.0.0.1:5432), Redis (6379), NATS (4222), nginx, curl. Uses a fresh
# database, stream, consumer and key prefix of its own; stops what it starts and drops them.
# DUET_BENCH_SERVER=path runs that server binary instead of this tree's (an A/B against
# another build, with this tree's duet-bench).
set -euo pipefail
processes=${1:-3}
duration=${2:-10s}
rate=${3:-500}
connections=${4:-32}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="${DUET_BENCH_SERVER:-$root/target/release/duet}"
(cd "$root" && cargo build --release -p duet-bench -p duet >/dev/null 2>&1) || { echo "release build failed" >&2; exit 1; }
dir=$(mktemp -d)
name="duet_bench_cluster_$$"
base_port=${DUET_BENCH_PORT:-18100}
nginx_port=$((base_port + 99))
pids=()
nginx_pid=""

cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $name with (force)" >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists ${name}_single with (force)" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "$name:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

psql -h 127.0.0.1 -U postgres -qAtc "create database $name" >/dev/null
common_env=(
  DUET__STORAGE__KIND=postgres
  DUET__STORAGE__POSTGRES__URL="postgres://postgres@127.0.0.1:5432/$name"
  DUET__DELIVERY__KIND=nats DUET__DELIVERY__NATS__STREAM="$name"
  DUET__DELIVERY__NATS__SUBJECT_PREFIX="$name" DUET__DELIVERY__NATS__CONSUMER="$name"
  DUET__CACHE__KIND=redis DUET__CACHE__REDIS__KEY_PREFIX="$name"
  DUET__LIMITS__SENDS_PER_SECOND=0 DUET__AUTH__ATTEMPTS_PER_MINUTE=1000000
  DUET__SERVER__TRUST_FORWARDED_FOR=true DUET__TELEMETRY__LOG_LEVEL=warn
)
start_process() { # start_process PORT
  env "${common_env[@]}" DUET__SERVER__PORT="$1" "$bin" serve >"$dir/duet-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 500); do curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null && return 0; sleep 0.02; done
  echo "process on port $1 did not start:" >&2; cat "$dir/duet-$1.log" >&2; exit 1
}
start_nginx() { # start_nginx PORT...: (re)starts nginx in front of these processes
  [ -n "$nginx_pid" ] && { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
  local upstreams=""
  for port in "$@"; do upstreams+="    server 127.0.0.1:$port;"$'\n'; done
  awk -v up="$upstreams" -v listen="    listen 127.0.0.1:$nginx_port;" '
    /^ *server 127\.0\.0\.1:/ { if (!done) { printf "%s", up; done = 1 } next }
    /^ *listen / { print listen; next }
    { print }' "$root/deploy/nginx/duet.conf" >"$dir/duet.conf"
  mkdir -p "$dir/nginx"
  cat >"$dir/nginx.conf" <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
daemon off; worker_processes 2; pid $dir/nginx.pid; error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
  include $dir/duet.conf; }
CONF
  nginx -p "$dir/nginx" -c "$dir/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 1 250); do curl -sf "http://127.0.0.1:$nginx_port/health/live" >/dev/null && return 0; sleep 0.02; done
  echo "nginx did not start" >&2; cat "$dir/nginx-error.log" >&2; exit 1
}

echo "commit: $(cd "$root" && git log -1 --oneline); server $bin; $processes processes, $(nproc) cores"
bench=("$root/target/release/duet-bench" run --quiet --users 200 --conversations 100 --duration "$duration")

echo; echo "=== 0. reference: 1 process, in-process delivery, same PostgreSQL, closed loop, $connections connections ==="
psql -h 127.0.0.1 -U postgres -qAtc "create database ${name}_single" >/dev/null
single_port=$((base_port + 98))
env DUET__STORAGE__KIND=postgres DUET__STORAGE__POSTGRES__URL="postgres://postgres@127.0.0.1:5432/${name}_single" \
  DUET__LIMITS__SENDS_PER_SECOND=0 DUET__AUTH__ATTEMPTS_PER_MINUTE=1000000 DUET__TELEMETRY__LOG_LEVEL=warn \
  DUET__SERVER__PORT=$single_port "$bin" serve >"$dir/single.log" 2>&1 &
single=$!
for _ in $(seq 1 500); do curl -sf "http://127.0.0.1:$single_port/health/ready" >/dev/null && break; sleep 0.02; done
"${bench[@]}" --url "http://127.0.0.1:$single_port" --connections "$connections" --server-pid "$single" --json "$dir/single.json"
kill "$single"; wait "$single" 2>/dev/null || true

ports=()
for i in $(seq 0 $((processes - 1))); do ports+=($((base_port + i))); start_process "${ports[-1]}"; done
a="http://127.0.0.1:${ports[0]}"
b="http://127.0.0.1:${ports[-1]}"
front="http://127.0.0.1:$nginx_port"

echo; echo "=== 1a. delivery latency: sends to process A, sockets on process B, open loop at $rate msg/s ==="
"${bench[@]}" --url "$a" --ws-url "$b" --rate "$rate" --connections "$connections" --server-pid "${pids[0]}" --json "$dir/latency.json"
echo; echo "=== 1b. sends to process A, sockets on process B, closed loop, $connections connections ==="
"${bench[@]}" --url "$a" --ws-url "$b" --connections "$connections" --server-pid "${pids[0]}" --json "$dir/across.json"
ref=$(jq -r '.messages_per_sec' "$dir/single.json" 2>/dev/null || echo "?")
across=$(jq -r '.messages_per_sec' "$dir/across.json" 2>/dev/null || echo "?")
echo "messages/s: reference (1 process, in-process delivery) $ref, across processes $across" \
  "($(echo "scale=1; 100 * $across / $ref" | bc 2>/dev/null || echo "?") %)"

echo; echo "=== 2a. through nginx, 1 process, closed loop, $connections connections ==="
start_nginx "${ports[0]}"
"${bench[@]}" --url "$front" --connections "$connections" --json "$dir/one.json"
echo; echo "=== 2b. through nginx, $processes processes, closed loop, $connections connections ==="
start_nginx "${ports[@]}"
"${bench[@]}" --url "$front" --connections "$connections" --json "$dir/all.json"
one=$(jq -r '.messages_per_sec' "$dir/one.json" 2>/dev/null || echo "?")
all=$(jq -r '.messages_per_sec' "$dir/all.json" 2>/dev/null || echo "?")
echo "messages/s: 1 process $one, $processes processes $all"

echo; echo "=== 3. history reads through nginx: cache hit ratio ==="
hits() { local sum=0; for port in "${ports[@]}"; do
  v=$(curl -s "http://127.0.0.1:$port/metrics" | awk -v r="$1" '/^duet_cache_requests_total\{/ && /cache="history"/ && $0 ~ "result=\""r"\"" {s+=$NF} END {print s+0}')
  sum=$(echo "$sum + $v" | bc); done; echo "$sum"; }
h0=$(hits hit); m0=$(hits miss)
"${bench[@]}" --url "$front" --connections "$connections" --reads-per-send 4 --json "$dir/reads.json"
h1=$(hits hit); m1=$(hits miss)
echo "history cache: hits $(echo "$h1 - $h0" | bc), misses $(echo "$m1 - $m0" | bc)," \
  "hit ratio $(echo "scale=3; ($h1 - $h0) / (($h1 - $h0) + ($m1 - $m0) + 0.0001)" | bc)"
