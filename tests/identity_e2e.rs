//! Issue 13: the built-in identity, end to end, with the real binary in its
//! default mode (keystone). Users, projects, grants and an API key are made
//! with the CLI; then password authentication, tokens (validate, revoke,
//! expire), roles (member, reader, admin) and every dialect's credential
//! and refusal are checked over HTTP; last, that no secret is anywhere in
//! clear in the data dir or the server's log.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{cli_ok, id_in, Client, Reply, Server, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_blockledger");

fn line_value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
        .to_string()
}

struct Auth {
    status: u16,
    token: Option<String>,
    body: Value,
}

async fn password_auth(base: &str, body: Value) -> Auth {
    let r = reqwest::Client::new()
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("x-subject-token")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    Auth {
        status,
        token,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn by_name(user: &str, password: &str, project: &str) -> Value {
    json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}
    }})
}

async fn login(base: &str, user: &str, password: &str, project: &str) -> String {
    let a = password_auth(base, by_name(user, password, project)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.token.expect("X-Subject-Token")
}

fn client(base: &str, token: &str) -> Client {
    Client {
        http: reqwest::Client::new(),
        base: base.to_string(),
        token: token.to_string(),
    }
}

/// Keystone's error body (api-ref: `{"error": {"code", "title", "message"}}`).
fn assert_keystone_401(a: &Auth) {
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.body["error"]["code"], 401, "{}", a.body);
    assert_eq!(a.body["error"]["title"], "Unauthorized", "{}", a.body);
    assert!(a.body["error"]["message"].is_string(), "{}", a.body);
    assert!(a.token.is_none());
}

