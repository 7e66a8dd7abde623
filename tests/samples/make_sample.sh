#!/usr/bin/env bash
# Writes a sample log (JSON lines, one stored event a line, as stored:
# every column, the hash included) by driving BINARY through a fixed
# scenario: volumes, a snapshot, clones from it and from a volume, a
# rename, an extend, metadata, a refused command, a transfer to another
# project, deletes. tests/upcast.rs replays the samples; run this with the
# blockledger of each event version to keep its log (see README there).
#   tests/samples/make_sample.sh target/debug/blockledger tests/samples/log-vN.jsonl
set -euo pipefail
BIN=$1 OUT=$2
DIR=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
"$BIN" serve --listen 127.0.0.1:$PORT --backend raw --auth noauth --data-dir "$DIR" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
U=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf $U/ >/dev/null && break; sleep 0.1; done
call() { # METHOD PATH TOKEN [BODY]
  curl -s -X "$1" "$U$2" -H "X-Auth-Token: $3" -H 'Content-Type: application/json' ${4:+-d "$4"}
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_for() { # PATH TOKEN PYTHON-EXPR-ON-d
  for _ in $(seq 300); do
    if call GET "$1" "$2" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($3) else 1)" 2>/dev/null; then return; fi
    sleep 0.05
  done
  echo "timeout waiting for $1" >&2; exit 1
}
A=alice:p1 B=bob:p2
alpha=$(call POST /v3/p1/volumes $A '{"volume":{"size":1,"name":"alpha","metadata":{"tier":"gold"}}}' | field 'd["volume"]["id"]')
wait_for /v3/p1/volumes/$alpha $A 'd["volume"]["status"]=="available"'
snap=$(call POST /v3/p1/snapshots $A "{\"snapshot\":{\"volume_id\":\"$alpha\",\"name\":\"alpha-1\"}}" | field 'd["snapshot"]["id"]')
wait_for /v3/p1/snapshots/$snap $A 'd["snapshot"]["status"]=="available"'
from_snap=$(call POST /v3/p1/volumes $A "{\"volume\":{\"size\":1,\"name\":\"from-snapshot\",\"snapshot_id\":\"$snap\"}}" | field 'd["volume"]["id"]')
wait_for /v3/p1/volumes/$from_snap $A 'd["volume"]["status"]=="available"'
clone=$(call POST /v3/p1/volumes $A "{\"volume\":{\"size\":1,\"name\":\"clone\",\"source_volid\":\"$alpha\"}}" | field 'd["volume"]["id"]')
wait_for /v3/p1/volumes/$clone $A 'd["volume"]["status"]=="available"'
call PUT /v3/p1/volumes/$alpha $A '{"volume":{"name":"alpha-renamed","description":"the first"}}' >/dev/null
call POST /v3/p1/volumes/$clone/action $A '{"os-extend":{"new_size":2}}' >/dev/null
wait_for /v3/p1/volumes/$clone $A 'd["volume"]["size"]==2 and d["volume"]["status"]=="available"'
# Refused: a volume cannot shrink (a CommandRejected in the log).
call POST /v3/p1/volumes/$clone/action $A '{"os-extend":{"new_size":1}}' >/dev/null
# The clone goes to project p2.
tr=$(call POST /v3/p1/os-volume-transfer $A "{\"transfer\":{\"volume_id\":\"$clone\",\"name\":\"to-p2\"}}")
tid=$(echo "$tr" | field 'd["transfer"]["id"]'); key=$(echo "$tr" | field 'd["transfer"]["auth_key"]')
call POST /v3/p2/os-volume-transfer/$tid/accept $B "{\"accept\":{\"auth_key\":\"$key\"}}" >/dev/null
wait_for /v3/p2/volumes/$clone $B 'd["volume"]["status"]=="available"'
call DELETE /v3/p1/volumes/$from_snap $A >/dev/null
wait_for /v3/p1/volumes/$from_snap $A 'd.get("itemNotFound") is not None'
kill $PID; wait $PID 2>/dev/null || true
sqlite3 -readonly "$DIR/blockledger.db" "SELECT json_object('position', position, 'stream_id', stream_id,
  'stream_version', stream_version, 'event_id', event_id, 'event_type', event_type, 'v', v,
  'data', json(data), 'metadata', json(metadata), 'recorded_at', recorded_at, 'hash', hash)
  FROM events ORDER BY position" > "$OUT"
wc -l "$OUT"
