//! Crash trials (issue 15; issue 11's "SIGKILL during parallel work"): a
//! mixed concurrent workload over several projects and dialects, SIGKILL at
//! a random instant, restart, then every check an operator would make:
//!
//! - every request that got a 2xx is in the log (its request id in some
//!   event's metadata);
//! - once the executor has caught up, nothing is left in a transitional
//!   status (creating, deleting, extending, rollingback, uploading, …),
//!   nor in an error status (no failure is injected);
//! - `blockledger verify` passes;
//! - the files on disk are what the views say: every live volume and
//!   available snapshot has its file, every file belongs to a live
//!   resource or is a chain member one of them needs, no `*.tmp*`;
//! - no `qemu-img` of the killed server is still running.
//!
//! Seeded: the seed is printed, `CRASH_SEED=<n>` replays a run, and
//! `CRASH_TRIALS=<n>` sets the number of trials (10 by default, the CI
//! form); `CRASH_KEEP=1` keeps the data dir of a trial that found anything
//! (an error status included) and prints where. A table of the counts is printed at the end; any lost, stuck,
//! orphaned or unverified outcome fails the test.
//!
//! The file also holds the tests of the pieces the trials rely on: the
//! startup sweep of temporary files, the bounded graceful stop, and helper
//! failures (exit non-zero, hang past the deadline) ending in an error
//! status that a delete recovers.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const PROJECTS: [&str; 3] = ["p1", "p2", "p3"];
const IDC: &str = "/v2/zone/az-dc-1";
/// How long the executor may take to catch up after a restart.
const CATCH_UP: Duration = Duration::from_secs(90);
/// A graceful stop must end within this (issue 15).
const STOP_BOUND: Duration = Duration::from_secs(10);

/// SplitMix64: small, seedable, good enough to pick operations.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.below(v.len() as u64) as usize].clone())
    }
}

#[derive(Default, Clone)]
struct Tally {
    /// Per operation: (sent, acknowledged).
    ops: std::collections::BTreeMap<&'static str, (u64, u64)>,
    trials: u64,
    kills: u64,
    requests: u64,
    acknowledged: u64,
    lost: u64,
    stuck: u64,
    errors: u64,
    verify_failures: u64,
    orphan_files: u64,
    missing_files: u64,
    orphan_processes: u64,
    /// Helpers that were running when the server was killed.
    helpers_at_kill: u64,
    bad_stops: u64,
}

/// What the workload knows exists (from 2xx replies), per project.
#[derive(Default)]
struct World {
    /// (project, id, size in GiB)
    volumes: Vec<(String, String, i64)>,
    /// (project, id, volume id)
    snapshots: Vec<(String, String, String)>,
    /// Never deleted: the source of full clones and exports.
    keep: HashSet<String>,
}

