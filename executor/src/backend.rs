//! Where volume bytes live. The executor talks to disks only through
//! `StorageBackend`, so the qcow2 backend (default; backing chains make
//! snapshots, rollbacks and linked clones O(1)) and the raw backend (sparse
//! files; no external tool) are interchangeable and pass one conformance
//! suite.
//!
//! Every operation is idempotent, because the executor delivers work at
//! least once: creating an existing volume of the right size, growing a
//! volume that is already big enough, deleting a missing one, taking a
//! snapshot that is already taken, … all succeed. Files are named only by
//! server-generated UUIDs, never by user input.
//!
//! Layout of a data dir:
//!
//! ```text
//! <data-dir>/volumes/<vol-uuid>          the volume (qcow2: the active overlay)
//! <data-dir>/volumes/<vol-uuid>.tmp      a file being built; renamed into place when complete
//! <data-dir>/snapshots/<snap-uuid>       a frozen snapshot (qcow2: a read-only chain member)
//! <data-dir>/snapshots/<snap-uuid>.deleted  tombstone: deleted from the catalogue, file still needed
//! ```
//!
//! A file under its final name is always complete: everything is built under
//! a `.tmp` name, flushed, renamed into place and the directory fsynced.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("qemu-img {args} failed: {stderr}")]
    Tool { args: String, stderr: String },
    #[error("volume file {0} is smaller than requested and cannot be reused")]
    Mismatch(PathBuf),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BackendError + '_ {
    move |source| BackendError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub trait StorageBackend: Send + Sync + 'static {
    /// The on-disk format name (`qcow2` or `raw`).
    fn format(&self) -> &'static str;
    /// `<data-dir>/volumes/<uuid>`.
    fn volume_path(&self, id: Uuid) -> PathBuf;
    /// Allocates a volume of `size_bytes` virtual size.
    fn create(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError>;
    /// Grows a volume to `size_bytes` virtual size.
    fn extend(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError>;
    /// Removes a volume's file.
    fn delete(&self, id: Uuid) -> Result<(), BackendError>;
    /// The virtual size, or None when the file does not exist.
    fn virtual_size(&self, id: Uuid) -> Result<Option<u64>, BackendError>;

    /// Freezes the volume's current content as snapshot `snap`. O(1) for qcow2.
    fn snapshot_create(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError>;
    /// Restores volume `vol` to snapshot `snap`'s content (snap must be a snapshot of vol's chain). O(1) for qcow2.
    fn rollback(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError>;
    /// Creates volume `new_vol` from snapshot `snap` with virtual size `size_bytes` (>= the snapshot's; grow if larger).
    /// linked=true: a qcow2 overlay backed by the snapshot (O(1)); linked=false: an independent full copy that copies only allocated data.
    /// The raw backend always makes a full sparse-aware copy (linked is ignored).
    fn clone_from_snapshot(
        &self,
        snap: Uuid,
        new_vol: Uuid,
        size_bytes: u64,
        linked: bool,
    ) -> Result<(), BackendError>;
    /// Creates volume `new_vol` holding volume `src`'s current bytes, with
    /// virtual size `size_bytes` (>= src's). Later writes to either volume
    /// do not show in the other. The default is an internal snapshot of
    /// `src` (id `clone_base_id(new_vol)`, never in the catalogue), a linked
    /// clone of it, and the snapshot's deletion: its file then stays only
    /// while `src`, `new_vol` or later snapshots still stand on it (gc), so
    /// deleting both volumes, in either order, leaves no file. O(1) on qcow2.
    /// Idempotent: each step is, and the steps are keyed on `new_vol`.
    fn clone_from_volume(
        &self,
        src: Uuid,
        new_vol: Uuid,
        size_bytes: u64,
    ) -> Result<(), BackendError> {
        let base = clone_base_id(new_vol);
        match self.virtual_size(new_vol)? {
            Some(have) if have < size_bytes => {
                return Err(BackendError::Mismatch(self.volume_path(new_vol)))
            }
            // Done before; a crash may have come before the last step.
            Some(_) => {}
            None => {
                self.snapshot_create(src, base)?;
                self.clone_from_snapshot(base, new_vol, size_bytes, true)?;
            }
        }
        self.snapshot_delete(base)
    }
    /// Removes snapshot `snap` from the catalogue of the backend. The file must stay on disk while any volume, clone or later snapshot depends on it (backing chain); it is physically removed once nothing depends on it (e.g. when the last dependant is deleted — so `delete` of a volume and `snapshot_delete` should both run a small garbage collection of unreferenced, deleted snapshot files).
    fn snapshot_delete(&self, snap: Uuid) -> Result<(), BackendError>;
    /// True if the snapshot's file (or tombstone) exists.
    fn snapshot_exists(&self, snap: Uuid) -> bool;
    /// The file a consumer opens to read/write the volume's current bytes (os-brick "local" connector device_path), absolute.
    fn active_path(&self, vol: Uuid) -> PathBuf;
    /// The snapshot's frozen file, absolute (the source of a snapshot export).
    fn snapshot_file(&self, snap: Uuid) -> PathBuf;
    /// Makes snapshot `snap` a full copy: its file stands alone, with no
    /// backing chain under it (the Chinese cloud's `is_full`). The content
    /// is unchanged, so whatever stands on the snapshot keeps reading the
    /// same bytes. Idempotent. The default (raw: every snapshot already is
    /// a full copy) does nothing.
    fn snapshot_flatten(&self, _snap: Uuid) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The id of the internal snapshot `clone_from_volume` takes for `new_vol`:
/// derived, not random, so a retry after a crash finds the snapshot the
/// first attempt took. A UUID v8 (custom) from sha256 of the volume id, so it
/// never collides with the v4 ids of catalogue snapshots.
pub fn clone_base_id(new_vol: Uuid) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"blockledger clone base\0");
    h.update(new_vol.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Which backend `--backend` selects.
pub fn open_backend(kind: &str, data_dir: &Path) -> Result<Box<dyn StorageBackend>, BackendError> {
    let dir = data_dir.join("volumes");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let snaps = data_dir.join("snapshots");
    fs::create_dir_all(&snaps).map_err(io_err(&snaps))?;
    match kind {
        "raw" => Ok(Box::new(RawBackend::new(dir))),
        _ => Ok(Box::new(Qcow2Backend::new(dir))),
    }
}

/// `<data-dir>/snapshots`, the sibling of the volumes dir. Both sit one level
/// below the data dir, so the relative backing path `../snapshots/<id>` means
/// the same file whether the overlay lives in `volumes/` or `snapshots/`.
fn snapshots_dir_of(volumes_dir: &Path) -> PathBuf {
    volumes_dir
        .parent()
        .unwrap_or(volumes_dir)
        .join("snapshots")
}

/// Makes a rename durable: the directory entry must reach the disk too.
fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn sync_file(path: &Path) -> Result<(), BackendError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

/// A fresh temporary name for building `id`'s next file. Unique per call:
/// after a crash (SIGKILL) an orphaned `qemu-img` of the dead server may
/// still be writing its temporary file, and the restarted executor must not
/// share it.
fn tmp_for(dir: &Path, id: Uuid) -> PathBuf {
    dir.join(format!("{id}.tmp.{}", Uuid::new_v4().simple()))
}

/// Removes every temporary file left for `id` (crashed or orphaned builds).
fn remove_tmps(dir: &Path, id: Uuid) -> Result<(), BackendError> {
    let prefix = format!("{id}.tmp");
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), BackendError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Moves a complete `tmp` over `dst` (atomically replacing it if present)
/// and makes the new directory entry durable.
fn install(tmp: &Path, dst: &Path) -> Result<(), BackendError> {
    fs::rename(tmp, dst).map_err(io_err(dst))?;
    sync_dir(dst.parent().unwrap_or(Path::new(".")))
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// Names under the two dirs that are complete images: exactly a UUID, so
/// `.tmp` files and `.deleted` tombstones are never mistaken for one.
fn image_ids(dir: &Path) -> Result<Vec<Uuid>, BackendError> {
    let mut ids = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Tombstoned snapshot ids (`<uuid>.deleted`).
fn tombstone_ids(dir: &Path) -> Result<Vec<Uuid>, BackendError> {
    let mut ids = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".deleted"))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

// ---------------------------------------------------------------- qcow2 --

/// qcow2 files made and changed with `qemu-img`, the tool Cinder itself uses,
/// rather than hand-written image-format code.
///
/// Snapshots are *external*: taking snapshot S of volume V renames V's file
/// to `snapshots/S` (it is frozen from then on) and puts a fresh, empty
/// overlay backed by it at `volumes/V`. Rollback replaces V's overlay by a new
/// empty overlay of S; a linked clone is another overlay of S; a full clone
/// is `qemu-img convert` of S's chain, which copies only allocated clusters.
/// None of the O(1) operations touch data, so they cost the same for 1 GiB
/// and for 10 TiB. Backing paths are stored relative (`../snapshots/S`) so
/// the data dir can be moved.
///
/// Deleting a snapshot others still depend on only tombstones it; a small
/// garbage collection (run by `snapshot_delete`, `delete` and `rollback`)
/// removes tombstoned snapshot files that no image's backing names any more.
pub struct Qcow2Backend {
    dir: PathBuf,
    snap_dir: PathBuf,
    /// Serialises every operation that changes who depends on which snapshot
    /// file, together with the garbage collection: without it, gc could read
    /// the backing of `volumes/V` just before a concurrent `snapshot_create`
    /// renames it away and miss the new `snapshots/S2` that now depends on a
    /// tombstoned snapshot. Holds the snapshots pinned by running full clones.
    chain: Mutex<Pins>,
}

/// Snapshots a full clone (which runs without the lock) is reading.
#[derive(Default)]
struct Pins(HashMap<Uuid, usize>);

/// Unpins on drop, so a failing or panicking full clone does not leak a pin.
struct PinGuard<'a> {
    backend: &'a Qcow2Backend,
    snap: Uuid,
}

impl Drop for PinGuard<'_> {
    fn drop(&mut self) {
        let mut pins = self.backend.lock();
        if let Some(n) = pins.0.get_mut(&self.snap) {
            *n -= 1;
            if *n == 0 {
                pins.0.remove(&self.snap);
            }
        }
    }
}

impl Qcow2Backend {
    /// `dir` is `<data-dir>/volumes`; snapshots go to `<data-dir>/snapshots`.
    pub fn new(dir: PathBuf) -> Self {
        let snap_dir = snapshots_dir_of(&dir);
        Qcow2Backend {
            dir,
            snap_dir,
            chain: Mutex::new(Pins::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pins> {
        // The guarded state is only pins; a panic elsewhere leaves it usable.
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn qemu_img(args: &[&str]) -> Result<Vec<u8>, BackendError> {
        // Dies with the server, killed past its deadline (crate::tool).
        crate::tool::Tool::qemu_img(args)
            .output()
            .map_err(|e| BackendError::Tool {
                args: args.join(" "),
                stderr: e.to_string(),
            })
    }

    /// `qemu-img info` of one image. It does not open the backing chain, so
    /// it works on an overlay whose backing is gone; `-U` so it never waits
    /// for (or disturbs) a consumer holding the image open.
    fn info(path: &Path) -> Result<serde_json::Value, BackendError> {
        let p = path.to_string_lossy().to_string();
        let out = Self::qemu_img(&["info", "-U", "--output=json", "-f", "qcow2", &p])?;
        serde_json::from_slice(&out).map_err(|e| BackendError::Tool {
            args: format!("info {p}"),
            stderr: format!("unreadable JSON: {e}"),
        })
    }

    fn image_size(path: &Path) -> Result<Option<u64>, BackendError> {
        if !path.exists() {
            return Ok(None);
        }
        Ok(Self::info(path)?["virtual-size"].as_u64())
    }

    /// The snapshot an image is directly backed by, if any.
    fn backing_of(path: &Path) -> Result<Option<Uuid>, BackendError> {
        let info = Self::info(path)?;
        Ok(info["backing-filename"]
            .as_str()
            .and_then(|b| Path::new(b).file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok()))
    }

    fn snapshot_path(&self, snap: Uuid) -> PathBuf {
        self.snap_dir.join(snap.to_string())
    }

    fn tombstone_path(&self, snap: Uuid) -> PathBuf {
        self.snap_dir.join(format!("{snap}.deleted"))
    }

    fn tmp_path(&self, vol: Uuid) -> PathBuf {
        tmp_for(&self.dir, vol)
    }

    /// A snapshot that may be used as a source: its file exists and it has
    /// not been deleted from the catalogue.
    fn live_snapshot(&self, snap: Uuid) -> Result<PathBuf, BackendError> {
        let s = self.snapshot_path(snap);
        if !s.exists() || self.tombstone_path(snap).exists() {
            return Err(BackendError::NotFound(format!("snapshot {snap}")));
        }
        Ok(s)
    }

    /// Builds an empty overlay of `snapshots/<snap>` with virtual size
    /// `size` at `tmp` (inside `volumes/`, so the relative backing path
    /// resolves) and flushes it. qemu-img overwrites a stale `tmp`.
    fn make_overlay(tmp: &Path, snap: Uuid, size: u64) -> Result<(), BackendError> {
        let backing = format!("../snapshots/{snap}");
        let t = tmp.to_string_lossy().to_string();
        Self::qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            &backing,
            &t,
            &size.to_string(),
        ])?;
        sync_file(tmp)
    }

    /// Removes tombstoned snapshot files nothing depends on any more. Must be
    /// called with the chain lock held (`pins` is its content).
    ///
    /// An image depends on snapshot S if S is its direct backing; dependence
    /// on deeper chain members is transitive through the snapshot files in
    /// between, which are images themselves. So: read every image's direct
    /// backing once, then repeatedly remove tombstoned snapshots that no
    /// remaining image names, until nothing changes (deleting the last
    /// dependant of S2 may free S1 beneath it).
    fn gc(&self, pins: &Pins) -> Result<(), BackendError> {
        let tombstones = tombstone_ids(&self.snap_dir)?;
        if tombstones.is_empty() {
            // The common case costs one readdir and no qemu-img run.
            return Ok(());
        }
        let mut volume_refs: Vec<Option<Uuid>> = Vec::new();
        let mut snapshots: HashMap<Uuid, Option<Uuid>> = HashMap::new();
        let read = |path: PathBuf| -> Result<Option<Option<Uuid>>, BackendError> {
            match Self::backing_of(&path) {
                Ok(b) => Ok(Some(b)),
                // Vanished between readdir and info (a delete elsewhere).
                Err(_) if !path.exists() => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut collect = || -> Result<(), BackendError> {
            for id in image_ids(&self.dir)? {
                if let Some(b) = read(self.dir.join(id.to_string()))? {
                    volume_refs.push(b);
                }
            }
            for id in image_ids(&self.snap_dir)? {
                if let Some(b) = read(self.snapshot_path(id))? {
                    snapshots.insert(id, b);
                }
            }
            Ok(())
        };
        if let Err(e) = collect() {
            // If one image's backing cannot be read we cannot prove a
            // tombstoned snapshot unreferenced: keep everything (a leak, never
            // a broken chain) and try again at the next gc.
            tracing::warn!(error = %e, "snapshot gc skipped: unreadable image");
            return Ok(());
        }
        let mut removed_any = false;
        loop {
            let referenced: HashSet<Uuid> = volume_refs
                .iter()
                .chain(snapshots.values())
                .flatten()
                .copied()
                .collect();
            let doomed: Vec<Uuid> = tombstones
                .iter()
                .copied()
                .filter(|t| snapshots.contains_key(t))
                .filter(|t| !referenced.contains(t) && !pins.0.contains_key(t))
                .collect();
            if doomed.is_empty() {
                break;
            }
            for id in doomed {
                // File first, tombstone second: a crash in between leaves an
                // orphan tombstone (cleaned below next time), never a live-
                // looking snapshot that nobody will ever delete.
                remove_if_present(&self.snapshot_path(id))?;
                remove_if_present(&self.tombstone_path(id))?;
                snapshots.remove(&id);
                removed_any = true;
            }
        }
        for t in &tombstones {
            if !self.snapshot_path(*t).exists() {
                remove_if_present(&self.tombstone_path(*t))?;
                removed_any = true;
            }
        }
        if removed_any {
            sync_dir(&self.snap_dir)?;
        }
        Ok(())
    }
}

impl StorageBackend for Qcow2Backend {
    fn format(&self) -> &'static str {
        "qcow2"
    }

    fn volume_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn create(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError> {
        let path = self.volume_path(id);
        if let Some(have) = self.virtual_size(id)? {
            return if have >= size_bytes {
                Ok(())
            } else {
                Err(BackendError::Mismatch(path))
            };
        }
        // Build under a temporary name and rename, so a crash never leaves a
        // half-written file under the volume's real name.
        let tmp = self.tmp_path(id);
        let tmp_s = tmp.to_string_lossy().to_string();
        Self::qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            &tmp_s,
            &size_bytes.to_string(),
        ])?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }

    fn extend(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError> {
        let path = self.volume_path(id);
        match self.virtual_size(id)? {
            Some(have) if have >= size_bytes => Ok(()),
            Some(_) => {
                // Only the active overlay grows; the snapshots beneath keep
                // their size and reads past their end return zeros.
                let p = path.to_string_lossy().to_string();
                Self::qemu_img(&["resize", "-q", "-f", "qcow2", &p, &size_bytes.to_string()])?;
                Ok(())
            }
            None => Err(io_err(&path)(io::Error::from(io::ErrorKind::NotFound))),
        }
    }

    fn delete(&self, id: Uuid) -> Result<(), BackendError> {
        let pins = self.lock();
        remove_if_present(&self.volume_path(id))?;
        remove_tmps(&self.dir, id)?;
        sync_dir(&self.dir)?;
        // The volume may have been the last dependant of deleted snapshots.
        // Run even when the file was already gone: a crash may have come
        // between the removal and this gc.
        self.gc(&pins)
    }

    fn virtual_size(&self, id: Uuid) -> Result<Option<u64>, BackendError> {
        Self::image_size(&self.volume_path(id))
    }

    fn snapshot_create(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError> {
        let _pins = self.lock();
        fs::create_dir_all(&self.snap_dir).map_err(io_err(&self.snap_dir))?;
        let v = self.volume_path(vol);
        let s = self.snapshot_path(snap);
        let tmp = self.tmp_path(vol);
        if s.exists() {
            if v.exists() {
                // Done before: V is the overlay of S, or has moved on since
                // (a later snapshot or a rollback). Snapshot ids are fresh
                // server UUIDs, so S cannot belong to another volume.
                return Ok(());
            }
            // A crash came after the rename and before the overlay was in
            // place: the volume's content is S; finish the job.
            let size = Self::image_size(&s)?.unwrap_or(0);
            Self::make_overlay(&tmp, snap, size)?;
            return install(&tmp, &v);
        }
        let size = match Self::image_size(&v)? {
            Some(size) => size,
            None => return Err(BackendError::NotFound(format!("volume {vol}"))),
        };
        // Step 1: freeze. One atomic rename (same file system); from here on
        // `snapshots/S` exists, which is what a retry keys on.
        fs::rename(&v, &s).map_err(io_err(&s))?;
        sync_dir(&self.snap_dir)?;
        sync_dir(&self.dir)?;
        // Step 2: a new empty overlay under a temporary name, renamed in
        // place, so `volumes/V` never names a half-made file.
        Self::make_overlay(&tmp, snap, size)?;
        install(&tmp, &v)
    }

    fn rollback(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError> {
        let pins = self.lock();
        let s = self.live_snapshot(snap)?;
        let v = self.volume_path(vol);
        // The domain guarantees `snap` is a snapshot of `vol`; the backend
        // does not check the chain, because after a rollback to an older
        // snapshot a newer one is legitimately no longer in V's chain.
        let cur = match Self::image_size(&v)? {
            Some(size) => size,
            None => return Err(BackendError::NotFound(format!("volume {vol}"))),
        };
        // Keep the volume's size if it was extended after the snapshot.
        let size = cur.max(Self::image_size(&s)?.unwrap_or(0));
        // A new empty overlay of S replaces V's overlay in one rename: the
        // writes since S are discarded, nothing in snapshots/ is touched (so
        // later snapshots of the old chain stay intact). Repeating it yields
        // the same state.
        let tmp = self.tmp_path(vol);
        Self::make_overlay(&tmp, snap, size)?;
        install(&tmp, &v)?;
        // The discarded overlay may have been the last dependant of a
        // deleted snapshot.
        self.gc(&pins)
    }

    fn clone_from_snapshot(
        &self,
        snap: Uuid,
        new_vol: Uuid,
        size_bytes: u64,
        linked: bool,
    ) -> Result<(), BackendError> {
        let pins = self.lock();
        let v = self.volume_path(new_vol);
        if let Some(have) = Self::image_size(&v)? {
            return if have >= size_bytes {
                Ok(())
            } else {
                Err(BackendError::Mismatch(v))
            };
        }
        let s = self.live_snapshot(snap)?;
        let snap_size = Self::image_size(&s)?.unwrap_or(0);
        if size_bytes < snap_size {
            return Err(BackendError::Invalid(format!(
                "clone of {size_bytes} bytes is smaller than snapshot {snap} ({snap_size} bytes)"
            )));
        }
        let tmp = self.tmp_path(new_vol);
        if linked {
            Self::make_overlay(&tmp, snap, size_bytes)?;
            return install(&tmp, &v);
        }
        // A full copy can take minutes; run it without the lock but pinned,
        // so gc cannot remove S (or its chain) under the reading qemu-img.
        let mut pins = pins;
        *pins.0.entry(snap).or_default() += 1;
        drop(pins);
        let pin = PinGuard {
            backend: self,
            snap,
        };
        // `convert` flattens the whole chain into one independent image and
        // skips unallocated and zero clusters, so it copies only data.
        let (src, t) = (
            s.to_string_lossy().to_string(),
            tmp.to_string_lossy().to_string(),
        );
        Self::qemu_img(&["convert", "-q", "-f", "qcow2", "-O", "qcow2", &src, &t])?;
        if size_bytes > snap_size {
            Self::qemu_img(&["resize", "-q", "-f", "qcow2", &t, &size_bytes.to_string()])?;
        }
        // convert's default cache mode (unsafe) never flushes; the rename
        // below must not become durable before the data.
        sync_file(&tmp)?;
        install(&tmp, &v)?;
        drop(pin);
        // The snapshot may have been deleted while pinned; collect it now
        // rather than at the next delete.
        self.gc(&self.lock())
    }

    fn snapshot_delete(&self, snap: Uuid) -> Result<(), BackendError> {
        let pins = self.lock();
        let s = self.snapshot_path(snap);
        let t = self.tombstone_path(snap);
        if !s.exists() {
            // Already collected (or never taken): nothing but a stray
            // tombstone can be left.
            remove_if_present(&t)?;
            return Ok(());
        }
        if !t.exists() {
            fs::File::create(&t)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&t))?;
            sync_dir(&self.snap_dir)?;
        }
        // Removes the file now if nothing depends on it.
        self.gc(&pins)
    }

    fn snapshot_exists(&self, snap: Uuid) -> bool {
        self.snapshot_path(snap).exists() || self.tombstone_path(snap).exists()
    }

    fn snapshot_flatten(&self, snap: Uuid) -> Result<(), BackendError> {
        let s = self.snapshot_path(snap);
        if Self::backing_of(&s)?.is_none() {
            return Ok(()); // Done before, or the volume's first snapshot.
        }
        // Copy the chain's content into one file beside it, then swap it in
        // under the gc lock: the name (which overlays reference) stays.
        let tmp = tmp_for(&self.snap_dir, snap);
        let (src, dst) = (s.to_string_lossy(), tmp.to_string_lossy());
        Self::qemu_img(&["convert", "-U", "-f", "qcow2", "-O", "qcow2", &src, &dst])?;
        sync_file(&tmp)?;
        let _pins = self.lock();
        install(&tmp, &s)
    }

    fn active_path(&self, vol: Uuid) -> PathBuf {
        absolute(self.volume_path(vol))
    }

    fn snapshot_file(&self, snap: Uuid) -> PathBuf {
        absolute(self.snapshot_path(snap))
    }
}

// ------------------------------------------------------------------ raw --

/// Sparse raw files: `set_len` allocates nothing, so a 10 TiB volume costs
/// an inode until it is written. Snapshots, rollbacks and clones are
/// sparse-aware copies (only allocated extents are read and written), so
/// they cost in proportion to the data, not to the virtual size. A raw
/// snapshot is independent of everything, so deleting it removes the file.
pub struct RawBackend {
    dir: PathBuf,
    snap_dir: PathBuf,
}

impl RawBackend {
    /// `dir` is `<data-dir>/volumes`; snapshots go to `<data-dir>/snapshots`.
    pub fn new(dir: PathBuf) -> Self {
        let snap_dir = snapshots_dir_of(&dir);
        RawBackend { dir, snap_dir }
    }

    fn snapshot_path(&self, snap: Uuid) -> PathBuf {
        self.snap_dir.join(snap.to_string())
    }

    fn file_size(path: &Path) -> Result<Option<u64>, BackendError> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Copies `src` to `dst` (created or truncated) with final length `len`,
    /// copying only the extents the file system reports as data: `lseek`
    /// with `SEEK_DATA`/`SEEK_HOLE` (through `libc`, which std does not
    /// expose) finds them, positional `read_at`/`write_at` copy them, holes
    /// stay holes because `set_len` allocates nothing. On a file system
    /// without hole reporting `SEEK_DATA` treats the whole file as data: a
    /// full, still correct, copy. `cp --sparse=always` would do this too,
    /// but reads every byte of the holes to find zeros, O(virtual size).
    fn sparse_copy(src: &Path, dst: &Path, len: u64) -> Result<(), BackendError> {
        let input = fs::File::open(src).map_err(io_err(src))?;
        let src_len = input.metadata().map_err(io_err(src))?.len();
        let output = fs::File::create(dst).map_err(io_err(dst))?;
        output.set_len(len).map_err(io_err(dst))?;
        let end = src_len.min(len);
        let mut buf = vec![0u8; 1 << 20];
        for (data, hole) in crate::sparse::data_extents(&input, end).map_err(io_err(src))? {
            let mut pos = data;
            while pos < hole {
                let n = ((hole - pos) as usize).min(buf.len());
                input
                    .read_exact_at(&mut buf[..n], pos)
                    .map_err(io_err(src))?;
                output.write_all_at(&buf[..n], pos).map_err(io_err(dst))?;
                pos += n as u64;
            }
        }
        output.sync_all().map_err(io_err(dst))
    }
}

impl StorageBackend for RawBackend {
    fn format(&self) -> &'static str {
        "raw"
    }

    fn volume_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn create(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError> {
        let path = self.volume_path(id);
        if let Some(have) = self.virtual_size(id)? {
            return if have >= size_bytes {
                Ok(())
            } else {
                Err(BackendError::Mismatch(path))
            };
        }
        let tmp = tmp_for(&self.dir, id);
        let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.set_len(size_bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }

    fn extend(&self, id: Uuid, size_bytes: u64) -> Result<(), BackendError> {
        let path = self.volume_path(id);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let have = f.metadata().map_err(io_err(&path))?.len();
        if have < size_bytes {
            f.set_len(size_bytes).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
        Ok(())
    }

    fn delete(&self, id: Uuid) -> Result<(), BackendError> {
        remove_if_present(&self.volume_path(id))?;
        remove_tmps(&self.dir, id)?;
        sync_dir(&self.dir)
    }

    fn virtual_size(&self, id: Uuid) -> Result<Option<u64>, BackendError> {
        Self::file_size(&self.volume_path(id))
    }

    fn snapshot_create(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError> {
        let s = self.snapshot_path(snap);
        // Built under a temporary name: if the final name exists, the copy
        // is complete.
        if s.exists() {
            return Ok(());
        }
        let v = self.volume_path(vol);
        let Some(size) = Self::file_size(&v)? else {
            return Err(BackendError::NotFound(format!("volume {vol}")));
        };
        fs::create_dir_all(&self.snap_dir).map_err(io_err(&self.snap_dir))?;
        let tmp = tmp_for(&self.snap_dir, snap);
        Self::sparse_copy(&v, &tmp, size)?;
        install(&tmp, &s)
    }

    fn rollback(&self, vol: Uuid, snap: Uuid) -> Result<(), BackendError> {
        let s = self.snapshot_path(snap);
        let Some(snap_size) = Self::file_size(&s)? else {
            return Err(BackendError::NotFound(format!("snapshot {snap}")));
        };
        let v = self.volume_path(vol);
        let Some(cur) = Self::file_size(&v)? else {
            return Err(BackendError::NotFound(format!("volume {vol}")));
        };
        // Copy back into a new file and rename it over the volume: a crash
        // leaves either the old or the restored volume, never a mix.
        let tmp = tmp_for(&self.dir, vol);
        Self::sparse_copy(&s, &tmp, cur.max(snap_size))?;
        install(&tmp, &v)
    }

    fn clone_from_snapshot(
        &self,
        snap: Uuid,
        new_vol: Uuid,
        size_bytes: u64,
        _linked: bool,
    ) -> Result<(), BackendError> {
        let v = self.volume_path(new_vol);
        if let Some(have) = Self::file_size(&v)? {
            return if have >= size_bytes {
                Ok(())
            } else {
                Err(BackendError::Mismatch(v))
            };
        }
        let s = self.snapshot_path(snap);
        let Some(snap_size) = Self::file_size(&s)? else {
            return Err(BackendError::NotFound(format!("snapshot {snap}")));
        };
        if size_bytes < snap_size {
            return Err(BackendError::Invalid(format!(
                "clone of {size_bytes} bytes is smaller than snapshot {snap} ({snap_size} bytes)"
            )));
        }
        let tmp = tmp_for(&self.dir, new_vol);
        Self::sparse_copy(&s, &tmp, size_bytes)?;
        install(&tmp, &v)
    }

    /// Raw files share nothing: one sparse copy, no internal snapshot.
    fn clone_from_volume(
        &self,
        src: Uuid,
        new_vol: Uuid,
        size_bytes: u64,
    ) -> Result<(), BackendError> {
        let v = self.volume_path(new_vol);
        if let Some(have) = Self::file_size(&v)? {
            return if have >= size_bytes {
                Ok(())
            } else {
                Err(BackendError::Mismatch(v))
            };
        }
        let s = self.volume_path(src);
        let Some(src_size) = Self::file_size(&s)? else {
            return Err(BackendError::NotFound(format!("volume {src}")));
        };
        if size_bytes < src_size {
            return Err(BackendError::Invalid(format!(
                "clone of {size_bytes} bytes is smaller than volume {src} ({src_size} bytes)"
            )));
        }
        let tmp = tmp_for(&self.dir, new_vol);
        Self::sparse_copy(&s, &tmp, size_bytes)?;
        install(&tmp, &v)
    }

    fn snapshot_delete(&self, snap: Uuid) -> Result<(), BackendError> {
        remove_if_present(&self.snapshot_path(snap))?;
        remove_tmps(&self.snap_dir, snap)?;
        sync_dir(&self.snap_dir)
    }

    fn snapshot_exists(&self, snap: Uuid) -> bool {
        self.snapshot_path(snap).exists()
    }

    fn active_path(&self, vol: Uuid) -> PathBuf {
        absolute(self.volume_path(vol))
    }

    fn snapshot_file(&self, snap: Uuid) -> PathBuf {
        absolute(self.snapshot_path(snap))
    }
}

#[cfg(test)]
mod conformance {
    //! One suite, every backend: each operation run twice to prove it
    //! idempotent, as the executor's at-least-once delivery requires.
    use super::*;

    const GIB: u64 = 1 << 30;

    fn backends(dir: &Path) -> Vec<Box<dyn StorageBackend>> {
        vec![
            open_backend("qcow2", &dir.join("q")).unwrap(),
            open_backend("raw", &dir.join("r")).unwrap(),
        ]
    }

    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn create_extend_delete_are_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            let id = Uuid::new_v4();
            assert_eq!(b.virtual_size(id).unwrap(), None, "{}", b.format());
            b.create(id, GIB).unwrap();
            b.create(id, GIB).unwrap();
            assert_eq!(b.virtual_size(id).unwrap(), Some(GIB));
            assert!(b.volume_path(id).ends_with(id.to_string()));
            b.extend(id, 3 * GIB).unwrap();
            b.extend(id, 3 * GIB).unwrap();
            assert_eq!(b.virtual_size(id).unwrap(), Some(3 * GIB));
            // Asking for less than is there is not a shrink.
            b.extend(id, GIB).unwrap();
            assert_eq!(b.virtual_size(id).unwrap(), Some(3 * GIB));
            b.delete(id).unwrap();
            b.delete(id).unwrap();
            assert!(!b.volume_path(id).exists());
        }
    }

    #[test]
    fn a_huge_volume_costs_no_space() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            let id = Uuid::new_v4();
            // 10 TiB: ext4 caps one file at 16 TiB, so the raw backend cannot hold
            // the largest documented size (32 TiB); qcow2 can.
            b.create(id, 10 * 1024 * GIB).unwrap();
            let used = allocated(&b.volume_path(id));
            assert!(used < 16 << 20, "{} uses {used} bytes", b.format());
        }
    }

    #[test]
    fn a_left_over_temporary_file_does_not_block_create() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            let id = Uuid::new_v4();
            let stale = b.volume_path(id).with_file_name(format!("{id}.tmp"));
            fs::write(&stale, b"half").unwrap();
            b.create(id, GIB).unwrap();
            assert_eq!(b.virtual_size(id).unwrap(), Some(GIB));
        }
    }

    #[test]
    fn extending_a_missing_volume_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            assert!(b.extend(Uuid::new_v4(), GIB).is_err());
        }
    }

    #[test]
    fn snapshot_operations_are_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            let f = b.format();
            let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
            b.create(vol, GIB).unwrap();
            assert!(!b.snapshot_exists(snap));

            b.snapshot_create(vol, snap).unwrap();
            b.snapshot_create(vol, snap).unwrap();
            assert!(b.snapshot_exists(snap), "{f}");
            assert_eq!(b.virtual_size(vol).unwrap(), Some(GIB), "{f}");

            // Rollback keeps a size grown after the snapshot.
            b.extend(vol, 2 * GIB).unwrap();
            b.rollback(vol, snap).unwrap();
            b.rollback(vol, snap).unwrap();
            assert_eq!(b.virtual_size(vol).unwrap(), Some(2 * GIB), "{f}");

            let (linked, full) = (Uuid::new_v4(), Uuid::new_v4());
            b.clone_from_snapshot(snap, linked, GIB, true).unwrap();
            b.clone_from_snapshot(snap, linked, GIB, true).unwrap();
            assert_eq!(b.virtual_size(linked).unwrap(), Some(GIB), "{f}");
            b.clone_from_snapshot(snap, full, 3 * GIB, false).unwrap();
            b.clone_from_snapshot(snap, full, 3 * GIB, false).unwrap();
            assert_eq!(b.virtual_size(full).unwrap(), Some(3 * GIB), "{f}");
            // Smaller than the snapshot is refused.
            assert!(b
                .clone_from_snapshot(snap, Uuid::new_v4(), GIB / 2, true)
                .is_err());

            for p in [
                b.active_path(vol),
                b.active_path(linked),
                b.active_path(full),
            ] {
                assert!(p.is_absolute() && p.exists(), "{f}: {}", p.display());
            }

            b.snapshot_delete(snap).unwrap();
            b.snapshot_delete(snap).unwrap();
            // A deleted snapshot is no source any more.
            assert!(b.rollback(vol, snap).is_err(), "{f}");
            assert!(b
                .clone_from_snapshot(snap, Uuid::new_v4(), GIB, true)
                .is_err());
            if f == "qcow2" {
                // vol and the linked clone still read through it.
                assert!(b.snapshot_exists(snap));
            } else {
                assert!(!b.snapshot_exists(snap));
            }
            for id in [linked, vol, full] {
                b.delete(id).unwrap();
                b.delete(id).unwrap();
            }
            assert!(!b.snapshot_exists(snap), "{f}: nothing depends on it now");
            b.snapshot_delete(snap).unwrap();
        }
    }

    #[test]
    fn a_snapshot_pinned_by_a_running_full_clone_outlives_its_deletion() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("volumes");
        fs::create_dir_all(&dir).unwrap();
        let b = Qcow2Backend::new(dir);
        let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
        b.create(vol, GIB).unwrap();
        b.snapshot_create(vol, snap).unwrap();
        b.delete(vol).unwrap();
        // As clone_from_snapshot(.., linked=false) does while it copies.
        b.lock().0.insert(snap, 1);
        b.snapshot_delete(snap).unwrap();
        assert!(b.snapshot_path(snap).exists(), "pinned");
        b.lock().0.clear();
        // The next gc (here: any delete) collects it.
        b.delete(Uuid::new_v4()).unwrap();
        assert!(!b.snapshot_exists(snap));
        assert!(!b.snapshot_path(snap).exists());
    }

    #[test]
    fn snapshot_sources_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            let (vol, snap) = (Uuid::new_v4(), Uuid::new_v4());
            assert!(b.snapshot_create(vol, snap).is_err());
            assert!(!b.snapshot_exists(snap));
            b.create(vol, GIB).unwrap();
            assert!(b.rollback(vol, snap).is_err());
            assert!(b
                .clone_from_snapshot(snap, Uuid::new_v4(), GIB, false)
                .is_err());
            // Deleting a missing snapshot succeeds (it may be a retry).
            b.snapshot_delete(snap).unwrap();
            b.snapshot_create(vol, snap).unwrap();
            assert!(b.rollback(Uuid::new_v4(), snap).is_err());
        }
    }

    #[test]
    fn a_huge_volume_snapshots_and_clones_cost_no_space() {
        let tmp = tempfile::tempdir().unwrap();
        for b in backends(tmp.path()) {
            let (vol, snap, c1, c2) = (
                Uuid::new_v4(),
                Uuid::new_v4(),
                Uuid::new_v4(),
                Uuid::new_v4(),
            );
            b.create(vol, 10 * 1024 * GIB).unwrap();
            b.snapshot_create(vol, snap).unwrap();
            b.rollback(vol, snap).unwrap();
            b.clone_from_snapshot(snap, c1, 10 * 1024 * GIB, true)
                .unwrap();
            b.clone_from_snapshot(snap, c2, 10 * 1024 * GIB, false)
                .unwrap();
            let snap_file = tmp
                .path()
                .join(if b.format() == "qcow2" { "q" } else { "r" })
                .join("snapshots")
                .join(snap.to_string());
            for p in [
                b.volume_path(vol),
                b.volume_path(c1),
                b.volume_path(c2),
                snap_file,
            ] {
                let used = allocated(&p);
                assert!(
                    used < 16 << 20,
                    "{} {} uses {used}",
                    b.format(),
                    p.display()
                );
            }
        }
    }
}
