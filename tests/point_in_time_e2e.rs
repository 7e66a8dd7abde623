//! Point in time (issue 14): `blockledger replay --as-of T --out DIR`
//! copies the log as of an instant with its views, and `blockledger serve
//! --read-only --data-dir DIR` serves that copy: the listings taken at the
//! instant come back equal, while the live server has moved on; every
//! write is refused with 403 in the dialect's own body. Row ids refer to
//! ../shared/API.md.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

/// Runs the binary; (success, stdout, stderr).
fn blockledger(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_blockledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run blockledger");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `replay --as-of AS_OF --out OUT` from `live`; the position it reports.
fn replay_as_of(live: &Path, as_of: &str, out: &Path) -> u64 {
    let (ok, stdout, stderr) = blockledger(&[
        "replay",
        "--data-dir",
        live.to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "replay --as-of {as_of} failed: {stderr}");
    stdout
        .split_once("as of position ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no position in {stdout:?}"))
}

fn read_only(dir: &Path) -> Server {
    Server::start_args(dir, "raw", &["--read-only"])
}

/// A body with the server's own address taken out (links name the host
/// they were asked on; two servers listen on two ports).
fn hostless(body: &Value, base: &str) -> Value {
    serde_json::from_str(&body.to_string().replace(base, "http://[host]")).unwrap()
}

async fn create_volume(c: &Client, name: &str) -> String {
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": name}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    id
}

async fn create_snapshot(c: &Client, vol: &str, name: &str) -> String {
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": vol, "name": name}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(
        &format!("/v3/p1/snapshots/{id}"),
        "snapshot available",
        |r| r.body["snapshot"]["status"] == "available",
    )
    .await;
    id
}

