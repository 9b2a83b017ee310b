#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md, in one run: the bare HTTP baseline and the daemon's
# ingest back to back (same client, same concurrency), delivery at 1k/s, unthrottled (200
# conversations, and 64 producers as issue #22 sets it) and
# from a backlog, memory, the config reload soak, and HubSpot publishing (limiter on and off). Prints every figure with its ratio
# to the baseline measured in this same run, and whether the issue's targets are met.
#
#   scripts/bench.sh            the full run (about 5 minutes with RUNS=2)
#   scripts/bench.sh --smoke    tiny counts, a few seconds: checks the tooling works
#   GROWTH=1 scripts/bench.sh   adds the growth scenario (1M stored messages, ~5 minutes)
#   GROWTH=1 GROWTH_MESSAGES=10000000 GROWTH_CONTACTS=100000 GROWTH_DIRECT=1 scripts/bench.sh
#                               the 10M growth run, filled by the direct loader (~15 minutes,
#                               12 GB in the temp folder)
#
# Knobs (env): CONCURRENCY (64), DURATION seconds per load (10), CONTACTS (1000),
# RUNS (2: every scenario runs this many times), DELIVER_COUNT (20000),
# CONVERSATIONS (200), RATE (1000), RELOADS (100), SOAK_RATE (500), REPORT (file),
# GROWTH (0), GROWTH_MESSAGES (1000000), GROWTH_CONTACTS (10000), GROWTH_DIRECT (0: fill
# through HTTP; 1: the direct loader), HUBSPOT_COUNT (20000),
# HUBSPOT_LIMITED_COUNT (330: three windows of HubSpot's 110 / 10 s, about 20 s).
# PG=postgres://USER@HOST:PORT adds, in each run, ingest and the backlog drain on
# PostgreSQL (label runN/pg) and the drain shared by 3 replicas (runN/pg3), each on a
# database of its own made there and dropped after.
# Everything goes to 127.0.0.1; every scenario spawns its own daemon on a temp database.
set -uo pipefail
cd "$(dirname "$0")/.."

smoke=false
if [[ "${1:-}" == "--smoke" ]]; then smoke=true; fi

cargo build --release --locked --features bench --bins || exit 1
bench=target/release/channel-bridge-bench
report=${REPORT:-target/bench/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$report")"

if $smoke; then
  load=(--count 500); concurrency=8; contacts=50; runs=1
  conversations=20; deliver=(--count 500 --conversations 20); rate_count=300; rate=${RATE:-1000}
  producers=(--count 500 --conversations 8)
  reloads=10; soak_rate=200
  growth=(--messages 2000 --fill-contacts 100 --count 300 --queries 5)
  hubspot=(--count 300 --conversations 20); hubspot_limited=(--count 60 --conversations 20)
else
  load=(--duration "${DURATION:-10}"); concurrency=${CONCURRENCY:-64}
  contacts=${CONTACTS:-1000}; runs=${RUNS:-2}
  conversations=${CONVERSATIONS:-200}
  deliver=(--count "${DELIVER_COUNT:-20000}" --conversations "$conversations")
  rate=${RATE:-1000}; rate_count=$((rate * 10))
  # Issue #22's setup: 64 producers of replies, as fast as the API takes them (paced).
  producers=(--count "${DELIVER_COUNT:-20000}" --conversations "${PRODUCERS:-64}")
  reloads=${RELOADS:-100}; soak_rate=${SOAK_RATE:-500}
  growth=(--messages "${GROWTH_MESSAGES:-1000000}" --fill-contacts "${GROWTH_CONTACTS:-10000}"
          --duration "${DURATION:-10}" --queries 200)
  hubspot=(--count "${HUBSPOT_COUNT:-20000}" --conversations "$conversations")
  hubspot_limited=(--count "${HUBSPOT_LIMITED_COUNT:-330}" --conversations "$conversations")
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), kernel $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine makes figures noisy)"
echo "results: $report"

failed=0
step() {
  echo "== $*" >&2
  if ! "$bench" "$@" --report "$report" >/dev/null; then
    echo "   FAILED (errors, lost messages or inversions; see $report)" >&2
    failed=1
  fi
}

pg_dbs=()
# A fresh PostgreSQL database on $PG for one scenario; prints its URL.
pg_db() {
  local name
  name="bench_$(date +%s%N)"
  psql -q "$PG/postgres" -c "CREATE DATABASE $name" >/dev/null || return 1
  echo "$PG/$name"
}

for run in $(seq 1 "$runs"); do
  step client "${load[@]}" --concurrency "$concurrency" --contacts "$contacts" --label "run$run"
  step ingest "${load[@]}" --concurrency "$concurrency" --contacts "$contacts" --label "run$run"
  step deliver --count "$rate_count" --conversations "$conversations" --rate "$rate" --label "run$run"
  step deliver "${deliver[@]}" --label "run$run"
  step deliver "${producers[@]}" --label "run$run/producers"
  step deliver "${deliver[@]}" --backlog --label "run$run"
  step reload-soak --reloads "$reloads" --rate "$soak_rate" --concurrency 8 --label "run$run"
  step hubspot-publish "${hubspot[@]}" --label "run$run"
  step hubspot-publish "${hubspot_limited[@]}" --limiter --label "run$run"
  if [[ -n "${PG:-}" ]]; then
    db=$(pg_db) || { echo "cannot create a database on $PG" >&2; exit 1; }; pg_dbs+=("$db")
    step ingest "${load[@]}" --concurrency "$concurrency" --contacts "$contacts" \
      --storage-url "$db" --label "run$run/pg"
    db=$(pg_db) || exit 1; pg_dbs+=("$db")
    step deliver "${deliver[@]}" --backlog --storage-url "$db" --label "run$run/pg"
    db=$(pg_db) || exit 1; pg_dbs+=("$db")
    step deliver "${deliver[@]}" --backlog --replicas 3 --storage-url "$db" --label "run$run/pg3"
  fi
done
for db in "${pg_dbs[@]}"; do
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS ${db##*/}" >/dev/null
done
if $smoke || [[ "${GROWTH:-0}" == 1 ]]; then
  [[ "${GROWTH_DIRECT:-0}" == 1 ]] && growth+=(--direct-fill)
  step growth "${growth[@]}" --concurrency "$concurrency" --contacts "$contacts" --label growth
fi

echo
# The report beside the raw results, under the same date: target/bench/results-<UTC>.txt.
"$bench" report "$report" | tee "${report%.jsonl}.txt"
exit "$failed"
