#!/usr/bin/env python3
"""Drive the real OpenStack clients, unmodified, against a running blockledger.

    python test_clients.py --base-url http://127.0.0.1:PORT [--summary-file F]

Three clients, each against /v3 with noauth tokens (`X-Auth-Token: user:project`):

  sdk_*    openstacksdk's block_storage proxy (auth_type admin_token: the token is
           sent verbatim, the endpoint is fixed, version discovery still runs)
  cinder_* the `cinder` CLI (python-cinderclient, its own `noauth` auth type; its
           --os-endpoint is used verbatim, so it must carry the project)
  osc_*    the `openstack volume ...` CLI (python-openstackclient, admin_token)

Every step is a named check. A check whose prerequisite failed is reported as
skipped (it could not run), not as passed. On failure the HTTP exchange the client
logged for that check is printed (keystoneauth's debug log for the SDK, `--debug`
output for the CLIs). Exit status: 0 when nothing failed, 1 otherwise.
"""

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
import warnings

warnings.simplefilter("ignore")

import openstack  # noqa: E402
from openstack import exceptions as sdk_exc  # noqa: E402

WAIT = int(os.environ.get("BLOCKLEDGER_CLIENTS_WAIT", "60"))  # seconds per wait
LOG_TAIL = int(os.environ.get("BLOCKLEDGER_CLIENTS_LOG_TAIL", "6000"))  # chars shown


class Skip(Exception):
    pass


class Checks:
    def __init__(self):
        self.results = []  # (name, "pass"|"fail"|"skip", detail)
        self.state = {}  # check name -> passed?
        self.log = io.StringIO()
        handler = logging.StreamHandler(self.log)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        for name in ("keystoneauth", "openstack"):
            lg = logging.getLogger(name)
            lg.setLevel(logging.DEBUG)
            lg.addHandler(handler)
            lg.propagate = False

    def run(self, name, fn, needs=()):
        """Run fn() as check `name`; fn returns nothing or raises."""
        missing = [n for n in needs if not self.state.get(n)]
        if missing:
            self._record(name, "skip", "prerequisite did not pass: " + ", ".join(missing))
            return None
        self.log.seek(0)
        self.log.truncate()
        start = time.monotonic()
        try:
            value = fn()
        except Skip as e:
            self._record(name, "skip", str(e))
            return None
        except Exception as e:  # noqa: BLE001 - any failure is a failed check
            detail = describe_exception(e)
            http = self.log.getvalue()
            if http.strip():
                detail += "\n--- client HTTP log (tail) ---\n" + tail(http)
            self._record(name, "fail", detail)
            return None
        self._record(name, "pass", "%.1fs" % (time.monotonic() - start))
        return value

    def _record(self, name, outcome, detail):
        self.state[name] = outcome == "pass"
        self.results.append((name, outcome, detail))
        if outcome == "fail":
            print("FAIL %s\n%s" % (name, indent(detail)), flush=True)
        elif outcome == "skip":
            print("SKIP %s (%s)" % (name, detail), flush=True)
        else:
            print("ok   %s (%s)" % (name, detail), flush=True)

    def counts(self):
        c = {"pass": 0, "fail": 0, "skip": 0}
        for _, outcome, _ in self.results:
            c[outcome] += 1
        return c


def describe_exception(e):
    if isinstance(e, CLIError):
        return str(e)
    text = "%s: %s" % (type(e).__name__, e)
    resp = getattr(e, "response", None)
    if resp is not None and not isinstance(e, AssertionError):
        try:
            req = resp.request
            text += "\nrequest: %s %s" % (req.method, req.url)
            text += "\nresponse: %s %s" % (resp.status_code, resp.text[:1000])
        except Exception:  # noqa: BLE001
            pass
    if not isinstance(e, (AssertionError, sdk_exc.SDKException)):
        text += "\n" + "".join(traceback.format_exception(e)[-6:])
    return text.rstrip()


def tail(text, n=None):
    n = n or LOG_TAIL
    return text if len(text) <= n else "...[%d chars cut]...\n%s" % (len(text) - n, text[-n:])


def indent(text):
    return "\n".join("    " + line for line in text.splitlines())


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------------------
# Plain HTTP helpers (only for waiting on CLI-created resources and for checks
# on what the server stores; the clients themselves do the real work).


