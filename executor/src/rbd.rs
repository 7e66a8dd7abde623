//! Ceph RBD as a storage: volumes are RBD images in a pool, named as
//! Cinder's RBD driver names them (`volume-<id>`), so a consumer that knows
//! Cinder finds them (`domain::backend::connection_info`).
//!
//! Through the `rbd`, `ceph` CLIs of Debian's ceph-common, not librbd: the
//! Rust bindings to librbd are unmaintained, and a command per operation
//! costs milliseconds beside the cluster round trips each one makes anyway.
//! Every child goes through `crate::tool` (dies with the server, has a
//! deadline).
//!
//! The model, after Cinder's `cinder/volume/drivers/rbd.py`:
//!
//! - a snapshot is the RBD snapshot `volume-<vol>@snapshot-<id>`;
//! - a linked clone is an RBD clone of it (format 2 clones, which need no
//!   `snap protect`), flattened when its chain of parents would be deeper
//!   than `flatten_depth` (Cinder's `rbd_max_clone_depth`); a full clone is
//!   a clone flattened at once (`rbd flatten` copies inside the cluster);
//! - a snapshot deleted while clones stand on it: with format 2 clones
//!   `rbd snap rm` moves it to the image's trash namespace, and Ceph
//!   removes it when its last clone is removed or flattened;
//! - a volume deleted while it still has snapshots (clones stand on them, or
//!   the catalogue still lists them) is renamed `volume-<id>.deleted.<tag>`
//!   (Cinder renames to `.deleted`; the tag lets a re-imaged volume keep
//!   several), and removed by the collection that runs after every delete,
//!   flatten and snapshot delete once nothing is left on it;
//! - rollback is `rbd snap rollback` (done inside the OSDs, nothing read
//!   out of the cluster), then a resize back if the volume had grown; to a
//!   snapshot taken before an os-reimage (on a kept image) the volume
//!   becomes a clone of that snapshot instead;
//! - an image's bytes go in with `rbd import` and come out with
//!   `rbd export` through a local raw file (`crate::images`): qemu-img here
//!   is newer than Debian's qemu rbd driver, which it cannot load.
//!
//! Snapshot operations name only the snapshot; which image holds it is in
//! a map filled as snapshots are made, and on a miss (another executor
//! made it, or this one restarted) rebuilt from `rbd ls -l`, one listing of
//! every image and snapshot in the pool. Snapshots never move between
//! images (a rename keeps them), so a hit is only ever stale by deletion,
//! which the command that follows reports.
//!
//! Every operation is idempotent: it checks where a crash could have left
//! it (an image that exists, a clone not yet flattened, a smaller size) and
//! finishes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use uuid::Uuid;

use crate::backend::{BackendError, Bytes, RawTransfer, RbdOptions, StorageBackend};
use crate::tool::{Class, Tool};

/// Marks a volume's image kept for what stands on it after the volume
/// was deleted, re-imaged or rolled back through a clone:
/// `volume-<id>.deleted.<tag>` (a fresh tag each time, so a volume may
/// leave several).
const DELETED: &str = ".deleted";
/// Suffix of an image being imported, renamed into place when complete.
const IMPORTING: &str = ".importing";
/// Suffix of the clone a rollback builds before it takes the volume's name.
const ROLLBACK: &str = ".rollback";

pub struct RbdBackend {
    opts: RbdOptions,
    /// Snapshot id -> the image that holds it (`volume-<vol>` or a kept
    /// `.deleted.` one).
    owners: Mutex<HashMap<Uuid, String>>,
}

fn is_kept(image: &str) -> bool {
    image.contains(DELETED)
}

