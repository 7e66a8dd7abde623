//! `blockledger bench`: every row of issue 11's table in one run, each
//! beside its target. It starts this very executable as the server
//! (`serve --backend qcow2` on a temporary data dir and a random port), so
//! a release build measures a release server; it speaks HTTP to it like any
//! client, and runs `replay` and `verify` as subprocesses on the data dir
//! it leaves behind. `--quick` shrinks every row to a smoke run (a test).
//!
//! The server runs with `RUST_LOG=warn` unless RUST_LOG is set: the access
//! log is a line per request, which a load test would mostly measure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// A smoke run: every row, with tiny counts and fractions of a second.
    #[arg(long)]
    quick: bool,
    /// Parent of the temporary data dir (default: the system's temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Volumes created for the RSS and list rows (the 100,000),
    /// unless `--volume-seconds` runs out first.
    #[arg(long, default_value_t = 100_000)]
    volumes: usize,
    /// At most this many seconds spent creating them.
    #[arg(long, default_value_t = 600)]
    volume_seconds: u64,
    /// Events in the log before the replay and cold-start rows (the
    /// issue's 1 M), grown by durable updates unless `--log-seconds` runs
    /// out first.
    #[arg(long, default_value_t = 1_000_000)]
    log_events: u64,
    /// At most this many seconds spent growing the log.
    #[arg(long, default_value_t = 600)]
    log_seconds: u64,
    /// The executable run as the server (and as `replay`, `verify` and the
    /// remote executor): by default this one. Another build's, to measure
    /// it with this bench: both then fill the same sizes.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Seconds each durable-request row runs.
    #[arg(long, default_value_t = 5)]
    durable_seconds: u64,
    /// Only these groups of rows (comma-separated: cycles, remote, list,
    /// durable, one, snapshot, replay), to measure one change quickly; the volumes
    /// the later rows need are always created, and verify always runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Keep the data dir (to profile `replay` or a cold start on it).
    #[arg(long)]
    keep: bool,
}

const PROJECT: &str = "bench";
const USER_TOKEN: &str = "bench:bench";
const ADMIN_TOKEN: &str = "admin:bench";

