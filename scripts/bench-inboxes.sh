#!/usr/bin/env bash
# Figures for issue 11 (BENCHMARKS.md, "Inboxes, comments, contacts"): how long the schema 7
# upgrade takes on a database written by the previous version (it rebuilds the messages
# table), against copying the same file; and what an inbox scope costs the conversation
# list, against the unscoped list and the existing ?channel= filter, in the same run.
#
#   scripts/bench-inboxes.sh          N=100000 conversations of 10 messages (1M messages)
#
# Needs python3 and the sqlite3 CLI. Everything runs on 127.0.0.1 in a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}; ROUNDS=${ROUNDS:-200}; RUNS=${RUNS:-2}
cargo build --release --locked --features bench --bins
bin=$PWD/target/release/channel-bridge
dir=$(mktemp -d /tmp/bench-inboxes.XXXXXX)
trap 'kill $(cat "$dir/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$dir"' EXIT
echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# A schema-6 database: N contacts and conversations (1 % on channel sales, the rest on help),
# 10 inbound messages each. The sqlite3 CLI may predate fts5's contentless_delete (3.43);
# the upgrade under test does not touch message_text, so that option is left out here.
v6=$dir/v6.db
for i in 1 2 3 4 5 6; do
  { echo "BEGIN;"; sed 's/, contentless_delete = 1//' migrations/sqlite/000${i}_*.sql
    echo "; PRAGMA user_version = $i; COMMIT;"; } | sqlite3 "$v6"
done
sqlite3 "$v6" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO contacts (id, display_name, created_at, updated_at)
  SELECT printf('ctc_%026d', i), 'Contact ' || i, 1, 1 FROM n;
INSERT INTO contact_identifiers (channel_id, kind, value, contact_id)
  SELECT CASE WHEN seq % 100 = 0 THEN 'sales' ELSE 'help' END, 'app_user', 'user-' || seq, id FROM contacts;
INSERT INTO tickets (id, pipeline, status, created_at, updated_at)
  SELECT printf('tkt_%026d', seq), 'support', 'new', 1, 1 FROM contacts;
INSERT INTO conversations (id, channel_id, thread_key, status, ticket_id, contact_id, created_at, last_message_at)
  SELECT printf('conv_%026d', k.seq), i.channel_id, 'contact:' || k.id, 'open', printf('tkt_%026d', k.seq),
         k.id, 1000 + k.seq, 1000 + k.seq
  FROM contacts k JOIN contact_identifiers i ON i.contact_id = k.id;
WITH RECURSIVE m(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM m WHERE j < 9)
INSERT INTO messages (id, conversation_id, channel_id, direction, platform_message_id, sender_type,
                      sender_id, parts, raw, delivery_status, created_at)
  SELECT printf('msg_%020d%06d', c.seq, j), c.id, c.channel_id, 'inbound', 'p-' || c.seq || '-' || j,
         'contact', c.contact_id, '[{"type":"text","text":"hello, where is my parcel number ' || c.seq || '?"}]',
         '{"type":"message","id":"p-' || c.seq || '","from":{"id":"user-' || c.seq || '"},"parts":[{"type":"text","text":"hello"}]}',
         'received', 1000 + c.seq
  FROM conversations c, m;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
echo "schema-6 database: $(sqlite3 "$v6" 'SELECT count(*) FROM messages') messages, $(du -m "$v6" | cut -f1) MB"

python3 - "$dir" <<'PY'
import base64, hashlib, sys
d = sys.argv[1]; h = lambda s: hashlib.sha256(s.encode()).hexdigest()
secret = "whsec_" + base64.b64encode(b"bench-secret-key-32-bytes-long!!").decode()
channel = lambda c: f'[channels.{c}]\nkind = "generic"\nsecret = "{secret}"\noutbound_url = "http://127.0.0.1:9/x"\n'
tokens = "".join(f'[[api.tokens]]\nname = "{n}"\nrole = "{r}"\n{rep}sha256 = "{h(n + "-token")}"\n'
                 for n, r, rep in [("admin", "admin", ""), ("alice", "rep", 'rep = "alice"\n'), ("bob", "rep", 'rep = "bob"\n')])
open(f"{d}/config.toml", "w").write(f'''[server]
listen = "127.0.0.1:0"
[storage]
url = "sqlite://{d}/m.db"
[reload]
watch = false
[[reps]]
id = "alice"
[[reps]]
id = "bob"
{tokens}{channel("sales")}{channel("help")}
[inboxes.sales]
channels = ["sales"]
users = ["alice"]
[inboxes.support]
channels = ["help"]
users = ["bob"]
''')
PY

seconds() { python3 -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.2f}")' "$1"; }
for run in $(seq 1 "$RUNS"); do
  rm -f "$dir"/m.db* "$dir/copy.db"
  cp "$v6" "$dir/m.db"; sync
  start=$(date +%s.%N); cp "$v6" "$dir/copy.db"; sync; echo "run $run: copy + sync of the file (baseline): $(seconds "$start") s"
  start=$(date +%s.%N); "$bin" migrate --config "$dir/config.toml" >/dev/null 2>&1
  echo "run $run: upgrade 6 -> 7: $(seconds "$start") s; file now $(du -m "$dir/m.db" | cut -f1) MB"
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/127.0.0.1:0/127.0.0.1:$port/" "$dir/config.toml"
"$bin" serve --config "$dir/config.toml" >"$dir/daemon.log" 2>&1 & echo $! >"$dir/pid"
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
for run in $(seq 1 "$RUNS"); do
  echo "run $run: GET /api/v1/conversations?limit=50, $ROUNDS rounds, interleaved, keep-alive"
  python3 - "$port" "$ROUNDS" <<'PY'
import http.client, json, statistics, sys, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
cases = [("admin (unscoped: before)", "admin-token", ""), ("admin ?channel=sales", "admin-token", "&channel=sales"),
         ("bob (help: 99 %)", "bob-token", ""), ("alice (sales: 1 %)", "alice-token", "")]
conns = {n: http.client.HTTPConnection("127.0.0.1", port) for n, _, _ in cases}
times = {n: [] for n, _, _ in cases}
for r in range(rounds + 20):
    for name, token, extra in cases:
        t = time.perf_counter()
        conns[name].request("GET", "/api/v1/conversations?limit=50" + extra, headers={"Authorization": "Bearer " + token})
        resp = conns[name].getresponse(); body = resp.read()
        assert resp.status == 200 and len(json.loads(body)["items"]) == 50, body[:200]
        if r >= 20:
            times[name].append((time.perf_counter() - t) * 1000)
base = statistics.median(times[cases[0][0]])
for name, _, _ in cases:
    v = sorted(times[name]); p50 = statistics.median(v)
    print(f"  {name:26s} p50 {p50:6.2f} ms ({p50 / base:4.1f}x)  p90 {v[int(len(v) * 0.9)]:6.2f} ms")
PY
done
