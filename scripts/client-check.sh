#!/usr/bin/env bash
# The generated-client check: builds the debug `duet`, starts it on SQLite (a fresh database
# in a temporary folder, a free loopback port), fetches its /openapi.json, generates a Python
# client from it with openapi-python-client, and runs the README's walk-through through that
# client (scripts/client_check/walkthrough.py: strict statuses, strict models, no undeclared
# fields). A document that drifts from what the server does fails here.
#
# openapi-python-client (pinned) is installed from PyPI into a venv under the cargo target
# folder, once; later runs reuse it. Without PyPI the check prints SKIPPED and passes; with
# CI=true it fails instead. If CLIENT_CHECK_SKIPPED names a file, the skip reason is written
# there (scripts/test.sh reports it in its summary).
#
# Bounded in time: the server has 60 s to answer and the walk-through 120 s. The server is
# stopped and the temporary folder removed on every exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

GENERATOR_VERSION=0.29.1
DATEUTIL_VERSION=2.9.0.post0 # the generated client parses times with it
target=${CARGO_TARGET_DIR:-$PWD/target}
venv=$target/client-check/venv-$GENERATOR_VERSION
work=$(mktemp -d "${TMPDIR:-/tmp}/duet-client-check.XXXXXX")
server=

cleanup() {
  local status=$?
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

skip() { # skip REASON: SKIPPED, or FAILED under CI=true
  if [ "${CI:-}" = true ]; then
    echo "FAILED: CI=true and $1" >&2
    exit 1
  fi
  echo "SKIPPED: generated-client check: $1"
  if [ -n "${CLIENT_CHECK_SKIPPED:-}" ]; then printf '%s\n' "$1" >"$CLIENT_CHECK_SKIPPED"; fi
  exit 0
}

if [ ! -f "$venv/.installed" ]; then
  echo "== installing openapi-python-client $GENERATOR_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" >"$work/venv.log" 2>&1 ||
    { cat "$work/venv.log" >&2; skip "python3 cannot make a venv"; }
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 20 --retries 1 \
    "openapi-python-client==$GENERATOR_VERSION" "python-dateutil==$DATEUTIL_VERSION" \
    >"$work/pip.log" 2>&1; then
    tail -n 3 "$work/pip.log" >&2
    rm -rf "$venv"
    skip "openapi-python-client $GENERATOR_VERSION cannot be installed from PyPI"
  fi
  touch "$venv/.installed"
fi

echo "== cargo build -p duet --bin duet"
cargo build --quiet -p duet --bin duet

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
echo "== starting duet on $base (SQLite in $work)"
# Only the settings given here: nothing from the caller's DUET_* environment.
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  DUET__SERVER__HOST=127.0.0.1 DUET__SERVER__PORT="$port" \
  DUET__STORAGE__SQLITE__PATH="$work/duet.db" DUET__TELEMETRY__LOG_FORMAT=json \
  "$target/debug/duet" serve >"$work/server.log" 2>&1 &
server=$!

server_log() {
  echo "-- the server's last log lines:" >&2
  tail -n 20 "$work/server.log" >&2
}

python3 - "$base" "$server" "$work/openapi.json" <<'PY' || { server_log; exit 1; }
import os, sys, time, urllib.request
base, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(base + "/openapi.json", timeout=5) as answer:
            document = answer.read()
        break
    except OSError as error:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("FAILED: the server exited before answering")
        if time.monotonic() > deadline:
            sys.exit(f"FAILED: the server did not answer within 60 s ({error})")
        time.sleep(0.2)
with open(out, "wb") as file:
    file.write(document)
PY

echo "== generating the client from /openapi.json"
mkdir -p "$work/client"
"$venv/bin/openapi-python-client" generate --path "$work/openapi.json" \
  --output-path "$work/client/duet_client" --meta none \
  --config scripts/client_check/generator.yml --fail-on-warning

echo "== the README's walk-through through the generated client"
if ! PYTHONPATH="$work/client" timeout 120 "$venv/bin/python" \
  scripts/client_check/walkthrough.py "$base"; then
  server_log
  exit 1
fi
