//! Image files, checked by their bytes: exports of a qcow2 volume, of an
//! overlay whose backing chain goes through `../snapshots/`, of a snapshot
//! and of a raw sparse volume must be identical to the source for
//! `qemu-img compare`, in the right format, with the checksum of the file;
//! imports must round-trip and refuse data that is not what it claims;
//! volumes written from images must read back the pattern.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use executor::backend::open_backend;
use executor::images::{DiskFormat, ImageError, ImageInfo, ImageStore};
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const FORMATS: [DiskFormat; 3] = [DiskFormat::Raw, DiskFormat::Qcow2, DiskFormat::Vhd];

fn tool(prog: &str, args: &[&str]) -> std::process::Output {
    Command::new(prog).args(args).output().unwrap()
}

fn ok(prog: &str, args: &[&str]) -> String {
    let out = tool(prog, args);
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn qemu_io(format: &str, path: &Path, cmds: &[&str]) {
    let mut args = vec!["-f", format];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(s(path));
    let out = ok("qemu-io", &args);
    // qemu-io reports a failed `read -P` on stdout, with exit status 0.
    assert!(
        !out.contains("Pattern verification failed") && !out.contains("failed"),
        "qemu-io {args:?}: {out}"
    );
}

/// The test pattern: 4 MiB of 0xaa at 0, 1 MiB of 0x55 at 1 GiB.
const WRITE: [&str; 2] = ["write -P 0xaa 0 4M", "write -P 0x55 1G 1M"];
const READ: [&str; 2] = ["read -P 0xaa 0 4M", "read -P 0x55 1G 1M"];

fn info_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&ok("qemu-img", &["info", "--output=json", s(path)])).unwrap()
}

/// The reference checksum, from an independent implementation.
fn sha256(path: &Path) -> String {
    ok("sha256sum", &[s(path)])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    store: ImageStore,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for d in ["volumes", "snapshots"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    let store = ImageStore::open(&data).unwrap();
    Env {
        _tmp: tmp,
        data,
        store,
    }
}

impl Env {
    /// A 2 GiB qcow2 volume with the pattern.
    fn plain_volume(&self) -> PathBuf {
        let v = self.data.join("volumes").join(Uuid::new_v4().to_string());
        ok("qemu-img", &["create", "-q", "-f", "qcow2", s(&v), "2G"]);
        qemu_io("qcow2", &v, &WRITE);
        v
    }

    /// A 2 GiB overlay at volumes/<v> backed by `../snapshots/<s>`, as the
    /// qcow2 backend lays them out: half the pattern in each layer, so only
    /// a flattened copy of the whole chain has all of it.
    fn overlay_volume(&self) -> PathBuf {
        let snap = Uuid::new_v4();
        let base = self.data.join("snapshots").join(snap.to_string());
        ok("qemu-img", &["create", "-q", "-f", "qcow2", s(&base), "2G"]);
        qemu_io("qcow2", &base, &[WRITE[0], "write -P 0x11 1G 1M"]);
        let v = self.data.join("volumes").join(Uuid::new_v4().to_string());
        let backing = format!("../snapshots/{snap}");
        ok(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                &backing,
                s(&v),
                "2G",
            ],
        );
        qemu_io("qcow2", &v, &[WRITE[1]]);
        assert_eq!(info_json(&v)["backing-filename"], backing.as_str());
        v
    }

    fn export(
        &self,
        src: &Path,
        src_fmt: &str,
        image: Uuid,
        fmt: DiskFormat,
    ) -> (ImageInfo, Vec<u8>) {
        let mut seen = Vec::new();
        let info = self
            .store
            .export(src, src_fmt, image, fmt, &mut |p| seen.push(p))
            .unwrap();
        (info, seen)
    }
}

/// Everything an export must be: same guest bytes, the right format, no
/// backing file, the checksum of the file, the right sizes, a progress
/// sequence that is monotonic and ends at 100, and no copy of holes.
fn check_export(e: &Env, src: &Path, src_fmt: &str, fmt: DiskFormat) -> Uuid {
    let image = Uuid::new_v4();
    let (info, seen) = e.export(src, src_fmt, image, fmt);
    let out = e.store.path(image);
    ok(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            src_fmt,
            "-F",
            fmt.qemu_name(),
            s(src),
            s(&out),
        ],
    );
    let qi = info_json(&out);
    assert_eq!(qi["format"], fmt.qemu_name(), "{fmt}");
    assert!(qi.get("backing-filename").is_none(), "{fmt}: flattened");
    assert_eq!(info.disk_format, fmt);
    assert_eq!(info.checksum_sha256, sha256(&out), "{fmt}");
    assert_eq!(info.size, fs::metadata(&out).unwrap().len(), "{fmt}");
    assert_eq!(info.virtual_size, 2 * GIB, "{fmt}");
    assert_eq!(qi["virtual-size"].as_u64(), Some(2 * GIB), "{fmt}");
    assert_eq!(seen.first(), Some(&0), "{fmt}: {seen:?}");
    assert_eq!(seen.last(), Some(&100), "{fmt}: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{fmt}: {seen:?}");
    // 5 MiB of data: whatever the format, the copy holds about that much.
    assert!(allocated(&out) < 32 * MIB, "{fmt}: {}", allocated(&out));
    assert_eq!(e.store.info(image).unwrap(), Some(info));
    image
}