async fn raw(
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method.parse().unwrap(), url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_available(c: &Client, project: &str, id: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = c.get(&format!("/v3/{project}/volumes/{id}")).await;
        if r.body["volume"]["status"] == "available" {
            return;
        }
        assert!(Instant::now() < deadline, "not available: {}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct World {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    log: std::path::PathBuf,
    alpha: String,
    beta: String,
    api_id: String,
    api_key: String,
    admin_pw: String,
}

const ALICE_PW: &str = "alice-Secret-7391";
const BOB_PW: &str = "bob-Secret-5521";
const RITA_PW: &str = "rita-Secret-8842";

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let alpha = id_in(&cli_ok(&data, &["project", "add", "alpha"], None));
    let beta = id_in(&cli_ok(&data, &["project", "add", "beta"], None));
    for (user, pw, project, role) in [
        ("alice", ALICE_PW, "alpha", "member"),
        ("bob", BOB_PW, "beta", "member"),
        ("rita", RITA_PW, "alpha", "reader"),
    ] {
        cli_ok(
            &data,
            &[
                "user",
                "add",
                user,
                "--password-stdin",
                "--project",
                project,
                "--role",
                role,
            ],
            Some(pw),
        );
    }
    let key = cli_ok(
        &data,
        &["user", "key", "add", "alice", "--project", "alpha"],
        None,
    );
    let listing = cli_ok(&data, &["user", "list"], None);
    assert!(
        listing.contains("alice") && listing.contains("member@alpha"),
        "{listing}"
    );
    World {
        api_id: line_value(&key, "api_id"),
        api_key: line_value(&key, "api_key"),
        admin_pw: String::new(),
        _tmp: tmp,
        data,
        log,
        alpha,
        beta,
    }
}

fn start(w: &World, extra: &[&str]) -> Server {
    let mut args = vec!["--auth", "keystone"];
    args.extend_from_slice(extra);
    Server::start_full(&w.data, "raw", &args, &[], Some(&w.log))
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_end_to_end() {
    let mut w = world();
    let mut srv = start(&w, &[]);
    let base = srv.base.clone();

    // The first start made the admin; its password is in a file only the
    // owner may read.
    let pw_file = w.data.join("admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&pw_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "admin-password mode {mode:o}");
    w.admin_pw = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();

    // Version documents keystoneauth probes.
    let (s, b) = raw("GET", format!("{base}/identity"), &[], None).await;
    assert_eq!(s, 300, "{b}");
    assert_eq!(b["versions"]["values"][0]["status"], "stable");
    let (s, b) = raw("GET", format!("{base}/identity/v3"), &[], None).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["version"]["id"].as_str().unwrap().starts_with("v3."));
    assert_eq!(
        b["version"]["links"][0]["href"],
        format!("{base}/identity/v3/")
    );

    // Password authentication, by name + domain: the token body.
    let a = password_auth(&base, by_name("alice", ALICE_PW, "alpha")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let alice = a.token.clone().unwrap();
    let t = &a.body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["user"]["name"], "alice");
    assert_eq!(t["user"]["domain"]["id"], "default");
    assert_eq!(t["project"]["id"], w.alpha.as_str());
    assert_eq!(t["roles"][0]["name"], "member");
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(t["issued_at"].is_string());
    let types: Vec<&str> = t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    for ty in ["block-storage", "volumev3", "volumev2", "volume", "image"] {
        assert!(types.contains(&ty), "{ty} missing from {types:?}");
    }
    let bs = t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "block-storage")
        .unwrap();
    assert!(bs["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["interface"] == "public" && e["url"] == format!("{base}/v3/{}", w.alpha)));
    let user_id = t["user"]["id"].as_str().unwrap().to_string();

    // By user id and project id.
    let a = password_auth(
        &base,
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": ALICE_PW}}},
            "scope": {"project": {"id": w.alpha}}
        }}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // Wrong password, unscoped, a project without a role, an unknown user:
    // 401 with Keystone's body.
    assert_keystone_401(&password_auth(&base, by_name("alice", "wrong", "alpha")).await);
    let unscoped = json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"name": "alice", "domain": {"id": "default"}, "password": ALICE_PW}}}}});
    assert_keystone_401(&password_auth(&base, unscoped).await);
    assert_keystone_401(&password_auth(&base, by_name("alice", ALICE_PW, "beta")).await);
    assert_keystone_401(&password_auth(&base, by_name("nobody", "x", "alpha")).await);

    let bob = login(&base, "bob", BOB_PW, "beta").await;
    let rita = login(&base, "rita", RITA_PW, "alpha").await;
    let admin = login(&base, "admin", &w.admin_pw, "admin").await;
    let (a_c, b_c, r_c) = (
        client(&base, &alice),
        client(&base, &bob),
        client(&base, &rita),
    );

    // A token works on Cinder's routes; noauth's self-naming does not.
    let r = a_c.get(&format!("/v3/{}/volumes", w.alpha)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fake = client(&base, &format!("admin:{}", w.alpha));
    let r = fake.get(&format!("/v3/{}/volumes", w.alpha)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["unauthorized"]["code"], 401, "{}", r.body);
    let (s, _) = raw(
        "GET",
        format!("{base}/v3/{}/volumes", w.alpha),
        &[("X-User-Id", "admin"), ("X-Project-Id", &w.alpha)],
        None,
    )
    .await;
    assert_eq!(s, 401, "X-User-Id is noauth only");

    // Validate (GET) and the same token's own body.
    let (s, b) = raw(
        "GET",
        format!("{base}/identity/v3/auth/tokens"),
        &[("X-Auth-Token", &alice), ("X-Subject-Token", &alice)],
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token"]["user"]["name"], "alice");
    // Another user's token: not alice's to see; the admin's.
    let (s, _) = raw(
        "GET",
        format!("{base}/identity/v3/auth/tokens"),
        &[("X-Auth-Token", &alice), ("X-Subject-Token", &bob)],
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = raw(
        "GET",
        format!("{base}/identity/v3/auth/tokens"),
        &[("X-Auth-Token", &admin), ("X-Subject-Token", &bob)],
        None,
    )
    .await;
    assert_eq!(s, 200);

    // Member of beta creates a volume; member of alpha gets 404 for it in
    // every dialect.
    let r = b_c
        .post(
            &format!("/v3/{}/volumes", w.beta),
            &json!({"volume": {"size": 1, "name": "bobs"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vid = r.body["volume"]["id"].as_str().unwrap().to_string();
    wait_available(&b_c, &w.beta, &vid).await;
    let zone = "az-dc-1";
    let alice_h = [("X-Auth-Token", alice.as_str())];
    let oauth = format!("OAuth {alice}");
    for (what, method, url, headers, body) in [
        (
            "cinder",
            "GET",
            format!("{base}/v3/{}/volumes/{vid}", w.alpha),
            &alice_h[..],
            None,
        ),
        (
            "cinder v2",
            "GET",
            format!("{base}/v2/{}/volumes/{vid}", w.alpha),
            &alice_h[..],
            None,
        ),
        (
            "evs",
            "GET",
            format!("{base}/v2/{}/os-vendor-volumes/{vid}", w.alpha),
            &alice_h[..],
            None,
        ),
        (
            "nova",
            "GET",
            format!("{base}/v2.1/{}/os-volumes/{vid}", w.alpha),
            &alice_h[..],
            None,
        ),
        (
            "chinese cloud",
            "DELETE",
            format!("{base}/v2/zone/{zone}/volumes/{vid}"),
            &alice_h[..],
            None,
        ),
        (
            "small provider (token)",
            "GET",
            format!("{base}/api/volume/info?volume_id={vid}"),
            &alice_h[..],
            None,
        ),
        (
            "small provider (api key)",
            "POST",
            format!("{base}/api/volume/info"),
            &[][..],
            Some(json!({"volume_id": vid, "api_id": w.api_id, "api_key": w.api_key})),
        ),
        (
            "zstack",
            "POST",
            format!(
                "{base}/zstack/v1/volumes/{}/volume-snapshots",
                vid.replace('-', "")
            ),
            &[("Authorization", oauth.as_str())][..],
            Some(json!({"params": {"name": "s"}})),
        ),
    ] {
        let (s, b) = raw(method, url, headers, body).await;
        assert_eq!(s, 404, "{what}: {b}");
    }
    // Bob's volume is still there (the refused delete did nothing).
    let r = b_c.get(&format!("/v3/{}/volumes/{vid}", w.beta)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Another project's URL: Cinder's 400 for a member.
    let r = a_c.get(&format!("/v3/{}/volumes/{vid}", w.beta)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // The admin sees it when it asks: another project's URL, or all_tenants.
    let ad = client(&base, &admin);
    let r = ad.get(&format!("/v3/{}/volumes/{vid}", w.beta)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let admin_project = a_id(&base, &admin).await;
    let r = ad
        .get(&format!("/v3/{admin_project}/volumes?all_tenants=1"))
        .await;
    assert!(
        r.body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == vid.as_str()),
        "{}",
        r.body
    );
    let r = ad.get(&format!("/v3/{admin_project}/volumes")).await;
    assert!(
        !r.body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == vid.as_str()),
        "admin sees other projects only when it asks: {}",
        r.body
    );

    // The API key works for its owner's project (a list answers yes).
    let (s, b) = raw(
        "GET",
        format!(
            "{base}/api/volume/list?api_id={}&api_key={}",
            w.api_id, w.api_key
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["success"], "yes", "{b}");

    // A reader reads, and gets 403 on every change.
    let r = r_c.get(&format!("/v3/{}/volumes", w.alpha)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = r_c
        .post(
            &format!("/v3/{}/volumes", w.alpha),
            &json!({"volume": {"size": 1}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["forbidden"]["code"], 403, "{}", r.body);
    let (s, b) = raw(
        "POST",
        format!("{base}/v2.1/{}/os-volumes", w.alpha),
        &[("X-Auth-Token", &rita)],
        Some(json!({"volume": {"size": 1}})),
    )
    .await;
    assert_eq!(s, 403, "nova: {b}");

    // Missing or bad credentials: each dialect's own 401.
    let bad = [("X-Auth-Token", "not-a-token")];
    let (s, b) = raw("GET", format!("{base}/v3/{}/volumes", w.alpha), &bad, None).await;
    assert_eq!(
        (s, b["unauthorized"]["code"].clone()),
        (401, json!(401)),
        "{b}"
    );
    let (s, b) = raw(
        "GET",
        format!("{base}/zstack/v1/volume-snapshots"),
        &[("Authorization", "OAuth not-a-token")],
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (401, json!("ID.1001")),
        "{b}"
    );
    let (s, b) = raw(
        "GET",
        format!("{base}/api/volume/list?api_id={}&api_key=wrong", w.api_id),
        &[],
        None,
    )
    .await;
    assert_eq!((s, b["success"].clone()), (401, json!("no")), "{b}");
    let (s, b) = raw("GET", format!("{base}/v2/zone/{zone}/volumes"), &[], None).await;
    assert_eq!(s, 401, "{b}");
    assert!(b["ret_code"].as_i64().is_some_and(|n| n != 0), "{b}");

    // /metrics: an admin token only.
    let (s, _) = raw("GET", format!("{base}/metrics"), &[], None).await;
    assert_eq!(s, 401);
    let (s, _) = raw("GET", format!("{base}/metrics"), &alice_h, None).await;
    assert_eq!(s, 403);
    let (s, _) = raw(
        "GET",
        format!("{base}/metrics"),
        &[("X-Auth-Token", &admin)],
        None,
    )
    .await;
    assert_eq!(s, 200);

    // Revoke: 204, then the token is refused everywhere.
    let (s, _) = raw(
        "DELETE",
        format!("{base}/identity/v3/auth/tokens"),
        &[("X-Auth-Token", &alice), ("X-Subject-Token", &alice)],
        None,
    )
    .await;
    assert_eq!(s, 204);
    let r = a_c.get(&format!("/v3/{}/volumes", w.alpha)).await;
    assert_eq!(r.status, 401, "revoked: {}", r.body);
    let (s, _) = raw(
        "GET",
        format!("{base}/identity/v3/auth/tokens"),
        &[("X-Auth-Token", &admin), ("X-Subject-Token", &alice)],
        None,
    )
    .await;
    assert_eq!(s, 404, "a revoked token is not found");

    // Brute force: after the allowed failures even the right password is
    // refused (429), and every failure is in the audit trail.
    cli_ok(
        &w.data,
        &[
            "user",
            "add",
            "mallory",
            "--password-stdin",
            "--project",
            "alpha",
        ],
        Some("mallory-pw-1"),
    );
    for _ in 0..5 {
        assert_keystone_401(&password_auth(&base, by_name("mallory", "guess", "alpha")).await);
    }
    let a = password_auth(&base, by_name("mallory", "mallory-pw-1", "alpha")).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.token.is_none());
    let r = ad
        .get(&format!(
            "/v2/{admin_project}/events?stream=requests&limit=1000"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refused = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["data"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("password authentication for user mallory"))
        })
        .count();
    assert_eq!(refused, 6, "{}", r.body);

    // Identity changes are in the log, with who made them.
    let r = ad
        .get(&format!(
            "/v2/{admin_project}/events?stream=identity&limit=1000"
        ))
        .await;
    let events = r.body["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["event_type"] == "RoleGranted"
        && e["data"]["role"] == "reader"
        && e["metadata"]["user_id"]
            .as_str()
            .is_some_and(|u| u.starts_with("cli:"))));

    // Deleting a user (the server running) ends its tokens at once.
    let r = r_c.get(&format!("/v3/{}/volumes", w.alpha)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    cli_ok(&w.data, &["user", "del", "rita"], None);
    let r = r_c.get(&format!("/v3/{}/volumes", w.alpha)).await;
    assert_eq!(r.status, 401, "deleted user: {}", r.body);

    // Expiry: a short lifetime, and the token stops working.
    srv.stop();
    let srv2 = start(&w, &["--token-lifetime-secs", "1"]);
    let base2 = srv2.base.clone();
    let short = login(&base2, "bob", BOB_PW, "beta").await;
    let c = client(&base2, &short);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = c.get(&format!("/v3/{}/volumes", w.beta)).await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Tokens issued before the restart still work (stored, by hash).
    let r = client(&base2, &bob)
        .get(&format!("/v3/{}/volumes", w.beta))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(srv2);

    // The identity view is a fold of the log like every other view: a
    // replay from position 0 equals it, and the chain holds.
    let (ok, out) = support::verify(&w.data);
    assert!(ok, "{out}");

    // No secret in clear: not in any file of the data dir (the log, its
    // WAL, the views) but the admin's password file, nor in the log output.
    // Volume, snapshot and image bytes are the executor's copies of client
    // data (a 1 GiB sparse volume here), which no identity code writes.
    let secrets = [
        ALICE_PW.to_string(),
        BOB_PW.to_string(),
        RITA_PW.to_string(),
        "mallory-pw-1".to_string(),
        w.admin_pw.clone(),
        w.api_key.clone(),
        alice.clone(),
        bob.clone(),
        rita.clone(),
        admin.clone(),
        short.clone(),
    ];
    let mut files = vec![w.log.clone()];
    collect_files(&w.data, &mut files);
    for f in &files {
        if *f == pw_file {
            continue;
        }
        let bytes = std::fs::read(f).unwrap();
        for s in &secrets {
            assert!(
                !contains(&bytes, s.as_bytes()),
                "a secret is in clear in {}",
                f.display()
            );
        }
    }
    assert!(files.iter().any(|f| f.ends_with("blockledger.db")));
}

/// The project id of a token's scope.
async fn a_id(base: &str, token: &str) -> String {
    let (_, b) = raw(
        "GET",
        format!("{base}/identity/v3/auth/tokens"),
        &[("X-Auth-Token", token), ("X-Subject-Token", token)],
        None,
    )
    .await;
    b["token"]["project"]["id"].as_str().unwrap().to_string()
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.ends_with("volumes") || p.ends_with("snapshots") || p.ends_with("images") {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_secret_search_finds_what_is_there() {
    assert!(contains(b"xx-secret-yy", b"secret"));
    assert!(!contains(b"xx-secre-t-yy", b"secret"));
}

/// `serve --auth noauth` on an address that is not loopback: refused with
/// a clear message and exit 9, before anything is created.
#[test]
fn noauth_refuses_a_non_loopback_address() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(BIN)
        .args(["serve", "--auth", "noauth", "--listen", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("noauth") && err.contains("loopback") && err.contains("0.0.0.0"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!data.exists(), "nothing made for a refused start");
}

/// Keystone mode on a non-loopback address is fine (it is the point of
/// real identities); the server starts, and a token-less call is a 401.
#[tokio::test(flavor = "multi_thread")]
async fn keystone_mode_answers_401_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_full(tmp.path(), "raw", &["--auth", "keystone"], &[], None);
    let r: Reply = client(&srv.base, "").get("/v3/whatever/volumes").await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// `serve --identity-file`: projects, users (password from a file) and
/// grants at start; applied again at the next start without duplicating.
#[tokio::test(flavor = "multi_thread")]
async fn an_identity_file_adds_projects_users_and_grants() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pw = tmp.path().join("gus.pw");
    std::fs::write(&pw, "gus-Secret-4410\n").unwrap();
    let file = tmp.path().join("identity.toml");
    std::fs::write(
        &file,
        format!(
            "[[projects]]\nname = \"gamma\"\nid = \"gamma-id\"\n\n\
             [[users]]\nname = \"gus\"\npassword_file = \"{}\"\n\
             roles = [{{ project = \"gamma\", role = \"member\" }}]\n",
            pw.display()
        ),
    )
    .unwrap();
    let args = [
        "--auth",
        "keystone",
        "--identity-file",
        file.to_str().unwrap(),
    ];
    for _ in 0..2 {
        let srv = Server::start_full(&data, "raw", &args, &[], None);
        let a = password_auth(&srv.base, by_name("gus", "gus-Secret-4410", "gamma")).await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body["token"]["project"]["id"], "gamma-id");
        assert_eq!(a.body["token"]["roles"][0]["name"], "member");
    }
    let users = cli_ok(&data, &["user", "list"], None);
    assert_eq!(users.matches("gus").count(), 1, "{users}");
}
