#!/usr/bin/env python3
"""The web console (issue 14) in a real browser: headless Chromium (Debian's
package, driven by Playwright with the system browser) against a blockledger
server in keystone mode, and a second one in noauth mode.

    python test_console.py --keystone-url URL --noauth-url URL --work DIR \
        --member alice:PW --other bob:PW --admin root:PW

Through the API (urllib, as any client) it makes a volume and a snapshot of
it and causes one refusal that names the volume (deleting a volume that has
a snapshot); the browser creates nothing. In the browser: log in, see the
volume and the snapshot listed with their statuses, open the volume's
timeline (events in ascending time and position, the refusal marked), click
an event to see the volume as of it, take a screenshot, and check the page's
DOM text alongside it (the events listed, times in order). Also: a wrong
password is refused on the form, names are shown as text (never markup),
the password is not kept and only the token sits in sessionStorage, an
admin sees every project and the log's verify state, another project's
member does not see the volume, and noauth logs in with any user name.

Prints one line per check and "N passed, M failed"; exits 1 if any failed.
"""

import argparse
import json
import sys
import time
import traceback
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

WAIT = 60  # seconds: disk work and the page's poll (every 3 s) fit well within
CHROMIUM = "/usr/bin/chromium"
# Markup as a name: the console must show it as these characters.
HOSTILE_NAME = '<img src=x id=pwned onerror="document.title=1">'

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}")
    return cond


# --- the API, as a client ----------------------------------------------------


def call(base, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            if not r.headers.get("Content-Type", "").startswith("application/json"):
                return r.status, dict(r.headers), raw.decode(errors="replace")
            return r.status, dict(r.headers), (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, dict(e.headers), parsed


def login(base, user, password, project):
    """A project-scoped token: (token, project id)."""
    status, headers, body = call(
        base,
        "POST",
        "/identity/v3/auth/tokens?nocatalog",
        body={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
                },
                "scope": {"project": {"name": project, "domain": {"id": "default"}}},
            }
        },
    )
    if status != 201:
        raise AssertionError(f"login {user}@{project}: HTTP {status} {body}")
    token = {k.lower(): v for k, v in headers.items()}["x-subject-token"]
    return token, body["token"]["project"]["id"]


def wait_status(base, token, path, key, want):
    deadline = time.time() + WAIT
    last = None
    while time.time() < deadline:
        status, _, body = call(base, "GET", path, token)
        if status == 200:
            last = body[key]["status"]
            if last == want:
                return body[key]
            if last.startswith("error"):
                raise AssertionError(f"{path} went to {last}")
        time.sleep(0.2)
    raise AssertionError(f"{path} not {want} within {WAIT}s (last {last})")


def make_resources(base, token, pid, name):
    """A volume, a snapshot of it, and a refused delete of the volume."""
    status, _, body = call(base, "POST", f"/v3/{pid}/volumes", token, {"volume": {"size": 1, "name": name}})
    if status != 202:
        raise AssertionError(f"volume create: HTTP {status} {body}")
    vol = body["volume"]["id"]
    wait_status(base, token, f"/v3/{pid}/volumes/{vol}", "volume", "available")
    status, _, body = call(
        base, "POST", f"/v3/{pid}/snapshots", token, {"snapshot": {"volume_id": vol, "name": f"{name}-snap"}}
    )
    if status != 202:
        raise AssertionError(f"snapshot create: HTTP {status} {body}")
    snap = body["snapshot"]["id"]
    wait_status(base, token, f"/v3/{pid}/snapshots/{snap}", "snapshot", "available")
    # A volume with snapshots cannot be deleted: refused, and the refusal
    # names the volume in the log (CommandRejected).
    status, _, body = call(base, "DELETE", f"/v3/{pid}/volumes/{vol}", token)
    if status != 400:
        raise AssertionError(f"delete of a volume with a snapshot: HTTP {status} {body}, want 400")
    return vol, snap


# --- the browser -------------------------------------------------------------


def browser_login(page, base, user, password, project):
    page.goto(f"{base}/console")
    page.wait_for_selector("#login-form", state="visible", timeout=WAIT * 1000)
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.fill("#login-project", project)
    page.click("#login-form button[type=submit]")


def row_status(page, table, rid):
    """The status shown in a list's row for resource `rid`, or None."""
    return page.evaluate(
        """([table, rid]) => {
            const tr = [...document.querySelectorAll(`#${table} tbody tr`)].find((r) => r.dataset.id === rid);
            const s = tr && tr.querySelector(".status");
            return s ? s.textContent : null;
        }""",
        [table, rid],
    )


