//! The executor: a subscriber of the log that does the real work on disk.
//!
//! It reads events after its durable checkpoint, and for each piece of work
//! still pending in the volume's current state (creating, extending,
//! deleting) it records the start, calls the storage backend, and records
//! the outcome through the volume's decider. Delivery is at-least-once: a
//! crash between the disk work and the outcome replays the request after a
//! restart, the backend operations are idempotent, and outcome commands on a
//! volume that has moved on decide nothing.

pub mod backend;
pub mod images;
pub mod sparse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::image::{ImageAggregate, ImageCommand, ImageEvent, ImageSource, ImageStatus};
use images::{DiskFormat, ImageStore};

use domain::{
    Aggregate, SnapshotAggregate, SnapshotCommand, SnapshotEvent, SnapshotWork, VolumeAggregate,
    VolumeCommand, VolumeEvent, VolumeState, WorkKind,
};
use eventstore::aggregate::decode;
use eventstore::{EventStore, RecordedEvent, StoreError};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

pub use backend::{open_backend, BackendError, StorageBackend};

const CHECKPOINT: &str = "executor";
/// Events read per catch-up step: bounds memory whatever the backlog.
const BATCH: usize = 256;
const GIB: u64 = 1 << 30;

/// Percent done of running image copies, by image (exports) or volume
/// (creates from an image). Shown by the API; never written to the log.
pub type Progress = Arc<Mutex<HashMap<Uuid, u8>>>;

#[derive(Clone)]
pub struct Executor {
    store: EventStore,
    backend: Arc<dyn StorageBackend>,
    images: Arc<ImageStore>,
    progress: Progress,
    /// Position read up to, in memory. The durable checkpoint moves only
    /// inside outcome transactions (the outcome and "handled" commit
    /// together); events that need no work are re-read after a restart,
    /// which costs a read and saves a write per event.
    cursor: Arc<std::sync::atomic::AtomicU64>,
}

const NO_CURSOR: u64 = u64::MAX;

