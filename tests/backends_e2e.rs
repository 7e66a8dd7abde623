//! Issue 16: backends as data. The server serves the seed backends (SSD,
//! SAS, SATA) on the data dir's qcow2 storage and one more, `fast`, on a
//! raw storage of its own (`--storage fast=raw`, an embedded executor of
//! its own). Volume types place volumes on either by
//! `volume_backend_name`; a clone stays on its source's backend; get_pools
//! shows every backend with its capacity; a type naming an unregistered
//! backend, or a size beyond the backend's room, ends in `error` with
//! Cinder's "No valid backend" message (CINDER-7.1.1 accepted, 202).

mod support;

use serde_json::{json, Value};
use support::{at, device_path, upload_image, verify, Client, Server};

async fn type_named(admin: &Client, name: &str, backend: &str) {
    let r = admin
        .post(
            "/v3/adm/types",
            &json!({"volume_type": {"name": name,
                "extra_specs": {"volume_backend_name": backend}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Creates a volume (202) and waits for `want`; returns its id.
async fn volume(c: &Client, body: Value, want: &str) -> String {
    let r = c.post("/v3/p1/volumes", &json!({ "volume": body })).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), want).await;
    id
}

async fn host(c: &Client, id: &str) -> String {
    let r = at(c, "3.0", "GET", &format!("/v3/p1/volumes/{id}"), None).await;
    r.body["volume"]["os-vol-host-attr:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_place_volumes_on_their_backends_and_clones_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().canonicalize().unwrap();
    // A thick ratio (1): room means free bytes, so a size past the free
    // space has no backend.
    let srv = Server::start_args(
        &data,
        "qcow2",
        &[
            "--storage",
            "fast=raw",
            "--max-over-subscription-ratio",
            "1",
        ],
    );
    let admin = srv.client("admin", "adm");
    let c = srv.client("alice", "p1");
    let r = admin
        .put(
            "/v3/adm/os-quota-sets/p1",
            &json!({"quota_set": {"gigabytes": -1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    type_named(&admin, "quick", "fast").await;
    type_named(&admin, "solid", "SSD").await;
    type_named(&admin, "nowhere", "ghost").await;

    // get_pools: the seeds as before, then fast, each with its capacity.
    let r = admin
        .get("/v3/adm/scheduler-stats/get_pools?detail=true")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pools = r.body["pools"].as_array().unwrap().clone();
    let backends: Vec<&str> = pools
        .iter()
        .map(|p| p["capabilities"]["volume_backend_name"].as_str().unwrap())
        .collect();
    let mut distinct = backends.clone();
    distinct.dedup();
    assert_eq!(distinct, ["SSD", "SAS", "SATA", "fast"], "{backends:?}");
    let fast = pools
        .iter()
        .find(|p| p["name"] == "blockledger@fast#az-dc-1")
        .expect("fast's pool in the default zone");
    let caps = &fast["capabilities"];
    assert_eq!(caps["storage_protocol"], "file");
    let total = caps["total_capacity_gb"].as_f64().unwrap();
    let free = caps["free_capacity_gb"].as_f64().unwrap();
    assert!(total > 0.0 && free > 0.0 && free <= total, "{caps}");

    // volume_backend_name places the volume; its file is in that storage.
    let q = volume(&c, json!({"size": 1, "volume_type": "quick"}), "available").await;
    assert_eq!(host(&c, &q).await, "blockledger@fast#az-dc-1");
    let (format, path) = device_path(&c, "p1", &q).await;
    assert_eq!(format, "raw");
    assert_eq!(path, data.join("storages/fast/volumes").join(&q));
    assert!(path.exists());
    assert!(!data.join("volumes").join(&q).exists());

    // A seed type and a type naming a seed backend: the data dir's qcow2.
    for ty in ["SSD", "solid"] {
        let s = volume(&c, json!({"size": 1, "volume_type": ty}), "available").await;
        assert_eq!(host(&c, &s).await, "blockledger@SSD#az-dc-1");
        let (format, path) = device_path(&c, "p1", &s).await;
        assert_eq!(format, "qcow2");
        assert_eq!(path, data.join("volumes").join(&s));
        assert!(path.exists());
        assert!(!data.join("storages/fast/volumes").join(&s).exists());
    }

    // A clone of the fast volume, of the default type (SATA's backend by
    // the type), stays on its source's backend.
    let clone = volume(&c, json!({"size": 1, "source_volid": q}), "available").await;
    assert_eq!(host(&c, &clone).await, "blockledger@fast#az-dc-1");
    assert!(data.join("storages/fast/volumes").join(&clone).exists());
    // So does a volume from a snapshot of it.
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": q, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "available", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    assert!(data.join("storages/fast/snapshots").join(&snap).exists());
    let from_snap = volume(
        &c,
        json!({"size": 1, "snapshot_id": snap, "volume_type": "quick"}),
        "available",
    )
    .await;
    assert_eq!(host(&c, &from_snap).await, "blockledger@fast#az-dc-1");
    assert!(data.join("storages/fast/volumes").join(&from_snap).exists());

    // No valid backend: a type naming an unregistered backend, and a
    // size beyond fast's free space (ratio 1).
    let ghost = volume(&c, json!({"size": 1, "volume_type": "nowhere"}), "error").await;
    let too_big = free.floor() as i64 + 1;
    assert!(
        too_big <= 32_768,
        "this host has more free space ({free} GiB) than the largest volume"
    );
    let big = volume(
        &c,
        json!({"size": too_big, "volume_type": "quick"}),
        "error",
    )
    .await;
    let r = at(&c, "3.3", "GET", "/v3/p1/messages", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for id in [&ghost, &big] {
        let m = r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["resource_uuid"] == id.as_str())
            .unwrap_or_else(|| panic!("a message for {id}: {}", r.body))
            .clone();
        assert_eq!(m["event_id"], "VOLUME_VOLUME_001_003", "{m}");
        assert_eq!(
            m["user_message"],
            "schedule allocate volume:Could not find any available weighted backend."
        );
    }
    // A failed placement lies on a served backend, so it can be deleted.
    for id in [&ghost, &big] {
        let r = c.delete(&format!("/v3/p1/volumes/{id}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    for id in [&ghost, &big] {
        c.wait_until(&format!("/v3/p1/volumes/{id}"), "gone", |r| r.status == 404)
            .await;
    }
    // The backends' services and capabilities.
    let r = at(&admin, "3.49", "GET", "/v3/adm/os-services", None).await;
    let fast_service = r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["host"] == "blockledger@fast")
        .cloned()
        .unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(fast_service["backend_state"], "up");
    let r = admin.get("/v3/adm/capabilities/blockledger@fast").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume_backend_name"], "fast");
    drop(srv);
    let (ok, out) = verify(&data);
    assert!(ok, "{out}");
}

/// A restart registers nothing new (same storages, same templates) and the
/// volumes stay where they were placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_registers_nothing_new() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().canonicalize().unwrap();
    let args = ["--storage", "fast=raw"];
    let mut srv = Server::start_args(&data, "qcow2", &args);
    let admin = srv.client("admin", "adm");
    let registered = |admin: &Client| {
        let path = "/v3/adm/events?all_projects=true&limit=1000".to_string();
        let admin = admin.cloned();
        async move {
            let r = admin.get(&path).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event_type"] == "BackendRegistered")
                .count()
        }
    };
    assert_eq!(registered(&admin).await, 4);
    type_named(&admin, "quick", "fast").await;
    let c = srv.client("alice", "p1");
    let q = volume(&c, json!({"size": 1, "volume_type": "quick"}), "available").await;
    srv.stop();
    let srv = Server::start_args(&data, "qcow2", &args);
    let admin = srv.client("admin", "adm");
    assert_eq!(registered(&admin).await, 4);
    let c = srv.client("alice", "p1");
    assert_eq!(host(&c, &q).await, "blockledger@fast#az-dc-1");
    drop(srv);
    let (ok, out) = verify(&data);
    assert!(ok, "{out}");
}

/// An image exported from a volume on one backend creates volumes on
/// either (the image store is the server's, shared by every storage's
/// executor): the bytes follow, in each storage's format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_from_one_backend_makes_volumes_on_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().canonicalize().unwrap();
    let srv = Server::start_args(&data, "qcow2", &["--storage", "fast=raw"]);
    let admin = srv.client("admin", "adm");
    let c = srv.client("alice", "p1");
    type_named(&admin, "quick", "fast").await;
    let src = volume(&c, json!({"size": 1, "volume_type": "quick"}), "available").await;
    let (format, path) = device_path(&c, "p1", &src).await;
    assert_eq!(format, "raw");
    support::write_pattern("raw", &path, 0x5a);
    let image = upload_image(&c, &src, "from-fast", "qcow2").await;
    for (ty, format, dir) in [
        ("SSD", "qcow2", "volumes"),
        ("quick", "raw", "storages/fast/volumes"),
    ] {
        let v = volume(
            &c,
            json!({"size": 1, "imageRef": image, "volume_type": ty}),
            "available",
        )
        .await;
        let (f, path) = device_path(&c, "p1", &v).await;
        assert_eq!((f.as_str(), &path), (format, &data.join(dir).join(&v)));
        assert!(support::holds_pattern(format, &path, 0x5a), "{ty}");
    }
    drop(srv);
    let (ok, out) = verify(&data);
    assert!(ok, "{out}");
}