/// CINDER-7.1.5 and CINDER-7.3.5 (under /v3), hostless.
async fn listings(c: &Client) -> (Value, Value) {
    let vols = c.get("/v3/p1/volumes/detail").await;
    assert_eq!(vols.status, 200, "{}", vols.body);
    let snaps = c.get("/v3/p1/snapshots/detail").await;
    assert_eq!(snaps.status, 200, "{}", snaps.body);
    (
        hostless(&vols.body, &c.base),
        hostless(&snaps.body, &c.base),
    )
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_as_of_copy_serves_the_listings_of_its_instant() {
    let tmp = tempfile::tempdir().unwrap();
    let live_dir = tmp.path().join("live");
    let live = Server::start_with(&live_dir, "raw");
    let c = live.client("alice", "p1");

    // The instant: two volumes, one snapshot, a rename, all settled.
    let a = create_volume(&c, "alpha").await;
    let b = create_volume(&c, "bravo").await;
    let sa = create_snapshot(&c, &a, "alpha-1").await;
    let r = c
        .put(
            &format!("/v3/p1/volumes/{b}"),
            &json!({"volume": {"name": "bravo-renamed"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let then = listings(&c).await;
    let instant = now_rfc3339();
    assert_eq!(then.0["volumes"].as_array().unwrap().len(), 2);
    assert_eq!(then.1["snapshots"].as_array().unwrap().len(), 1);

    // Then things go on changing: create, delete, rename, snapshot.
    let _c3 = create_volume(&c, "charlie").await;
    let r = c.delete(&format!("/v3/p1/snapshots/{sa}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/snapshots/{sa}"), "snapshot gone", |r| {
        r.status == 404
    })
    .await;
    let r = c.delete(&format!("/v3/p1/volumes/{a}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/volumes/{a}"), "volume gone", |r| {
        r.status == 404
    })
    .await;
    let r = c
        .put(
            &format!("/v3/p1/volumes/{b}"),
            &json!({"volume": {"name": "bravo-again"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    create_snapshot(&c, &b, "bravo-1").await;
    let now = listings(&c).await;
    assert_ne!(now, then, "the live listings moved on");

    // As of the time, taken while the live server runs (the source is
    // only read), then as of the position that time resolved to.
    let by_time = tmp.path().join("by-time");
    let position = replay_as_of(&live_dir, &instant, &by_time);
    let by_position = tmp.path().join("by-position");
    assert_eq!(
        replay_as_of(&live_dir, &position.to_string(), &by_position),
        position
    );
    // The live server is not locked out by the copies.
    create_volume(&c, "delta").await;

    for dir in [&by_time, &by_position] {
        let ro = read_only(dir);
        let rc = ro.client("alice", "p1");
        let past = listings(&rc).await;
        assert_eq!(past, then, "the copy in {} lists what was", dir.display());
        // One snapshot of each body, ids and times redacted as elsewhere.
        insta_settings().bind(|| {
            insta::assert_json_snapshot!("POINT-IN-TIME-volumes-detail", past.0);
            insta::assert_json_snapshot!("POINT-IN-TIME-snapshots-detail", past.1);
        });
    }

    // The copy's log is the live log's prefix: its chain and views verify.
    let (ok, out, err) = blockledger(&["verify", "--data-dir", by_time.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("ok: {position} events")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_refuses_every_write_in_its_dialects_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let live_dir = tmp.path().join("live");
    let live = Server::start_with(&live_dir, "raw");
    let c = live.client("alice", "p1");
    let vol = create_volume(&c, "kept").await;
    let copy = tmp.path().join("copy");
    let position = replay_as_of(&live_dir, "2999-01-01T00:00:00Z", &copy);
    assert!(position > 0);
    let ro = read_only(&copy);
    let rc = ro.client("alice", "p1");
    let message = format!(
        "this server is read-only: it serves the log as of position {position}; writes go to the live server"
    );

    // Cinder (CINDER-7.1.1, CINDER-7.1.8, the volume action): its fault body.
    let create = rc
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(create.status, 403, "{}", create.body);
    assert_eq!(
        create.body,
        json!({"forbidden": {"code": 403, "message": message}})
    );
    for (method, path, body) in [
        ("DELETE", format!("/v3/p1/volumes/{vol}"), None),
        (
            "PUT",
            format!("/v3/p1/volumes/{vol}"),
            Some(json!({"volume": {"name": "x"}}).to_string()),
        ),
        (
            "POST",
            format!("/v3/p1/volumes/{vol}/action"),
            Some(json!({"os-extend": {"new_size": 2}}).to_string()),
        ),
    ] {
        let r = rc.send(method, &path, body.as_deref()).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.body["forbidden"]["message"], message.as_str());
    }
    // ZStack and EVS: their own error bodies, the same message.
    let z = rc
        .post(
            &format!("/zstack/v1/volumes/{vol}/volume-snapshots"),
            &json!({"params": {"name": "z"}}),
        )
        .await;
    assert_eq!(z.status, 403, "{}", z.body);
    assert_eq!(z.body["error"]["code"], "ID.1002", "{}", z.body);
    assert_eq!(z.body["error"]["details"], message.as_str());
    let e = rc
        .post(
            "/v2/p1/cloudvolumes",
            &json!({"volume": {"size": 1, "availability_zone": "nova"}}),
        )
        .await;
    assert_eq!(e.status, 403, "{}", e.body);
    assert_eq!(
        e.body,
        json!({"error": {"code": "EVS.5403", "message": message}})
    );

    // Every dialect's reads are served: the volume is there in each.
    for path in [
        format!("/v2/p1/volumes/{vol}"),
        "/v2/p1/volumes/detail".to_string(),
        "/v2/p1/cloudvolumes/detail".to_string(),
        format!("/v2.1/p1/os-volumes/{vol}"),
        "/v2/zone/az-dc-1/volumes".to_string(),
        "/image/v2/images".to_string(),
    ] {
        let r = rc.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        if !path.contains("images") {
            assert!(r.body.to_string().contains(&vol), "{path}: {}", r.body);
        }
    }

    // Nothing was written: the volume is as it was, and the copy's log
    // still ends at its position.
    let v = rc.get(&format!("/v3/p1/volumes/{vol}")).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.body["volume"]["name"], "kept");
    assert_eq!(v.body["volume"]["size"], 1);
    let list = rc.get("/v3/p1/volumes").await;
    assert_eq!(list.body["volumes"].as_array().unwrap().len(), 1);
    drop(ro);
    let (ok, out, err) = blockledger(&["verify", "--data-dir", copy.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("ok: {position} events")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_first_event_the_views_are_empty_and_past_the_end_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let live_dir = tmp.path().join("live");
    let live = Server::start_with(&live_dir, "raw");
    let c = live.client("alice", "p1");
    create_volume(&c, "later").await;

    let early = tmp.path().join("early");
    assert_eq!(replay_as_of(&live_dir, "2000-01-01T00:00:00Z", &early), 0);
    let ro = read_only(&early);
    let (vols, snaps) = listings(&ro.client("alice", "p1")).await;
    assert_eq!(vols["volumes"], json!([]));
    assert_eq!(snaps["snapshots"], json!([]));

    // A position past the end, an unreadable instant and an existing copy
    // are refused, each with its reason, and leave nothing behind.
    let out = tmp.path().join("past");
    let (ok, _, err) = blockledger(&[
        "replay",
        "--data-dir",
        live_dir.to_str().unwrap(),
        "--as-of",
        "1000000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("past the end of the log"), "{err}");
    assert!(!out.join("blockledger.db").exists());
    let (ok, _, err) = blockledger(&[
        "replay",
        "--data-dir",
        live_dir.to_str().unwrap(),
        "--as-of",
        "yesterday",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("RFC 3339"), "{err}");
    let (ok, _, err) = blockledger(&[
        "replay",
        "--data-dir",
        live_dir.to_str().unwrap(),
        "--as-of",
        "1",
        "--out",
        early.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
}

fn with_token(base: &str, token: &str) -> Client {
    Client {
        http: reqwest::Client::new(),
        base: base.to_string(),
        token: token.to_string(),
    }
}

/// The identity is in the log (issue 13): a copy has the users and grants
/// of its instant, and their passwords (kept beside the log) let them log
/// in to the read-only server; a user added later does not exist there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_of_the_instant_log_in_to_the_copy() {
    const ALICE_PW: &str = "alice-Secret-4410";
    const CAROL_PW: &str = "carol-Secret-9023";
    let tmp = tempfile::tempdir().unwrap();
    let live_dir = tmp.path().join("live");
    let add_user = |user: &str, pw: &str| {
        cli_ok(
            &live_dir,
            &[
                "user",
                "add",
                user,
                "--password-stdin",
                "--project",
                "alpha",
                "--role",
                "member",
            ],
            Some(pw),
        )
    };
    let alpha = id_in(&cli_ok(&live_dir, &["project", "add", "alpha"], None));
    add_user("alice", ALICE_PW);
    let mut live = Server::start_args(&live_dir, "raw", &["--auth", "keystone"]);
    let (status, token) = password_login(&live.base, "alice", ALICE_PW, "alpha").await;
    assert_eq!(status, 201);
    let c = with_token(&live.base, &token.unwrap());
    let r = c
        .post(
            &format!("/v3/{alpha}/volumes"),
            &json!({"volume": {"size": 1, "name": "hers"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/{alpha}/volumes/{vol}"), "available")
        .await;
    let instant = now_rfc3339();
    live.stop();
    add_user("carol", CAROL_PW);

    let copy = tmp.path().join("copy");
    let position = replay_as_of(&live_dir, &instant, &copy);
    let ro = Server::start_args(&copy, "raw", &["--auth", "keystone", "--read-only"]);
    let (status, token) = password_login(&ro.base, "alice", ALICE_PW, "alpha").await;
    assert_eq!(status, 201, "alice was a member of alpha then");
    let rc = with_token(&ro.base, &token.unwrap());
    let list = rc.get(&format!("/v3/{alpha}/volumes")).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["volumes"][0]["id"], vol.as_str());
    let del = rc.delete(&format!("/v3/{alpha}/volumes/{vol}")).await;
    assert_eq!(del.status, 403, "{}", del.body);
    let (status, _) = password_login(&ro.base, "carol", CAROL_PW, "alpha").await;
    assert_eq!(status, 401, "carol was added after the instant");
    // A wrong password is refused too, and the refusal the live server
    // would record is not appended to the copy: it stays as of its instant.
    let (status, _) = password_login(&ro.base, "alice", "wrong", "alpha").await;
    assert_eq!(status, 401);
    drop(ro);
    let (ok, out, err) = blockledger(&["verify", "--data-dir", copy.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("ok: {position} events")), "{out}");
}