class Api:
    def __init__(self, base, user, project):
        self.base = base.rstrip("/")
        self.project = project
        self.token = "%s:%s" % (user, project)

    def send(self, method, path, body=None, version=None):
        """One request at `version` (a microversion string), JSON in and out."""
        url = "%s/v3/%s%s" % (self.base, self.project, path)
        headers = {"X-Auth-Token": self.token, "Accept": "application/json",
                   "Content-Type": "application/json"}
        if version:
            headers["OpenStack-API-Version"] = "volume " + version
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def get(self, path):
        url = "%s/v3/%s%s" % (self.base, self.project, path)
        req = urllib.request.Request(url, headers={"X-Auth-Token": self.token,
                                                   "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def wait_volume(self, vid, pred, what):
        deadline = time.monotonic() + WAIT
        last = None
        while time.monotonic() < deadline:
            code, body = self.get("/volumes/" + vid)
            last = (code, body)
            if pred(code, body):
                return body
            if code == 200 and body["volume"]["status"] in ("error", "error_extending",
                                                            "error_deleting"):
                break
            time.sleep(0.5)
        raise AssertionError("volume %s never became %s; last GET /volumes/%s -> %s %s"
                             % (vid, what, vid, last[0], json.dumps(last[1])[:800]))

    def wait_snapshot(self, sid, pred, what):
        deadline = time.monotonic() + WAIT
        last = None
        while time.monotonic() < deadline:
            code, body = self.get("/snapshots/" + sid)
            last = (code, body)
            if pred(code, body):
                return body
            time.sleep(0.5)
        raise AssertionError("snapshot %s never became %s; last GET /snapshots/%s -> %s %s"
                             % (sid, what, sid, last[0], json.dumps(last[1])[:800]))


def server_max(base):
    """The maximum microversion /v3 advertises, as (major, minor)."""
    with urllib.request.urlopen(base + "/v3/", timeout=10) as r:
        d = json.loads(r.read())
    v = (d.get("versions") or [d.get("version")])[0]
    major, minor = (v.get("version") or "3.0").split(".")
    return int(major), int(minor)


def mv_str(v):
    return "%d.%d" % v


def qemu_pattern(path, op, pattern):
    """Write (op="write") or check (op="read") a 64 KiB pattern at offset 0 of
    the volume file a connection names, with qemu-io (qemu-utils)."""
    info = json.loads(subprocess.run(["qemu-img", "info", "--force-share", "--output", "json",
                                      path], capture_output=True, text=True,
                                     check=True).stdout)
    out = subprocess.run(["qemu-io", "-f", info["format"], "-c",
                          "%s -P %d 0 64k" % (op, pattern), path],
                         capture_output=True, text=True)
    text = out.stdout + out.stderr
    expect(out.returncode == 0 and "Pattern verification failed" not in text
           and "65536/65536" in text, "qemu-io %s 0x%x on %s: %s" % (op, pattern, path, text))


def status_is(status, **fields):
    def pred(code, body):
        if code != 200:
            return False
        obj = body.get("volume") or body.get("snapshot")
        return obj["status"] == status and all(obj.get(k) == v for k, v in fields.items())
    return pred


def gone(code, body):
    return code == 404


# ---------------------------------------------------------------------------
# openstacksdk


def sdk_connect(base, user, project):
    endpoint = "%s/v3/%s" % (base, project)
    return openstack.connect(
        auth_type="admin_token",
        auth={"token": "%s:%s" % (user, project), "endpoint": endpoint},
        block_storage_endpoint_override=endpoint,
        block_storage_api_version="3",
        load_yaml_config=False,
        load_envvars=False,
        region_name="RegionOne",
    )


def run_sdk(checks, base):
    tag = uuid.uuid4().hex[:8]
    p1, p2 = "proj-a-" + tag, "proj-b-" + tag
    s = {}

    def connect():
        s["c1"] = sdk_connect(base, "alice", p1)
        s["c2"] = sdk_connect(base, "bob", p2)
        s["bs"] = s["c1"].block_storage
        s["bs2"] = s["c2"].block_storage
        # forces version discovery against /v3
        v = s["bs"].get_endpoint()
        expect(v.rstrip("/").endswith("/v3/" + p1), "endpoint %r" % v)
    checks.run("sdk_connect", connect)

    def discovery():
        ver = s["bs"].get_api_major_version()
        expect(ver and ver[0] == 3, "major version %r" % (ver,))
    checks.run("sdk_version_discovery", discovery, needs=["sdk_connect"])

    def create():
        v = s["bs"].create_volume(size=1, name="sdk-vol-" + tag,
                                  description="created by openstacksdk")
        expect(v.id, "no id in create response")
        s["vol"] = v
    checks.run("sdk_volume_create", create, needs=["sdk_connect"])

    def wait_available():
        v = s["bs"].wait_for_status(s["vol"], status="available", failures=["error"],
                                    interval=1, wait=WAIT)
        expect(v.size == 1, "size %r" % v.size)
        s["vol"] = v
    checks.run("sdk_volume_wait_available", wait_available, needs=["sdk_volume_create"])

    def list_plain():
        ids = [v.id for v in s["bs"].volumes(details=False)]
        expect(s["vol"].id in ids, "%s not in %s" % (s["vol"].id, ids))
    checks.run("sdk_volume_list", list_plain, needs=["sdk_volume_create"])

    def list_detail():
        vols = {v.id: v for v in s["bs"].volumes(details=True)}
        expect(s["vol"].id in vols, "%s not in detailed list" % s["vol"].id)
        v = vols[s["vol"].id]
        expect(v.name == "sdk-vol-" + tag, "name %r" % v.name)
        expect(v.size == 1, "size %r" % v.size)
        expect(isinstance(v.is_bootable, bool), "is_bootable %r" % v.is_bootable)
    checks.run("sdk_volume_list_detail", list_detail, needs=["sdk_volume_create"])

    def get():
        v = s["bs"].get_volume(s["vol"].id)
        expect(v.name == "sdk-vol-" + tag, "name %r" % v.name)
        expect(v.description == "created by openstacksdk", "description %r" % v.description)
        expect(v.status == "available", "status %r" % v.status)
        expect(v.is_encrypted is False, "is_encrypted %r" % v.is_encrypted)
        expect(v.is_multiattach is False, "is_multiattach %r" % v.is_multiattach)
    checks.run("sdk_volume_get", get, needs=["sdk_volume_wait_available"])

    def find():
        v = s["bs"].find_volume("sdk-vol-" + tag, ignore_missing=False)
        expect(v.id == s["vol"].id, "found %r" % v.id)
    checks.run("sdk_volume_find_by_name", find, needs=["sdk_volume_wait_available"])

    def update():
        s["bs"].update_volume(s["vol"], description="updated by openstacksdk")
        v = s["bs"].get_volume(s["vol"].id)
        expect(v.description == "updated by openstacksdk", "description %r" % v.description)
    checks.run("sdk_volume_update", update, needs=["sdk_volume_wait_available"])

    def extend():
        s["bs"].extend_volume(s["vol"], 2)
        deadline = time.monotonic() + WAIT
        while True:
            v = s["bs"].get_volume(s["vol"].id)
            if v.status == "available" and v.size == 2:
                break
            expect(v.status not in ("error", "error_extending"), "status %r" % v.status)
            expect(time.monotonic() < deadline, "after %ds: status %r size %r"
                   % (WAIT, v.status, v.size))
            time.sleep(1)
    checks.run("sdk_volume_extend", extend, needs=["sdk_volume_wait_available"])

    def metadata():
        s["bs"].set_volume_metadata(s["vol"], purpose="client-test", owner="sdk")
        v = s["bs"].fetch_volume_metadata(s["vol"])
        expect(v.metadata.get("purpose") == "client-test" and v.metadata.get("owner") == "sdk",
               "metadata %r" % (v.metadata,))
        s["bs"].delete_volume_metadata(s["vol"], keys=["owner"])
        v = s["bs"].get_volume(s["vol"].id)
        expect(v.metadata == {"purpose": "client-test"}, "after delete: %r" % (v.metadata,))
    checks.run("sdk_volume_metadata", metadata, needs=["sdk_volume_wait_available"])

    def snap_create():
        sn = s["bs"].create_snapshot(volume_id=s["vol"].id, name="sdk-snap-" + tag)
        expect(sn.id, "no snapshot id")
        s["snap"] = s["bs"].wait_for_status(sn, status="available", failures=["error"],
                                            interval=1, wait=WAIT)
        expect(s["snap"].volume_id == s["vol"].id, "volume_id %r" % s["snap"].volume_id)
    checks.run("sdk_snapshot_create_wait", snap_create, needs=["sdk_volume_extend"])

    def snap_list():
        ids = [x.id for x in s["bs"].snapshots(details=False)]
        expect(s["snap"].id in ids, "not in plain list %r" % ids)
        snaps = {x.id: x for x in s["bs"].snapshots(details=True)}
        expect(s["snap"].id in snaps, "not in detailed list")
        expect(snaps[s["snap"].id].size == 2, "size %r" % snaps[s["snap"].id].size)
    checks.run("sdk_snapshot_list", snap_list, needs=["sdk_snapshot_create_wait"])

    def snap_get():
        sn = s["bs"].get_snapshot(s["snap"].id)
        expect(sn.name == "sdk-snap-" + tag and sn.status == "available",
               "name %r status %r" % (sn.name, sn.status))
    checks.run("sdk_snapshot_get", snap_get, needs=["sdk_snapshot_create_wait"])

    def snap_delete():
        s["bs"].delete_snapshot(s["snap"])
        s["bs"].wait_for_delete(s["snap"], interval=1, wait=WAIT)
    checks.run("sdk_snapshot_delete", snap_delete, needs=["sdk_snapshot_create_wait"])

    # --- clone of a volume (source_volid) ----------------------------------
    def clone():
        c = s["bs"].create_volume(source_volume_id=s["vol"].id, size=3,
                                  name="sdk-clone-" + tag)
        expect(c.id and c.id != s["vol"].id, "clone id %r" % c.id)
        c = s["bs"].wait_for_status(c, status="available", failures=["error"],
                                    interval=1, wait=WAIT)
        expect(c.size == 3, "clone size %r" % c.size)
        src = s["bs"].get_volume(s["vol"].id)
        expect(src.status == "available", "source status %r" % src.status)
        expect(c.volume_type == src.volume_type and
               c.availability_zone == src.availability_zone,
               "type/zone %r/%r vs source %r/%r" % (c.volume_type, c.availability_zone,
                                                   src.volume_type, src.availability_zone))
        s["bs"].delete_volume(c)
        s["bs"].wait_for_delete(c, interval=1, wait=WAIT)
    checks.run("sdk_volume_clone_from_volume", clone, needs=["sdk_volume_extend"])

    # --- endpoints the CLIs and other tools read --------------------------
    def types():
        list(s["bs"].types())
    checks.run("sdk_types_list", types, needs=["sdk_connect"])

    def azs():
        zones = list(s["bs"].availability_zones())
        expect(zones, "no availability zones")
    checks.run("sdk_availability_zones_list", azs, needs=["sdk_connect"])

    def extensions():
        list(s["bs"].extensions())
    checks.run("sdk_extensions_list", extensions, needs=["sdk_connect"])

    def quotas():
        q = s["bs"].get_quota_set(p1)
        expect(q.volumes is not None, "quota set without volumes: %r" % (q,))
    checks.run("sdk_quota_set_get", quotas, needs=["sdk_connect"])

    # --- reserve / unreserve (attach bookkeeping) ---------------------------
    def reserve():
        s["bs"].reserve_volume(s["vol"])
        v = s["bs"].get_volume(s["vol"].id)
        expect(v.status == "attaching", "status after os-reserve %r" % v.status)
        s["bs"].unreserve_volume(s["vol"])
        s["bs"].wait_for_status(s["vol"], status="available", interval=1, wait=WAIT)
    checks.run("sdk_volume_reserve_unreserve", reserve, needs=["sdk_volume_extend"])

    # --- transfer to another project ----------------------------------------
    def transfer_create():
        v = s["bs"].create_volume(size=1, name="sdk-xfer-" + tag)
        s["xvol"] = s["bs"].wait_for_status(v, status="available", interval=1, wait=WAIT)
        t = s["bs"].create_transfer(volume_id=s["xvol"].id, name="sdk-xfer-" + tag)
        expect(t.id and t.auth_key, "transfer without id/auth_key: %r" % (t.to_dict(),))
        # At the negotiated maximum (issue 17): 3.55's /volume-transfers.
        if server_max(base) >= (3, 55):
            expect("/volume-transfers" in checks.log.getvalue(),
                   "the SDK did not use /volume-transfers at %s" % (server_max(base),))
        s["xfer"] = t
        v = s["bs"].get_volume(s["xvol"].id)
        expect(v.status == "awaiting-transfer", "volume status %r" % v.status)
    checks.run("sdk_transfer_create", transfer_create, needs=["sdk_connect"])

    def transfer_list():
        ids = [t.id for t in s["bs"].transfers()]
        expect(s["xfer"].id in ids, "transfer not listed: %r" % ids)
        t = s["bs"].get_transfer(s["xfer"].id)
        expect(t.volume_id == s["xvol"].id, "volume_id %r" % t.volume_id)
    checks.run("sdk_transfer_list_get", transfer_list, needs=["sdk_transfer_create"])

    def transfer_accept():
        s["bs2"].accept_transfer(s["xfer"].id, s["xfer"].auth_key)
        v = s["bs2"].wait_for_status(s["bs2"].get_volume(s["xvol"].id), status="available",
                                     interval=1, wait=WAIT)
        expect(v.id == s["xvol"].id, "id %r" % v.id)
        try:
            s["bs"].get_volume(s["xvol"].id)
        except sdk_exc.NotFoundException:
            pass
        else:
            raise AssertionError("old project still sees the transferred volume")
        s["xvol2"] = v
    checks.run("sdk_transfer_accept_other_project", transfer_accept,
               needs=["sdk_transfer_create"])

    # --- deletes -------------------------------------------------------------
    def delete():
        s["bs"].delete_volume(s["vol"])
        s["bs"].wait_for_delete(s["vol"], interval=1, wait=WAIT)
        try:
            s["bs"].get_volume(s["vol"].id)
        except sdk_exc.NotFoundException:
            return
        raise AssertionError("volume still there after wait_for_delete")
    checks.run("sdk_volume_delete", delete, needs=["sdk_volume_create"])

    def delete_transferred():
        if s.get("xvol2"):
            s["bs2"].delete_volume(s["xvol2"])
            s["bs2"].wait_for_delete(s["xvol2"], interval=1, wait=WAIT)
        else:
            # accept failed or never ran: take the transfer back and delete as owner
            try:
                s["bs"].delete_transfer(s["xfer"])
            except Exception:  # noqa: BLE001
                pass
            s["bs"].delete_volume(s["xvol"])
            s["bs"].wait_for_delete(s["xvol"], interval=1, wait=WAIT)
    checks.run("sdk_transferred_volume_delete", delete_transferred,
               needs=["sdk_transfer_create"])

    # --- at the negotiated maximum (issue 17) ---------------------------------
    # Attachments (3.27, complete 3.44): create with a connector -> complete ->
    # delete; the volume's status follows. The connection names the volume's
    # real file, so the revert (3.40) below is checked on the bytes.
    def attach(volume):
        a = s["bs"].create_attachment(volume, connector={
            "host": "client-host", "initiator": "iqn.client", "platform": "x86_64",
            "os_type": "linux", "multipath": False}, instance_id=str(uuid.uuid4()))
        expect(a.id, "no attachment id %r" % (a.to_dict(),))
        info = a.connection_info or {}
        expect(info.get("device_path"), "no device_path in %r" % (info,))
        return a, info["device_path"]

    def detach(a, volume_id):
        s["bs"].delete_attachment(a, ignore_missing=False)
        v = s["bs"].wait_for_status(s["bs"].get_volume(volume_id), status="available",
                                    interval=1, wait=WAIT)
        expect(not v.attachments, "attachments after delete %r" % (v.attachments,))

    def attachments():
        if server_max(base) < (3, 44):
            raise Skip("server maximum %s < 3.44" % mv_str(server_max(base)))
        v = s["bs"].create_volume(size=1, name="sdk-att-" + tag)
        s["avol"] = s["bs"].wait_for_status(v, status="available", interval=1, wait=WAIT)
        a, path = attach(s["avol"])
        s["bs"].complete_attachment(a)
        v = s["bs"].wait_for_status(s["bs"].get_volume(s["avol"].id), status="in-use",
                                    interval=1, wait=WAIT)
        expect(any(x.get("attachment_id") == a.id for x in v.attachments or []),
               "attachment %s not on the volume: %r" % (a.id, v.attachments))
        got = s["bs"].get_attachment(a.id)
        expect(got.status == "attached", "attachment status %r" % got.status)
        qemu_pattern(path, "write", 0xA1)
        detach(a, s["avol"].id)
    checks.run("sdk_attachment_create_complete_delete", attachments, needs=["sdk_connect"])

    def revert():
        if server_max(base) < (3, 40):
            raise Skip("server maximum %s < 3.40" % mv_str(server_max(base)))
        sn = s["bs"].create_snapshot(volume_id=s["avol"].id, name="sdk-rev-" + tag)
        sn = s["bs"].wait_for_status(sn, status="available", interval=1, wait=WAIT)
        a, path = attach(s["avol"])
        s["bs"].complete_attachment(a)
        qemu_pattern(path, "write", 0xB2)
        detach(a, s["avol"].id)
        s["bs"].revert_volume_to_snapshot(s["avol"], sn)
        v = s["bs"].wait_for_status(s["bs"].get_volume(s["avol"].id), status="available",
                                    interval=1, wait=WAIT)
        a, path = attach(v)
        qemu_pattern(path, "read", 0xA1)
        s["bs"].delete_attachment(a, ignore_missing=False)
        s["bs"].wait_for_status(s["bs"].get_volume(s["avol"].id), status="available",
                                interval=1, wait=WAIT)
        s["bs"].delete_snapshot(sn)
        s["bs"].wait_for_delete(sn, interval=1, wait=WAIT)
        s["bs"].delete_volume(s["avol"])
        s["bs"].wait_for_delete(s["avol"], interval=1, wait=WAIT)
    checks.run("sdk_volume_revert_to_snapshot_bytes", revert,
               needs=["sdk_attachment_create_complete_delete"])


# ---------------------------------------------------------------------------
# CLIs


class CLIError(AssertionError):
    pass


def cli(argv, env):
    """Run a CLI; returns stdout. Raises CLIError with the debug log on failure."""
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise CLIError("command: %s\nexit status %d\n--- stdout ---\n%s\n--- stderr "
                       "(--debug: HTTP exchange, tail) ---\n%s"
                       % (" ".join(argv), r.returncode, r.stdout.strip()[-1500:],
                          tail(r.stderr)))
    return r.stdout


def cli_json(argv, env):
    out = cli(argv, env)
    try:
        return json.loads(out)
    except ValueError:
        raise CLIError("command: %s\nstdout is not JSON:\n%s" % (" ".join(argv), out[-2000:]))


def clean_env(bindir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CINDER_"))}
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONWARNINGS"] = "ignore"
    return env


def parse_table(out):
    """cinderclient's prettytable output -> dict of first two columns."""
    rows = {}
    for line in out.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2:
            rows[cells[0]] = cells[1]
    return rows


def run_cinder(checks, base, bindir):
    tag = uuid.uuid4().hex[:8]
    project = "proj-cinder-" + tag
    api = Api(base, "carol", project)
    env = clean_env(bindir)
    exe = os.path.join(bindir, "cinder")
    cmd = [exe, "--debug", "--os-auth-type", "noauth", "--os-user-id", "carol",
           "--os-project-id", project, "--os-endpoint", "%s/v3/%s" % (base, project),
           # python-cinderclient at its maximum, as far as the server goes
           # (issue 17): every command below runs at that microversion.
           "--os-volume-api-version", mv_str(min(server_max(base), (3, 71)))]
    s = {}

    def create():
        t = parse_table(cli(cmd + ["create", "--name", "cinder-vol-" + tag, "1"], env))
        expect(t.get("id"), "no id in output %r" % t)
        s["id"] = t["id"]
        api.wait_volume(s["id"], status_is("available"), "available")
    checks.run("cinder_create", create)

    def list_():
        out = cli(cmd + ["list"], env)
        expect(s["id"] in out, "id not in `cinder list`:\n" + out)
    checks.run("cinder_list", list_, needs=["cinder_create"])

    def show():
        t = parse_table(cli(cmd + ["show", s["id"]], env))
        expect(t.get("name") == "cinder-vol-" + tag, "name %r" % t.get("name"))
        expect(t.get("size") == "1" and t.get("status") == "available",
               "size %r status %r" % (t.get("size"), t.get("status")))
    checks.run("cinder_show", show, needs=["cinder_create"])

    def show_by_name():
        t = parse_table(cli(cmd + ["show", "cinder-vol-" + tag], env))
        expect(t.get("id") == s["id"], "id %r" % t.get("id"))
    checks.run("cinder_show_by_name", show_by_name, needs=["cinder_create"])

    def extend():
        cli(cmd + ["extend", s["id"], "2"], env)
        api.wait_volume(s["id"], status_is("available", size=2), "available with size 2")
    checks.run("cinder_extend", extend, needs=["cinder_create"])

    def metadata():
        cli(cmd + ["metadata", s["id"], "set", "k1=v1", "k2=v2"], env)
        out = cli(cmd + ["metadata-show", s["id"]], env)
        t = parse_table(out)
        expect(t.get("k1") == "v1" and t.get("k2") == "v2", "metadata-show:\n" + out)
        cli(cmd + ["metadata", s["id"], "unset", "k2"], env)
        code, body = api.get("/volumes/%s/metadata" % s["id"])
        expect(code == 200 and body["metadata"] == {"k1": "v1"},
               "after unset: %s %r" % (code, body))
    checks.run("cinder_metadata", metadata, needs=["cinder_create"])

    def snapshot_create():
        t = parse_table(cli(cmd + ["snapshot-create", "--name", "cinder-snap-" + tag,
                                   s["id"]], env))
        expect(t.get("id"), "no id in output %r" % t)
        s["snap"] = t["id"]
        api.wait_snapshot(s["snap"], status_is("available"), "available")
    checks.run("cinder_snapshot_create", snapshot_create, needs=["cinder_extend"])

    def snapshot_list():
        out = cli(cmd + ["snapshot-list"], env)
        expect(s["snap"] in out, "snapshot not in `cinder snapshot-list`:\n" + out)
        t = parse_table(cli(cmd + ["snapshot-show", s["snap"]], env))
        expect(t.get("status") == "available", "snapshot-show %r" % t)
    checks.run("cinder_snapshot_list_show", snapshot_list, needs=["cinder_snapshot_create"])

    def snapshot_delete():
        cli(cmd + ["snapshot-delete", s["snap"]], env)
        api.wait_snapshot(s["snap"], gone, "gone (404)")
    checks.run("cinder_snapshot_delete", snapshot_delete, needs=["cinder_snapshot_create"])

    def list_sort():
        # Issue 12: Cinder's `sort=name:asc` (cinderclient sends `sort=`; the
        # `openstack volume list` of OSC 10.5 has no `--sort` option).
        t = parse_table(cli(cmd + ["create", "--name", "cinder-aaa-" + tag, "1"], env))
        api.wait_volume(t["id"], status_is("available"), "available")
        try:
            for d, rev in (("asc", False), ("desc", True)):
                out = cli(cmd + ["list", "--sort", "name:" + d], env)
                got = [ln.split("|")[3].strip() for ln in out.splitlines()
                       if ln.startswith("|") and "-" in ln.split("|")[1]]
                want = sorted(["cinder-aaa-" + tag, "cinder-vol-" + tag], reverse=rev)
                expect(got == want, "name:%s order %r, want %r\n%s" % (d, got, want, out))
        finally:
            cli(cmd + ["delete", t["id"]], env)
            api.wait_volume(t["id"], gone, "gone (404)")
    checks.run("cinder_list_sort", list_sort, needs=["cinder_create"])

    def absolute_limits():
        # Issue 12: `GET /limits`; the project's one volume of 2 GB counts.
        out = cli(cmd + ["absolute-limits"], env)
        t = parse_table(out)
        expect(t.get("maxTotalVolumes") == "10", "maxTotalVolumes %r:\n%s"
               % (t.get("maxTotalVolumes"), out))
        expect(t.get("totalVolumesUsed") == "1" and t.get("totalGigabytesUsed") == "2",
               "usage:\n" + out)
    checks.run("cinder_absolute_limits", absolute_limits, needs=["cinder_extend"])

    def delete():
        cli(cmd + ["delete", s["id"]], env)
        api.wait_volume(s["id"], gone, "gone (404)")
    checks.run("cinder_delete", delete, needs=["cinder_create"])


def run_osc(checks, base, bindir, keystone=None):
    tag = uuid.uuid4().hex[:8]
    project = "proj-osc-" + tag
    api = Api(base, "dave", project)
    env = clean_env(bindir)
    exe = os.path.join(bindir, "openstack")
    cmd = [exe, "--debug", "--os-auth-type", "admin_token", "--os-token",
           "dave:" + project, "--os-endpoint", "%s/v3/%s" % (base, project),
           "--os-volume-api-version", "3.0"]
    s = {}

    def create():
        v = cli_json(cmd + ["volume", "create", "--size", "1", "-f", "json",
                            "osc-vol-" + tag], env)
        expect(v.get("id"), "no id %r" % v)
        s["id"] = v["id"]
        api.wait_volume(s["id"], status_is("available"), "available")
    checks.run("osc_volume_create", create)

    def list_():
        vols = cli_json(cmd + ["volume", "list", "-f", "json"], env)
        expect(any(v.get("ID") == s["id"] for v in vols), "not listed: %r" % vols)
    checks.run("osc_volume_list", list_, needs=["osc_volume_create"])

    def show():
        v = cli_json(cmd + ["volume", "show", "-f", "json", "osc-vol-" + tag], env)
        expect(v.get("id") == s["id"] and v.get("size") == 1, "show %r" % v)
    checks.run("osc_volume_show", show, needs=["osc_volume_create"])

    def extend():
        cli(cmd + ["volume", "set", "--size", "2", s["id"]], env)
        api.wait_volume(s["id"], status_is("available", size=2), "available with size 2")
    checks.run("osc_volume_extend", extend, needs=["osc_volume_create"])

    def metadata():
        cli(cmd + ["volume", "set", "--property", "a=1", "--property", "b=2", s["id"]], env)
        v = cli_json(cmd + ["volume", "show", "-f", "json", s["id"]], env)
        props = v.get("properties")
        expect(props in ({"a": "1", "b": "2"}, "a='1', b='2'"), "properties %r" % (props,))
        cli(cmd + ["volume", "unset", "--property", "b", s["id"]], env)
        code, body = api.get("/volumes/%s/metadata" % s["id"])
        expect(code == 200 and body["metadata"] == {"a": "1"}, "after unset %s %r"
               % (code, body))
    checks.run("osc_volume_properties", metadata, needs=["osc_volume_create"])

    def snapshot_create():
        sn = cli_json(cmd + ["volume", "snapshot", "create", "-f", "json", "--volume",
                             s["id"], "osc-snap-" + tag], env)
        expect(sn.get("id"), "no id %r" % sn)
        s["snap"] = sn["id"]
        api.wait_snapshot(s["snap"], status_is("available"), "available")
    checks.run("osc_snapshot_create", snapshot_create, needs=["osc_volume_extend"])

    def snapshot_list():
        snaps = cli_json(cmd + ["volume", "snapshot", "list", "-f", "json"], env)
        expect(any(x.get("ID") == s["snap"] for x in snaps), "not listed %r" % snaps)
    checks.run("osc_snapshot_list", snapshot_list, needs=["osc_snapshot_create"])

    def snapshot_delete():
        cli(cmd + ["volume", "snapshot", "delete", s["snap"]], env)
        api.wait_snapshot(s["snap"], gone, "gone (404)")
    checks.run("osc_snapshot_delete", snapshot_delete, needs=["osc_snapshot_create"])

    def create_source():
        # Issue 12: a clone (`source_volid`).
        v = cli_json(cmd + ["volume", "create", "--source", s["id"], "-f", "json",
                            "osc-clone-" + tag], env)
        expect(v.get("id"), "no id %r" % v)
        s["clone"] = v["id"]
        body = api.wait_volume(s["clone"], status_is("available", size=2), "available")
        expect(body["volume"]["source_volid"] == s["id"], "source_volid %r"
               % body["volume"].get("source_volid"))
    checks.run("osc_volume_create_source", create_source, needs=["osc_volume_extend"])

    def limits_absolute():
        # Issue 12: `GET /limits`; two volumes of 2 GB each are in use. The
        # `openstack limits show` command asks compute too unless the service
        # catalog has no compute: with `--os-endpoint` (no catalog) it cannot
        # run against any block-storage server, so it authenticates through
        # the test-only Keystone stand-in (../shared/tempest/token_shim.py),
        # whose catalog lists block storage only; its project ids are
        # md5(project name), so this check uses a project of its own.
        if not keystone:
            raise Skip("no Keystone stand-in (../shared/tempest/token_shim.py)")
        pname = "proj-osc-limits-" + tag
        kcmd = [exe, "--debug", "--os-auth-url", keystone, "--os-username", "erin",
                "--os-password", "unused", "--os-project-name", pname,
                "--os-user-domain-name", "Default", "--os-project-domain-name", "Default",
                "--os-volume-api-version", "3.0"]
        pid = hashlib.md5(pname.encode()).hexdigest()
        kapi = Api(base, "erin", pid)
        ids = []
        for size in (1, 2):
            v = cli_json(kcmd + ["volume", "create", "--size", str(size), "-f", "json",
                                 "osc-limits-%d-%s" % (size, tag)], env)
            ids.append(v["id"])
            kapi.wait_volume(v["id"], status_is("available"), "available")
        rows = cli_json(kcmd + ["limits", "show", "--absolute", "-f", "json"], env)
        lim = {r.get("Name"): r.get("Value") for r in rows}
        expect(lim.get("max_total_volumes") == 10 and lim.get("total_volumes_used") == 2
               and lim.get("total_gigabytes_used") == 3, "limits %r" % (lim,))
        for vid in ids:
            cli(kcmd + ["volume", "delete", vid], env)
            kapi.wait_volume(vid, gone, "gone (404)")
    checks.run("osc_limits_show_absolute", limits_absolute)

    def clone_delete():
        cli(cmd + ["volume", "delete", s["clone"]], env)
        api.wait_volume(s["clone"], gone, "gone (404)")
    checks.run("osc_clone_delete", clone_delete, needs=["osc_volume_create_source"])

    def delete():
        cli(cmd + ["volume", "delete", s["id"]], env)
        api.wait_volume(s["id"], gone, "gone (404)")
    checks.run("osc_volume_delete", delete, needs=["osc_volume_create"])

    # Volume types (issue 12): an administrator's, as in Cinder.
    admin = [exe, "--debug", "--os-auth-type", "admin_token", "--os-token",
             "admin:" + project, "--os-endpoint", "%s/v3/%s" % (base, project),
             "--os-volume-api-version", "3.0"]
    admin_api = Api(base, "admin", project)
    tname = "osc-type-" + tag

    def type_show_default():
        t = cli_json(cmd + ["volume", "type", "show", "default", "-f", "json"], env)
        expect(t.get("name") == "SATA", "default type %r" % t)
    checks.run("osc_volume_type_show_default", type_show_default)

    def type_create():
        t = cli_json(admin + ["volume", "type", "create", "--description", "first",
                              "--property", "tier=gold", "-f", "json", tname], env)
        expect(t.get("name") == tname and t.get("id"), "created %r" % t)
        s["type"] = t["id"]
        code, body = admin_api.get("/types/" + s["type"])
        expect(code == 200 and body["volume_type"]["extra_specs"] == {"tier": "gold"}
               and body["volume_type"]["description"] == "first",
               "GET /types/%s -> %s %r" % (s["type"], code, body))
        # A member may not create one.
        try:
            cli(cmd + ["volume", "type", "create", tname + "-member"], env)
        except CLIError as e:
            expect("403" in str(e) or "Forbidden" in str(e) or "forbidden" in str(e),
                   "member create failed, but not with 403:\n" + str(e)[-600:])
        else:
            raise AssertionError("a member created a volume type")
    checks.run("osc_volume_type_create", type_create)

    def type_set():
        cli(admin + ["volume", "type", "set", "--description", "second", "--property",
                     "speed=fast", s["type"]], env)
        code, body = admin_api.get("/types/" + s["type"])
        vt = body["volume_type"] if code == 200 else {}
        expect(vt.get("description") == "second"
               and vt.get("extra_specs") == {"tier": "gold", "speed": "fast"},
               "after set: %s %r" % (code, body))
        # Usable to create a volume, which then names it.
        v = cli_json(cmd + ["volume", "create", "--size", "1", "--type", tname, "-f", "json",
                            "osc-typed-" + tag], env)
        body = api.wait_volume(v["id"], status_is("available"), "available")
        expect(body["volume"]["volume_type"] == tname, "type %r" % body["volume"])
        # Renamed while the volume uses it (Cinder allows it): the volume
        # shows the new name.
        cli(admin + ["volume", "type", "set", "--name", tname + "-renamed", s["type"]], env)
        shown = cli_json(cmd + ["volume", "show", "-f", "json", v["id"]], env)
        expect(shown.get("type") == tname + "-renamed", "after rename: %r" % shown)
        cli(cmd + ["volume", "delete", v["id"]], env)
        api.wait_volume(v["id"], gone, "gone (404)")
    checks.run("osc_volume_type_set", type_set, needs=["osc_volume_type_create"])

    def type_delete():
        cli(admin + ["volume", "type", "delete", s["type"]], env)
        code, body = admin_api.get("/types/" + s["type"])
        expect(code == 404, "after delete: %s %r" % (code, body))
    checks.run("osc_volume_type_delete", type_delete, needs=["osc_volume_type_set"])

    # --- later microversions (issue 17), each at the version it needs -------
    def at(v):
        return [a if a != "3.0" else v for a in cmd]

    def qos_create():
        q = cli_json(admin + ["volume", "qos", "create", "-f", "json", "--consumer", "front-end",
                              "--property", "total_iops_sec=500", "osc-qos-" + tag], env)
        expect(q.get("id") and q.get("consumer") == "front-end", "qos %r" % q)
        code, body = admin_api.get("/qos-specs/" + q["id"])
        expect(code == 200 and body["qos_specs"]["specs"] == {"total_iops_sec": "500"},
               "GET qos-specs %s %r" % (code, body))
        cli(admin + ["volume", "qos", "delete", q["id"]], env)
    checks.run("osc_volume_qos_create", qos_create)

    def group_create():
        if server_max(base) < (3, 13):
            raise Skip("server maximum %s < 3.13" % mv_str(server_max(base)))
        adm13 = [a if a != "3.0" else "3.13" for a in admin]
        gt = cli_json(adm13 + ["volume", "group", "type", "create", "-f", "json",
                               "osc-gt-" + tag], env)
        # osc prints these with capitalized column names.
        gt_id = gt.get("id") or gt.get("ID")
        expect(gt_id, "group type %r" % gt)
        g = cli_json(at("3.13") + ["volume", "group", "create", "-f", "json",
                                   "--volume-group-type", gt_id, "--volume-type",
                                   "SSD", "--name", "osc-group-" + tag], env)
        g_id = g.get("id") or g.get("ID")
        expect(g_id, "group %r" % g)
        deadline = time.monotonic() + WAIT
        while True:
            code, body = api.send("GET", "/groups/" + g_id, version="3.13")
            if code == 200 and body["group"]["status"] == "available":
                break
            expect(time.monotonic() < deadline, "group never available: %s %r" % (code, body))
            time.sleep(0.5)
        cli(at("3.13") + ["volume", "group", "delete", g_id], env)
        deadline = time.monotonic() + WAIT
        while api.send("GET", "/groups/" + g_id, version="3.13")[0] != 404:
            expect(time.monotonic() < deadline, "group not deleted")
            time.sleep(0.5)
        cli(adm13 + ["volume", "group", "type", "delete", gt_id], env)
    checks.run("osc_volume_group_create", group_create)

    def attachment_complete_delete():
        # `volume attachment create` asks Nova for the server first (no
        # compute endpoint here), so the record is made through the API
        # and completed and deleted through the CLI.
        if server_max(base) < (3, 44):
            raise Skip("server maximum %s < 3.44" % mv_str(server_max(base)))
        v = cli_json(cmd + ["volume", "create", "--size", "1", "-f", "json",
                            "osc-att-" + tag], env)
        api.wait_volume(v["id"], status_is("available"), "available")
        code, body = api.send("POST", "/attachments", {"attachment": {
            "volume_uuid": v["id"], "instance_uuid": str(uuid.uuid4()),
            "connector": {"host": "osc-host", "initiator": "iqn.osc"}}}, version="3.44")
        expect(code == 200, "attachment create %s %r" % (code, body))
        att = body["attachment"]["id"]
        cli(at("3.44") + ["volume", "attachment", "complete", att], env)
        api.wait_volume(v["id"], status_is("in-use"), "in-use")
        shown = cli_json(at("3.44") + ["volume", "attachment", "show", "-f", "json", att], env)
        expect(shown.get("Status") == "attached" or shown.get("status") == "attached",
               "attachment show %r" % shown)
        cli(at("3.44") + ["volume", "attachment", "delete", att], env)
        api.wait_volume(v["id"], status_is("available"), "available")
        s["att_vol"] = v["id"]
    checks.run("osc_volume_attachment_complete_delete", attachment_complete_delete)

    def revert():
        if server_max(base) < (3, 40):
            raise Skip("server maximum %s < 3.40" % mv_str(server_max(base)))
        vid = s["att_vol"]
        sn = cli_json(cmd + ["volume", "snapshot", "create", "-f", "json", "--volume", vid,
                             "osc-rev-" + tag], env)
        api.wait_snapshot(sn["id"], status_is("available"), "available")
        cli(at("3.40") + ["volume", "revert", sn["id"]], env)
        api.wait_volume(vid, status_is("available"), "available after revert")
        cli(cmd + ["volume", "snapshot", "delete", sn["id"]], env)
        api.wait_snapshot(sn["id"], gone, "gone (404)")
        cli(cmd + ["volume", "delete", vid], env)
    checks.run("osc_volume_revert", revert, needs=["osc_volume_attachment_complete_delete"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--summary-file", help="write {passed, failed, skipped} JSON here")
    ap.add_argument("--keystone-url", help="a test-only Keystone stand-in (token_shim.py)")
    ap.add_argument("--only", choices=["sdk", "cinder", "osc"], action="append")
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    for exe in ("cinder", "openstack"):
        if not os.path.exists(os.path.join(bindir, exe)):
            found = shutil.which(exe)
            sys.exit("%s not found next to %s (%s)" % (exe, sys.executable, found))

    checks = Checks()
    suites = args.only or ["sdk", "cinder", "osc"]
    if "sdk" in suites:
        run_sdk(checks, base)
    if "cinder" in suites:
        run_cinder(checks, base, bindir)
    if "osc" in suites:
        run_osc(checks, base, bindir, args.keystone_url)

    c = checks.counts()
    fails = [n for n, o, _ in checks.results if o == "fail"]
    print()
    print("client checks: passed=%d failed=%d skipped=%d" % (c["pass"], c["fail"], c["skip"]))
    if fails:
        print("failed: " + ", ".join(fails))
    if args.summary_file:
        with open(args.summary_file, "w") as f:
            json.dump({"passed": c["pass"], "failed": c["fail"], "skipped": c["skip"],
                       "failures": fails}, f)
    return 1 if c["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