#[test]
fn exports_of_a_qcow2_volume_are_faithful_in_every_format() {
    let e = env();
    let v = e.plain_volume();
    for fmt in FORMATS {
        check_export(&e, &v, "qcow2", fmt);
    }
}

#[test]
fn an_overlay_is_exported_with_its_whole_backing_chain() {
    let e = env();
    let v = e.overlay_volume();
    for fmt in FORMATS {
        let image = check_export(&e, &v, "qcow2", fmt);
        // The top layer's 0x55 hides the base's 0x11; both layers show.
        qemu_io(fmt.qemu_name(), &e.store.path(image), &READ);
    }
}

#[test]
fn a_snapshot_exports_its_frozen_content() {
    let e = env();
    let b = open_backend("qcow2", &e.data).unwrap();
    let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
    b.create(vol, 2 * GIB).unwrap();
    qemu_io("qcow2", &b.active_path(vol), &WRITE);
    b.snapshot_create(vol, snap).unwrap();
    qemu_io("qcow2", &b.active_path(vol), &["write -P 0x77 0 4M"]);
    let snap_file = e.data.join("snapshots").join(snap.to_string());
    let image = check_export(&e, &snap_file, "qcow2", DiskFormat::Qcow2);
    qemu_io("qcow2", &e.store.path(image), &READ);
    // …and the volume's export has the newer data.
    let image = check_export(&e, &b.active_path(vol), "qcow2", DiskFormat::Qcow2);
    qemu_io(
        "qcow2",
        &e.store.path(image),
        &["read -P 0x77 0 4M", READ[1]],
    );
}

#[test]
fn a_raw_sparse_volume_exports_in_every_format() {
    let e = env();
    let b = open_backend("raw", &e.data).unwrap();
    let vol = Uuid::new_v4();
    b.create(vol, 2 * GIB).unwrap();
    let v = b.active_path(vol);
    qemu_io("raw", &v, &WRITE);
    assert!(allocated(&v) < 16 * MIB, "the source is sparse");
    for fmt in FORMATS {
        let image = check_export(&e, &v, "raw", fmt);
        qemu_io(fmt.qemu_name(), &e.store.path(image), &READ);
    }
}

