#!/usr/bin/env bash
# Duet's test command: every test of the workspace on the `sqlite` profile (the NATS and
# Redis adapter tests included, which skip without those servers) and the generated-client
# check (scripts/client-check.sh, which needs PyPI once) and the README's walk-through
# (scripts/walkthrough.sh --check); then, when PostgreSQL
# answers on 127.0.0.1:5432, its streaming replica on 127.0.0.1:5433 (scripts/pg-replica.sh
# up, left running), the black-box suite on the `postgres` and `postgres-replica` profiles
# and the replica routing tests, then a second server on 127.0.0.1:5434 (scripts/pg-second.sh
# up, left running), the suite on the `sharded` profile (four physical shards over the two
# servers) and the shard move tests; then, with Redis (127.0.0.1:6379) and NATS (127.0.0.1:4222)
# too, the suite on the `medium` profile and the cluster tests (real `duet serve` processes
# with private NATS and Redis servers, and nginx in front, installed here if missing).
#
# Without a server its steps are skipped with a message and the run passes on the rest;
# with CI=true a missing server fails the run at once. Every step runs even when an
# earlier one failed; a summary with times closes the run, non-zero if anything failed.
# Tests name their databases duet_t_<run>_*; this run's leftovers are dropped on exit.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# The tests lowercase DUET_TEST_RUN and keep [a-z0-9_]: do the same, so cleanup matches.
run=${DUET_TEST_RUN:-$(date +%s)_$$}
run=$(printf '%s' "$run" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9' '_' | cut -c1-24)
export DUET_TEST_RUN=$run

admin() { # admin PORT SQL: one statement as postgres on a loopback server
  psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtq -c "$2"
}
pg_answers() { command -v psql >/dev/null 2>&1 && admin 5432 'select 1' >/dev/null 2>&1; }
listens() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; } # listens PORT

# ensure_packages PROGRAM...: installs Debian's package of each missing program (as root).
ensure_packages() {
  local missing=()
  for program in "$@"; do command -v "$program" >/dev/null 2>&1 || missing+=("$program"); done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 1
  echo "== installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# nginx runs in front of the cluster tests' processes (deploy/nginx/duet.conf).
ensure_nginx() {
  [ -x /usr/sbin/nginx ] && return 0
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 1
  echo "== installing nginx (apt-get) for the load-balancer test"
  apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
}

used_postgres=false
cleanup() {
  local status=$?
  if $used_postgres && pg_answers; then
    # A test killed mid-way (Ctrl-C) skips its guards: put the replica back as it found it.
    scripts/pg-replica.sh status >/dev/null 2>&1 || scripts/pg-replica.sh up >/dev/null 2>&1
    admin 5433 'select pg_wal_replay_resume()' >/dev/null 2>&1
    for port in 5432 5434; do
      listens "$port" || continue
      for db in $(admin "$port" "select datname from pg_database where starts_with(datname, 'duet_t_${run}_')"); do
        admin "$port" "drop database if exists \"$db\" with (force)" >/dev/null ||
          echo "test.sh: could not drop $db on port $port" >&2
      done
    done
  fi
  exit "$status"
}
trap cleanup EXIT

summary=()
failed=false
step() { # step NAME COMMAND...: runs it, records ok/FAILED and the time taken
  local name=$1 start=$SECONDS
  shift
  echo "== $name: $*"
  if "$@"; then
    summary+=("ok      $name ($((SECONDS - start)) s)")
  else
    summary+=("FAILED  $name ($((SECONDS - start)) s)")
    failed=true
  fi
}
finish() {
  echo "== summary (run $run)"
  printf '%s\n' "${summary[@]}"
  if $failed; then exit 1; fi
  exit 0
}

postgres_up=false
if pg_answers; then
  postgres_up=true
elif [ "${CI:-}" = true ]; then
  echo "FAILED: CI=true and PostgreSQL does not answer at 127.0.0.1:5432 (user postgres):" \
    "the postgres, postgres-replica and medium profiles need it" >&2
  exit 1
fi
brokers_up=true
for service in "Redis 6379" "NATS 4222"; do
  set -- $service
  if ! listens "$2"; then
    brokers_up=false
    missing_broker="$1 not reachable at 127.0.0.1:$2"
    if [ "${CI:-}" = true ]; then
      echo "FAILED: CI=true and $missing_broker: the medium profile needs it" >&2
      exit 1
    fi
  fi
done
if [ "${CI:-}" = true ] && ! ensure_nginx; then
  echo "FAILED: CI=true and nginx is missing and could not be installed" >&2
  exit 1
fi
ensure_nginx || true

step "workspace, profile sqlite" env DUET_TEST_PROFILE=sqlite cargo test --workspace
# A client generated from the served OpenAPI document walks the README's walk-through;
# without PyPI (openapi-python-client) it is skipped, and under CI=true it fails.
client_check_skipped=$(mktemp)
step "generated client" env CLIENT_CHECK_SKIPPED="$client_check_skipped" scripts/client-check.sh
if [ -s "$client_check_skipped" ]; then
  summary[-1]="SKIPPED: generated client — $(cat "$client_check_skipped")"
fi
rm -f "$client_check_skipped"
# The README's curl walk-through against the debug binary the client check built: its commands
# and what the server prints must be what README.md shows.
if ensure_packages curl jq; then
  step "README walk-through" scripts/walkthrough.sh --check
else
  summary+=("FAILED  README walk-through: curl or jq missing and not installable")
  failed=true
fi

if ! $postgres_up; then
  summary+=("SKIPPED: postgres, postgres-replica profiles — PostgreSQL not reachable at 127.0.0.1:5432")
  finish
fi

used_postgres=true
step "streaming replica" scripts/pg-replica.sh up
replica_up=$([[ "${summary[-1]}" == ok* ]] && echo true || echo false)
step "api, profile postgres" env DUET_TEST_PROFILE=postgres cargo test -p duet-tests --test api
if $replica_up; then
  step "api, profile postgres-replica" \
    env DUET_TEST_PROFILE=postgres-replica cargo test -p duet-tests --test api
  step "replica routing" cargo test -p duet-tests --test replica -- --test-threads=1
else
  summary+=("FAILED  api, profile postgres-replica and replica routing: no replica")
  failed=true
fi
# Four physical shards over two real servers: this one and a second started here.
step "second PostgreSQL server" scripts/pg-second.sh up
if [[ "${summary[-1]}" == ok* ]]; then
  step "api, profile sharded" env DUET_TEST_PROFILE=sharded cargo test -p duet-tests --test api
  step "shard moves" cargo test -p duet-tests --test shards -- --test-threads=2
else
  summary+=("FAILED  api, profile sharded and shard moves: no second PostgreSQL server")
  failed=true
fi
if ! $brokers_up; then
  summary+=("SKIPPED: medium profile and cluster tests — $missing_broker")
  finish
fi
step "api, profile medium" env DUET_TEST_PROFILE=medium cargo test -p duet-tests --test api
step "duet binary" cargo build -p duet --bin duet
# Each cluster test runs three processes and two servers of its own: two at a time is
# plenty for two cores.
step "cluster" cargo test -p duet-tests --test cluster -- --test-threads=2
finish
