//! Nova's os-volumes / os-snapshots proxy (issue 10, rows NOVA-* of
//! ../shared/API.md §2.5) end to end against the real binary: a volume's
//! and a snapshot's life through the proxy read back through `/v3`, the
//! compute microversions (≤ 2.35 served, ≥ 2.36 gone), bad input, and the
//! fence between projects.
//!
//! Seed 004 includes no example bodies (every example is a `literalinclude`
//! of a file outside the seed, API.md §4.5; MANIFEST.md: "no bodies"), so
//! there is nothing under ../shared/examples to hold. Each answer is
//! snapshotted with insta and held, with `assert_same_shape`, against the
//! field list the seed documents for it (NovaVolume, NovaSnapshot), typed
//! as Nova's own api samples type them.

mod support;

use serde_json::{json, Value};
use support::*;

/// A NovaVolume as the seed lists its fields (004, NOVA-os-volumes-*):
/// an attached volume names its attachments; an unattached one lists one
/// empty attachment, as Nova answers.
fn nova_volume(attached: bool) -> Value {
    let attachment = if attached {
        json!({"device": "/dev/vdb", "id": "s", "serverId": "s", "volumeId": "s"})
    } else {
        json!({})
    };
    json!({
        "attachments": [attachment],
        "availabilityZone": "s",
        "createdAt": "s",
        "displayDescription": "s",
        "displayName": "s",
        "id": "s",
        "metadata": {},
        "size": 100,
        "snapshotId": null,
        "status": "s",
        "volumeType": "s",
    })
}

/// A NovaSnapshot (004, NOVA-os-snapshots-*).
fn nova_snapshot() -> Value {
    json!({
        "createdAt": "s",
        "displayDescription": "s",
        "displayName": "s",
        "id": "s",
        "size": 100,
        "status": "s",
        "volumeId": "s",
    })
}

fn nova_settings() -> insta::Settings {
    let mut s = insta_settings();
    for key in ["volumeId", "serverId"] {
        s.add_redaction(&format!(".**.{key}"), "[id]");
    }
    s.add_dynamic_redaction(".**.snapshotId", |v, _| match v.as_str() {
        Some(_) => insta::internals::Content::from("[id]"),
        None => v,
    });
    s.add_redaction(".**.createdAt", "[time]");
    s
}

fn snap(name: &str, v: &Value) {
    nova_settings().bind(|| insta::assert_json_snapshot!(name, v));
}