/// An acknowledged (2xx) request that changes something.
struct Ack {
    request_id: String,
    what: String,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_sigkills_lose_nothing_and_leak_nothing() {
    let trials = env_u64("CRASH_TRIALS").unwrap_or(10);
    let seed = env_u64("CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("crash_e2e: {trials} trials, seed {seed} (reproduce with CRASH_SEED={seed})");
    let started = Instant::now();
    let mut total = Tally::default();
    for t in 0..trials {
        let mut rng = Rng(seed ^ (t + 1).wrapping_mul(0xa076_1d64_78bd_642f));
        let r = trial(t, &mut rng).await;
        for (sum, add) in fields_mut(&mut total).into_iter().zip(fields(&r)) {
            *sum += add;
        }
        for (op, (s, a)) in &r.ops {
            let e = total.ops.entry(op).or_default();
            e.0 += s;
            e.1 += a;
        }
    }
    let names = [
        "trials",
        "kills",
        "requests",
        "acknowledged",
        "lost",
        "stuck",
        "error status",
        "verify failures",
        "orphan files",
        "missing files",
        "orphan processes",
        "helpers running at the kill",
        "bad stops",
    ];
    println!(
        "\ncrash_e2e: seed {seed}, {:.1} s\n| what | count |\n| --- | --- |",
        started.elapsed().as_secs_f64()
    );
    for (n, v) in names.iter().zip(fields(&total)) {
        println!("| {n} | {v} |");
    }
    println!("\n| operation | sent | acknowledged |\n| --- | --- | --- |");
    for (op, (s, a)) in &total.ops {
        println!("| {op} | {s} | {a} |");
    }
    assert_eq!(total.kills, trials);
    assert!(total.acknowledged > 0, "the workload got nothing done");
    for (name, v) in [
        ("lost", total.lost),
        ("stuck", total.stuck),
        // The workload injects no failure: an error status is a defect
        // (it found a redo doing a later request's work, issue 15).
        ("error status", total.errors),
        ("verify failures", total.verify_failures),
        ("orphan files", total.orphan_files),
        ("missing files", total.missing_files),
        ("orphan processes", total.orphan_processes),
        ("bad stops", total.bad_stops),
    ] {
        assert_eq!(v, 0, "{name} (seed {seed}; see the trial lines above)");
    }
}

fn fields(t: &Tally) -> [u64; 13] {
    [
        t.trials,
        t.kills,
        t.requests,
        t.acknowledged,
        t.lost,
        t.stuck,
        t.errors,
        t.verify_failures,
        t.orphan_files,
        t.missing_files,
        t.orphan_processes,
        t.helpers_at_kill,
        t.bad_stops,
    ]
}

fn fields_mut(t: &mut Tally) -> [&mut u64; 13] {
    [
        &mut t.trials,
        &mut t.kills,
        &mut t.requests,
        &mut t.acknowledged,
        &mut t.lost,
        &mut t.stuck,
        &mut t.errors,
        &mut t.verify_failures,
        &mut t.orphan_files,
        &mut t.missing_files,
        &mut t.orphan_processes,
        &mut t.helpers_at_kill,
        &mut t.bad_stops,
    ]
}

async fn trial(n: u64, rng: &mut Rng) -> Tally {
    let mut tally = Tally {
        trials: 1,
        ..Tally::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let env = [("PATH", slow_copies(bin.path()))];
    let mut srv = Server::start_env(&dir, "qcow2", &[], &env);
    let world = Arc::new(Mutex::new(setup(&srv, &dir).await));

    // The workload: a few clients per project, each firing random
    // requests until the server dies under them.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ops = Arc::new(Mutex::new(std::collections::BTreeMap::<
        &'static str,
        (u64, u64),
    >::new()));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let project = PROJECTS[w % PROJECTS.len()];
        let c = srv.client(&format!("user{w}"), project);
        let mut rng = Rng(rng.next());
        let (world, stop, acks, sent, ops) = (
            world.clone(),
            stop.clone(),
            acks.clone(),
            sent.clone(),
            ops.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (method, path, body, what) = choose(&mut rng, project, &world);
                sent.fetch_add(1, Ordering::Relaxed);
                let Ok(r) = c.try_send(method, &path, body.clone()).await else {
                    break; // the server is gone
                };
                let ok = (200..300).contains(&r.status);
                {
                    let mut ops = ops.lock().unwrap();
                    let e = ops.entry(what).or_default();
                    e.0 += 1;
                    e.1 += u64::from(ok);
                }
                if !ok && std::env::var_os("CRASH_VERBOSE").is_some() {
                    eprintln!("refused {what}: {method} {path} -> {} {}", r.status, r.body);
                }
                if ok {
                    let request_id = r
                        .headers
                        .get("x-openstack-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    acks.lock().unwrap().push(Ack {
                        request_id,
                        what: format!("{what}: {method} {path}"),
                    });
                    learn(&world, project, &path, body.as_deref(), &r.body);
                }
                if rng.chance(30) {
                    tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
                }
            }
        }));
    }
    let kill_after = Duration::from_millis(100 + rng.below(1900));
    tokio::time::sleep(kill_after).await;
    stop.store(true, Ordering::Relaxed);
    let helpers_at_kill = srv.pid().map(children_of).unwrap_or_default();
    srv.kill();
    tally.kills += 1;
    for t in tasks {
        let _ = t.await;
    }
    tally.requests = sent.load(Ordering::Relaxed);
    tally.ops = std::mem::take(&mut *ops.lock().unwrap());

    // No helper of the killed server survives it: they die with it (the
    // kernel's signal takes milliseconds; an orphan would go on for as long
    // as its copy takes, a second on average here).
    let needle = dir.to_string_lossy().into_owned();
    let orphans = wait_no_helpers(&needle, Duration::from_millis(200));
    for (pid, cmd) in &orphans {
        eprintln!("trial {n}: orphan helper {pid}: {cmd}");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    tally.orphan_processes = orphans.len() as u64;
    tally.helpers_at_kill = helpers_at_kill.len() as u64;
    if std::env::var_os("CRASH_VERBOSE").is_some() {
        eprintln!("trial {n}: helpers at the kill: {helpers_at_kill:?}");
    }

    let mut srv = Server::start_env(&dir, "qcow2", &[], &env);
    let catch_up = Instant::now();
    let (views, stuck) = settle(&srv).await;
    tally.stuck = stuck.len() as u64;
    for s in &stuck {
        eprintln!("trial {n}: stuck after {CATCH_UP:?}: {s}");
    }
    let caught_up = catch_up.elapsed();
    tally.errors = views.errors.len() as u64;
    for e in &views.errors {
        eprintln!("trial {n}: error status: {e}");
    }

    let acks = std::mem::take(&mut *acks.lock().unwrap());
    tally.acknowledged = acks.len() as u64;
    let logged = logged_request_ids(&srv.client("admin", "padmin")).await;
    for a in &acks {
        if a.request_id.is_empty() || !logged.contains(&a.request_id) {
            tally.lost += 1;
            eprintln!(
                "trial {n}: acknowledged but not in the log: {} ({})",
                a.what, a.request_id
            );
        }
    }

    let (orphan_files, missing_files) = check_files(&dir, &views);
    for f in &orphan_files {
        eprintln!("trial {n}: orphan file {f}");
    }
    for f in &missing_files {
        eprintln!("trial {n}: missing file {f}");
    }
    tally.orphan_files = orphan_files.len() as u64;
    tally.missing_files = missing_files.len() as u64;

    let (code, took) = srv.stop_timed();
    if code != Some(0) || took > STOP_BOUND {
        tally.bad_stops += 1;
        eprintln!("trial {n}: SIGTERM stop gave {code:?} after {took:?}");
    }
    let (ok, out) = verify(&dir);
    if !ok {
        tally.verify_failures += 1;
        eprintln!("trial {n}: verify failed: {out}");
    }
    println!(
        "trial {n}: killed at {} ms; {} requests, {} acknowledged, {} lost, {} stuck, {} error, {} orphan files, {} missing, {} orphan helpers (of {} at the kill); caught up in {:.2} s, stopped in {:.2} s",
        kill_after.as_millis(),
        tally.requests,
        tally.acknowledged,
        tally.lost,
        tally.stuck,
        tally.errors,
        tally.orphan_files,
        tally.missing_files,
        tally.orphan_processes,
        tally.helpers_at_kill,
        caught_up.as_secs_f64(),
        took.as_secs_f64(),
    );
    let bad = tally.lost
        + tally.stuck
        + tally.errors
        + tally.verify_failures
        + tally.orphan_files
        + tally.missing_files
        + tally.orphan_processes
        + tally.bad_stops;
    if bad > 0 && std::env::var_os("CRASH_KEEP").is_some() {
        // For a post-mortem: the log, the views and the files as they were.
        println!("trial {n}: data dir kept at {}", tmp.keep().display());
    }
    tally
}

