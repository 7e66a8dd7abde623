//! The backend conformance scenarios of backend_data.rs, on Ceph RBD: known
//! patterns written into volumes come back after snapshot, rollback, linked
//! and full clones, snapshot deletion and the collection of deleted
//! volumes' images, and every operation survives its retry.
//!
//! Needs the test cluster (`tests/ceph/start.sh`, which test.sh runs):
//! `BLOCKLEDGER_CEPH_CONF` names its conf, `BLOCKLEDGER_CEPH_POOL` its pool
//! (default blockledger). Without it each test is skipped with the reason
//! printed, except in CI (`CI=true`), where a missing cluster fails.
//!
//! Bytes are written with `rbd import-diff` (a diff stream of one extent,
//! format "rbd diff v1") and read with `rbd export` to stdout: the same
//! cluster-side paths a consumer's writes and reads take. Tests share the
//! pool, so each one looks only at the images named after its own ids.

use std::process::Command;
use std::sync::Arc;

use executor::backend::{open_storage, Bytes, StorageBackend, StorageSpec};
use uuid::Uuid;

#[path = "../../tests/support/ceph.rs"]
mod ceph;
use ceph::Ceph;

const MIB: u64 = 1 << 20;

struct Env {
    ceph: Ceph,
    b: Arc<dyn StorageBackend>,
    _tmp: tempfile::TempDir,
}

/// The cluster's helpers (`e.write`, `e.holds`, …) straight on the test's
/// environment.
impl std::ops::Deref for Env {
    type Target = Ceph;
    fn deref(&self) -> &Ceph {
        &self.ceph
    }
}

fn env_with(extra: &str) -> Option<Env> {
    let ceph = Ceph::from_env("the RBD tests")?;
    let tmp = tempfile::tempdir().unwrap();
    let spec: StorageSpec = format!("rbd:pool={},conf={}{extra}", ceph.pool, ceph.conf)
        .parse()
        .unwrap();
    let b = open_storage(&spec, tmp.path()).unwrap();
    Some(Env { ceph, b, _tmp: tmp })
}

fn env() -> Option<Env> {
    env_with("")
}

impl Env {
    fn vol(&self, id: Uuid) -> String {
        self.image(id)
    }

    fn snap(&self, vol: Uuid, snap: Uuid) -> String {
        format!("{}@snapshot-{snap}", self.vol(vol))
    }

    fn parent_of(&self, spec: &str) -> Option<String> {
        let info = self.info(spec).unwrap_or_else(|| panic!("rbd info {spec}"));
        info["parent"]["image"].as_str().map(str::to_string)
    }
}

fn ids<const N: usize>() -> [Uuid; N] {
    std::array::from_fn(|_| Uuid::new_v4())
}

