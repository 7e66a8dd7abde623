//! The test Ceph cluster (tests/ceph/start.sh, run by test.sh), seen from
//! the `rbd` tool: one copy for tests/rbd_e2e.rs (through `support`) and
//! executor/tests/rbd_data.rs (which includes this file by path, as the two
//! live in different crates).
//!
//! Bytes are written with `rbd import-diff` (a diff stream of one extent,
//! format "rbd diff v1") and read with `rbd export` to stdout: the same
//! cluster-side paths a consumer's writes and reads take.

#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

pub struct Ceph {
    pub conf: String,
    pub pool: String,
}

impl Ceph {
    /// The cluster `BLOCKLEDGER_CEPH_CONF` names (pool
    /// `BLOCKLEDGER_CEPH_POOL`, default blockledger), or None (the caller
    /// skips, the reason printed) outside CI; in CI (`CI=true`) a missing
    /// cluster fails, naming `who` needs it.
    pub fn from_env(who: &str) -> Option<Ceph> {
        let pool = std::env::var("BLOCKLEDGER_CEPH_POOL").unwrap_or_else(|_| "blockledger".into());
        match std::env::var("BLOCKLEDGER_CEPH_CONF") {
            Ok(conf) if !conf.is_empty() => Some(Ceph { conf, pool }),
            _ => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("CI=true but BLOCKLEDGER_CEPH_CONF is not set: {who} needs the cluster of tests/ceph/start.sh");
                }
                println!(
                    "skipped: BLOCKLEDGER_CEPH_CONF not set (start a cluster with tests/ceph/start.sh)"
                );
                None
            }
        }
    }

    pub fn rbd(&self) -> Command {
        let mut c = Command::new("rbd");
        c.args(["-c", &self.conf]);
        c
    }

    /// The image of volume `vol`.
    pub fn image(&self, vol: impl Display) -> String {
        format!("{}/volume-{vol}", self.pool)
    }

    /// Writes `len` bytes of `byte` at `off` into image `spec` (a client's
    /// write, through the cluster).
    pub fn write(&self, spec: &str, byte: u8, off: u64, len: u64) {
        let mut diff = b"rbd diff v1\n".to_vec();
        diff.push(b'w');
        diff.extend(off.to_le_bytes());
        diff.extend(len.to_le_bytes());
        diff.extend(std::iter::repeat_n(byte, len as usize));
        diff.push(b'e');
        let mut child = self
            .rbd()
            .args(["import-diff", "--no-progress", "-", spec])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&diff).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "import-diff {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// All of image `spec`'s bytes.
    pub fn read(&self, spec: &str) -> Vec<u8> {
        let out = self
            .rbd()
            .args(["export", "--no-progress", spec, "-"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "export {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// True if image `spec` holds `byte` in every one of the `len` bytes
    /// at `off`.
    pub fn holds(&self, spec: &str, byte: u8, off: u64, len: u64) -> bool {
        let data = self.read(spec);
        let (off, len) = (off as usize, len as usize);
        data.len() >= off + len && data[off..off + len].iter().all(|&x| x == byte)
    }

    /// `rbd info` of image (or snapshot) `spec`, None if it does not exist.
    pub fn info(&self, spec: &str) -> Option<Value> {
        let out = self
            .rbd()
            .args(["info", "--format", "json", spec])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Images of the pool whose name contains one of `ids` (tests share the
    /// pool, so each looks only at the images named after its own ids).
    pub fn images_of(&self, ids: &[impl Display]) -> Vec<String> {
        let out = self.rbd().args(["ls", &self.pool]).output().unwrap();
        assert!(
            out.status.success(),
            "rbd ls {}: {}",
            self.pool,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| ids.iter().any(|id| n.contains(&id.to_string())))
            .map(str::to_string)
            .collect()
    }
}
