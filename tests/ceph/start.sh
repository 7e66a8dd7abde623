#!/usr/bin/env bash
# Starts a throwaway single-node Ceph cluster for the RBD tests, all under one
# temporary directory, on loopback only: one ceph-mon (random free port), one
# ceph-mgr, one ceph-osd on memstore (objects in the OSD's memory, bounded by
# memstore_device_bytes), and the pool blockledger (size 1, `rbd pool init`).
# Debian's packages (ceph-mon ceph-mgr ceph-osd ceph-common, 16.2 "pacific"),
# run as root, no systemd: every daemon forks itself and writes a pid file
# under the directory, which tests/ceph/stop.sh reads.
#
# Auth is cephx, as every real deployment has it: one keyring in the
# directory holds the keys of mon., client.admin, mgr.x and osd.0, and the
# conf names it, so `rbd -c <conf>` (user admin) needs nothing else.
#
# Prints the conf path on stdout (everything else goes to stderr), e.g.
#   export BLOCKLEDGER_CEPH_CONF=$(bash tests/ceph/start.sh)
# The pool is $BLOCKLEDGER_CEPH_POOL (default blockledger). Fails (and
# removes what it made) if the pool is not usable within the deadline
# ($CEPH_START_DEADLINE seconds, default 120).
set -euo pipefail

pool=${BLOCKLEDGER_CEPH_POOL:-blockledger}
deadline=${CEPH_START_DEADLINE:-120}
# What the OSD reports as its size and refuses to store beyond (MemStore's
# device size): the tests write a few MiB; a bound keeps a runaway test
# from eating the machine's memory.
mem_bytes=${CEPH_MEMSTORE_BYTES:-$((4 << 30))}

for tool in ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool rbd; do
  command -v "$tool" >/dev/null || { echo "start.sh: $tool not found (apt-get install ceph-mon ceph-mgr ceph-osd ceph-common)" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/blockledger-ceph.XXXXXX)
conf=$dir/ceph.conf
started=$(date +%s.%N)
ok=0
cleanup() {
  if [ "$ok" != 1 ]; then
    echo "start.sh: failed; logs:" >&2
    tail -n 20 "$dir"/log/*.log >&2 2>/dev/null || true
    bash "$(dirname "$0")/stop.sh" "$conf" >&2 || true
  fi
}
trap cleanup EXIT

# Two free loopback ports (msgr2 and the legacy v1 protocol, as every
# Ceph since Nautilus serves both): bound by the kernel, released, handed to
# the mon.
read -r port2 port1 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
fsid=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$dir/log" "$dir/run" "$dir/mon.a" "$dir/mgr.x" "$dir/osd.0"

cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port2,v1:127.0.0.1:$port1]
public addr = 127.0.0.1
keyring = $dir/keyring
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = $dir/run
# One OSD on one host: one copy, placed on the OSD, not across hosts.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mgr initial modules =

# Daemons only: a client (every rbd command) would fight over one socket
# name and one log.
[mon]
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log

mon data = $dir/mon.\$id

[mgr]
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mgr data = $dir/mgr.\$id

[osd]
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
osd data = $dir/osd.\$id
osd objectstore = memstore
memstore device bytes = $mem_bytes
osd max object name len = 256
osd max object namespace len = 64
CONF

k=$dir/keyring
ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$k" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$k" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$k" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null

monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port2,v1:127.0.0.1:$port1]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$k"
ceph-mon -c "$conf" -i a

c() { timeout 30 ceph -c "$conf" --connect-timeout 10 "$@"; }
# The mon imported mon. from the mkfs keyring; the others go in now
# (idempotent: same keys).
c auth import -i "$k" >&2
ceph-mgr -c "$conf" -i x

osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_id=$(c osd new "$osd_uuid")
[ "$osd_id" = 0 ] || { echo "start.sh: expected osd.0, got osd.$osd_id" >&2; exit 1; }
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>&1 | sed "/^$/d" | tail -n 3 >&2
ceph-osd -c "$conf" -i 0 2>&1 | sed "/^$/d" >&2

c osd pool create "$pool" 8 8 >&2
c osd pool set "$pool" size 1 --yes-i-really-mean-it >&2
rbd -c "$conf" pool init "$pool"

# Usable = an image can be made and removed; HEALTH_OK is waited for too,
# but a lingering warning after the pool works is reported, not fatal.
end=$(( $(date +%s) + deadline ))
probe="probe-$$"
until rbd -c "$conf" create --size 1M "$pool/$probe" 2>/dev/null && rbd -c "$conf" rm --no-progress "$pool/$probe" >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "start.sh: pool $pool not usable within ${deadline}s" >&2
    c -s >&2 || true
    exit 1
  fi
  sleep 0.5
done
health=""
until health=$(c health 2>/dev/null) && [ "${health%% *}" = HEALTH_OK ]; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "start.sh: pool usable but health is: $health" >&2
    break
  fi
  sleep 0.5
done
ok=1
echo "start.sh: ceph up in $(python3 -c "import time; print(round(time.time()-$started,1))")s: $health; conf $conf, pool $pool" >&2
echo "$conf"
