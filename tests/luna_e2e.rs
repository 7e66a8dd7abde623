//! The small provider's API, `/api/volume/{action}` (issue 9, rows LUNA-*
//! of ../shared/API.md §2.3), end to end against the real binary: the
//! documented examples, a volume's whole life with its bytes checked, the
//! fence between projects, and bad input.

mod support;

use serde_json::{json, Value};
use support::*;

/// How the parameters travel: the three ways DECISIONS.md allows.
#[derive(Clone, Copy, Debug)]
enum Enc {
    Query,
    Form,
    Json,
}

/// Percent-encodes every byte but unreserved ones.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Luna {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Luna {
    fn new(srv: &Server, user: &str, project: &str) -> Luna {
        Luna {
            http: reqwest::Client::new(),
            base: srv.base.clone(),
            token: Some(format!("{user}:{project}")),
        }
    }

    /// Any request to `path` (with its query string), raw.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.body(body).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call_as(&self, e: Enc, action: &str, params: &[(&str, &str)]) -> Reply {
        let path = format!("/api/volume/{action}");
        match e {
            Enc::Query => {
                let q = form(params);
                let sep = if q.is_empty() { "" } else { "?" };
                self.raw("GET", &format!("{path}{sep}{q}"), None, vec![])
                    .await
            }
            Enc::Form => {
                self.raw(
                    "POST",
                    &path,
                    Some("application/x-www-form-urlencoded"),
                    form(params).into_bytes(),
                )
                .await
            }
            Enc::Json => {
                let obj: serde_json::Map<String, Value> = params
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect();
                self.raw(
                    "POST",
                    &path,
                    Some("application/json"),
                    Value::Object(obj).to_string().into_bytes(),
                )
                .await
            }
        }
    }

    /// A form POST.
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Reply {
        self.call_as(Enc::Form, action, params).await
    }

    /// A call that must succeed.
    async fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let r = self.call(action, params).await;
        assert_eq!(r.status, 200, "{action} {params:?}: {}", r.body);
        assert_eq!(r.body["success"], "yes", "{action}: {}", r.body);
        r.body
    }

    async fn info(&self, id: &str) -> Value {
        self.ok("info", &[("volume_id", id)]).await["volume"].clone()
    }

    /// Polls `info` until `pred` holds.
    async fn wait_info(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let v = self.info(id).await;
            if pred(&v) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: last {v}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Polls `snapshot-list` until `pred` holds on the snapshot `sid` (None:
    /// it is gone).
    async fn wait_snapshot(
        &self,
        region: &str,
        sid: &str,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let body = self.ok("snapshot-list", &[("region", region)]).await;
            let found = body["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == sid);
            if pred(found) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "snapshot {sid}: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The shared settings, plus the LUNA spellings of ids and times.
fn settings() -> insta::Settings {
    let mut s = insta_settings();
    for key in ["identification", "snapshot_id", "image_id"] {
        s.add_redaction(&format!(".**.{key}"), "[id]");
    }
    for key in ["time_created", "created"] {
        s.add_redaction(&format!(".**.{key}"), "[time]");
    }
    s
}

/// Holds the documented example `LUNA-<row>.response.json` field by field
/// and as an insta snapshot.
fn hold(row: &str, body: &Value) {
    let name = format!("LUNA-volume-{row}");
    assert_same_shape(&example(&format!("{name}.response.json")), body, &name);
    settings().bind(|| insta::assert_json_snapshot!(name.clone(), body));
}

const VM: &str = "16b64847-0a86-42ea-bea8-ed60bd960c68";

/// Every documented example (API.md §4.3, X002-01 … X002-12), in the
/// seed's own parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_documented_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let l = Luna::new(&srv, "alice", "p1");

    let r = l
        .ok(
            "create",
            &[
                ("region", "toronto"),
                ("label", "myvolume"),
                ("size", "100"),
            ],
        )
        .await;
    hold("create", &r);
    let id = r["volume_id"].as_str().unwrap().to_string();
    assert!(id.parse::<u64>().is_ok(), "numeric id: {id}");
    l.wait_info(&id, "available", |v| v["status"] == "available")
        .await;

    let r = l.ok("list", &[]).await;
    assert_eq!(r["volumes"][0]["status"], "active");
    assert_eq!(r["volumes"][0]["region"], "toronto");
    assert_eq!(r["volumes"][0]["size"], "100");
    hold("list", &r);

    let r = l.ok("info", &[("volume_id", &id)]).await;
    assert_eq!(r["volume"]["attached"], "");
    assert_eq!(r["volume"]["name"], "myvolume");
    hold("info", &r);

    let r = l
        .ok(
            "attach",
            &[("volume_id", &id), ("vm_id", VM), ("target", "auto")],
        )
        .await;
    hold("attach", &r);
    let v = l.info(&id).await;
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["attached"], VM);

    let r = l.ok("detach", &[("volume_id", &id)]).await;
    hold("detach", &r);

    let r = l.ok("extend", &[("volume_id", &id), ("size", "150")]).await;
    hold("extend", &r);
    l.wait_info(&id, "extended", |v| {
        v["size"] == "150" && v["status"] == "available"
    })
    .await;

    let r = l
        .ok("rename", &[("volume_id", &id), ("name", "myvolume2")])
        .await;
    hold("rename", &r);

    let r = l
        .ok(
            "snapshot-create",
            &[("volume_id", &id), ("label", "myvolsnapshot")],
        )
        .await;
    hold("snapshot-create", &r);
    let sid = r["snapshot_id"].as_str().unwrap().to_string();
    let r = l
        .wait_snapshot("toronto", &sid, |s| {
            s.is_some_and(|s| s["status"] == "available")
        })
        .await;
    assert_eq!(r["snapshots"][0]["volume"]["id"], id.as_str());
    hold("snapshot-list", &r);

    let r = l
        .ok(
            "snapshot-replicate",
            &[
                ("region", "toronto"),
                ("snapshot_id", &sid),
                ("image_name", "ImageFromVolSnapshot"),
                ("dst_region", "toronto"),
            ],
        )
        .await;
    hold("snapshot-replicate", &r);

    let r = l
        .ok(
            "snapshot-delete",
            &[("region", "toronto"), ("snapshot_id", &sid)],
        )
        .await;
    hold("snapshot-delete", &r);
    l.wait_snapshot("toronto", &sid, |s| s.is_none()).await;

    let r = l.ok("delete", &[("volume_id", &id)]).await;
    hold("delete", &r);
}

/// A volume's whole life in this dialect alone, each step read back
/// through the Cinder routes, the snapshot's bytes carried into an image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_lives_its_whole_life_in_this_dialect() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let l = Luna::new(&srv, "alice", "p1");
    let c = srv.client("alice", "p1");

    // Create: the three encodings give the same kind of answer.
    let id = l
        .call_as(
            Enc::Json,
            "create",
            &[("region", "montreal"), ("label", "walk"), ("size", "1")],
        )
        .await;
    assert_eq!(id.status, 200, "{}", id.body);
    let id = id.body["volume_id"].as_str().unwrap().to_string();
    let other = l
        .call_as(
            Enc::Query,
            "create",
            &[("region", "toronto"), ("label", "other"), ("size", "1")],
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.body);
    let other = other.body["volume_id"].as_str().unwrap().to_string();
    assert_ne!(id, other);
    let v = l
        .wait_info(&id, "available", |v| v["status"] == "available")
        .await;
    let uuid = v["identification"].as_str().unwrap().to_string();
    // The UUID names the same volume as the number does.
    assert_eq!(l.info(&uuid).await["id"], id.as_str());
    let cv = c.get(&format!("/v3/p1/volumes/{uuid}")).await;
    assert_eq!(cv.status, 200, "{}", cv.body);
    assert_eq!(cv.body["volume"]["name"], "walk");
    assert_eq!(cv.body["volume"]["availability_zone"], "montreal");

    // List, with and without the region filter.
    let all = l.ok("list", &[]).await;
    assert_eq!(all["volumes"].as_array().unwrap().len(), 2);
    let mtl = l
        .call_as(Enc::Query, "list", &[("region", "montreal")])
        .await;
    assert_eq!(mtl.status, 200, "{}", mtl.body);
    let mtl = mtl.body["volumes"].as_array().unwrap().clone();
    assert_eq!(mtl.len(), 1, "{mtl:?}");
    assert_eq!(mtl[0]["id"], id.as_str());
    assert_eq!(mtl[0]["identification"], uuid.as_str());
    assert_eq!(mtl[0]["status"], "active");
    let rbx = l.ok("list", &[("region", "roubaix")]).await;
    assert_eq!(rbx["volumes"], json!([]));

    // Rename and extend, seen by Cinder.
    l.ok("rename", &[("volume_id", &id), ("name", "walk2")])
        .await;
    l.ok("extend", &[("volume_id", &id), ("size", "2")]).await;
    l.wait_info(&id, "extended", |v| {
        v["size"] == "2" && v["status"] == "available"
    })
    .await;
    let cv = c.get(&format!("/v3/p1/volumes/{uuid}")).await;
    assert_eq!(cv.body["volume"]["name"], "walk2");
    assert_eq!(cv.body["volume"]["size"], 2);

    // Attach at the next free device; an attached volume does not grow.
    l.ok(
        "attach",
        &[("volume_id", &id), ("vm_id", VM), ("target", "auto")],
    )
    .await;
    let v = l.info(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["attached"].as_str()),
        (Some("in-use"), Some(VM))
    );
    let cv = c.get(&format!("/v3/p1/volumes/{uuid}")).await;
    assert_eq!(cv.body["volume"]["status"], "in-use");
    assert_eq!(cv.body["volume"]["attachments"][0]["device"], "/dev/vdb");
    assert_eq!(cv.body["volume"]["attachments"][0]["server_id"], VM);
    let r = l.call("extend", &[("volume_id", &id), ("size", "3")]).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["success"], "no");
    l.ok("detach", &[("volume_id", &id)]).await;
    assert_eq!(l.info(&id).await["status"], "available");

    // Bytes before the snapshot, others after it.
    let (_, path) = device_path(&c, "p1", &uuid).await;
    write_pattern("qcow2", &path, 0xaa);
    let sid = l
        .ok("snapshot-create", &[("volume_id", &id), ("label", "snap")])
        .await["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = l
        .wait_snapshot("montreal", &sid, |s| {
            s.is_some_and(|s| s["status"] == "available")
        })
        .await;
    let snap = &list["snapshots"][0];
    assert_eq!(snap["name"], "snap");
    assert_eq!(snap["size"], "2");
    assert_eq!(snap["volume"]["identification"], uuid.as_str());
    assert_eq!(
        l.ok("snapshot-list", &[("region", "toronto")]).await["snapshots"],
        json!([])
    );
    let (_, path) = device_path(&c, "p1", &uuid).await;
    write_pattern("qcow2", &path, 0xbb);
    assert!(holds_pattern("qcow2", &path, 0xbb));

    // Rollback is not a LUNA action. Replicate the snapshot into an image.
    let image = l
        .ok(
            "snapshot-replicate",
            &[
                ("region", "montreal"),
                ("snapshot_id", &sid),
                ("image_name", "ImageFromVolSnapshot"),
                ("dst_region", "toronto"),
            ],
        )
        .await["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    let img = c
        .wait_until(&format!("/image/v2/images/{image}"), "image active", |r| {
            r.body["status"] == "active" || r.body["status"] == "killed"
        })
        .await;
    assert_eq!(img.body["status"], "active", "{}", img.body);
    assert_eq!(img.body["name"], "ImageFromVolSnapshot");
    assert_eq!(img.body["disk_format"], "qcow2");
    let bytes = c
        .http
        .get(srv.url(&format!("/image/v2/images/{image}/file")))
        .header("X-Auth-Token", &c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.status().as_u16(), 200);
    let bytes = bytes.bytes().await.unwrap();
    let file = tmp.path().join("downloaded.qcow2");
    std::fs::write(&file, &bytes).unwrap();
    assert!(
        holds_pattern("qcow2", &file, 0xaa),
        "the image holds the snapshot's bytes"
    );
    assert!(!holds_pattern("qcow2", &file, 0xbb));
    assert!(
        holds_pattern("qcow2", &path, 0xbb),
        "the volume keeps its own"
    );

    // The optional sources of create: the snapshot, and the image made
    // from it, both carry the snapshot's bytes.
    for (zone, key, source) in [
        ("montreal", "snapshot_id", sid.as_str()),
        ("toronto", "image", image.as_str()),
    ] {
        let n = l
            .ok(
                "create",
                &[
                    ("region", zone),
                    ("label", key),
                    ("size", "2"),
                    (key, source),
                ],
            )
            .await["volume_id"]
            .as_str()
            .unwrap()
            .to_string();
        let v = l
            .wait_info(&n, "clone available", |v| v["status"] != "creating")
            .await;
        assert_eq!(v["status"], "available", "{key}: {v}");
        let (_, p) = device_path(&c, "p1", v["identification"].as_str().unwrap()).await;
        assert!(
            holds_pattern("qcow2", &p, 0xaa),
            "a volume from the {key} holds its bytes"
        );
    }

    // Snapshot delete, then the volume; Cinder sees both go.
    l.ok(
        "snapshot-delete",
        &[("region", "montreal"), ("snapshot_id", &sid)],
    )
    .await;
    l.wait_snapshot("montreal", &sid, |s| s.is_none()).await;
    c.wait_until(&format!("/v3/p1/snapshots/{sid}"), "snapshot gone", |r| {
        r.status == 404
    })
    .await;
    l.ok("delete", &[("volume_id", &id)]).await;
    c.wait_until(&format!("/v3/p1/volumes/{uuid}"), "volume gone", |r| {
        r.status == 404
    })
    .await;
    let r = l.call("info", &[("volume_id", &id)]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The number is never reused.
    let next = l
        .ok(
            "create",
            &[("region", "toronto"), ("label", "n"), ("size", "1")],
        )
        .await["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(next, id);
    assert_ne!(next, other);
    assert_eq!(
        l.ok("list", &[]).await["volumes"].as_array().unwrap().len(),
        4
    );

    // Numbers survive a restart and a replay.
    let mut srv = srv;
    srv.restart();
    let l = Luna::new(&srv, "alice", "p1");
    let v = l.info(&other).await;
    assert_eq!(v["name"], "other");
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// The `CommandRejected` events of project `project` through this dialect.
async fn luna_rejections(srv: &Server, project: &str) -> Vec<Value> {
    let admin = srv.client("admin", "padmin");
    let r = admin
        .get("/v2/padmin/events?stream=requests&limit=1000")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["event_type"] == "CommandRejected"
                && e["metadata"]["dialect"] == "luna"
                && e["metadata"]["project_id"] == project
        })
        .cloned()
        .collect()
}

/// One project can neither see nor change another's volume or snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_fenced() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let alice = Luna::new(&srv, "alice", "p1");
    let bob = Luna::new(&srv, "bob", "p2");
    let id = alice
        .ok(
            "create",
            &[("region", "toronto"), ("label", "mine"), ("size", "1")],
        )
        .await["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = alice
        .wait_info(&id, "available", |v| v["status"] == "available")
        .await;
    let uuid = v["identification"].as_str().unwrap().to_string();
    let sid = alice
        .ok("snapshot-create", &[("volume_id", &id), ("label", "s")])
        .await["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .wait_snapshot("toronto", &sid, |s| {
            s.is_some_and(|s| s["status"] == "available")
        })
        .await;
    let cinder = srv.client("alice", "p1");
    let before = cinder.get(&format!("/v3/p1/volumes/{uuid}")).await.body;

    // Reads: nothing to see (reads are not events, so not recorded).
    for vref in [id.as_str(), uuid.as_str()] {
        let r = bob.call("info", &[("volume_id", vref)]).await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.body["success"], "no");
        assert!(
            !r.body["error"].as_str().unwrap().contains(&uuid) || vref == uuid,
            "no UUID leaks: {}",
            r.body
        );
    }
    assert_eq!(bob.ok("list", &[]).await["volumes"], json!([]));
    assert_eq!(
        bob.ok("snapshot-list", &[("region", "toronto")]).await["snapshots"],
        json!([])
    );

    // Changes: each refused, with the error body, and recorded.
    let mut attempts = 0;
    for vref in [id.as_str(), uuid.as_str()] {
        let tries: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "attach",
                vec![("volume_id", vref), ("vm_id", VM), ("target", "auto")],
            ),
            ("detach", vec![("volume_id", vref)]),
            ("extend", vec![("volume_id", vref), ("size", "5")]),
            ("rename", vec![("volume_id", vref), ("name", "stolen")]),
            ("snapshot-create", vec![("volume_id", vref), ("label", "x")]),
            ("delete", vec![("volume_id", vref)]),
        ];
        for (action, params) in tries {
            let r = bob.call(action, &params).await;
            assert_eq!(r.status, 404, "{action}: {}", r.body);
            assert_eq!(r.body["success"], "no", "{action}");
            assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()));
            attempts += 1;
        }
    }
    for (action, params) in [
        (
            "snapshot-delete",
            vec![("region", "toronto"), ("snapshot_id", sid.as_str())],
        ),
        (
            "snapshot-replicate",
            vec![
                ("region", "toronto"),
                ("snapshot_id", sid.as_str()),
                ("image_name", "stolen"),
                ("dst_region", "toronto"),
            ],
        ),
    ] {
        let r = bob.call(action, &params).await;
        assert_eq!(r.status, 404, "{action}: {}", r.body);
        assert_eq!(r.body["success"], "no");
        attempts += 1;
    }
    // Bob's own create from Alice's snapshot is refused too.
    let r = bob
        .call(
            "create",
            &[
                ("region", "toronto"),
                ("label", "x"),
                ("size", "1"),
                ("snapshot_id", &sid),
            ],
        )
        .await;
    assert!(r.status == 400 || r.status == 404, "{}", r.body);
    assert_eq!(r.body["success"], "no");
    attempts += 1;

    let rejected = luna_rejections(&srv, "p2").await;
    assert_eq!(rejected.len(), attempts, "{rejected:#?}");
    for e in &rejected {
        assert_eq!(e["metadata"]["user_id"], "bob");
        let (reason, field) = (&e["data"]["reason"], &e["data"]["field"]);
        assert!(
            reason == "volume_not_found"
                || reason == "snapshot_not_found"
                || (reason == "invalid_field" && field == "snapshot_id"),
            "{e}"
        );
    }

    // Nothing changed.
    let after = cinder.get(&format!("/v3/p1/volumes/{uuid}")).await.body;
    assert_eq!(before, after);
    let s = cinder.get(&format!("/v3/p1/snapshots/{sid}")).await;
    assert_eq!(s.body["snapshot"]["status"], "available");
    let images = cinder.get("/image/v2/images").await;
    assert_eq!(images.body["images"], json!([]), "{}", images.body);
    let bob_images = srv.client("bob", "p2").get("/image/v2/images").await;
    assert_eq!(bob_images.body["images"], json!([]));
}

