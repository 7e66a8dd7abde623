//! Remote executors (issue 16): the server and executor processes of their
//! own, talking through the internal API (`/internal/v1/`, shared key).
//!
//! - Failover: two executors serve one backend (the server's embedded
//!   executor does not); a full clone of a volume holding data is under
//!   way when the executor holding its lease is SIGKILLed; the other takes
//!   the item over once the lease expires and finishes it. One outcome for
//!   the item, the data is all there, nothing else requested is lost, no
//!   temporary file is left, `verify` passes.
//! - The internal API refuses a request without the key or with a wrong
//!   one (401), and does not exist on a server started without a key
//!   (404); a refused request changes nothing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const BACKEND: &str = "remote1";
const KEY: &str = "a-shared-executor-secret-of-some-length";
/// Lease of the executors in the failover test: short, so the takeover
/// comes within the test's deadlines (renewed every third of it).
const LEASE_SECS: &str = "2";
const GIB: u64 = 1 << 30;

/// One `blockledger executor` process; killed when dropped.
struct ExecProc {
    name: String,
    child: Option<Child>,
}

impl ExecProc {
    fn start(srv: &Server, name: &str, data: &Path, key: &Path, path_env: &str) -> ExecProc {
        let child = Command::new(env!("CARGO_BIN_EXE_blockledger"))
            .args(["executor", "--server", &srv.base, "--backend", BACKEND])
            .args([
                "--storage",
                "qcow2",
                "--name",
                name,
                "--lease-secs",
                LEASE_SECS,
            ])
            .arg("--data-dir")
            .arg(data)
            .arg("--key-file")
            .arg(key)
            .arg("--images-dir")
            .arg(srv.data_dir.join("images"))
            .env("PATH", path_env)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the executor");
        ExecProc {
            name: name.to_string(),
            child: Some(child),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn sigkill(&mut self) {
        if let Some(c) = self.child.take() {
            kill_child(c);
        }
    }

    /// SIGTERM: a graceful stop, which must come within the deadline.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, &format!("executor {}", self.name));
        }
    }
}

impl Drop for ExecProc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The internal API as an executor speaks it.
struct Internal {
    http: reqwest::Client,
    base: String,
}

impl Internal {
    fn new(srv: &Server) -> Internal {
        Internal {
            http: reqwest::Client::new(),
            base: srv.base.clone(),
        }
    }

    async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}/internal/v1/{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, method: &str, path: &str, key: Option<&str>, body: Value) -> u16 {
        let url = format!("{}/internal/v1/{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            m => panic!("method {m}"),
        }
        .json(&body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().await.expect("request").status().as_u16()
    }

    /// A stream's events (with the right key).
    async fn stream(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("streams/{id}"), Some(KEY)).await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    async fn head(&self) -> u64 {
        let (status, body) = self.get("events?after=0&limit=1", Some(KEY)).await;
        assert_eq!(status, 200, "{body}");
        body["head"].as_u64().expect("head")
    }
}

/// A `qemu-img` whose `convert` takes at least `secs` longer (it copies,
/// then waits before it exits: the copy's temporary file stays in place
/// meanwhile, unrenamed, as in a long copy); everything else is the real
/// one. Returns the PATH to run with.
fn slow_convert(dir: &Path, secs: u32) -> String {
    let real = real_qemu_img();
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = convert ]; then\n  {real} \"$@\"; st=$?\n  sleep {secs}\n  exit $st\nfi\nexec {real} \"$@\"\n"
    );
    install_qemu_img(dir, &script)
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    ["volumes", "snapshots"]
        .iter()
        .filter_map(|d| std::fs::read_dir(dir.join(d)).ok())
        .flat_map(|e| e.flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".tmp"))
        })
        .collect()
}

