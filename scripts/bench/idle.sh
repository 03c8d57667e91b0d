#!/usr/bin/env bash
# Idle WebSockets: what holding them costs one release server (RSS per socket) and how fast a
# message still reaches its recipient's devices meanwhile (`duet-bench idle`), on SQLite.
# Usage: scripts/bench/idle.sh [sockets=10000] [users=1000] [sources=4] [sends=500] [rate=50]
# Every socket is a file descriptor on both sides: both processes get the hard limit
# (`ulimit -Hn`), and the sockets must fit in it. Bounded in time; stops the server it starts.
set -euo pipefail
sockets=${1:-10000}
users=${2:-1000}
sources=${3:-4}
sends=${4:-500}
rate=${5:-50}
root=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$root" && cargo build --release -p duet-bench -p duet)
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$sockets" -gt $((hard - 1024)) ]; then
  echo "$sockets sockets do not fit in this machine's file-descriptor limit ($hard, ulimit -Hn); at most $((hard - 1024))" >&2
  exit 2
fi
ulimit -n "$hard"
dir=$(mktemp -d)
port=${DUET_BENCH_PORT:-18093}
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
env DUET__SERVER__PORT="$port" DUET__STORAGE__SQLITE__PATH="$dir/duet.db" \
  DUET__AUTH__ATTEMPTS_PER_MINUTE=1000000 DUET__LIMITS__SENDS_PER_SECOND=0 \
  DUET__TELEMETRY__LOG_LEVEL=warn "$root/target/release/duet" serve >"$dir/duet.log" 2>&1 &
server=$!
for _ in $(seq 1 500); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.02; done
echo "commit: $(cd "$root" && git log -1 --oneline); $(nproc) cores; file-descriptor limit $hard"
"$root/target/release/duet-bench" idle --url "http://127.0.0.1:$port" --sockets "$sockets" --users "$users" \
  --sources "$sources" --sends "$sends" --rate "$rate" --server-pid "$server"