#[test]
fn export_is_idempotent() {
    let e = env();
    let v = e.plain_volume();
    for fmt in FORMATS {
        let image = Uuid::new_v4();
        let (first, _) = e.export(&v, "qcow2", image, fmt);
        let ino = fs::metadata(e.store.path(image)).unwrap().ino();
        let (again, seen) = e.export(&v, "qcow2", image, fmt);
        assert_eq!(first, again);
        assert_eq!(seen, vec![100]);
        assert_eq!(
            fs::metadata(e.store.path(image)).unwrap().ino(),
            ino,
            "not rebuilt"
        );
        // The same id in another format is a different request: refused.
        let other = FORMATS.into_iter().find(|f| *f != fmt).unwrap();
        assert!(matches!(
            e.store.export(&v, "qcow2", image, other, &mut |_| {}),
            Err(ImageError::Mismatch(_))
        ));
    }
    let only_images: Vec<_> = fs::read_dir(e.data.join("images"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(only_images.is_empty(), "{only_images:?}");
}

#[test]
fn a_stale_temporary_file_does_not_break_export_and_is_cleaned_up() {
    let e = env();
    let v = e.plain_volume();
    let (image, other) = (Uuid::new_v4(), Uuid::new_v4());
    let dir = e.data.join("images");
    let stale = [
        dir.join(format!("{image}.tmp.0123")),
        dir.join(format!("{other}.tmp.4567")),
    ];
    for p in &stale {
        fs::write(p, b"half an image").unwrap();
    }
    let (info, _) = e.export(&v, "qcow2", image, DiskFormat::Qcow2);
    assert_eq!(e.store.info(image).unwrap(), Some(info.clone()));
    e.store.cleanup_temps().unwrap();
    e.store.cleanup_temps().unwrap();
    for p in &stale {
        assert!(!p.exists(), "{}", p.display());
    }
    assert_eq!(e.store.info(image).unwrap(), Some(info));
    ok(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            s(&v),
            s(&e.store.path(image)),
        ],
    );
}

#[test]
fn export_of_a_missing_source_or_format_is_an_error() {
    let e = env();
    let missing = e.data.join("volumes").join(Uuid::new_v4().to_string());
    let image = Uuid::new_v4();
    assert!(matches!(
        e.store
            .export(&missing, "qcow2", image, DiskFormat::Raw, &mut |_| {}),
        Err(ImageError::NotFound(_))
    ));
    let v = e.plain_volume();
    assert!(matches!(
        e.store
            .export(&v, "vmdk", image, DiskFormat::Raw, &mut |_| {}),
        Err(ImageError::Invalid(_))
    ));
    // qemu-img refusing the source (not a qcow2 file) leaves nothing behind.
    let junk = e.data.join("volumes").join(Uuid::new_v4().to_string());
    fs::write(&junk, vec![7u8; 1 << 16]).unwrap();
    let r = e
        .store
        .export(&junk, "qcow2", image, DiskFormat::Qcow2, &mut |_| {});
    assert!(matches!(r, Err(ImageError::Tool { .. })), "{r:?}");
    assert_eq!(e.store.info(image).unwrap(), None);
    assert_eq!(fs::read_dir(e.data.join("images")).unwrap().count(), 0);
}

#[test]
fn import_round_trips_every_format() {
    let e = env();
    let v = e.overlay_volume();
    for fmt in FORMATS {
        let exported = Uuid::new_v4();
        let (ex, _) = e.export(&v, "qcow2", exported, fmt);
        // Upload the exported file's bytes as a new image.
        let new = Uuid::new_v4();
        let mut upload = fs::File::open(e.store.path(exported)).unwrap();
        let info = e.store.import(new, fmt, &mut upload).unwrap();
        assert_eq!(info.checksum_sha256, ex.checksum_sha256, "{fmt}");
        assert_eq!(info.size, ex.size, "{fmt}");
        assert_eq!(info.virtual_size, ex.virtual_size, "{fmt}");
        assert_eq!(info.disk_format, fmt);
        assert_eq!(info.checksum_sha256, sha256(&e.store.path(new)), "{fmt}");
        // Zeros did not become allocated blocks.
        assert!(allocated(&e.store.path(new)) < 32 * MIB, "{fmt}: sparse");
        // Again, with the data already gone: the image is there, so done.
        let again = e.store.import(new, fmt, &mut std::io::empty()).unwrap();
        assert_eq!(again, info);
        assert_eq!(e.store.info(new).unwrap(), Some(info));
        qemu_io(fmt.qemu_name(), &e.store.path(new), &READ);
    }
}

#[test]
fn import_refuses_bytes_that_are_not_the_declared_format() {
    let e = env();
    // Small: only the headers matter here.
    let v = e.data.join("volumes").join(Uuid::new_v4().to_string());
    ok("qemu-img", &["create", "-q", "-f", "qcow2", s(&v), "64M"]);
    qemu_io("qcow2", &v, &["write -P 0xaa 0 4M"]);
    let sources: Vec<(DiskFormat, Uuid)> = FORMATS
        .into_iter()
        .map(|fmt| {
            let image = Uuid::new_v4();
            e.export(&v, "qcow2", image, fmt);
            (fmt, image)
        })
        .collect();
    for (actual, src) in &sources {
        for declared in FORMATS.into_iter().filter(|f| f != actual) {
            let image = Uuid::new_v4();
            let mut data = fs::File::open(e.store.path(*src)).unwrap();
            let r = e.store.import(image, declared, &mut data);
            assert!(
                matches!(r, Err(ImageError::FormatMismatch { .. })),
                "{actual} as {declared}: {r:?}"
            );
            assert_eq!(e.store.info(image).unwrap(), None);
        }
    }
    // Nothing half-imported is left behind: only the three sources.
    for (_, src) in &sources {
        e.store.delete(*src).unwrap();
    }
    assert_eq!(fs::read_dir(e.data.join("images")).unwrap().count(), 0);
}

#[test]
fn import_refuses_images_that_point_at_other_files() {
    let e = env();
    let evil = e.data.join("evil.qcow2");
    ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/passwd",
            s(&evil),
            "1M",
        ],
    );
    let data = fs::read(&evil).unwrap();
    let image = Uuid::new_v4();
    let r = e
        .store
        .import(image, DiskFormat::Qcow2, &mut data.as_slice());
    assert!(matches!(r, Err(ImageError::Unsafe(_))), "{r:?}");
    assert_eq!(e.store.info(image).unwrap(), None);
}

