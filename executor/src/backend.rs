//! Where volume bytes live. The executor talks to disks only through
//! `StorageBackend`, so the qcow2 backend (default; backing chains make
//! snapshots and linked clones O(1) later) and the raw backend (sparse files;
//! no external tool) are interchangeable and pass one conformance suite.
//!
//! Every operation is idempotent, because the executor delivers work at
//! least once: creating an existing volume of the right size, growing a
//! volume that is already big enough and deleting a missing one all succeed.
//! Files are named only by server-generated UUIDs, never by user input.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

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
}

/// Which backend `--backend` selects.
pub fn open_backend(kind: &str, data_dir: &Path) -> Result<Box<dyn StorageBackend>, BackendError> {
    let dir = data_dir.join("volumes");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    match kind {
        "raw" => Ok(Box::new(RawBackend { dir })),
        _ => Ok(Box::new(Qcow2Backend { dir })),
    }
}

/// Makes a rename durable: the directory entry must reach the disk too.
fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn remove_if_present(path: &Path) -> Result<(), BackendError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// qcow2 files made and changed with `qemu-img`, the tool Cinder itself uses,
/// rather than hand-written image-format code.
pub struct Qcow2Backend {
    dir: PathBuf,
}

impl Qcow2Backend {
    pub fn new(dir: PathBuf) -> Self {
        Qcow2Backend { dir }
    }

    fn qemu_img(args: &[&str]) -> Result<Vec<u8>, BackendError> {
        let out = Command::new("qemu-img")
            .args(args)
            .output()
            .map_err(|e| BackendError::Tool {
                args: args.join(" "),
                stderr: format!("cannot run qemu-img: {e}"),
            })?;
        if !out.status.success() {
            return Err(BackendError::Tool {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
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
        let tmp = self.dir.join(format!("{id}.tmp"));
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
                let p = path.to_string_lossy().to_string();
                Self::qemu_img(&["resize", "-q", "-f", "qcow2", &p, &size_bytes.to_string()])?;
                Ok(())
            }
            None => Err(io_err(&path)(io::Error::from(io::ErrorKind::NotFound))),
        }
    }

    fn delete(&self, id: Uuid) -> Result<(), BackendError> {
        remove_if_present(&self.volume_path(id))?;
        remove_if_present(&self.dir.join(format!("{id}.tmp")))?;
        sync_dir(&self.dir)
    }

    fn virtual_size(&self, id: Uuid) -> Result<Option<u64>, BackendError> {
        let path = self.volume_path(id);
        if !path.exists() {
            return Ok(None);
        }
        let p = path.to_string_lossy().to_string();
        let out = Self::qemu_img(&["info", "-U", "--output=json", "-f", "qcow2", &p])?;
        let info: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| BackendError::Tool {
                args: format!("info {p}"),
                stderr: format!("unreadable JSON: {e}"),
            })?;
        Ok(info["virtual-size"].as_u64())
    }
}

/// Sparse raw files: `set_len` allocates nothing, so a 10 TiB volume costs
/// an inode until it is written.
pub struct RawBackend {
    dir: PathBuf,
}

impl RawBackend {
    pub fn new(dir: PathBuf) -> Self {
        RawBackend { dir }
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
        let tmp = self.dir.join(format!("{id}.tmp"));
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
        remove_if_present(&self.dir.join(format!("{id}.tmp")))?;
        sync_dir(&self.dir)
    }

    fn virtual_size(&self, id: Uuid) -> Result<Option<u64>, BackendError> {
        let path = self.volume_path(id);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
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
            let used = {
                use std::os::unix::fs::MetadataExt;
                fs::metadata(b.volume_path(id)).unwrap().blocks() * 512
            };
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
}
