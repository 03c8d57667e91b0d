#!/usr/bin/env bash
# The README's walk-through, command for command: what it prints is what the README shows
# under "prints" (ids, tokens and times aside).
#   scripts/walkthrough.sh              starts the server itself on a fresh SQLite file and a
#                                       free port, runs the walk-through, stops the server
#   scripts/walkthrough.sh URL          runs it against a server already running at URL (its
#                                       database must not have alice and bob yet)
#   scripts/walkthrough.sh --check      starts the server, runs it, and fails unless the output
#                                       is the README's "prints" block (ids, tokens and times
#                                       masked; times must have six fractional digits) and the
#                                       commands below are the README's (scripts/test.sh runs it)
# The server it starts is target/debug/duet (under CARGO_TARGET_DIR when set; build it with
# `cargo build -p duet --bin duet`),
# or DUET_BIN. Needs curl and jq. The commands between the markers below are the README's.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
url=${1:-}
check=false
if [ "$url" = --check ]; then
  check=true
  url=""
fi
server=""
dir=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "$dir" ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

if [ -z "$url" ]; then
  bin=${DUET_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/duet}
  [ -x "$bin" ] || { echo "walkthrough: no server binary at $bin (cargo build -p duet --bin duet)" >&2; exit 1; }
  dir=$(mktemp -d)
  DUET__SERVER__PORT=0 DUET__STORAGE__SQLITE__PATH="$dir/duet.db" DUET__TELEMETRY__LOG_FORMAT=json \
    "$bin" serve >"$dir/server.log" 2>&1 &
  server=$!
  port=""
  for _ in $(seq 1 300); do
    port=$(grep -o '"port":[0-9]*' "$dir/server.log" 2>/dev/null | head -n 1 | cut -d: -f2 || true)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { echo "walkthrough: the server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }
  url="http://127.0.0.1:$port"
fi

if $check; then
  # Runs this script again against the server above and compares with the README.
  mask() { sed -E -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<id>/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z/<time>/g'; }
  readme=$root/README.md
  between() { sed -n '/<!-- walkthrough: begin -->/,/<!-- walkthrough: end -->/p' "$readme"; }
  "$0" "$url" | mask >"$dir/printed"
  between | sed -n '/^```text$/,/^```$/p' | sed '1d;$d' | mask >"$dir/readme-prints"
  between | sed -n '/^```sh$/,/^```$/p' | sed '1,2d;$d' >"$dir/readme-commands"
  sed -n '/^# --- the README.s commands, after its first line ---$/,/^# --- end of the README.s commands ---$/p' \
    "$0" | sed '1d;$d' >"$dir/script-commands"
  status=0
  if ! diff -u "$dir/readme-commands" "$dir/script-commands"; then
    echo "walkthrough: the commands above differ between README.md and $0" >&2
    status=1
  fi
  if ! diff -u "$dir/readme-prints" "$dir/printed"; then
    echo "walkthrough: the server printed the lines marked + where README.md shows those marked -" >&2
    status=1
  fi
  [ $status = 0 ] && echo "walkthrough: README.md's commands and output match the server"
  exit $status
fi

# The README's block starts with B=http://127.0.0.1:8080; here B is the server above.
B=$url
# --- the README's commands, after its first line ---
JSON='content-type: application/json'

# Register Alice and Bob: 201 and the user
curl -s -w '\n' $B/v1/accounts -H "$JSON" \
     -d '{"handle":"alice","password":"correct horse","display_name":"Alice"}'
curl -s -w '\n' $B/v1/accounts -H "$JSON" \
     -d '{"handle":"bob","password":"battery staple"}'

# Log in: 201 and a session whose token goes in `authorization: Bearer …`
A=$(curl -s $B/v1/sessions -H "$JSON" \
     -d '{"handle":"alice","password":"correct horse"}' | jq -r .token)
BT=$(curl -s $B/v1/sessions -H "$JSON" \
     -d '{"handle":"bob","password":"battery staple"}' | jq -r .token)

# Alice opens the conversation: 201 the first time, 200 and the same id after, from either side
C=$(curl -s $B/v1/conversations -H "authorization: Bearer $A" -H "$JSON" \
     -d '{"peer_handle":"bob"}' | jq -r .id)

# Alice sends: 201; the same client_msg_id again returns the original with 200, never a copy
curl -s -w '\nHTTP %{http_code}\n' $B/v1/conversations/$C/messages \
     -H "authorization: Bearer $A" -H "$JSON" -d '{"client_msg_id":"m-1","body":"hi Bob"}'
curl -s -w '\nHTTP %{http_code}\n' $B/v1/conversations/$C/messages \
     -H "authorization: Bearer $A" -H "$JSON" -d '{"client_msg_id":"m-1","body":"hi Bob"}'

# Bob's conversation list, then the history
curl -s $B/v1/conversations -H "authorization: Bearer $BT" \
     | jq -c '.items[] | {peer: .peer.handle, last_seq, read_seq, unread_count}'
curl -s "$B/v1/conversations/$C/messages?limit=50" -H "authorization: Bearer $BT" \
     | jq -c '{seqs: [.items[].seq], bodies: [.items[].body], has_more}'

# Bob marks seq 1 read: the conversation as he now sees it
curl -s $B/v1/conversations/$C/read -H "authorization: Bearer $BT" -H "$JSON" -d '{"seq":1}' \
     | jq -c '{last_seq, read_seq, unread_count, version}'

# Everything that changed for Bob since cursor 0, and the cursor to pass next time
curl -s "$B/v1/sync?since=0" -H "authorization: Bearer $BT" \
     | jq -c '{cursor, has_more, changes: [.changes[] | {peer: .peer.handle, unread_count, version}]}'

# An error: always {"error":{"code","message"}}, here 422
curl -s -w '\nHTTP %{http_code}\n' $B/v1/conversations/$C/messages \
     -H "authorization: Bearer $A" -H "$JSON" -d '{"client_msg_id":"m-2","body":"   "}'
# --- end of the README's commands ---