#[test]
fn rollback_and_clones_hold_the_snapshot_bytes_and_deleted_images_wait_for_dependants() {
    let Some(e) = env() else { return };
    let b = &e.b;
    let [vol, snap, linked, full] = ids();
    b.create(vol, 64 * MIB).unwrap();
    b.create(vol, 64 * MIB).unwrap();
    assert!(
        b.create(vol, 128 * MIB).is_err(),
        "a smaller one is not reused"
    );
    e.write(&e.vol(vol), 0xaa, 0, 4 * MIB);
    b.snapshot_create(vol, snap).unwrap();
    b.snapshot_create(vol, snap).unwrap();
    assert!(b.snapshot_exists(snap));
    e.write(&e.vol(vol), 0xbb, 0, 4 * MIB);
    assert!(e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB));
    // The checker is not vacuous: one differing byte fails it.
    e.write(&e.vol(vol), 0xbc, 3 * MIB + 17, 1);
    assert!(!e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB));
    assert!(e.holds(&e.snap(vol, snap), 0xaa, 0, 4 * MIB));

    // Rollback keeps a size grown after the snapshot.
    b.extend(vol, 96 * MIB).unwrap();
    b.extend(vol, 96 * MIB).unwrap();
    b.rollback(vol, snap).unwrap();
    b.rollback(vol, snap).unwrap();
    assert_eq!(b.virtual_size(vol).unwrap(), Some(96 * MIB));
    assert!(e.holds(&e.vol(vol), 0xaa, 0, 4 * MIB), "rollback");
    assert!(e.holds(&e.vol(vol), 0x00, 4 * MIB, 92 * MIB));

    b.clone_from_snapshot(snap, linked, 64 * MIB, true).unwrap();
    b.clone_from_snapshot(snap, linked, 64 * MIB, true).unwrap();
    b.clone_from_snapshot(snap, full, 128 * MIB, false).unwrap();
    b.clone_from_snapshot(snap, full, 128 * MIB, false).unwrap();
    assert!(
        b.clone_from_snapshot(snap, Uuid::new_v4(), 32 * MIB, true)
            .is_err(),
        "smaller than the snapshot"
    );
    assert_eq!(
        e.parent_of(&e.vol(linked)).as_deref(),
        Some(&*format!("volume-{vol}"))
    );
    assert_eq!(e.parent_of(&e.vol(full)), None, "a full clone stands alone");
    e.write(&e.vol(vol), 0xbb, 0, 4 * MIB);
    assert!(e.holds(&e.vol(linked), 0xaa, 0, 4 * MIB));
    assert!(e.holds(&e.vol(full), 0xaa, 0, 4 * MIB));
    assert_eq!(b.virtual_size(full).unwrap(), Some(128 * MIB));
    assert!(e.holds(&e.vol(full), 0x00, 64 * MIB, 64 * MIB));
    e.write(&e.vol(linked), 0xcc, 0, MIB);
    assert!(e.holds(&e.vol(linked), 0xcc, 0, MIB));
    assert!(e.holds(&e.vol(linked), 0xaa, MIB, 3 * MIB));
    assert!(e.holds(&e.snap(vol, snap), 0xaa, 0, 4 * MIB));

    // Deleted from the catalogue while the linked clone stands on it.
    b.snapshot_delete(snap).unwrap();
    b.snapshot_delete(snap).unwrap();
    assert!(!b.snapshot_exists(snap));
    assert!(b.rollback(vol, snap).is_err(), "no source any more");
    assert!(b
        .clone_from_snapshot(snap, Uuid::new_v4(), 64 * MIB, true)
        .is_err());
    assert!(e.holds(&e.vol(linked), 0xaa, MIB, 3 * MIB));

    // The volume goes; its image stays while the clone needs it.
    b.delete(vol).unwrap();
    b.delete(vol).unwrap();
    assert_eq!(b.virtual_size(vol).unwrap(), None);
    let kept = e.images_of(&[vol]);
    assert!(
        kept.len() == 1 && kept[0].starts_with(&format!("volume-{vol}.deleted.")),
        "kept for the clone: {kept:?}"
    );
    assert!(e.holds(&e.vol(linked), 0xaa, MIB, 3 * MIB));
    b.delete(linked).unwrap();
    b.delete(linked).unwrap();
    assert!(e.images_of(&[vol, linked]).is_empty(), "collected");
    assert!(e.holds(&e.vol(full), 0xaa, 0, 4 * MIB));
    b.delete(full).unwrap();
    assert!(e.images_of(&[vol, snap, linked, full]).is_empty());
}

#[test]
fn deleting_the_middle_snapshot_of_a_chain_keeps_later_ones_readable() {
    let Some(e) = env() else { return };
    let b = &e.b;
    let [vol, s1, s2, c] = ids();
    b.create(vol, 16 * MIB).unwrap();
    e.write(&e.vol(vol), 0xaa, 0, MIB);
    b.snapshot_create(vol, s1).unwrap();
    e.write(&e.vol(vol), 0xbb, MIB, MIB);
    b.snapshot_create(vol, s2).unwrap();
    e.write(&e.vol(vol), 0xcc, 2 * MIB, MIB);

    b.rollback(vol, s1).unwrap();
    let v = e.vol(vol);
    assert!(e.holds(&v, 0xaa, 0, MIB) && e.holds(&v, 0, MIB, 2 * MIB));
    let p2 = e.snap(vol, s2);
    assert!(e.holds(&p2, 0xaa, 0, MIB) && e.holds(&p2, 0xbb, MIB, MIB));
    b.rollback(vol, s2).unwrap();
    assert!(e.holds(&v, 0xaa, 0, MIB) && e.holds(&v, 0xbb, MIB, MIB));
    assert!(e.holds(&v, 0, 2 * MIB, MIB));
    e.write(&v, 0xdd, 3 * MIB, MIB);

    b.snapshot_delete(s1).unwrap();
    assert!(b.rollback(vol, s1).is_err(), "s1 is gone");
    assert!(e.holds(&p2, 0xaa, 0, MIB) && e.holds(&p2, 0xbb, MIB, MIB));
    b.clone_from_snapshot(s2, c, 16 * MIB, true).unwrap();
    assert!(e.holds(&e.vol(c), 0xaa, 0, MIB) && e.holds(&e.vol(c), 0xbb, MIB, MIB));

    b.snapshot_delete(s2).unwrap();
    assert!(e.holds(&v, 0xbb, MIB, MIB) && e.holds(&v, 0xdd, 3 * MIB, MIB));
    assert!(e.holds(&e.vol(c), 0xaa, 0, MIB));
    // Either order of the last two deletes leaves nothing.
    b.delete(vol).unwrap();
    assert!(e.holds(&e.vol(c), 0xbb, MIB, MIB));
    b.delete(c).unwrap();
    assert!(e.images_of(&[vol, c]).is_empty());
}