def wait_row(page, table, rid, want=None):
    deadline = time.time() + WAIT
    last = None
    while time.time() < deadline:
        last = row_status(page, table, rid)
        if last is not None and (want is None or last == want):
            return last
        page.wait_for_timeout(200)
    return last


def timeline_rows(page):
    return page.evaluate(
        """() => [...document.querySelectorAll("#events tbody tr.event")].map((tr) => ({
            position: Number(tr.dataset.position),
            time: tr.querySelector("time").getAttribute("datetime"),
            shown: tr.querySelector("td.time").textContent,
            type: tr.querySelector(".event-type").textContent,
            refused: tr.classList.contains("refused"),
            badge: tr.querySelector(".badge").textContent,
            who: tr.querySelector("td.who").textContent,
            how: tr.querySelector("td.how").textContent,
            reason: (tr.querySelector(".reason") || {}).textContent || "",
        }))"""
    )


def wait_timeline(page, minimum):
    deadline = time.time() + WAIT
    rows = []
    while time.time() < deadline:
        rows = timeline_rows(page)
        if len(rows) >= minimum:
            return rows
        page.wait_for_timeout(200)
    return rows


def keystone_checks(page, args, work):
    base = args.keystone_url
    user, pw = args.member.split(":", 1)
    token, pid = login(base, user, pw, "alpha")
    vol, snap = make_resources(base, token, pid, "console-vol")
    status, _, body = call(base, "POST", f"/v3/{pid}/volumes", token, {"volume": {"size": 1, "name": HOSTILE_NAME}})
    hostile = body["volume"]["id"] if status == 202 else None
    check("API: the markup-named volume is created", hostile is not None, f"HTTP {status} {body}")

    status, headers, _ = call(base, "GET", "/console")
    csp = {k.lower(): v for k, v in headers.items()}.get("content-security-policy", "")
    check("GET /console: HTML with a policy allowing no inline or foreign script",
          status == 200 and "script-src 'self'" in csp and "unsafe" not in csp, csp)

    # A wrong password: refused on the form, no console shown.
    browser_login(page, base, user, pw + "x", "alpha")
    page.wait_for_function("document.getElementById('login-error').textContent !== ''", timeout=WAIT * 1000)
    check(
        "wrong password: the form says so and shows no lists",
        "Wrong" in page.text_content("#login-error") and page.is_hidden("#resources"),
        page.text_content("#login-error"),
    )

    browser_login(page, base, user, pw, "alpha")
    page.wait_for_selector("#resources", state="visible", timeout=WAIT * 1000)
    check("login: the console shows the user and project", "alice in project alpha" in page.text_content("#who"))
    check("the volume is listed as available", wait_row(page, "volumes", vol, "available") == "available")
    check("the snapshot is listed as available", wait_row(page, "snapshots", snap, "available") == "available")
    stored = page.evaluate("() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")
    kept = json.loads(page.evaluate("() => sessionStorage.getItem('blockledger-console') || 'null'")) or {}
    check("the password is kept nowhere, the token only in sessionStorage",
          pw not in stored and len(kept.get("token", "")) == 64
          and page.evaluate("() => localStorage.length") == 0, stored[:200])

    if hostile:
        wait_row(page, "volumes", hostile)
        shown = page.evaluate(
            """(rid) => {
                const tr = [...document.querySelectorAll("#volumes tbody tr")].find((r) => r.dataset.id === rid);
                return tr ? tr.cells[0].textContent : null;
            }""",
            hostile,
        )
        check(
            "a name that is markup is shown as text, not run",
            shown == HOSTILE_NAME and page.query_selector("#pwned") is None and page.title() != "1",
            repr(shown),
        )

    # Live refresh: a volume made through the API after login shows up
    # without any click.
    status, _, body = call(base, "POST", f"/v3/{pid}/volumes", token, {"volume": {"size": 1, "name": "late"}})
    late = body["volume"]["id"] if status == 202 else ""
    check("live refresh: a volume made after login appears", wait_row(page, "volumes", late) is not None)

    # The volume's timeline.
    page.click(f"#volumes tbody tr[data-id='{vol}'] button.open-timeline")
    page.wait_for_selector("#timeline", state="visible", timeout=WAIT * 1000)
    rows = wait_timeline(page, 4)
    history_err = page.text_content("#timeline-error")
    check("timeline: the volume's events are listed", len(rows) >= 4, f"{len(rows)} rows; {history_err}")
    positions = [r["position"] for r in rows]
    times = [r["time"] for r in rows]
    check("timeline: positions ascend", positions == sorted(positions) and len(set(positions)) == len(positions),
          str(positions))
    check("timeline: times ascend", all(times) and times == sorted(times), str(times))
    check("timeline: each time is shown as recorded (UTC)",
          all(r["shown"] == r["time"].replace("T", " ").rstrip("Z") for r in rows))
    refused = [r for r in rows if r["refused"]]
    check("timeline: the refused delete is marked REFUSED with its reason",
          len(refused) == 1 and refused[0]["badge"] == "REFUSED" and refused[0]["reason"] != ""
          and "DELETE" in refused[0]["how"], json.dumps(refused))
    check("timeline: it starts with the creation, by a user of project alpha",
          rows and rows[0]["type"] == "VolumeCreateRequested" and pid in rows[0]["who"], json.dumps(rows[:1]))
    accepted = [r for r in rows if not r["refused"]]
    check("timeline: the accepted events are marked accepted",
          accepted and all(r["badge"] == "accepted" for r in accepted))

    # One click: the volume as of its first event (it was being created).
    if rows:
        first = rows[0]["position"]
        page.click(f"#events tbody tr[data-position='{first}'] button.as-of")
        page.wait_for_selector("#asof", state="visible", timeout=WAIT * 1000)
        page.wait_for_function(
            "document.getElementById('asof-title').textContent !== '' || "
            "document.getElementById('asof-error').textContent !== ''",
            timeout=WAIT * 1000,
        )
        title = page.text_content("#asof-title")
        state = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll("#asof-state tbody tr")]
                .filter((tr) => tr.cells.length === 1 || tr.querySelector("th"))
                .map((tr) => [tr.querySelector("th") ? tr.querySelector("th").textContent : "",
                              tr.cells[tr.cells.length - 1].textContent]))"""
        )
        check("as of the first event: titled with its position",
              f"#{first}" in title, f"{title!r} {page.text_content('#asof-error')!r}")
        check("as of the first event: the volume's id, and not yet available",
              state.get("id") == vol and state.get("status") not in (None, "available"), json.dumps(state))
        # And as of the last accepted event before the refusal: available.
        before = [r for r in rows if not r["refused"] and r["position"] < refused[0]["position"]] if refused else []
        if before:
            pos = before[-1]["position"]
            page.click(f"#events tbody tr[data-position='{pos}'] button.as-of")
            page.wait_for_function(f"document.getElementById('asof-title').textContent.includes('#{pos}')",
                                   timeout=WAIT * 1000)
            st = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll("#asof-state tbody tr")]
                    .filter((tr) => tr.querySelector("th"))
                    .map((tr) => [tr.querySelector("th").textContent, tr.cells[1].textContent]))"""
            )
            check("as of a later event: the volume then", st.get("id") == vol, json.dumps(st))
        selected = page.evaluate("() => [...document.querySelectorAll('#events tr.selected')].length")
        check("the chosen event is highlighted", selected == 1)

    shot = f"{work}/console-timeline.png"
    page.screenshot(path=shot, full_page=True)
    with open(shot, "rb") as f:
        png = f.read()
    text = page.inner_text("body")
    # The picture and the DOM it was taken from: the same events, in order.
    dom_positions = [int(p.lstrip("#")) for p in page.eval_on_selector_all(
        "#events tbody tr.event td.position", "tds => tds.map((t) => t.textContent)")]
    check("screenshot taken (PNG)", png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, f"{len(png)} bytes")
    check("screenshot's page: the events are listed in order",
          dom_positions == positions and all(f"#{p}" in text for p in positions)
          and "REFUSED" in text and "Timeline of volume console-vol" in text)
    shown_times = [t for t in page.eval_on_selector_all("#events time", "ts => ts.map((t) => t.textContent)")]
    check("screenshot's page: the shown times are in order", shown_times == sorted(shown_times) and shown_times)
    print(f"screenshot: {shot}")

    # An image (registered, no bytes yet): listed, and its timeline comes
    # from the events API filtered by resource.
    status, _, body = call(base, "POST", "/image/v2/images", token,
                           {"name": "console-img", "disk_format": "raw", "container_format": "bare"})
    image = body.get("id") if status == 201 and isinstance(body, dict) else None
    if check("API: an image is registered", image is not None, f"HTTP {status} {body}"):
        check("the image is listed as queued", wait_row(page, "images", image, "queued") == "queued")
        page.click(f"#images tbody tr[data-id='{image}'] button.open-timeline")
        page.wait_for_function("document.getElementById('timeline-title').textContent.includes('image')",
                               timeout=WAIT * 1000)
        irows = wait_timeline(page, 1)
        check("the image's timeline lists its registration",
              len(irows) >= 1 and irows[0]["type"].startswith("Image"),
              f"{json.dumps(irows)}; {page.text_content('#timeline-error')}")

    # Logging out revokes the console's token.
    console_token = json.loads(page.evaluate("() => sessionStorage.getItem('blockledger-console')"))["token"]
    page.click("#logout")
    page.wait_for_selector("#login", state="visible", timeout=WAIT * 1000)
    deadline = time.time() + WAIT
    revoked = False
    while time.time() < deadline and not revoked:
        revoked = call(base, "GET", f"/v3/{pid}/volumes", console_token)[0] == 401
        time.sleep(0.1)
    check("logout: back to the form, the console's token revoked, nothing in sessionStorage",
          revoked and page.evaluate("() => sessionStorage.length") == 0)

    # Another project's member does not see alpha's volume.
    ouser, opw = args.other.split(":", 1)
    browser_login(page, base, ouser, opw, "beta")
    page.wait_for_selector("#resources", state="visible", timeout=WAIT * 1000)
    page.wait_for_function("document.getElementById('refreshed').textContent !== ''", timeout=WAIT * 1000)
    page.wait_for_timeout(500)
    check("another project's member: alpha's volume is not listed",
          row_status(page, "volumes", vol) is None and page.is_hidden("#digest")
          and page.is_hidden("#all-projects-label"))
    page.click("#logout")
    page.wait_for_selector("#login", state="visible", timeout=WAIT * 1000)

    # An admin: every project's volumes (with their project) and the log's
    # verify state.
    auser, apw = args.admin.split(":", 1)
    browser_login(page, base, auser, apw, "beta")
    page.wait_for_selector("#resources", state="visible", timeout=WAIT * 1000)
    check("admin: alpha's volume is listed from project beta", wait_row(page, "volumes", vol, "available") == "available")
    heads = page.eval_on_selector_all("#volumes thead th", "ths => ths.map((t) => t.textContent)")
    check("admin: the lists show each row's project", "Project" in heads, str(heads))
    page.wait_for_function(
        "document.getElementById('digest').textContent.startsWith('Log ')", timeout=WAIT * 1000
    )
    digest = page.text_content("#digest")
    check("admin: the log's verify state is shown as verified", digest.startswith("Log verified up to #"), digest)
    page.click(f"#volumes tbody tr[data-id='{vol}'] button.open-timeline")
    rows = wait_timeline(page, 4)
    check("admin: another project's volume's timeline", [r["position"] for r in rows] == positions,
          f"{len(rows)} rows; {page.text_content('#timeline-error')}")
    page.screenshot(path=f"{work}/console-admin.png", full_page=True)
    page.click("#logout")


