//! The bytes, not just the files: on each backend, known patterns written
//! into volumes must come back after snapshot, rollback, linked and full
//! clones, snapshot deletion and garbage collection. qcow2 volumes are written
//! and read with `qemu-io` (the image's guest view); raw ones with std::fs.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use executor::backend::{open_backend, StorageBackend};
use uuid::Uuid;

const MIB: u64 = 1 << 20;

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    b: Box<dyn StorageBackend>,
}

fn env(kind: &str) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let b = open_backend(kind, &data).unwrap();
    Env { _tmp: tmp, data, b }
}

fn kinds() -> [&'static str; 2] {
    ["qcow2", "raw"]
}

impl Env {
    fn qcow2(&self) -> bool {
        self.b.format() == "qcow2"
    }

    fn snap_path(&self, snap: Uuid) -> PathBuf {
        self.data.join("snapshots").join(snap.to_string())
    }

    /// Writes `len` bytes of `byte` at `off` into the image at `path`.
    fn write(&self, path: &Path, byte: u8, off: u64, len: u64) {
        if self.qcow2() {
            let out = Command::new("qemu-io")
                .args(["-f", "qcow2", "-c"])
                .arg(format!("write -P {byte:#04x} {off} {len}"))
                .arg(path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "qemu-io write: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            let f = fs::OpenOptions::new().write(true).open(path).unwrap();
            f.write_all_at(&vec![byte; len as usize], off).unwrap();
            f.sync_all().unwrap();
        }
    }

    /// True if the image at `path` holds `byte` in every one of the `len`
    /// bytes at `off`.
    fn holds(&self, path: &Path, byte: u8, off: u64, len: u64) -> bool {
        if self.qcow2() {
            let out = Command::new("qemu-io")
                .args(["-r", "-U", "-f", "qcow2", "-c"])
                .arg(format!("read -P {byte:#04x} {off} {len}"))
                .arg(path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            out.status.success() && !text.contains("Pattern verification failed")
        } else {
            let f = fs::File::open(path).unwrap();
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, off).is_ok() && buf.iter().all(|&x| x == byte)
        }
    }

    fn vol(&self, id: Uuid) -> PathBuf {
        self.b.active_path(id)
    }

    /// Every image left in volumes/ and snapshots/ is consistent
    /// (`qemu-img check`, which also opens each backing chain).
    fn check_all(&self) {
        if !self.qcow2() {
            return;
        }
        for dir in ["volumes", "snapshots"] {
            for entry in fs::read_dir(self.data.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                if name.parse::<Uuid>().is_err() {
                    continue;
                }
                let out = Command::new("qemu-img")
                    .args(["check", "-U", "-f", "qcow2"])
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "qemu-img check {}: {}{}",
                    path.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    fn files_in(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.data.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn rollback_and_clones_hold_the_snapshot_bytes_and_gc_waits_for_dependants() {
    for kind in kinds() {
        let e = env(kind);
        let b = &e.b;
        let (vol, snap, linked, full) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        b.create(vol, 64 * MIB).unwrap();
        e.write(&e.vol(vol), 0xaa, 0, 4 * MIB);
        b.snapshot_create(vol, snap).unwrap();
        assert!(e.holds(&e.vol(vol), 0xaa, 0, 4 * MIB), "{kind}");
        e.write(&e.vol(vol), 0xbb, 0, 4 * MIB);
        assert!(e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB), "{kind}");
        // The checker is not vacuous: one differing byte fails it.
        assert!(!e.holds(&e.vol(vol), 0xaa, 0, 4 * MIB), "{kind}");
        e.write(&e.vol(vol), 0xbc, 3 * MIB + 17, 1);
        assert!(!e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB), "{kind}");
        e.write(&e.vol(vol), 0xbb, 3 * MIB + 17, 1);
        assert!(e.holds(&e.snap_path(snap), 0xaa, 0, 4 * MIB), "{kind}");

        b.rollback(vol, snap).unwrap();
        assert!(e.holds(&e.vol(vol), 0xaa, 0, 4 * MIB), "{kind}: rollback");
        assert!(e.holds(&e.vol(vol), 0x00, 4 * MIB, 4 * MIB), "{kind}");

        b.clone_from_snapshot(snap, linked, 64 * MIB, true).unwrap();
        b.clone_from_snapshot(snap, full, 128 * MIB, false).unwrap();
        e.write(&e.vol(vol), 0xbb, 0, 4 * MIB);
        assert!(e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB), "{kind}");
        assert!(e.holds(&e.vol(linked), 0xaa, 0, 4 * MIB), "{kind}");
        assert!(e.holds(&e.vol(full), 0xaa, 0, 4 * MIB), "{kind}");
        // The full clone grew; its new tail reads as zeros.
        assert_eq!(b.virtual_size(full).unwrap(), Some(128 * MIB));
        assert!(e.holds(&e.vol(full), 0x00, 64 * MIB, 64 * MIB), "{kind}");
        // Writing a clone touches neither the snapshot nor its siblings.
        e.write(&e.vol(linked), 0xcc, 0, MIB);
        assert!(e.holds(&e.vol(linked), 0xcc, 0, MIB), "{kind}");
        assert!(e.holds(&e.vol(linked), 0xaa, MIB, 3 * MIB), "{kind}");
        assert!(e.holds(&e.snap_path(snap), 0xaa, 0, 4 * MIB), "{kind}");
        assert!(e.holds(&e.vol(full), 0xaa, 0, 4 * MIB), "{kind}");
        if e.qcow2() {
            // The full clone is independent: no backing file.
            let out = Command::new("qemu-img")
                .args(["info", "-U", "--output=json"])
                .arg(e.vol(full))
                .output()
                .unwrap();
            assert!(!String::from_utf8_lossy(&out.stdout).contains("backing-filename"));
        }

        b.snapshot_delete(snap).unwrap();
        if e.qcow2() {
            // vol and the linked clone are overlays of it: the file stays.
            assert!(e.snap_path(snap).exists());
        } else {
            assert!(!e.snap_path(snap).exists());
        }
        assert!(e.holds(&e.vol(linked), 0xcc, 0, MIB), "{kind}");
        assert!(e.holds(&e.vol(linked), 0xaa, MIB, 3 * MIB), "{kind}");
        assert!(e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB), "{kind}");
        e.check_all();

        b.delete(vol).unwrap();
        if e.qcow2() {
            assert!(
                e.snap_path(snap).exists(),
                "the linked clone still needs it"
            );
            assert!(b.snapshot_exists(snap));
        }
        assert!(e.holds(&e.vol(linked), 0xaa, MIB, 3 * MIB), "{kind}");
        e.check_all();
        b.delete(linked).unwrap();
        assert!(!e.snap_path(snap).exists(), "{kind}: gc removes it");
        assert!(!b.snapshot_exists(snap), "{kind}");
        assert!(e.files_in("snapshots").is_empty(), "{kind}");
        assert!(e.holds(&e.vol(full), 0xaa, 0, 4 * MIB), "{kind}");
        e.check_all();
    }
}

#[test]
fn deleting_the_middle_snapshot_of_a_chain_keeps_later_ones_readable() {
    for kind in kinds() {
        let e = env(kind);
        let b = &e.b;
        let (vol, s1, s2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        b.create(vol, 16 * MIB).unwrap();
        e.write(&e.vol(vol), 0xaa, 0, MIB);
        b.snapshot_create(vol, s1).unwrap();
        e.write(&e.vol(vol), 0xbb, MIB, MIB);
        b.snapshot_create(vol, s2).unwrap();
        e.write(&e.vol(vol), 0xcc, 2 * MIB, MIB);

        // Back to the older one: the later snapshot must stay intact.
        b.rollback(vol, s1).unwrap();
        let v = e.vol(vol);
        assert!(
            e.holds(&v, 0xaa, 0, MIB) && e.holds(&v, 0, MIB, 2 * MIB),
            "{kind}"
        );
        let p2 = e.snap_path(s2);
        assert!(
            e.holds(&p2, 0xaa, 0, MIB) && e.holds(&p2, 0xbb, MIB, MIB),
            "{kind}"
        );
        // Forward again to the later one.
        b.rollback(vol, s2).unwrap();
        assert!(e.holds(&v, 0xaa, 0, MIB), "{kind}");
        assert!(e.holds(&v, 0xbb, MIB, MIB), "{kind}");
        assert!(e.holds(&v, 0, 2 * MIB, MIB), "{kind}");
        e.write(&v, 0xdd, 3 * MIB, MIB);

        b.snapshot_delete(s1).unwrap();
        assert!(b.rollback(vol, s1).is_err(), "{kind}: s1 is gone");
        if e.qcow2() {
            assert!(e.snap_path(s1).exists(), "s2 is backed by s1");
        }
        assert!(
            e.holds(&p2, 0xaa, 0, MIB) && e.holds(&p2, 0xbb, MIB, MIB),
            "{kind}"
        );
        assert!(e.holds(&v, 0xaa, 0, MIB), "{kind}");
        assert!(e.holds(&v, 0xbb, MIB, MIB), "{kind}");
        assert!(e.holds(&v, 0xdd, 3 * MIB, MIB), "{kind}");
        e.check_all();
        // s2 can still be rolled back to and cloned.
        let c = Uuid::new_v4();
        b.clone_from_snapshot(s2, c, 16 * MIB, true).unwrap();
        assert!(e.holds(&e.vol(c), 0xaa, 0, MIB), "{kind}");
        assert!(e.holds(&e.vol(c), 0xbb, MIB, MIB), "{kind}");

        // Deleting s2 too: vol and c still read through both files.
        b.snapshot_delete(s2).unwrap();
        assert!(e.holds(&v, 0xbb, MIB, MIB), "{kind}");
        assert!(e.holds(&e.vol(c), 0xaa, 0, MIB), "{kind}");
        e.check_all();
        // Once the last dependants go, gc frees the whole chain.
        b.delete(c).unwrap();
        b.delete(vol).unwrap();
        assert!(e.files_in("snapshots").is_empty(), "{kind}");
        assert!(e.files_in("volumes").is_empty(), "{kind}");
    }
}

#[test]
fn a_half_done_snapshot_create_is_completed_by_the_retry() {
    // qcow2: the crash came after `volumes/V` was renamed to `snapshots/S`
    // and before the new overlay was in place (a half-built temporary
    // overlay may be lying around).
    let e = env("qcow2");
    let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
    e.b.create(vol, 32 * MIB).unwrap();
    e.write(&e.vol(vol), 0xaa, 0, 4 * MIB);
    fs::rename(e.b.volume_path(vol), e.snap_path(snap)).unwrap();
    fs::write(e.data.join("volumes").join(format!("{vol}.tmp")), b"half").unwrap();
    assert_eq!(e.b.virtual_size(vol).unwrap(), None);

    e.b.snapshot_create(vol, snap).unwrap();
    assert_eq!(e.b.virtual_size(vol).unwrap(), Some(32 * MIB));
    assert!(e.holds(&e.vol(vol), 0xaa, 0, 4 * MIB));
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(e.vol(vol))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["backing-filename"], format!("../snapshots/{snap}"));
    // Writing the volume leaves the snapshot alone.
    e.write(&e.vol(vol), 0xbb, 0, 4 * MIB);
    assert!(e.holds(&e.snap_path(snap), 0xaa, 0, 4 * MIB));
    e.b.snapshot_create(vol, snap).unwrap();
    assert!(
        e.holds(&e.vol(vol), 0xbb, 0, 4 * MIB),
        "a retry changes nothing"
    );
    e.check_all();

    // raw: the crash came in the middle of the copy; the retry redoes it.
    let e = env("raw");
    let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
    e.b.create(vol, 32 * MIB).unwrap();
    e.write(&e.vol(vol), 0xaa, 0, 4 * MIB);
    fs::write(
        e.data.join("snapshots").join(format!("{snap}.tmp")),
        b"half",
    )
    .unwrap();
    assert!(!e.b.snapshot_exists(snap));
    e.b.snapshot_create(vol, snap).unwrap();
    assert!(e.holds(&e.snap_path(snap), 0xaa, 0, 4 * MIB));
    assert_eq!(fs::metadata(e.snap_path(snap)).unwrap().len(), 32 * MIB);
}

#[test]
fn a_crash_inside_gc_leaves_nothing_broken() {
    // The snapshot file was removed but its tombstone was not: the snapshot
    // is gone for good, and the next gc tidies the tombstone.
    let e = env("qcow2");
    let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
    e.b.create(vol, 8 * MIB).unwrap();
    e.b.snapshot_create(vol, snap).unwrap();
    e.b.snapshot_delete(snap).unwrap();
    assert!(e.b.snapshot_exists(snap), "vol depends on it");
    fs::remove_file(e.b.volume_path(vol)).unwrap();
    fs::remove_file(e.snap_path(snap)).unwrap();
    e.b.delete(vol).unwrap();
    assert!(!e.b.snapshot_exists(snap));
    assert!(e.files_in("snapshots").is_empty());
}

#[test]
fn the_data_dir_can_move() {
    // Backing paths are relative, so a moved data dir keeps its chains.
    let tmp = tempfile::tempdir().unwrap();
    let (vol, snap, clone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    {
        let b = open_backend("qcow2", &tmp.path().join("a")).unwrap();
        b.create(vol, 8 * MIB).unwrap();
        let out = Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", "write -P 0xaa 0 1M"])
            .arg(b.active_path(vol))
            .output()
            .unwrap();
        assert!(out.status.success());
        b.snapshot_create(vol, snap).unwrap();
        b.clone_from_snapshot(snap, clone, 8 * MIB, true).unwrap();
    }
    fs::rename(tmp.path().join("a"), tmp.path().join("b")).unwrap();
    let e = Env {
        data: tmp.path().join("b"),
        b: open_backend("qcow2", &tmp.path().join("b")).unwrap(),
        _tmp: tmp,
    };
    assert!(e.holds(&e.vol(vol), 0xaa, 0, MIB));
    assert!(e.holds(&e.vol(clone), 0xaa, 0, MIB));
    e.b.rollback(vol, snap).unwrap();
    assert!(e.holds(&e.vol(vol), 0xaa, 0, MIB));
    e.check_all();
}

#[test]
fn deleting_a_snapshot_while_a_full_clone_copies_it() {
    // Either order is allowed; neither may break the clone or leak the file.
    let e = env("qcow2");
    let (vol, snap, full) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    e.b.create(vol, 256 * MIB).unwrap();
    e.write(&e.vol(vol), 0xaa, 0, 128 * MIB);
    e.b.snapshot_create(vol, snap).unwrap();
    e.b.delete(vol).unwrap();
    let cloned = std::thread::scope(|s| {
        let copy = s.spawn(|| e.b.clone_from_snapshot(snap, full, 256 * MIB, false));
        std::thread::sleep(std::time::Duration::from_millis(20));
        e.b.snapshot_delete(snap).unwrap();
        copy.join().unwrap()
    });
    eprintln!("full clone during snapshot_delete: {cloned:?}");
    if cloned.is_ok() {
        assert!(e.holds(&e.vol(full), 0xaa, 0, 128 * MIB));
        assert!(e.holds(&e.vol(full), 0, 128 * MIB, 128 * MIB));
    }
    assert!(!e.b.snapshot_exists(snap), "collected once the copy ended");
    assert!(e.files_in("snapshots").is_empty());
    e.check_all();
}

/// A volume cloned from a volume holds the source's bytes as of the clone;
/// writes to either side do not show in the other; the clone is idempotent
/// (at-least-once executor); deleting the volumes in either order leaves no
/// file behind.
#[test]
fn a_clone_of_a_volume_keeps_the_source_bytes_and_leaves_no_files() {
    for kind in kinds() {
        for source_first in [true, false] {
            let e = env(kind);
            let b = &e.b;
            let (src, clone) = (Uuid::new_v4(), Uuid::new_v4());
            b.create(src, 64 * MIB).unwrap();
            e.write(&e.vol(src), 0xaa, 0, 4 * MIB);
            e.write(&e.vol(src), 0xab, 32 * MIB, MIB);

            b.clone_from_volume(src, clone, 128 * MIB).unwrap();
            // Run twice, as a replayed request would.
            b.clone_from_volume(src, clone, 128 * MIB).unwrap();
            assert_eq!(b.virtual_size(clone).unwrap(), Some(128 * MIB));
            assert!(
                b.clone_from_volume(src, clone, 256 * MIB).is_err(),
                "{kind}: an existing smaller clone is not silently reused"
            );
            // The internal snapshot is not in the catalogue.
            assert!(!b.snapshot_exists(executor::backend::clone_base_id(clone)) || e.qcow2());

            // The source changes afterwards; the clone keeps the old bytes.
            e.write(&e.vol(src), 0xbb, 0, 4 * MIB);
            assert!(e.holds(&e.vol(src), 0xbb, 0, 4 * MIB), "{kind}");
            assert!(e.holds(&e.vol(clone), 0xaa, 0, 4 * MIB), "{kind}");
            assert!(e.holds(&e.vol(clone), 0xab, 32 * MIB, MIB), "{kind}");
            assert!(e.holds(&e.vol(clone), 0x00, 64 * MIB, 64 * MIB), "{kind}");
            // And the other way round.
            e.write(&e.vol(clone), 0xcc, MIB, MIB);
            assert!(e.holds(&e.vol(src), 0xbb, 0, 4 * MIB), "{kind}");
            assert!(e.holds(&e.vol(clone), 0xcc, MIB, MIB), "{kind}");
            // A snapshot of the source taken later still works.
            let snap = Uuid::new_v4();
            b.snapshot_create(src, snap).unwrap();
            b.snapshot_delete(snap).unwrap();
            e.check_all();

            let (first, second) = if source_first {
                (src, clone)
            } else {
                (clone, src)
            };
            b.delete(first).unwrap();
            e.check_all();
            if second == clone {
                assert!(e.holds(&e.vol(clone), 0xaa, 0, MIB), "{kind}");
                assert!(e.holds(&e.vol(clone), 0xcc, MIB, MIB), "{kind}");
            } else {
                assert!(e.holds(&e.vol(src), 0xbb, 0, 4 * MIB), "{kind}");
                assert!(e.holds(&e.vol(src), 0xab, 32 * MIB, MIB), "{kind}");
            }
            b.delete(second).unwrap();
            assert!(e.files_in("volumes").is_empty(), "{kind}");
            assert!(e.files_in("snapshots").is_empty(), "{kind}");
        }
    }
}

/// A crash after the internal snapshot and before the clone: the retry
/// finishes the clone and still removes the snapshot from the catalogue.
#[test]
fn a_half_done_clone_of_a_volume_is_completed_by_the_retry() {
    for kind in kinds() {
        let e = env(kind);
        let b = &e.b;
        let (src, clone) = (Uuid::new_v4(), Uuid::new_v4());
        b.create(src, 16 * MIB).unwrap();
        e.write(&e.vol(src), 0x5a, 0, MIB);
        let base = executor::backend::clone_base_id(clone);
        assert_eq!(base, executor::backend::clone_base_id(clone));
        if e.qcow2() {
            b.snapshot_create(src, base).unwrap(); // the first attempt's step 1
        }
        b.clone_from_volume(src, clone, 16 * MIB).unwrap();
        assert!(e.holds(&e.vol(clone), 0x5a, 0, MIB), "{kind}");
        assert!(!b.snapshot_exists(base) || e.qcow2(), "{kind}");
        b.delete(src).unwrap();
        b.delete(clone).unwrap();
        assert!(e.files_in("volumes").is_empty(), "{kind}");
        assert!(e.files_in("snapshots").is_empty(), "{kind}");
    }
}

/// A full snapshot (`is_full`) stands alone: no backing chain under its
/// file, the same bytes, the volume and later snapshots unaffected, and
/// the chain below it can go without it; flattening twice is flattening
/// once.
#[test]
fn a_full_snapshot_stands_alone() {
    for kind in kinds() {
        let e = env(kind);
        let b = &e.b;
        let (vol, s1, s2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        b.create(vol, 16 * MIB).unwrap();
        e.write(&e.vol(vol), 0xaa, 0, MIB);
        b.snapshot_create(vol, s1).unwrap();
        e.write(&e.vol(vol), 0xbb, MIB, MIB);
        b.snapshot_create(vol, s2).unwrap();
        b.snapshot_flatten(s2).unwrap();
        b.snapshot_flatten(s2).unwrap();
        e.write(&e.vol(vol), 0xcc, 2 * MIB, MIB);
        let p2 = e.snap_path(s2);
        if e.qcow2() {
            let out = Command::new("qemu-img")
                .args(["info", "-U", "--output=json"])
                .arg(&p2)
                .output()
                .unwrap();
            let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(info["backing-filename"].is_null(), "{info}");
        }
        assert!(
            e.holds(&p2, 0xaa, 0, MIB) && e.holds(&p2, 0xbb, MIB, MIB),
            "{kind}"
        );
        let v = e.vol(vol);
        assert!(e.holds(&v, 0xaa, 0, MIB), "{kind}");
        assert!(e.holds(&v, 0xbb, MIB, MIB), "{kind}");
        assert!(e.holds(&v, 0xcc, 2 * MIB, MIB), "{kind}");
        // The layer below can go; s2 and the volume do not need it.
        b.snapshot_delete(s1).unwrap();
        b.rollback(vol, s2).unwrap();
        assert!(
            e.holds(&v, 0xbb, MIB, MIB) && e.holds(&v, 0, 2 * MIB, MIB),
            "{kind}"
        );
        e.check_all();
        b.snapshot_delete(s2).unwrap();
        b.delete(vol).unwrap();
        assert!(e.files_in("snapshots").is_empty(), "{kind}");
        assert!(e.files_in("volumes").is_empty(), "{kind}");
    }
}

/// `open` returns before the chain map is built (it reads every image's
/// header on a thread of its own, issue 11): operations issued at once
/// wait for the map, and what they record survives its arrival. A linked
/// clone made right after the start still holds its snapshot when the
/// snapshot is deleted and the volume it was taken of goes.
#[test]
fn operations_right_after_open_wait_for_the_chain_map() {
    use executor::backend::Qcow2Backend;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (vol, snap, linked) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    {
        let b = open_backend("qcow2", &data).unwrap();
        b.create(vol, MIB).unwrap();
        b.snapshot_create(vol, snap).unwrap();
        // Headers for the start to read while the operations below run.
        for _ in 0..300 {
            b.create(Uuid::new_v4(), MIB).unwrap();
        }
    }
    let b = Qcow2Backend::open(data.join("volumes")).unwrap();
    b.clone_from_snapshot(snap, linked, MIB, true).unwrap();
    b.snapshot_delete(snap).unwrap();
    b.delete(vol).unwrap();
    let snap_file = data.join("snapshots").join(snap.to_string());
    assert!(snap_file.exists(), "the linked clone stands on it");
    b.delete(linked).unwrap();
    assert!(!snap_file.exists(), "nothing stands on it any more");
}

/// Issue 15: whether a tombstoned snapshot can go is a lookup in the chain
/// map, not a read of every image. With a deleted snapshot that a volume
/// and a linked clone still stand on, deleting an unrelated volume, the
/// clone, then the volume (which frees the snapshot) reads exactly as many
/// image headers beside 500 other volumes as beside 5: none.
#[test]
fn deletes_beside_a_tombstone_read_no_other_image() {
    use executor::backend::Qcow2Backend;
    let mut costs = Vec::new();
    for others in [5u64, 500] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (vol, snap, linked, victim) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        {
            let b = open_backend("qcow2", &data).unwrap();
            b.create(vol, MIB).unwrap();
            b.snapshot_create(vol, snap).unwrap();
            b.clone_from_snapshot(snap, linked, MIB, true).unwrap();
            b.snapshot_delete(snap).unwrap();
            for _ in 0..others {
                b.create(Uuid::new_v4(), MIB).unwrap();
            }
            b.create(victim, MIB).unwrap();
        }
        // A fresh start reads every header once, to build the map.
        let b = Qcow2Backend::open(data.join("volumes")).unwrap();
        b.wait_built();
        let images = others + 4; // vol, snap, linked, victim
        assert_eq!(b.header_reads(), images);
        let snap_file = data.join("snapshots").join(snap.to_string());

        let before = b.header_reads();
        b.delete(victim).unwrap();
        assert!(snap_file.exists(), "vol and linked stand on it");
        b.delete(linked).unwrap();
        assert!(snap_file.exists(), "vol stands on it");
        b.delete(vol).unwrap();
        assert!(!snap_file.exists(), "nothing stands on it any more");
        assert!(!b.snapshot_exists(snap));
        costs.push(b.header_reads() - before);
    }
    assert_eq!(
        costs,
        [0, 0],
        "header reads by the deletes, 5 then 500 others"
    );
}

/// The map is rebuilt from the files at every start, so a crash between a
/// file's removal and the collection it allows loses nothing: after the
/// restart the next operation collects what the dead server could not.
#[test]
fn a_restart_collects_what_a_crash_left() {
    let e = env("qcow2");
    let (vol, s1, s2, other) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    e.b.create(vol, 8 * MIB).unwrap();
    e.b.create(other, 8 * MIB).unwrap();
    e.b.snapshot_create(vol, s1).unwrap();
    e.b.snapshot_create(vol, s2).unwrap();
    e.b.snapshot_delete(s1).unwrap();
    e.b.snapshot_delete(s2).unwrap();
    assert!(e.snap_path(s1).exists() && e.snap_path(s2).exists());
    // The server died right after unlinking the volume, before its gc; and
    // an earlier gc died between a snapshot file and its tombstone.
    fs::remove_file(e.b.volume_path(vol)).unwrap();
    let (s3, v3) = (Uuid::new_v4(), Uuid::new_v4());
    e.b.create(v3, 8 * MIB).unwrap();
    e.b.snapshot_create(v3, s3).unwrap();
    e.b.delete(v3).unwrap();
    fs::remove_file(e.snap_path(s3)).unwrap();
    fs::write(e.data.join("snapshots").join(format!("{s3}.deleted")), b"").unwrap();

    let b = open_backend("qcow2", &e.data).unwrap();
    // Any operation that collects: here the delete of a missing volume.
    b.delete(vol).unwrap();
    assert!(
        e.files_in("snapshots").is_empty(),
        "{:?}",
        e.files_in("snapshots")
    );
    assert_eq!(e.files_in("volumes"), [other.to_string()]);
    assert_eq!(b.virtual_size(other).unwrap(), Some(8 * MIB));
}