/// A volume cloned from a volume holds the source's bytes as of the clone,
/// independently of later writes, idempotently; deleting the two in either
/// order leaves no image.
#[test]
fn a_clone_of_a_volume_keeps_the_source_bytes_and_leaves_no_images() {
    let Some(e) = env() else { return };
    let b = &e.b;
    for source_first in [true, false] {
        let [src, clone] = ids();
        b.create(src, 64 * MIB).unwrap();
        e.write(&e.vol(src), 0xaa, 0, 4 * MIB);
        e.write(&e.vol(src), 0xab, 32 * MIB, MIB);
        b.clone_from_volume(src, clone, 128 * MIB).unwrap();
        b.clone_from_volume(src, clone, 128 * MIB).unwrap();
        assert_eq!(b.virtual_size(clone).unwrap(), Some(128 * MIB));
        assert!(b.clone_from_volume(src, clone, 256 * MIB).is_err());
        assert!(!b.snapshot_exists(executor::backend::clone_base_id(clone)));

        e.write(&e.vol(src), 0xbb, 0, 4 * MIB);
        assert!(e.holds(&e.vol(clone), 0xaa, 0, 4 * MIB));
        assert!(e.holds(&e.vol(clone), 0xab, 32 * MIB, MIB));
        assert!(e.holds(&e.vol(clone), 0x00, 64 * MIB, 64 * MIB));
        e.write(&e.vol(clone), 0xcc, MIB, MIB);
        assert!(e.holds(&e.vol(src), 0xbb, 0, 4 * MIB));

        let (first, second) = if source_first {
            (src, clone)
        } else {
            (clone, src)
        };
        b.delete(first).unwrap();
        if second == clone {
            assert!(e.holds(&e.vol(clone), 0xaa, 0, MIB));
            assert!(e.holds(&e.vol(clone), 0xcc, MIB, MIB));
        } else {
            assert!(e.holds(&e.vol(src), 0xbb, 0, 4 * MIB));
        }
        b.delete(second).unwrap();
        assert!(e.images_of(&[src, clone]).is_empty(), "{source_first}");
    }
}

/// Cinder's rbd_max_clone_depth: a linked clone whose chain would be
/// deeper than flatten_depth is flattened; 0 flattens every clone.
#[test]
fn linked_clones_are_flattened_past_the_depth() {
    let Some(e) = env_with(",flatten_depth=1") else {
        return;
    };
    let b = &e.b;
    let [v, s, c1, s1, c2] = ids();
    b.create(v, 8 * MIB).unwrap();
    e.write(&e.vol(v), 0x11, 0, MIB);
    b.snapshot_create(v, s).unwrap();
    b.clone_from_snapshot(s, c1, 8 * MIB, true).unwrap();
    assert!(e.parent_of(&e.vol(c1)).is_some(), "depth 1 stays linked");
    b.snapshot_create(c1, s1).unwrap();
    b.clone_from_snapshot(s1, c2, 8 * MIB, true).unwrap();
    assert_eq!(e.parent_of(&e.vol(c2)), None, "depth 2 > 1: flattened");
    assert!(e.holds(&e.vol(c2), 0x11, 0, MIB));
    for snap in [s1, s] {
        b.snapshot_delete(snap).unwrap();
    }
    for vol in [v, c1, c2] {
        b.delete(vol).unwrap();
    }
    assert!(e.images_of(&[v, c1, c2]).is_empty());

    let Some(e0) = env_with(",flatten_depth=0") else {
        return;
    };
    let [v, s, c] = ids();
    e0.b.create(v, 8 * MIB).unwrap();
    e0.b.snapshot_create(v, s).unwrap();
    e0.b.clone_from_snapshot(s, c, 8 * MIB, true).unwrap();
    assert_eq!(e0.parent_of(&e0.vol(c)), None, "depth 0: every clone");
    e0.b.snapshot_delete(s).unwrap();
    e0.b.delete(v).unwrap();
    e0.b.delete(c).unwrap();
    assert!(e0.images_of(&[v, c]).is_empty());
}

