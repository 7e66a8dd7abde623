#!/usr/bin/env bash
# Real-client compatibility test: openstacksdk, the `cinder` CLI and the `openstack`
# CLI, unmodified, against a blockledger server on a random local port.
#
#   tests/clients/run.sh            # builds with `cargo build --release` first
#   BLOCKLEDGER_BIN=path/to/blockledger tests/clients/run.sh
#
# Env: BLOCKLEDGER_CLIENTS_VENV  virtualenv to use/create
#        (default ${XDG_CACHE_HOME:-$HOME/.cache}/blockledger-clients-venv; reused while
#        requirements.txt is unchanged)
#      PYTHON                    interpreter for the venv (default python3, needs >= 3.10)
#      BLOCKLEDGER_CLIENTS_ONLY  sdk|cinder|osc to run one suite
# Ends with one line "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/blockledger-clients.XXXXXX")"
server_pid=""

shim_pid=""
finish() {
  local rc=$?
  if [ -n "$shim_pid" ]; then kill "$shim_pid" 2>/dev/null; wait "$shim_pid" 2>/dev/null; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "server did not stop on SIGTERM within 5s; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null
    fi
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# A failure before the checks run still ends with the countable line.
setup_failed() {
  echo "client test setup failed: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# --- the server binary --------------------------------------------------------------
# shellcheck source=../lib.sh
. "$repo/tests/lib.sh"
release_bin clients "$repo"

# --- the clients' virtualenv ------------------------------------------------------------
venv="${BLOCKLEDGER_CLIENTS_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/blockledger-clients-venv}"
cached_venv clients "$venv" "$here/requirements.txt"

# --- the server ---------------------------------------------------------------------------
mkdir -p "$work/data"
"$bin" serve --auth noauth --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=""
for _ in $(seq 1 200); do
  url="$(sed -n '1s/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.out" 2>/dev/null)"
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$url" ]; then
  echo "--- server stdout ---" >&2; cat "$work/server.out" >&2
  echo "--- server stderr ---" >&2; tail -n 40 "$work/server.err" >&2
  setup_failed "server did not print 'listening on http://...'"
fi
echo "clients: server $bin at $url (data $work/data)"

# --- a Keystone stand-in, for the one command that needs a service catalog -------------
# `openstack limits show` asks compute as well unless the catalog lists no compute; the
# test-only token shim beside the tempest runner answers with a block-storage catalog.
shim="$repo/../shared/tempest/token_shim.py"
keystone=()
if [ -f "$shim" ]; then
  shim_port=$((20000 + RANDOM % 20000))
  "$venv/bin/python" "$shim" "$shim_port" "$url" >"$work/shim.log" 2>&1 &
  shim_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$shim_port/v3" >/dev/null 2>&1 && break
    sleep 0.05
  done
  keystone=(--keystone-url "http://127.0.0.1:$shim_port/v3")
fi

# --- the checks -------------------------------------------------------------------------
only=()
[ -n "${BLOCKLEDGER_CLIENTS_ONLY:-}" ] && only=(--only "$BLOCKLEDGER_CLIENTS_ONLY")
"$venv/bin/python" "$here/test_clients.py" --base-url "$url" \
  --summary-file "$work/summary.json" "${keystone[@]}" "${only[@]}"
test_rc=$?
[ -n "${BLOCKLEDGER_CLIENTS_ONLY:-}" ] || bash "$here/identity.sh" "$bin" "$venv/bin/python" || test_rc=1

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "clients: the server died during the test; its stderr (tail):" >&2
  tail -n 40 "$work/server.err" >&2
  test_rc=1
fi

if [ -f "$work/summary.json" ]; then
  read -r passed failed skipped < <("$venv/bin/python" -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["passed"], s["failed"], s["skipped"])' "$work/summary.json")
else
  passed=0 failed=1 skipped=0
  echo "clients: the test script ended without a summary (exit $test_rc)" >&2
fi
if [ "$test_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$test_rc" -eq 0 ]
