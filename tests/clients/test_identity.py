#!/usr/bin/env python3
"""The real OpenStack clients, unmodified, with password authentication against
blockledger's built-in identity (issue 13): auth URL = this server's /identity/v3,
no noauth anywhere.

    python test_identity.py --base-url URL --alpha-member alice:PW \
        --beta-member bob:PW --alpha-reader rita:PW

  sdk   openstacksdk (openstack.connect with password auth; the block-storage
        endpoint comes from the token's catalog): create, wait, show, delete a
        volume; wrong password 401; another project's volume 404; reader 403;
        a revoked token 401.
  osc   the `openstack` CLI with --os-auth-url: volume create, list, show,
        delete; a wrong password fails.

Prints one line per check and "N passed, M failed"; exits 1 if any failed.
"""

import argparse
import json
import os
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
from keystoneauth1 import exceptions as ks_exc  # noqa: E402

WAIT = 60


def connect(base, user, password, project):
    return openstack.connect(
        auth_url=f"{base}/identity/v3",
        username=user,
        password=password,
        project_name=project,
        user_domain_name="Default",
        project_domain_name="Default",
        identity_api_version="3",
        region_name="RegionOne",
    )


def wait_status(conn, vol_id, want):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        v = conn.block_storage.get_volume(vol_id)
        if v.status == want:
            return v
        if v.status == "error":
            raise AssertionError(f"volume {vol_id} went to error")
        time.sleep(0.5)
    raise AssertionError(f"volume {vol_id} not {want} within {WAIT}s")


def wait_gone(conn, vol_id):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        try:
            conn.block_storage.get_volume(vol_id)
        except sdk_exc.NotFoundException:
            return
        time.sleep(0.5)
    raise AssertionError(f"volume {vol_id} not deleted within {WAIT}s")


def raises(exc_types, fn):
    try:
        fn()
    except exc_types as e:
        return e
    raise AssertionError(f"expected one of {exc_types}, nothing was raised")


def http(method, url, headers):
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def osc(base, user, password, project, *args):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("OS_"):
            del env[k]
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "openstack"),
        "--os-auth-url", f"{base}/identity/v3",
        "--os-username", user,
        "--os-password", password,
        "--os-project-name", project,
        "--os-user-domain-name", "Default",
        "--os-project-domain-name", "Default",
        "--os-identity-api-version", "3",
        "--os-region-name", "RegionOne",
        *args,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--alpha-member", required=True)
    ap.add_argument("--beta-member", required=True)
    ap.add_argument("--alpha-reader", required=True)
    a = ap.parse_args()
    base = a.base_url.rstrip("/")
    alice, alice_pw = a.alpha_member.split(":", 1)
    bob, bob_pw = a.beta_member.split(":", 1)
    rita, rita_pw = a.alpha_reader.split(":", 1)
    results = []
    state = {}

    def check(name, fn):
        try:
            fn()
            results.append((name, True))
            print(f"PASS {name}")
        except Exception:
            results.append((name, False))
            print(f"FAIL {name}\n{traceback.format_exc()}")

    def sdk_lifecycle():
        conn = connect(base, alice, alice_pw, "alpha")
        v = conn.block_storage.create_volume(size=1, name=f"id-{uuid.uuid4().hex[:8]}")
        wait_status(conn, v.id, "available")
        state["alice_volume"] = v.id
        names = [x.name for x in conn.block_storage.volumes()]
        assert v.name in names, names

    def sdk_wrong_password():
        conn = connect(base, alice, "not-the-password", "alpha")
        e = raises(
            (ks_exc.Unauthorized, sdk_exc.HttpException),
            lambda: list(conn.block_storage.volumes()),
        )
        code = getattr(e, "http_status", None) or getattr(e, "status_code", None)
        assert code == 401, f"{type(e).__name__}: {e} ({code})"

    def sdk_other_project_404():
        vid = state["alice_volume"]
        conn = connect(base, bob, bob_pw, "beta")
        raises(sdk_exc.NotFoundException, lambda: conn.block_storage.get_volume(vid))

    def sdk_reader_403():
        conn = connect(base, rita, rita_pw, "alpha")
        # The reader sees alpha's volume, and may not create one.
        conn.block_storage.get_volume(state["alice_volume"])
        e = raises(
            sdk_exc.HttpException,
            lambda: conn.block_storage.create_volume(size=1, name="nope"),
        )
        assert e.status_code == 403, e

    def sdk_revoked_token_401():
        conn = connect(base, alice, alice_pw, "alpha")
        token = conn.session.get_token()
        status, _ = http(
            "DELETE",
            f"{base}/identity/v3/auth/tokens",
            {"X-Auth-Token": token, "X-Subject-Token": token},
        )
        assert status == 204, status
        endpoint = conn.block_storage.get_endpoint()
        status, _ = http("GET", f"{endpoint}/volumes", {"X-Auth-Token": token})
        assert status == 401, status

    def sdk_delete():
        conn = connect(base, alice, alice_pw, "alpha")
        conn.block_storage.delete_volume(state["alice_volume"])
        wait_gone(conn, state["alice_volume"])

    def osc_lifecycle():
        name = f"osc-{uuid.uuid4().hex[:8]}"
        r = osc(base, alice, alice_pw, "alpha", "volume", "create", "--size", "1",
                "-f", "json", name)
        assert r.returncode == 0, r.stderr
        vid = json.loads(r.stdout)["id"]
        deadline = time.time() + WAIT
        while True:
            r = osc(base, alice, alice_pw, "alpha", "volume", "show", "-f", "json", vid)
            assert r.returncode == 0, r.stderr
            if json.loads(r.stdout)["status"] == "available":
                break
            assert time.time() < deadline, r.stdout
            time.sleep(0.5)
        r = osc(base, alice, alice_pw, "alpha", "volume", "list", "-f", "json")
        assert r.returncode == 0, r.stderr
        assert any(v["ID"] == vid for v in json.loads(r.stdout)), r.stdout
        r = osc(base, alice, alice_pw, "alpha", "volume", "delete", vid)
        assert r.returncode == 0, r.stderr
        deadline = time.time() + WAIT
        while True:
            r = osc(base, alice, alice_pw, "alpha", "volume", "list", "-f", "json")
            assert r.returncode == 0, r.stderr
            if not any(v["ID"] == vid for v in json.loads(r.stdout)):
                break
            assert time.time() < deadline, r.stdout
            time.sleep(0.5)

    def osc_wrong_password():
        r = osc(base, alice, "not-the-password", "alpha", "volume", "list")
        assert r.returncode != 0
        assert "401" in r.stderr or "authentication" in r.stderr.lower(), r.stderr

    check("sdk_password_auth_create_volume", sdk_lifecycle)
    check("sdk_wrong_password_401", sdk_wrong_password)
    if "alice_volume" in state:
        check("sdk_other_project_volume_404", sdk_other_project_404)
        check("sdk_reader_403_on_create", sdk_reader_403)
    check("sdk_revoked_token_401", sdk_revoked_token_401)
    if "alice_volume" in state:
        check("sdk_delete_volume", sdk_delete)
    check("osc_password_auth_volume_create_list_delete", osc_lifecycle)
    check("osc_wrong_password_fails", osc_wrong_password)

    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"identity: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
