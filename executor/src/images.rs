//! The image catalogue on disk: `<data-dir>/images/<image-uuid>`.
//!
//! Images are made from volumes or snapshots (`export`), uploaded
//! (`import`), and written into new volumes (`write_into_volume`). All data
//! work is done by `qemu-img`, the tool Cinder itself uses, never by
//! hand-written image-format code: `qemu-img convert` flattens a whole
//! backing chain and copies only allocated data (it asks each layer for its
//! block status, so holes, unallocated clusters and zero clusters are neither
//! read nor written).
//!
//! Layout of `images/`:
//!
//! ```text
//! <image-uuid>             a complete image, immutable once there
//! <image-uuid>.meta        its ImageInfo as JSON (format, sizes, sha256)
//! <image-uuid>.tmp.<rand>  a file being built; renamed into place when complete
//! ```
//!
//! Crash safety: everything is built under a fresh temporary name in the
//! same directory, flushed, and renamed into place, and the directory is
//! fsynced. The `.meta` file is installed *before* the image, so an image
//! under its final name always has its meta beside it, and a retry after a
//! crash between the two simply rewrites the meta for its own bytes. So the
//! final name only ever names a complete image, and its presence is what
//! makes every operation idempotent (delivery is at-least-once): exporting
//! or importing an image that exists returns its recorded info, deleting a
//! missing image succeeds.
//!
//! All functions are blocking; the executor calls them in `spawn_blocking`.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tool::Tool;
use uuid::Uuid;

/// Image file formats the catalogue stores. `Vhd` is qemu's `vpc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vhd,
}