/// A request with compute microversion headers.
async fn versioned(srv: &Server, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new()
        .get(srv.url(path))
        .header("X-Auth-Token", "alice:p1");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn wait_nova(c: &Client, path: &str, key: &str, status: &str) -> Value {
    c.wait_until(path, &format!("{path} -> {status}"), |r| {
        r.body[key]["status"] == status
    })
    .await
    .body[key]
        .clone()
}

/// Every NOVA-* row: create → available → attach (through /v3) → show →
/// detach → snapshot → lists → deletes, each read back through `/v3`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_and_snapshot_through_the_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");

    // NOVA-os-volumes-create: 200, `creating`.
    let r = c
        .post(
            "/v2.1/p1/os-volumes",
            &json!({"volume": {
                "availability_zone": "az-dc-1",
                "display_name": "vol-001",
                "display_description": "Volume Description",
                "size": 1,
                "metadata": {"purpose": "test"},
                "volume_type": "SSD",
            }}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume"]["status"], "creating");
    assert_eq!(r.body["volume"]["displayName"], "vol-001");
    assert_eq!(
        r.headers.get("x-openstack-nova-api-version").unwrap(),
        "2.1"
    );
    assert_eq!(
        r.headers.get("openstack-api-version").unwrap(),
        "compute 2.1"
    );
    assert_same_shape(
        &json!({"volume": nova_volume(false)}),
        &r.body,
        "NOVA-os-volumes-create",
    );
    snap("NOVA-os-volumes-create", &r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();

    // Read back through the proxy (with and without the project) and /v3.
    let v = wait_nova(
        &c,
        &format!("/v2.1/p1/os-volumes/{id}"),
        "volume",
        "available",
    )
    .await;
    assert_eq!(v["size"], 1);
    assert_eq!(v["availabilityZone"], "az-dc-1");
    assert_eq!(v["volumeType"], "SSD");
    assert_eq!(v["metadata"], json!({"purpose": "test"}));
    assert_eq!(v["attachments"], json!([{}]));
    let r = c.get(&format!("/v2.1/os-volumes/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["volume"], v);
    let r = c.get(&format!("/v3/p1/volumes/{id}")).await;
    assert_eq!(r.body["volume"]["name"], "vol-001");
    assert_eq!(r.body["volume"]["description"], "Volume Description");
    assert_eq!(r.body["volume"]["size"], 1);
    assert_eq!(r.body["volume"]["availability_zone"], "az-dc-1");

    // NOVA-os-volumes-show of an attached volume names the attachment.
    let r = c
        .post(
            &format!("/v3/p1/volumes/{id}/action"),
            &json!({"os-attach": {"instance_uuid": "0b8e2f4a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "mountpoint": "/dev/vdb"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c.get(&format!("/v2.1/p1/os-volumes/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume"]["status"], "in-use");
    let att = &r.body["volume"]["attachments"][0];
    assert_eq!(att["volumeId"], id.as_str());
    assert_eq!(att["id"], id.as_str());
    assert_eq!(att["serverId"], "0b8e2f4a-1c3d-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!(att["device"], "/dev/vdb");
    assert_same_shape(
        &json!({"volume": nova_volume(true)}),
        &r.body,
        "NOVA-os-volumes-show",
    );
    snap("NOVA-os-volumes-show", &r.body);
    let r = c
        .post(
            &format!("/v3/p1/volumes/{id}/action"),
            &json!({"os-detach": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);

    // NOVA-os-volumes-list and -detail.
    for (row, path) in [
        ("NOVA-os-volumes-list", "/v2.1/p1/os-volumes"),
        ("NOVA-os-volumes-detail", "/v2.1/p1/os-volumes/detail"),
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(r.body["volumes"][0]["id"], id.as_str());
        assert_same_shape(&json!({"volumes": [nova_volume(false)]}), &r.body, row);
        snap(row, &r.body);
    }

    // NOVA-os-snapshots-create, without the project in the URL.
    let r = c
        .post(
            "/v2.1/os-snapshots",
            &json!({"snapshot": {
                "display_name": "snap-001",
                "display_description": "Daily backup",
                "volume_id": id,
                "force": false,
            }}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["snapshot"]["status"], "creating");
    assert_eq!(r.body["snapshot"]["volumeId"], id.as_str());
    assert_same_shape(
        &json!({"snapshot": nova_snapshot()}),
        &r.body,
        "NOVA-os-snapshots-create",
    );
    snap("NOVA-os-snapshots-create", &r.body);
    let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    let s = wait_nova(
        &c,
        &format!("/v2.1/p1/os-snapshots/{sid}"),
        "snapshot",
        "available",
    )
    .await;
    assert_eq!(s["size"], 1);
    assert_eq!(s["displayName"], "snap-001");
    let r = c.get(&format!("/v3/p1/snapshots/{sid}")).await;
    assert_eq!(r.body["snapshot"]["name"], "snap-001");
    assert_eq!(r.body["snapshot"]["description"], "Daily backup");
    assert_eq!(r.body["snapshot"]["volume_id"], id.as_str());

    // NOVA-os-snapshots-show, -list, -detail.
    let r = c.get(&format!("/v2.1/p1/os-snapshots/{sid}")).await;
    assert_same_shape(
        &json!({"snapshot": nova_snapshot()}),
        &r.body,
        "NOVA-os-snapshots-show",
    );
    snap("NOVA-os-snapshots-show", &r.body);
    for (row, path) in [
        ("NOVA-os-snapshots-list", "/v2.1/p1/os-snapshots"),
        ("NOVA-os-snapshots-detail", "/v2.1/os-snapshots/detail"),
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["snapshots"][0]["id"], sid.as_str());
        assert_same_shape(&json!({"snapshots": [nova_snapshot()]}), &r.body, row);
        snap(row, &r.body);
    }

    // A volume from the snapshot names it.
    let r = c
        .post(
            "/v2.1/p1/os-volumes",
            &json!({"volume": {"size": 2, "snapshot_id": sid}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume"]["snapshotId"], sid.as_str());
    let clone = r.body["volume"]["id"].as_str().unwrap().to_string();
    wait_nova(
        &c,
        &format!("/v2.1/p1/os-volumes/{clone}"),
        "volume",
        "available",
    )
    .await;

    // A volume with a snapshot is not deleted through the proxy (no cascade).
    let r = c.delete(&format!("/v2.1/p1/os-volumes/{id}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["badRequest"]["message"].is_string(), "{}", r.body);

    // NOVA-os-snapshots-delete and NOVA-os-volumes-delete: 202, no body.
    let r = c.delete(&format!("/v2.1/p1/os-snapshots/{sid}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    c.wait_until(
        &format!("/v2.1/p1/os-snapshots/{sid}"),
        "snapshot gone",
        |r| r.status == 404,
    )
    .await;
    let r = c.get(&format!("/v3/p1/snapshots/{sid}")).await;
    assert_eq!(r.status, 404);
    for v in [&id, &clone] {
        let r = c.delete(&format!("/v2.1/os-volumes/{v}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body, Value::Null);
        c.wait_until(&format!("/v3/p1/volumes/{v}"), "volume gone", |r| {
            r.status == 404
        })
        .await;
    }
    let r = c.get("/v2.1/p1/os-volumes").await;
    assert_eq!(r.body, json!({"volumes": []}));

    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// The proxy behaves as compute 2.35 and is gone from 2.36 on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_microversions() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let path = "/v2.1/p1/os-volumes";
    for (h, v, served) in [
        ("X-OpenStack-Nova-API-Version", "2.35", "2.35"),
        ("OpenStack-API-Version", "compute 2.35", "2.35"),
        ("OpenStack-API-Version", "compute 2.1", "2.1"),
        ("OpenStack-API-Version", "volume 3.0, compute 2.20", "2.20"),
        ("X-OpenStack-Nova-API-Version", "2.2", "2.2"),
    ] {
        let r = versioned(&srv, path, &[(h, v)]).await;
        assert_eq!(r.status, 200, "{h}: {v}: {}", r.body);
        assert_eq!(
            r.headers.get("openstack-api-version").unwrap(),
            &format!("compute {served}")
        );
        assert_eq!(
            r.headers.get("x-openstack-nova-api-version").unwrap(),
            served
        );
        assert!(r.headers.get("vary").is_some());
    }
    for (h, v) in [
        ("X-OpenStack-Nova-API-Version", "2.36"),
        ("OpenStack-API-Version", "compute 2.36"),
        ("OpenStack-API-Version", "compute 2.96"),
        ("OpenStack-API-Version", "compute latest"),
        ("X-OpenStack-Nova-API-Version", "latest"),
    ] {
        for p in [path, "/v2.1/os-snapshots", "/v2.1/p1/os-volumes/detail"] {
            let r = versioned(&srv, p, &[(h, v)]).await;
            assert_eq!(r.status, 404, "{h}: {v}: {}", r.body);
            assert_eq!(r.body["itemNotFound"]["code"], 404, "{}", r.body);
            assert!(r.body["itemNotFound"]["message"].is_string());
        }
    }
    let r = versioned(&srv, path, &[("OpenStack-API-Version", "compute 3.0")]).await;
    assert_eq!(r.status, 406, "{}", r.body);
    let r = versioned(&srv, path, &[("OpenStack-API-Version", "compute 1.5")]).await;
    assert_eq!(r.status, 406, "{}", r.body);
    let r = versioned(&srv, path, &[("X-OpenStack-Nova-API-Version", "two")]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["badRequest"]["message"].is_string());
    // Cinder's volume microversions are not the proxy's.
    let r = versioned(
        &srv,
        "/v3/p1/volumes",
        &[("OpenStack-API-Version", "compute 2.36")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Bad input: Nova's fault bodies and a 4xx, never a 500, nothing created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_nova_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v2.1/p1/os-volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    wait_nova(
        &c,
        &format!("/v2.1/p1/os-volumes/{vol}"),
        "volume",
        "available",
    )
    .await;
    let before = c.get("/v3/p1/volumes/detail").await.body;
    let unknown = uuid::Uuid::new_v4();
    let vols = "/v2.1/p1/os-volumes";
    let snaps = "/v2.1/p1/os-snapshots";
    let snap_of = |v: &str| format!("{{\"snapshot\": {{\"volume_id\": \"{v}\"}}}}");
    let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1}".to_vec(),
            400,
            "badRequest",
        ),
        ("POST", vols.into(), b"garbage".to_vec(), 400, "badRequest"),
        ("POST", vols.into(), b"".to_vec(), 400, "badRequest"),
        ("POST", vols.into(), b"[1]".to_vec(), 400, "badRequest"),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1},}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1,}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1, \"display_name\": \"\xff\"}}".to_vec(),
            400,
            "badRequest",
        ),
        ("POST", vols.into(), b"{}".to_vec(), 400, "badRequest"),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 0}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": -1}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1.5}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": \"1.5\"}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 99999}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1, \"name\": \"cinder spelling\"}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1}, \"extra\": 1}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1, \"display_name\": 5}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1, \"availability_zone\": \"nowhere\"}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            vols.into(),
            format!("{{\"volume\": {{\"size\": 1, \"snapshot_id\": \"{unknown}\"}}}}").into_bytes(),
            404,
            "itemNotFound",
        ),
        (
            "POST",
            vols.into(),
            b"{\"volume\": {\"size\": 1, \"snapshot_id\": \"../../etc\"}}".to_vec(),
            404,
            "itemNotFound",
        ),
        (
            "POST",
            snaps.into(),
            b"{\"snapshot\": {}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            snaps.into(),
            b"{\"snapshot\": {\"volume_id\": 5}}".to_vec(),
            400,
            "badRequest",
        ),
        (
            "POST",
            snaps.into(),
            format!("{{\"snapshot\": {{\"volume_id\": \"{vol}\", \"force\": \"maybe\"}}}}")
                .into_bytes(),
            400,
            "badRequest",
        ),
        (
            "POST",
            snaps.into(),
            snap_of(&unknown.to_string()).into_bytes(),
            404,
            "itemNotFound",
        ),
        (
            "POST",
            snaps.into(),
            snap_of("../../etc/passwd").into_bytes(),
            404,
            "itemNotFound",
        ),
        (
            "GET",
            format!("{vols}/{unknown}"),
            vec![],
            404,
            "itemNotFound",
        ),
        (
            "GET",
            format!("{vols}/..%2F..%2Fetc"),
            vec![],
            404,
            "itemNotFound",
        ),
        ("GET", format!("{vols}/1"), vec![], 404, "itemNotFound"),
        (
            "DELETE",
            format!("{vols}/{unknown}"),
            vec![],
            404,
            "itemNotFound",
        ),
        (
            "DELETE",
            format!("{vols}/..%2F..%2Fetc"),
            vec![],
            404,
            "itemNotFound",
        ),
        (
            "GET",
            format!("{snaps}/{unknown}"),
            vec![],
            404,
            "itemNotFound",
        ),
        (
            "DELETE",
            format!("{snaps}/{unknown}"),
            vec![],
            404,
            "itemNotFound",
        ),
        (
            "DELETE",
            format!("{snaps}/not-an-id"),
            vec![],
            404,
            "itemNotFound",
        ),
        // Another project in the URL than the token's.
        (
            "GET",
            "/v2.1/p2/os-volumes".into(),
            vec![],
            400,
            "badRequest",
        ),
        (
            "PUT",
            format!("{vols}/{vol}"),
            b"{}".to_vec(),
            405,
            "badMethod",
        ),
    ];
    for (method, path, body, status, fault) in &cases {
        let r = c.send_bytes(method, path, body.clone()).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(r.status, *status, "{method} {path} {shown}: {}", r.body);
        assert_eq!(
            r.body[*fault]["code"], *status,
            "{method} {path} {shown}: {}",
            r.body
        );
        assert!(r.body[*fault]["message"].is_string(), "{}", r.body);
    }
    // Credentials.
    let r = reqwest::Client::new()
        .get(srv.url(vols))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["unauthorized"]["code"], 401);
    // Nothing changed.
    assert_eq!(c.get("/v3/p1/volumes/detail").await.body, before);
    let r = c.get("/v2.1/p1/os-snapshots").await;
    assert_eq!(r.body, json!({"snapshots": []}));
}

/// Another project's volume and snapshot are not found through the proxy,
/// exactly like missing ones; each refused change is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_objects_are_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let mallory = srv.client("mallory", "p2");
    let admin = srv.client("admin", "padmin");
    let r = c
        .post(
            "/v2.1/p1/os-volumes",
            &json!({"volume": {"size": 1, "display_name": "mine"}}),
        )
        .await;
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    wait_nova(
        &c,
        &format!("/v2.1/p1/os-volumes/{vol}"),
        "volume",
        "available",
    )
    .await;
    let r = c
        .post(
            "/v2.1/p1/os-snapshots",
            &json!({"snapshot": {"volume_id": vol, "display_name": "mine"}}),
        )
        .await;
    let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    wait_nova(
        &c,
        &format!("/v2.1/p1/os-snapshots/{sid}"),
        "snapshot",
        "available",
    )
    .await;

    for path in [
        format!("/v2.1/p2/os-volumes/{vol}"),
        format!("/v2.1/os-volumes/{vol}"),
        format!("/v2.1/p2/os-snapshots/{sid}"),
        format!("/v2.1/os-snapshots/{sid}"),
    ] {
        let r = mallory.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.body["itemNotFound"]["code"], 404);
    }
    for path in ["/v2.1/p2/os-volumes", "/v2.1/os-volumes/detail"] {
        assert_eq!(mallory.get(path).await.body, json!({"volumes": []}));
    }
    assert_eq!(
        mallory.get("/v2.1/os-snapshots").await.body,
        json!({"snapshots": []})
    );
    let before = refusals(&admin).await;
    let changes = [
        ("DELETE", format!("/v2.1/p2/os-volumes/{vol}"), None),
        ("DELETE", format!("/v2.1/os-snapshots/{sid}"), None),
        (
            "POST",
            "/v2.1/p2/os-snapshots".to_string(),
            Some(json!({"snapshot": {"volume_id": vol, "force": true}})),
        ),
        (
            "POST",
            "/v2.1/p2/os-volumes".to_string(),
            Some(json!({"volume": {"size": 1, "snapshot_id": sid}})),
        ),
    ];
    for (method, path, body) in &changes {
        let text = body.as_ref().map(|b| b.to_string());
        let r = mallory.send(method, path, text.as_deref()).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["itemNotFound"]["code"], 404, "{}", r.body);
    }
    let after = refusals(&admin).await;
    assert!(
        after >= before + changes.len(),
        "each refusal is recorded: {before} → {after}"
    );
    // Nothing changed for alice.
    let r = c.get(&format!("/v3/p1/volumes/{vol}")).await;
    assert_eq!(r.body["volume"]["name"], "mine");
    assert_eq!(r.body["volume"]["status"], "available");
    let r = c.get(&format!("/v2.1/os-snapshots/{sid}")).await;
    assert_eq!(r.body["snapshot"]["status"], "available");
    assert_eq!(
        c.get("/v2.1/p1/os-volumes").await.body["volumes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
