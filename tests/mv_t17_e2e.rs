//! t17's microversions (issue 17): attachments (3.27, 3.44, 3.50, 3.54),
//! revert to the latest snapshot (3.40), extend in-use (3.42), transfers
//! (3.55, 3.57, 3.59), snapshot of an in-use volume (3.66). Each version
//! is asked at the version and one below, against the real binary; every
//! test ends with `verify` (replay equals live).
mod support;

use serde_json::{json, Value};
use support::*;

async fn new_volume(c: &Client, project: &str, extra: Value) -> String {
    let mut v = json!({"size": 1, "name": "t17"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let r = c
        .post(&format!("/v3/{project}/volumes"), &json!({ "volume": v }))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/{project}/volumes/{id}"), "available")
        .await;
    id
}

async fn volume(c: &Client, id: &str) -> Value {
    let r = c.get(&format!("/v3/p1/volumes/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["volume"].clone()
}

fn verified(dir: &std::path::Path) {
    let (ok, out) = verify(dir);
    assert!(ok, "verify: {out}");
}

const I1: &str = "11111111-2222-3333-4444-555555555555";
const I2: &str = "66666666-7777-8888-9999-000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_3_27_reserve_connect_complete_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = new_volume(&c, "p1", json!({})).await;
    let create = json!({"attachment": {"volume_uuid": vol, "instance_uuid": I1}});

    // 3.26: the routes are not there.
    let r = at(
        &c,
        "3.26",
        "POST",
        "/v3/p1/attachments",
        Some(create.clone()),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&c, "3.26", "GET", "/v3/p1/attachments", None).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // 3.27: create without a connector reserves.
    let r = at(
        &c,
        "3.27",
        "POST",
        "/v3/p1/attachments",
        Some(create.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let aid = r.body["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body,
        json!({"attachment": {
            "id": aid, "status": "reserved", "instance": I1, "volume_id": vol,
            "attached_at": "", "detached_at": "", "attach_mode": "null",
            "connection_info": {}
        }})
    );
    assert_eq!(volume(&c, &vol).await["status"], "reserved");
    // Before 3.54 `mode` is not a property of the body.
    let mut with_mode = create.clone();
    with_mode["attachment"]["mode"] = json!("ro");
    let r = at(&c, "3.27", "POST", "/v3/p1/attachments", Some(with_mode)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // 3.50: a second attachment of a non-multiattach volume is refused.
    let other = json!({"attachment": {"volume_uuid": vol, "instance_uuid": I2}});
    let r = at(&c, "3.50", "POST", "/v3/p1/attachments", Some(other)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Invalid volume: Volume {vol} status must be available or downloading to reserve, but the current status is reserved.")
    );

    // Update with a connector: attaching, with the volume's real file.
    let upd = json!({"attachment": {"connector": {"host": "h1", "mountpoint": "/dev/vdb", "initiator": "iqn.x"}}});
    let r = at(
        &c,
        "3.27",
        "PUT",
        &format!("/v3/p1/attachments/{aid}"),
        Some(upd),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a = &r.body["attachment"];
    assert_eq!(a["status"], "attaching");
    assert_eq!(a["attach_mode"], "rw");
    assert_ne!(a["attached_at"], "");
    let info = &a["connection_info"];
    assert_eq!(info["driver_volume_type"], "local");
    assert_eq!(info["attachment_id"], aid.as_str());
    assert_eq!(info["volume_id"], vol.as_str());
    assert_eq!(info["access_mode"], "rw");
    let path = std::path::PathBuf::from(info["device_path"].as_str().unwrap());
    assert!(path.is_file(), "{}", path.display());
    let (_, legacy) = device_path(&c, "p1", &vol).await;
    assert_eq!(path, legacy, "the same file os-initialize_connection names");
    assert_eq!(volume(&c, &vol).await["status"], "attaching");
    assert_eq!(volume(&c, &vol).await["attachments"], json!([]));

    // 3.43: no os-complete; 3.44: 204 and in-use.
    let done = json!({"os-complete": {}});
    let path_c = format!("/v3/p1/attachments/{aid}/action");
    let r = at(&c, "3.43", "POST", &path_c, Some(done.clone())).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(volume(&c, &vol).await["status"], "attaching");
    let r = at(&c, "3.44", "POST", &path_c, Some(done)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let v = volume(&c, &vol).await;
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["attachments"][0]["attachment_id"], aid.as_str());
    assert_eq!(v["attachments"][0]["server_id"], I1);
    assert_eq!(v["attachments"][0]["device"], "/dev/vdb");
    assert_eq!(v["attachments"][0]["host_name"], "h1");

    // Show, list (summary) and detail.
    let r = at(
        &c,
        "3.27",
        "GET",
        &format!("/v3/p1/attachments/{aid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["attachment"]["status"], "attached");
    let r = at(&c, "3.27", "GET", "/v3/p1/attachments", None).await;
    assert_eq!(
        r.body,
        json!({"attachments": [{"id": aid, "status": "attached", "instance": I1, "volume_id": vol}]})
    );
    let r = at(
        &c,
        "3.27",
        "GET",
        "/v3/p1/attachments/detail?volume_id=".to_string().as_str(),
        None,
    )
    .await;
    assert_eq!(
        r.body["attachments"],
        json!([]),
        "no volume has an empty id"
    );
    let r = at(
        &c,
        "3.27",
        "GET",
        &format!("/v3/p1/attachments/detail?volume_id={vol}"),
        None,
    )
    .await;
    assert_eq!(
        r.body["attachments"][0]["connection_info"]["device_path"],
        path.to_str().unwrap()
    );
    // Another project sees none of it.
    let bob = srv.client("bob", "p2");
    let r = at(
        &bob,
        "3.27",
        "GET",
        &format!("/v3/p2/attachments/{aid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&bob, "3.27", "GET", "/v3/p2/attachments", None).await;
    assert_eq!(r.body, json!({"attachments": []}));

    // Delete: the remaining list, and the volume is available again.
    let r = at(
        &c,
        "3.27",
        "DELETE",
        &format!("/v3/p1/attachments/{aid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"attachments": []}));
    let v = volume(&c, &vol).await;
    assert_eq!(v["status"], "available");
    assert_eq!(v["attachments"], json!([]));
    let r = at(
        &c,
        "3.27",
        "DELETE",
        &format!("/v3/p1/attachments/{aid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    verified(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_3_50_multiattach_and_3_54_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = new_volume(&c, "p1", json!({"multiattach": true})).await;
    // 3.54: the mode asked is the attachment's, and wins over the connector's.
    let body = json!({"attachment": {"volume_uuid": vol, "instance_uuid": I1, "mode": "ro",
        "connector": {"host": "h1", "mode": "rw"}}});
    let r = at(&c, "3.54", "POST", "/v3/p1/attachments", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a1 = r.body["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["attachment"]["status"], "attaching");
    assert_eq!(r.body["attachment"]["attach_mode"], "ro");
    assert_eq!(r.body["attachment"]["connection_info"]["access_mode"], "ro");
    let bad = json!({"attachment": {"volume_uuid": vol, "mode": "rx"}});
    let r = at(&c, "3.54", "POST", "/v3/p1/attachments", Some(bad)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.44",
        "POST",
        &format!("/v3/p1/attachments/{a1}/action"),
        Some(json!({"os-complete": {}})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // 3.50: a multiattach volume in-use takes a second attachment.
    let second = json!({"attachment": {"volume_uuid": vol, "instance_uuid": I2}});
    let r = at(&c, "3.50", "POST", "/v3/p1/attachments", Some(second)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let a2 = r.body["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["attachment"]["attach_mode"], "null");
    assert_eq!(volume(&c, &vol).await["status"], "in-use");
    // Deleting the attached one leaves the reserved one: the volume is
    // reserved (Cinder's strongest remaining status), and the answer lists it.
    let r = at(
        &c,
        "3.50",
        "DELETE",
        &format!("/v3/p1/attachments/{a1}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"attachments": [{"id": a2, "status": "reserved", "instance": I2, "volume_id": vol}]})
    );
    assert_eq!(volume(&c, &vol).await["status"], "reserved");
    // A reserved volume cannot be deleted.
    let r = c.delete(&format!("/v3/p1/volumes/{vol}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.50",
        "DELETE",
        &format!("/v3/p1/attachments/{a2}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(volume(&c, &vol).await["status"], "available");
    verified(tmp.path());
}

async fn new_snapshot(c: &Client, vol: &str) -> String {
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": vol, "name": "s"}}),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_3_40_to_the_latest_snapshot_restores_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = new_volume(&c, "p1", json!({})).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    // No snapshot yet.
    let r = at(
        &c,
        "3.40",
        "POST",
        &action,
        Some(json!({"revert": {"snapshot_id": null}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Volume {vol} doesn't have any snapshots.")
    );
    let (format, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0xaa);
    let first = new_snapshot(&c, &vol).await;
    let (_, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0xbb);
    let latest = new_snapshot(&c, &vol).await;
    let (_, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0xcc);

    // 3.39: no such action; nothing changed.
    let r = at(
        &c,
        "3.39",
        "POST",
        &action,
        Some(json!({"revert": {"snapshot_id": latest}})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Only the latest snapshot.
    let r = at(
        &c,
        "3.40",
        "POST",
        &action,
        Some(json!({"revert": {"snapshot_id": first}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Specified snapshot {first} is None or not the latest one of volume {vol}.")
    );
    let (_, path) = device_path(&c, "p1", &vol).await;
    assert!(holds_pattern(&format, &path, 0xcc));

    let r = at(
        &c,
        "3.40",
        "POST",
        &action,
        Some(json!({"revert": {"snapshot_id": latest}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    let s = c.get(&format!("/v3/p1/snapshots/{latest}")).await;
    assert_eq!(s.body["snapshot"]["status"], "available");
    let (_, path) = device_path(&c, "p1", &vol).await;
    assert!(
        holds_pattern(&format, &path, 0xbb),
        "the revert restored the latest snapshot's bytes"
    );

    // A volume grown since its latest snapshot is refused (sizes differ).
    let r = c
        .post(&action, &json!({"os-extend": {"new_size": 2}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/volumes/{vol}"), "extended", |r| {
        r.body["volume"]["status"] == "available" && r.body["volume"]["size"] == 2
    })
    .await;
    let r = at(
        &c,
        "3.40",
        "POST",
        &action,
        Some(json!({"revert": {"snapshot_id": latest}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Can't revert volume {vol} to its latest snapshot {latest}. The volume size must be equal to the snapshot size.")
    );
    verified(tmp.path());
}

async fn attach_legacy(c: &Client, vol: &str) {
    let r = c
        .post(
            &format!("/v3/p1/volumes/{vol}/action"),
            &json!({"os-attach": {"instance_uuid": I1, "mountpoint": "/dev/vdb"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_3_42_of_an_in_use_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = new_volume(&c, "p1", json!({})).await;
    attach_legacy(&c, &vol).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    let grow = json!({"os-extend": {"new_size": 2}});
    // 3.41: only an available volume extends.
    let r = at(&c, "3.41", "POST", &action, Some(grow.clone())).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Invalid volume: Volume {vol} status must be '{{'status': 'available'}}' to extend, currently in-use.")
    );
    assert_eq!(volume(&c, &vol).await["size"], 1);
    // 3.42: it extends, and returns to in-use.
    let r = at(&c, "3.42", "POST", &action, Some(grow)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/volumes/{vol}"), "extended in-use", |r| {
        r.body["volume"]["status"] == "in-use" && r.body["volume"]["size"] == 2
    })
    .await;
    let (format, path) = device_path(&c, "p1", &vol).await;
    assert_eq!(virtual_size(&path), 2 << 30, "{format}");
    verified(tmp.path());
}

/// Creates a transfer of `vol` at version `v` on `path`; returns the reply.
async fn transfer(c: &Client, v: &str, path: &str, body: Value) -> Reply {
    at(
        c,
        v,
        "POST",
        &format!("/v3/p1/{path}"),
        Some(json!({ "transfer": body })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_3_55_snapshots_move_and_3_57_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let bob = srv.client("bob", "p2");
    let vol = new_volume(&c, "p1", json!({})).await;
    let snap = new_snapshot(&c, &vol).await;

    // 3.54: no `no_snapshots`, and a volume with snapshots is refused [5.1 #26].
    let r = transfer(
        &c,
        "3.54",
        "volume-transfers",
        json!({"volume_id": vol, "no_snapshots": false}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = transfer(&c, "3.54", "os-volume-transfer", json!({"volume_id": vol})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(volume(&c, &vol).await["status"], "available");

    // 3.55: the snapshots move with the volume; the body shows no_snapshots.
    let r = transfer(
        &c,
        "3.55",
        "volume-transfers",
        json!({"volume_id": vol, "name": " t1 "}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let t = r.body["transfer"].clone();
    let tid = t["id"].as_str().unwrap().to_string();
    let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "auth_key",
            "created_at",
            "id",
            "links",
            "name",
            "no_snapshots",
            "volume_id"
        ]
    );
    assert_eq!(t["no_snapshots"], false);
    assert_eq!(t["name"], "t1");
    // 3.56 shows no project fields; 3.57 does.
    let r = at(
        &c,
        "3.56",
        "GET",
        &format!("/v3/p1/volume-transfers/{tid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["transfer"].get("accepted").is_none(), "{}", r.body);
    let r = at(
        &c,
        "3.57",
        "GET",
        &format!("/v3/p1/volume-transfers/{tid}"),
        None,
    )
    .await;
    let shown = &r.body["transfer"];
    assert_eq!(shown["source_project_id"], "p1");
    assert_eq!(shown["destination_project_id"], Value::Null);
    assert_eq!(shown["accepted"], false);
    assert_eq!(shown["no_snapshots"], false);
    let r = at(
        &bob,
        "3.57",
        "POST",
        &format!("/v3/p2/volume-transfers/{tid}/accept"),
        Some(json!({"accept": {"auth_key": t["auth_key"]}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // The volume and its snapshot are p2's now; the transfer is gone.
    assert_eq!(bob.get(&format!("/v3/p2/volumes/{vol}")).await.status, 200);
    let s = bob.get(&format!("/v3/p2/snapshots/{snap}")).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(c.get(&format!("/v3/p1/snapshots/{snap}")).await.status, 404);
    let r = at(
        &c,
        "3.57",
        "GET",
        &format!("/v3/p1/volume-transfers/{tid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // p2's quota counts the snapshot (usage moved with it).
    let q = bob.get("/v3/p2/os-quota-sets/p2?usage=true").await;
    assert_eq!(q.body["quota_set"]["snapshots"]["in_use"], 1, "{}", q.body);
    let q = c.get("/v3/p1/os-quota-sets/p1?usage=true").await;
    assert_eq!(q.body["quota_set"]["snapshots"]["in_use"], 0, "{}", q.body);

    // 3.55 no_snapshots: the volume moves alone.
    let vol2 = new_volume(&c, "p1", json!({})).await;
    let snap2 = new_snapshot(&c, &vol2).await;
    let r = transfer(
        &c,
        "3.55",
        "volume-transfers",
        json!({"volume_id": vol2, "no_snapshots": "true"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["transfer"]["no_snapshots"], true);
    let t2 = r.body["transfer"]["id"].as_str().unwrap().to_string();
    let r = at(
        &bob,
        "3.55",
        "POST",
        &format!("/v3/p2/volume-transfers/{t2}/accept"),
        Some(json!({"accept": {"auth_key": r.body["transfer"]["auth_key"]}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(bob.get(&format!("/v3/p2/volumes/{vol2}")).await.status, 200);
    assert_eq!(
        c.get(&format!("/v3/p1/snapshots/{snap2}")).await.status,
        200
    );
    verified(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_3_59_pagination_and_sort() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let mut ids = Vec::new();
    for name in ["b", "c", "a"] {
        let vol = new_volume(&c, "p1", json!({})).await;
        let r = transfer(
            &c,
            "3.59",
            "volume-transfers",
            json!({"volume_id": vol, "name": name}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.body["transfer"]["id"].as_str().unwrap().to_string());
    }
    let names = |r: &Reply| -> Vec<String> {
        r.body["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    // 3.58: oldest first, no links.
    let r = at(&c, "3.58", "GET", "/v3/p1/volume-transfers?limit=2", None).await;
    assert_eq!(names(&r), ["b", "c"]);
    assert!(r.body.get("transfers_links").is_none());
    // 3.59: newest first by default, a next link on a full page.
    let r = at(&c, "3.59", "GET", "/v3/p1/volume-transfers?limit=2", None).await;
    assert_eq!(names(&r), ["a", "c"]);
    let next = r.body["transfers_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.contains(&format!("marker={}", ids[1])), "{next}");
    let r = at(
        &c,
        "3.59",
        "GET",
        &format!("/v3/p1/volume-transfers?limit=2&marker={}", ids[1]),
        None,
    )
    .await;
    assert_eq!(names(&r), ["b"]);
    let r = at(
        &c,
        "3.59",
        "GET",
        "/v3/p1/volume-transfers/detail?sort=name:asc",
        None,
    )
    .await;
    assert_eq!(names(&r), ["a", "b", "c"]);
    assert_eq!(r.body["transfers"][0]["accepted"], false);
    let r = at(
        &c,
        "3.59",
        "GET",
        "/v3/p1/volume-transfers?sort_key=size",
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    verified(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_3_66_of_an_in_use_volume_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = new_volume(&c, "p1", json!({})).await;
    attach_legacy(&c, &vol).await;
    let snap = |force: Value| {
        let mut s = json!({"volume_id": vol});
        if !force.is_null() {
            s["force"] = force;
        }
        Some(json!({ "snapshot": s }))
    };
    // 3.65: in-use needs force [5.1 #22].
    let r = at(&c, "3.65", "POST", "/v3/p1/snapshots", snap(Value::Null)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&c, "3.65", "POST", "/v3/p1/snapshots", snap(json!(true))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // 3.66: without force; force false is refused, force true ignored.
    let r = at(&c, "3.66", "POST", "/v3/p1/snapshots", snap(Value::Null)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(&c, "3.66", "POST", "/v3/p1/snapshots", snap(json!(false))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Since microversion 3.66 the 'force' flag is invalid for this request.  For backward compatability, however, when the 'force' flag is passed with a value evaluating to True, it is silently ignored."
    );
    let r = at(&c, "3.66", "POST", "/v3/p1/snapshots", snap(json!(true))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let list = c.get("/v3/p1/snapshots").await;
    assert_eq!(list.body["snapshots"].as_array().unwrap().len(), 3);
    for s in list.body["snapshots"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        c.wait_until(
            &format!("/v3/p1/snapshots/{id}"),
            "snapshot available",
            |r| r.body["snapshot"]["status"] == "available",
        )
        .await;
    }
    verified(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_completion_3_71_refuses_what_no_consumer_awaits() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "p1");
    let vol = new_volume(&c, "p1", json!({})).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    let body = json!({"os-extend_volume_completion": {"error": false}});
    // An administrator's action (Cinder's RULE_ADMIN_API).
    let r = at(&c, "3.71", "POST", &action, Some(body.clone())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Cinder's admin_actions.py serves it at every version: 3.70 answers
    // as 3.71 does. No extend here waits for its consumer, so a volume
    // that is not extending is refused with Cinder's words.
    for v in ["3.70", "3.71"] {
        let r = at(&admin, v, "POST", &action, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{v}: {}", r.body);
        assert_eq!(
            r.body["badRequest"]["message"],
            "Invalid volume: Volume is not being extended."
        );
    }
    let r = at(
        &admin,
        "3.71",
        "POST",
        &action,
        Some(json!({"os-extend_volume_completion": {"error": 1}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(volume(&c, &vol).await["status"], "available");
    verified(tmp.path());
}
