//! Issue 14, the audit API end to end with the real binary: the events
//! listing's filters against an independent scan of the log (a property
//! test), a member's isolation from another project's events in every way
//! it could ask (keystone mode), a resource's history with its refusals and
//! its state as of an instant, the digest and `verify --digest`, and the
//! `blockledger events` command (`--json`, `--follow`).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eventstore::rusqlite;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use support::{cli_ok, cli_run, id_in, password_login, Client, Server, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_blockledger");

/// One event as read straight from the database file, not through the API.
#[derive(Debug, Clone)]
struct Row {
    position: u64,
    stream_id: String,
    event_type: String,
    data: Value,
    metadata: Value,
    recorded_at: String,
}

fn scan_log(data_dir: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("blockledger.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT position, stream_id, event_type, data, metadata, recorded_at FROM events ORDER BY position",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                position: r.get(0)?,
                stream_id: r.get(1)?,
                event_type: r.get(2)?,
                data: serde_json::from_str(&r.get::<_, String>(3)?).unwrap(),
                metadata: serde_json::from_str(&r.get::<_, String>(4)?).unwrap(),
                recorded_at: r.get(5)?,
            })
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

impl Row {
    fn refused(&self) -> bool {
        self.event_type == "CommandRejected"
    }
    /// The stream the event is about: a refusal's named one.
    fn about(&self) -> &str {
        if self.refused() {
            self.data["stream_id"].as_str().unwrap_or("")
        } else {
            &self.stream_id
        }
    }
    fn kind(&self) -> &str {
        self.about().split('-').next().unwrap()
    }
    fn id(&self) -> Option<&str> {
        self.about().split_once('-').map(|(_, id)| id)
    }
    fn md(&self, k: &str) -> Option<&str> {
        self.metadata[k].as_str()
    }
}

/// The projects each event belongs to, by the documented rule (no
/// transfers happen in these tests): a resource's events are its
/// creator's; a refusal is the caller's and the named resource's owner's.
fn owners(rows: &[Row]) -> HashMap<u64, BTreeSet<String>> {
    let mut creator: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    for r in rows {
        let mut set = BTreeSet::new();
        let kind = r.stream_id.split('-').next().unwrap();
        if r.refused() {
            if let Some(p) = r.md("project_id").filter(|p| !p.is_empty()) {
                set.insert(p.to_string());
            }
            if let Some(p) = creator.get(r.about()) {
                set.insert(p.clone());
            }
        } else if ["volume", "snapshot", "image", "transfer"].contains(&kind) {
            if let Some(p) = r.data["project_id"].as_str() {
                creator.entry(r.stream_id.clone()).or_insert(p.to_string());
            }
            if let Some(p) = creator.get(&r.stream_id) {
                set.insert(p.clone());
            }
        } else if kind == "quota" {
            set.insert(r.stream_id["quota-".len()..].to_string());
        } else if kind == "idempotency" {
            if let Some(p) = r.md("project_id") {
                set.insert(p.to_string());
            }
        }
        out.insert(r.position, set);
    }
    out
}

/// A filter of the listing, as query parameters.
#[derive(Debug, Clone, Default)]
struct F {
    resource_id: Option<String>,
    resource_type: Option<String>,
    event_type: Option<String>,
    outcome: Option<&'static str>,
    user_id: Option<String>,
    request_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<u64>,
    limit: usize,
}

impl F {
    fn query(&self) -> String {
        let mut q: Vec<(&str, String)> = vec![("limit", self.limit.to_string())];
        let mut put = |k, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        };
        put("resource_id", &self.resource_id);
        put("resource_type", &self.resource_type);
        put("event_type", &self.event_type);
        put("outcome", &self.outcome.map(str::to_string));
        put("user_id", &self.user_id);
        put("request_id", &self.request_id);
        put("since", &self.since);
        put("until", &self.until);
        put("after", &self.after.map(|a| a.to_string()));
        q.iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn matches(&self, r: &Row) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        eq(&self.resource_id, r.id())
            && eq(&self.resource_type, Some(r.kind()))
            && eq(&self.event_type, Some(&r.event_type))
            && self
                .outcome
                .is_none_or(|o| (o == "refused") == r.refused())
            && eq(&self.user_id, r.md("user_id"))
            && eq(&self.request_id, r.md("request_id"))
            // Stored times have one width (microseconds, Z): text order is
            // time order.
            && self.since.as_deref().is_none_or(|s| r.recorded_at.as_str() >= s)
            && self.until.as_deref().is_none_or(|u| r.recorded_at.as_str() <= u)
            && self.after.is_none_or(|a| r.position > a)
    }
}