/// A `qemu-img` that starts every `convert` (full clones, exports) a
/// two seconds late, as on a slow or busy disk, so that a kill often lands while
/// a helper runs; everything else is the real tool, which the delayed
/// process becomes (`exec`). Returns the `PATH` to give the server.
fn slow_copies(dir: &Path) -> String {
    let path = fake_qemu_img(dir, &[], &[]);
    let script = std::fs::read_to_string(dir.join("qemu-img")).unwrap();
    let script = script.replacen(
        "case \"$1\" in\n",
        "case \"$1\" in\n  convert) sleep 2 ;;\n",
        1,
    );
    std::fs::write(dir.join("qemu-img"), script).unwrap();
    path
}

/// Quotas for every project; a source volume in p1 with 64 MiB of data
/// (so full clones and exports copy real bytes and take a while) and a
/// snapshot of it.
async fn setup(srv: &Server, dir: &Path) -> World {
    for p in PROJECTS {
        let admin = srv.client("admin", p);
        let r = admin
            .put(
                &format!("/v2/{p}/os-quota-sets/{p}"),
                &json!({"quota_set": {"volumes": 10000, "gigabytes": 100000, "snapshots": 10000}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let c = srv.client("alice", "p1");
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": "src"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let src = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{src}"), "available")
        .await;
    write_pattern_len("qcow2", &dir.join("volumes").join(&src), 0x5a, 64 << 20);
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": src, "name": "base"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let base = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{base}"), "base snapshot", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    World {
        volumes: vec![("p1".into(), src.clone(), 1)],
        snapshots: vec![("p1".into(), base.clone(), src.clone())],
        keep: [src, base].into_iter().collect(),
    }
}

/// One random request of project `p`: (method, path, body, what).
fn choose(
    rng: &mut Rng,
    p: &str,
    world: &Mutex<World>,
) -> (&'static str, String, Option<String>, &'static str) {
    let (vols, snaps, keep) = {
        let w = world.lock().unwrap();
        let vols: Vec<(String, i64)> = w
            .volumes
            .iter()
            .filter(|v| v.0 == p)
            .map(|v| (v.1.clone(), v.2))
            .collect();
        let snaps: Vec<(String, String)> = w
            .snapshots
            .iter()
            .filter(|s| s.0 == p)
            .map(|s| (s.1.clone(), s.2.clone()))
            .collect();
        (vols, snaps, w.keep.clone())
    };
    let name = format!("n{}", rng.below(1000));
    // Mostly the older half: more likely done being created, so fewer
    // requests are refused for a transitional status.
    let older = |rng: &mut Rng, n: usize| -> usize {
        if rng.chance(70) {
            n.div_ceil(2)
        } else {
            n
        }
    };
    let nv = older(rng, vols.len());
    let vol = rng.pick(&vols[..nv]);
    let ns = older(rng, snaps.len());
    let snap = rng.pick(&snaps[..ns]);
    loop {
        let op = rng.below(100);
        let req = match op {
            0..=13 => Some((
                "POST",
                format!("/v3/{p}/volumes"),
                json!({"volume": {"size": 1, "name": name}}),
                "create v3",
            )),
            14..=19 => Some((
                "POST",
                format!("/v2/{p}/volumes"),
                json!({"volume": {"size": 1, "name": name}}),
                "create v2",
            )),
            20..=24 => Some((
                "POST",
                format!("/v2/{p}/cloudvolumes"),
                json!({"volume": {"size": 10, "name": name, "availability_zone": "az-dc-1", "volume_type": "SSD", "count": 1 + rng.below(3)}}),
                "create evs",
            )),
            25..=29 => Some((
                "POST",
                format!("{IDC}/volumes"),
                json!({"volume_name": name, "size": 1, "volume_type": 0}),
                "create idc",
            )),
            30..=36 => vol.as_ref().map(|(v, _)| {
                (
                    "POST",
                    format!("/v3/{p}/volumes"),
                    json!({"volume": {"source_volid": v, "name": name}}),
                    "clone of volume",
                )
            }),
            37..=44 => snap.as_ref().map(|(s, _)| {
                let mut volume = json!({"snapshot_id": s, "name": name});
                if rng.chance(50) {
                    volume["metadata"] = json!({"full_clone": "0"});
                }
                (
                    "POST",
                    format!("/v3/{p}/volumes"),
                    json!({ "volume": volume }),
                    "clone of snapshot",
                )
            }),
            45..=51 => vol.as_ref().map(|(v, size)| {
                (
                    "POST",
                    format!("/v3/{p}/volumes/{v}/action"),
                    json!({"os-extend": {"new_size": size + 1}}),
                    "extend",
                )
            }),
            52..=58 => vol.as_ref().map(|(v, _)| {
                (
                    "POST",
                    format!("/v3/{p}/snapshots"),
                    json!({"snapshot": {"volume_id": v, "name": name}}),
                    "snapshot v3",
                )
            }),
            59..=61 => vol.as_ref().map(|(v, _)| {
                (
                    "POST",
                    format!("{IDC}/volume_snapshots"),
                    json!({"resources": [v], "snapshot_name": name, "is_full": rng.below(2)}),
                    "snapshot idc",
                )
            }),
            62..=67 => snap.as_ref().map(|(s, v)| {
                (
                    "POST",
                    format!("/v2/{p}/os-vendor-snapshots/{s}/rollback"),
                    json!({"rollback": {"volume_id": v}}),
                    "rollback evs",
                )
            }),
            68..=75 => vol.as_ref().map(|(v, _)| {
                (
                    "POST",
                    format!("/v3/{p}/volumes/{v}/metadata"),
                    json!({"metadata": {format!("k{}", rng.below(5)): name}}),
                    "metadata",
                )
            }),
            76..=87 => vol
                .as_ref()
                .filter(|(v, _)| !keep.contains(v))
                .map(|(v, _)| {
                    // A third with cascade: the volume's snapshots go too.
                    if rng.chance(33) {
                        (
                            "DELETE",
                            format!("/v3/{p}/volumes/{v}?cascade=true"),
                            Value::Null,
                            "delete volume (cascade)",
                        )
                    } else {
                        (
                            "DELETE",
                            format!("/v3/{p}/volumes/{v}"),
                            Value::Null,
                            "delete volume",
                        )
                    }
                }),
            88..=94 => snap
                .as_ref()
                .filter(|(s, _)| !keep.contains(s))
                .map(|(s, _)| {
                    (
                        "DELETE",
                        format!("/v3/{p}/snapshots/{s}"),
                        Value::Null,
                        "delete snapshot",
                    )
                }),
            _ => vol.as_ref().map(|(v, _)| {
                (
                    "POST",
                    format!("/v2/{p}/volumes/{v}/action"),
                    json!({"os-volume_upload_image": {"image_name": name, "disk_format": "qcow2"}}),
                    "export",
                )
            }),
        };
        if let Some((m, path, body, what)) = req {
            let body = (!body.is_null()).then(|| body.to_string());
            return (m, path, body, what);
        }
    }
}

/// Updates what the workload knows from an acknowledged request.
fn learn(world: &Mutex<World>, p: &str, path: &str, body: Option<&str>, reply: &Value) {
    let mut w = world.lock().unwrap();
    let body: Value = body
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    if path.ends_with("/volumes") && body.get("volume").is_some() {
        if let Some(id) = reply["volume"]["id"].as_str() {
            let size = reply["volume"]["size"].as_i64().unwrap_or(1);
            w.volumes.push((p.into(), id.into(), size));
        }
    } else if path.ends_with("/snapshots") {
        if let (Some(id), Some(v)) = (
            reply["snapshot"]["id"].as_str(),
            reply["snapshot"]["volume_id"].as_str(),
        ) {
            w.snapshots.push((p.into(), id.into(), v.into()));
        }
    } else if let Some(ext) = body["os-extend"]["new_size"].as_i64() {
        let id = path.rsplit('/').nth(1).unwrap_or_default();
        for v in w.volumes.iter_mut().filter(|v| v.1 == id) {
            v.2 = v.2.max(ext);
        }
    } else if body.is_null() && path.contains("/volumes/") {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let id = path.rsplit('/').next().unwrap_or_default().to_string();
        w.volumes.retain(|v| v.1 != id);
        if query.contains("cascade=true") {
            w.snapshots.retain(|s| s.2 != id);
        }
    } else if body.is_null() && path.contains("/snapshots/") {
        let id = path.rsplit('/').next().unwrap_or_default().to_string();
        w.snapshots.retain(|s| s.1 != id);
    }
}

/// Polls until no `qemu-img` mentioning `needle` runs, up to `within`;
/// what still runs then.
fn wait_no_helpers(needle: &str, within: Duration) -> Vec<(u32, String)> {
    let started = Instant::now();
    loop {
        let left = processes_matching(&["qemu-img", needle]);
        if left.is_empty() || started.elapsed() > within {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the views say after catch-up, over every project.
#[derive(Default)]
struct Views {
    /// volume id → status
    volumes: HashMap<String, String>,
    /// snapshot id → status
    snapshots: HashMap<String, String>,
    /// image id → status
    images: HashMap<String, String>,
    /// "kind id status" of resources in an error status
    errors: Vec<String>,
}

const TRANSITIONAL: [&str; 9] = [
    "creating",
    "deleting",
    "extending",
    "rollingback",
    "rollbacking",
    "uploading",
    "attaching",
    "queued",
    "saving",
];

async fn read_views(srv: &Server) -> Views {
    let mut v = Views::default();
    for p in PROJECTS {
        let c = srv.client("alice", p);
        let r = c.get(&format!("/v3/{p}/volumes/detail?limit=1000")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for x in r.body["volumes"].as_array().cloned().unwrap_or_default() {
            v.volumes.insert(
                x["id"].as_str().unwrap_or_default().into(),
                x["status"].as_str().unwrap_or_default().into(),
            );
        }
        let r = c.get(&format!("/v3/{p}/snapshots/detail?limit=1000")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for x in r.body["snapshots"].as_array().cloned().unwrap_or_default() {
            v.snapshots.insert(
                x["id"].as_str().unwrap_or_default().into(),
                x["status"].as_str().unwrap_or_default().into(),
            );
        }
        let r = c.get("/image/v2/images?limit=1000").await;
        assert_eq!(r.status, 200, "{}", r.body);
        for x in r.body["images"].as_array().cloned().unwrap_or_default() {
            v.images.insert(
                x["id"].as_str().unwrap_or_default().into(),
                x["status"].as_str().unwrap_or_default().into(),
            );
        }
    }
    for (kind, m) in [
        ("volume", &v.volumes),
        ("snapshot", &v.snapshots),
        ("image", &v.images),
    ] {
        for (id, s) in m {
            if s.starts_with("error") || s == "killed" {
                v.errors.push(format!("{kind} {id} {s}"));
            }
        }
    }
    v
}

/// Polls the views until nothing is transitional (the executor caught
/// up), up to `CATCH_UP`; the views, and what is still transitional.
async fn settle(srv: &Server) -> (Views, Vec<String>) {
    let started = Instant::now();
    loop {
        let v = read_views(srv).await;
        let stuck: Vec<String> = [
            ("volume", &v.volumes),
            ("snapshot", &v.snapshots),
            ("image", &v.images),
        ]
        .into_iter()
        .flat_map(|(kind, m)| {
            m.iter()
                .filter(|(_, s)| TRANSITIONAL.contains(&s.as_str()))
                .map(move |(id, s)| format!("{kind} {id} {s}"))
        })
        .collect();
        if stuck.is_empty() || started.elapsed() > CATCH_UP {
            return (v, stuck);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The direct backing snapshot id of a qcow2 file, if any.
fn backing_of(path: &Path) -> Option<String> {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", "qcow2"])
        .arg(path)
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let b = v["backing-filename"].as_str()?;
    Some(b.rsplit('/').next()?.to_string())
}

/// Compares the data dir with the views: (orphan files, missing files).
///
/// A volume file must belong to a listed volume; a live volume (not in an
/// error status, where a failed create leaves none) must have one. A file
/// under `snapshots/` (a snapshot, or a `.deleted` tombstone) must be
/// reachable through backing chains from a listed volume or snapshot; an
/// available snapshot must have its file. Images: each file has its meta
/// and belongs to a listed image. No temporary file anywhere.
fn check_files(dir: &Path, views: &Views) -> (Vec<String>, Vec<String>) {
    let (mut orphans, mut missing) = (Vec::new(), Vec::new());
    let vdir = dir.join("volumes");
    let sdir = dir.join("snapshots");
    let idir = dir.join("images");
    let mut roots: Vec<PathBuf> = Vec::new();
    for name in names(&vdir) {
        if name.contains(".tmp") {
            orphans.push(format!("volumes/{name}"));
        } else if views.volumes.contains_key(&name) {
            roots.push(vdir.join(&name));
        } else {
            orphans.push(format!("volumes/{name}"));
        }
    }
    for (id, status) in &views.volumes {
        if !status.starts_with("error") && !vdir.join(id).exists() {
            missing.push(format!("volumes/{id} ({status})"));
        }
    }
    let snap_files = names(&sdir);
    for name in &snap_files {
        if name.contains(".tmp") {
            orphans.push(format!("snapshots/{name}"));
        } else if views.snapshots.contains_key(name) {
            roots.push(sdir.join(name));
        }
    }
    for (id, status) in &views.snapshots {
        if status == "available" && !sdir.join(id).exists() {
            missing.push(format!("snapshots/{id} ({status})"));
        }
    }
    // Walk the backing chains from every live file.
    let mut reached: HashSet<String> = HashSet::new();
    while let Some(path) = roots.pop() {
        if let Some(b) = backing_of(&path) {
            if reached.insert(b.clone()) {
                let plain = sdir.join(&b);
                let tomb = sdir.join(format!("{b}.deleted"));
                if plain.exists() {
                    roots.push(plain);
                } else if tomb.exists() {
                    roots.push(tomb);
                } else {
                    missing.push(format!("snapshots/{b} (backing of {})", path.display()));
                }
            }
        }
    }
    for name in &snap_files {
        if name.contains(".tmp") || views.snapshots.contains_key(name) {
            continue;
        }
        let id = name.trim_end_matches(".deleted");
        if !reached.contains(id) {
            orphans.push(format!("snapshots/{name} (nothing needs it)"));
        }
    }
    for name in names(&idir) {
        let id = name.trim_end_matches(".meta");
        if name.contains(".tmp") || !views.images.contains_key(id) {
            orphans.push(format!("images/{name}"));
        }
    }
    (orphans, missing)
}

// ------------------------------------------------ the pieces it relies on --

/// Temporary files of work that is not in flight are swept at startup
/// (issue 15 item 2): under volumes/, snapshots/ and images/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_temporary_files_are_gone_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    srv.kill();
    let stale = [
        tmp.path()
            .join("volumes")
            .join(format!("{vol}.tmp.0123abcd")),
        tmp.path()
            .join("volumes")
            .join(format!("{}.tmp.feed", uuid::Uuid::new_v4())),
        tmp.path()
            .join("snapshots")
            .join(format!("{}.tmp.beef", uuid::Uuid::new_v4())),
        tmp.path()
            .join("images")
            .join(format!("{}.tmp.cafe", uuid::Uuid::new_v4())),
    ];
    std::fs::create_dir_all(tmp.path().join("snapshots")).unwrap();
    for s in &stale {
        std::fs::write(s, b"half-built").unwrap();
    }
    let srv = Server::start(tmp.path());
    let deadline = Instant::now() + DEADLINE;
    while stale.iter().any(|s| s.exists()) {
        assert!(
            Instant::now() < deadline,
            "still there: {:?}",
            stale.iter().filter(|s| s.exists()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The volume itself is untouched and still usable.
    assert!(tmp.path().join("volumes").join(&vol).exists());
    let c = srv.client("alice", "p1");
    let r = c
        .post(
            &format!("/v3/p1/volumes/{vol}/action"),
            &json!({"os-extend": {"new_size": 2}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
}

/// SIGTERM while a helper hangs (a `qemu-img convert` that never ends):
/// the server stops within the bound with exit code 0, the helper is
/// killed, and after a restart (with a working `qemu-img`) the abandoned
/// export is redone and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_bound_and_ends_helpers() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let path = fake_qemu_img(bin.path(), &["convert"], &[]);
    let mut srv = Server::start_env(tmp.path(), "qcow2", &[], &[("PATH", path)]);
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    let image = start_upload(&c, "/v2/p1", &vol, "img", "qcow2").await;
    // The export's helper is running (and hangs).
    let pid = srv.pid().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let helpers = loop {
        let h = children_of(pid);
        if h.iter().any(|(_, cmd)| cmd.contains("sleep")) {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "the export's helper never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (code, took) = srv.stop_timed();
    println!("SIGTERM with a hung helper: exit code {code:?} after {took:?}");
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(took < STOP_BOUND, "the stop took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    for (h, cmd) in &helpers {
        while process_state(*h).is_some_and(|s| s != 'Z') {
            assert!(
                Instant::now() < deadline,
                "helper {h} ({cmd}) outlived the server"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // A working qemu-img again: the abandoned export is redone.
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    c.wait_until(&format!("/image/v2/images/{image}"), "export redone", |r| {
        r.body["status"] == "active"
    })
    .await;
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    let leftovers: Vec<String> = ["volumes", "snapshots", "images"]
        .iter()
        .flat_map(|d| names(&tmp.path().join(d)))
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A helper that exits non-zero, and one that hangs past its deadline
/// (`qemu-img resize`, the step that still runs a helper; empty images,
/// overlays, snapshots and rollbacks are written natively, their failure
/// path tested in the backend): the volume ends `error_extending` with the
/// helper's reason, keeps its file, and a delete then removes it (issue
/// 15, executor step discipline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_helper_ends_in_error_and_a_delete_recovers() {
    for (hang, fail, reason) in [
        (&[][..], &["resize"][..], "injected failure"),
        (&["resize"][..], &[][..], "deadline"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let srv = Server::start(tmp.path());
        let c = srv.client("alice", "p1");
        let r = c
            .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
        c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
            .await;
        drop(srv);
        let bin = tempfile::tempdir().unwrap();
        let path = fake_qemu_img(bin.path(), hang, fail);
        let srv = Server::start_env(
            tmp.path(),
            "qcow2",
            &[],
            &[
                ("PATH", path),
                ("BLOCKLEDGER_TOOL_DEADLINE_SHORT_SECS", "1".into()),
            ],
        );
        let c = srv.client("alice", "p1");
        let r = c
            .post(
                &format!("/v3/p1/volumes/{vol}/action"),
                &json!({"os-extend": {"new_size": 2}}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        c.wait_status(&format!("/v3/p1/volumes/{vol}"), "error_extending")
            .await;
        assert!(
            tmp.path().join("volumes").join(&vol).exists(),
            "kept its file"
        );
        // The reason is recorded with the failure.
        let admin = srv.client("admin", "padmin");
        let r = admin
            .get(&format!("/v2/padmin/events?stream=volume-{vol}&limit=100"))
            .await;
        let failed = r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_type"] == "VolumeExtendFailed")
            .cloned()
            .unwrap_or_else(|| panic!("no failure recorded: {}", r.body));
        assert!(
            failed["data"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{failed}"
        );
        // No helper left behind, and a delete recovers the volume.
        assert!(children_of(srv.pid().unwrap()).is_empty());
        let r = c.delete(&format!("/v3/p1/volumes/{vol}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        c.wait_until(&format!("/v3/p1/volumes/{vol}"), "deleted", |r| {
            r.status == 404
        })
        .await;
        let left: Vec<String> = names(&tmp.path().join("volumes"));
        assert!(left.is_empty(), "{left:?}");
    }
}

/// A small tmpfs mounted for a test, unmounted on drop (after the server
/// using it, which is declared later and dropped first).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// None where mounting is not permitted (not root, no CAP_SYS_ADMIN).
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system at `path`'s dir, then gives back `leave` bytes.
fn fill_leaving(path: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 1 << 20];
    let mut len = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    f.set_len(len.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
}

/// Disk full (issue 15, a failure injected at every step): the data dir is
/// a 48 MiB tmpfs, filled but for 4 MiB; a full clone of a snapshot holding
/// 16 MiB of data needs more. The clone ends `error` with qemu-img's "No
/// space left on device" as its recorded reason and leaves no temporary
/// file behind (it would keep the disk full); the server keeps serving,
/// and disk work that fits (an empty volume) still succeeds; a delete
/// recovers the failed volume; with space again the same clone succeeds;
/// `verify` passes. Where a tmpfs cannot be mounted (not root), the full
/// disk is simulated: a `qemu-img` double answers every `convert` with
/// qemu's ENOSPC message and exit 1 (the native writer's own disk-full
/// path is a backend test, `a_full_disk_fails_native_writes_cleanly`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_ends_the_step_in_error_and_a_delete_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let mounted = Tmpfs::mount(&dir, 48 << 20);
    let env = match &mounted {
        Some(_) => vec![],
        None => {
            println!("no tmpfs here (mount refused): ENOSPC from a qemu-img double");
            let path = fake_qemu_img(bin.path(), &[], &["convert"]);
            let script = std::fs::read_to_string(bin.path().join("qemu-img")).unwrap();
            let script = script.replace(
                "injected failure of qemu-img convert",
                "qemu-img: error while writing at byte 0: No space left on device",
            );
            std::fs::write(bin.path().join("qemu-img"), script).unwrap();
            vec![("PATH", path)]
        }
    };
    let mut srv = Server::start_env(&dir, "qcow2", &[], &env);
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let src = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{src}"), "available")
        .await;
    write_pattern_len("qcow2", &dir.join("volumes").join(&src), 0x5a, 16 << 20);
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": src, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "snapshot", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    let filler = dir.join("filler");
    if mounted.is_some() {
        fill_leaving(&filler, 4 << 20);
    }

    // A full clone (the default for a snapshot source) copies 16 MiB.
    let clone = json!({"volume": {"snapshot_id": snap, "name": "copy"}});
    let r = c.post("/v3/p1/volumes", &clone).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let copy = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{copy}"), "error")
        .await;
    let admin = srv.client("admin", "padmin");
    let r = admin
        .get(&format!("/v2/padmin/events?stream=volume-{copy}&limit=100"))
        .await;
    let failed = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "VolumeCreateFailed")
        .cloned()
        .unwrap_or_else(|| panic!("no failure recorded: {}", r.body));
    let reason = failed["data"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("No space left on device"), "{failed}");
    let tmps: Vec<String> = ["volumes", "snapshots"]
        .iter()
        .flat_map(|d| names(&dir.join(d)))
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(
        tmps.is_empty(),
        "the failed copy's space is not given back: {tmps:?}"
    );

    // Still serving, and work that fits still gets done.
    let r = c.get("/v3/p1/volumes/detail").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let small = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{small}"), "available")
        .await;

    // The next request recovers: a delete, then (with space) the retry.
    let r = c.delete(&format!("/v3/p1/volumes/{copy}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/volumes/{copy}"), "deleted", |r| {
        r.status == 404
    })
    .await;
    assert!(!dir.join("volumes").join(&copy).exists());
    let _ = std::fs::remove_file(&filler);
    if mounted.is_none() {
        // The double stands for the full disk: space again is the real tool.
        srv.stop();
        srv = Server::start(&dir);
    }
    let c = srv.client("alice", "p1");
    let r = c.post("/v3/p1/volumes", &clone).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let retry = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{retry}"), "available")
        .await;
    srv.stop();
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
}

/// The stop bound's backstop (issue 15): SIGTERM while a full clone's
/// `qemu-img convert` hangs, with the executor's drain set past the bound
/// (`BLOCKLEDGER_EXECUTOR_DRAIN_SECS=60`), so nothing but the backstop ends
/// the process: it exits at the 9 s bound, within 10 s, with exit code 0;
/// the helper dies with it (its parent-death signal); after a restart with
/// a working `qemu-img` the clone is redone. (With the default drain the
/// executor abandons the step itself at 8 s:
/// `sigterm_stops_within_the_bound_and_ends_helpers`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backstop_ends_a_stop_whose_step_hangs_past_the_drain() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let vol = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": vol, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "snapshot", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    srv.stop();

    let bin = tempfile::tempdir().unwrap();
    let path = fake_qemu_img(bin.path(), &["convert"], &[]);
    let env = [
        ("PATH", path),
        ("BLOCKLEDGER_EXECUTOR_DRAIN_SECS", "60".to_string()),
    ];
    let mut srv = Server::start_env(tmp.path(), "qcow2", &[], &env);
    let c = srv.client("alice", "p1");
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"snapshot_id": snap, "name": "copy"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let copy = r.body["volume"]["id"].as_str().unwrap().to_string();
    let pid = srv.pid().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let helpers = loop {
        let h = children_of(pid);
        if h.iter().any(|(_, cmd)| cmd.contains("sleep")) {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "the clone's helper never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (code, took) = srv.stop_timed();
    println!("SIGTERM with a step hung past the drain: exit code {code:?} after {took:?}");
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(took < STOP_BOUND, "the stop took {took:?}");
    assert!(
        took >= Duration::from_secs(9),
        "ended at {took:?}, before the backstop: the drain setting was not in force"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    for (h, cmd) in &helpers {
        while process_state(*h).is_some_and(|s| s != 'Z') {
            assert!(
                Instant::now() < deadline,
                "helper {h} ({cmd}) outlived the server"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    c.wait_status(&format!("/v3/p1/volumes/{copy}"), "available")
        .await;
    let leftovers: Vec<String> = ["volumes", "snapshots"]
        .iter()
        .flat_map(|d| names(&tmp.path().join(d)))
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