impl DiskFormat {
    /// `raw`, `qcow2` or `vhd` (the API names). `zvhd`/`zvhd2` are refused
    /// by the API before they get here, and are refused here too.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "raw" => Some(DiskFormat::Raw),
            "qcow2" => Some(DiskFormat::Qcow2),
            "vhd" => Some(DiskFormat::Vhd),
            _ => None,
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vhd",
        }
    }

    /// qemu's driver name (`-f`/`-O`, and what `qemu-img info` reports).
    pub fn qemu_name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vpc",
        }
    }

    fn from_qemu_name(s: &str) -> Option<Self> {
        match s {
            "raw" => Some(DiskFormat::Raw),
            "qcow2" => Some(DiskFormat::Qcow2),
            "vpc" => Some(DiskFormat::Vhd),
            _ => None,
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DiskFormat {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DiskFormat::parse(s)
            .ok_or_else(|| ImageError::Invalid(format!("unknown disk format {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Bytes of the image file (what a download would transfer).
    pub size: u64,
    /// The guest-visible disk size.
    pub virtual_size: u64,
    /// sha256 of the image file, lower-case hex.
    pub checksum_sha256: String,
    pub disk_format: DiskFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("qemu-img {args} failed: {stderr}")]
    Tool { args: String, stderr: String },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("image data is {detected}, not the declared {declared}")]
    FormatMismatch {
        declared: DiskFormat,
        detected: String,
    },
    #[error("image refused: {0}")]
    Unsafe(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0} exists and does not match the request")]
    Mismatch(PathBuf),
    #[error("image catalogue entry {0} is damaged: {1}")]
    Corrupt(Uuid, String),
    #[error("{0}")]
    Storage(#[from] crate::backend::BackendError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The image files under `<data-dir>/images`.
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    pub fn open(data_dir: &Path) -> Result<Self, ImageError> {
        let dir = data_dir.join("images");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        // Absolute, so qemu-img (and error messages) never depend on the cwd.
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Ok(ImageStore { dir })
    }

    pub fn path(&self, image: Uuid) -> PathBuf {
        self.dir.join(image.to_string())
    }

    fn meta_path(&self, image: Uuid) -> PathBuf {
        self.dir.join(format!("{image}.meta"))
    }

    /// Flattens `source` (a volume's active file with its whole backing
    /// chain, or a snapshot file; `source_format` is `qcow2` or `raw`) into
    /// `images/<image>` in `format`, copying only allocated data.
    ///
    /// No `-U` (force-share): qemu-img then takes the shared read lock, so
    /// if some qemu process held the volume open for writing the export
    /// fails instead of copying a moving target. The caller must keep the
    /// volume from being extended or rolled back while it is exported; a
    /// concurrent `snapshot_create` only renames the file qemu-img already
    /// has open, whose content is frozen from then on, so the copy stays
    /// consistent.
    ///
    /// `progress` gets 0..=100, monotonically, ending at 100: 0..=90 follow
    /// `qemu-img convert -p`, 90..=99 the checksum pass, 100 once installed.
    pub fn export(
        &self,
        source: &Path,
        source_format: &str,
        image: Uuid,
        format: DiskFormat,
        progress: &mut dyn FnMut(u8),
    ) -> Result<ImageInfo, ImageError> {
        let mut progress = Progress::new(progress);
        if let Some(info) = self.info(image)? {
            // Done before (image ids are fresh server UUIDs, so this is a
            // retry of the same request).
            if info.disk_format != format {
                return Err(ImageError::Mismatch(self.path(image)));
            }
            progress.report(100);
            return Ok(info);
        }
        let src_fmt = match DiskFormat::parse(source_format) {
            Some(f @ (DiskFormat::Raw | DiskFormat::Qcow2)) => f,
            _ => {
                return Err(ImageError::Invalid(format!(
                    "cannot export from a {source_format:?} volume"
                )))
            }
        };
        if !source.exists() {
            return Err(ImageError::NotFound(source.display().to_string()));
        }
        // A fresh temporary name: leftovers of a crashed attempt (maybe still
        // written by an orphaned qemu-img) are never reused; cleanup_temps
        // at startup removes them. Failures at runtime remove theirs (Temp).
        let tmp = Temp::new(&self.dir, image);
        let mut args: Vec<String> = vec![
            "convert".into(),
            "-p".into(),
            "-f".into(),
            src_fmt.qemu_name().into(),
            "-O".into(),
            format.qemu_name().into(),
        ];
        if format == DiskFormat::Vhd {
            // Without force_size qemu rounds the size up to a CHS geometry
            // (2 GiB becomes 2 GiB + 496 KiB) and the image would not have
            // the volume's size. Dynamic = sparse.
            args.extend(["-o".into(), "subformat=dynamic,force_size=on".into()]);
        }
        args.push(source.to_string_lossy().into_owned());
        args.push(tmp.path.to_string_lossy().into_owned());
        run_with_progress(&args, &mut |p| progress.report(scale(p, 0, 90)))?;
        // convert's default cache mode (unsafe) never flushes: the data must
        // be durable before the rename that publishes it.
        sync_file(&tmp.path)?;
        let virtual_size = virtual_size(&tmp.path, format)?;
        let (size, checksum_sha256) =
            sha256_file(&tmp.path, &mut |p| progress.report(scale(p, 90, 99)))?;
        let info = ImageInfo {
            size,
            virtual_size,
            checksum_sha256,
            disk_format: format,
        };
        self.publish(image, &info, tmp)?;
        progress.report(100);
        Ok(info)
    }

    /// Exports `what` (a volume's current bytes or a snapshot's) of
    /// `backend` into `images/<image>` in `format`. File storages: `export`
    /// from the file itself, exactly as before. Storages that are not files
    /// (RBD): their raw bytes are first copied out to a sparse temporary
    /// file here, which `export` then converts and checksums.
    pub fn export_from(
        &self,
        backend: &dyn crate::backend::StorageBackend,
        what: crate::backend::Bytes,
        image: Uuid,
        format: DiskFormat,
        progress: &mut dyn FnMut(u8),
    ) -> Result<ImageInfo, ImageError> {
        use crate::backend::Bytes;
        let Some(transfer) = backend.raw_transfer() else {
            let source = match what {
                Bytes::Volume(v) => backend.active_path(v),
                Bytes::Snapshot(s) => backend.snapshot_file(s),
            };
            return self.export(&source, backend.format(), image, format, progress);
        };
        if let Some(info) = self.info(image)? {
            // A retry (image ids are fresh server UUIDs): nothing to read.
            if info.disk_format != format {
                return Err(ImageError::Mismatch(self.path(image)));
            }
            progress(100);
            return Ok(info);
        }
        // Named like the other temporaries of this image (`<id>.tmp.*`), so
        // a crash leaves nothing `cleanup_temps` does not remove.
        let scratch = Temp::new(&self.dir, image);
        transfer.export_raw(what, &scratch.path)?;
        self.export(&scratch.path, "raw", image, format, progress)
    }

    /// Writes `image`'s bytes into volume `vol` of `backend`, of virtual
    /// size `size_bytes`: a new volume (`replace` false, idempotent as
    /// `write_into_volume`) or, for os-reimage, over the volume's bytes
    /// (`replace` true, as `replace_volume`). File storages: exactly those
    /// two. Storages that are not files: converted to a sparse raw
    /// temporary file here, grown to the size, and imported.
    pub fn write_volume(
        &self,
        backend: &dyn crate::backend::StorageBackend,
        vol: Uuid,
        image: Uuid,
        size_bytes: u64,
        replace: bool,
        progress: &mut dyn FnMut(u8),
    ) -> Result<(), ImageError> {
        let Some(transfer) = backend.raw_transfer() else {
            let (dest, format) = (backend.volume_path(vol), backend.format());
            return if replace {
                self.replace_volume(image, &dest, format, size_bytes, progress)
            } else {
                self.write_into_volume(image, &dest, format, size_bytes, progress)
            };
        };
        let mut progress = Progress::new(progress);
        if !replace {
            match backend.virtual_size(vol)? {
                Some(have) if have >= size_bytes => {
                    progress.report(100);
                    return Ok(());
                }
                Some(_) => return Err(ImageError::Mismatch(backend.volume_path(vol))),
                None => {}
            }
        }
        let Some(info) = self.info(image)? else {
            return Err(ImageError::NotFound(format!("image {image}")));
        };
        if size_bytes < info.virtual_size {
            return Err(ImageError::Invalid(format!(
                "volume of {size_bytes} bytes is smaller than image {image} ({} bytes)",
                info.virtual_size
            )));
        }
        let scratch = Temp::new(&self.dir, image);
        let t = scratch.path.to_string_lossy().into_owned();
        let args: Vec<String> = vec![
            "convert".into(),
            "-p".into(),
            "-f".into(),
            info.disk_format.qemu_name().into(),
            "-O".into(),
            "raw".into(),
            self.path(image).to_string_lossy().into_owned(),
            t.clone(),
        ];
        run_with_progress(&args, &mut |p| progress.report(scale(p, 0, 50)))?;
        if size_bytes > info.virtual_size {
            run(&["resize", "-q", "-f", "raw", &t, &size_bytes.to_string()])?;
        }
        transfer.import_raw(vol, &scratch.path, replace)?;
        progress.report(100);
        Ok(())
    }

    /// Imports uploaded bytes as `images/<image>`. The data is streamed into
    /// a temporary file (hashed on the way, zero blocks left sparse); its
    /// format is then detected with `qemu-img info` and must be the declared
    /// one. Images that refer to other files (a backing file, a qcow2
    /// external data file) are refused: opening them would read arbitrary
    /// host files.
    ///
    /// Idempotent: if the image exists, its info is returned and `data` is
    /// not read.
    pub fn import(
        &self,
        image: Uuid,
        declared: DiskFormat,
        data: &mut dyn Read,
    ) -> Result<ImageInfo, ImageError> {
        if let Some(info) = self.info(image)? {
            if info.disk_format != declared {
                return Err(ImageError::Mismatch(self.path(image)));
            }
            return Ok(info);
        }
        // No sweep of other `<image>.tmp*` here: the API may be running a
        // duplicate upload of the same id right now (see export for why
        // leftovers are harmless).
        let tmp = Temp::new(&self.dir, image);
        let (size, checksum_sha256) = {
            use std::os::unix::fs::FileExt;
            let file = fs::File::create(&tmp.path).map_err(io_err(&tmp.path))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let zeros = vec![0u8; buf.len()];
            let mut size = 0u64;
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(ImageError::Io {
                            path: PathBuf::from("<upload>"),
                            source: e,
                        })
                    }
                };
                let chunk = &buf[..n];
                hasher.update(chunk);
                // Zeros are left as a hole (the final set_len covers a
                // trailing one): a mostly empty raw upload stays sparse,
                // like the exports. Reads return the same bytes.
                if chunk != &zeros[..n] {
                    file.write_all_at(chunk, size).map_err(io_err(&tmp.path))?;
                }
                size += n as u64;
            }
            file.set_len(size).map_err(io_err(&tmp.path))?;
            file.sync_all().map_err(io_err(&tmp.path))?;
            (size, hex::encode(hasher.finalize()))
        };
        let virtual_size = check_upload(&tmp.path, declared)?;
        let info = ImageInfo {
            size,
            virtual_size,
            checksum_sha256,
            disk_format: declared,
        };
        self.publish(image, &info, tmp)?;
        Ok(info)
    }

    /// Writes the image's data into a new volume file at `dest` (`qcow2` or
    /// `raw`) of virtual size `size_bytes` (>= the image's; grown if
    /// larger), with `qemu-img convert` and `resize`, built under a
    /// temporary name next to `dest` and renamed into place.
    ///
    /// Idempotent: a file at `dest` can only be a complete earlier result
    /// (nothing else creates this path), so if it is there with at least
    /// `size_bytes` (it may have been extended since) we are done; a smaller
    /// one is refused rather than overwritten.
    pub fn write_into_volume(
        &self,
        image: Uuid,
        dest: &Path,
        dest_format: &str,
        size_bytes: u64,
        progress: &mut dyn FnMut(u8),
    ) -> Result<(), ImageError> {
        let mut progress = Progress::new(progress);
        let dest_fmt = match DiskFormat::parse(dest_format) {
            Some(f @ (DiskFormat::Raw | DiskFormat::Qcow2)) => f,
            _ => {
                return Err(ImageError::Invalid(format!(
                    "cannot make a {dest_format:?} volume"
                )))
            }
        };
        if dest.exists() {
            let have = virtual_size(dest, dest_fmt)?;
            if have >= size_bytes {
                progress.report(100);
                return Ok(());
            }
            return Err(ImageError::Mismatch(dest.to_path_buf()));
        }
        self.convert_over(image, dest, dest_fmt, size_bytes, &mut progress)
    }

    /// Cinder 3.68 os-reimage: `image`'s bytes replace the volume file at
    /// `dest` (grown to `size_bytes`). Written to a temporary and renamed
    /// over `dest`, so a crash leaves either the old bytes or the new,
    /// never a half-written volume; a redo after a crash writes it again
    /// (the same bytes). Only `dest` changes: the snapshot files its old
    /// backing chain named stay as they are (the new file has no backing).
    pub fn replace_volume(
        &self,
        image: Uuid,
        dest: &Path,
        dest_format: &str,
        size_bytes: u64,
        progress: &mut dyn FnMut(u8),
    ) -> Result<(), ImageError> {
        let mut progress = Progress::new(progress);
        let dest_fmt = match DiskFormat::parse(dest_format) {
            Some(f @ (DiskFormat::Raw | DiskFormat::Qcow2)) => f,
            _ => {
                return Err(ImageError::Invalid(format!(
                    "cannot write a {dest_format:?} volume"
                )))
            }
        };
        self.convert_over(image, dest, dest_fmt, size_bytes, &mut progress)
    }

    /// Converts `image` into a temporary next to `dest`, grows it to
    /// `size_bytes`, syncs it and renames it over `dest`.
    fn convert_over(
        &self,
        image: Uuid,
        dest: &Path,
        dest_fmt: DiskFormat,
        size_bytes: u64,
        progress: &mut Progress<'_>,
    ) -> Result<(), ImageError> {
        let Some(info) = self.info(image)? else {
            return Err(ImageError::NotFound(format!("image {image}")));
        };
        if size_bytes < info.virtual_size {
            return Err(ImageError::Invalid(format!(
                "volume of {size_bytes} bytes is smaller than image {image} ({} bytes)",
                info.virtual_size
            )));
        }
        let (dir, name) = match (dest.parent(), dest.file_name()) {
            (Some(d), Some(n)) => (d, n.to_string_lossy().into_owned()),
            _ => return Err(ImageError::Invalid(format!("bad volume path {dest:?}"))),
        };
        // Same naming as the backend's temporaries (`<vol>.tmp.<rand>`), so
        // its `delete` cleans ours too. Leftovers of a crashed attempt are
        // garbage (nothing else builds this volume while it is created):
        // remove them now rather than wait for the next startup's sweep
        // (`Executor::sweep_temps`).
        remove_tmps_named(dir, &name)?;
        let tmp = Temp {
            path: dir.join(format!("{name}.tmp.{}", Uuid::new_v4().simple())),
        };
        let t = tmp.path.to_string_lossy().into_owned();
        let args: Vec<String> = vec![
            "convert".into(),
            "-p".into(),
            "-f".into(),
            info.disk_format.qemu_name().into(),
            "-O".into(),
            dest_fmt.qemu_name().into(),
            self.path(image).to_string_lossy().into_owned(),
            t.clone(),
        ];
        run_with_progress(&args, &mut |p| progress.report(p.min(99)))?;
        if size_bytes > info.virtual_size {
            // qcow2: a header change; raw: a sparse truncate. No data moves.
            run(&[
                "resize",
                "-q",
                "-f",
                dest_fmt.qemu_name(),
                &t,
                &size_bytes.to_string(),
            ])?;
        }
        sync_file(&tmp.path)?;
        tmp.install(dest)?;
        progress.report(100);
        Ok(())
    }

    /// Removes the image. Idempotent. Image first, meta second: a crash in
    /// between leaves only an orphan meta, which a retry removes and which
    /// never makes a missing image look present.
    pub fn delete(&self, image: Uuid) -> Result<(), ImageError> {
        remove_if_present(&self.path(image))?;
        remove_if_present(&self.meta_path(image))?;
        remove_tmps(&self.dir, image)?;
        sync_dir(&self.dir)
    }

    /// The image's recorded info, or None if there is no such image.
    pub fn info(&self, image: Uuid) -> Result<Option<ImageInfo>, ImageError> {
        let path = self.path(image);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let meta = self.meta_path(image);
        let bytes = fs::read(&meta).map_err(|e| ImageError::Corrupt(image, e.to_string()))?;
        let info: ImageInfo = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Corrupt(image, e.to_string()))?;
        // Images are immutable; a size change means someone tampered.
        if info.size != len {
            return Err(ImageError::Corrupt(
                image,
                format!("file has {len} bytes, catalogue says {}", info.size),
            ));
        }
        Ok(Some(info))
    }

    /// Removes half-built temporary files (crash leftovers). Call it at
    /// startup, before the executor runs: a build running concurrently
    /// would lose its temporary file and fail (and be retried).
    pub fn cleanup_temps(&self) -> Result<(), ImageError> {
        let entries = fs::read_dir(&self.dir).map_err(io_err(&self.dir))?;
        let mut removed = false;
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            if entry.file_name().to_string_lossy().contains(".tmp") {
                remove_if_present(&entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Installs a complete, flushed image: meta first (so a published image
    /// always has one), then the image, each by rename + directory fsync.
    fn publish(&self, image: Uuid, info: &ImageInfo, tmp: Temp) -> Result<(), ImageError> {
        let meta_tmp = Temp::new(&self.dir, image);
        let json = serde_json::to_vec(info).expect("ImageInfo serializes");
        fs::File::create(&meta_tmp.path)
            .and_then(|mut f| {
                f.write_all(&json)?;
                f.sync_all()
            })
            .map_err(io_err(&meta_tmp.path))?;
        meta_tmp.install(&self.meta_path(image))?;
        tmp.install(&self.path(image))
    }
}

/// A temporary file that is removed on drop unless installed, so a failed
/// build (tool error, mismatch, panic) leaves nothing behind.
struct Temp {
    path: PathBuf,
}

impl Temp {
    /// A fresh name per call: after a crash an orphaned `qemu-img` may still
    /// be writing an older temporary file, and a retry must not share it.
    fn new(dir: &Path, id: Uuid) -> Self {
        Temp {
            path: dir.join(format!("{id}.tmp.{}", Uuid::new_v4().simple())),
        }
    }

    /// Renames the (flushed) file over `dst` and makes the rename durable.
    fn install(self, dst: &Path) -> Result<(), ImageError> {
        fs::rename(&self.path, dst).map_err(io_err(dst))?;
        std::mem::forget(self);
        sync_dir(dst.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Reports only increases, so the caller sees a monotonic 0..=100.
struct Progress<'a> {
    f: &'a mut dyn FnMut(u8),
    last: Option<u8>,
}

impl<'a> Progress<'a> {
    fn new(f: &'a mut dyn FnMut(u8)) -> Self {
        Progress { f, last: None }
    }

    fn report(&mut self, p: u8) {
        let p = p.min(100);
        if self.last.is_none_or(|l| p > l) {
            self.last = Some(p);
            (self.f)(p);
        }
    }
}

/// Maps `p` in 0..=100 onto `lo..=hi`.
fn scale(p: u8, lo: u8, hi: u8) -> u8 {
    lo + (u16::from(p.min(100)) * u16::from(hi - lo) / 100) as u8
}

fn tool_err(args: &[String], stderr: impl Into<String>) -> ImageError {
    ImageError::Tool {
        args: args.join(" "),
        stderr: stderr.into(),
    }
}

fn run(args: &[&str]) -> Result<Vec<u8>, ImageError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    output(Tool::qemu_img(&args), &args)
}

/// Runs a helper (crate::tool: it dies with the server and is killed past
/// its deadline); its stdout, or the failure with the tool's reason.
fn output(tool: Tool, args: &[String]) -> Result<Vec<u8>, ImageError> {
    tool.output().map_err(|e| tool_err(args, e.to_string()))
}

/// Runs `qemu-img <args>` (which must contain `-p`) and turns its progress
/// output into `progress(0..=100)` calls.
///
/// Why parse rather than poll the output file's size: the output size says
/// nothing about progress (a sparse raw output has its full length from the
/// start, a qcow2 output grows only with the allocated data, which is
/// unknown in advance), whereas qemu-img knows how far it is through the
/// source. With `-p` it writes `    (NN.NN/100%)\r` to stdout (a pipe works;
/// it flushes each update), so we split stdout on `\r`/`\n`. `Tool` drains
/// stderr on another thread so neither pipe can fill up and block the tool.
fn run_with_progress(args: &[String], progress: &mut dyn FnMut(u8)) -> Result<(), ImageError> {
    let mut line = Vec::new();
    Tool::qemu_img(args)
        .run(&mut |chunk| {
            for &b in chunk {
                if b == b'\r' || b == b'\n' {
                    if let Some(p) = parse_progress(&line) {
                        progress(p);
                    }
                    line.clear();
                } else if line.len() < 256 {
                    line.push(b);
                }
            }
        })
        .map_err(|e| tool_err(args, e.to_string()))
}

/// `    (42.17/100%)` → 42.
fn parse_progress(line: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let inner = s.strip_prefix('(')?.strip_suffix("/100%)")?;
    let v: f64 = inner.parse().ok()?;
    Some(v.clamp(0.0, 100.0) as u8)
}

/// `qemu-img info --output=json` with an explicit format, so the answer
/// never depends on probing our own files' content (a raw image whose guest
/// wrote a qcow2 header must stay raw).
fn info_json(path: &Path, format: &str) -> Result<serde_json::Value, ImageError> {
    let p = path.to_string_lossy().into_owned();
    let out = run(&["info", "-U", "--output=json", "-f", format, &p])?;
    serde_json::from_slice(&out).map_err(|e| ImageError::Tool {
        args: format!("info {p}"),
        stderr: format!("unreadable JSON: {e}"),
    })
}

fn virtual_size(path: &Path, format: DiskFormat) -> Result<u64, ImageError> {
    info_json(path, format.qemu_name())?["virtual-size"]
        .as_u64()
        .ok_or_else(|| ImageError::Tool {
            args: format!("info {}", path.display()),
            stderr: "no virtual-size".into(),
        })
}

/// Checks an uploaded file: its detected format must be the declared one,
/// and it must not refer to any other file. Returns its virtual size.
///
/// qemu-img probes untrusted data here, so it runs with the limits Cinder
/// (oslo prlimit) uses for this: 1 GiB of address space, 30 s of CPU; a
/// crafted header cannot make it eat the host.
fn check_upload(path: &Path, declared: DiskFormat) -> Result<u64, ImageError> {
    let p = path.to_string_lossy().into_owned();
    let probe = |format: Option<&str>| -> Result<serde_json::Value, ImageError> {
        let mut args: Vec<String> = vec!["info".into(), "--output=json".into()];
        if let Some(f) = format {
            args.extend(["-f".into(), f.into()]);
        }
        args.push(p.clone());
        let mut tool = Tool::qemu_img(&args);
        limit_resources(tool.command());
        let out = output(tool, &args)?;
        serde_json::from_slice(&out).map_err(|e| tool_err(&args, format!("unreadable JSON: {e}")))
    };
    let mut info = probe(None)?;
    let mut detected = info["format"].as_str().unwrap_or("unknown").to_string();
    // qemu recognises a VHD by the footer copy at offset 0, which only
    // dynamic VHDs have; a fixed VHD (e.g. Azure's) probes as raw but has
    // its footer ("conectix") in the last 512 bytes.
    if declared == DiskFormat::Vhd && detected == "raw" && has_vhd_footer(path)? {
        info = probe(Some("vpc"))?;
        detected = "vpc".into();
    }
    if DiskFormat::from_qemu_name(&detected) != Some(declared) {
        return Err(ImageError::FormatMismatch { declared, detected });
    }
    if info.get("backing-filename").is_some() || info.get("full-backing-filename").is_some() {
        return Err(ImageError::Unsafe("the image has a backing file".into()));
    }
    if info["format-specific"]["data"].get("data-file").is_some() {
        return Err(ImageError::Unsafe(
            "the image has an external data file".into(),
        ));
    }
    info["virtual-size"]
        .as_u64()
        .ok_or_else(|| ImageError::Unsafe("no virtual size".into()))
}

fn has_vhd_footer(path: &Path) -> Result<bool, ImageError> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len < 512 {
        return Ok(false);
    }
    let mut cookie = [0u8; 8];
    f.read_exact_at(&mut cookie, len - 512)
        .map_err(io_err(path))?;
    Ok(&cookie == b"conectix")
}

fn limit_resources(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    const GIB: libc::rlim_t = 1 << 30;
    // SAFETY: runs in the forked child before exec; setrlimit is
    // async-signal-safe and touches no memory of ours but the two structs.
    unsafe {
        cmd.pre_exec(|| {
            let set = |res, lim: libc::rlim_t| {
                let r = libc::rlimit {
                    rlim_cur: lim,
                    rlim_max: lim,
                };
                if libc::setrlimit(res, &r) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            };
            set(libc::RLIMIT_AS, GIB)?;
            set(libc::RLIMIT_CPU, 30)
        });
    }
}

/// Streams `path` through sha256; returns (bytes, hex digest). `progress`
/// gets 0..=100 by bytes hashed.
///
/// Sparse-aware: ranges the file system reports as holes (`lseek`
/// `SEEK_DATA`/`SEEK_HOLE`, as the raw backend's copies do) are fed to the
/// hasher from a zero buffer instead of being read. The digest is the same,
/// but a 10 GiB raw image with 2 GiB of data does not fill the page cache
/// with 8 GiB of zero pages (measured: reading those holes cold cost 25 s of
/// system time, hashing them 5 s). Where holes are not reported, everything
/// is data: a full read, still correct.
fn sha256_file(path: &Path, progress: &mut dyn FnMut(u8)) -> Result<(u64, String), ImageError> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).map_err(io_err(path))?;
    let total = f.metadata().map_err(io_err(path))?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; buf.len()];
    let mut done = 0u64;
    let mut report = |done: u64| progress((done * 100 / total.max(1)) as u8);
    let extents = crate::sparse::data_extents(&f, total).map_err(io_err(path))?;
    // Each extent, then a final stretch of zeros to the end of the file.
    for (data, hole) in extents.into_iter().chain(std::iter::once((total, total))) {
        while done < data {
            let n = (data - done).min(zeros.len() as u64) as usize;
            hasher.update(&zeros[..n]);
            done += n as u64;
            report(done);
        }
        while done < hole {
            let n = (hole - done).min(buf.len() as u64) as usize;
            f.read_exact_at(&mut buf[..n], done).map_err(io_err(path))?;
            hasher.update(&buf[..n]);
            done += n as u64;
            report(done);
        }
    }
    Ok((done, hex::encode(hasher.finalize())))
}

fn sync_file(path: &Path) -> Result<(), ImageError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn remove_if_present(path: &Path) -> Result<(), ImageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn remove_tmps(dir: &Path, id: Uuid) -> Result<(), ImageError> {
    remove_tmps_named(dir, &id.to_string())
}

/// Removes `<name>.tmp*` in `dir`.
fn remove_tmps_named(dir: &Path, name: &str) -> Result<(), ImageError> {
    let prefix = format!("{name}.tmp");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(DiskFormat::parse("vhd"), Some(DiskFormat::Vhd));
        assert_eq!(DiskFormat::Vhd.qemu_name(), "vpc");
        assert_eq!("qcow2".parse::<DiskFormat>().unwrap(), DiskFormat::Qcow2);
        for bad in ["zvhd", "zvhd2", "vpc", "QCOW2", ""] {
            assert!(DiskFormat::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_sparse_aware_checksum_is_the_plain_one() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[(u64, u8)], u64); 4] = [
            (&[], 0),
            (&[], 5 << 20),
            (&[(0, 0xaa), (3 << 20, 0x55)], 8 << 20), // leading data, trailing hole
            (&[(1 << 20, 0x11), ((7 << 20) - 512, 0x22)], 7 << 20), // leading hole, data at the end
        ];
        for (i, (writes, len)) in cases.iter().enumerate() {
            let p = dir.path().join(i.to_string());
            let f = fs::File::create(&p).unwrap();
            f.set_len(*len).unwrap();
            for (off, byte) in writes.iter() {
                f.write_all_at(&[*byte; 512], *off).unwrap();
            }
            f.sync_all().unwrap();
            let mut seen = Vec::new();
            let (size, sum) = sha256_file(&p, &mut |x| seen.push(x)).unwrap();
            assert_eq!(size, *len);
            assert_eq!(
                sum,
                hex::encode(Sha256::digest(fs::read(&p).unwrap())),
                "{i}"
            );
            if *len > 0 {
                assert_eq!(seen.last(), Some(&100));
            }
        }
    }

    #[test]
    fn progress_lines_parse() {
        assert_eq!(parse_progress(b"    (42.17/100%)"), Some(42));
        assert_eq!(parse_progress(b"    (100.00/100%)"), Some(100));
        assert_eq!(parse_progress(b""), None);
        assert_eq!(parse_progress(b"qemu-img: warning"), None);
    }
}
