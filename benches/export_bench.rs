//! Image export cost: a 10 GiB qcow2 volume with 2 GiB written (four 512 MiB
//! chunks spread over the volume) exported with `ImageStore::export` to
//! qcow2 and raw, next to a plain `qemu-img convert` of the same source.
//! Export must copy only the allocated data and run at about convert's
//! speed (it adds an fsync and the sha256 pass over the produced file).
//!
//!     cargo bench --bench export_bench
//!     BENCH_DIR=/work cargo bench --bench export_bench
//!
//! Bytes read from the source: every `qemu-img` is run through a small
//! Python wrapper put first on PATH (for `ImageStore`'s own children too,
//! which the bench cannot otherwise see). The wrapper forks the real
//! qemu-img, waits for it with `waitid(WNOWAIT)` so it stays a zombie, reads
//! its `/proc/<pid>/io` (`rchar`: bytes returned by read syscalls, page cache
//! or not; `read_bytes`: bytes fetched from the block device), then reaps it.
//! Before each run the source is synced and evicted from the page cache
//! (`dd iflag=nocache count=0` = posix_fadvise DONTNEED, no root needed), so
//! `read_bytes` is real disk reads. Both should be ~2 GiB + metadata, not
//! 10 GiB. Without python3 the bench still runs and says "not measured".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use executor::images::{DiskFormat, ImageStore};
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const VIRTUAL: u64 = 10 * GIB;
const CHUNK: u64 = 512 * MIB;
const CHUNKS: [u64; 4] = [0, 3 * GIB, 6 * GIB, 9 * GIB];
const WRITTEN: u64 = CHUNK * CHUNKS.len() as u64;

const WRAPPER: &str = r#"#!/usr/bin/env python3
import os, sys
real, log = os.environ["BENCH_REAL_QEMU_IMG"], os.environ["BENCH_IO_LOG"]
pid = os.fork()
if pid == 0:
    os.execv(real, ["qemu-img"] + sys.argv[1:])
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
io = dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().split("\n") if l)
with open(log, "a") as f:
    f.write(f"{sys.argv[1] if len(sys.argv) > 1 else '-'} {io['rchar']} {io['read_bytes']}\n")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn rate(bytes: u64, d: Duration) -> String {
    format!("{:.0} MiB/s", (bytes / MIB) as f64 / d.as_secs_f64())
}

/// Source bytes read by the `convert` children logged since `from` lines.
struct Io {
    rchar: u64,
    read_bytes: u64,
}

struct Meter {
    log: PathBuf,
    enabled: bool,
}