/// Crashes between the steps: a full clone made but not flattened, a
/// deleted volume's image left after its last dependant went, a half
/// import. The retry (or the next open) finishes each.
#[test]
fn retries_and_a_restart_finish_what_a_crash_left() {
    let Some(e) = env() else { return };
    let b = &e.b;
    let [v, s, full, dead, half] = ids();
    b.create(v, 8 * MIB).unwrap();
    e.write(&e.vol(v), 0x42, 0, MIB);
    b.snapshot_create(v, s).unwrap();
    // The first attempt of a full clone died after `rbd clone`.
    let out = e
        .rbd()
        .args([
            "clone",
            "--rbd-default-clone-format",
            "2",
            &e.snap(v, s),
            &e.vol(full),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.clone_from_snapshot(s, full, 16 * MIB, false).unwrap();
    assert_eq!(e.parent_of(&e.vol(full)), None);
    assert_eq!(b.virtual_size(full).unwrap(), Some(16 * MIB));
    assert!(e.holds(&e.vol(full), 0x42, 0, MIB));

    // A deleted volume's image whose last dependant went while the server
    // was down, and an import that died half-way.
    b.create(dead, MIB).unwrap();
    let rename = |from: String, to: String| {
        let out = e.rbd().args(["rename", &from, &to]).output().unwrap();
        assert!(out.status.success());
    };
    rename(e.vol(dead), format!("{}.deleted", e.vol(dead)));
    b.create(half, MIB).unwrap();
    rename(e.vol(half), format!("{}.importing", e.vol(half)));
    let (conf, pool) = (e.conf.clone(), e.pool.clone());
    let spec: StorageSpec = format!("rbd:pool={pool},conf={conf}").parse().unwrap();
    let reopened = open_storage(&spec, e._tmp.path()).unwrap();
    assert!(e.images_of(&[dead]).is_empty(), "collected at open");
    // The half import is the retry's to remove (another executor on the
    // pool could be importing): the retry imports afresh.
    assert_eq!(e.images_of(&[half]), [format!("volume-{half}.importing")]);
    let raw = e._tmp.path().join("half.raw");
    std::fs::write(&raw, vec![0x61u8; MIB as usize]).unwrap();
    let x = reopened.raw_transfer().unwrap();
    x.import_raw(half, &raw, false).unwrap();
    assert_eq!(e.images_of(&[half]), [format!("volume-{half}")]);
    assert!(e.holds(&e.vol(half), 0x61, 0, MIB));
    reopened.delete(half).unwrap();
    // The fresh backend finds the snapshot the other one made.
    assert!(reopened.snapshot_exists(s));
    reopened.snapshot_delete(s).unwrap();
    for vol in [v, full] {
        reopened.delete(vol).unwrap();
    }
    assert!(e.images_of(&[v, full]).is_empty());
}

/// A volume deleted while the catalogue still lists its snapshot keeps the
/// snapshot usable as a source; the snapshot's deletion frees the image.
#[test]
fn a_deleted_volumes_snapshot_stays_a_source_until_deleted() {
    let Some(e) = env() else { return };
    let b = &e.b;
    let [v, s, c] = ids();
    b.create(v, 8 * MIB).unwrap();
    e.write(&e.vol(v), 0x77, MIB, MIB);
    b.snapshot_create(v, s).unwrap();
    b.delete(v).unwrap();
    assert_eq!(b.virtual_size(v).unwrap(), None);
    assert!(b.snapshot_exists(s));
    b.clone_from_snapshot(s, c, 8 * MIB, false).unwrap();
    assert!(e.holds(&e.vol(c), 0x77, MIB, MIB));
    b.snapshot_delete(s).unwrap();
    assert_eq!(e.images_of(&[v]), Vec::<String>::new(), "freed");
    b.delete(c).unwrap();
    assert!(e.images_of(&[v, s, c]).is_empty());
}

/// Raw bytes in and out (what images.rs uses), capacity from `ceph df`,
/// and the connection template os-brick's RBD connector reads.
#[test]
fn bytes_in_and_out_capacity_and_connection_template() {
    let Some(e) = env() else { return };
    let b = &e.b;
    let t = b.connection_template();
    assert_eq!(t["driver_volume_type"], "rbd");
    assert_eq!(t["pool"], e.pool.as_str());
    assert_eq!(t["hosts"][0], "127.0.0.1");
    assert!(
        t["ports"][0].as_str().unwrap().parse::<u16>().is_ok(),
        "{t}"
    );
    assert_eq!(t["auth_enabled"], true);
    assert_eq!(t["auth_username"], "admin");
    assert_eq!(t["cluster_name"], "ceph");
    assert_eq!(b.storage_protocol(), "ceph");
    let (total, free) = b.capacity().unwrap();
    assert!(total > 0 && free > 0 && free <= total, "{total} {free}");

    let x = b.raw_transfer().expect("rbd moves bytes through files");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in.raw");
    let mut data = vec![0u8; 4 * MIB as usize];
    data[MIB as usize..2 * MIB as usize].fill(0x5c);
    std::fs::write(&src, &data).unwrap();
    let [v, s] = ids();
    x.import_raw(v, &src, false).unwrap();
    x.import_raw(v, &src, false).unwrap();
    assert_eq!(b.virtual_size(v).unwrap(), Some(4 * MIB));
    assert!(e.holds(&e.vol(v), 0x5c, MIB, MIB));
    b.snapshot_create(v, s).unwrap();
    e.write(&e.vol(v), 0x01, 0, MIB);
    let out = tmp.path().join("out.raw");
    x.export_raw(Bytes::Snapshot(s), &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data, "the snapshot's bytes");
    x.export_raw(Bytes::Volume(v), &out).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap()[..MIB as usize],
        [1u8; MIB as usize]
    );
    // os-reimage: new bytes replace the volume's; the snapshot keeps its.
    let mut other = vec![0u8; 4 * MIB as usize];
    other[..MIB as usize].fill(0x99);
    std::fs::write(&src, &other).unwrap();
    x.import_raw(v, &src, true).unwrap();
    assert!(e.holds(&e.vol(v), 0x99, 0, MIB) && e.holds(&e.vol(v), 0, MIB, MIB));
    // The old image (with the snapshot) is kept under a deleted name.
    let kept: Vec<String> = e
        .images_of(&[v])
        .into_iter()
        .filter(|n| n.contains(".deleted."))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept_snap = format!("{}/{}@snapshot-{s}", e.pool, kept[0]);
    assert!(e.holds(&kept_snap, 0x5c, MIB, MIB));
    assert!(b.snapshot_exists(s));
    x.export_raw(Bytes::Snapshot(s), &out).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        data,
        "still the snapshot's bytes"
    );
    assert!(x.export_raw(Bytes::Volume(Uuid::new_v4()), &out).is_err());

    // A snapshot of the new image, a second re-image: two kept images.
    let s2 = Uuid::new_v4();
    b.snapshot_create(v, s2).unwrap();
    x.import_raw(v, &src, true).unwrap();
    b.extend(v, 8 * MIB).unwrap();
    e.write(&e.vol(v), 0x12, 0, MIB);
    // Rolling back to the snapshot from before both re-images: the volume
    // becomes a clone of it (it is not on the current image), keeps its
    // grown size, and the image it had is kept for nothing: collected.
    b.rollback(v, s).unwrap();
    b.rollback(v, s).unwrap();
    assert!(e.holds(&e.vol(v), 0x5c, MIB, MIB) && e.holds(&e.vol(v), 0, 0, MIB));
    assert_eq!(b.virtual_size(v).unwrap(), Some(8 * MIB));
    x.export_raw(Bytes::Snapshot(s2), &out).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap()[..MIB as usize],
        [0x99u8; MIB as usize]
    );
    let mut kept_now: Vec<String> = e
        .images_of(&[v])
        .into_iter()
        .filter(|n| n.contains(".deleted."))
        .collect();
    kept_now.sort();
    assert_eq!(kept_now.len(), 2, "s's image and s2's: {kept_now:?}");
    // A crash between the rollback's two renames: the retry finishes.
    let out2 = e
        .rbd()
        .args(["rename", &e.vol(v), &format!("{}.rollback", e.vol(v))])
        .output()
        .unwrap();
    assert!(out2.status.success());
    b.rollback(v, s).unwrap();
    assert!(e.holds(&e.vol(v), 0x5c, MIB, MIB));
    for snap in [s, s2] {
        b.snapshot_delete(snap).unwrap();
    }
    // s2's image is freed; s's stays while the volume (its clone now)
    // stands on it, and goes with the volume.
    let left = e.images_of(&[v]);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&format!("volume-{v}")), "{left:?}");
    b.delete(v).unwrap();
    assert!(e.images_of(&[v]).is_empty());
}