/// A fresh name to keep volume `vol`'s current image under.
fn kept_name(vol: Uuid) -> String {
    format!(
        "{}{DELETED}.{}",
        vol_image(vol),
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// What an `rbd` failure was, from the errno it prints (`(2) No such file
/// or directory`), which the CLI reports for every librbd error.
#[derive(Debug, PartialEq, Eq)]
enum Errno {
    NotFound,
    Exists,
    NotEmpty,
    Busy,
    Other,
}

fn errno_of(e: &BackendError) -> Errno {
    let BackendError::Tool { stderr, .. } = e else {
        return Errno::Other;
    };
    // The CLI exits with the errno (`rbd: ... (39) ...` exits 39): the one
    // reliable signal, since stderr may carry unrelated warnings.
    let code = stderr
        .split_once("exit status: ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse::<i32>().ok());
    match code {
        Some(2) => return Errno::NotFound,
        Some(17) => return Errno::Exists,
        Some(39) => return Errno::NotEmpty,
        Some(16) => return Errno::Busy,
        Some(_) => return Errno::Other,
        None => {}
    }
    if stderr.contains("(2) No such file") {
        Errno::NotFound
    } else if stderr.contains("(17) File exists") {
        Errno::Exists
    } else if stderr.contains("(39) Directory not empty") || stderr.contains("image has snapshots")
    {
        Errno::NotEmpty
    } else if stderr.contains("(16) Device or resource busy") {
        Errno::Busy
    } else {
        Errno::Other
    }
}

/// An image's `rbd info --format json`, the parts used here.
#[derive(Debug, Clone)]
struct Info {
    size: u64,
    /// (image name, snapshot name) of the parent, for a clone.
    parent: Option<(String, String)>,
}

fn vol_image(id: Uuid) -> String {
    format!("volume-{id}")
}

fn snap_name(id: Uuid) -> String {
    format!("snapshot-{id}")
}

impl RbdBackend {
    /// Opens the pool: checks that the cluster answers and the pool exists
    /// (a wrong spec refuses the start), then collects the deleted volumes'
    /// images nothing needs any more (a crash may have come between a
    /// clone's removal and its parent's collection). Half imports
    /// (`.importing`) are not touched here: another executor serving the
    /// same pool may be writing one; the import's retry removes its own.
    pub fn open(opts: RbdOptions) -> Result<Self, BackendError> {
        if !opts.conf.exists() {
            return Err(BackendError::NotFound(format!(
                "ceph conf {}",
                opts.conf.display()
            )));
        }
        let b = RbdBackend {
            opts,
            owners: Mutex::new(HashMap::new()),
        };
        let names = b.list_names()?;
        for name in names.iter().filter(|n| is_kept(n)) {
            b.collect(name)?;
        }
        Ok(b)
    }

    pub fn options(&self) -> &RbdOptions {
        &self.opts
    }

    fn base_args(&self) -> Vec<String> {
        vec![
            "-c".into(),
            self.opts.conf.to_string_lossy().into_owned(),
            "--id".into(),
            self.opts.id.clone(),
        ]
    }

    fn tool(&self, program: &str, args: &[&str], class: Class) -> Result<Vec<u8>, BackendError> {
        let mut all = self.base_args();
        all.extend(args.iter().map(|a| a.to_string()));
        Tool::new(program, &all, class)
            .output()
            .map_err(|e| BackendError::Tool {
                args: format!("{program} {}", args.join(" ")),
                stderr: e.to_string(),
            })
    }

    fn rbd(&self, args: &[&str]) -> Result<Vec<u8>, BackendError> {
        self.tool("rbd", args, Class::Short)
    }

    /// Commands that move data (flatten, rollback, import, export).
    fn rbd_long(&self, args: &[&str]) -> Result<Vec<u8>, BackendError> {
        self.tool("rbd", args, Class::Long)
    }

    fn spec(&self, image: &str) -> String {
        format!("{}/{image}", self.opts.pool)
    }

    fn json(out: &[u8], what: &str) -> Result<Value, BackendError> {
        serde_json::from_slice(out).map_err(|e| BackendError::Tool {
            args: what.to_string(),
            stderr: format!("unreadable JSON: {e}"),
        })
    }

    /// `rbd info` of an image or `image@snap`; None when it does not exist.
    fn info(&self, image: &str) -> Result<Option<Info>, BackendError> {
        let spec = self.spec(image);
        match self.rbd(&["info", "--format", "json", &spec]) {
            Ok(out) => {
                let v = Self::json(&out, "rbd info")?;
                let parent = v.get("parent").and_then(|p| {
                    Some((
                        p.get("image")?.as_str()?.to_string(),
                        p.get("snapshot")?.as_str()?.to_string(),
                    ))
                });
                Ok(Some(Info {
                    size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
                    parent,
                }))
            }
            Err(e) if errno_of(&e) == Errno::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list_names(&self) -> Result<Vec<String>, BackendError> {
        let out = self.rbd(&["ls", "--format", "json", &self.opts.pool])?;
        let v = Self::json(&out, "rbd ls")?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The image that holds snapshot `snap` (live, under its catalogue
    /// name), from the map or, on a miss, from a fresh listing.
    fn owner(&self, snap: Uuid, fresh: bool) -> Result<Option<String>, BackendError> {
        if !fresh {
            if let Some(v) = self.lock().get(&snap) {
                return Ok(Some(v.clone()));
            }
        }
        // Not `rbd ls -l`: it opens every image of the pool and fails as a
        // whole when one is removed meanwhile (by another request or
        // another executor), which under load no bounded retry outlasts.
        // The names alone are a plain listing; each image's snapshots are
        // read on their own, and an image gone meanwhile held none of ours.
        let mut found = Vec::new();
        for image in self
            .list_names()?
            .into_iter()
            .filter(|n| n.starts_with("volume-"))
        {
            let out = match self.rbd(&["snap", "ls", "--format", "json", &self.spec(&image)]) {
                Ok(out) => out,
                Err(e) if errno_of(&e) == Errno::NotFound => continue,
                Err(e) => return Err(e),
            };
            let snaps = Self::json(&out, "rbd snap ls")?;
            for name in snaps
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("name").and_then(Value::as_str))
            {
                if let Some(sid) = name
                    .strip_prefix("snapshot-")
                    .and_then(|r| r.parse::<Uuid>().ok())
                {
                    found.push((sid, image.clone()));
                }
            }
        }
        let mut map = self.lock();
        map.extend(found);
        Ok(map.get(&snap).cloned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, String>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `image@snapshot-<snap>` of a live (catalogue) snapshot. Its image is
    /// its volume's, under the volume's name or, once the volume was deleted
    /// (or re-imaged), a kept one. A map entry gone stale (the image was
    /// renamed since, maybe by another executor) is looked up afresh.
    fn live_snapshot(&self, snap: Uuid) -> Result<(String, Info), BackendError> {
        let missing = || BackendError::NotFound(format!("snapshot {snap}"));
        for fresh in [false, true] {
            let Some(image) = self.owner(snap, fresh)? else {
                return Err(missing());
            };
            let at = format!("{image}@{}", snap_name(snap));
            if let Some(info) = self.info(&at)? {
                return Ok((at, info));
            }
            self.lock().remove(&snap);
        }
        Err(missing())
    }

    /// Keeps `image` (volume `vol`'s current one, with snapshots left on
    /// it) under a fresh kept name, then collects it if nothing needs it.
    fn keep(&self, vol: Uuid, image: &str) -> Result<(), BackendError> {
        let kept = kept_name(vol);
        match self.rbd(&["rename", &self.spec(image), &self.spec(&kept)]) {
            Ok(_) => {}
            Err(e) if errno_of(&e) == Errno::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        self.collect(&kept)
    }

    /// Volume `vol`'s kept images (a listing of the pool: only retries and
    /// rollbacks through a clone need it).
    fn kept_images(&self, vol: Uuid) -> Result<Vec<String>, BackendError> {
        let prefix = format!("{}{DELETED}", vol_image(vol));
        Ok(self
            .list_names()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }

    /// How many parents stand under `image` (0 for a standalone image).
    fn depth(&self, image: &str) -> Result<u32, BackendError> {
        let mut depth = 0;
        let mut at = self.info(image)?.and_then(|i| i.parent);
        while let Some((parent, _)) = at {
            depth += 1;
            at = self.info(&parent)?.and_then(|i| i.parent);
        }
        Ok(depth)
    }

    /// Makes `image` stand alone (copies its parent's blocks in the
    /// cluster); then its old parent may be collectable. Idempotent.
    fn flatten(&self, image: &str) -> Result<(), BackendError> {
        let Some(Info {
            parent: Some((parent, _)),
            ..
        }) = self.info(image)?
        else {
            return Ok(());
        };
        match self.rbd_long(&["flatten", "--no-progress", &self.spec(image)]) {
            Ok(_) => {}
            // Flattened meanwhile ("image has no parent").
            Err(e) if errno_of(&e) == Errno::Other && e.to_string().contains("no parent") => {}
            Err(e) => return Err(e),
        }
        self.collect(&parent)
    }

    /// Removes an image that must go (a clone's own image); Ok if missing.
    fn remove_image(&self, image: &str) -> Result<(), BackendError> {
        match self.rbd(&["rm", "--no-progress", &self.spec(image)]) {
            Ok(_) => Ok(()),
            Err(e) if errno_of(&e) == Errno::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes `image` if it is a deleted volume's and nothing is left on
    /// it (no snapshot, live or in its trash namespace: Ceph removes a
    /// trashed snapshot when its last clone goes), then looks at its
    /// parent the same way: removing S2's image may free S1's.
    fn collect(&self, image: &str) -> Result<(), BackendError> {
        let mut next = Some(image.to_string());
        while let Some(image) = next.take() {
            if !is_kept(&image) {
                return Ok(());
            }
            let Some(info) = self.info(&image)? else {
                return Ok(());
            };
            // Another collector (another executor, or a concurrent open)
            // may remove it meanwhile: gone is done.
            let out = match self.rbd(&[
                "snap",
                "ls",
                "--all",
                "--format",
                "json",
                &self.spec(&image),
            ]) {
                Ok(out) => out,
                Err(e) if errno_of(&e) == Errno::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            let snaps = Self::json(&out, "rbd snap ls")?;
            if snaps.as_array().is_some_and(|a| !a.is_empty()) {
                return Ok(());
            }
            match self.rbd(&["rm", "--no-progress", &self.spec(&image)]) {
                Ok(_) => {}
                Err(e) if matches!(errno_of(&e), Errno::NotFound) => {}
                // Something stood on it after all (a clone made meanwhile).
                Err(e) if matches!(errno_of(&e), Errno::NotEmpty | Errno::Busy) => return Ok(()),
                Err(e) => return Err(e),
            }
            next = info.parent.map(|(p, _)| p);
        }
        Ok(())
    }

    /// Grows `image` to `size` if it is smaller (never shrinks).
    fn grow(&self, image: &str, have: u64, size: u64) -> Result<(), BackendError> {
        if have >= size {
            return Ok(());
        }
        self.rbd(&[
            "resize",
            "--no-progress",
            "--size",
            &format!("{size}B"),
            &self.spec(image),
        ])
        .map(|_| ())
    }

    /// `ceph df`'s view of the pool: (bytes stored in it, bytes it can
    /// still take), as Cinder's RBD driver reports its pool.
    fn pool_df(&self) -> Result<(u64, u64), BackendError> {
        let out = self.tool("ceph", &["df", "--format", "json"], Class::Short)?;
        let v = Self::json(&out, "ceph df")?;
        let pool = v
            .get("pools")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(&self.opts.pool))
            })
            .ok_or_else(|| BackendError::NotFound(format!("pool {}", self.opts.pool)))?;
        let stat = |k: &str| {
            pool.get("stats")
                .and_then(|s| s.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Ok((stat("bytes_used"), stat("max_avail")))
    }
}

/// The monitors of a ceph conf's `mon host` (`mon_host`, `mon-host`):
/// (hosts, ports). Accepts Ceph's forms: `a.b.c.d`, `a.b.c.d:port`,
/// `[v2:a:p,v1:a:p]`, `v1:a:p`, separated by commas or spaces. For each
/// monitor the legacy v1 address is preferred (every RBD client speaks it,
/// and a plain `host:port` means v1 to librados), else v2, else the bare
/// host with the default v1 port 6789.
pub fn monitors(conf_text: &str) -> (Vec<String>, Vec<String>) {
    let mut value = None;
    let mut section = String::new();
    for line in conf_text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key: String = k
            .trim()
            .chars()
            .map(|c| if c == ' ' || c == '-' { '_' } else { c })
            .collect();
        if key == "mon_host" && (section == "global" || section.is_empty()) {
            value = Some(v.trim().to_string());
        }
    }
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    let Some(value) = value else {
        return (hosts, ports);
    };
    // Split into monitors: a bracketed vector is one monitor.
    let mut mons: Vec<Vec<String>> = Vec::new();
    let mut rest = value.as_str();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            mons.push(r[..end].split(',').map(|a| a.trim().to_string()).collect());
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
            mons.push(vec![rest[..end].to_string()]);
            rest = &rest[end..];
        }
    }
    for addrs in mons {
        let parsed: Vec<(Option<&str>, &str, Option<&str>)> = addrs
            .iter()
            .map(|a| {
                let (kind, addr) = match a.split_once(':') {
                    Some((k @ ("v1" | "v2"), r)) => (Some(k), r),
                    _ => (None, a.as_str()),
                };
                // Drop a trailing `/nonce`.
                let addr = addr.split('/').next().unwrap_or(addr);
                match addr.rsplit_once(':') {
                    Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (kind, h, Some(p)),
                    _ => (kind, addr, None),
                }
            })
            .collect();
        let pick = parsed
            .iter()
            .find(|(k, _, _)| *k == Some("v1") || k.is_none())
            .or_else(|| parsed.first());
        if let Some((kind, host, port)) = pick {
            hosts.push(host.trim_matches(['[', ']']).to_string());
            ports.push(
                port.map(str::to_string)
                    .unwrap_or_else(|| if *kind == Some("v2") { "3300" } else { "6789" }.into()),
            );
        }
    }
    (hosts, ports)
}

/// `auth client required` of a conf: cephx unless it says none.
fn auth_enabled(conf_text: &str) -> bool {
    !conf_text.lines().any(|l| {
        let l = l.split(['#', ';']).next().unwrap_or("").trim();
        let Some((k, v)) = l.split_once('=') else {
            return false;
        };
        let k: String = k
            .trim()
            .chars()
            .map(|c| if c == ' ' || c == '-' { '_' } else { c })
            .collect();
        matches!(k.as_str(), "auth_client_required" | "auth_supported") && v.trim() == "none"
    })
}

/// Ceph's cluster name is its conf's file name (`<cluster>.conf`).
fn cluster_name(conf: &Path) -> String {
    conf.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".conf"))
        .filter(|n| !n.is_empty())
        .unwrap_or("ceph")
        .to_string()
}

impl StorageBackend for RbdBackend {
    /// RBD images hold raw bytes.
    fn format(&self) -> &'static str {
        "raw"
    }

    /// Not a file: the image's `rbd:` name, for messages and logs. The
    /// executor's temp sweep finds no directory here (no parent dir).
    fn volume_path(&self, id: Uuid) -> PathBuf {
        PathBuf::from(format!("rbd:{}", self.spec(&vol_image(id))))
    }

    fn create(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError> {
        let image = vol_image(id);
        let spec = self.spec(&image);
        match self.rbd(&["create", "--size", &format!("{size_bytes}B"), &spec]) {
            Ok(_) => Ok(()),
            Err(e) if errno_of(&e) == Errno::Exists => match self.info(&image)? {
                Some(i) if i.size >= size_bytes => Ok(()),
                _ => Err(BackendError::Mismatch(self.volume_path(id))),
            },
            Err(e) => Err(e),
        }
    }

    fn extend(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError> {
        let image = vol_image(id);
        let info = self
            .info(&image)?
            .ok_or_else(|| BackendError::NotFound(format!("volume {id}")))?;
        self.grow(&image, info.size, size_bytes)
    }

    fn delete(&self, id: Uuid) -> Result<(), BackendError> {
        let image = vol_image(id);
        let Some(info) = self.info(&image)? else {
            // Gone, or kept by an earlier attempt: collect if free now.
            for kept in self.kept_images(id)? {
                self.collect(&kept)?;
            }
            return Ok(());
        };
        match self.rbd(&["rm", "--no-progress", &self.spec(&image)]) {
            Ok(_) => {}
            Err(e) if errno_of(&e) == Errno::NotFound => {}
            // Snapshots are left (clones stand on them, or the catalogue
            // still lists them): keep the image under a deleted name.
            Err(e) if errno_of(&e) == Errno::NotEmpty => return self.keep(id, &image),
            Err(e) => return Err(e),
        }
        match info.parent {
            Some((parent, _)) => self.collect(&parent),
            None => Ok(()),
        }
    }

    fn virtual_size(&self, id: Uuid) -> Result<Option<u64>, BackendError> {
        Ok(self.info(&vol_image(id))?.map(|i| i.size))
    }

    fn snapshot_create(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError> {
        let image = vol_image(vol);
        if self.info(&image)?.is_none() {
            return Err(BackendError::NotFound(format!("volume {vol}")));
        }
        self.lock().insert(snap, image.clone());
        let at = self.spec(&format!("{image}@{}", snap_name(snap)));
        match self.rbd(&["snap", "create", "--no-progress", &at]) {
            Ok(_) => Ok(()),
            Err(e) if errno_of(&e) == Errno::Exists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `rbd snap rollback` when the snapshot is on the volume's image (as
    /// Cinder's revert_to_snapshot). A snapshot on an image the volume kept
    /// (taken before an os-reimage) cannot be rolled back onto the new
    /// image: the volume becomes a clone of it instead, built under a
    /// temporary name, sized, and renamed into place once complete, the
    /// current image kept for its own snapshots; a retry after a crash
    /// between the renames takes the finished clone.
    fn rollback(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError> {
        let image = vol_image(vol);
        let rebuilt = format!("{image}{ROLLBACK}");
        let Some(info) = self.info(&image)? else {
            if self.info(&rebuilt)?.is_some() {
                return self
                    .rbd(&["rename", &self.spec(&rebuilt), &self.spec(&image)])
                    .map(|_| ());
            }
            return Err(BackendError::NotFound(format!("volume {vol}")));
        };
        let (at, sinfo) = self.live_snapshot(snap)?;
        if !at.starts_with(&format!("{image}@")) {
            let prefix = format!("{image}{DELETED}");
            if !at.starts_with(&prefix) {
                return Err(BackendError::Invalid(format!(
                    "snapshot {snap} is not a snapshot of volume {vol}"
                )));
            }
            self.remove_image(&rebuilt)?;
            self.rbd(&[
                "clone",
                "--rbd-default-clone-format",
                "2",
                &self.spec(&at),
                &self.spec(&rebuilt),
            ])?;
            if self.depth(&rebuilt)? > self.opts.flatten_depth {
                self.flatten(&rebuilt)?;
            }
            self.grow(&rebuilt, sinfo.size, info.size)?;
            self.keep(vol, &image)?;
            return self
                .rbd(&["rename", &self.spec(&rebuilt), &self.spec(&image)])
                .map(|_| ());
        }
        self.rbd_long(&["snap", "rollback", "--no-progress", &self.spec(&at)])?;
        // Rollback sets the image to the snapshot's size; a volume grown
        // since keeps its size (as on the file storages).
        let now = self.info(&image)?.map(|i| i.size).unwrap_or(0);
        self.grow(&image, now, info.size)
    }

    fn clone_from_snapshot(
        &self,
        snap: Uuid,
        new_vol: Uuid,
        size_bytes: u64,
        linked: bool,
    ) -> Result<(), BackendError> {
        let image = vol_image(new_vol);
        let have = match self.info(&image)? {
            Some(i) => i.size,
            None => {
                let (at, sinfo) = self.live_snapshot(snap)?;
                if size_bytes < sinfo.size {
                    return Err(BackendError::Invalid(format!(
                        "clone of {size_bytes} bytes is smaller than snapshot {snap} ({} bytes)",
                        sinfo.size
                    )));
                }
                // Format 2: no protected snapshot needed, and the snapshot
                // can be deleted while the clone stands on it.
                match self.rbd(&[
                    "clone",
                    "--rbd-default-clone-format",
                    "2",
                    &self.spec(&at),
                    &self.spec(&image),
                ]) {
                    Ok(_) => {}
                    Err(e) if errno_of(&e) == Errno::Exists => {}
                    Err(e) => return Err(e),
                }
                sinfo.size
            }
        };
        // A retry after a crash resumes here: flatten if it must be, grow.
        if !linked || self.depth(&image)? > self.opts.flatten_depth {
            self.flatten(&image)?;
        }
        let have = self.info(&image)?.map(|i| i.size).unwrap_or(have);
        self.grow(&image, have, size_bytes)
    }

    fn snapshot_delete(&self, snap: Uuid) -> Result<(), BackendError> {
        let (at, _) = match self.live_snapshot(snap) {
            Ok(s) => s,
            Err(BackendError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self.rbd(&["snap", "rm", "--no-progress", &self.spec(&at)]) {
            Ok(_) => {}
            Err(e) if errno_of(&e) == Errno::NotFound => {}
            Err(e) => return Err(e),
        }
        self.lock().remove(&snap);
        // The last snapshot of a deleted volume may free its image.
        let image = at.split('@').next().unwrap_or_default().to_string();
        self.collect(&image)
    }

    fn snapshot_exists(&self, snap: Uuid) -> bool {
        self.live_snapshot(snap).is_ok()
    }

    /// Not a file: the volume's `rbd:` name (attach through the connection
    /// info, not a path).
    fn active_path(&self, vol: Uuid) -> PathBuf {
        self.volume_path(vol)
    }

    /// Not a file: the snapshot's `rbd:` name when it is known.
    fn snapshot_file(&self, snap: Uuid) -> PathBuf {
        match self.live_snapshot(snap) {
            Ok((at, _)) => PathBuf::from(format!("rbd:{}", self.spec(&at))),
            Err(_) => PathBuf::from(format!("rbd:{}/?@{}", self.opts.pool, snap_name(snap))),
        }
    }

    /// An RBD snapshot cannot be flattened alone; flattening its image
    /// (deep-flatten, on by default since Jewel) detaches the image and its
    /// snapshots from the parent, with the same bytes.
    fn snapshot_flatten(&self, snap: Uuid) -> Result<(), BackendError> {
        let (at, _) = self.live_snapshot(snap)?;
        let image = at.split('@').next().unwrap_or_default().to_string();
        self.flatten(&image)
    }

    fn connection_template(&self) -> Value {
        let text = std::fs::read_to_string(&self.opts.conf).unwrap_or_default();
        let (hosts, ports) = monitors(&text);
        serde_json::json!({
            "driver_volume_type": "rbd",
            "pool": self.opts.pool,
            "hosts": hosts,
            "ports": ports,
            "cluster_name": cluster_name(&self.opts.conf),
            "auth_enabled": auth_enabled(&text),
            "auth_username": self.opts.id,
        })
    }

    /// Cinder's RBD driver: total = what the pool stores + what it can
    /// still take (`max_avail`, already divided by the pool's replication),
    /// free = `max_avail`.
    fn capacity(&self) -> Result<(u64, u64), BackendError> {
        let (used, avail) = self.pool_df()?;
        Ok((used + avail, avail))
    }

    fn storage_protocol(&self) -> &'static str {
        "ceph"
    }

    fn raw_transfer(&self) -> Option<&dyn RawTransfer> {
        Some(self)
    }
}

impl RawTransfer for RbdBackend {
    fn export_raw(&self, what: Bytes, dest: &Path) -> Result<(), BackendError> {
        let at = match what {
            Bytes::Volume(v) => {
                let image = vol_image(v);
                if self.info(&image)?.is_none() {
                    return Err(BackendError::NotFound(format!("volume {v}")));
                }
                image
            }
            Bytes::Snapshot(s) => self.live_snapshot(s)?.0,
        };
        let _ = std::fs::remove_file(dest);
        // To a file, rbd export seeks over unallocated blocks: sparse.
        self.rbd_long(&[
            "export",
            "--no-progress",
            &self.spec(&at),
            &dest.to_string_lossy(),
        ])
        .map(|_| ())
    }

    fn import_raw(&self, vol: Uuid, src: &Path, replace: bool) -> Result<(), BackendError> {
        let image = vol_image(vol);
        if !replace {
            if let Some(i) = self.info(&image)? {
                let len = std::fs::metadata(src).map(|m| m.len()).unwrap_or(u64::MAX);
                return if i.size >= len {
                    Ok(())
                } else {
                    Err(BackendError::Mismatch(self.volume_path(vol)))
                };
            }
        }
        // Built under a temporary name and renamed into place: a crash
        // mid-import leaves only the temporary, removed by the retry (and
        // at open).
        let tmp = format!("{image}{IMPORTING}");
        self.remove_image(&tmp)?;
        self.rbd_long(&[
            "import",
            "--no-progress",
            &src.to_string_lossy(),
            &self.spec(&tmp),
        ])?;
        if replace {
            // os-reimage: the old image goes (kept as deleted while clones
            // or snapshots stand on it), the new one takes its name.
            self.delete(vol)?;
        }
        self.rbd(&["rename", &self.spec(&tmp), &self.spec(&image)])
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitors_in_every_form() {
        let conf = "[global]\nfsid = x\nmon host = [v2:127.0.0.1:40001,v1:127.0.0.1:40002] \n";
        assert_eq!(
            monitors(conf),
            (vec!["127.0.0.1".into()], vec!["40002".into()])
        );
        let conf = "[global]\nmon_host = 10.0.0.1:6789, 10.0.0.2 ,v2:10.0.0.3:3300\n";
        assert_eq!(
            monitors(conf),
            (
                vec!["10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.3".into()],
                vec!["6789".into(), "6789".into(), "3300".into()]
            )
        );
        // Another section's key is not the cluster's.
        assert_eq!(monitors("[client]\nmon host = 1.2.3.4\n"), (vec![], vec![]));
        assert!(auth_enabled("[global]\nauth client required = cephx\n"));
        assert!(!auth_enabled("[global]\nauth_client_required = none\n"));
        assert_eq!(cluster_name(Path::new("/etc/ceph/ceph.conf")), "ceph");
        assert_eq!(cluster_name(Path::new("/x/backup.conf")), "backup");
    }
}
