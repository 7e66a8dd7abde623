#!/usr/bin/env bash
# The web console (issue 14) in a real browser: headless Chromium (Debian's
# `chromium`) driven by Playwright for Python with that system browser, against
# the release binary on random local ports: one server in keystone mode (users
# and projects made with the CLI) and one in noauth mode.
#
#   tests/console/run.sh            # builds with `cargo build --release` first
#   BLOCKLEDGER_BIN=path/to/blockledger tests/console/run.sh
#
# Env: BLOCKLEDGER_CONSOLE_VENV  virtualenv to use/create (default
#        ${XDG_CACHE_HOME:-$HOME/.cache}/blockledger-console-venv; reused while
#        requirements.txt is unchanged)
#      PYTHON                    interpreter for the venv (default python3)
#      BLOCKLEDGER_CONSOLE_KEEP  a directory to copy the screenshots into
# Installs chromium with apt-get when it is missing (never `playwright install`,
# which downloads browsers). Ends with one line "N passed, M failed"; exits
# non-zero if anything failed.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/blockledger-console.XXXXXX")"
pids=()

stop() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
finish() {
  local rc=$?
  for pid in "${pids[@]}"; do stop "$pid"; done
  if [ -n "${BLOCKLEDGER_CONSOLE_KEEP:-}" ]; then
    mkdir -p "$BLOCKLEDGER_CONSOLE_KEEP" && cp "$work"/*.png "$BLOCKLEDGER_CONSOLE_KEEP"/ 2>/dev/null
  fi
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

setup_failed() {
  echo "console test setup failed: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# --- the browser ---------------------------------------------------------------------
chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
  echo "console: installing chromium"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; setup_failed "apt-get install chromium"; }
fi

# --- the server binary -----------------------------------------------------------------
# shellcheck source=../lib.sh
. "$repo/tests/lib.sh"
release_bin console "$repo"

# --- Playwright's virtualenv (the pattern of tests/clients/run.sh) ----------------------
venv="${BLOCKLEDGER_CONSOLE_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/blockledger-console-venv}"
cached_venv console "$venv" "$here/requirements.txt"

# --- the servers ----------------------------------------------------------------------------
# start NAME ARGS...: serves on a random port; sets $url.
start() {
  local name=$1; shift
  "$bin" serve --listen 127.0.0.1:0 --backend raw "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  url=""
  for _ in $(seq 1 200); do
    url="$(sed -n '1s/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/$name.out" 2>/dev/null)"
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$url" ]; then
    tail -n 20 "$work/$name.err" >&2
    setup_failed "the $name server did not print 'listening on http://...'"
  fi
}

# Passwords are random per run and go to the CLI on stdin, never argv.
pw() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
alice_pw="$(pw)"; bob_pw="$(pw)"; root_pw="$(pw)"
data="$work/keystone"
{
  "$bin" project add alpha --data-dir "$data" &&
  "$bin" project add beta --data-dir "$data" &&
  echo "$alice_pw" | "$bin" user add alice --password-stdin --project alpha --role member --data-dir "$data" &&
  echo "$bob_pw" | "$bin" user add bob --password-stdin --project beta --role member --data-dir "$data" &&
  echo "$root_pw" | "$bin" user add root --password-stdin --project beta --role admin --data-dir "$data"
} >"$work/identity.log" 2>&1 || { cat "$work/identity.log" >&2; setup_failed "making users with the CLI"; }

start keystone --data-dir "$data"; keystone_url="$url"
start noauth --auth noauth --data-dir "$work/noauth"; noauth_url="$url"
echo "console: keystone-mode server at $keystone_url, noauth at $noauth_url"

"$venv/bin/python" "$here/test_console.py" --keystone-url "$keystone_url" --noauth-url "$noauth_url" \
  --work "$work" --member "alice:$alice_pw" --other "bob:$bob_pw" --admin "root:$root_pw" \
  | tee "$work/test.out"
test_rc=${PIPESTATUS[0]}

for name in keystone noauth; do
  if grep -q "panicked" "$work/$name.err"; then
    echo "console: the $name server panicked:" >&2; grep -A5 panicked "$work/$name.err" >&2; test_rc=1
  fi
done
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "console: a server died during the test" >&2; test_rc=1; }
done
summary="$(tail -n 1 "$work/test.out")"
if ! printf '%s\n' "$summary" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
  echo "0 passed, 1 failed"
  exit 1
fi
# The summary printed last by the test is the run's; a failure of the
# servers after it still fails the run.
if [ "$test_rc" -ne 0 ] && [ "${summary#*, }" = "0 failed" ]; then
  echo "${summary%%,*}, 1 failed"
fi
exit "$test_rc"
