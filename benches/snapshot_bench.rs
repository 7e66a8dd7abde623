//! qcow2 snapshot costs: snapshot_create, rollback and linked clone must cost
//! the same for a 1 GiB and a 1 TiB volume (each with 256 MiB written), and a
//! full clone must copy only allocated data, at about the speed of
//! `qemu-img convert` itself.
//!
//!     cargo bench --bench snapshot_bench
//!     BENCH_RUNS=9 BENCH_DIR=/work cargo bench --bench snapshot_bench

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use executor::backend::open_backend;
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const WRITTEN: u64 = 256 * MIB;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed(), r)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib_s(d: Duration) -> String {
    format!("{:.0} MiB/s", (WRITTEN / MIB) as f64 / d.as_secs_f64())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Row {
    size: &'static str,
    snapshot: Duration,
    rollback: Duration,
    linked: Duration,
    full: Duration,
    convert: Duration,
    convert_fsync: Duration,
}

fn bench(size: u64, label: &'static str, base: &Path, runs: usize) -> Row {
    let data: PathBuf = base.join(label.replace(' ', ""));
    let b = open_backend("qcow2", &data).expect("backend");
    let vol = Uuid::new_v4();
    b.create(vol, size).unwrap();
    // 256 MiB of real data at the start of the volume.
    run(Command::new("qemu-io")
        .args(["-f", "qcow2", "-c"])
        .arg(format!("write -P 0xaa 0 {WRITTEN}"))
        .arg(b.active_path(vol)));

    let first = Uuid::new_v4();
    b.snapshot_create(vol, first).unwrap();
    let mut snaps = Vec::new();
    for _ in 0..runs {
        // A little new data each time, so every snapshot freezes something.
        run(Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", "write -P 0xbb 0 1M"])
            .arg(b.active_path(vol)));
        let s = Uuid::new_v4();
        snaps.push(time(|| b.snapshot_create(vol, s).unwrap()).0);
    }
    let mut rollbacks = Vec::new();
    for _ in 0..runs {
        rollbacks.push(time(|| b.rollback(vol, first).unwrap()).0);
    }
    let mut linked = Vec::new();
    for _ in 0..runs {
        let c = Uuid::new_v4();
        linked.push(time(|| b.clone_from_snapshot(first, c, size, true).unwrap()).0);
    }

    // Full copies of the first snapshot (256 MiB allocated): the backend's
    // full clone (convert + resize + fsync + rename) against plain
    // `qemu-img convert` (which by default does not flush) and convert
    // followed by an fsync, in the same run, from the same warm page cache.
    let snap_file = data.join("snapshots").join(first.to_string());
    // Each copy starts after a `sync`, so none pays for another's writeback.
    let settle = || run(&mut Command::new("sync"));
    let mut full = Vec::new();
    let mut convert = Vec::new();
    let mut convert_fsync = Vec::new();
    for i in 0..runs {
        let out = base.join(format!("convert-{label}-{i}").replace(' ', ""));
        let mut cmd = Command::new("qemu-img");
        cmd.args(["convert", "-q", "-f", "qcow2", "-O", "qcow2"])
            .arg(&snap_file)
            .arg(&out);
        settle();
        convert.push(time(|| run(&mut cmd)).0);
        std::fs::remove_file(&out).unwrap();
        settle();
        let c = Uuid::new_v4();
        full.push(time(|| b.clone_from_snapshot(first, c, size, false).unwrap()).0);
        b.delete(c).unwrap();
        settle();
        convert_fsync.push(
            time(|| {
                run(&mut cmd);
                std::fs::File::open(&out).unwrap().sync_all().unwrap();
            })
            .0,
        );
        std::fs::remove_file(&out).unwrap();
    }
    Row {
        size: label,
        snapshot: median(snaps),
        rollback: median(rollbacks),
        linked: median(linked),
        full: median(full),
        convert: median(convert),
        convert_fsync: median(convert_fsync),
    }
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let parent = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    let tmp = tempfile::tempdir_in(&parent).expect("tempdir");
    let started = Instant::now();
    let rows = [
        bench(GIB, "1 GiB", tmp.path(), runs),
        bench(1024 * GIB, "1 TiB", tmp.path(), runs),
    ];

    println!(
        "qcow2 backend, 256 MiB written per volume, median of {runs} runs, dir {}",
        tmp.path().display()
    );
    println!(
        "{:<8} {:>14} {:>14} {:>14} | {:>24} {:>24} {:>24}",
        "virtual",
        "snapshot",
        "rollback",
        "linked clone",
        "full clone (backend)",
        "qemu-img convert",
        "convert + fsync"
    );
    for r in &rows {
        println!(
            "{:<8} {:>14} {:>14} {:>14} | {:>24} {:>24} {:>24}",
            r.size,
            ms(r.snapshot),
            ms(r.rollback),
            ms(r.linked),
            format!("{} {}", ms(r.full), mib_s(r.full)),
            format!("{} {}", ms(r.convert), mib_s(r.convert)),
            format!("{} {}", ms(r.convert_fsync), mib_s(r.convert_fsync)),
        );
    }
    let ratio = |f: fn(&Row) -> Duration| f(&rows[1]).as_secs_f64() / f(&rows[0]).as_secs_f64();
    println!(
        "1 TiB / 1 GiB: snapshot x{:.2}, rollback x{:.2}, linked clone x{:.2}, full clone x{:.2}",
        ratio(|r| r.snapshot),
        ratio(|r| r.rollback),
        ratio(|r| r.linked),
        ratio(|r| r.full),
    );
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
