//! The native qcow2 writer against `qemu-img` itself: for sizes at every
//! edge (512-byte rounding, one L2 table's reach, several L1 clusters, the
//! 2 PiB limit), an image written natively is byte for byte what
//! `qemu-img create` writes, `qemu-img check` finds no error and no leak
//! (also after data was written into it), `qemu-img info` reports the same
//! size, backing file, backing format and compat level, and data written
//! through `qemu-io` and `qemu-img convert` reads back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use executor::qcow2;
use serde_json::Value;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

fn sizes() -> Vec<u64> {
    vec![
        0,
        1,
        511,
        512,
        513,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        512 * MIB - 1,
        512 * MIB,
        512 * MIB + 1,
        GIB,
        GIB + 512,
        10 * GIB + 3,
        TIB,
        4 * TIB + 1,
        16 * TIB,
        32 * TIB,
        qcow2::MAX_VIRTUAL_SIZE,
    ]
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn qemu_create(path: &Path, size: u64, backing: Option<&str>) {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", "qcow2"]);
    if let Some(b) = backing {
        cmd.args(["-F", "qcow2", "-b", b]);
    }
    run(cmd.arg(path).arg(size.to_string()));
}

fn info(path: &Path) -> Value {
    let out = run(Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", "qcow2"])
        .arg(path));
    serde_json::from_slice(&out).unwrap()
}

/// `qemu-img check`: exit 0, no corruption, no leak.
fn check(path: &Path) {
    let out = Command::new("qemu-img")
        .args(["check", "-U", "--output=json", "-f", "qcow2"])
        .arg(path)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success()
            && report["check-errors"] == 0
            && report.get("corruptions").is_none()
            && report.get("leaks").is_none(),
        "qemu-img check {}: {report} {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fields of `qemu-img info` that say what an image is (not where).
fn meaning(v: &Value) -> Value {
    let data = &v["format-specific"]["data"];
    serde_json::json!({
        "virtual-size": v["virtual-size"],
        "format": v["format"],
        "cluster-size": v["cluster-size"],
        "backing-filename": v["backing-filename"],
        "backing-filename-format": v["backing-filename-format"],
        "compat": data["compat"],
        "lazy-refcounts": data["lazy-refcounts"],
        "refcount-bits": data["refcount-bits"],
        "compression-type": data["compression-type"],
        "extended-l2": data["extended-l2"],
        "dirty-flag": v["dirty-flag"],
    })
}

struct Dirs {
    _tmp: tempfile::TempDir,
    volumes: PathBuf,
    snapshots: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let volumes = tmp.path().join("volumes");
    let snapshots = tmp.path().join("snapshots");
    fs::create_dir_all(&volumes).unwrap();
    fs::create_dir_all(&snapshots).unwrap();
    Dirs {
        _tmp: tmp,
        volumes,
        snapshots,
    }
}

#[test]
fn empty_images_are_what_qemu_img_create_writes() {
    let d = dirs();
    for size in sizes() {
        let (native, tool) = (d.volumes.join("native"), d.volumes.join("tool"));
        qcow2::create(&native, size, None).unwrap();
        qemu_create(&tool, size, None);
        assert!(
            fs::read(&native).unwrap() == fs::read(&tool).unwrap(),
            "size {size}: the files differ"
        );
        check(&native);
        let (n, t) = (info(&native), info(&tool));
        assert_eq!(meaning(&n), meaning(&t), "size {size}");
        assert_eq!(n["virtual-size"], size.div_ceil(512) * 512);
        assert_eq!(n["format-specific"]["data"]["compat"], "1.1");
        let h = qcow2::read_header(&native).unwrap();
        assert_eq!(h.virtual_size, size.div_ceil(512) * 512);
        assert_eq!(h.backing_file, None);
    }
    // Past the limit both refuse.
    let too_big = qcow2::MAX_VIRTUAL_SIZE + 512;
    assert!(qcow2::create(&d.volumes.join("big"), too_big, None).is_err());
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(d.volumes.join("big2"))
        .arg(too_big.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn overlays_are_what_qemu_img_create_writes() {
    let d = dirs();
    let base = d.snapshots.join("7d5ef7f4-5a1b-4e5e-9d38-0f6b1c7d2a11");
    qcow2::create(&base, GIB, None).unwrap();
    let backing = "../snapshots/7d5ef7f4-5a1b-4e5e-9d38-0f6b1c7d2a11";
    for size in sizes().into_iter().filter(|&s| s >= GIB) {
        let (native, tool) = (d.volumes.join("native"), d.volumes.join("tool"));
        qcow2::create(&native, size, Some(backing)).unwrap();
        qemu_create(&tool, size, Some(backing));
        assert!(
            fs::read(&native).unwrap() == fs::read(&tool).unwrap(),
            "size {size}: the files differ"
        );
        check(&native);
        let (n, t) = (info(&native), info(&tool));
        assert_eq!(meaning(&n), meaning(&t), "size {size}");
        assert_eq!(n["backing-filename"], backing);
        assert_eq!(n["backing-filename-format"], "qcow2");
        let h = qcow2::read_header(&native).unwrap();
        assert_eq!(h.backing_file.as_deref(), Some(backing));
        assert_eq!(h.virtual_size, size.div_ceil(512) * 512);
    }
}

fn io(path: &Path, cmd: &str) -> String {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", cmd])
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qemu-io {cmd}: {text}");
    text
}

fn holds(path: &Path, byte: u8, off: u64, len: u64) -> bool {
    let out = Command::new("qemu-io")
        .args(["-r", "-U", "-f", "qcow2", "-c"])
        .arg(format!("read -P {byte:#04x} {off} {len}"))
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    out.status.success() && !text.contains("Pattern verification failed")
}

#[test]
fn data_written_into_native_images_reads_back() {
    let d = dirs();
    for size in [MIB + 512, GIB, TIB, 16 * TIB] {
        let img = d.snapshots.join("9b2f6a0e-3c4d-4b8a-8f1e-2d3c4b5a6f70");
        qcow2::create(&img, size, None).unwrap();
        // The first and the last cluster, and a run across an L2 boundary
        // where the image is large enough to have one.
        io(&img, "write -P 0xaa 0 64k");
        io(&img, &format!("write -P 0xab {} 512", size - 512));
        if size > GIB {
            io(
                &img,
                &format!("write -P 0xac {} 1M", 512 * MIB - 512 * 1024),
            );
        }
        check(&img);
        assert!(holds(&img, 0xaa, 0, 64 * 1024), "{size}");
        assert!(holds(&img, 0xab, size - 512, 512), "{size}");
        assert!(holds(&img, 0, 64 * 1024, 64 * 1024), "{size}");
        // The checker is not vacuous.
        assert!(!holds(&img, 0xab, 0, 512), "{size}");

        // An overlay reads through to it and keeps its own writes.
        let ov = d.volumes.join("overlay");
        qcow2::create(
            &ov,
            size + GIB,
            Some("../snapshots/9b2f6a0e-3c4d-4b8a-8f1e-2d3c4b5a6f70"),
        )
        .unwrap();
        assert!(holds(&ov, 0xaa, 0, 64 * 1024), "{size}");
        assert!(holds(&ov, 0xab, size - 512, 512), "{size}");
        assert!(
            holds(&ov, 0, size, MIB),
            "{size}: the grown tail reads zeros"
        );
        io(&ov, "write -P 0xcc 4k 4k");
        assert!(holds(&ov, 0xcc, 4096, 4096), "{size}");
        assert!(
            holds(&img, 0xaa, 4096, 4096),
            "{size}: the base is untouched"
        );
        check(&ov);

        // qemu-img convert flattens the chain into another native image
        // (-n: into the existing target), and the copy holds the same bytes.
        // Into an existing target convert visits every cluster of the
        // virtual size (about 2 minutes for 16 TiB), so only small ones.
        let copy = d.volumes.join("copy");
        qcow2::create(&copy, size + GIB, None).unwrap();
        if size <= GIB {
            run(Command::new("qemu-img")
                .args(["convert", "-n", "-f", "qcow2", "-O", "qcow2"])
                .arg(&ov)
                .arg(&copy));
            check(&copy);
            assert!(holds(&copy, 0xaa, 0, 4096), "{size}");
            assert!(holds(&copy, 0xcc, 4096, 4096), "{size}");
            assert!(holds(&copy, 0xab, size - 512, 512), "{size}");
        }
        let h = qcow2::read_header(&copy).unwrap();
        assert_eq!((h.virtual_size, h.backing_file), (size + GIB, None));
        // Committing the overlay into its base (qemu-img commit) works too.
        run(Command::new("qemu-img").args(["commit", "-q"]).arg(&ov));
        assert!(holds(&img, 0xcc, 4096, 4096), "{size}");
        check(&img);
        for p in [&img, &ov, &copy] {
            fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn raw_round_trip_through_convert() {
    // Bytes in, through a native image, bytes out.
    let d = dirs();
    let raw_in = d.volumes.join("in.raw");
    let pattern: Vec<u8> = (0..3 * MIB as usize + 777)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    fs::write(&raw_in, &pattern).unwrap();
    let img = d.volumes.join("img");
    qcow2::create(&img, pattern.len() as u64, None).unwrap();
    run(Command::new("qemu-img")
        .args(["convert", "-n", "-f", "raw", "-O", "qcow2"])
        .arg(&raw_in)
        .arg(&img));
    check(&img);
    let raw_out = d.volumes.join("out.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&img)
        .arg(&raw_out));
    let back = fs::read(&raw_out).unwrap();
    // The image rounds the size up to 512; the tail reads zeros.
    assert_eq!(
        back.len() as u64,
        (pattern.len() as u64).div_ceil(512) * 512
    );
    assert!(back[..pattern.len()] == pattern[..]);
    assert!(back[pattern.len()..].iter().all(|&b| b == 0));
}

#[test]
fn resize_of_a_native_image_works() {
    let d = dirs();
    let img = d.volumes.join("img");
    qcow2::create(&img, GIB, None).unwrap();
    io(&img, "write -P 0x11 0 1M");
    run(Command::new("qemu-img")
        .args(["resize", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg((20 * TIB).to_string()));
    check(&img);
    assert_eq!(qcow2::read_header(&img).unwrap().virtual_size, 20 * TIB);
    assert!(holds(&img, 0x11, 0, MIB));
}