/// Images through RBD, as the executor moves them (`ImageStore::
/// write_volume` / `export_from`): a qcow2 image written into an RBD
/// volume reads back its pattern; a snapshot of it exported as qcow2 holds
/// the frozen bytes and creates a volume on a qcow2 file storage (an image
/// exported from one backend makes a volume on the other); a file volume's
/// export makes an RBD volume; retries are no-ops.
#[test]
fn images_in_and_out_of_rbd_and_across_storages() {
    use executor::images::{DiskFormat, ImageStore};
    let Some(e) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let files = open_storage(&"qcow2".parse().unwrap(), &tmp.path().join("files")).unwrap();
    let qemu_io = |fmt: &str, path: &std::path::Path, cmd: &str| {
        let out = Command::new("qemu-io")
            .args(["-f", fmt, "-c", cmd])
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.contains("failed"),
            "qemu-io {cmd}: {text}"
        );
    };
    // An uploaded qcow2 image: 1 MiB of 0x3c at 2 MiB, 16 MiB virtual.
    let src = tmp.path().join("upload.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&src)
        .arg("16M")
        .output()
        .unwrap();
    assert!(out.status.success());
    qemu_io("qcow2", &src, "write -P 0x3c 2M 1M");
    let upload = Uuid::new_v4();
    store
        .import(
            upload,
            DiskFormat::Qcow2,
            &mut std::fs::File::open(&src).unwrap(),
        )
        .unwrap();

    let [v, s, back, onto_rbd] = ids();
    let mut seen = Vec::new();
    store
        .write_volume(&*e.b, v, upload, 32 * MIB, false, &mut |p| seen.push(p))
        .unwrap();
    assert_eq!(seen.last(), Some(&100));
    store
        .write_volume(&*e.b, v, upload, 32 * MIB, false, &mut |_| {})
        .unwrap();
    assert_eq!(e.b.virtual_size(v).unwrap(), Some(32 * MIB));
    assert!(e.holds(&e.vol(v), 0x3c, 2 * MIB, MIB));
    assert!(e.holds(&e.vol(v), 0, 0, 2 * MIB) && e.holds(&e.vol(v), 0, 3 * MIB, 29 * MIB));

    // Snapshot, then change the volume: the export has the frozen bytes.
    e.b.snapshot_create(v, s).unwrap();
    e.write(&e.vol(v), 0xee, 2 * MIB, MIB);
    let exported = Uuid::new_v4();
    let info = store
        .export_from(
            &*e.b,
            Bytes::Snapshot(s),
            exported,
            DiskFormat::Qcow2,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(info.virtual_size, 32 * MIB);
    let again = store
        .export_from(
            &*e.b,
            Bytes::Snapshot(s),
            exported,
            DiskFormat::Qcow2,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(info, again);
    qemu_io("qcow2", &store.path(exported), "read -P 0x3c 2M 1M");

    // …and makes a volume on the qcow2 file storage.
    store
        .write_volume(&*files, back, exported, 32 * MIB, false, &mut |_| {})
        .unwrap();
    qemu_io("qcow2", &files.active_path(back), "read -P 0x3c 2M 1M");
    // A file volume's export makes an RBD volume.
    qemu_io("qcow2", &files.active_path(back), "write -P 0x4d 0 1M");
    let from_files = Uuid::new_v4();
    store
        .export_from(
            &*files,
            Bytes::Volume(back),
            from_files,
            DiskFormat::Raw,
            &mut |_| {},
        )
        .unwrap();
    store
        .write_volume(&*e.b, onto_rbd, from_files, 32 * MIB, false, &mut |_| {})
        .unwrap();
    assert!(e.holds(&e.vol(onto_rbd), 0x4d, 0, MIB));
    assert!(e.holds(&e.vol(onto_rbd), 0x3c, 2 * MIB, MIB));
    // The volume's current bytes, exported raw.
    let current = Uuid::new_v4();
    store
        .export_from(
            &*e.b,
            Bytes::Volume(v),
            current,
            DiskFormat::Raw,
            &mut |_| {},
        )
        .unwrap();
    let raw = std::fs::read(store.path(current)).unwrap();
    assert!(raw[2 * MIB as usize..3 * MIB as usize]
        .iter()
        .all(|&x| x == 0xee));
    // No scratch file is left in the image store.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    e.b.snapshot_delete(s).unwrap();
    for vol in [v, onto_rbd] {
        e.b.delete(vol).unwrap();
    }
    assert!(e.images_of(&[v, onto_rbd]).is_empty());
}