/// What the project can observe: its volumes and snapshots, in detail.
async fn observable(c: &Client) -> (Value, Value) {
    (
        c.get("/v3/p1/volumes/detail").await.body,
        c.get("/v3/p1/snapshots/detail").await.body,
    )
}

/// Bad input of every kind: the dialect's error body and a 4xx, never a
/// 500, and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let l = Luna::new(&srv, "alice", "p1");
    let c = srv.client("alice", "p1");
    let a = l
        .ok(
            "create",
            &[("region", "toronto"), ("label", "a"), ("size", "2")],
        )
        .await["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = l
        .ok(
            "create",
            &[("region", "toronto"), ("label", "b"), ("size", "1")],
        )
        .await["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    for v in [&a, &b] {
        l.wait_info(v, "available", |x| x["status"] == "available")
            .await;
    }
    l.ok(
        "attach",
        &[("volume_id", &b), ("vm_id", VM), ("target", "/dev/vdc")],
    )
    .await;
    let sid = l
        .ok("snapshot-create", &[("volume_id", &a), ("label", "s")])
        .await["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    l.wait_snapshot("toronto", &sid, |s| {
        s.is_some_and(|s| s["status"] == "available")
    })
    .await;
    let before = observable(&c).await;

    const JSON: Option<&str> = Some("application/json");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    let create = "/api/volume/create";
    let ra = format!("/api/volume/rename?volume_id={a}");
    let ea = format!("/api/volume/extend?volume_id={a}");
    let unknown = uuid::Uuid::new_v4().to_string();
    #[rustfmt::skip]
    let cases: Vec<(&str, String, Option<&str>, Vec<u8>)> = vec![
        // Malformed JSON.
        ("truncated", create.into(), JSON, br#"{"region": "toronto", "label": "x""#.to_vec()),
        ("garbage", create.into(), JSON, b"xx{]".to_vec()),
        ("empty", create.into(), JSON, vec![]),
        ("array", create.into(), JSON, br#"[{"region": "toronto"}]"#.to_vec()),
        ("trailing comma", create.into(), JSON, br#"{"region": "toronto", "label": "x", "size": 1,}"#.to_vec()),
        ("invalid utf-8 json", create.into(), JSON, b"{\"region\": \"toronto\", \"label\": \"\xff\xfe\", \"size\": 1}".to_vec()),
        ("json null", create.into(), JSON, b"null".to_vec()),
        // Malformed form bodies and query strings.
        ("form bad escape", create.into(), FORM, b"region=toronto&label=%FF&size=1".to_vec()),
        ("form raw bytes", create.into(), FORM, b"region=toronto&label=\xff&size=1".to_vec()),
        ("form no name", create.into(), FORM, b"region=toronto&=x&size=1".to_vec()),
        ("query bad escape", "/api/volume/create?region=toronto&label=%C3%28&size=1".into(), None, vec![]),
        ("unsupported media", create.into(), Some("text/plain"), b"region=toronto".to_vec()),
        // Wrong types.
        ("size word", create.into(), JSON, br#"{"region": "toronto", "label": "x", "size": "ten"}"#.to_vec()),
        ("size bool", create.into(), JSON, br#"{"region": "toronto", "label": "x", "size": true}"#.to_vec()),
        ("size array", create.into(), JSON, br#"{"region": "toronto", "label": "x", "size": [1]}"#.to_vec()),
        ("size object", create.into(), JSON, br#"{"region": "toronto", "label": "x", "size": {}}"#.to_vec()),
        ("label number", create.into(), JSON, br#"{"region": "toronto", "label": 5, "size": 1}"#.to_vec()),
        ("region number", create.into(), JSON, br#"{"region": 3, "label": "x", "size": 1}"#.to_vec()),
        ("volume_id object", "/api/volume/info".into(), JSON, br#"{"volume_id": {"a": 1}}"#.to_vec()),
        // Sizes outside 1–32768 or not whole.
        ("size 0", create.into(), FORM, b"region=toronto&label=x&size=0".to_vec()),
        ("size -1", create.into(), FORM, b"region=toronto&label=x&size=-1".to_vec()),
        ("size 32769", create.into(), FORM, b"region=toronto&label=x&size=32769".to_vec()),
        ("size huge", create.into(), FORM, b"region=toronto&label=x&size=99999999999999999999".to_vec()),
        ("size 1.5", create.into(), FORM, b"region=toronto&label=x&size=1.5".to_vec()),
        ("size 1.5 json", create.into(), JSON, br#"{"region": "toronto", "label": "x", "size": 1.5}"#.to_vec()),
        ("size 1e3", create.into(), FORM, b"region=toronto&label=x&size=1e3".to_vec()),
        ("size empty", create.into(), FORM, b"region=toronto&label=x&size=".to_vec()),
        // Missing parameters.
        ("no label", create.into(), FORM, b"region=toronto&size=1".to_vec()),
        ("no region", create.into(), FORM, b"label=x&size=1".to_vec()),
        ("no size", create.into(), FORM, b"region=toronto&label=x".to_vec()),
        ("no volume_id", "/api/volume/info".into(), None, vec![]),
        ("snapshot-list no region", "/api/volume/snapshot-list".into(), None, vec![]),
        // Unknown region.
        ("create mars", create.into(), FORM, b"region=mars&label=x&size=1".to_vec()),
        ("list mars", "/api/volume/list?region=mars".into(), None, vec![]),
        ("snapshot-list mars", "/api/volume/snapshot-list?region=mars".into(), None, vec![]),
        ("snapshot-delete mars", format!("/api/volume/snapshot-delete?region=mars&snapshot_id={sid}"), None, vec![]),
        ("replicate to mars", format!("/api/volume/snapshot-replicate?region=toronto&snapshot_id={sid}&image_name=x&dst_region=mars"), None, vec![]),
        ("snapshot in another region", format!("/api/volume/snapshot-delete?region=montreal&snapshot_id={sid}"), None, vec![]),
        // Unknown ids and path traversal.
        ("unknown number", "/api/volume/info?volume_id=999999".into(), None, vec![]),
        ("unknown uuid", format!("/api/volume/rename?volume_id={unknown}&name=x"), None, vec![]),
        ("number overflow", "/api/volume/delete?volume_id=99999999999999999999999".into(), None, vec![]),
        ("negative id", "/api/volume/delete?volume_id=-1".into(), None, vec![]),
        ("traversal id", "/api/volume/delete?volume_id=..%2F..%2Fetc%2Fpasswd".into(), None, vec![]),
        ("traversal snapshot", "/api/volume/snapshot-delete?region=toronto&snapshot_id=..%2F..%2Fsnapshots".into(), None, vec![]),
        ("unknown snapshot", format!("/api/volume/snapshot-delete?region=toronto&snapshot_id={unknown}"), None, vec![]),
        ("create from unknown snapshot", format!("/api/volume/create?region=toronto&label=x&size=1&snapshot_id={unknown}"), None, vec![]),
        ("create from unknown image", format!("/api/volume/create?region=toronto&label=x&size=1&image={unknown}"), None, vec![]),
        ("create from both", format!("/api/volume/create?region=toronto&label=x&size=1&image={unknown}&snapshot_id={sid}"), None, vec![]),
        ("traversal action", "/api/volume/..%2F..%2Fetc".into(), None, vec![]),
        ("unknown action", "/api/volume/explode".into(), None, vec![]),
        // Names refused with a clear message: too long.
        ("name too long", ra.clone(), FORM, format!("name={}", "n".repeat(256)).into_bytes()),
        ("label too long", create.into(), FORM, format!("region=toronto&size=1&label={}", "n".repeat(256)).into_bytes()),
        // Extend to a smaller or the same size; attach of an attached one.
        ("extend smaller", ea.clone(), FORM, b"size=1".to_vec()),
        ("extend same", ea.clone(), FORM, b"size=2".to_vec()),
        ("extend too big", ea.clone(), FORM, b"size=32769".to_vec()),
        ("extend attached", format!("/api/volume/extend?volume_id={b}&size=5"), None, vec![]),
        ("attach attached", format!("/api/volume/attach?volume_id={b}&vm_id={VM}&target=auto"), None, vec![]),
        ("attach bad vm", format!("/api/volume/attach?volume_id={a}&vm_id=..%2F..&target=auto"), None, vec![]),
        ("attach bad target", format!("/api/volume/attach?volume_id={a}&vm_id={VM}&target=%2Fetc%2Fpasswd"), None, vec![]),
        ("detach detached", format!("/api/volume/detach?volume_id={a}"), None, vec![]),
        ("delete with snapshot", format!("/api/volume/delete?volume_id={a}"), None, vec![]),
        ("delete attached", format!("/api/volume/delete?volume_id={b}"), None, vec![]),
        ("replicate bad image name", format!("/api/volume/snapshot-replicate?region=toronto&snapshot_id={sid}&image_name=a%2Fb&dst_region=toronto"), None, vec![]),
    ];
    // 400 unless said here: 404 for what names nothing the caller has,
    // 409 for what the volume's state forbids.
    let expected = |what: &str| match what {
        "unsupported media" => 415,
        "extend attached"
        | "attach attached"
        | "detach detached"
        | "delete with snapshot"
        | "delete attached" => 409,
        "number overflow" | "negative id" | "snapshot in another region" => 404,
        w if w.starts_with("unknown") || w.starts_with("traversal") => 404,
        _ => 400,
    };
    for (what, path, ct, body) in cases {
        let r = l.raw("POST", &path, ct, body.clone()).await;
        assert_eq!(r.status, expected(what), "{what}: {}", r.body);
        assert!(
            (400..500).contains(&r.status),
            "{what}: {} {}",
            r.status,
            r.body
        );
        assert_eq!(r.body["success"], "no", "{what}: {}", r.body);
        assert!(
            r.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {}",
            r.body
        );
        assert_eq!(r.body.as_object().unwrap().len(), 2, "{what}: {}", r.body);
    }
    // Credentials and methods are refused in the same body.
    let anon = Luna {
        token: None,
        ..Luna::new(&srv, "x", "y")
    };
    let r = anon.call("list", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["success"], "no");
    let r = l.raw("PUT", "/api/volume/list", None, vec![]).await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.body["success"], "no");
    let r = l.raw("GET", "/api/nothing", None, vec![]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["success"], "no");
    // Its own client: the server closes a connection whose body it did not
    // read, and a pooled connection must not be reused after that.
    let once = Luna::new(&srv, "alice", "p1");
    let r = once.raw("POST", create, FORM, vec![b'a'; 3 << 20]).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["success"], "no");

    assert_eq!(before, observable(&c).await, "bad input changed something");

    // Control characters are refused in every encoding (issue 15 item 4).
    let stored = l.info(&a).await;
    for name in ["nul\u{0}inside", "two\nlines\r\n", "esc\u{1b}", "c1\u{9b}"] {
        for e in [Enc::Form, Enc::Json, Enc::Query] {
            let r = l
                .call_as(e, "rename", &[("volume_id", &a), ("name", name)])
                .await;
            assert_eq!(r.status, 400, "{name:?} {e:?}: {}", r.body);
            assert_eq!(r.body["success"], "no", "{}", r.body);
        }
    }
    assert_eq!(l.info(&a).await, stored);

    // Names the domain allows are stored verbatim and read back so.
    for name in [
        "100% sure",
        "{{ template }}",
        "'; DROP TABLE volumes; --",
        "\u{202E}gnp.exe",
        "ünïcødé 名前",
        "",
    ] {
        for e in [Enc::Form, Enc::Json, Enc::Query] {
            let r = l
                .call_as(e, "rename", &[("volume_id", &a), ("name", name)])
                .await;
            assert_eq!(r.status, 200, "{name:?} {e:?}: {}", r.body);
            assert_eq!(l.info(&a).await["name"], name, "{name:?} {e:?}");
        }
        let uuid = l.info(&a).await["identification"]
            .as_str()
            .unwrap()
            .to_string();
        let cv = c.get(&format!("/v3/p1/volumes/{uuid}")).await;
        assert_eq!(cv.body["volume"]["name"], name, "{name:?} through Cinder");
    }
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}