impl Meter {
    fn lines(&self) -> usize {
        fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn since(&self, from: usize) -> Option<Io> {
        if !self.enabled {
            return None;
        }
        let s = fs::read_to_string(&self.log).ok()?;
        let mut io = Io {
            rchar: 0,
            read_bytes: 0,
        };
        for l in s.lines().skip(from) {
            let f: Vec<&str> = l.split(' ').collect();
            if f.first() == Some(&"convert") {
                io.rchar += f[1].parse::<u64>().ok()?;
                io.read_bytes += f[2].parse::<u64>().ok()?;
            }
        }
        Some(io)
    }
}

fn show_io(io: Option<Io>) -> String {
    match io {
        Some(io) => format!(
            "read from source: rchar {} MiB, read_bytes {} MiB ({:.0}% of virtual size)",
            io.rchar / MIB,
            io.read_bytes / MIB,
            io.read_bytes as f64 * 100.0 / VIRTUAL as f64
        ),
        None => "read from source: not measured (no python3)".into(),
    }
}

/// Flushes the chain files and drops them from the page cache, so the next
/// reader's `read_bytes` counts real disk reads.
fn evict(files: &[&Path]) {
    for f in files {
        run(Command::new("sync").arg(f));
        run(Command::new("dd").arg(format!("if={}", f.display())).args([
            "iflag=nocache",
            "count=0",
            "status=none",
        ]));
    }
}

fn which(prog: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{prog} not found"))
}

fn main() {
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work"));
    let tmp = tempfile::Builder::new()
        .prefix("export-bench-")
        .tempdir_in(&base)
        .expect("temp dir");
    let root = tmp.path();

    // qemu-img through the measuring wrapper, for us and for ImageStore.
    let real = which("qemu-img");
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("qemu-img");
    fs::write(&wrapper, WRAPPER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let log = root.join("io.log");
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let meter = Meter {
        log: log.clone(),
        enabled: python,
    };
    if python {
        std::env::set_var("BENCH_REAL_QEMU_IMG", &real);
        std::env::set_var("BENCH_IO_LOG", &log);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        std::env::set_var("PATH", std::env::join_paths(dirs).unwrap());
    }

    let data = root.join("data");
    let vols = data.join("volumes");
    fs::create_dir_all(&vols).unwrap();
    let vol = vols.join(Uuid::new_v4().to_string());
    run(Command::new(&real)
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&vol)
        .arg(VIRTUAL.to_string()));
    let t = Instant::now();
    let mut io = Command::new("qemu-io");
    io.args(["-f", "qcow2"]);
    for (i, off) in CHUNKS.iter().enumerate() {
        io.arg("-c")
            .arg(format!("write -P {:#04x} {off} {CHUNK}", 0xa0 + i));
    }
    run(io.arg(&vol));
    println!(
        "source: {} GiB qcow2, {} MiB written in {} chunks ({}), file {} MiB",
        VIRTUAL / GIB,
        WRITTEN / MIB,
        CHUNKS.len(),
        secs(t.elapsed()),
        fs::metadata(&vol).unwrap().len() / MIB
    );

    let store = ImageStore::open(&data).unwrap();
    let out_dir = root.join("direct");
    fs::create_dir_all(&out_dir).unwrap();
    for fmt in [DiskFormat::Qcow2, DiskFormat::Raw] {
        // ImageStore::export: convert + fsync + qemu-img info + sha256.
        evict(&[&vol]);
        let from = meter.lines();
        let image = Uuid::new_v4();
        let t = Instant::now();
        let mut converted = None;
        let info = store
            .export(&vol, "qcow2", image, fmt, &mut |p| {
                // 0..=90 follows the convert; above 90 is the checksum pass,
                // which starts after convert, fsync and qemu-img info.
                if p > 90 && converted.is_none() {
                    converted = Some(t.elapsed());
                }
            })
            .unwrap();
        let export = t.elapsed();
        let export_io = meter.since(from);
        let converted = converted.unwrap_or(export);

        // The same copy with qemu-img convert alone (no flush), then flushed.
        evict(&[&vol]);
        let from = meter.lines();
        let out = out_dir.join(fmt.as_str());
        let t = Instant::now();
        run(Command::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", fmt.qemu_name()])
            .arg(&vol)
            .arg(&out));
        let direct = t.elapsed();
        run(Command::new("sync").arg(&out));
        let direct_sync = t.elapsed();
        let direct_io = meter.since(from);

        println!();
        println!(
            "{fmt}: image {} MiB on disk ({} MiB allocated), virtual {} GiB, sha256 {}…",
            info.size / MIB,
            allocated(&store.path(image)) / MIB,
            info.virtual_size / GIB,
            &info.checksum_sha256[..16]
        );
        println!(
            "  ImageStore::export   {:>8}  {:>10} of data  {:>10} of virtual size   (convert+fsync+info ≈{}, sha256 pass ≈{})",
            secs(export),
            rate(WRITTEN, export),
            rate(VIRTUAL, export),
            secs(converted),
            secs(export.saturating_sub(converted)),
        );
        println!("    {}", show_io(export_io));
        println!(
            "  qemu-img convert     {:>8}  {:>10} of data  {:>10} of virtual size   (+sync: {})",
            secs(direct),
            rate(WRITTEN, direct),
            rate(VIRTUAL, direct),
            secs(direct_sync),
        );
        println!("    {}", show_io(direct_io));
        println!(
            "  ratio export / convert: {:.2}x (vs convert+sync: {:.2}x; export without the sha256 pass / convert+sync: {:.2}x)",
            export.as_secs_f64() / direct.as_secs_f64(),
            export.as_secs_f64() / direct_sync.as_secs_f64(),
            converted.as_secs_f64() / direct_sync.as_secs_f64(),
        );
        store.delete(image).unwrap();
        fs::remove_file(&out).unwrap();
    }
    drop(tmp);
}

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().blocks() * 512
}
