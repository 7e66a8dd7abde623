#!/usr/bin/env bash
# OpenStack's own conformance suite (tempest 47's tempest.api.volume, unmodified)
# against the release binary on a random local port, through
# ../shared/tempest/run.sh (its token shim stands in for Keystone; noauth).
#
#   tests/tempest/run.sh                  # builds with `cargo build --release` first
#   BLOCKLEDGER_BIN=path tests/tempest/run.sh
#
# Fails when a test fails that is not listed in expected-failures.txt beside this
# script (each entry says why it cannot pass here, or which open issue builds it);
# a listed test that passes is reported so the list can shrink. Prints tempest's
# totals and one line "tempest: R ran, P passed, S skipped, F failed (E expected)".
# Env: BLOCKLEDGER_TEMPEST_VENV  virtualenv (default ~/.cache/blockledger-tempest-venv)
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
shared="$repo/../shared/tempest/run.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/blockledger-tempest.XXXXXX")"
server_pid=""
finish() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$rc"
}
trap finish EXIT
[ -f "$shared" ] || { echo "tempest: $shared not found (../shared beside the repo)" >&2; exit 1; }

if [ -n "${BLOCKLEDGER_BIN:-}" ]; then
  bin="$BLOCKLEDGER_BIN"
else
  (cd "$repo" && cargo build --release --quiet) || { echo "tempest: cargo build failed" >&2; exit 1; }
  bin="$repo/target/release/blockledger"
fi

mkdir -p "$work/data"
"$bin" serve --auth noauth --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=""
for _ in $(seq 1 200); do
  url="$(sed -n '1s/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/server.out" 2>/dev/null)"
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { tail -n 20 "$work/server.err" >&2; echo "tempest: the server did not start" >&2; exit 1; }

# The venv is cached across runs (tempest from PyPI is ~1 minute to install).
export TEMPEST_VENV="${BLOCKLEDGER_TEMPEST_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/blockledger-tempest-venv}"
export TEMPEST_SHIM_PORT="${TEMPEST_SHIM_PORT:-$((20000 + RANDOM % 20000))}"
bash "$shared" "$url" '^tempest\.api\.volume\.' "$work/ws" >"$work/tempest.out" 2>&1
grep -A8 '^Totals' "$work/tempest.out" | sed -n '3,7p'

# Failed ids: a test's dotted name, or the class of a failed setUpClass.
grep -E '\.\.\. FAILED' "$work/tempest.out" \
  | sed -E 's/^\{[0-9]+\} //; s/ \[[0-9.]+s\] \.\.\. FAILED$//; s/\[[^]]*\]$//; s/^setUpClass \((.*)\)$/\1/' \
  | sort -u >"$work/failed"
sed -E 's/#.*//; s/[[:space:]]+$//; /^$/d' "$here/expected-failures.txt" | sort -u >"$work/expected"
unexpected="$(comm -23 "$work/failed" "$work/expected")"
fixed="$(comm -13 "$work/failed" "$work/expected")"
ran=$(sed -n 's/^Ran: \([0-9]*\) tests.*/\1/p' "$work/tempest.out")
passed=$(sed -n 's/^ - Passed: \([0-9]*\)/\1/p' "$work/tempest.out")
skipped=$(sed -n 's/^ - Skipped: \([0-9]*\)/\1/p' "$work/tempest.out")
failed=$(wc -l <"$work/failed")
expected=$(comm -12 "$work/failed" "$work/expected" | wc -l)
[ -n "$fixed" ] && { echo "tempest: listed as expected to fail but passed (shrink expected-failures.txt):"; echo "$fixed" | sed 's/^/  /'; }
echo "tempest: ${ran:-0} ran, ${passed:-0} passed, ${skipped:-0} skipped, $failed failed ($expected expected)"
if [ -z "$ran" ]; then
  tail -n 40 "$work/tempest.out" >&2; echo "tempest: did not run" >&2; exit 1
fi
if [ -n "$unexpected" ]; then
  echo "tempest: unexpected failures:" >&2; echo "$unexpected" | sed 's/^/  /' >&2
  grep -B2 -A30 -F "$(echo "$unexpected" | head -n 3)" "$work/tempest.out" | tail -n 80 >&2
  exit 1
fi
