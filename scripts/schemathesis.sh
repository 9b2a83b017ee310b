#!/usr/bin/env bash
# Checks the running daemon against its own OpenAPI document with schemathesis: every
# operation, all checks, a fixed seed and a small example count, so a run takes about the
# same time and finds the same things on every machine.
#
#   scripts/schemathesis.sh              # builds the debug binary first
#   SKIP_BUILD=1 scripts/schemathesis.sh
#   ST_MAX_EXAMPLES=50 ST_SEED=7 scripts/schemathesis.sh   # a longer or different run
#   scripts/schemathesis.sh --include-path /api/v1/events    # extra arguments go to `st run`
#
# What the checks expect is in scripts/schemathesis.toml: the few operations whose inputs
# name configured or stored things (a rep, a channel, a cursor) may refuse schema-valid
# values with 422, each with its reason there.
#
# Webhooks are exercised as a platform that does not sign would send them: POST
# /hooks/{channel} answers 401 before reading the body (the signature comes first, and
# schemathesis cannot sign), and GET /hooks/{channel} is the WhatsApp handshake or a 405.
# The webhook bodies themselves are covered by the adapters' fixture tests and fuzzing.
#
# schemathesis comes from PyPI at the pinned version below, in a virtualenv under
# target/schemathesis-venv (created when missing; set SCHEMATHESIS=/path/to/st to use
# another). Without python3 or network to install it, the script fails: CI must not pass
# because the check did not run.
#
# The daemon runs with a throw-away config and SQLite file on 127.0.0.1 and a free port:
# a generic channel (webhooks are signed, so generated bodies get 401), a WhatsApp channel
# (its GET handshake), two reps and the built-in pipeline; one conversation is stored
# through a signed webhook first, and its ids are given to the operations on one item.
# Exits non-zero on any failure.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

VERSION=4.32.5
SEED=${ST_SEED:-20261204}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-10}
VENV=$ROOT/target/schemathesis-venv
ADMIN_TOKEN=dev-admin-token

die() { printf 'schemathesis.sh: %s\n' "$*" >&2; exit 2; }

st=${SCHEMATHESIS:-}
if [ -z "$st" ]; then
    st=$VENV/bin/st
    if ! "$st" --version 2>/dev/null | grep -qF "$VERSION"; then
        command -v python3 >/dev/null || die "python3 is missing: cannot install schemathesis $VERSION"
        echo "Installing schemathesis $VERSION into $VENV"
        python3 -m venv "$VENV" || die "could not create a virtualenv (apt-get install python3-venv)"
        "$VENV/bin/pip" install --quiet "schemathesis==$VERSION" \
            || die "could not install schemathesis $VERSION from PyPI"
    fi
fi
"$st" --version >/dev/null 2>&1 || die "schemathesis does not run: $st"

if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --locked --quiet
fi
BIN=$ROOT/target/debug/channel-bridge
[ -x "$BIN" ] || die "$BIN is missing: build it first"

WORK=$(mktemp -d)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
cat >"$WORK/config.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
public_url = "$BASE"

[storage]
url = "sqlite://$WORK/bridge.db"

[[api.tokens]]
name = "admin"
role = "admin"
sha256 = "$(printf %s "$ADMIN_TOKEN" | sha256sum | cut -d' ' -f1)"

[reload]
watch = false

[[reps]]
id = "alice"
name = "Alice Doe"

[[reps]]
id = "bob"

[channels.demo]
kind = "generic"
secret = "whsec_Y2hhbm5lbC1icmlkZ2UtZGV2LXNlY3JldC1vbmx5ISE="
# Nothing listens on the discard port: replies retry and dead-letter, never leave.
outbound_url = "http://127.0.0.1:9/outbound"

[channels.wa]
kind = "whatsapp"
access_token = "schemathesis-access-token"
app_secret = "schemathesis-app-secret"
verify_token = "schemathesis-verify-token"
phone_number_id = "100000000000000"
api_base = "http://127.0.0.1:9"

# HubSpot mode, so POST /hubspot/webhook checks signatures (401 for generated requests)
# rather than answering 503 hubspot_not_configured; nothing is linked, nothing published.
[hubspot]
app_id = "4242"
client_secret = "schemathesis-client-secret"
access_token = "schemathesis-access-token"
channel_id = "1001"
api_base = "http://127.0.0.1:9"
EOF

RUST_LOG=${RUST_LOG:-error} "$BIN" --config "$WORK/config.toml" serve >"$WORK/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 200); do
    curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$WORK/daemon.log" >&2; die "the daemon exited at start-up"; }
    sleep 0.1
done
curl -fsS "$BASE/healthz" >/dev/null || die "the daemon did not answer /healthz"

# Something to find: one conversation (with its ticket, contact and message) from a signed
# webhook, whose ids the operations on one item are given, so that they get past 404.
body='{"type":"message","id":"st-seed-1","from":{"id":"st-user","name":"Ana"},"parts":[{"type":"text","text":"hello"}]}'
"$BIN" --config "$WORK/config.toml" sign --body "$body" >"$WORK/headers"
curl -fsS -H @"$WORK/headers" -H 'content-type: application/json' --data "$body" \
    "$BASE/hooks/demo" >/dev/null || die "the seed webhook was refused"
read -r conversation ticket contact < <(
    curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/api/v1/conversations" \
        | python3 -c 'import json, sys; c = json.load(sys.stdin)["items"][0]; print(c["id"], c["ticket_id"], c["contact"]["id"])'
)
message=$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/api/v1/conversations/$conversation/messages" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
{
    cat "$ROOT/scripts/schemathesis.toml"
    for item in "conversations $conversation" "tickets $ticket" "contacts $contact" "messages $message"; do
        read -r kind id <<<"$item"
        printf "\n[[operations]]\ninclude-path-regex = '^/api/v1/%s/[{]id[}]'\nparameters = { \"path.id\" = \"%s\" }\n" "$kind" "$id"
    done
} >"$WORK/schemathesis.toml"

status=0
# From the work folder: schemathesis keeps its own files (.schemathesis/) where it runs.
cd "$WORK"
"$st" --config-file "$WORK/schemathesis.toml" run "$BASE/api/openapi.json" \
    --checks all \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --generation-database none \
    --workers 1 \
    --no-color \
    -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$@" || status=$?

if ! kill -0 "$daemon_pid" 2>/dev/null; then
    cat "$WORK/daemon.log" >&2
    die "the daemon died during the run"
fi
exit "$status"
