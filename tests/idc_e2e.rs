//! The Chinese cloud's dialect end to end (issue 9): rows IDC-* of
//! ../shared/API.md, rulings in ../shared/DECISIONS.md ("The Chinese
//! cloud"). A volume's whole life in this dialect alone, read back through
//! the Cinder routes; projects kept apart; bad input refused; every
//! endpoint's real answer held in an insta snapshot.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::*;

const Z: &str = "/v2/zone/az-dc-1";

/// Polls the job until it ends; it must end `successful`.
async fn job_done(c: &Client, job: &Value) -> Value {
    assert!(job["job_id"].is_string(), "not a Job Response: {job}");
    let id = job["job_id"].as_str().unwrap();
    let r = c
        .wait_until(&format!("{Z}/jobs/{id}"), "job ended", |r| {
            r.status == 200 && matches!(r.body["status"].as_str(), Some("successful" | "failed"))
        })
        .await;
    assert_eq!(r.body["status"], "successful", "{}", r.body);
    r.body
}

/// The ids a job worked on (its `extra`), by key.
fn job_ids(job: &Value, key: &str) -> Vec<String> {
    let extra: Value = serde_json::from_str(job["extra"].as_str().unwrap()).unwrap();
    extra
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e[key].as_str().map(str::to_string))
        .collect()
}

async fn post_ok(c: &Client, path: &str, body: Value) -> Value {
    let r = c.post(&format!("{Z}{path}"), &body).await;
    assert_eq!(r.status, 200, "POST {path} {body}: {}", r.body);
    job_done(c, &r.body).await
}

fn idc_settings() -> insta::Settings {
    let mut s = insta_settings();
    for key in [
        "job_id",
        "id_prefix",
        "request_id",
        "extra",
        "snapshot_id",
        "root_id",
        "instance_id",
    ] {
        s.add_redaction(&format!(".**.{key}"), "[id]");
    }
    s.add_dynamic_redaction(".**.parent_id", |v, _| match v.as_str() {
        Some(t) if !t.is_empty() => insta::internals::Content::from("[id]"),
        _ => v,
    });
    for key in [
        "create_time",
        "begin_time",
        "finished_time",
        "status_time",
        "snapshot_time",
        "lastest_snapshot_time",
    ] {
        s.add_dynamic_redaction(&format!(".**.{key}"), |v, _| match v.as_str() {
            Some(t) if !t.is_empty() => insta::internals::Content::from("[time]"),
            _ => v,
        });
    }
    s
}

fn snap(name: &str, v: &Value) {
    idc_settings().bind(|| insta::assert_json_snapshot!(name, v));
}

/// A job answered while the executor may already be at work: its status is
/// one of the unfinished or finished ones, the rest exact.
fn snap_job_in_flight(name: &str, v: &Value) {
    let status = v["status"].as_str().unwrap_or_default();
    assert!(
        matches!(status, "pending" | "working" | "successful"),
        "{v}"
    );
    let mut s = idc_settings();
    s.add_redaction(".status", "[pending|working|successful]");
    s.add_redaction(".finished_time", "[time or empty]");
    s.bind(|| insta::assert_json_snapshot!(name, v));
}