impl Executor {
    pub fn new(
        store: EventStore,
        backend: Arc<dyn StorageBackend>,
        images: Arc<ImageStore>,
    ) -> Self {
        Executor {
            store,
            backend,
            images,
            progress: Progress::default(),
            cursor: Arc::new(std::sync::atomic::AtomicU64::new(NO_CURSOR)),
        }
    }

    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// A progress callback that records `key`'s percent.
    fn reporter(&self, key: Uuid) -> impl FnMut(u8) + Send + 'static {
        let map = self.progress.clone();
        move |pct| {
            if let Ok(mut m) = map.lock() {
                m.insert(key, pct);
            }
        }
    }

    fn forget_progress(&self, key: Uuid) {
        if let Ok(mut m) = self.progress.lock() {
            m.remove(&key);
        }
    }

    pub fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.backend
    }

    /// Runs until `shutdown` turns true: catch up from the checkpoint, then
    /// wait for the head to move.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut head = self.store.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.catch_up().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "executor step failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            }
            tokio::select! {
                r = head.changed() => if r.is_err() { return },
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Handles one batch after the checkpoint; true if there may be more.
    pub async fn catch_up(&self) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering;
        let mut from = self.cursor.load(Ordering::Acquire);
        if from == NO_CURSOR {
            from = self.store.checkpoint_async(CHECKPOINT).await?;
        }
        let batch = self.store.read_from_async(from, BATCH).await?;
        for ev in &batch {
            if let Some(work) = work_of(ev) {
                match work {
                    Work::Volume(kind) => self.perform(ev, kind).await?,
                    Work::Snapshot(kind) => self.perform_snapshot(ev, kind).await?,
                    Work::Export => self.perform_export(ev).await?,
                    Work::DeleteImage => self.delete_image(ev).await?,
                }
            }
            self.cursor.store(ev.position, Ordering::Release);
        }
        Ok(batch.len() == BATCH)
    }

    async fn state(&self, id: &str) -> Result<VolumeState, StoreError> {
        let events = self
            .store
            .read_stream_async(&VolumeAggregate::stream_id(id))
            .await?;
        let decoded = events
            .iter()
            .map(decode::<VolumeAggregate>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VolumeAggregate::fold(&decoded))
    }

    async fn command(
        &self,
        id: &str,
        cmd: VolumeCommand,
        trigger: &RecordedEvent,
    ) -> Result<(), StoreError> {
        let meta = self.meta(trigger);
        let key = id.to_string();
        let outcome = self
            .store
            .write(move |tx| tx.execute::<VolumeAggregate>(&key, cmd, &meta))
            .await?;
        if let Err(e) = outcome {
            tracing::warn!(volume = id, error = %e, "outcome refused");
        }
        Ok(())
    }

    /// Does the work `kind` for the volume of `ev` if it is still pending.
    async fn perform(&self, ev: &RecordedEvent, kind: WorkKind) -> Result<(), StoreError> {
        let id_str = ev.stream_id.trim_start_matches("volume-").to_string();
        let Ok(id) = Uuid::parse_str(&id_str) else {
            return Ok(());
        };
        let state = self.state(&id_str).await?;
        let Some(v) = state.volume.as_ref().filter(|_| !state.deleted) else {
            return Ok(());
        };
        let pending = match kind {
            WorkKind::Create => v.status == domain::VolumeStatus::Creating,
            WorkKind::Extend => v.status == domain::VolumeStatus::Extending,
            WorkKind::Delete => v.status == domain::VolumeStatus::Deleting,
            WorkKind::Rollback => v.status == domain::VolumeStatus::Rollingback,
        };
        if !pending {
            return Ok(()); // already done: a replay after a restart
        }
        self.command(&id_str, VolumeCommand::StartWork { kind }, ev)
            .await?;
        let backend = self.backend.clone();
        let size = v.pending_size.unwrap_or(v.size).max(0) as u64 * GIB;
        let (source, image, source_volume) = match decode::<VolumeAggregate>(ev) {
            Ok(VolumeEvent::VolumeCreateRequested {
                snapshot_id,
                linked_clone,
                image_id,
                source_volume_id,
                ..
            }) => (
                snapshot_id.map(|s| (s, linked_clone)),
                image_id,
                source_volume_id,
            ),
            _ => (None, None, None),
        };
        let images = self.images.clone();
        let mut report = self.reporter(id);
        let rollback_to = v.pending_rollback.as_ref().map(|(s, _)| *s);
        let result = tokio::task::spawn_blocking(move || match kind {
            WorkKind::Create => match (source_volume, source, image) {
                (Some(src), _, _) => backend.clone_from_volume(src, id, size),
                (None, Some((snap, linked)), _) => {
                    backend.clone_from_snapshot(snap, id, size, linked)
                }
                (None, None, Some(img)) => images
                    .write_into_volume(
                        img,
                        &backend.volume_path(id),
                        backend.format(),
                        size,
                        &mut report,
                    )
                    .map_err(|e| BackendError::Invalid(e.to_string())),
                (None, None, None) => backend.create(id, size),
            },
            WorkKind::Extend => backend.extend(id, size),
            WorkKind::Delete => backend.delete(id),
            WorkKind::Rollback => match rollback_to {
                Some(snap) => backend.rollback(id, snap),
                None => Ok(()),
            },
        })
        .await
        .map_err(|e| StoreError::Panicked(e.to_string()))?;
        self.forget_progress(id);
        let cmd = match result {
            Ok(()) => VolumeCommand::CompleteWork { kind },
            Err(e) => {
                tracing::warn!(volume = %id, ?kind, error = %e, "disk work failed");
                VolumeCommand::FailWork {
                    kind,
                    reason: e.to_string(),
                }
            }
        };
        // A rollback ends on both sides in one transaction: the volume's
        // outcome and the snapshot back to available.
        let snap_end = rollback_to.filter(|_| kind == WorkKind::Rollback);
        let meta = self.meta(ev);
        let handled = ev.position;
        let outcome = self
            .store
            .write(move |tx| {
                let r = tx.execute::<VolumeAggregate>(&id_str, cmd, &meta)?;
                tx.set_checkpoint(CHECKPOINT, handled)?;
                if let Some(snap) = snap_end {
                    // EndRollback never refuses a live snapshot; a deleted
                    // one has nothing left to end.
                    let _ = tx.execute::<SnapshotAggregate>(
                        &snap.to_string(),
                        SnapshotCommand::EndRollback,
                        &meta,
                    )?;
                }
                Ok::<_, StoreError>(r)
            })
            .await;
        if let Err(e) = outcome? {
            tracing::warn!(volume = %id, error = %e, "outcome refused");
        }
        Ok(())
    }

    /// Does the snapshot work `kind` for the snapshot of `ev` if pending.
    async fn perform_snapshot(
        &self,
        ev: &RecordedEvent,
        kind: SnapshotWork,
    ) -> Result<(), StoreError> {
        let id_str = ev.stream_id.trim_start_matches("snapshot-").to_string();
        let Ok(snap) = Uuid::parse_str(&id_str) else {
            return Ok(());
        };
        let events = self.store.read_stream_async(&ev.stream_id).await?;
        let decoded = events
            .iter()
            .map(decode::<SnapshotAggregate>)
            .collect::<Result<Vec<_>, _>>()?;
        let state = SnapshotAggregate::fold(&decoded);
        let Some(s) = state.snapshot.as_ref().filter(|_| !state.deleted) else {
            return Ok(());
        };
        let pending = match kind {
            SnapshotWork::Create => s.status == domain::SnapshotStatus::Creating,
            SnapshotWork::Delete => s.status == domain::SnapshotStatus::Deleting,
        };
        if !pending {
            return Ok(());
        }
        let meta = self.meta(ev);
        let (k, m) = (id_str.clone(), meta.clone());
        self.store
            .write(move |tx| {
                tx.execute::<SnapshotAggregate>(&k, SnapshotCommand::StartWork { kind }, &m)
            })
            .await?
            .ok();
        let backend = self.backend.clone();
        let vol = s.volume_id;
        let result = tokio::task::spawn_blocking(move || match kind {
            SnapshotWork::Create => backend.snapshot_create(vol, snap),
            SnapshotWork::Delete => backend.snapshot_delete(snap),
        })
        .await
        .map_err(|e| StoreError::Panicked(e.to_string()))?;
        let cmd = match result {
            Ok(()) => SnapshotCommand::CompleteWork { kind },
            Err(e) => {
                tracing::warn!(snapshot = %snap, ?kind, error = %e, "snapshot work failed");
                SnapshotCommand::FailWork {
                    kind,
                    reason: e.to_string(),
                }
            }
        };
        let handled = ev.position;
        if let Err(e) = self
            .store
            .write(move |tx| {
                let r = tx.execute::<SnapshotAggregate>(&id_str, cmd, &meta)?;
                tx.set_checkpoint(CHECKPOINT, handled)?;
                Ok::<_, StoreError>(r)
            })
            .await?
        {
            tracing::warn!(snapshot = %snap, error = %e, "outcome refused");
        }
        Ok(())
    }

    /// Exports a volume's current bytes or a snapshot into the image store,
    /// then ends the image and the volume's `uploading` in one transaction.
    async fn perform_export(&self, ev: &RecordedEvent) -> Result<(), StoreError> {
        let id_str = ev.stream_id.trim_start_matches("image-").to_string();
        let Ok(image_id) = Uuid::parse_str(&id_str) else {
            return Ok(());
        };
        let events = self.store.read_stream_async(&ev.stream_id).await?;
        let decoded = events
            .iter()
            .map(decode::<ImageAggregate>)
            .collect::<Result<Vec<_>, _>>()?;
        let state = ImageAggregate::fold(&decoded);
        let Some(img) = state.image.clone().filter(|_| !state.deleted) else {
            return Ok(());
        };
        let volume = match &img.source {
            ImageSource::Volume { volume_id } => Some(*volume_id),
            _ => None,
        };
        let meta = self.meta(ev);
        if matches!(img.status, ImageStatus::Queued | ImageStatus::Saving) {
            let (k, m) = (id_str.clone(), meta.clone());
            let _ = self
                .store
                .write(move |tx| tx.execute::<ImageAggregate>(&k, ImageCommand::StartWork, &m))
                .await?;
            let (path, fmt) = match &img.source {
                ImageSource::Volume { volume_id } => {
                    (self.backend.active_path(*volume_id), self.backend.format())
                }
                ImageSource::Snapshot { snapshot_id } => (
                    self.backend.snapshot_file(*snapshot_id),
                    self.backend.format(),
                ),
                ImageSource::Upload => return Ok(()),
            };
            let images = self.images.clone();
            let mut report = self.reporter(image_id);
            let format = DiskFormat::parse(&img.disk_format);
            let result = tokio::task::spawn_blocking(move || match format {
                Some(f) => images
                    .export(&path, fmt, image_id, f, &mut report)
                    .map_err(|e| e.to_string()),
                None => Err(format!("unsupported disk format {}", img.disk_format)),
            })
            .await
            .map_err(|e| StoreError::Panicked(e.to_string()))?;
            self.forget_progress(image_id);
            let cmd = match result {
                Ok(info) => ImageCommand::Complete {
                    size: info.size,
                    virtual_size: info.virtual_size,
                    checksum_sha256: info.checksum_sha256,
                },
                Err(reason) => {
                    tracing::warn!(image = %image_id, %reason, "export failed");
                    ImageCommand::Fail { reason }
                }
            };
            let (k, m) = (id_str.clone(), meta.clone());
            let handled = ev.position;
            self.store
                .write(move |tx| {
                    let r = tx.execute::<ImageAggregate>(&k, cmd, &m)?;
                    tx.set_checkpoint(CHECKPOINT, handled)?;
                    if let Some(vol) = volume {
                        let _ = tx.execute::<VolumeAggregate>(
                            &vol.to_string(),
                            VolumeCommand::EndUpload { image_id },
                            &m,
                        )?;
                    }
                    Ok::<_, StoreError>(r)
                })
                .await?
                .ok();
        } else if let Some(vol) = volume {
            // The image ended before a crash; make sure the volume did too.
            let m = meta.clone();
            self.store
                .write(move |tx| {
                    tx.execute::<VolumeAggregate>(
                        &vol.to_string(),
                        VolumeCommand::EndUpload { image_id },
                        &m,
                    )
                })
                .await?
                .ok();
        }
        Ok(())
    }

    async fn delete_image(&self, ev: &RecordedEvent) -> Result<(), StoreError> {
        let Ok(image_id) = Uuid::parse_str(ev.stream_id.trim_start_matches("image-")) else {
            return Ok(());
        };
        let images = self.images.clone();
        let r = tokio::task::spawn_blocking(move || images.delete(image_id))
            .await
            .map_err(|e| StoreError::Panicked(e.to_string()))?;
        if let Err(e) = r {
            tracing::warn!(image = %image_id, error = %e, "image file not removed");
        }
        Ok(())
    }

    fn meta(&self, trigger: &RecordedEvent) -> serde_json::Value {
        json!({
            "actor": "executor",
            "project_id": trigger.metadata["project_id"],
            "correlation_id": trigger.metadata["correlation_id"],
            "caused_by": trigger.event_id,
        })
    }
}

