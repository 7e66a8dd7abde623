//! Ceph RBD through the real server (issue 16): `serve --storage
//! ceph=rbd:pool=…,conf=…` beside the qcow2 file storage of the seed
//! backends. Volume types place volumes on each (`volume_backend_name`);
//! snapshots, rollback, linked and full clones of an RBD volume are RBD
//! snapshots and clones holding the right bytes; a linked clone stays on its
//! source's backend; an image exported from one backend creates a volume on
//! the other; attach answers os-brick's RBD connection info; deleting
//! everything leaves no image in the pool, and `verify` passes.
//!
//! Needs the test cluster (tests/ceph/start.sh, run by test.sh):
//! `BLOCKLEDGER_CEPH_CONF`, `BLOCKLEDGER_CEPH_POOL` (default blockledger).
//! Without it the test is skipped with the reason printed, except in CI
//! (`CI=true`), where it fails. Row ids refer to ../shared/API.md.

mod support;

use serde_json::json;
use support::ceph::Ceph;
use support::*;

const MIB: u64 = 1 << 20;

async fn host_of(admin: &Client, vol: &str) -> String {
    let v = admin.get(&format!("/v3/p1/volumes/{vol}")).await;
    v.body["volume"]["os-vol-host-attr:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn delete_all(c: &Client, snaps: &[&str], vols: &[&str]) {
    for s in snaps {
        let r = c.delete(&format!("/v3/p1/snapshots/{s}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        c.wait_until(&format!("/v3/p1/snapshots/{s}"), "snapshot gone", |r| {
            r.status == 404
        })
        .await;
    }
    for v in vols {
        let r = c.delete(&format!("/v3/p1/volumes/{v}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        c.wait_until(&format!("/v3/p1/volumes/{v}"), "volume gone", |r| {
            r.status == 404
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbd_and_qcow2_backends_side_by_side() {
    let Some(ceph) = Ceph::from_env("rbd_e2e") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!("ceph=rbd:pool={},conf={}", ceph.pool, ceph.conf);
    let srv = Server::start_args(tmp.path(), "qcow2", &["--storage", &spec]);
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");

    // Types name the backends (Cinder's volume_backend_name).
    for (name, backend) in [("on-ceph", "ceph"), ("on-files", "SSD")] {
        let r = admin
            .post(
                "/v3/p1/types",
                &json!({"volume_type": {"name": name, "extra_specs": {"volume_backend_name": backend}}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The pools admins see: the RBD backend with its protocol and room.
    let pools = admin
        .get("/v3/p1/scheduler-stats/get_pools?detail=true")
        .await;
    assert_eq!(pools.status, 200, "{}", pools.body);
    let ceph_pool = pools.body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("blockledger@ceph#"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no ceph pool in {}", pools.body));
    assert_eq!(ceph_pool["capabilities"]["storage_protocol"], "ceph");
    assert!(
        ceph_pool["capabilities"]["free_capacity_gb"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // A volume of each type lands on its backend.
    let vol = create_volume(&c, json!({"volume": {"size": 1, "volume_type": "on-ceph"}})).await;
    let local = create_volume(
        &c,
        json!({"volume": {"size": 1, "volume_type": "on-files"}}),
    )
    .await;
    assert!(host_of(&admin, &vol).await.starts_with("blockledger@ceph#"));
    assert!(host_of(&admin, &local).await.starts_with("blockledger@SSD"));
    let img = ceph.image(&vol);
    assert_eq!(ceph.info(&img).unwrap()["size"], 1u64 << 30);
    assert!(
        ceph.images_of(&[&local]).is_empty(),
        "the file volume is not in the pool"
    );

    // Attach: os-brick's RBD connection info.
    let r = c
        .post(
            &format!("/v3/p1/volumes/{vol}/action"),
            &json!({"os-initialize_connection": {"connector": {}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = &r.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "rbd", "{info}");
    assert_eq!(info["data"]["name"], img.as_str());
    assert_eq!(info["data"]["hosts"][0], "127.0.0.1");
    assert_eq!(info["data"]["auth_enabled"], true);
    let (fmt, local_path) = device_path(&c, "p1", &local).await;

    // Snapshot, write, roll back (EVS-6.2.1): the RBD snapshot's bytes.
    ceph.write(&img, 0xaa, 0, 4 * MIB);
    let snap = create_snapshot(&c, &vol).await;
    assert!(ceph.info(&format!("{img}@snapshot-{snap}")).is_some());
    ceph.write(&img, 0xbb, 0, 4 * MIB);
    let r = c
        .post(
            &format!("/v2/p1/os-vendor-snapshots/{snap}/rollback"),
            &json!({"rollback": {"volume_id": vol}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    assert!(ceph.holds(&img, 0xaa, 0, 4 * MIB), "rollback");

    // Clones of the snapshot: linked and full, on the source's backend (a
    // clone into another type is refused, as the vendor API does).
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "snapshot_id": snap, "volume_type": "on-files"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let linked = create_volume(
        &c,
        json!({"volume": {"size": 2, "snapshot_id": snap, "metadata": {"full_clone": "0"}}}),
    )
    .await;
    let full = create_volume(&c, json!({"volume": {"size": 1, "snapshot_id": snap}})).await;
    for clone in [&linked, &full] {
        assert!(host_of(&admin, clone)
            .await
            .starts_with("blockledger@ceph#"));
        assert!(ceph.holds(&ceph.image(clone), 0xaa, 0, 4 * MIB));
    }
    let parent = ceph.info(&ceph.image(&linked)).unwrap()["parent"]["image"].clone();
    assert_eq!(parent, format!("volume-{vol}").as_str(), "a linked clone");
    assert!(
        ceph.info(&ceph.image(&full)).unwrap()["parent"].is_null(),
        "a full clone"
    );
    assert_eq!(ceph.info(&ceph.image(&linked)).unwrap()["size"], 2u64 << 30);

    // An image exported from RBD makes a volume on the files, and one
    // exported from the files makes an RBD volume.
    let from_ceph = upload_image(&c, &vol, &format!("from-{vol}"), "qcow2").await;
    let onto_files = create_volume(
        &c,
        json!({"volume": {"size": 1, "imageRef": from_ceph, "volume_type": "on-files"}}),
    )
    .await;
    assert!(host_of(&admin, &onto_files)
        .await
        .starts_with("blockledger@SSD"));
    let (f2, p2) = device_path(&c, "p1", &onto_files).await;
    assert!(holds_pattern(&f2, &p2, 0xaa), "RBD bytes on the files");
    write_pattern(&fmt, &local_path, 0x5e);
    let from_files = upload_image(&c, &local, &format!("from-{local}"), "raw").await;
    let onto_ceph = create_volume(
        &c,
        json!({"volume": {"size": 1, "imageRef": from_files, "volume_type": "on-ceph"}}),
    )
    .await;
    assert!(host_of(&admin, &onto_ceph)
        .await
        .starts_with("blockledger@ceph#"));
    assert!(
        ceph.holds(&ceph.image(&onto_ceph), 0x5e, 0, 4 * MIB),
        "file bytes on RBD"
    );

    // Extend an RBD volume (resize).
    let r = c
        .post(
            &format!("/v3/p1/volumes/{vol}/action"),
            &json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/volumes/{vol}"), "extended", |r| {
        r.body["volume"]["size"] == 3 && r.body["volume"]["status"] == "available"
    })
    .await;
    assert_eq!(ceph.info(&img).unwrap()["size"], 3u64 << 30);

    // Everything goes; the snapshot first, while the linked clone still
    // stands on it. Nothing of ours is left in the pool.
    delete_all(
        &c,
        &[&snap],
        &[&vol, &linked, &full, &onto_ceph, &onto_files, &local],
    )
    .await;
    assert!(
        ceph.images_of(&[&vol, &linked, &full, &onto_ceph])
            .is_empty(),
        "{:?}",
        ceph.images_of(&[&vol, &linked, &full, &onto_ceph])
    );
    drop(srv);
    let (ok, report) = verify(tmp.path());
    assert!(ok, "{report}");
}