async fn wait_for<T>(what: &str, deadline: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < end, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_key(dir: &Path) -> PathBuf {
    let key = dir.join("executor.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_executor_finishes_a_killed_ones_full_clone_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_dir, exec_dir) = (tmp.path().join("server"), tmp.path().join("storage"));
    std::fs::create_dir_all(&server_dir).unwrap();
    let key = write_key(tmp.path());
    let mut srv = Server::start_args(
        &server_dir,
        "qcow2",
        &["--executor-key-file", key.to_str().unwrap()],
    );
    let internal = Internal::new(&srv);
    let path_env = slow_convert(&tmp.path().join("bin"), 4);
    // Two executors for one backend, on one storage (same host here; on
    // two hosts it would be a shared one).
    let mut execs = [
        ExecProc::start(&srv, "exec-a", &exec_dir, &key, &path_env),
        ExecProc::start(&srv, "exec-b", &exec_dir, &key, &path_env),
    ];
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");

    // The backend is known once an executor registered it.
    admin
        .wait_until(
            "/v3/p1/scheduler-stats/get_pools?detail=true",
            "the remote backend registered",
            |r| r.body.to_string().contains(BACKEND),
        )
        .await;
    let r = admin
        .post(
            "/v3/p1/types",
            &json!({"volume_type": {"name": "remote",
                "extra_specs": {"volume_backend_name": BACKEND}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A source volume holding data, written as a guest would.
    let src = create_volume(
        &c,
        json!({"volume": {"size": 1, "volume_type": "remote", "name": "src"}}),
    )
    .await;
    let src_file = exec_dir.join("volumes").join(&src);
    write_pattern_len("qcow2", &src_file, 0x5a, 64 << 20);

    // The full clone: a volume from a snapshot of it, not linked (the
    // default), a flattened copy of the data (`qemu-img convert`).
    let snap = create_snapshot(&c, &src).await;
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "snapshot_id": snap, "name": "clone"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let clone = r.body["volume"]["id"].as_str().unwrap().to_string();
    // Its copy is under way: the temporary file is there.
    let prefix = format!("{clone}.tmp");
    wait_for("the clone's copy under way", DEADLINE, async || {
        temps(&exec_dir)
            .iter()
            .any(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .then_some(())
    })
    .await;
    // Who holds the item: its lease, on the request's position.
    let pos = internal.stream(&format!("volume-{clone}")).await[0]["position"]
        .as_u64()
        .unwrap();
    let lease = format!("lease-{pos}");
    let first = internal.stream(&lease).await;
    assert_eq!(first[0]["event_type"], "LeaseClaimed", "{first:?}");
    let holder = first.last().unwrap()["data"]["holder"]
        .as_str()
        .unwrap()
        .to_string();
    let (dead, alive) = if holder == execs[0].name {
        (0, 1)
    } else {
        (1, 0)
    };
    assert_eq!(execs[dead].name, holder);
    let dead_pid = execs[dead].pid();
    execs[dead].sigkill();

    // More work while one is dead: none of it may be lost.
    let mut more = Vec::new();
    for i in 0..3 {
        let r = c
            .post(
                "/v3/p1/volumes",
                &json!({"volume": {"size": 1, "volume_type": "remote", "name": format!("after-{i}")}}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        more.push(r.body["volume"]["id"].as_str().unwrap().to_string());
    }
    c.wait_status(&format!("/v3/p1/volumes/{clone}"), "available")
        .await;
    for id in &more {
        c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
            .await;
    }

    // One outcome for the item, by the survivor, under its own lease.
    let events = internal.stream(&format!("volume-{clone}")).await;
    let outcomes: Vec<&Value> = events
        .iter()
        .filter(|e| {
            matches!(
                e["event_type"].as_str(),
                Some("VolumeAllocated" | "VolumeCreateFailed")
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 1, "{events:#?}");
    assert_eq!(outcomes[0]["event_type"], "VolumeAllocated");
    let leases = internal.stream(&lease).await;
    let kinds: Vec<(String, String)> = leases
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["data"]["holder"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let survivor = execs[alive].name.clone();
    assert!(
        kinds.contains(&("LeaseClaimed".into(), survivor.clone())),
        "taken over: {kinds:?}"
    );
    assert_eq!(
        kinds.last(),
        Some(&("LeaseReleased".to_string(), survivor.clone())),
        "{kinds:?}"
    );
    // The data is all there, in a file that stands alone.
    let clone_file = exec_dir.join("volumes").join(&clone);
    assert!(holds_pattern("qcow2", &clone_file, 0x5a));
    assert_eq!(virtual_size(&clone_file), GIB);
    qemu_img_check(&clone_file);
    // The dead executor's temporary file was swept by the survivor.
    assert_eq!(temps(&exec_dir), Vec::<PathBuf>::new());
    // And no copy of the item is left running (the dead executor's
    // helpers die with it, `executor::tool`).
    assert_eq!(
        processes_matching(&["convert", &clone]),
        vec![],
        "helpers of executor {dead_pid} still copy"
    );

    execs[alive].stop();
    srv.stop();
    let (ok, out) = verify(&server_dir);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_api_refuses_a_missing_or_wrong_key_and_is_absent_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let key = write_key(tmp.path());
    let srv = Server::start_args(
        tmp.path(),
        "raw",
        &["--executor-key-file", key.to_str().unwrap()],
    );
    let internal = Internal::new(&srv);
    // Something in the log, so a wrong answer would show.
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    let head = internal.head().await;

    let wrong = "not-the-executor-key-at-all-0000";
    for key in [None, Some(wrong), Some("")] {
        let (s, _) = internal.get("events?after=0", key).await;
        assert_eq!(s, 401, "read with key {key:?}");
        let (s, _) = internal.get(&format!("streams/volume-{id}"), key).await;
        assert_eq!(s, 401);
        let s = internal
            .send(
                "POST",
                "leases/1",
                key,
                json!({"holder": "intruder", "ttl_ms": 60000}),
            )
            .await;
        assert_eq!(s, 401, "claim with key {key:?}");
        let s = internal
            .send(
                "PUT",
                "checkpoints/executor-intruder",
                key,
                json!({"position": 99}),
            )
            .await;
        assert_eq!(s, 401);
        let s = internal
            .send(
                "POST",
                "outcomes",
                key,
                json!({"outcome": {"commands": [{"aggregate": "volume", "id": id,
                    "command": {"command": "fail_work", "kind": "delete", "reason": "x"}}],
                    "metadata": {}, "checkpoint": "executor-intruder", "handled": null,
                    "lease": null}, "mark": null}),
            )
            .await;
        assert_eq!(s, 401, "outcome with key {key:?}");
    }
    // With the right key, positions past the head and malformed holders
    // are refused too: a checkpoint past the head would skip work not yet
    // asked for.
    let past = head + 1_000;
    for (method, path, body) in [
        (
            "PUT",
            "checkpoints/executor-intruder".to_string(),
            json!({"position": past}),
        ),
        (
            "POST",
            format!("leases/{past}"),
            json!({"holder": "a", "ttl_ms": 1000}),
        ),
        (
            "POST",
            "leases/1".to_string(),
            json!({"holder": "a\u{1}b", "ttl_ms": 1000}),
        ),
        (
            "POST",
            "outcomes".to_string(),
            json!({"outcome": {"commands": [], "metadata": {},
                "checkpoint": "executor-intruder", "handled": past,
                "lease": {"item": 1, "holder": "a"}}, "mark": past}),
        ),
    ] {
        let s = internal.send(method, &path, Some(KEY), body).await;
        assert_eq!(s, 400, "{method} {path}");
    }
    // Nothing changed: the head, the lease, the checkpoint.
    assert_eq!(internal.head().await, head);
    assert!(internal.stream("lease-1").await.is_empty());
    let (s, body) = internal
        .get("checkpoints/executor-intruder", Some(KEY))
        .await;
    assert_eq!((s, body["position"].as_u64()), (200, Some(0)));
    // The right key reads.
    let (s, body) = internal.get("events?after=0&limit=2", Some(KEY)).await;
    assert_eq!(s, 200);
    assert_eq!(body["events"].as_array().map(Vec::len), Some(2));
    drop(srv);

    // A server without a key has no internal API at all.
    let tmp2 = tempfile::tempdir().unwrap();
    let plain = Server::start_with(tmp2.path(), "raw");
    let internal = Internal::new(&plain);
    let (s, _) = internal.get("events?after=0", Some(KEY)).await;
    assert_eq!(s, 404);
    let s = internal
        .send(
            "POST",
            "leases/1",
            Some(KEY),
            json!({"holder": "x", "ttl_ms": 1000}),
        )
        .await;
    assert_eq!(s, 404);
}