/// IDC-* rows: create (extension), list with filters and paging, modify,
/// resize, attach, detach, snapshot, apply with the bytes checked on disk,
/// snapshot → volume, snapshot → image (downloaded, `qemu-img compare`),
/// delete; every result read back through `/v3`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_lives_its_whole_life_in_this_dialect() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");

    // The create extension [5.2 #5]: one volume, then a batch of two.
    let r = c
        .post(
            &format!("{Z}/volumes"),
            &json!({"volume_name": "idc-one", "size": 1, "volume_type": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    snap_job_in_flight("IDC-volumes-create.job", &r.body);
    let job = job_done(&c, &r.body).await;
    snap("IDC-jobs-get", &job);
    let v1 = job_ids(&job, "volume_id").remove(0);
    let cinder = c.get(&format!("/v3/p1/volumes/{v1}")).await;
    assert_eq!(cinder.body["volume"]["name"], "idc-one");
    assert_eq!(cinder.body["volume"]["volume_type"], "SSD");
    assert_eq!(cinder.body["volume"]["availability_zone"], "az-dc-1");
    let job = post_ok(
        &c,
        "/volumes",
        json!({"volume_name": "pair", "size": 1, "count": 2}),
    )
    .await;
    assert_eq!(job_ids(&job, "volume_id").len(), 2, "{job}");

    // IDC-volumes-list: paging with total_count, filters.
    let r = c.get(&format!("{Z}/volumes?limit=2&offset=0")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total_count"], 3);
    assert_eq!(r.body["volumes"].as_array().unwrap().len(), 2);
    let r = c.get(&format!("{Z}/volumes?offset=2")).await;
    assert_eq!(r.body["volumes"].as_array().unwrap().len(), 1);
    let r = c.get(&format!("{Z}/volumes?search_word=idc")).await;
    assert_eq!(r.body["total_count"], 1, "{}", r.body);
    let r = c.get(&format!("{Z}/volumes?volumes.1={v1}")).await;
    assert_eq!(r.body["volumes"][0]["volume_id"], v1.as_str());
    snap("IDC-volumes-list", &r.body);
    // The seed's field template (000:L36), exactly.
    let keys: Vec<&str> = r.body["volumes"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "volume_id",
        "volume_name",
        "description",
        "size",
        "status",
        "transition_status",
        "create_time",
        "status_time",
        "instance",
    ];
    want.sort();
    assert_eq!(keys, want);
    let r = c
        .get(&format!("{Z}/volumes?status[]=available&volume_type=2"))
        .await;
    assert_eq!(r.body["total_count"], 2, "the pair is SATA: {}", r.body);
    // A volume is listed only in its own zone.
    let r = c.get("/v2/zone/ac1/volumes").await;
    assert_eq!(r.body["total_count"], 0, "{}", r.body);

    // IDC-volumes-modify.
    let r = c
        .put(
            &format!("{Z}/volumes"),
            &json!({"volume": v1, "volume_name": "renamed", "description": "d"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    snap("IDC-volumes-modify", &r.body);
    let cinder = c.get(&format!("/v3/p1/volumes/{v1}")).await;
    assert_eq!(cinder.body["volume"]["name"], "renamed");
    assert_eq!(cinder.body["volume"]["description"], "d");

    // IDC-volumes-resize.
    let job = post_ok(&c, "/volumes/resize", json!({"volumes": [v1], "size": 2})).await;
    assert_eq!(job["action"], "ResizeVolumes");
    snap("IDC-volumes-resize.job", &job);
    c.wait_until(&format!("/v3/p1/volumes/{v1}"), "resized", |r| {
        r.body["volume"]["size"] == 2
    })
    .await;

    // IDC-volumes-attach / detach.
    let job = post_ok(
        &c,
        "/volumes/attach",
        json!({"instance_id": "vm-1", "volumes": [v1]}),
    )
    .await;
    snap("IDC-volumes-attach.job", &job);
    let cinder = c.get(&format!("/v3/p1/volumes/{v1}")).await;
    assert_eq!(cinder.body["volume"]["status"], "in-use");
    assert_eq!(
        cinder.body["volume"]["attachments"][0]["device"],
        "/dev/vdb"
    );
    let r = c.get(&format!("{Z}/volumes?volumes={v1}")).await;
    assert_eq!(r.body["volumes"][0]["instance"][0]["instance_id"], "vm-1");
    let job = post_ok(
        &c,
        "/volumes/detach",
        json!({"instance_id": "vm-1", "volumes": [v1]}),
    )
    .await;
    snap("IDC-volumes-detach.job", &job);
    c.wait_status(&format!("/v3/p1/volumes/{v1}"), "available")
        .await;

    // IDC-snapshots-create, then apply (rollback) with the bytes checked.
    let (format, path) = device_path(&c, "p1", &v1).await;
    write_pattern(&format, &path, 0xaa);
    let job = post_ok(
        &c,
        "/volume_snapshots",
        json!({"resources": [v1], "snapshot_name": "s1", "is_full": 0}),
    )
    .await;
    snap("IDC-snapshots-create.job", &job);
    let s1 = job_ids(&job, "snapshot_id").remove(0);
    let (_, path) = device_path(&c, "p1", &v1).await;
    write_pattern(&format, &path, 0xbb);
    let job = post_ok(
        &c,
        "/volume_snapshots",
        json!({"resources": [v1], "snapshot_name": "s2"}),
    )
    .await;
    let s2 = job_ids(&job, "snapshot_id").remove(0);
    let r = c
        .get(&format!("{Z}/volume_snapshots?resource_id={v1}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total_count"], 2);
    let by_id = |id: &str| -> Value {
        r.body["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["snapshot_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&s1)["root_id"], s1.as_str());
    assert_eq!(by_id(&s1)["parent_id"], "");
    assert_eq!(by_id(&s1)["is_head"], 0);
    assert_eq!(by_id(&s2)["parent_id"], s1.as_str());
    assert_eq!(by_id(&s2)["is_head"], 1);
    assert_eq!(by_id(&s2)["head_chain"], 1);
    assert_eq!(by_id(&s2)["total_count"], 2);
    assert_eq!(by_id(&s2)["total_size"], 4);
    snap("IDC-snapshots-list", &json!({"snapshots": [by_id(&s2)]}));
    // The seed's field template (000:L346), exactly, `lastest` (sic) included.
    let mut keys: Vec<String> = by_id(&s2).as_object().unwrap().keys().cloned().collect();
    keys.sort();
    let mut want = vec![
        "snapshot_id",
        "snapshot_name",
        "description",
        "snapshot_type",
        "status",
        "transition_status",
        "create_time",
        "status_time",
        "snapshot_time",
        "is_taken",
        "is_head",
        "head_chain",
        "root_id",
        "parent_id",
        "size",
        "total_size",
        "total_count",
        "lastest_snapshot_time",
    ];
    want.sort();
    assert_eq!(keys, want);
    // `is_full` 1: a full copy, standing alone on disk [5.2 #8].
    let job = post_ok(
        &c,
        "/volume_snapshots",
        json!({"resources": [v1], "snapshot_name": "full", "is_full": 1}),
    )
    .await;
    let s3 = job_ids(&job, "snapshot_id").remove(0);
    let r = c
        .get(&format!("{Z}/volume_snapshots?snapshot_type=1"))
        .await;
    assert_eq!(r.body["total_count"], 1, "{}", r.body);
    assert_eq!(r.body["snapshots"][0]["snapshot_id"], s3.as_str());
    assert_eq!(r.body["snapshots"][0]["snapshot_type"], 1);
    let inv: Value = reqwest::Client::new()
        .get(srv.url(&format!("/zstack/v1/volume-snapshots/{s3}")))
        .header("Authorization", "OAuth alice:p1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = inv["inventories"][0]["primaryStorageInstallPath"]
        .as_str()
        .unwrap()
        .to_string();
    if format == "qcow2" {
        let out = Command::new("qemu-img")
            .args(["info", "-U", "--output=json", &file])
            .output()
            .unwrap();
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            info["backing-filename"].is_null(),
            "a full snapshot has no backing: {info}"
        );
    }
    assert!(holds_pattern(&format, std::path::Path::new(&file), 0xbb));
    let r = c
        .send("DELETE", &format!("{Z}/volume_snapshots/{s3}"), None)
        .await;
    job_done(&c, &r.body).await;

    let job = post_ok(&c, "/volume_snapshots/apply", json!({"snapshots": [s1]})).await;
    assert_eq!(job["action"], "ApplySnapshots");
    snap("IDC-snapshots-apply.job", &job);
    c.wait_status(&format!("/v3/p1/volumes/{v1}"), "available")
        .await;
    let (_, path) = device_path(&c, "p1", &v1).await;
    assert!(
        holds_pattern(&format, &path, 0xaa),
        "rollback lost the data"
    );
    let r = c.get(&format!("{Z}/volume_snapshots?snapshots={s1}")).await;
    assert_eq!(r.body["snapshots"][0]["is_head"], 1, "{}", r.body);

    // IDC-snapshots-create-volume: the snapshot's bytes in a new volume.
    let job = post_ok(
        &c,
        "/volume_snapshots/create_volume",
        json!({"snapshot": s1, "volume_name": "from-s1"}),
    )
    .await;
    snap("IDC-snapshots-create-volume.job", &job);
    let v2 = job_ids(&job, "volume_id").remove(0);
    let cinder = c.get(&format!("/v3/p1/volumes/{v2}")).await;
    assert_eq!(cinder.body["volume"]["name"], "from-s1");
    assert_eq!(cinder.body["volume"]["snapshot_id"], s1.as_str());
    let (f2, p2) = device_path(&c, "p1", &v2).await;
    assert!(holds_pattern(&f2, &p2, 0xaa));

    // IDC-snapshots-capture-instance: an image of the catalog.
    let job = post_ok(
        &c,
        "/volume_snapshots/capture_instance",
        json!({"snapshot": s1, "image_name": "golden"}),
    )
    .await;
    snap("IDC-snapshots-capture-instance.job", &job);
    let image = job_ids(&job, "image_id").remove(0);
    let r = c.get(&format!("/image/v2/images/{image}")).await;
    assert_eq!(r.body["status"], "active", "{}", r.body);
    assert_eq!(r.body["source_snapshot_id"], s1.as_str());
    let bytes = reqwest::Client::new()
        .get(srv.url(&format!("/image/v2/images/{image}/file")))
        .header("X-Auth-Token", "alice:p1")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = tmp.path().join("golden.vhd");
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new("qemu-img")
        .args(["compare", "-U", "-f", "vpc", "-F", &f2])
        .arg(&file)
        .arg(&p2)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "image differs from the snapshot's bytes: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // IDC-snapshots-delete, IDC-volumes-delete.
    let r = c
        .send("DELETE", &format!("{Z}/volume_snapshots/{s2}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let job = job_done(&c, &r.body).await;
    snap("IDC-snapshots-delete.job", &job);
    assert_eq!(c.get(&format!("/v3/p1/snapshots/{s2}")).await.status, 404);
    let r = c
        .send("DELETE", &format!("{Z}/volumes/{v2}?volumes={v2}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    snap_job_in_flight("IDC-volumes-delete.job", &r.body);
    job_done(&c, &r.body).await;
    assert_eq!(c.get(&format!("/v3/p1/volumes/{v2}")).await.status, 404);

    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// One project never sees or changes another's volumes or snapshots here,
/// and every refused change is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_are_kept_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let alice = srv.client("alice", "p1");
    let mallory = srv.client("mallory", "p2");
    let admin = srv.client("admin", "padmin");
    let job = post_ok(
        &alice,
        "/volumes",
        json!({"volume_name": "mine", "size": 1}),
    )
    .await;
    let v = job_ids(&job, "volume_id").remove(0);
    let job = post_ok(&alice, "/volume_snapshots", json!({"resources": [v]})).await;
    let s = job_ids(&job, "snapshot_id").remove(0);

    let r = mallory.get(&format!("{Z}/volumes?volumes={v}")).await;
    assert_eq!(r.body["total_count"], 0, "{}", r.body);
    let r = mallory.get(&format!("{Z}/volume_snapshots")).await;
    assert_eq!(r.body["total_count"], 0, "{}", r.body);
    let r = mallory
        .get(&format!("{Z}/jobs/{}", job["job_id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    let before = refusals(&admin).await;
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("DELETE", format!("{Z}/volumes/{v}"), None),
        (
            "PUT",
            format!("{Z}/volumes"),
            Some(json!({"volume": v, "volume_name": "x"})),
        ),
        (
            "POST",
            format!("{Z}/volumes/resize"),
            Some(json!({"volumes": [v], "size": 5})),
        ),
        (
            "POST",
            format!("{Z}/volumes/attach"),
            Some(json!({"volumes": [v], "instance_id": "vm"})),
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots"),
            Some(json!({"resources": [v]})),
        ),
        ("DELETE", format!("{Z}/volume_snapshots/{s}"), None),
        (
            "POST",
            format!("{Z}/volume_snapshots/apply"),
            Some(json!({"snapshots": [s]})),
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots/create_volume"),
            Some(json!({"snapshot": s})),
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots/capture_instance"),
            Some(json!({"snapshot": s, "image_name": "steal"})),
        ),
    ];
    for (method, path, body) in &attempts {
        let text = body.as_ref().map(|b| b.to_string());
        let r = mallory.send(method, path, text.as_deref()).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["ret_code"], 2100, "{method} {path}: {}", r.body);
        assert!(r.body["message"].is_string());
    }
    let after = refusals(&admin).await;
    assert!(
        after >= before + attempts.len(),
        "each refusal is recorded: {before} → {after}"
    );
    // Nothing changed for alice.
    let r = alice.get(&format!("/v3/p1/volumes/{v}")).await;
    assert_eq!(r.body["volume"]["name"], "mine");
    assert_eq!(r.body["volume"]["size"], 1);
    assert_eq!(r.body["volume"]["status"], "available");
}

/// Bad input: each gets `{"ret_code", "message"}` and a 4xx, never a 500,
/// and changes nothing a client sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_in_this_dialect() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let job = post_ok(&c, "/volumes", json!({"volume_name": "v", "size": 2})).await;
    let v = job_ids(&job, "volume_id").remove(0);
    let job = post_ok(&c, "/volumes", json!({"volume_name": "w", "size": 1})).await;
    let w = job_ids(&job, "volume_id").remove(0);
    post_ok(
        &c,
        "/volumes/attach",
        json!({"instance_id": "vm-1", "volumes": [w]}),
    )
    .await;
    let before = c.get("/v3/p1/volumes/detail").await.body;
    let unknown = uuid::Uuid::new_v4();
    let cases: Vec<(&str, String, &[u8], u16)> = vec![
        ("POST", format!("{Z}/volumes"), b"{\"size\": 1", 400),
        ("POST", format!("{Z}/volumes"), b"garbage", 400),
        ("POST", format!("{Z}/volumes"), b"", 400),
        ("POST", format!("{Z}/volumes"), b"[1, 2]", 400),
        ("POST", format!("{Z}/volumes"), b"{\"size\": 1,}", 400),
        (
            "POST",
            format!("{Z}/volumes"),
            b"{\"size\": \"\xff\xfe\"}",
            400,
        ),
        ("POST", format!("{Z}/volumes"), br#"{"size": "ten"}"#, 400),
        ("POST", format!("{Z}/volumes"), br#"{"size": 0}"#, 400),
        ("POST", format!("{Z}/volumes"), br#"{"size": 32769}"#, 400),
        ("POST", format!("{Z}/volumes"), br#"{"size": [1]}"#, 400),
        (
            "POST",
            format!("{Z}/volumes"),
            br#"{"size": 1, "volume_type": 9}"#,
            400,
        ),
        (
            "POST",
            format!("{Z}/volumes"),
            br#"{"size": 1, "volume_name": 5}"#,
            400,
        ),
        (
            "POST",
            "/v2/zone/mars/volumes".into(),
            br#"{"size": 1}"#,
            400,
        ),
        ("GET", "/v2/zone/mars/volumes".into(), b"", 400),
        ("GET", format!("{Z}/volumes?limit=0"), b"", 400),
        ("GET", format!("{Z}/volumes?limit=x"), b"", 400),
        ("GET", format!("{Z}/volumes?offset=-1"), b"", 400),
        ("GET", format!("{Z}/volumes?status=melting"), b"", 400),
        ("DELETE", format!("{Z}/volumes/{unknown}"), b"", 404),
        ("DELETE", format!("{Z}/volumes/..%2F..%2Fetc"), b"", 404),
        ("DELETE", format!("{Z}/volumes/{v}?volumes={w}"), b"", 400),
        (
            "POST",
            format!("{Z}/volumes/resize"),
            format!(r#"{{"volumes": ["{v}"], "size": 1}}"#)
                .leak()
                .as_bytes(),
            400,
        ),
        (
            "POST",
            format!("{Z}/volumes/resize"),
            format!(r#"{{"volumes": ["{v}", "{unknown}"], "size": 3}}"#)
                .leak()
                .as_bytes(),
            404,
        ),
        (
            "POST",
            format!("{Z}/volumes/resize"),
            format!(r#"{{"volumes": "{v}", "size": 2.5}}"#)
                .leak()
                .as_bytes(),
            400,
        ),
        (
            "POST",
            format!("{Z}/volumes/attach"),
            format!(r#"{{"volumes": ["{w}"], "instance_id": "vm-1"}}"#)
                .leak()
                .as_bytes(),
            400,
        ),
        (
            "POST",
            format!("{Z}/volumes/attach"),
            format!(r#"{{"volumes": ["{v}"]}}"#).leak().as_bytes(),
            400,
        ),
        (
            "POST",
            format!("{Z}/volumes/detach"),
            format!(r#"{{"volumes": ["{v}"], "instance_id": "vm-1"}}"#)
                .leak()
                .as_bytes(),
            404,
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots/apply"),
            format!(r#"{{"snapshots": ["{unknown}"]}}"#)
                .leak()
                .as_bytes(),
            404,
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots"),
            format!(r#"{{"resources": ["{v}"], "is_full": 7}}"#)
                .leak()
                .as_bytes(),
            400,
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots"),
            br#"{"resources": []}"#,
            400,
        ),
        (
            "POST",
            format!("{Z}/volume_snapshots/capture_instance"),
            br#"{"image_name": "x"}"#,
            400,
        ),
        ("GET", format!("{Z}/jobs/{unknown}"), b"", 404),
    ];
    for (method, path, body, status) in &cases {
        let r = c.send_bytes(method, path, body.to_vec()).await;
        assert_eq!(
            r.status,
            *status,
            "{method} {path} {:?}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert!(
            r.body["ret_code"].as_i64().is_some_and(|n| n != 0),
            "{method} {path}: {}",
            r.body
        );
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(c.get("/v3/p1/volumes/detail").await.body, before);

    // Control characters are refused (issue 15 item 4), and nothing changes.
    let stored = c.get(&format!("/v3/p1/volumes/{v}")).await.body;
    for name in [
        "nul\u{0}byte",
        "two\nlines",
        "esc\u{1b}[31m",
        "del\u{7f}",
        "c1\u{85}",
    ] {
        let r = c
            .put(
                &format!("{Z}/volumes"),
                &json!({"volume": v, "volume_name": name}),
            )
            .await;
        assert_eq!(r.status, 400, "{name:?}: {}", r.body);
        assert!(
            r.body["ret_code"].as_i64().is_some_and(|n| n != 0),
            "{}",
            r.body
        );
        assert_eq!(c.get(&format!("/v3/p1/volumes/{v}")).await.body, stored);
    }
    // Other names are stored verbatim, whatever they hold, and never
    // become paths.
    for name in [
        "100%",
        "{{ 7*7 }}",
        "'; DROP TABLE volumes; --",
        "\u{202e}txt.exe",
    ] {
        let r = c
            .put(
                &format!("{Z}/volumes"),
                &json!({"volume": v, "volume_name": name}),
            )
            .await;
        assert_eq!(r.status, 200, "{name:?}: {}", r.body);
        let got = c.get(&format!("/v3/p1/volumes/{v}")).await;
        assert_eq!(got.body["volume"]["name"], name);
    }
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}
