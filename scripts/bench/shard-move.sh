#!/usr/bin/env bash
# A logical-shard move under load, on a release server with four physical shards (two on
# 127.0.0.1:5432, two on scripts/pg-second.sh's 127.0.0.1:5434, started here): fills one
# conversation with MESSAGES messages, then moves its logical shard while two senders write
# into it (scripts/bench/shard-move.py prints the figures and checks the history).
# Usage: scripts/bench/shard-move.sh [messages=100000]
# Bounded by MESSAGES; stops the server it starts; drops its databases.
set -euo pipefail
messages=${1:-100000}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/duet"
(cd "$root" && cargo build --release -p duet)
"$root/scripts/pg-second.sh" up >/dev/null
port=${DUET_BENCH_PORT:-18093}
db="duet_move_$$"
urls=()
for i in 0 1 2 3; do
  pg_port=$(( i % 2 == 0 ? 5432 : 5434 ))
  psql -h 127.0.0.1 -p $pg_port -U postgres -qAtc "create database ${db}_$i" >/dev/null
  urls+=("postgres://postgres@127.0.0.1:$pg_port/${db}_$i")
done
server=""
cleanup() {
  [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  for i in 0 1 2 3; do
    psql -h 127.0.0.1 -p $(( i % 2 == 0 ? 5432 : 5434 )) -U postgres -qAtc "drop database if exists ${db}_$i with (force)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
export DUET__SERVER__PORT=$port DUET__AUTH__ATTEMPTS_PER_MINUTE=100000 DUET__TELEMETRY__LOG_LEVEL=warn \
  DUET__LIMITS__SENDS_PER_SECOND=1000000 DUET__LIMITS__SEND_BURST=1000000 \
  DUET__STORAGE__KIND=postgres DUET__STORAGE__POSTGRES__SHARDS="$(IFS=,; echo "${urls[*]}")"
"$bin" serve >"/tmp/$db.log" 2>&1 &
server=$!
for _ in $(seq 1 1000); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.01; done
echo "commit: $(cd "$root" && git log -1 --oneline); $(nproc) cores"
python3 "$root/scripts/bench/shard-move.py" "http://127.0.0.1:$port" "$bin" "$messages"
