#!/usr/bin/env bash
# Stops the cluster tests/ceph/start.sh started and removes its directory.
# Takes the conf path (default: $BLOCKLEDGER_CEPH_CONF). Only processes whose
# pid files are in that directory are signalled, so another cluster (or a
# real Ceph on the host) is never touched.
set -uo pipefail
conf=${1:-${BLOCKLEDGER_CEPH_CONF:-}}
[ -n "$conf" ] || { echo "usage: stop.sh CONF (or BLOCKLEDGER_CEPH_CONF)" >&2; exit 2; }
dir=$(dirname "$conf")
case "$dir" in
  /tmp/blockledger-ceph.*) ;;
  *) echo "stop.sh: $dir is not a directory start.sh made" >&2; exit 2 ;;
esac
[ -d "$dir" ] || exit 0
pids=()
for f in "$dir"/run/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  # Only a daemon of this cluster: its command line names this conf.
  if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$conf"; then
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  fi
done
# Bounded wait, then SIGKILL: memstore has nothing worth a clean shutdown.
for _ in $(seq 50); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
rm -rf "$dir"
