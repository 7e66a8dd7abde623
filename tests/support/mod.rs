//! End-to-end harness: the real `blockledger` binary on a random port with a
//! temporary data dir, spoken to over HTTP. Waits poll with a deadline.

#![allow(dead_code)]

pub mod ceph;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    backend: String,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, "qcow2")
    }

    pub fn start_with(data_dir: &Path, backend: &str) -> Server {
        Self::start_args(data_dir, backend, &[])
    }

    /// With extra `serve` flags (e.g. `--sync-deadline-ms`).
    pub fn start_args(data_dir: &Path, backend: &str, extra: &[&str]) -> Server {
        Self::start_env(data_dir, backend, extra, &[])
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, "server");
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.take() {
            kill_child(c);
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        *self = Server::start_with(&self.data_dir.clone(), &self.backend.clone());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self, user: &str, project: &str) -> Client {
        Client {
            // Pooled connections are dropped before the server's 5 s
            // keep-alive idle timeout closes them: one reused at that very
            // moment fails with "connection closed before message completed".
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("a reqwest client"),
            base: self.base.clone(),
            token: format!("{user}:{project}"),
        }
    }
}

/// SIGTERM `c` and wait for it to exit: a graceful stop of any child
/// process the tests start (the server, a remote executor). Its exit status
/// and how long the stop took. If it has not exited after `DEADLINE` it is
/// SIGKILLed and the test fails, naming `what`.
pub fn stop_child(c: &mut Child, what: &str) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    while started.elapsed() < DEADLINE {
        if let Ok(Some(status)) = c.try_wait() {
            return (status, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    let _ = c.wait();
    panic!("{what} did not stop on SIGTERM within {DEADLINE:?}");
}

/// SIGKILL `c` and reap it: a crash.
pub fn kill_child(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Client {
    pub async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.send_raw(method, path, body.map(|b| b.as_bytes().to_vec()))
            .await
    }

    /// Any bytes as the body (not necessarily UTF-8 or JSON); an empty
    /// body is sent as none.
    pub async fn send_bytes(&self, method: &str, path: &str, body: Vec<u8>) -> Reply {
        let body = (!body.is_empty()).then_some(body);
        self.send_raw(method, path, body).await
    }

    async fn send_raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(m, format!("{}{}", self.base, path))
            .header("X-Auth-Token", &self.token)
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(&body.to_string())).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, Some(&body.to_string())).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None).await
    }

    /// Polls `path` until `pred` holds on the reply, or panics at the deadline.
    pub async fn wait_until(&self, path: &str, what: &str, pred: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let r = self.get(path).await;
            if pred(&r) {
                return r;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not reached by the deadline; last reply {} {}",
                    r.status, r.body
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_status(&self, path: &str, status: &str) -> Reply {
        self.wait_until(path, &format!("{path} -> {status}"), |r| {
            r.body["volume"]["status"] == status
        })
        .await
    }
}

/// POST a volume (`body`, the request) and wait until it is available; its id.
pub async fn create_volume(c: &Client, body: Value) -> String {
    let r = c.post("/v3/p1/volumes", &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    id
}

/// Snapshot `vol` (named "s") and wait until it is available; its id.
pub async fn create_snapshot(c: &Client, vol: &str) -> String {
    let r = c
        .post(
            "/v3/p1/snapshots",
            &serde_json::json!({"snapshot": {"volume_id": vol, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(
        &format!("/v3/p1/snapshots/{id}"),
        "snapshot available",
        |r| r.body["snapshot"]["status"] == "available",
    )
    .await;
    id
}

/// Asks for an image of volume `vol` (os-volume_upload_image at `base`, e.g.
/// "/v3/p1") named `name` in `format`; the image's id once accepted (202).
pub async fn start_upload(c: &Client, base: &str, vol: &str, name: &str, format: &str) -> String {
    let r = c
        .post(
            &format!("{base}/volumes/{vol}/action"),
            &serde_json::json!({"os-volume_upload_image": {"image_name": name, "disk_format": format}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Uploads volume `vol` of p1 as image `name` in `format`: the image must
/// end active (not killed) and the volume available again; the image's id.
pub async fn upload_image(c: &Client, vol: &str, name: &str, format: &str) -> String {
    let id = start_upload(c, "/v3/p1", vol, name, format).await;
    let img = c
        .wait_until(&format!("/image/v2/images/{id}"), "image ends", |r| {
            r.body["status"] == "active" || r.body["status"] == "killed"
        })
        .await;
    assert_eq!(img.body["status"], "active", "{}", img.body);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    id
}

/// `qemu-img info` virtual size of a file.
pub fn virtual_size(path: &Path) -> u64 {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["virtual-size"].as_u64().expect("virtual-size")
}

pub fn verify(data_dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_blockledger"))
        .args(["verify", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The documented example `name` from ../shared/examples.
pub fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/examples")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("example json")
}

/// The type skeleton of a JSON value: every key, and each leaf's JSON type.
/// Arrays take the shape of their first element. A null in the documented
/// example is "documented as nullable" and matches any type.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Null => Value::String("null".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::String(_) => Value::String("string".into()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// Asserts that `actual` has exactly the example's field names, and the
/// example's type for every field the example does not print as null.
pub fn assert_same_shape(example: &Value, actual: &Value, ctx: &str) {
    fn walk(e: &Value, a: &Value, path: &str, errs: &mut Vec<String>) {
        // Free-form maps: their keys are the client's, not the schema's.
        let free = path.ends_with(".metadata") || path.ends_with(".volume_image_metadata");
        match (e, a) {
            (Value::Null, _) => {}
            (Value::Object(_), Value::Object(_)) if free => {}
            (Value::Object(em), Value::Object(am)) => {
                for k in em.keys() {
                    if !am.contains_key(k) {
                        errs.push(format!("{path}.{k}: missing"));
                    }
                }
                for k in am.keys() {
                    if !em.contains_key(k) {
                        errs.push(format!("{path}.{k}: not documented"));
                    }
                }
                for (k, ev) in em {
                    if let Some(av) = am.get(k) {
                        walk(ev, av, &format!("{path}.{k}"), errs);
                    }
                }
            }
            (Value::Array(ea), Value::Array(aa)) => {
                if let (Some(e0), Some(a0)) = (ea.first(), aa.first()) {
                    walk(e0, a0, &format!("{path}[]"), errs);
                }
            }
            (e, a) if shape(e) == shape(a) => {}
            (e, a) => errs.push(format!(
                "{path}: documented {} but got {}",
                shape(e),
                shape(a)
            )),
        }
    }
    let mut errs = Vec::new();
    walk(example, actual, "", &mut errs);
    assert!(
        errs.is_empty(),
        "{ctx}: shape differs from the documented example:\n{}",
        errs.join("\n")
    );
}

/// insta settings shared by every snapshot: files in `snapshots/`, ids,
/// times and hosts redacted, every other value kept exact.
pub fn insta_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s.set_sort_maps(true);
    for key in ["id", "volume_id", "job_id", "user_id"] {
        s.add_redaction(&format!(".**.{key}"), "[id]");
    }
    s.add_redaction(".**[\"os-vol-tenant-attr:tenant_id\"]", "[id]");
    for key in [
        "created_at",
        "updated_at",
        "begin_time",
        "end_time",
        "attached_at",
    ] {
        // Keep nulls and "" visible: only a real time is redacted.
        s.add_dynamic_redaction(&format!(".**.{key}"), |v, _| match v.as_str() {
            Some(t) if !t.is_empty() => insta::internals::Content::from("[time]"),
            _ => v,
        });
    }
    s.add_dynamic_redaction(".**.href", |v, _| match v.as_str() {
        Some(h) => insta::internals::Content::from(redact_href(h)),
        None => v,
    });
    s
}

/// `http://127.0.0.1:PORT/v2/<project>/volumes/<uuid>` → `http://[host]/v2/<project>/volumes/[id]`.
pub fn redact_href(h: &str) -> String {
    let rest = h.split_once("://").map(|(_, r)| r).unwrap_or(h);
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    let mut out = String::from("http://[host]");
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < path.len() {
        if i + 36 <= path.len() && uuid::Uuid::parse_str(&path[i..i + 36]).is_ok() {
            out.push_str("[id]");
            i += 36;
        } else if i + 32 <= path.len() && bytes[i..i + 32].iter().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("[id]");
            i += 32;
        } else {
            let c = path[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

// Disk helpers: what a volume's file holds, read and written the way a
// guest would (qemu-io for qcow2, plain IO for raw).

/// Writes `pattern` over the first 4 MiB of the volume behind `path`.
pub fn write_pattern(format: &str, path: &Path, pattern: u8) {
    write_pattern_len(format, path, pattern, 4 << 20);
}

/// Writes `pattern` over the first `len` bytes of the volume behind `path`
/// (the crash tests write more, so that copies of the volume take longer).
pub fn write_pattern_len(format: &str, path: &Path, pattern: u8, len: usize) {
    if format == "raw" {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&vec![pattern; len]).unwrap();
        f.sync_all().unwrap();
        return;
    }
    let out = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            &format!("write -P {pattern:#x} 0 {len}"),
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True if the first 4 MiB of the volume behind `path` are all `pattern`.
pub fn holds_pattern(format: &str, path: &Path, pattern: u8) -> bool {
    if format == "raw" {
        use std::io::Read;
        let mut buf = vec![0u8; 4 << 20];
        std::fs::File::open(path)
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
        return buf.iter().all(|b| *b == pattern);
    }
    let out = Command::new("qemu-io")
        .args([
            "-r",
            "-f",
            "qcow2",
            "-c",
            &format!("read -P {pattern:#x} 0 4M"),
        ])
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    out.status.success() && !text.contains("verification failed")
}

pub fn qemu_img_check(path: &Path) {
    let out = Command::new("qemu-img")
        .args(["check", "-U"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qemu-img check {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub async fn device_path(c: &Client, project: &str, vol: &str) -> (String, std::path::PathBuf) {
    let r = c
        .post(
            &format!("/v3/{project}/volumes/{vol}/action"),
            &serde_json::json!({"os-initialize_connection": {"connector": {}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let info = &r.body["connection_info"];
    assert_eq!(info["driver_volume_type"], "local");
    let path = std::path::PathBuf::from(info["data"]["device_path"].as_str().unwrap());
    assert!(path.is_absolute());
    (info["data"]["format"].as_str().unwrap().to_string(), path)
}

/// How many refusals (`CommandRejected`) the log holds, read by an admin
/// client of project `padmin` through the audit trail.
pub async fn refusals(admin: &Client) -> usize {
    let r = admin
        .get("/v2/padmin/events?stream=requests&limit=1000")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "CommandRejected")
        .count()
}

// Crash and shutdown helpers (issue 15).

impl Server {
    /// With extra `serve` flags and environment variables (e.g. a `PATH`
    /// whose first `qemu-img` is a test double, or helper deadlines).
    pub fn start_env(
        data_dir: &Path,
        backend: &str,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Server {
        Self::start_full(data_dir, backend, extra, env, None)
    }

    /// The one spawn path. Tests speak noauth (`user:project` tokens)
    /// unless `extra` names an `--auth` mode (issue 13's tests start the
    /// built-in identity); `stderr_to` captures the log in a file.
    pub fn start_full(
        data_dir: &Path,
        backend: &str,
        extra: &[&str],
        env: &[(&str, String)],
        stderr_to: Option<&Path>,
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_blockledger"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--backend", backend]);
        if !extra.contains(&"--auth") {
            cmd.args(["--auth", "noauth"]);
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(match stderr_to {
                Some(f) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(f)
                        .expect("log file"),
                ),
                None => Stdio::inherit(),
            });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start blockledger");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server {
            child: Some(child),
            base,
            data_dir: data_dir.to_path_buf(),
            backend: backend.to_string(),
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM; the exit code (None if killed by a signal) and how long
    /// the stop took. Panics if it has not exited after `DEADLINE`.
    pub fn stop_timed(&mut self) -> (Option<i32>, Duration) {
        let mut c = self.child.take().expect("running");
        let (status, took) = stop_child(&mut c, "server");
        (status.code(), took)
    }
}

impl Client {
    /// Like `send`, but a transport failure (the server died) is an `Err`
    /// instead of a panic.
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Reply, String> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self
            .http
            .request(m, format!("{}{}", self.base, path))
            .header("X-Auth-Token", &self.token)
            .header("Content-Type", "application/json");
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// A copy sharing the connection pool.
    pub fn cloned(&self) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: self.token.clone(),
        }
    }
}

/// Every event's metadata `request_id` in the log, read page by page
/// through the audit trail by `admin` (an admin client).
pub async fn logged_request_ids(admin: &Client) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    let mut after = 0u64;
    loop {
        let r = admin
            .get(&format!("/v2/padmin/events?after={after}&limit=1000"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let events = r.body["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return ids;
        }
        for e in &events {
            if let Some(id) = e["metadata"]["request_id"].as_str() {
                ids.insert(id.to_string());
            }
        }
        match r.body["next_after"].as_u64() {
            Some(n) if n > after => after = n,
            _ => return ids,
        }
    }
}

/// Running processes (not zombies) whose command line contains every one
/// of `needles`: (pid, command line).
pub fn processes_matching(needles: &[&str]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if process_state(pid).is_none_or(|s| s == 'Z' || s == 'X') {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles.iter().all(|n| cmdline.contains(n)) {
            out.push((pid, cmdline.trim().to_string()));
        }
    }
    out
}

/// The state letter of a process (`R`, `S`, `Z`, …), None if it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Children of `parent` that are still running: (pid, command line).
pub fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("X");
        let ppid = f.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && state != "Z" {
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|r| String::from_utf8_lossy(&r).replace('\0', " "))
                .unwrap_or_default();
            out.push((pid, cmdline.trim().to_string()));
        }
    }
    out
}

/// Writes an executable `qemu-img` test double into `dir` (put `dir` first
/// on the server's `PATH`): subcommands in `hang` sleep (as the same
/// process, so killing it ends it), those in `fail` exit 1 with a message,
/// everything else runs the real `qemu-img`.
pub fn fake_qemu_img(dir: &Path, hang: &[&str], fail: &[&str]) -> String {
    let real = real_qemu_img();
    let mut script = String::from("#!/bin/sh\ncase \"$1\" in\n");
    for h in hang {
        script.push_str(&format!("  {h}) exec sleep 600 ;;\n"));
    }
    for f in fail {
        script.push_str(&format!(
            "  {f}) echo \"injected failure of qemu-img {f}\" >&2; exit 1 ;;\n"
        ));
    }
    script.push_str(&format!("esac\nexec {real} \"$@\"\n"));
    install_qemu_img(dir, &script)
}

/// The path of the real `qemu-img` (which a test double runs on).
pub fn real_qemu_img() -> String {
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v qemu-img"])
            .output()
            .expect("sh")
            .stdout,
    )
    .expect("path")
    .trim()
    .to_string();
    assert!(!real.is_empty(), "qemu-img not found");
    real
}

/// Writes `script` as an executable `qemu-img` into `dir` (made if
/// missing); the `PATH` to run with, `dir` first.
pub fn install_qemu_img(dir: &Path, script: &str) -> String {
    std::fs::create_dir_all(dir).expect("make the double's dir");
    let path = dir.join("qemu-img");
    std::fs::write(&path, script).expect("write fake qemu-img");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `blockledger ARGS --data-dir DIR` with `stdin` (one line) fed, as an
/// operator runs the identity and audit commands: (exit code, stdout,
/// stderr).
pub fn cli_run(data: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_blockledger"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input
            .write_all(format!("{s}\n").as_bytes())
            .expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("CLI output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cli_run` that must succeed: its stdout.
pub fn cli_ok(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (code, out, err) = cli_run(data, args, stdin);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// The `(id …)` a CLI add prints.
pub fn id_in(out: &str) -> String {
    out.split("(id ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no id in {out:?}"))
        .to_string()
}

/// POST /identity/v3/auth/tokens, password method, project scope: the
/// status and the token.
pub async fn password_login(
    base: &str,
    user: &str,
    password: &str,
    project: &str,
) -> (u16, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}
        }}))
        .send()
        .await
        .expect("login request");
    let token = r
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (r.status().as_u16(), token)
}

/// A `/v3` request at volume microversion `v` ("3.27", "latest", …): the
/// issue 17 tests ask each version and the one below it.
pub async fn at(c: &Client, v: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = c
        .http
        .request(m, format!("{}{}", c.base, path))
        .header("X-Auth-Token", &c.token)
        .header("Content-Type", "application/json")
        .header("OpenStack-API-Version", format!("volume {v}"));
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}