#[test]
fn a_fixed_vhd_is_recognised() {
    let e = env();
    let v = e.plain_volume();
    let fixed = e.data.join("fixed.vhd");
    ok(
        "qemu-img",
        &[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed,force_size=on",
            s(&v),
            s(&fixed),
        ],
    );
    let image = Uuid::new_v4();
    let info = e
        .store
        .import(image, DiskFormat::Vhd, &mut fs::File::open(&fixed).unwrap())
        .unwrap();
    assert_eq!(info.virtual_size, 2 * GIB);
    qemu_io("vpc", &e.store.path(image), &READ);
}

#[test]
fn images_are_written_into_larger_volumes() {
    let e = env();
    let v = e.overlay_volume();
    for fmt in FORMATS {
        let image = Uuid::new_v4();
        e.export(&v, "qcow2", image, fmt);
        for dest_fmt in ["qcow2", "raw"] {
            let dest = e.data.join("volumes").join(Uuid::new_v4().to_string());
            let mut seen = Vec::new();
            e.store
                .write_into_volume(image, &dest, dest_fmt, 3 * GIB, &mut |p| seen.push(p))
                .unwrap();
            assert_eq!(seen.last(), Some(&100), "{fmt}→{dest_fmt}: {seen:?}");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            let qi = info_json(&dest);
            assert_eq!(qi["format"], dest_fmt);
            assert_eq!(qi["virtual-size"].as_u64(), Some(3 * GIB));
            assert!(qi.get("backing-filename").is_none());
            // The pattern, and zeros in the grown part.
            qemu_io(dest_fmt, &dest, &[READ[0], READ[1], "read -P 0 2G 1M"]);
            assert!(allocated(&dest) < 32 * MIB, "{fmt}→{dest_fmt}: sparse");
            // Idempotent: done already, nothing rebuilt.
            let ino = fs::metadata(&dest).unwrap().ino();
            e.store
                .write_into_volume(image, &dest, dest_fmt, 3 * GIB, &mut |_| {})
                .unwrap();
            assert_eq!(fs::metadata(&dest).unwrap().ino(), ino);
        }
        // Same size as the image: no resize needed.
        let dest = e.data.join("volumes").join(Uuid::new_v4().to_string());
        e.store
            .write_into_volume(image, &dest, "qcow2", 2 * GIB, &mut |_| {})
            .unwrap();
        qemu_io("qcow2", &dest, &READ);
        // Smaller than the image: refused, nothing created.
        let dest = e.data.join("volumes").join(Uuid::new_v4().to_string());
        assert!(matches!(
            e.store
                .write_into_volume(image, &dest, "qcow2", GIB, &mut |_| {}),
            Err(ImageError::Invalid(_))
        ));
        assert!(!dest.exists());
    }
    // No temporaries left in volumes/.
    let tmps: Vec<_> = fs::read_dir(e.data.join("volumes"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(tmps.is_empty(), "{tmps:?}");
    // A missing image is an error; an existing smaller file is not clobbered.
    let dest = e.data.join("volumes").join(Uuid::new_v4().to_string());
    assert!(matches!(
        e.store
            .write_into_volume(Uuid::new_v4(), &dest, "qcow2", GIB, &mut |_| {}),
        Err(ImageError::NotFound(_))
    ));
    ok("qemu-img", &["create", "-q", "-f", "qcow2", s(&dest), "1G"]);
    let image = Uuid::new_v4();
    e.export(&v, "qcow2", image, DiskFormat::Qcow2);
    assert!(matches!(
        e.store
            .write_into_volume(image, &dest, "qcow2", 3 * GIB, &mut |_| {}),
        Err(ImageError::Mismatch(_))
    ));
}

#[test]
fn delete_is_idempotent() {
    let e = env();
    let v = e.plain_volume();
    let image = Uuid::new_v4();
    e.export(&v, "qcow2", image, DiskFormat::Qcow2);
    e.store.delete(image).unwrap();
    e.store.delete(image).unwrap();
    assert_eq!(e.store.info(image).unwrap(), None);
    assert!(!e.store.path(image).exists());
    assert_eq!(fs::read_dir(e.data.join("images")).unwrap().count(), 0);
    // Deleting what never existed succeeds too.
    e.store.delete(Uuid::new_v4()).unwrap();
}
