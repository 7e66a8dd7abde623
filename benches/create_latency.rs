//! Create → available latency and sequential create throughput, measured
//! against the real release binary over HTTP (issue 2's closing figures).
//!
//!     cargo bench --bench create_latency            # 1,000 creates, qcow2
//!     BENCH_N=200 BENCH_BACKEND=raw cargo bench --bench create_latency

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let backend = std::env::var("BENCH_BACKEND").unwrap_or_else(|_| "qcow2".into());
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_blockledger"))
        .args([
            "serve",
            "--auth",
            "noauth",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
            "--data-dir",
        ])
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start blockledger");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let base = line.trim().trim_start_matches("listening on ").to_string();
    let http = reqwest::Client::new();
    // The bench project gets a quota large enough for the run.
    let r = http
        .put(format!("{base}/v2/bench/os-quota-sets/bench"))
        .header("X-Auth-Token", "admin:bench")
        .json(&json!({"quota_set": {"volumes": -1, "gigabytes": -1}}))
        .send()
        .await
        .expect("quota");
    assert!(r.status().is_success(), "quota update: {}", r.status());
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        let r: Value = http
            .post(format!("{base}/v2/bench/volumes"))
            .header("X-Auth-Token", "admin:bench")
            .json(&json!({"volume": {"size": 1, "name": format!("b{i}")}}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let id = r["volume"]["id"].as_str().expect("id").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: Value = http
                .get(format!("{base}/v2/bench/volumes/{id}"))
                .header("X-Auth-Token", "admin:bench")
                .send()
                .await
                .expect("show")
                .json()
                .await
                .expect("json");
            match v["volume"]["status"].as_str() {
                Some("available") => break,
                Some("creating") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_micros(200)).await
                }
                other => panic!("volume {id} ended {other:?}"),
            }
        }
        latencies.push(t0.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "create->available, {n} sequential creates, backend {backend}: median {:.2} ms, p95 {:.2} ms, max {:.2} ms; {:.1} creates/s",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        pct(1.0).as_secs_f64() * 1e3,
        n as f64 / total.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
}