/// Disk work an event asks for.
#[derive(Debug, Clone, Copy)]
enum Work {
    Volume(WorkKind),
    Snapshot(SnapshotWork),
    Export,
    DeleteImage,
}

/// The disk work an event asks for, if any.
fn work_of(ev: &RecordedEvent) -> Option<Work> {
    if ev.stream_id.starts_with("volume-") {
        return match decode::<VolumeAggregate>(ev).ok()? {
            VolumeEvent::VolumeCreateRequested { .. } => Some(Work::Volume(WorkKind::Create)),
            VolumeEvent::VolumeExtendRequested { .. } => Some(Work::Volume(WorkKind::Extend)),
            VolumeEvent::VolumeDeleteRequested { .. } => Some(Work::Volume(WorkKind::Delete)),
            VolumeEvent::VolumeRollbackRequested { .. } => Some(Work::Volume(WorkKind::Rollback)),
            _ => None,
        };
    }
    if ev.stream_id.starts_with("image-") {
        return match decode::<ImageAggregate>(ev).ok()? {
            ImageEvent::ImageCreateRequested {
                source: ImageSource::Volume { .. } | ImageSource::Snapshot { .. },
                ..
            } => Some(Work::Export),
            ImageEvent::ImageDeleted {} => Some(Work::DeleteImage),
            _ => None,
        };
    }
    if ev.stream_id.starts_with("snapshot-") {
        return match decode::<SnapshotAggregate>(ev).ok()? {
            SnapshotEvent::SnapshotCreateRequested { .. } => {
                Some(Work::Snapshot(SnapshotWork::Create))
            }
            SnapshotEvent::SnapshotDeleteRequested {} => Some(Work::Snapshot(SnapshotWork::Delete)),
            _ => None,
        };
    }
    None
}
