//! Cinder 3.68 `os-reimage` (r17, from t17's list), against the real
//! binary: the image's bytes replace the volume's, the volume is
//! `downloading` meanwhile and returns to its status, with the image's
//! `volume_image_metadata` and bootable; below 3.68 the action does not
//! exist; every refusal (status, unknown image, image too large) changes
//! nothing. Each test ends with `verify` (replay equals live).
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

const I1: &str = "11111111-2222-3333-4444-555555555555";
const I2: &str = "66666666-7777-8888-9999-000000000000";

/// A request at microversion `v`.
async fn at(c: &Client, v: &str, path: &str, body: Value) -> Reply {
    let resp = c
        .http
        .post(format!("{}{}", c.base, path))
        .header("X-Auth-Token", &c.token)
        .header("Content-Type", "application/json")
        .header("OpenStack-API-Version", format!("volume {v}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

async fn new_volume(c: &Client) -> String {
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": "r17"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    id
}

async fn volume(c: &Client, id: &str) -> Value {
    let r = c.get(&format!("/v3/p1/volumes/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["volume"].clone()
}

/// Uploads `file` as a new image through the Glance-style API (as
/// tests/images_e2e.rs does) and returns its id once active.
async fn upload(srv: &Server, c: &Client, file: &Path, disk_format: &str) -> String {
    let r = c
        .post(
            "/image/v2/images",
            &json!({"name": "r17-image", "disk_format": disk_format, "container_format": "bare"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let resp = c
        .http
        .put(srv.url(&format!("/image/v2/images/{id}/file")))
        .header("X-Auth-Token", "alice:p1")
        .header("Content-Type", "application/octet-stream")
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        c.get(&format!("/image/v2/images/{id}")).await.body["status"],
        "active"
    );
    id
}

fn qemu_img_create(path: &Path, format: &str, size: &str) {
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", format])
        .arg(path)
        .arg(size)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `qemu-img compare`: the volume reads as the image (the volume's bytes
/// past the image's end must read as zeros).
fn same_bytes(image: &Path, image_fmt: &str, vol: &Path, vol_fmt: &str) -> bool {
    Command::new("qemu-img")
        .args(["compare", "-U", "-f", image_fmt, "-F", vol_fmt])
        .arg(image)
        .arg(vol)
        .status()
        .unwrap()
        .success()
}

fn verified(dir: &Path) {
    let (ok, out) = verify(dir);
    assert!(ok, "verify: {out}");
}

fn reimage(image: &str) -> Value {
    json!({"os-reimage": {"image_id": image, "reimage_reserved": false}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimage_3_68_writes_the_image_over_the_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");

    // The image: 64 MiB raw whose first 4 MiB are 0x5a.
    let raw = tmp.path().join("image.raw");
    qemu_img_create(&raw, "raw", "64M");
    write_pattern("raw", &raw, 0x5a);
    let image = upload(&srv, &c, &raw, "raw").await;

    // The volume holds 0x11, kept by a snapshot, then 0x22.
    let vol = new_volume(&c).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    let (format, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0x11);
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": vol, "name": "before"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "snapshot", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    let (_, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0x22);
    let before = volume(&c, &vol).await;
    assert_eq!(before["bootable"], "false");
    assert!(before.get("volume_image_metadata").is_none(), "{before}");

    // 3.67: the action does not exist (Cinder's version check: 404), and
    // nothing changed.
    let r = at(&c, "3.67", &action, reimage(&image)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(volume(&c, &vol).await, before);
    assert!(holds_pattern(&format, &path, 0x22));

    // 3.68: 202, no body; downloading, then back to available.
    let r = at(&c, "3.68", &action, reimage(&image)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    let now = volume(&c, &vol).await;
    assert!(
        now["status"] == "downloading" || now["status"] == "available",
        "{now}"
    );
    let v = c
        .wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await
        .body["volume"]
        .clone();
    assert_eq!(v["bootable"], "true");
    let md = &v["volume_image_metadata"];
    assert_eq!(md["image_id"], image.as_str(), "{v}");
    assert_eq!(md["image_name"], "r17-image");
    assert_eq!(md["disk_format"], "raw");
    assert_eq!(md["container_format"], "bare");
    assert_eq!(v["size"], 1);

    // The volume reads as the image, and is still 1 GiB.
    let (_, path) = device_path(&c, "p1", &vol).await;
    assert!(holds_pattern(&format, &path, 0x5a), "the image's bytes");
    assert!(same_bytes(&raw, "raw", &path, &format));
    assert_eq!(virtual_size(&path), 1 << 30);
    if format == "qcow2" {
        qemu_img_check(&path);
    }
    // The snapshot kept its bytes; a revert to it (3.40) brings them back.
    let s = c.get(&format!("/v3/p1/snapshots/{snap}")).await;
    assert_eq!(s.body["snapshot"]["status"], "available");
    let r = at(
        &c,
        "3.40",
        &action,
        json!({"revert": {"snapshot_id": snap}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    let (_, path) = device_path(&c, "p1", &vol).await;
    assert!(holds_pattern(&format, &path, 0x11), "the snapshot's bytes");
    verified(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimage_3_68_refusals_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");

    let raw = tmp.path().join("small.raw");
    qemu_img_create(&raw, "raw", "16M");
    let image = upload(&srv, &c, &raw, "raw").await;
    // 2 GiB virtual, a few hundred KiB stored: too large for 1 GiB.
    let big = tmp.path().join("big.qcow2");
    qemu_img_create(&big, "qcow2", "2G");
    let large = upload(&srv, &c, &big, "qcow2").await;

    let vol = new_volume(&c).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    let (format, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0x33);
    let before = volume(&c, &vol).await;
    let unchanged = |v: &Value| {
        assert_eq!(v, &before);
        assert!(holds_pattern(&format, &path, 0x33));
    };

    // Unknown image: 404 with Cinder's (Glance's ImageNotFound) words.
    let missing = "99999999-8888-7777-6666-555555555555";
    let r = at(&c, "3.68", &action, reimage(missing)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Image {missing} could not be found.")
    );
    unchanged(&volume(&c, &vol).await);

    // Too large: the image's minDisk (the service records the GiB its
    // virtual size needs) exceeds the volume (check_image_metadata).
    let img = c.get(&format!("/image/v2/images/{large}")).await.body;
    assert_eq!(img["min_disk"], 2, "{img}");
    let r = at(&c, "3.68", &action, reimage(&large)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid input received: Volume size 1GB cannot be smaller than the image minDisk size 2GB."
    );
    unchanged(&volume(&c, &vol).await);

    // Schema: image_id must be a uuid; no other members.
    let r = at(
        &c,
        "3.68",
        &action,
        json!({"os-reimage": {"image_id": "x"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.68",
        &action,
        json!({"os-reimage": {"image_id": image, "other": 1}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    unchanged(&volume(&c, &vol).await);

    // In-use: 400 with Cinder's InvalidVolume words.
    let r = c
        .post(
            &action,
            &json!({"os-attach": {"instance_uuid": I1, "mountpoint": "/dev/vdb"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "in-use")
        .await;
    let in_use = volume(&c, &vol).await;
    let r = at(&c, "3.68", &action, reimage(&image)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!(
            "Invalid volume: Volume {vol} status must be available or error, but current status is in-use."
        )
    );
    assert_eq!(volume(&c, &vol).await, in_use);
    assert!(holds_pattern(&format, &path, 0x33));

    // Attached to two servers: Cinder's 409, before the status is looked at.
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "multiattach": true}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let multi = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{multi}"), "available")
        .await;
    let r = c
        .post(
            &format!("/v3/p1/volumes/{multi}/action"),
            &json!({"os-attach": {"instance_uuid": I1, "mountpoint": "/dev/vdb"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status(&format!("/v3/p1/volumes/{multi}"), "in-use")
        .await;
    let r = at(
        &c,
        "3.68",
        "/v3/p1/attachments",
        json!({"attachment": {"volume_uuid": multi, "instance_uuid": I2}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let both = volume(&c, &multi).await;
    let r = at(
        &c,
        "3.68",
        &format!("/v3/p1/volumes/{multi}/action"),
        json!({"os-reimage": {"image_id": image, "reimage_reserved": true}}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        "Cannot re-image a volume which is attached to more than one server."
    );
    assert_eq!(volume(&c, &multi).await, both);
    verified(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimage_3_68_of_a_reserved_volume_needs_reimage_reserved() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let raw = tmp.path().join("image.raw");
    qemu_img_create(&raw, "raw", "8M");
    write_pattern("raw", &raw, 0x44);
    let image = upload(&srv, &c, &raw, "raw").await;
    let vol = new_volume(&c).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    // An attachment without a connector reserves the volume (3.27).
    let r = at(
        &c,
        "3.68",
        "/v3/p1/attachments",
        json!({"attachment": {"volume_uuid": vol, "instance_uuid": I1}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reserved = volume(&c, &vol).await;
    assert_eq!(reserved["status"], "reserved");
    let r = at(&c, "3.68", &action, reimage(&image)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        format!(
            "Invalid volume: Volume {vol} status must be available or error, but current status is reserved."
        )
    );
    assert_eq!(volume(&c, &vol).await, reserved);
    // With reimage_reserved (Cinder's boolean words accepted): back to
    // reserved once written.
    let r = at(
        &c,
        "3.68",
        &action,
        json!({"os-reimage": {"image_id": image, "reimage_reserved": "true"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c
        .wait_until(&format!("/v3/p1/volumes/{vol}"), "reimaged", |r| {
            r.body["volume"]["volume_image_metadata"]["image_id"] == image.as_str()
        })
        .await
        .body["volume"]
        .clone();
    assert_eq!(v["status"], "reserved");
    assert_eq!(v["bootable"], "true");
    let (format, path) = device_path(&c, "p1", &vol).await;
    assert!(holds_pattern(&format, &path, 0x44));
    verified(tmp.path());
}

/// Names of the `.tmp` files left in the data dir's volume directory.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("volumes"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// A copy cut short by a stop is redone after the restart; a copy that
/// fails leaves the volume `error` with its old bytes (the image is
/// written to a temporary and renamed over the volume only when whole);
/// an `error` volume may be reimaged again (and stays `error`, Cinder's
/// previous_status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimage_3_68_cut_short_or_failed_keeps_the_old_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let hang = fake_qemu_img(bin.path(), &["convert"], &[]);
    let mut srv = Server::start_env(tmp.path(), "qcow2", &[], &[("PATH", hang)]);
    let c = srv.client("alice", "p1");
    let raw = tmp.path().join("image.raw");
    qemu_img_create(&raw, "raw", "8M");
    write_pattern("raw", &raw, 0x77);
    let image = upload(&srv, &c, &raw, "raw").await;
    let vol = new_volume(&c).await;
    let action = format!("/v3/p1/volumes/{vol}/action");
    let (format, path) = device_path(&c, "p1", &vol).await;
    write_pattern(&format, &path, 0x66);
    let r = at(&c, "3.68", &action, reimage(&image)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(volume(&c, &vol).await["status"], "downloading");
    // The copy's helper is running (and hangs): stop the server.
    let pid = srv.pid().unwrap();
    c.wait_until("/v3/p1/volumes", "the copy's helper", |_| {
        children_of(pid)
            .iter()
            .any(|(_, cmd)| cmd.contains("sleep"))
    })
    .await;
    srv.stop_timed();
    assert!(holds_pattern(&format, &path, 0x66), "untouched mid-copy");

    // Restarted with a qemu-img whose convert fails: the redone copy
    // fails, the volume is `error` and still holds its old bytes.
    let bin2 = tempfile::tempdir().unwrap();
    let fail = fake_qemu_img(bin2.path(), &[], &["convert"]);
    let mut srv = Server::start_env(tmp.path(), "qcow2", &[], &[("PATH", fail)]);
    let c = srv.client("alice", "p1");
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "error")
        .await;
    assert!(holds_pattern(&format, &path, 0x66), "the old bytes stay");
    assert!(temporaries(tmp.path()).is_empty());
    srv.stop_timed();

    // A failed copy sets neither the metadata nor bootable.
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let failed = volume(&c, &vol).await;
    assert_eq!(failed["bootable"], "false");
    assert!(failed.get("volume_image_metadata").is_none(), "{failed}");

    // A working qemu-img: an `error` volume is reimaged, and returns to
    // its previous status, `error`, as Cinder's manager does
    // (`volume.status = volume.previous_status`).
    let r = at(&c, "3.68", &action, reimage(&image)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = c
        .wait_until(&format!("/v3/p1/volumes/{vol}"), "reimaged", |r| {
            r.body["volume"]["bootable"] == "true"
        })
        .await
        .body["volume"]
        .clone();
    assert_eq!(v["status"], "error");
    assert_eq!(v["volume_image_metadata"]["image_id"], image.as_str());
    assert!(holds_pattern(&format, &path, 0x77));
    assert!(temporaries(tmp.path()).is_empty());
    verified(tmp.path());
}