/// The executable under measurement (`--server`, else this one).
static SERVER_EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn server_exe() -> Result<PathBuf> {
    match SERVER_EXE.get() {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_exe()?),
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(p) = &args.server {
        let p = std::fs::canonicalize(p).with_context(|| format!("--server {}", p.display()))?;
        let _ = SERVER_EXE.set(p);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let data = parent.join(format!("blockledger-bench-{}", std::process::id()));
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    std::fs::create_dir_all(&data)?;
    let keep = args.keep;
    let out = rt.block_on(Bench::new(args, data.clone()).run());
    if keep {
        eprintln!("data dir kept: {}", data.display());
    } else {
        let _ = std::fs::remove_dir_all(&data);
    }
    out
}

/// One row of the table.
struct Row {
    what: String,
    measured: String,
    target: &'static str,
}

struct Bench {
    args: BenchArgs,
    data: PathBuf,
    rows: Vec<Row>,
}

/// How much each row does: (full, quick).
fn pick<T>(quick: bool, full: T, small: T) -> T {
    if quick {
        small
    } else {
        full
    }
}

impl Bench {
    fn new(args: BenchArgs, data: PathBuf) -> Self {
        Bench {
            args,
            data,
            rows: Vec::new(),
        }
    }

    /// Whether the group of rows `what` runs.
    fn wants(&self, what: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|o| o == what)
    }

    fn row(&mut self, what: impl Into<String>, measured: impl Into<String>, target: &'static str) {
        let row = Row {
            what: what.into(),
            measured: measured.into(),
            target,
        };
        println!("  {} | {} | {}", row.what, row.measured, row.target);
        let _ = std::io::stdout().flush();
        self.rows.push(row);
    }

    async fn run(mut self) -> Result<()> {
        let q = self.args.quick;
        println!(
            "blockledger bench{} — server: {} serve --backend qcow2, data {}",
            if q { " --quick" } else { "" },
            server_exe()?.display(),
            self.data.display()
        );
        let (srv, _) = Server::start(&self.data)?;
        let api = Api::new(&srv.base)?;
        let quota = json!({"quota_set": {"volumes": -1, "gigabytes": -1, "snapshots": -1}});
        let (s, b) = api
            .call(
                Method::PUT,
                &format!("/v2/{PROJECT}/os-quota-sets/{PROJECT}"),
                Some(&quota),
                ADMIN_TOKEN,
            )
            .await?;
        if s != 200 {
            bail!("raising the quota: {s} {}", String::from_utf8_lossy(&b));
        }

        // Create → available → delete → gone, as control_plane.py does.
        for (clients, full, small) in [(1, 40, 3), (4, 200, 8), (16, 300, 16), (64, 400, 64)] {
            if !self.wants("cycles") {
                break;
            }
            let n = pick(q, full, small);
            let r = cycles(&api, clients, n).await?;
            self.row(
                format!("create→available→delete→gone, {clients} clients ({n} cycles)"),
                format!(
                    "{:.1} cycles/s, available p50 {}, {} errors",
                    r.per_s,
                    ms(r.available_p50),
                    r.errors
                ),
                match clients {
                    4 => "≥ 106 cycles/s (20× Cinder's best)",
                    64 => "grows with clients; zero errors at 64",
                    _ => "grows with clients until the CPU is full",
                },
            );
        }

        if self.wants("remote") {
            self.remote_rows().await?;
        }

        // Many volumes: the list and RSS rows, and 400 of them for the
        // durable rows.
        let secs = pick(q, self.args.volume_seconds, 1);
        let (made, took) = create_many(&api, Duration::from_secs(secs), self.args.volumes).await?;
        let rss = srv.rss_kib().unwrap_or(0);
        self.row(
            format!(
                "RSS with {made} volumes (created in {:.0} s)",
                took.as_secs_f64()
            ),
            format!("{:.0} MiB", rss as f64 / 1024.0),
            "— (issue: with 100,000 volumes)",
        );
        let ids = volume_ids(&api, 400).await?;

        let mut lat = Vec::new();
        let mut listed = 0;
        let lists = if self.wants("list") {
            pick(q, 200, 5)
        } else {
            0
        };
        for _ in 0..lists {
            let t = Instant::now();
            let (s, body) = api
                .call(
                    Method::GET,
                    &format!("/v3/{PROJECT}/volumes/detail?limit=1000&sort=created_at:desc"),
                    None,
                    USER_TOKEN,
                )
                .await?;
            lat.push(t.elapsed());
            if s != 200 {
                bail!("list: {s}");
            }
            listed = serde_json::from_slice::<Value>(&body)?["volumes"]
                .as_array()
                .map_or(0, Vec::len);
        }
        if lists > 0 {
            self.row(
                format!("GET /volumes/detail?limit=1000 ({listed} rows)"),
                format!(
                    "p50 {}, p99 {}",
                    ms(pct(&mut lat, 0.5)),
                    ms(pct(&mut lat, 0.99))
                ),
                "p99 < 20 ms",
            );
        }

        // Durable metadata updates.
        let d = Duration::from_millis(pick(q, self.args.durable_seconds * 1000, 300));
        for clients in [1, 8, 64] {
            if !self.wants("durable") {
                break;
            }
            let before = Batches::now(&api).await?;
            let cpu = srv.cpu();
            let r = durable(&api, &ids, clients, d, None).await?;
            let cpu = (srv.cpu() - cpu).as_secs_f64() / (r.per_s * d.as_secs_f64()).max(1.0);
            let batches = before.since(&api).await?;
            self.row(
                format!(
                    "durable POST …/metadata over {} volumes, {clients} clients",
                    ids.len()
                ),
                format!(
                    "{:.0}/s, p50 {}, p99 {} ({batches}; server CPU {:.0} µs/request)",
                    r.per_s,
                    ms(r.p50),
                    ms(r.p99),
                    cpu * 1e6
                ),
                if clients == 64 { "≥ 10,000/s" } else { "—" },
            );
        }
        if self.wants("durable") {
            let r = durable(&api, &ids, 16, d, Some(pick(q, 1000.0, 200.0))).await?;
            let (slot50, slot99) = r.scheduled.unwrap_or_default();
            self.row(
                format!(
                    "durable POST …/metadata paced at {:.0}/s",
                    pick(q, 1000.0, 200.0)
                ),
                format!(
                    "{:.0}/s, p50 {}, p99 {} (from each slot, the client's timer included: p50 {}, p99 {})",
                    r.per_s,
                    ms(r.p50),
                    ms(r.p99),
                    ms(slot50),
                    ms(slot99)
                ),
                "p99 < 10 ms at 1,000/s",
            );
        }
        if self.wants("one") {
            let one = create_volume(&api, 1).await?;
            wait_volume(&api, &one, "available").await?;
            for clients in [1, 8, 64] {
                let r = durable(&api, std::slice::from_ref(&one), clients, d, None).await?;
                self.row(
                    format!("durable POST …/metadata on one volume, {clients} clients"),
                    format!("{:.0}/s, p50 {}, p99 {}", r.per_s, ms(r.p50), ms(r.p99)),
                    "—",
                );
            }
            // The long stream against a fresh volume's, in alternating
            // slices of the same length: the machine's load drifts over
            // seconds (other processes), and back-to-back runs of several
            // seconds each measured that drift as much as the stream.
            let young = create_volume(&api, 1).await?;
            wait_volume(&api, &young, "available").await?;
            let rounds = 6u32;
            let (mut fresh, mut long) = (0.0, 0.0);
            for _ in 0..rounds {
                let slice = d / rounds;
                fresh += durable(&api, std::slice::from_ref(&young), 1, slice, None)
                    .await?
                    .per_s;
                long += durable(&api, std::slice::from_ref(&one), 1, slice, None)
                    .await?
                    .per_s;
            }
            let (fresh, after) = (fresh / f64::from(rounds), long / f64::from(rounds));
            let stream_len = stream_length(&api, &one).await?;
            let young_len = stream_length(&api, &young).await?;
            self.row(
                format!(
                    "one volume, 1 client: fresh vs after {stream_len} events in its stream (fresh: {young_len})"
                ),
                format!(
                    "{:.0}/s → {:.0}/s, ratio {:.2} ({rounds} alternating slices)",
                    fresh,
                    after,
                    after / fresh.max(1e-9)
                ),
                "ratio ≥ 0.7",
            );
        }

        // Snapshot → available at 1 GiB and 1 TiB.
        for (size, label) in [(1, "1 GiB"), (1024, "1 TiB")] {
            if !self.wants("snapshot") {
                break;
            }
            let vol = create_volume(&api, size).await?;
            wait_volume(&api, &vol, "available").await?;
            let mut lat = Vec::new();
            for _ in 0..pick(q, 30, 3) {
                lat.push(snapshot(&api, &vol).await?);
            }
            let n = lat.len();
            self.row(
                format!("snapshot → available, {label} volume ({n} snapshots)"),
                format!("p50 {}", ms(pct(&mut lat, 0.5))),
                "median < 20 ms",
            );
        }

        // A large log: durable events until it holds `--log-events`, or
        // the time given runs out.
        let (secs, target) = if self.wants("replay") {
            (
                pick(q, self.args.log_seconds, 1),
                pick(q, self.args.log_events, 0),
            )
        } else {
            (0, 0)
        };
        let budget = Instant::now() + Duration::from_secs(secs);
        let mut head = log_head(&api).await?;
        while head < target && Instant::now() < budget {
            let left = budget.saturating_duration_since(Instant::now());
            durable(&api, &ids, 64, left.min(Duration::from_secs(5)), None).await?;
            head = log_head(&api).await?;
        }
        srv.stop()?;
        if self.wants("replay") {
            let t = Instant::now();
            let out = Command::new(server_exe()?)
                .args(["replay", "--data-dir"])
                .arg(&self.data)
                .env("RUST_LOG", "warn")
                .output()?;
            let took = t.elapsed();
            if !out.status.success() {
                bail!("replay: {}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let n: u64 = text
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| anyhow!("unexpected replay output {text:?}"))?;
            self.row(
                format!("blockledger replay of {n} events (process, open to exit)"),
                format!(
                    "{:.2} s = {:.0} events/s",
                    took.as_secs_f64(),
                    n as f64 / took.as_secs_f64()
                ),
                "≥ 300,000 events/s",
            );

            let t = Instant::now();
            let (srv2, listening) = Server::start(&self.data)?;
            let api2 = Api::new(&srv2.base)?;
            let (s, _) = api2
                .call(
                    Method::GET,
                    &format!("/v3/{PROJECT}/volumes/detail?limit=1000"),
                    None,
                    USER_TOKEN,
                )
                .await?;
            if s != 200 {
                bail!("list after restart: {s}");
            }
            let served = t.elapsed();
            self.row(
                format!("cold start with {head} events"),
                format!(
                    "listening after {}, first list served after {}",
                    ms(listening),
                    ms(served)
                ),
                "— (issue: with 1 M events)",
            );
            srv2.stop()?;
        }

        let out = Command::new(server_exe()?)
            .args(["verify", "--data-dir"])
            .arg(&self.data)
            .env("RUST_LOG", "warn")
            .output()?;
        let verdict = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ok = out.status.success();
        self.row(
            "blockledger verify after the bench",
            if ok {
                verdict
            } else {
                format!("FAILED: {}", String::from_utf8_lossy(&out.stderr).trim())
            },
            "ok",
        );

        println!();
        println!("| what | measured | target |");
        println!("| --- | --- | --- |");
        for r in &self.rows {
            println!("| {} | {} | {} |", r.what, r.measured, r.target);
        }
        if !ok {
            bail!("verify failed after the bench");
        }
        Ok(())
    }
}

/// The backend the `remote` rows' executor process serves.
const REMOTE_BACKEND: &str = "bench-remote";
/// The volume type placed on it.
const REMOTE_TYPE: &str = "bench-remote";

impl Bench {
    /// Issue 16's row: the same cycles with the executor embedded in the
    /// server and as a process of its own (`blockledger executor`, through
    /// the internal API), from one run: a second server with an executor
    /// key, one remote executor on its own storage, and the cycles run
    /// alternately on a type of the embedded backends and on the remote
    /// backend's type, so both see the same machine at the same time.
    async fn remote_rows(&mut self) -> Result<()> {
        let q = self.args.quick;
        let dir = self.data.join("remote");
        let (server_dir, storage) = (dir.join("server"), dir.join("storage"));
        std::fs::create_dir_all(&server_dir)?;
        let key = dir.join("executor.key");
        // A fresh secret per run (the bench's own, never reused).
        std::fs::write(&key, format!("bench-{}\n", uuid::Uuid::new_v4().simple()))?;
        let (srv, _) = Server::start_with(
            &server_dir,
            &["--executor-key-file", &key.to_string_lossy()],
        )?;
        let exec = ExecutorProc::start(&srv.base, &storage, &key, &server_dir.join("images"))?;
        let api = Api::new(&srv.base)?;
        let quota = json!({"quota_set": {"volumes": -1, "gigabytes": -1, "snapshots": -1}});
        api.call(
            Method::PUT,
            &format!("/v2/{PROJECT}/os-quota-sets/{PROJECT}"),
            Some(&quota),
            ADMIN_TOKEN,
        )
        .await?;
        // The remote backend is placeable once its executor registered it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, b) = api
                .call(
                    Method::GET,
                    &format!("/v3/{PROJECT}/scheduler-stats/get_pools?detail=true"),
                    None,
                    ADMIN_TOKEN,
                )
                .await?;
            if String::from_utf8_lossy(&b).contains(REMOTE_BACKEND) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the remote executor's backend was not registered within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ty = json!({"volume_type": {"name": REMOTE_TYPE,
            "extra_specs": {"volume_backend_name": REMOTE_BACKEND}}});
        let (s, b) = api
            .call(
                Method::POST,
                &format!("/v3/{PROJECT}/types"),
                Some(&ty),
                ADMIN_TOKEN,
            )
            .await?;
        if s != 200 {
            bail!(
                "creating the remote type: {s} {}",
                String::from_utf8_lossy(&b)
            );
        }
        for (clients, full, small) in [(1, 40, 3), (4, 200, 8), (16, 300, 16)] {
            let n = pick(q, full, small);
            // Half each, alternately, twice: load drift hits both alike.
            let (mut emb, mut rem) = (Vec::new(), Vec::new());
            for _ in 0..2 {
                emb.push(cycles_of(&api, clients, n / 2, None).await?);
                rem.push(cycles_of(&api, clients, n / 2, Some(REMOTE_TYPE)).await?);
            }
            let mean = |v: &[Cycles]| v.iter().map(|c| c.per_s).sum::<f64>() / v.len() as f64;
            let errors: usize = emb.iter().chain(&rem).map(|c| c.errors).sum();
            let (e, r) = (mean(&emb), mean(&rem));
            let mut ep50: Vec<Duration> = emb.iter().map(|c| c.available_p50).collect();
            let mut rp50: Vec<Duration> = rem.iter().map(|c| c.available_p50).collect();
            self.row(
                format!("create→available→delete→gone, {clients} clients ({n} cycles each): executor embedded vs remote"),
                format!(
                    "{e:.1} vs {r:.1} cycles/s (remote/embedded {:.2}), available p50 {} vs {}, {errors} errors",
                    r / e.max(1e-9),
                    ms(pct(&mut ep50, 0.5)),
                    ms(pct(&mut rp50, 0.5)),
                ),
                "— (issue 16: remote executor figures)",
            );
        }
        exec.stop()?;
        srv.stop()?;
        let out = Command::new(server_exe()?)
            .args(["verify", "--data-dir"])
            .arg(&server_dir)
            .env("RUST_LOG", "warn")
            .output()?;
        if !out.status.success() {
            bail!(
                "verify failed on the remote rows' server: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The `remote` rows' executor: this executable's `executor`.
struct ExecutorProc {
    child: Option<Child>,
}

impl ExecutorProc {
    fn start(server: &str, storage: &Path, key: &Path, images: &Path) -> Result<Self> {
        let child = Command::new(server_exe()?)
            .args(["executor", "--server", server, "--backend", REMOTE_BACKEND])
            .args(["--storage", "qcow2", "--name", "bench"])
            .arg("--data-dir")
            .arg(storage)
            .arg("--key-file")
            .arg(key)
            .arg("--images-dir")
            .arg(images)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the executor")?;
        Ok(ExecutorProc { child: Some(child) })
    }

    fn stop(mut self) -> Result<()> {
        terminate(self.child.take())
    }
}

impl Drop for ExecutorProc {
    fn drop(&mut self) {
        kill(self.child.take());
    }
}

/// SIGTERM a child process (the server, an executor), then wait for it to
/// finish its work and exit.
fn terminate(child: Option<Child>) -> Result<()> {
    if let Some(mut c) = child {
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        c.wait()?;
    }
    Ok(())
}

/// SIGKILL and reap a child process left running (the bench ended early).
fn kill(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The server under test: this executable's `serve`.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Server {
    /// Starts it and returns with the time until it printed its address.
    fn start(data: &Path) -> Result<(Server, Duration)> {
        Self::start_with(data, &[])
    }

    /// With extra `serve` flags.
    fn start_with(data: &Path, extra: &[&str]) -> Result<(Server, Duration)> {
        let t = Instant::now();
        let mut child = Command::new(server_exe()?)
            .args(["serve", "--auth", "noauth", "--listen", "127.0.0.1:0"])
            .args(["--backend", "qcow2"])
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the server")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let listening = t.elapsed();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("unexpected first line from the server: {line:?}"))?
            .to_string();
        Ok((
            Server {
                child: Some(child),
                base,
            },
            listening,
        ))
    }

    /// CPU time the server process has used so far (user + system).
    fn cpu(&self) -> Duration {
        let Some(c) = self.child.as_ref() else {
            return Duration::ZERO;
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|w| w.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 of stat (11 and 12 here), in
        // clock ticks (100 per second on Linux).
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    /// Resident memory of the server process, in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// SIGTERM, then wait for it to finish its work and exit.
    fn stop(mut self) -> Result<()> {
        terminate(self.child.take())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(self.child.take());
    }
}

#[derive(Clone)]
struct Api {
    c: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Result<Self> {
        Ok(Api {
            c: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                // Below the server's keep-alive idle timeout (5 s,
                // `--header-timeout-ms`): a connection pooled longer can be
                // closed by the server just as it is reused, and the request
                // fails with "connection closed before message completed"
                // (seen once in bench_smoke_run_prints_every_row).
                .pool_idle_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(120))
                .build()?,
            base: base.to_string(),
        })
    }

    async fn call(
        &self,
        m: Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Result<(u16, Vec<u8>)> {
        let mut r = self
            .c
            .request(m, format!("{}{path}", self.base))
            .header("X-Auth-Token", token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await?;
        let s = resp.status().as_u16();
        Ok((s, resp.bytes().await?.to_vec()))
    }

    async fn json(&self, m: Method, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let (s, b) = self.call(m, path, body, USER_TOKEN).await?;
        Ok((s, serde_json::from_slice(&b).unwrap_or(Value::Null)))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

async fn create_volume(api: &Api, size: u64) -> Result<String> {
    create_typed(api, size, None).await
}

async fn create_typed(api: &Api, size: u64, volume_type: Option<&str>) -> Result<String> {
    let mut body = json!({"volume": {"size": size, "name": "bench"}});
    if let Some(t) = volume_type {
        body["volume"]["volume_type"] = json!(t);
    }
    let (s, b) = api
        .json(Method::POST, &format!("/v3/{PROJECT}/volumes"), Some(&body))
        .await?;
    if s != 202 {
        bail!("create: {s} {b}");
    }
    b["volume"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("create answered without an id: {b}"))
}

/// Polls every 5 ms (control_plane.py --poll 0.005) until the volume has
/// `want` ("gone": 404), fails on an error status or after two minutes.
async fn wait_volume(api: &Api, id: &str, want: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let (s, b) = api
            .json(Method::GET, &format!("/v3/{PROJECT}/volumes/{id}"), None)
            .await?;
        let status = if s == 404 {
            "gone"
        } else {
            b["volume"]["status"].as_str().unwrap_or("")
        };
        if status == want {
            return Ok(());
        }
        if status.starts_with("error") {
            bail!("volume {id} went {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("volume {id} never {want}")
}

struct Cycles {
    per_s: f64,
    available_p50: Duration,
    errors: usize,
}

async fn cycles(api: &Api, clients: usize, n: usize) -> Result<Cycles> {
    cycles_of(api, clients, n, None).await
}

/// `cycles` with volumes of `volume_type` (None: the default type).
async fn cycles_of(
    api: &Api,
    clients: usize,
    n: usize,
    volume_type: Option<&'static str>,
) -> Result<Cycles> {
    let left = Arc::new(AtomicUsize::new(n));
    let avail = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (api, left, avail, errors) = (api.clone(), left.clone(), avail.clone(), errors.clone());
        tasks.spawn(async move {
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                .is_ok()
            {
                let t0 = Instant::now();
                let one = async {
                    let id = create_typed(&api, 1, volume_type).await?;
                    wait_volume(&api, &id, "available").await?;
                    let a = t0.elapsed();
                    let (s, _) = api
                        .call(
                            Method::DELETE,
                            &format!("/v3/{PROJECT}/volumes/{id}"),
                            None,
                            USER_TOKEN,
                        )
                        .await?;
                    if s != 202 {
                        bail!("delete: {s}");
                    }
                    wait_volume(&api, &id, "gone").await?;
                    Ok::<_, anyhow::Error>(a)
                };
                match one.await {
                    Ok(a) => avail.lock().unwrap_or_else(|p| p.into_inner()).push(a),
                    Err(e) => {
                        eprintln!("cycle failed: {e:#}");
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = t.elapsed();
    let mut avail = std::mem::take(&mut *avail.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Cycles {
        per_s: avail.len() as f64 / wall.as_secs_f64(),
        available_p50: pct(&mut avail, 0.5),
        errors: errors.load(Ordering::SeqCst),
    })
}

/// Creates volumes with 64 clients for `budget` (at most `cap`), then waits
/// until none is still being created. Returns how many and how long.
async fn create_many(api: &Api, budget: Duration, cap: usize) -> Result<(usize, Duration)> {
    let t = Instant::now();
    let made = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (api, made) = (api.clone(), made.clone());
        tasks.spawn(async move {
            while t.elapsed() < budget && made.load(Ordering::SeqCst) < cap {
                create_volume(&api, 1).await?;
                made.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (s, b) = api
            .json(
                Method::GET,
                &format!("/v3/{PROJECT}/volumes?status=creating&limit=1"),
                None,
            )
            .await?;
        if s == 200 && b["volumes"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if Instant::now() > deadline {
            bail!("volumes still creating after ten minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((made.load(Ordering::SeqCst), t.elapsed()))
}

/// Up to `n` available volumes' ids.
async fn volume_ids(api: &Api, n: usize) -> Result<Vec<String>> {
    let (s, b) = api
        .json(
            Method::GET,
            &format!("/v3/{PROJECT}/volumes?status=available&limit={n}"),
            None,
        )
        .await?;
    if s != 200 {
        bail!("list: {s} {b}");
    }
    let ids: Vec<String> = b["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        bail!("no available volume to update");
    }
    Ok(ids)
}

struct Durable {
    per_s: f64,
    p50: Duration,
    p99: Duration,
    /// Paced runs only: the same latencies counted from each request's
    /// scheduled time even when the client's timer, not the server, made
    /// it late (tokio's timer fires on its next millisecond tick).
    scheduled: Option<(Duration, Duration)>,
}

/// `clients` loops of POST …/metadata over `ids` for `d`; with `rate`, the
/// requests are spread over time at that many per second in all. A
/// request whose slot came while its client was still waiting on an
/// earlier answer is counted from its slot, so a stall is not hidden
/// (coordinated omission); one whose client slept until its slot is
/// counted from when the timer woke it. Before, every latency counted from
/// the slot, and tokio's timer, which fires on its next millisecond tick
/// (and later when the bench's client waits for a core the server is
/// using), added up to 1 ms and more of the client's own to every request.
async fn durable(
    api: &Api,
    ids: &[String],
    clients: usize,
    d: Duration,
    rate: Option<f64>,
) -> Result<Durable> {
    let ids = Arc::new(ids.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (api, ids, next) = (api.clone(), ids.clone(), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut late = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let (start, slot) = match rate {
                    Some(r) => {
                        let at = t + Duration::from_secs_f64(k as f64 / r);
                        if Instant::now() < at {
                            tokio::time::sleep_until(at.into()).await;
                            (Instant::now(), at)
                        } else {
                            (at, at)
                        }
                    }
                    None => {
                        let now = Instant::now();
                        (now, now)
                    }
                };
                if slot.duration_since(t) >= d {
                    break;
                }
                let id = &ids[(k as usize) % ids.len()];
                let body = json!({"metadata": {"bench": k.to_string()}});
                let (s, b) = api
                    .call(
                        Method::POST,
                        &format!("/v3/{PROJECT}/volumes/{id}/metadata"),
                        Some(&body),
                        USER_TOKEN,
                    )
                    .await?;
                if s != 200 {
                    bail!("metadata: {s} {}", String::from_utf8_lossy(&b));
                }
                lat.push(start.elapsed());
                late.push(slot.elapsed());
            }
            Ok::<_, anyhow::Error>((lat, late))
        });
    }
    let (mut lat, mut late) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (l, s) = r??;
        lat.extend(l);
        late.extend(s);
    }
    let wall = t.elapsed();
    Ok(Durable {
        per_s: lat.len() as f64 / wall.as_secs_f64(),
        p50: pct(&mut lat, 0.5),
        p99: pct(&mut lat, 0.99),
        scheduled: rate.map(|_| (pct(&mut late, 0.5), pct(&mut late, 0.99))),
    })
}

/// Events in a volume's stream (its last version), from the audit trail.
async fn stream_length(api: &Api, id: &str) -> Result<u64> {
    let mut after = 0u64;
    let mut last = 0u64;
    loop {
        let (s, b) = api
            .call(
                Method::GET,
                &format!("/v2/{PROJECT}/events?stream=volume-{id}&after={after}&limit=1000"),
                None,
                ADMIN_TOKEN,
            )
            .await?;
        if s != 200 {
            bail!("events: {s}");
        }
        let b: Value = serde_json::from_slice(&b)?;
        let events = b["events"].as_array().cloned().unwrap_or_default();
        let Some(e) = events.last() else {
            return Ok(last);
        };
        last = e["stream_version"].as_u64().unwrap_or(last);
        after = e["position"].as_u64().unwrap_or(u64::MAX);
    }
}

/// POST a snapshot of `vol` and poll (every millisecond) until it is
/// available: the time from the request to the status.
async fn snapshot(api: &Api, vol: &str) -> Result<Duration> {
    let t = Instant::now();
    let body = json!({"snapshot": {"volume_id": vol, "force": true, "name": "bench"}});
    let (s, b) = api
        .json(
            Method::POST,
            &format!("/v3/{PROJECT}/snapshots"),
            Some(&body),
        )
        .await?;
    if s != 202 {
        bail!("snapshot: {s} {b}");
    }
    let id = b["snapshot"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("snapshot without an id: {b}"))?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let (_, b) = api
            .json(Method::GET, &format!("/v3/{PROJECT}/snapshots/{id}"), None)
            .await?;
        match b["snapshot"]["status"].as_str() {
            Some("available") => return Ok(t.elapsed()),
            Some(s) if s.starts_with("error") => bail!("snapshot {id} went {s}"),
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    bail!("snapshot {id} never available")
}

/// The sum and count of a histogram in /metrics (0, 0 when absent).
async fn histogram(api: &Api, name: &str) -> Result<(f64, f64)> {
    let (_, b) = api.call(Method::GET, "/metrics", None, USER_TOKEN).await?;
    let text = String::from_utf8_lossy(&b);
    let find = |suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((find("sum"), find("count")))
}

/// Group commits while `f` ran: how many jobs shared a commit, how long
/// a transaction took on the writer, and how many fsyncs made them durable
/// and how long those took, on average (from the log's histograms).
struct Batches {
    jobs: (f64, f64),
    secs: (f64, f64),
    syncs: (f64, f64),
}

impl Batches {
    async fn now(api: &Api) -> Result<Self> {
        Ok(Batches {
            jobs: histogram(api, "blockledger_eventstore_batch_jobs").await?,
            secs: histogram(api, "blockledger_eventstore_batch_seconds").await?,
            syncs: histogram(api, "blockledger_eventstore_sync_seconds").await?,
        })
    }

    /// "N commits of J jobs, S ms each; F fsyncs, T ms each" since `self`.
    async fn since(&self, api: &Api) -> Result<String> {
        let now = Batches::now(api).await?;
        let n = now.jobs.1 - self.jobs.1;
        if n <= 0.0 {
            return Ok("no commits".into());
        }
        let syncs = now.syncs.1 - self.syncs.1;
        Ok(format!(
            "{n:.0} commits of {:.1} jobs, {:.2} ms each; {syncs:.0} fsyncs, {:.2} ms each",
            (now.jobs.0 - self.jobs.0) / n,
            (now.secs.0 - self.secs.0) / n * 1e3,
            (now.syncs.0 - self.syncs.0) / syncs.max(1.0) * 1e3
        ))
    }
}

/// The log's head, from /metrics.
async fn log_head(api: &Api) -> Result<u64> {
    let (_, b) = api.call(Method::GET, "/metrics", None, USER_TOKEN).await?;
    let text = String::from_utf8_lossy(&b);
    text.lines()
        .find_map(|l| l.strip_prefix("blockledger_log_head_position "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no log head in /metrics"))
}
