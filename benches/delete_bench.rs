//! Issue 15's bench row and issue 11's native qcow2 figures, at the backend
//! level (no server):
//!
//! - delete latency beside 10 and beside 1,000 volumes while a tombstoned
//!   snapshot with a linked clone exists (the storage gc used to read every
//!   image's header with `qemu-img info` then; now it is a lookup), with the
//!   ratio against its target (<= 1.5), and how long opening the backend
//!   (one native header read per image) takes at each size;
//! - writing an empty qcow2 image and an overlay natively against spawning
//!   `qemu-img create` for the same file, each without and with the fsync
//!   the backend needs before a rename.
//!
//! Run with:
//!
//! ```text
//! cargo bench --bench delete_bench
//! BENCH_RUNS=101 BENCH_DIR=/work cargo bench --bench delete_bench
//! ```

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use executor::backend::{open_backend, Qcow2Backend, StorageBackend};
use executor::qcow2;
use uuid::Uuid;

const GIB: u64 = 1 << 30;

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
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct DeleteRow {
    volumes: usize,
    open: Duration,
    delete: Duration,
    header_reads_per_delete: f64,
}

/// A data dir with `volumes` volumes, two of which stand on a tombstoned
/// snapshot (the volume it was taken of, and a linked clone of it); then
/// `runs` deletes of a fresh volume each, timed one by one.
fn delete_row(base: &Path, volumes: usize, runs: usize) -> DeleteRow {
    let data = base.join(format!("delete-{volumes}"));
    {
        let b = open_backend("qcow2", &data).expect("backend");
        let (vol, snap, linked) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        b.create(vol, GIB).unwrap();
        b.snapshot_create(vol, snap).unwrap();
        b.clone_from_snapshot(snap, linked, GIB, true).unwrap();
        b.snapshot_delete(snap).unwrap();
        assert!(b.snapshot_exists(snap), "tombstoned, still needed");
        for _ in 2..volumes {
            b.create(Uuid::new_v4(), GIB).unwrap();
        }
    }
    // A fresh start, as after a restart: the map is built from the headers.
    // Open and the map built (`open` builds it on a thread of its own).
    let (open, b) = time(|| {
        let b = Qcow2Backend::open(data.join("volumes")).expect("open");
        b.wait_built();
        b
    });
    let mut deletes = Vec::with_capacity(runs);
    let reads_before = b.header_reads();
    for _ in 0..runs {
        let victim = Uuid::new_v4();
        b.create(victim, GIB).unwrap();
        let reads = b.header_reads();
        deletes.push(time(|| b.delete(victim).unwrap()).0);
        assert_eq!(b.header_reads(), reads, "a delete reads no header");
    }
    // Each create reads its own volume's header once (is it there?).
    let reads_total = b.header_reads() - reads_before - runs as u64;
    DeleteRow {
        volumes,
        open,
        delete: median(deletes),
        header_reads_per_delete: reads_total as f64 / runs as f64,
    }
}

fn qemu_img_create(path: &Path, size: u64, backing: Option<&str>) {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", "qcow2"]);
    if let Some(b) = backing {
        cmd.args(["-F", "qcow2", "-b", b]);
    }
    let out = cmd
        .arg(path)
        .arg(size.to_string())
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn native_create(path: &Path, size: u64, backing: Option<&str>, fsync: bool) {
    let f = File::create(path).unwrap();
    qcow2::write_empty(&f, size, backing).unwrap();
    if fsync {
        f.sync_all().unwrap();
    }
}

fn fsync(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// Median time to make one empty image (or overlay) of `size` four ways.
fn create_row(base: &Path, size: u64, backing: Option<&str>, runs: usize) -> [Duration; 4] {
    let dir = base.join("volumes");
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = [vec![], vec![], vec![], vec![]];
    for i in 0..runs {
        let p = |k: &str| dir.join(format!("{k}-{i}"));
        t[0].push(time(|| native_create(&p("n"), size, backing, false)).0);
        t[1].push(time(|| native_create(&p("nf"), size, backing, true)).0);
        t[2].push(time(|| qemu_img_create(&p("q"), size, backing)).0);
        t[3].push(
            time(|| {
                qemu_img_create(&p("qf"), size, backing);
                fsync(&p("qf"));
            })
            .0,
        );
        for k in ["n", "nf", "q", "qf"] {
            std::fs::remove_file(p(k)).unwrap();
        }
    }
    t.map(median)
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(51);
    let parent = std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    let tmp = tempfile::tempdir_in(&parent).expect("tempdir");
    let started = Instant::now();

    let rows = [
        delete_row(tmp.path(), 10, runs),
        delete_row(tmp.path(), 1000, runs),
    ];
    println!(
        "qcow2 backend delete beside a tombstoned snapshot with a linked clone, median of {runs}, dir {}",
        tmp.path().display()
    );
    println!(
        "{:>8} {:>14} {:>22} {:>20}",
        "volumes", "delete", "header reads/delete", "open (map build)"
    );
    for r in &rows {
        println!(
            "{:>8} {:>14} {:>22} {:>20}",
            r.volumes,
            ms(r.delete),
            format!("{:.1}", r.header_reads_per_delete),
            ms(r.open)
        );
    }
    let ratio = rows[1].delete.as_secs_f64() / rows[0].delete.as_secs_f64();
    println!(
        "delete 1,000 / 10 volumes: x{ratio:.2} (target <= 1.5: {})",
        if ratio <= 1.5 { "met" } else { "MISSED" }
    );

    // The overlay's backing must exist for qemu-img create (it opens it).
    let snaps = tmp.path().join("create").join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    let base_id = Uuid::new_v4();
    qcow2::create(&snaps.join(base_id.to_string()), GIB, None).unwrap();
    let backing = format!("../snapshots/{base_id}");
    let base = tmp.path().join("create");
    println!("\nempty qcow2 image, 1 GiB, median of {runs}");
    println!(
        "{:<10} {:>12} {:>16} {:>16} {:>22}",
        "", "native", "native + fsync", "qemu-img create", "qemu-img + fsync"
    );
    for (label, b) in [("empty", None), ("overlay", Some(backing.as_str()))] {
        let [n, nf, q, qf] = create_row(&base, GIB, b, runs);
        println!(
            "{:<10} {:>12} {:>16} {:>16} {:>22}",
            label,
            ms(n),
            ms(nf),
            ms(q),
            ms(qf)
        );
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
