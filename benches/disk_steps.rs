//! The disk steps of a create/delete cycle and of a snapshot, on the
//! qcow2 backend alone (no server, no log): the time their fsyncs take,
//! which is what the cycle rate and snapshot → available are made of once
//! the writer batches its commits (issue 11). Run it under
//! `strace -f -c -e trace=fsync` to count the fsyncs per step.
//!
//!     cargo bench --bench disk_steps
//!     BENCH_N=400 BENCH_THREADS=4 BENCH_DIR=/tmp cargo bench --bench disk_steps

use std::time::{Duration, Instant};

use executor::backend::open_backend;
use uuid::Uuid;

const GIB: u64 = 1 << 30;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let n = env("BENCH_N", 200);
    let threads = env("BENCH_THREADS", 4);
    let parent =
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let tmp = tempfile::tempdir_in(parent).expect("tempdir");
    let backend = open_backend("qcow2", tmp.path()).expect("backend");

    // Create → delete cycles, `threads` at once, as the executor runs them.
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n / threads {
                    let id = Uuid::new_v4();
                    backend.create(id, GIB).expect("create");
                    backend.delete(id).expect("delete");
                }
            });
        }
    });
    let wall = t.elapsed();
    let cycles = (n / threads * threads) as f64;
    println!(
        "create+delete, {threads} threads: {:.0} cycles/s ({} per cycle per thread)",
        cycles / wall.as_secs_f64(),
        ms(wall * threads as u32 / cycles as u32)
    );

    // Snapshots of one 1 GiB volume, one after another.
    let vol = Uuid::new_v4();
    backend.create(vol, GIB).expect("create");
    let times: Vec<Duration> = (0..n.min(100))
        .map(|_| {
            let t = Instant::now();
            backend
                .snapshot_create(vol, Uuid::new_v4())
                .expect("snapshot");
            t.elapsed()
        })
        .collect();
    println!("snapshot_create, 1 GiB: p50 {}", ms(median(times)));
}
