#!/usr/bin/env bash
# The real clients with password authentication against the built-in identity
# (issue 13): a server in its default mode (keystone) on a random local port,
# with projects and users made by `blockledger project add` / `user add`, then
# test_identity.py (openstacksdk and the `openstack` CLI, auth URL = this server).
#
#   tests/clients/identity.sh BLOCKLEDGER_BIN PYTHON_OF_THE_CLIENTS_VENV
#
# tests/clients/run.sh calls it after its own checks. Exits non-zero on failure.
set -uo pipefail

bin="$1"
python="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/blockledger-identity.XXXXXX")"
pid=""

finish() {
  local rc=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT

data="$work/data"
# Passwords are random per run and go to the CLI on stdin, never argv.
pw() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
alice_pw="$(pw)"; bob_pw="$(pw)"; rita_pw="$(pw)"
"$bin" project add alpha --data-dir "$data" >/dev/null || exit 1
"$bin" project add beta --data-dir "$data" >/dev/null || exit 1
echo "$alice_pw" | "$bin" user add alice --password-stdin --project alpha --role member --data-dir "$data" >/dev/null || exit 1
echo "$bob_pw" | "$bin" user add bob --password-stdin --project beta --role member --data-dir "$data" >/dev/null || exit 1
echo "$rita_pw" | "$bin" user add rita --password-stdin --project alpha --role reader --data-dir "$data" >/dev/null || exit 1

"$bin" serve --listen 127.0.0.1:0 --backend raw --data-dir "$data" >"$work/server.out" 2>"$work/server.err" &
pid=$!
url=""
for _ in $(seq 1 200); do
  url="$(sed -n '1s/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.out" 2>/dev/null)"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$url" ]; then
  tail -n 20 "$work/server.err" >&2
  echo "identity: the server did not start" >&2
  exit 1
fi
echo "identity: keystone-mode server at $url"
"$python" "$here/test_identity.py" --base-url "$url" \
  --alpha-member "alice:$alice_pw" --beta-member "bob:$bob_pw" --alpha-reader "rita:$rita_pw"