/// Percent-encoding of a query value (RFC 3339 times carry `+` and `:`).
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every page of a listing, following `next` links; the positions.
async fn all_pages(c: &Client, first: &str) -> Vec<u64> {
    let mut out = vec![];
    let mut url = first.to_string();
    for _ in 0..10_000 {
        let r = c.get(&url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        for e in r.body["events"].as_array().unwrap() {
            out.push(e["position"].as_u64().unwrap());
        }
        match r.body["next"].as_str() {
            Some(n) => {
                assert!(n.starts_with('/'), "next is a path: {n}");
                url = n.to_string()
            }
            None => return out,
        }
    }
    panic!("no end to the pages of {first}");
}

async fn wait_status(c: &Client, path: &str, key: &str, status: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = c.get(path).await;
        if r.body[key]["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{path} not {status}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_volume(c: &Client, project: &str, name: &str) -> String {
    let r = c
        .post(
            &format!("/v3/{project}/volumes"),
            &json!({"volume": {"size": 1, "name": name}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    wait_status(
        c,
        &format!("/v3/{project}/volumes/{id}"),
        "volume",
        "available",
    )
    .await;
    id
}

/// A log with two projects' volumes and snapshots, the executor's
/// outcomes, refusals (a bad extend, another project's id, a reader), an
/// admin acting on a project's volume, and a deletion.
async fn noauth_workload(srv: &Server) -> Vec<String> {
    let alice = srv.client("alice", "p1");
    let bob = srv.client("bob", "p2");
    let admin = srv.client("admin", "p2");
    let v1 = create_volume(&alice, "p1", "a1").await;
    let v2 = create_volume(&alice, "p1", "a2").await;
    let v3 = create_volume(&bob, "p2", "b1").await;
    let r = alice
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": v1, "name": "s1"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s1 = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    wait_status(
        &alice,
        &format!("/v3/p1/snapshots/{s1}"),
        "snapshot",
        "available",
    )
    .await;
    let r = alice
        .post(
            &format!("/v3/p1/volumes/{v1}/action"),
            &json!({"os-extend": {"new_size": 1}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = bob.delete(&format!("/v3/p2/volumes/{v1}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = admin
        .post(
            &format!("/v3/p2/volumes/{v3}/metadata"),
            &json!({"metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = alice.delete(&format!("/v3/p1/volumes/{v2}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let deadline = Instant::now() + DEADLINE;
    while alice.get(&format!("/v3/p1/volumes/{v2}")).await.status != 404 {
        assert!(Instant::now() < deadline, "volume not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    vec![v1, v2, v3, s1]
}

/// The filters of `GET /v3/{p}/events`, random combinations of them, for
/// admins (all projects or the URL's) and members, against a scan of the
/// database file: the same positions in the same order, every page
/// followed. Also the first page alone is the first `limit` of them.
#[test]
fn filters_equal_an_independent_scan_of_the_log() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), "raw");
    let ids = rt.block_on(noauth_workload(&srv));
    let rows = scan_log(tmp.path());
    let owned = owners(&rows);
    assert!(rows.iter().any(Row::refused));
    // Filter values: what the log holds, and some it does not.
    let mut resource_ids: Vec<String> = ids.clone();
    resource_ids.push(uuid::Uuid::new_v4().to_string());
    let types: Vec<String> = ["volume", "snapshot", "policy", "idempotency", "image"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut event_types: Vec<String> = rows.iter().map(|r| r.event_type.clone()).collect();
    event_types.sort();
    event_types.dedup();
    let users: Vec<String> = vec!["alice".into(), "bob".into(), "admin".into(), "eve".into()];
    let requests: Vec<String> = rows
        .iter()
        .filter_map(|r| r.md("request_id").map(str::to_string))
        .collect();
    let times: Vec<String> = rows.iter().map(|r| r.recorded_at.clone()).collect();
    let head = rows.len() as u64;
    let pick = |v: Vec<String>| proptest::option::of(proptest::sample::select(v));
    let strategy = (
        (
            pick(resource_ids),
            pick(types),
            pick(event_types),
            proptest::option::of(proptest::sample::select(vec!["accepted", "refused"])),
            pick(users),
        ),
        (
            pick(requests),
            pick(times.clone()),
            pick(times),
            proptest::option::of(0..head + 2),
            1usize..40,
            0usize..4,
        ),
    )
        .prop_map(
            |((rid, rt_, et, oc, user), (req, since, until, after, limit, who))| {
                (
                    F {
                        resource_id: rid,
                        resource_type: rt_,
                        event_type: et,
                        outcome: oc,
                        user_id: user,
                        request_id: req,
                        since,
                        until,
                        after,
                        limit,
                    },
                    who,
                )
            },
        );
    let mut runner = TestRunner::new(Config {
        cases: 64,
        max_shrink_iters: 32,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(f, who)| {
        // (client, URL project, extra query, owner project the scope is)
        let (user, project, extra, scope) = match who {
            0 => ("admin", "p1", "&all_projects=true", None),
            1 => ("admin", "p2", "", Some("p2")),
            2 => ("alice", "p1", "", Some("p1")),
            _ => ("bob", "p2", "", Some("p2")),
        };
        let c = srv.client(user, project);
        let expected: Vec<u64> = rows
            .iter()
            .filter(|r| f.matches(r))
            .filter(|r| scope.is_none_or(|p| owned[&r.position].contains(p)))
            .map(|r| r.position)
            .collect();
        let url = format!("/v3/{project}/events?{}{extra}", f.query());
        let got = rt.block_on(all_pages(&c, &url));
        prop_assert_eq!(&got, &expected, "{}", url);
        let first = rt.block_on(c.get(&url)).body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect::<Vec<_>>();
        let want: Vec<u64> = expected.iter().take(f.limit).copied().collect();
        prop_assert_eq!(first, want, "first page of {}", url);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The same filters under /v2 answer the same (an admin's default
    // there is every project, the listing since issue 2).
    let admin = srv.client("admin", "p1");
    let v2 = rt.block_on(all_pages(&admin, "/v2/p1/events?limit=7"));
    assert_eq!(v2, (1..=head).collect::<Vec<_>>());
    let narrowed = rt.block_on(all_pages(&admin, "/v2/p1/events?all_projects=false"));
    let p1: Vec<u64> = rows
        .iter()
        .filter(|r| owned[&r.position].contains("p1"))
        .map(|r| r.position)
        .collect();
    assert_eq!(narrowed, p1);
}

async fn login(base: &str, user: &str, password: &str, project: &str) -> Client {
    let (status, token) = password_login(base, user, password, project).await;
    assert_eq!(status, 201);
    Client {
        http: reqwest::Client::new(),
        base: base.to_string(),
        token: token.expect("X-Subject-Token"),
    }
}

/// Keystone mode: projects alpha and beta, alice (member of alpha), bob
/// (member of beta), rita (reader of alpha), boss (admin).
struct Keystone {
    _tmp: tempfile::TempDir,
    alpha: String,
    beta: String,
    srv: Server,
}

fn keystone() -> Keystone {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let alpha = id_in(&cli_ok(&data, &["project", "add", "alpha"], None));
    let beta = id_in(&cli_ok(&data, &["project", "add", "beta"], None));
    for (user, project, role) in [
        ("alice", "alpha", "member"),
        ("bob", "beta", "member"),
        ("rita", "alpha", "reader"),
        ("boss", "alpha", "admin"),
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
            Some(&format!("{user}-Secret-4711")),
        );
    }
    let srv = Server::start_full(&data, "raw", &["--auth", "keystone"], &[], None);
    Keystone {
        _tmp: tmp,
        alpha,
        beta,
        srv,
    }
}

fn positions(body: &Value) -> Vec<u64> {
    body["events"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

/// A member cannot read another project's events in any way: not by
/// naming the other project in the URL, not with all_projects, not by
/// filtering on its resource ids, its user, its request ids, not through
/// the history routes (v2 or v3, with or without as_of), not the digest.
/// What it does see is its own project's events only (its resources' and
/// its own refusals, including the one that named the other's volume).
#[tokio::test(flavor = "multi_thread")]
async fn a_member_cannot_read_another_projects_events() {
    let k = keystone();
    let base = k.srv.base.clone();
    let (alpha, beta) = (k.alpha.clone(), k.beta.clone());
    let alice = login(&base, "alice", "alice-Secret-4711", "alpha").await;
    let bob = login(&base, "bob", "bob-Secret-4711", "beta").await;
    let va = create_volume(&alice, &alpha, "secret-a").await;
    let vb = create_volume(&bob, &beta, "b").await;
    let r = alice
        .post(
            &format!("/v3/{alpha}/snapshots"),
            &json!({"snapshot": {"volume_id": va, "name": "sa"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let sa = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    wait_status(
        &alice,
        &format!("/v3/{alpha}/snapshots/{sa}"),
        "snapshot",
        "available",
    )
    .await;
    // Bob guesses alice's volume id: refused (404), and recorded.
    let r = bob.delete(&format!("/v3/{beta}/volumes/{va}")).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Alice's own view: her ids, her user id and request ids, to try.
    let mine = alice.get(&format!("/v3/{alpha}/events?limit=1000")).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let alice_events = mine.body["events"].as_array().unwrap().clone();
    let alice_user = alice_events
        .iter()
        .find_map(|e| {
            (e["event_type"] == "VolumeCreateRequested").then(|| e["who"]["user_id"].clone())
        })
        .unwrap();
    assert!(alice_user.is_string());
    let alice_requests: Vec<String> = alice_events
        .iter()
        .filter(|e| e["who"]["user_id"] == alice_user)
        .filter_map(|e| e["how"]["request_id"].as_str().map(str::to_string))
        .collect();
    assert!(!alice_requests.is_empty());
    // who/from/how of a new event (issue 14's metadata).
    let created = alice_events
        .iter()
        .find(|e| e["event_type"] == "VolumeCreateRequested")
        .unwrap();
    assert_eq!(created["who"]["roles"], json!(["member"]), "{created}");
    assert_eq!(created["who"]["project_id"], json!(alpha));
    assert_eq!(created["how"]["method"], "POST", "{created}");
    assert_eq!(created["how"]["route"], format!("/v3/{alpha}/volumes"));
    assert_eq!(created["how"]["dialect"], "cinder");
    assert!(created["from"]["remote_addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert_eq!(created["outcome"], "accepted");
    assert_eq!(created["resource_type"], "volume");
    assert_eq!(created["resource_id"], json!(va));
    // The executor's outcome of alice's volume is alpha's.
    let allocated = alice_events
        .iter()
        .find(|e| e["event_type"] == "VolumeAllocated")
        .expect("the executor's event is the volume's project's");
    assert_eq!(allocated["who"]["system"], "executor", "{allocated}");
    assert!(allocated["who"]["user_id"].is_null());
    // Alice sees bob's refusal that named her volume (who tried).
    assert!(alice_events.iter().any(|e| e["outcome"] == "refused"
        && e["resource_id"] == json!(va)
        && e["who"]["project_id"] == json!(beta)));
    let alice_positions: BTreeSet<u64> = positions(&mine.body).into_iter().collect();

    // Everything bob may see: beta's events and his own refusal only.
    let bob_all = bob.get(&format!("/v3/{beta}/events?limit=1000")).await;
    assert_eq!(bob_all.status, 200, "{}", bob_all.body);
    let bob_events = bob_all.body["events"].as_array().unwrap();
    for e in bob_events {
        let beta_resource = e["resource_id"] == json!(vb) || e["who"]["project_id"] == json!(beta);
        assert!(beta_resource, "bob sees {e}");
    }
    let bob_refusal: Vec<u64> = bob_events
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(bob_refusal.len(), 1);
    // Not one of alice's own events, by any filter.
    let leaked = |body: &Value| -> Vec<u64> {
        positions(body)
            .into_iter()
            .filter(|p| alice_positions.contains(p) && !bob_refusal.contains(p))
            .collect()
    };
    let mut tries = vec![
        format!("/v3/{beta}/events?resource_id={va}"),
        format!("/v3/{beta}/events?resource_id={sa}"),
        format!("/v3/{beta}/events?resource_type=volume&limit=1000"),
        format!("/v3/{beta}/events?resource_type=snapshot"),
        format!("/v3/{beta}/events?user_id={}", alice_user.as_str().unwrap()),
        format!("/v3/{beta}/events?event_type=VolumeCreateRequested"),
        format!("/v3/{beta}/events?outcome=accepted&limit=1000"),
        format!("/v3/{beta}/events?after=0&limit=1000"),
        format!("/v2/{beta}/events?limit=1000"),
        format!("/v2/{beta}/events?stream=volume-{va}"),
    ];
    for r in &alice_requests {
        tries.push(format!("/v3/{beta}/events?request_id={r}"));
    }
    for url in &tries {
        let r = bob.get(url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        assert_eq!(leaked(&r.body), Vec::<u64>::new(), "{url}: {}", r.body);
    }
    // The other project in the URL, all_projects, history, digest: refused.
    for (url, want) in [
        (format!("/v3/{alpha}/events"), 400),
        (format!("/v2/{alpha}/events"), 400),
        (format!("/v3/{alpha}/events?all_projects=true"), 400),
        (format!("/v3/{beta}/events?all_projects=true"), 403),
        (format!("/v2/{beta}/events?all_projects=true"), 403),
        (format!("/v3/{beta}/volumes/{va}/history"), 404),
        (format!("/v2/{beta}/volumes/{va}/history"), 404),
        (format!("/v3/{beta}/volumes/{va}/history?as_of=1"), 404),
        (format!("/v3/{beta}/snapshots/{sa}/history"), 404),
        (format!("/v2/{beta}/snapshots/{sa}/history"), 404),
        (format!("/v3/{alpha}/volumes/{va}/history"), 400),
        (format!("/v3/{beta}/events/digest"), 403),
    ] {
        let r = bob.get(&url).await;
        assert_eq!(r.status, want, "{url}: {}", r.body);
        assert!(leaked(&r.body).is_empty(), "{url}: {}", r.body);
    }
    let r = bob.get(&format!("/v3/{beta}/volumes/{va}/history")).await;
    assert_eq!(r.body["itemNotFound"]["code"], 404, "{}", r.body);

    // The reader of alpha reads alpha's events (reading changes nothing).
    let rita = login(&base, "rita", "rita-Secret-4711", "alpha").await;
    let r = rita.get(&format!("/v3/{alpha}/events?limit=1000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(positions(&r.body)
        .iter()
        .all(|p| alice_positions.contains(p)
            || r.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["position"] == *p && e["who"]["roles"] == json!(["reader"]))));

    // The admin reads beta by naming it, and everything with all_projects.
    let boss = login(&base, "boss", "boss-Secret-4711", "alpha").await;
    let r = boss.get(&format!("/v3/{beta}/events?limit=1000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(positions(&r.body), positions(&bob_all.body));
    let r = boss
        .get(&format!("/v3/{alpha}/events?all_projects=true&limit=1000"))
        .await;
    let all = positions(&r.body);
    assert_eq!(all, (1..=all.len() as u64).collect::<Vec<_>>());
    let r = boss.get(&format!("/v3/{beta}/volumes/{va}/history")).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A volume's history is its whole life in order, with the refusals that
/// named it; as_of gives the events up to that instant and the state the
/// domain folds from them (by position and by time).
#[tokio::test(flavor = "multi_thread")]
async fn history_includes_refusals_and_as_of_folds_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), "raw");
    let alice = srv.client("alice", "p1");
    let bob = srv.client("bob", "p2");
    let v = create_volume(&alice, "p1", "h").await;
    let r = alice
        .post(
            &format!("/v3/p1/volumes/{v}/action"),
            &json!({"os-extend": {"new_size": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(bob.delete(&format!("/v3/p2/volumes/{v}")).await.status, 404);
    let r = alice
        .post(
            &format!("/v3/p1/volumes/{v}/action"),
            &json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(
        &alice,
        &format!("/v3/p1/volumes/{v}"),
        "volume",
        "available",
    )
    .await;
    let deadline = Instant::now() + DEADLINE;
    while alice.get(&format!("/v3/p1/volumes/{v}")).await.body["volume"]["size"] != 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for prefix in ["/v3", "/v2"] {
        let h = alice.get(&format!("{prefix}/p1/volumes/{v}/history")).await;
        assert_eq!(h.status, 200, "{}", h.body);
        let events = h.body["events"].as_array().unwrap();
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(types[0], "VolumeCreateRequested", "{types:?}");
        assert!(types.contains(&"VolumeAllocated"), "{types:?}");
        let refusals: Vec<&Value> = events
            .iter()
            .filter(|e| e["outcome"] == "refused")
            .collect();
        assert_eq!(refusals.len(), 2, "{types:?}");
        assert!(refusals.iter().any(|e| e["who"]["user_id"] == "bob"));
        assert!(refusals
            .iter()
            .any(|e| e["data"]["reason"] == "new_size_not_greater"));
        let ps = positions(&h.body);
        assert!(ps.windows(2).all(|w| w[0] < w[1]), "{ps:?}");
        assert!(events.iter().all(|e| e["resource_id"] == json!(v)));
        assert!(h.body["next"].is_null());
    }
    let h = alice.get(&format!("/v3/p1/volumes/{v}/history")).await.body;
    let events = h["events"].as_array().unwrap();
    let created = &events[0];
    let first = created["position"].as_u64().unwrap();
    // As of its creation request: creating, size 1, one event.
    let r = alice
        .get(&format!("/v3/p1/volumes/{v}/history?as_of={first}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(positions(&r.body), vec![first]);
    assert_eq!(r.body["as_of"]["position"], first);
    assert_eq!(r.body["as_of"]["recorded_at"], created["recorded_at"]);
    assert_eq!(
        r.body["state"]["volume"]["status"], "creating",
        "{}",
        r.body
    );
    assert_eq!(r.body["state"]["volume"]["size"], 1);
    // As of the time of the allocation: available, still 1 GiB.
    let allocated = events
        .iter()
        .find(|e| e["event_type"] == "VolumeAllocated")
        .unwrap();
    let t = allocated["recorded_at"].as_str().unwrap();
    let r = alice
        .get(&format!("/v3/p1/volumes/{v}/history?as_of={}", enc(t)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["state"]["volume"]["status"], "available",
        "{}",
        r.body
    );
    assert_eq!(r.body["state"]["volume"]["size"], 1);
    assert_eq!(
        positions(&r.body).last().copied(),
        allocated["position"].as_u64()
    );
    // Now: 2 GiB.
    let head = events.last().unwrap()["position"].as_u64().unwrap();
    let r = alice
        .get(&format!("/v3/p1/volumes/{v}/history?as_of={head}"))
        .await;
    assert_eq!(r.body["state"]["volume"]["size"], 2, "{}", r.body);
    // Paged: one at a time, the same life.
    let paged = all_pages(&alice, &format!("/v3/p1/volumes/{v}/history?limit=1")).await;
    assert_eq!(paged, positions(&h));
    // Bad as_of; unknown and malformed ids.
    let r = alice
        .get(&format!("/v3/p1/volumes/{v}/history?as_of=yesterday"))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = alice
        .get(&format!("/v3/p1/volumes/{}/history", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(alice.get("/v3/p1/volumes/nope/history").await.status, 404);
}

/// The digest (admin only) and `verify --digest`: the log extends the
/// digest after more appends (exit 0); a wrong hash, a position past the
/// head, or a row changed before the digest's position are divergences
/// (non-zero, with the position).
#[tokio::test(flavor = "multi_thread")]
async fn digest_and_verify_digest_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start_with(tmp.path(), "raw");
    let alice = srv.client("alice", "p1");
    let admin = srv.client("admin", "p1");
    create_volume(&alice, "p1", "d1").await;
    assert_eq!(alice.get("/v3/p1/events/digest").await.status, 403);
    let r = admin.get("/v3/p1/events/digest").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["digest"];
    assert_eq!(d["verified"], true, "{d}");
    let pos = d["position"].as_u64().unwrap();
    let hash = d["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    assert!(
        d["recorded_at"].is_string() && d["detail"].is_string(),
        "{d}"
    );
    let head = scan_log(tmp.path()).len() as u64;
    assert_eq!(pos, head);
    // The log goes on: it still extends the digest.
    create_volume(&alice, "p1", "d2").await;
    let r = admin.get("/v2/p1/events/digest").await;
    assert!(r.body["digest"]["position"].as_u64().unwrap() > pos);
    let digest = format!("{hash}@{pos}");
    let (code, out, err) = cli_run(tmp.path(), &["verify", "--digest", &digest], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok:"), "{out}");
    // Another hash at that position: diverged.
    let wrong = format!("{}@{pos}", "0".repeat(64));
    let (code, _, err) = cli_run(tmp.path(), &["verify", "--digest", &wrong], None);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("position {pos}")), "{err}");
    // A digest of a longer log than this one: cut short.
    let (code, _, err) = cli_run(
        tmp.path(),
        &["verify", "--digest", &format!("{hash}@{}", pos + 1000)],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("cut short"), "{err}");
    let (code, _, _) = cli_run(tmp.path(), &["verify", "--digest", "nonsense"], None);
    assert_ne!(code, 0);
    // A row before the digest's position changed behind the log's back.
    srv.stop();
    {
        let conn = rusqlite::Connection::open(tmp.path().join("blockledger.db")).unwrap();
        conn.execute_batch(
            "DROP TRIGGER events_no_update;
             UPDATE events SET data = '{\"size\": 1000}' WHERE position = 2;",
        )
        .unwrap();
    }
    let (code, _, err) = cli_run(tmp.path(), &["verify", "--digest", &digest], None);
    assert_ne!(code, 0);
    assert!(
        err.contains("diverges from the digest at position 2"),
        "{err}"
    );
}

/// `blockledger events`: --json is one object a line in position order,
/// in the API's shape, filtered by --resource and --since; the default is
/// one line an event; --follow prints an event appended after it started,
/// within the deadline, and ends on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn events_command_json_and_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), "raw");
    let alice = srv.client("alice", "p1");
    let v1 = create_volume(&alice, "p1", "c1").await;
    let v2 = create_volume(&alice, "p1", "c2").await;
    let rows = scan_log(tmp.path());
    let out = cli_ok(tmp.path(), &["events", "--json"], None);
    let all: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), rows.len());
    for (e, r) in all.iter().zip(&rows) {
        assert_eq!(e["position"], r.position);
        assert_eq!(e["event_type"], json!(r.event_type));
        assert!(e["who"].is_object() && e["how"].is_object() && e["from"].is_object());
    }
    let out = cli_ok(tmp.path(), &["events", "--json", "--resource", &v1], None);
    let mine: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|e| e["resource_id"] == json!(v1)), "{out}");
    assert_eq!(mine[0]["event_type"], "VolumeCreateRequested");
    let human = cli_ok(tmp.path(), &["events"], None);
    assert_eq!(human.lines().count(), rows.len(), "{human}");
    assert!(human.contains(&format!("volume/{v2}")), "{human}");
    let future = cli_ok(
        tmp.path(),
        &["events", "--since", "2999-01-01T00:00:00Z"],
        None,
    );
    assert_eq!(future, "");
    let last = rows.last().unwrap().recorded_at.clone();
    let tail = cli_ok(tmp.path(), &["events", "--json", "--since", &last], None);
    assert!(tail.lines().count() >= 1);
    let (code, _, _) = cli_run(tmp.path(), &["events", "--since", "yesterday"], None);
    assert_ne!(code, 0);

    // --follow
    let mut child = Command::new(BIN)
        .args(["events", "--follow", "--json", "--data-dir"])
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    // The existing events first, then a new volume's.
    let seen_head = {
        let deadline = Instant::now() + DEADLINE;
        let mut n = 0;
        while n < rows.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left).expect("existing events printed");
            n += 1;
        }
        n
    };
    assert_eq!(seen_head, rows.len());
    let v3 = create_volume(&alice, "p1", "c3").await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = rx
            .recv_timeout(left)
            .expect("--follow printed the new volume's events in time");
        if e["resource_id"] == json!(v3) {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "--follow did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
}

/// A transferred volume: the giver keeps the history up to the transfer,
/// the receiver sees it from the transfer on, both see the transfer; the
/// receiver learns nothing of what happened before (ownership at the time
/// of each event, app/events.rs).
#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_splits_a_volumes_history_between_the_projects() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start_with(tmp.path(), "raw");
    let alice = srv.client("alice", "p1");
    let bob = srv.client("bob", "p2");
    let v = create_volume(&alice, "p1", "t").await;
    let md = |k: &str| json!({"metadata": {k: "x"}});
    let r = alice
        .post(&format!("/v3/p1/volumes/{v}/metadata"), &md("before"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = alice
        .post(
            "/v3/p1/os-volume-transfer",
            &json!({"transfer": {"volume_id": v, "name": "t"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let tid = r.body["transfer"]["id"].as_str().unwrap().to_string();
    let key = r.body["transfer"]["auth_key"].as_str().unwrap().to_string();
    let r = bob
        .post(
            &format!("/v3/p2/os-volume-transfer/{tid}/accept"),
            &json!({"accept": {"auth_key": key}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = bob
        .post(&format!("/v3/p2/volumes/{v}/metadata"), &md("after"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let types = |body: &Value| -> Vec<String> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    };
    let a = alice.get(&format!("/v3/p1/volumes/{v}/history")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let b = bob.get(&format!("/v3/p2/volumes/{v}/history")).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let (ta, tb) = (types(&a.body), types(&b.body));
    assert_eq!(ta[0], "VolumeCreateRequested", "{ta:?}");
    assert_eq!(ta.last().unwrap(), "VolumeTransferred", "{ta:?}");
    assert_eq!(tb[0], "VolumeTransferred", "{tb:?}");
    assert!(!tb.contains(&"VolumeCreateRequested".to_string()), "{tb:?}");
    let a_pos: BTreeSet<u64> = positions(&a.body).into_iter().collect();
    let b_pos: BTreeSet<u64> = positions(&b.body).into_iter().collect();
    assert_eq!(a_pos.intersection(&b_pos).count(), 1, "{ta:?} {tb:?}");
    // Bob's metadata change is p2's only.
    let after = |body: &Value| {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"].to_string().contains("\"after\""))
    };
    assert!(after(&b.body) && !after(&a.body));
    let before = |body: &Value| {
        body["events"].as_array().unwrap().iter().any(|e| {
            let d = e["data"].to_string();
            d.contains("\"before\"") && !d.contains("\"after\"")
        })
    };
    assert!(before(&a.body) && !before(&b.body), "{}", b.body);
}

/// The audit index follows the log in the background: after a restart
/// over a log written while the index was behind, the index reaches the
/// log's head within a deadline without any audit query asking for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_catches_up_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start_with(tmp.path(), "raw");
    let alice = srv.client("alice", "p1");
    for i in 0..3 {
        create_volume(&alice, "p1", &format!("bg{i}")).await;
    }
    srv.stop();
    // Drop the index, as a log from before the index would have none.
    {
        let conn = rusqlite::Connection::open(tmp.path().join("blockledger.db")).unwrap();
        conn.execute_batch("DROP TABLE IF EXISTS audit_events")
            .unwrap();
    }
    let head = scan_log(tmp.path()).last().unwrap().position;
    srv.restart();
    let indexed = || -> u64 {
        let conn = rusqlite::Connection::open_with_flags(
            tmp.path().join("blockledger.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(
            "SELECT COALESCE(MAX(position), 0) FROM audit_events",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while indexed() < head {
        assert!(
            std::time::Instant::now() < deadline,
            "index at {} of {head} after 30 s",
            indexed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