def noauth_checks(page, args):
    base = args.noauth_url
    # noauth: the token "user:project" names the caller.
    pid = "gamma"
    token = f"carol:{pid}"
    status, _, body = call(base, "POST", f"/v3/{pid}/volumes", token, {"volume": {"size": 1, "name": "noauth-vol"}})
    if not check("noauth API: volume created", status == 202, f"HTTP {status} {body}"):
        return
    vol = body["volume"]["id"]
    browser_login(page, base, "carol", "", pid)
    page.wait_for_selector("#resources", state="visible", timeout=WAIT * 1000)
    check("noauth: any user name logs in; the volume is listed as available",
          wait_row(page, "volumes", vol, "available") == "available")
    page.click(f"#volumes tbody tr[data-id='{vol}'] button.open-timeline")
    rows = wait_timeline(page, 2)
    check("noauth: the volume's timeline", len(rows) >= 2 and rows[0]["type"].startswith("Volume"),
          f"{len(rows)} rows; {page.text_content('#timeline-error')}")
    page.click("#logout")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keystone-url", required=True)
    ap.add_argument("--noauth-url", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--member", required=True)
    ap.add_argument("--other", required=True)
    ap.add_argument("--admin", required=True)
    args = ap.parse_args()
    console_errors = []
    with sync_playwright() as p:
        # Root in a container: Chromium's sandbox needs user namespaces it
        # may not have; the page is our own, served from loopback.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # The page's Content-Security-Policy forbids eval, which
            # Playwright's wait_for_function and evaluate use; bypassing it
            # also means the markup check below tests the escaping itself,
            # not the policy (which is checked on the headers instead).
            context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
            page = context.new_page()
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            for name, fn in (("keystone", lambda: keystone_checks(page, args, args.work)),
                             ("noauth", lambda: noauth_checks(page, args))):
                try:
                    fn()
                except Exception:  # a broken step fails, the others still run
                    traceback.print_exc()
                    check(f"{name} checks ran to the end", False)
            check("no script errors in the page", not console_errors, "; ".join(console_errors[:5]))
        finally:
            browser.close()
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
