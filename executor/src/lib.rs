//! The executor: a subscriber of the log that does the real work on disk.
//!
//! It reads events after its durable checkpoint, and for each piece of work
//! still pending in the volume's current state (creating, extending,
//! deleting) it records the start, calls the storage backend, and records
//! the outcome through the volume's decider. Delivery is at-least-once: a
//! crash between the disk work and the outcome replays the request after a
//! restart, the backend operations are idempotent, and outcome commands on a
//! volume that has moved on decide nothing.
//!
//! Work items run concurrently (issue 11): up to `ExecutorConfig::workers`
//! at once, one aggregate's items (and a clone's or export's source's) in
//! log order, so one long `qemu-img convert` no longer holds every create
//! and delete behind it. The durable checkpoint is a low-water mark (see
//! `schedule`). A step that fails (a store error, a panic; a backend
//! failure is an outcome, not a failure of the step) is retried with
//! backoff a bounded number of times, then recorded as failed through the
//! resource's Fail command, and the executor moves on.

pub mod backend;
pub mod images;
pub mod qcow2;
pub mod rbd;
pub mod remote;
mod schedule;
pub mod sparse;
pub mod tool;
pub mod worklog;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::image::{ImageAggregate, ImageEvent, ImageSource, ImageStatus};
use images::{DiskFormat, ImageStore};

use domain::{
    Aggregate, SnapshotAggregate, SnapshotEvent, SnapshotWork, VolumeAggregate, VolumeEvent,
    VolumeState, WorkKind,
};
use eventstore::aggregate::decode;
use eventstore::{EventStore, RecordedEvent, StoreError};
use schedule::{Key, LockTable, SharedTracker};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;
use worklog::{ImageOutcome, LowWater, Outcome, OutcomeCommand, SnapshotOutcome, VolumeOutcome};

pub use backend::{open_backend, BackendError, StorageBackend};
pub use worklog::{LocalLog, LogError, WorkLog};

/// The checkpoint of the executor embedded in the server (existing data
/// dirs resume where they were).
pub const DEFAULT_CHECKPOINT: &str = "executor";
/// Events read per catch-up step: bounds memory whatever the backlog.
const BATCH: usize = 256;
/// Work items held in memory (running, queued behind their aggregate, or
/// waiting for a worker); reading stops while the backlog is this long.
const MAX_BACKLOG: usize = 4096;
/// How long the executor stays idle before it records that everything read
/// is handled (`Dispatcher::drive`).
const IDLE_FLUSH: Duration = Duration::from_secs(1);
const GIB: u64 = 1 << 30;
/// Longest wait before looking again at an item another executor holds
/// the lease of: its outcome (which releases the lease) usually comes
/// well before the lease would expire.
const BUSY_RECHECK: Duration = Duration::from_secs(1);

/// Percent done of running image copies, by image (exports) or volume
/// (creates from an image). Shown by the API; never written to the log.
pub type Progress = Arc<Mutex<HashMap<Uuid, u8>>>;

/// How the executor runs its work items.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Work items running at once (for different aggregates).
    pub workers: usize,
    /// Attempts of an item whose step fails (a store error or a panic, not
    /// a backend failure, which is an outcome) before it is recorded as
    /// failed and the executor moves on.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// At shutdown, how long running steps may take to finish before they
    /// are abandoned (no outcome recorded: they are redone after the
    /// restart) and their helper processes killed. Together with the HTTP
    /// drain this keeps a graceful stop under 10 s (issue 15). Default 8 s;
    /// `BLOCKLEDGER_EXECUTOR_DRAIN_SECS` overrides it (the tests set it past
    /// the server's 9 s stop bound to show that the bound still holds).
    pub drain: Duration,
    /// The backends whose work this executor does (None: all, the
    /// embedded executor of one host). Work on a resource recorded on
    /// another backend is another executor's: skipped, not failed.
    pub serves: Option<BTreeSet<String>>,
    /// The name of its durable checkpoint in the log: one per executor
    /// (each reads the whole log and skips what it does not serve).
    pub checkpoint: String,
    /// Work under leases in the log (several executors serve one backend);
    /// None: the only executor of its backends, no lease written.
    pub lease: Option<LeaseConfig>,
    /// Removes the files of deleted images (the image store is the
    /// server's: remote executors leave them to it).
    pub deletes_images: bool,
}

/// How an executor holds leases on its work items.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The executor's name in the log (lease holder).
    pub holder: String,
    /// How long a claim lasts unless renewed (renewed every third of it).
    pub ttl: Duration,
}

impl ExecutorConfig {
    /// `max(4, 2 × cores)`. Most of a work item's time is spent waiting,
    /// not computing: on a `qemu-img` child process, on an fsync, on the
    /// store's group commit. So more items than cores can make progress at
    /// once; the few CPU-heavy ones (hashing an export, a full convert) are
    /// bounded by the same number, which stays small enough not to starve
    /// the API's threads.
    pub fn default_workers() -> usize {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        (2 * cores).max(4)
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: Self::default_workers(),
            max_attempts: 5,
            backoff: Duration::from_millis(200),
            drain: tool::env_secs("BLOCKLEDGER_EXECUTOR_DRAIN_SECS")
                .unwrap_or(Duration::from_secs(8)),
            serves: None,
            checkpoint: DEFAULT_CHECKPOINT.to_string(),
            lease: None,
            deletes_images: true,
        }
    }
}

#[derive(Clone)]
pub struct Executor {
    /// The log: in this process (`LocalLog`) or the server's over HTTP.
    log: Arc<dyn WorkLog>,
    backend: Arc<dyn StorageBackend>,
    images: Arc<ImageStore>,
    progress: Progress,
    config: ExecutorConfig,
    /// What has been read and which items are outstanding: the low-water
    /// mark (see `schedule`). The durable checkpoint moves only inside
    /// outcome transactions; events that need no work are re-read after a
    /// restart, which costs a read and saves a write per event.
    tracker: SharedTracker,
}

impl Executor {
    pub fn new(
        store: EventStore,
        backend: Arc<dyn StorageBackend>,
        images: Arc<ImageStore>,
    ) -> Self {
        Self::with_config(store, backend, images, ExecutorConfig::default())
    }

    pub fn with_config(
        store: EventStore,
        backend: Arc<dyn StorageBackend>,
        images: Arc<ImageStore>,
        config: ExecutorConfig,
    ) -> Self {
        Self::with_log(Arc::new(LocalLog::new(store)), backend, images, config)
    }

    /// An executor over any log access: `LocalLog` in the server,
    /// `remote::RemoteLog` in an executor process of its own.
    pub fn with_log(
        log: Arc<dyn WorkLog>,
        backend: Arc<dyn StorageBackend>,
        images: Arc<ImageStore>,
        config: ExecutorConfig,
    ) -> Self {
        let config = ExecutorConfig {
            workers: config.workers.max(1),
            max_attempts: config.max_attempts.max(1),
            ..config
        };
        Executor {
            log,
            backend,
            images,
            progress: Progress::default(),
            config,
            tracker: SharedTracker::default(),
        }
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.config
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

    /// Runs until `shutdown` turns true: sweep the temporary files of
    /// crashed work, then read from the checkpoint, run work items as their
    /// aggregates allow, wait for the head to move. At shutdown no new item
    /// starts; running items get `config.drain` to finish, then are
    /// abandoned and their helpers killed. Queued and abandoned ones are
    /// redone after the restart (the checkpoint is below them).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let me = self.clone();
        // Under leases another executor may share this storage and be
        // building files now: temporaries are swept per item instead, by
        // whoever takes the item over (`claim`).
        let sweep = self.config.lease.is_none();
        match tokio::task::spawn_blocking(move || if sweep { me.sweep_temps() } else { 0 }).await {
            Ok(0) | Err(_) => {}
            Ok(n) => tracing::info!(removed = n, "swept temporary files of unfinished work"),
        }
        let _ = Dispatcher::new(self).drive(Some(shutdown)).await;
    }

    /// Removes the temporary files (`<uuid>.tmp…`) under the backend's
    /// volume and snapshot dirs; returns how many. Only for startup, before
    /// any work runs: every temporary belongs to work that is not in flight
    /// (the executor redoes unfinished work from its checkpoint, under a
    /// fresh temporary name, and the helpers of a killed server died with
    /// it, see `tool`). The image store sweeps its own
    /// (`ImageStore::cleanup_temps`).
    pub fn sweep_temps(&self) -> usize {
        self.sweep_temps_of(None)
    }

    /// `sweep_temps`, only those of `id` if given.
    fn sweep_temps_of(&self, id: Option<Uuid>) -> usize {
        let nil = Uuid::nil();
        let dirs: BTreeSet<std::path::PathBuf> = [
            self.backend.volume_path(nil),
            self.backend.snapshot_file(nil),
        ]
        .iter()
        .filter_map(|p| p.parent().map(|d| d.to_path_buf()))
        .collect();
        let mut removed = 0;
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let is_tmp = name.len() > 36
                    && name.is_char_boundary(36)
                    && Uuid::parse_str(&name[..36]).is_ok_and(|u| id.is_none_or(|i| i == u))
                    && name[36..].starts_with(".tmp");
                if !is_tmp {
                    continue;
                }
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %entry.path().display(), error = %e, "temporary file not removed")
                    }
                }
            }
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        removed
    }

    /// Handles everything up to the current head (concurrently, as `run`
    /// does) and returns once all of it is handled. Always `Ok(false)`
    /// ("nothing more"), for callers that loop until caught up.
    pub async fn catch_up(&self) -> Result<bool, LogError> {
        Dispatcher::new(self.clone()).drive(None).await?;
        Ok(false)
    }

    /// Loads the durable checkpoint into the tracker once.
    async fn read_position(&self) -> Result<u64, LogError> {
        if let Some(p) = self.tracker.lock().read_to {
            return Ok(p);
        }
        let p = self.log.checkpoint(&self.config.checkpoint).await?;
        let mut t = self.tracker.lock();
        Ok(*t.read_to.get_or_insert(p))
    }

    /// One attempt at one work item.
    async fn step(&self, ev: &RecordedEvent, work: Work) -> Result<Step, LogError> {
        match work {
            Work::Volume(kind) => self.perform(ev, kind).await,
            Work::Snapshot(kind) => self.perform_snapshot(ev, kind).await,
            Work::Export => self.perform_export(ev).await,
            Work::DeleteImage if self.config.deletes_images => {
                self.delete_image(ev).await.map(|()| Step::Done)
            }
            // The image store is the server's: its own executor removes
            // the file.
            Work::DeleteImage => Ok(Step::Done),
        }
    }

    /// True if this executor does the work of resources on `backend`.
    fn serves(&self, backend: &str) -> bool {
        self.config
            .serves
            .as_ref()
            .is_none_or(|s| s.contains(backend))
    }

    /// Takes the lease on `ev`'s work item, when this executor works under
    /// leases (`ExecutorConfig::lease`); renewed in the background while
    /// the returned `Held` lives.
    async fn claim(&self, ev: &RecordedEvent) -> Result<Claimed, LogError> {
        let Some(lease) = &self.config.lease else {
            return Ok(Claimed::Unleased);
        };
        let item = ev.position;
        match self.log.claim(item, &lease.holder, lease.ttl).await? {
            worklog::Claim::Granted { previous, .. } => {
                if let Some(previous) = previous {
                    // Taken over from an executor that died (or this one,
                    // before a restart) mid-item: its temporary files are
                    // garbage now, and no other item on this target can be
                    // in flight (every executor keeps per-aggregate order).
                    let (me, id) = (self.clone(), resource_id(ev));
                    let removed = tokio::task::spawn_blocking(move || me.sweep_temps_of(Some(id)))
                        .await
                        .unwrap_or(0);
                    tracing::info!(position = item, %previous, removed, "work item taken over");
                }
            }
            worklog::Claim::Busy { holder, expires_ms } => {
                // Look again when the other holder's lease runs out, or
                // sooner: its outcome (which releases it) may come first.
                let left = Duration::from_millis(expires_ms.saturating_sub(worklog::now_ms()));
                tracing::debug!(position = item, %holder, ?left, "work item leased by another executor");
                return Ok(Claimed::Busy(
                    left.clamp(Duration::from_millis(100), BUSY_RECHECK),
                ));
            }
        }
        let lease_ref = worklog::LeaseRef {
            item,
            holder: lease.holder.clone(),
        };
        let (log, r, ttl) = (self.log.clone(), lease_ref.clone(), lease.ttl);
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match log.renew(r.item, &r.holder, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            position = r.item,
                            "lease lost to another executor; its outcome will be refused"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(position = r.item, error = %e, "lease not renewed; retrying")
                    }
                }
            }
        });
        Ok(Claimed::Held(Held {
            lease: lease_ref,
            renewer,
        }))
    }

    /// Gives up on a poisoned item: records the failure through the
    /// resource's own Fail command (it ends in its documented error status
    /// with `reason`) and moves the checkpoint, in one transaction.
    async fn give_up(&self, ev: &RecordedEvent, work: Work, reason: String) -> Step {
        let held = match self.claim(ev).await {
            Ok(Claimed::Busy(d)) => return Step::Busy(d),
            Ok(Claimed::Held(h)) => Some(h),
            Ok(Claimed::Unleased) => None,
            Err(e) => {
                tracing::warn!(error = %e, "lease for a poisoned work item not claimed; retrying");
                return Step::Busy(BUSY_RECHECK);
            }
        };
        let id = resource_id(ev);
        let mut commands = Vec::new();
        match work {
            Work::Volume(kind) => {
                commands.push(OutcomeCommand::Volume {
                    id,
                    command: VolumeOutcome::FailWork {
                        kind,
                        reason: reason.clone(),
                    },
                });
                if let Ok(VolumeEvent::VolumeRollbackRequested { snapshot_id, .. }) =
                    decode::<VolumeAggregate>(ev)
                {
                    commands.push(OutcomeCommand::Snapshot {
                        id: snapshot_id,
                        command: SnapshotOutcome::EndRollback,
                    });
                }
            }
            Work::Snapshot(kind) => commands.push(OutcomeCommand::Snapshot {
                id,
                command: SnapshotOutcome::FailWork {
                    kind,
                    reason: reason.clone(),
                },
            }),
            Work::Export => {
                commands.push(OutcomeCommand::Image {
                    id,
                    command: ImageOutcome::Fail {
                        reason: reason.clone(),
                    },
                });
                if let Ok(ImageEvent::ImageCreateRequested {
                    source: ImageSource::Volume { volume_id },
                    ..
                }) = decode::<ImageAggregate>(ev)
                {
                    commands.push(OutcomeCommand::Volume {
                        id: volume_id,
                        command: VolumeOutcome::EndUpload { image_id: id },
                    });
                }
            }
            // Nothing to fail: the catalogue entry is gone already;
            // at worst the file stays behind.
            Work::DeleteImage => {}
        }
        if let Err(e) = self.record(commands, ev, true, held.as_ref()).await {
            // Even the failure cannot be recorded (e.g. the aggregate's
            // stream does not decode). Move on anyway: the item leaves the
            // outstanding set and the next outcome's checkpoint passes it.
            tracing::error!(error = %e, "poisoned work item could not be recorded as failed; skipped");
        }
        Step::Done
    }

    /// Records `commands` caused by `trigger` in one transaction; with
    /// `handled`, the checkpoint moves past `trigger` (the low-water mark)
    /// in the same transaction.
    async fn record(
        &self,
        commands: Vec<OutcomeCommand>,
        trigger: &RecordedEvent,
        handled: bool,
        held: Option<&Held>,
    ) -> Result<worklog::Applied, LogError> {
        let outcome = Outcome {
            commands,
            metadata: self.meta(trigger),
            checkpoint: self.config.checkpoint.clone(),
            handled: handled.then_some(trigger.position),
            lease: held.map(|h| h.lease.clone()),
        };
        let applied = self
            .log
            .append(outcome, &LowWater(self.tracker.clone()))
            .await?;
        if applied == worklog::Applied::LeaseLost {
            // Another executor took the item over (this one stalled past
            // its lease): its outcome is the one recorded.
            tracing::warn!(
                position = trigger.position,
                "outcome refused: the lease is another executor's; nothing recorded"
            );
        }
        Ok(applied)
    }

    /// The volume's state, and the stream version of its latest request
    /// for disk work (see `latest_request`).
    async fn state(&self, id: &str) -> Result<(VolumeState, u64), LogError> {
        let events = self
            .log
            .read_stream(&VolumeAggregate::stream_id(id))
            .await?;
        let decoded = events
            .iter()
            .map(decode::<VolumeAggregate>)
            .collect::<Result<Vec<_>, _>>()?;
        let latest = latest_request(&events, &decoded, |e| {
            matches!(
                e,
                VolumeEvent::VolumeCreateRequested { .. }
                    | VolumeEvent::VolumeExtendRequested { .. }
                    | VolumeEvent::VolumeDeleteRequested { .. }
                    | VolumeEvent::VolumeRollbackRequested { .. }
                    | VolumeEvent::VolumeReimageRequested { .. }
            )
        });
        Ok((VolumeAggregate::fold(&decoded), latest))
    }

    /// Does the work `kind` for the volume of `ev` if it is still pending.
    /// The volume's state if `ev`'s work `kind` is still pending and this
    /// executor's to do.
    async fn volume_pending(
        &self,
        ev: &RecordedEvent,
        id_str: &str,
        kind: WorkKind,
    ) -> Result<Option<VolumeState>, LogError> {
        let (state, latest) = self.state(id_str).await?;
        let Some(v) = state.volume.as_ref().filter(|_| !state.deleted) else {
            return Ok(None);
        };
        if !self.serves(&v.backend) {
            // Another executor's backend: not this one's to do (nor to fail).
            return Ok(None);
        }
        if ev.stream_version != latest {
            // A later request on this volume supersedes this one: this
            // item's own work is done (a redo after a restart; the status
            // only says that *some* work of this kind is pending, e.g. the
            // next extend, whose own item does it in its place in the log,
            // after what comes between, such as a clone of this volume).
            return Ok(None);
        }
        let pending = match kind {
            WorkKind::Create => v.status == domain::VolumeStatus::Creating,
            WorkKind::Extend => v.status == domain::VolumeStatus::Extending,
            WorkKind::Delete => v.status == domain::VolumeStatus::Deleting,
            WorkKind::Rollback => v.status == domain::VolumeStatus::Rollingback,
            WorkKind::Reimage => v.status == domain::VolumeStatus::Downloading,
        };
        if !pending {
            return Ok(None); // already done: a replay after a restart
        }
        Ok(Some(state))
    }

    /// Does the work `kind` for the volume of `ev` if it is still pending.
    async fn perform(&self, ev: &RecordedEvent, kind: WorkKind) -> Result<Step, LogError> {
        let id_str = ev.stream_id.trim_start_matches("volume-").to_string();
        let Ok(id) = Uuid::parse_str(&id_str) else {
            return Ok(Step::Done);
        };
        let Some(mut state) = self.volume_pending(ev, &id_str, kind).await? else {
            return Ok(Step::Done);
        };
        let held = match self.claim(ev).await? {
            Claimed::Unleased => None,
            Claimed::Busy(d) => return Ok(Step::Busy(d)),
            // Read again under the lease: the previous holder may have
            // recorded the outcome just before it let go.
            Claimed::Held(h) => match self.volume_pending(ev, &id_str, kind).await? {
                Some(again) => {
                    state = again;
                    Some(h)
                }
                None => return Ok(Step::Done),
            },
        };
        let Some(v) = state.volume.as_ref() else {
            return Ok(Step::Done);
        };
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
            // Cinder 3.68: the image whose bytes replace the volume's.
            Ok(VolumeEvent::VolumeReimageRequested { image_id, .. }) => {
                (None, Some(image_id), None)
            }
            _ => (None, None, None),
        };
        // "Work started" is recorded before the work only where the work
        // takes long enough for a client to see it (a job RUNNING): copies
        // of data. A header write or a rename takes milliseconds; its start
        // is recorded in the outcome's transaction, which saves a durable
        // write (an fsync on the single writer) per step (issue 11).
        let long = image.is_some() || matches!(source, Some((_, false)));
        if long {
            let start = OutcomeCommand::Volume {
                id,
                command: VolumeOutcome::StartWork { kind },
            };
            let applied = self.record(vec![start], ev, false, held.as_ref()).await?;
            if applied == worklog::Applied::LeaseLost {
                return Ok(Step::Done);
            }
            if let Some(e) = applied.refusal(0) {
                tracing::warn!(volume = %id, error = %e, "outcome refused");
            }
        }
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
                    .write_volume(&*backend, id, img, size, false, &mut report)
                    .map_err(|e| BackendError::Invalid(e.to_string())),
                (None, None, None) => backend.create(id, size),
            },
            WorkKind::Extend => backend.extend(id, size),
            WorkKind::Delete => backend.delete(id),
            WorkKind::Rollback => match rollback_to {
                Some(snap) => backend.rollback(id, snap),
                None => Ok(()),
            },
            // The volume's own file only: the snapshots its chain names
            // keep their files (the new file stands alone).
            WorkKind::Reimage => match image {
                Some(img) => images
                    .write_volume(&*backend, id, img, size, true, &mut report)
                    .map_err(|e| BackendError::Invalid(e.to_string())),
                None => Ok(()),
            },
        })
        .await
        .map_err(|e| StoreError::Panicked(e.to_string()))?;
        self.forget_progress(id);
        let cmd = match result {
            Ok(()) => VolumeOutcome::CompleteWork { kind },
            Err(e) => {
                tracing::warn!(volume = %id, ?kind, error = %e, "disk work failed");
                VolumeOutcome::FailWork {
                    kind,
                    reason: e.to_string(),
                }
            }
        };
        let mut commands = Vec::with_capacity(3);
        if !long {
            // Decides nothing (never refuses a live volume).
            commands.push(OutcomeCommand::Volume {
                id,
                command: VolumeOutcome::StartWork { kind },
            });
        }
        let main = commands.len();
        commands.push(OutcomeCommand::Volume { id, command: cmd });
        // A rollback ends on both sides in one transaction: the volume's
        // outcome and the snapshot back to available. EndRollback never
        // refuses a live snapshot; a deleted one has nothing left to end.
        if let Some(snap) = rollback_to.filter(|_| kind == WorkKind::Rollback) {
            commands.push(OutcomeCommand::Snapshot {
                id: snap,
                command: SnapshotOutcome::EndRollback,
            });
        }
        let applied = self.record(commands, ev, true, held.as_ref()).await?;
        if let Some(e) = applied.refusal(main) {
            tracing::warn!(volume = %id, error = %e, "outcome refused");
        }
        Ok(Step::Done)
    }

    /// The snapshot if `ev`'s work `kind` is still pending and this
    /// executor's to do.
    async fn snapshot_pending(
        &self,
        ev: &RecordedEvent,
        kind: SnapshotWork,
    ) -> Result<Option<domain::snapshot::Snapshot>, LogError> {
        let events = self.log.read_stream(&ev.stream_id).await?;
        let decoded = events
            .iter()
            .map(decode::<SnapshotAggregate>)
            .collect::<Result<Vec<_>, _>>()?;
        let latest = latest_request(&events, &decoded, |e| {
            matches!(
                e,
                SnapshotEvent::SnapshotCreateRequested { .. }
                    | SnapshotEvent::SnapshotDeleteRequested {}
            )
        });
        let state = SnapshotAggregate::fold(&decoded);
        let Some(s) = state.snapshot.filter(|_| !state.deleted) else {
            return Ok(None);
        };
        if !self.serves(&s.backend) {
            return Ok(None);
        }
        if ev.stream_version != latest {
            // Superseded by a later request (e.g. a delete asked again
            // after error_deleting): that one's item does the work.
            return Ok(None);
        }
        let pending = match kind {
            SnapshotWork::Create => s.status == domain::SnapshotStatus::Creating,
            SnapshotWork::Delete => s.status == domain::SnapshotStatus::Deleting,
        };
        if !pending {
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Does the snapshot work `kind` for the snapshot of `ev` if pending.
    async fn perform_snapshot(
        &self,
        ev: &RecordedEvent,
        kind: SnapshotWork,
    ) -> Result<Step, LogError> {
        let id_str = ev.stream_id.trim_start_matches("snapshot-");
        let Ok(snap) = Uuid::parse_str(id_str) else {
            return Ok(Step::Done);
        };
        let Some(mut s) = self.snapshot_pending(ev, kind).await? else {
            return Ok(Step::Done);
        };
        let held = match self.claim(ev).await? {
            Claimed::Unleased => None,
            Claimed::Busy(d) => return Ok(Step::Busy(d)),
            Claimed::Held(h) => match self.snapshot_pending(ev, kind).await? {
                Some(again) => {
                    s = again;
                    Some(h)
                }
                None => return Ok(Step::Done),
            },
        };
        let (vol, full) = (s.volume_id, s.full);
        // As for volumes: the start is recorded ahead only for a copy of
        // data (a full snapshot's flattening).
        let long = full && kind == SnapshotWork::Create;
        if long {
            let start = OutcomeCommand::Snapshot {
                id: snap,
                command: SnapshotOutcome::StartWork { kind },
            };
            if self.record(vec![start], ev, false, held.as_ref()).await?
                == worklog::Applied::LeaseLost
            {
                return Ok(Step::Done);
            }
        }
        let backend = self.backend.clone();
        let result = tokio::task::spawn_blocking(move || match kind {
            // A full snapshot is a layer first, then made to stand alone:
            // both steps are idempotent, so a retry after a crash finishes.
            SnapshotWork::Create if full => backend
                .snapshot_create(vol, snap)
                .and_then(|()| backend.snapshot_flatten(snap)),
            SnapshotWork::Create => backend.snapshot_create(vol, snap),
            SnapshotWork::Delete => backend.snapshot_delete(snap),
        })
        .await
        .map_err(|e| StoreError::Panicked(e.to_string()))?;
        let cmd = match result {
            Ok(()) => SnapshotOutcome::CompleteWork { kind },
            Err(e) => {
                tracing::warn!(snapshot = %snap, ?kind, error = %e, "snapshot work failed");
                SnapshotOutcome::FailWork {
                    kind,
                    reason: e.to_string(),
                }
            }
        };
        let mut commands = Vec::with_capacity(2);
        if !long {
            commands.push(OutcomeCommand::Snapshot {
                id: snap,
                command: SnapshotOutcome::StartWork { kind },
            });
        }
        let main = commands.len();
        commands.push(OutcomeCommand::Snapshot {
            id: snap,
            command: cmd,
        });
        let applied = self.record(commands, ev, true, held.as_ref()).await?;
        if let Some(e) = applied.refusal(main) {
            tracing::warn!(snapshot = %snap, error = %e, "outcome refused");
        }
        Ok(Step::Done)
    }

    /// Exports a volume's current bytes or a snapshot into the image store,
    /// then ends the image and the volume's `uploading` in one transaction.
    /// The image of `ev` if it is live (and its source this executor's).
    async fn export_image(
        &self,
        ev: &RecordedEvent,
    ) -> Result<Option<domain::image::Image>, LogError> {
        let events = self.log.read_stream(&ev.stream_id).await?;
        let decoded = events
            .iter()
            .map(decode::<ImageAggregate>)
            .collect::<Result<Vec<_>, _>>()?;
        let state = ImageAggregate::fold(&decoded);
        Ok(state.image.filter(|_| !state.deleted))
    }

    /// True if the image's source (a volume or a snapshot) is on a
    /// backend this executor serves. One more read, only for an executor
    /// that does not serve everything.
    async fn serves_source(&self, source: &ImageSource) -> Result<bool, LogError> {
        if self.config.serves.is_none() {
            return Ok(true);
        }
        let backend = match source {
            ImageSource::Volume { volume_id } => self
                .state(&volume_id.to_string())
                .await?
                .0
                .volume
                .map(|v| v.backend),
            ImageSource::Snapshot { snapshot_id } => {
                let events = self
                    .log
                    .read_stream(&SnapshotAggregate::stream_id(&snapshot_id.to_string()))
                    .await?;
                let decoded = events
                    .iter()
                    .map(decode::<SnapshotAggregate>)
                    .collect::<Result<Vec<_>, _>>()?;
                SnapshotAggregate::fold(&decoded)
                    .snapshot
                    .map(|s| s.backend)
            }
            ImageSource::Upload => None,
        };
        Ok(backend.is_some_and(|b| self.serves(&b)))
    }

    async fn perform_export(&self, ev: &RecordedEvent) -> Result<Step, LogError> {
        let Ok(image_id) = Uuid::parse_str(ev.stream_id.trim_start_matches("image-")) else {
            return Ok(Step::Done);
        };
        let Some(mut img) = self.export_image(ev).await? else {
            return Ok(Step::Done);
        };
        if !self.serves_source(&img.source).await? {
            // The bytes are on another executor's backend: it exports them.
            return Ok(Step::Done);
        }
        let saving = |i: &domain::image::Image| {
            matches!(i.status, ImageStatus::Queued | ImageStatus::Saving)
        };
        let mut held = None;
        if saving(&img) {
            match self.claim(ev).await? {
                Claimed::Unleased => {}
                Claimed::Busy(d) => return Ok(Step::Busy(d)),
                Claimed::Held(h) => match self.export_image(ev).await? {
                    Some(again) => {
                        img = again;
                        held = Some(h);
                    }
                    None => return Ok(Step::Done),
                },
            }
        }
        let volume = match &img.source {
            ImageSource::Volume { volume_id } => Some(*volume_id),
            _ => None,
        };
        let end_upload = |vol: Uuid| OutcomeCommand::Volume {
            id: vol,
            command: VolumeOutcome::EndUpload { image_id },
        };
        if saving(&img) {
            let start = OutcomeCommand::Image {
                id: image_id,
                command: ImageOutcome::StartWork,
            };
            if self.record(vec![start], ev, false, held.as_ref()).await?
                == worklog::Applied::LeaseLost
            {
                return Ok(Step::Done);
            }
            let what = match &img.source {
                ImageSource::Volume { volume_id } => backend::Bytes::Volume(*volume_id),
                ImageSource::Snapshot { snapshot_id } => backend::Bytes::Snapshot(*snapshot_id),
                ImageSource::Upload => return Ok(Step::Done),
            };
            let storage = self.backend.clone();
            let images = self.images.clone();
            let mut report = self.reporter(image_id);
            let format = DiskFormat::parse(&img.disk_format);
            let result = tokio::task::spawn_blocking(move || match format {
                Some(f) => images
                    .export_from(&*storage, what, image_id, f, &mut report)
                    .map_err(|e| e.to_string()),
                None => Err(format!("unsupported disk format {}", img.disk_format)),
            })
            .await
            .map_err(|e| StoreError::Panicked(e.to_string()))?;
            self.forget_progress(image_id);
            let cmd = match result {
                Ok(info) => ImageOutcome::Complete {
                    size: info.size,
                    virtual_size: info.virtual_size,
                    checksum_sha256: info.checksum_sha256,
                },
                Err(reason) => {
                    tracing::warn!(image = %image_id, %reason, "export failed");
                    ImageOutcome::Fail { reason }
                }
            };
            let mut commands = vec![OutcomeCommand::Image {
                id: image_id,
                command: cmd,
            }];
            commands.extend(volume.map(end_upload));
            self.record(commands, ev, true, held.as_ref()).await?;
        } else if let Some(vol) = volume {
            // The image ended before a crash; make sure the volume did too
            // (EndUpload decides nothing on a volume that is not uploading).
            self.record(vec![end_upload(vol)], ev, false, None).await?;
        }
        Ok(Step::Done)
    }

    async fn delete_image(&self, ev: &RecordedEvent) -> Result<(), LogError> {
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

/// The stream version of the last event of `events` that asks for disk
/// work (0 if none).
///
/// A work item acts only if its event is that request. The status alone
/// cannot tell: after a restart the executor redoes items from its
/// low-water mark, and an old item (an extend to 2 GiB, done and recorded
/// before the crash) would find the volume `extending` again because of a
/// later request (an extend to 3 GiB) and do *that* work, ahead of the
/// items queued between the two in the log: a clone of the volume, sized
/// at 2 GiB, then found a 3 GiB source and failed (the crash trials'
/// "clone … is smaller than snapshot <derived base>").
fn latest_request<E>(
    events: &[RecordedEvent],
    decoded: &[E],
    asks_for_work: impl Fn(&E) -> bool,
) -> u64 {
    events
        .iter()
        .zip(decoded)
        .filter(|(_, e)| asks_for_work(e))
        .map(|(r, _)| r.stream_version)
        .last()
        .unwrap_or(0)
}

/// The id in an event's stream id (`volume-<uuid>`, …); nil if none.
fn resource_id(ev: &RecordedEvent) -> Uuid {
    ev.stream_id
        .split_once('-')
        .and_then(|(_, id)| Uuid::parse_str(id).ok())
        .unwrap_or_default()
}

/// Disk work an event asks for.
#[derive(Debug, Clone, Copy)]
enum Work {
    Volume(WorkKind),
    Snapshot(SnapshotWork),
    Export,
    DeleteImage,
}

/// The only event types that can ask for disk work: the executor reads
/// just these from the log (`WorkLog::read_types_from`), and `work_of`
/// answers None for any other, so the two cannot disagree.
const WORK_TYPES: &[&str] = &[
    "VolumeCreateRequested",
    "VolumeExtendRequested",
    "VolumeDeleteRequested",
    "VolumeRollbackRequested",
    "VolumeReimageRequested",
    "ImageCreateRequested",
    "ImageDeleted",
    "SnapshotCreateRequested",
    "SnapshotDeleteRequested",
];

/// The disk work an event asks for, if any, and its lock set: the
/// aggregates it touches (its target first, then its source).
fn work_of(ev: &RecordedEvent) -> Option<(Work, Vec<Key>)> {
    if !WORK_TYPES.contains(&ev.event_type.as_str()) {
        return None;
    }
    let id = resource_id(ev);
    if ev.stream_id.starts_with("volume-") {
        let me = Key::Volume(id);
        return match decode::<VolumeAggregate>(ev).ok()? {
            VolumeEvent::VolumeCreateRequested {
                snapshot_id,
                image_id,
                source_volume_id,
                ..
            } => {
                // A clone reads its source: the source's earlier work
                // (a snapshot being taken, a rollback) must be done, and its
                // later work (a delete, a snapshot deletion) must wait.
                let mut keys = vec![me];
                keys.extend(source_volume_id.map(Key::Volume));
                keys.extend(snapshot_id.map(Key::Snapshot));
                keys.extend(image_id.map(Key::Image));
                Some((Work::Volume(WorkKind::Create), keys))
            }
            VolumeEvent::VolumeExtendRequested { .. } => {
                Some((Work::Volume(WorkKind::Extend), vec![me]))
            }
            VolumeEvent::VolumeDeleteRequested { .. } => {
                Some((Work::Volume(WorkKind::Delete), vec![me]))
            }
            VolumeEvent::VolumeRollbackRequested { snapshot_id, .. } => Some((
                Work::Volume(WorkKind::Rollback),
                vec![me, Key::Snapshot(snapshot_id)],
            )),
            // Reads the image: its deletion must wait for the copy.
            VolumeEvent::VolumeReimageRequested { image_id, .. } => Some((
                Work::Volume(WorkKind::Reimage),
                vec![me, Key::Image(image_id)],
            )),
            _ => None,
        };
    }
    if ev.stream_id.starts_with("image-") {
        let me = Key::Image(id);
        return match decode::<ImageAggregate>(ev).ok()? {
            ImageEvent::ImageCreateRequested {
                source: ImageSource::Volume { volume_id },
                ..
            } => Some((Work::Export, vec![me, Key::Volume(volume_id)])),
            ImageEvent::ImageCreateRequested {
                source: ImageSource::Snapshot { snapshot_id },
                ..
            } => Some((Work::Export, vec![me, Key::Snapshot(snapshot_id)])),
            ImageEvent::ImageDeleted {} => Some((Work::DeleteImage, vec![me])),
            _ => None,
        };
    }
    if ev.stream_id.starts_with("snapshot-") {
        let me = Key::Snapshot(id);
        return match decode::<SnapshotAggregate>(ev).ok()? {
            // Taking a snapshot of V changes V's file (qcow2: renames it).
            SnapshotEvent::SnapshotCreateRequested { volume_id, .. } => Some((
                Work::Snapshot(SnapshotWork::Create),
                vec![me, Key::Volume(volume_id)],
            )),
            SnapshotEvent::SnapshotDeleteRequested {} => {
                Some((Work::Snapshot(SnapshotWork::Delete), vec![me]))
            }
            _ => None,
        };
    }
    None
}

/// One work item read from the log.
struct Item {
    ev: Arc<RecordedEvent>,
    work: Work,
    attempts: u32,
    last_error: String,
    /// A long copy (see `is_long`): it may not take the last free worker.
    long: bool,
}

/// Work that copies data and may run for minutes: an export, a volume made
/// from an image, a full (not linked) clone of a snapshot. Everything else
/// (creating, extending, deleting, snapshotting, linked clones, rollback)
/// is a header write or a rename.
fn is_long(ev: &RecordedEvent, work: Work) -> bool {
    match work {
        Work::Export | Work::Volume(WorkKind::Reimage) => true,
        Work::Volume(WorkKind::Create) => matches!(
            decode::<VolumeAggregate>(ev),
            Ok(VolumeEvent::VolumeCreateRequested {
                image_id: Some(_),
                ..
            }) | Ok(VolumeEvent::VolumeCreateRequested {
                snapshot_id: Some(_),
                linked_clone: false,
                ..
            })
        ),
        _ => false,
    }
}

/// What a finished task reports.
enum Done {
    /// Handled (or given up on): release its keys.
    Handled,
    /// The step failed; retry or give up.
    Failed(String),
    /// Another executor holds the item's lease: look again after this
    /// long (not an attempt: nothing failed).
    Busy(Duration),
}

/// What one step did.
#[derive(Debug)]
enum Step {
    /// The item is handled (its outcome recorded, or nothing to do here).
    Done,
    /// Another executor's lease is live: look again after this long.
    Busy(Duration),
}

/// The answer to `Executor::claim`.
enum Claimed {
    /// This executor works without leases (the only one on its backend).
    Unleased,
    Held(Held),
    Busy(Duration),
}

/// A lease this executor holds during a step; renewed in the background
/// until dropped.
struct Held {
    lease: worklog::LeaseRef,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Runs work items: reads the log after the low-water mark, queues items
/// per aggregate (`schedule::LockTable`), runs up to `workers` of them at
/// once, retries failing ones with backoff and gives up on poisoned ones.
struct Dispatcher {
    exec: Executor,
    items: HashMap<u64, Item>,
    locks: LockTable,
    /// Items whose keys are free, waiting for a worker, in log order.
    ready: BTreeSet<u64>,
    running: JoinSet<(u64, Done)>,
    running_pos: HashMap<tokio::task::Id, u64>,
    /// Long copies running now: at most `workers - 1` of them, so a create
    /// or delete of another volume always finds a worker (issue 11).
    running_long: HashSet<u64>,
    /// Items waiting out their backoff (they hold their keys, not a worker).
    timers: JoinSet<u64>,
    /// The checkpoint last written while idle.
    flushed: u64,
}

impl Dispatcher {
    fn new(exec: Executor) -> Self {
        Dispatcher {
            exec,
            items: HashMap::new(),
            locks: LockTable::default(),
            ready: BTreeSet::new(),
            running: JoinSet::new(),
            running_pos: HashMap::new(),
            running_long: HashSet::new(),
            timers: JoinSet::new(),
            flushed: 0,
        }
    }

    /// Until shutdown (`Some`), or until everything up to the head is
    /// handled (`None`).
    async fn drive(mut self, mut shutdown: Option<watch::Receiver<bool>>) -> Result<(), LogError> {
        let mut more = true;
        // When the idle checkpoint is due (see below).
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.as_ref().is_some_and(|s| *s.borrow()) {
                if self.locks.len() == 0 {
                    self.flush().await;
                }
                self.stop().await;
                return Ok(());
            }
            if more && self.locks.len() < MAX_BACKLOG {
                match self.read().await {
                    Ok(full) => more = full,
                    Err(e) if shutdown.is_none() => return Err(e),
                    Err(e) => {
                        // The log cannot be read: nothing to do but wait.
                        tracing::error!(error = %e, "executor cannot read the log; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                self.start();
                continue;
            }
            self.start();
            if !more && self.locks.len() == 0 {
                // Idle: everything read is handled. Outcomes moved the
                // checkpoint only as far as was safe when they committed
                // (and not past their own events); record the whole way,
                // so a restart re-reads nothing. Not at once: under a
                // steady trickle of requests the executor goes idle after
                // nearly every item, and a durable write each time was a
                // third of the writer's commits (issue 11). After
                // `IDLE_FLUSH` of idleness, or at shutdown; a crash before
                // that re-reads at most those events, which need no work.
                let due = flush_at.is_some_and(|t| t <= tokio::time::Instant::now());
                if shutdown.is_none() || due {
                    self.flush().await;
                    flush_at = None;
                } else if flush_at.is_none() && self.pending_flush() {
                    flush_at = Some(tokio::time::Instant::now() + IDLE_FLUSH);
                }
                if shutdown.is_none() {
                    return Ok(());
                }
            } else {
                // Busy: the outcomes move the mark.
                flush_at = None;
            }
            let watching = shutdown.is_some();
            let log = self.exec.log.clone();
            let read_to = self.exec.tracker.lock().read_to.unwrap_or(0);
            let head_moved = log.wait_past(read_to);
            let stop = async {
                match shutdown.as_mut() {
                    Some(s) => {
                        let _ = s.changed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(r) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    let (pos, done) = match r {
                        Ok((id, out)) => {
                            self.running_pos.remove(&id);
                            out
                        }
                        Err(e) => {
                            let pos = self.running_pos.remove(&e.id()).unwrap_or_default();
                            (pos, Done::Failed(format!("work item panicked: {e}")))
                        }
                    };
                    self.finished(pos, done);
                }
                Some(Ok(pos)) = self.timers.join_next(), if !self.timers.is_empty() => {
                    self.ready.insert(pos);
                }
                _ = head_moved, if watching && !more => {
                    more = true;
                }
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)), if flush_at.is_some() => {}
                _ = stop => {}
            }
        }
    }

    fn pending_flush(&self) -> bool {
        self.exec.tracker.lock().read_to.unwrap_or(0) > self.flushed
    }

    /// Records the checkpoint at the read position (call only when every
    /// item read is handled).
    async fn flush(&mut self) {
        let read_to = self.exec.tracker.lock().read_to.unwrap_or(0);
        if read_to <= self.flushed {
            return;
        }
        let r = self
            .exec
            .log
            .advance_checkpoint(&self.exec.config.checkpoint, read_to)
            .await;
        match r {
            Ok(()) => self.flushed = read_to,
            Err(e) => tracing::warn!(error = %e, "executor checkpoint not saved"),
        }
    }

    /// Shutdown: running items may record their outcomes for up to
    /// `config.drain`; items waiting for a worker or a retry are redone
    /// after the restart. Past the drain, running items are abandoned: their
    /// tasks are aborted (so no outcome is recorded and they too are redone)
    /// and then their helper processes killed, which ends the blocking
    /// threads still waiting on them. (The helper registry is per process:
    /// the server has one executor, so these are its helpers.)
    async fn stop(&mut self) {
        self.timers.abort_all();
        let drain = self.exec.config.drain;
        let running = &mut self.running;
        let drained = tokio::time::timeout(drain, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let abandoned = self.running.len();
            self.running.abort_all();
            while self.running.join_next().await.is_some() {}
            let killed = tool::kill_all();
            tracing::warn!(
                abandoned,
                killed,
                ?drain,
                "running steps abandoned at shutdown (redone after the restart)"
            );
        }
    }

    /// Reads one batch after the read position; true if it was full.
    async fn read(&mut self) -> Result<bool, LogError> {
        let from = self.exec.read_position().await?;
        let (batch, scanned) = self
            .exec
            .log
            .read_types_from(from, BATCH, WORK_TYPES)
            .await?;
        let full = batch.len() == BATCH;
        for ev in batch {
            let pos = ev.position;
            let mut plan = work_of(&ev);
            if let Some((Work::Snapshot(SnapshotWork::Delete), keys)) = plan.as_mut() {
                // A snapshot's deletion changes its volume's chain, and a
                // cascade delete of the volume comes after it in the log:
                // the volume's work waits for it. The request does not name
                // the volume; the snapshot's first event does.
                let first = self.exec.log.read_stream_after(&ev.stream_id, 0, 1).await?;
                if let Some(Ok(SnapshotEvent::SnapshotCreateRequested { volume_id, .. })) =
                    first.first().map(decode::<SnapshotAggregate>)
                {
                    keys.push(Key::Volume(volume_id));
                }
            }
            let mut t = self.exec.tracker.lock();
            if let Some((work, keys)) = plan {
                t.outstanding.insert(pos);
                if self.locks.admit(pos, keys) {
                    self.ready.insert(pos);
                }
                let long = is_long(&ev, work);
                self.items.insert(
                    pos,
                    Item {
                        ev: Arc::new(ev),
                        work,
                        attempts: 0,
                        last_error: String::new(),
                        long,
                    },
                );
            }
            t.read_to = Some(pos);
        }
        // The events skipped up to `scanned` asked for no work.
        let mut t = self.exec.tracker.lock();
        if t.read_to.is_none_or(|r| r < scanned) {
            t.read_to = Some(scanned);
        }
        Ok(full)
    }

    /// Starts ready items while workers are free, oldest first; a long
    /// copy waits (in log order) while long copies hold all workers but one.
    fn start(&mut self) {
        let long_cap = self.exec.config.workers.saturating_sub(1).max(1);
        let mut waiting_long = Vec::new();
        while self.running.len() < self.exec.config.workers {
            let Some(pos) = self.ready.pop_first() else {
                break;
            };
            let Some(item) = self.items.get_mut(&pos) else {
                continue;
            };
            if item.long {
                if self.running_long.len() >= long_cap {
                    waiting_long.push(pos);
                    continue;
                }
                self.running_long.insert(pos);
            }
            item.attempts += 1;
            let (ev, work, attempt) = (item.ev.clone(), item.work, item.attempts);
            let give_up = attempt > self.exec.config.max_attempts;
            let last_error = item.last_error.clone();
            let exec = self.exec.clone();
            let span = tracing::info_span!(
                "executor_step",
                position = pos,
                resource = %ev.stream_id,
                correlation_id = %ev.metadata["correlation_id"].as_str().unwrap_or(""),
                work = ?work,
                attempt,
            );
            let task = async move {
                if give_up {
                    let reason = format!(
                        "executor gave up after {} attempts: {last_error}",
                        attempt - 1
                    );
                    tracing::error!(%reason, "poisoned work item recorded as failed");
                    return match exec.give_up(&ev, work, reason).await {
                        Step::Done => (pos, Done::Handled),
                        Step::Busy(d) => (pos, Done::Busy(d)),
                    };
                }
                match exec.step(&ev, work).await {
                    Ok(Step::Done) => (pos, Done::Handled),
                    Ok(Step::Busy(d)) => (pos, Done::Busy(d)),
                    Err(e) => (pos, Done::Failed(e.to_string())),
                }
            };
            let kind = format!("{work:?}");
            let timed = async move {
                let started = std::time::Instant::now();
                let out = task.await;
                let outcome = match out.1 {
                    Done::Handled => "handled",
                    Done::Failed(_) => "failed",
                    Done::Busy(_) => "busy",
                };
                metrics::histogram!("blockledger_executor_step_seconds", "kind" => kind, "outcome" => outcome)
                    .record(started.elapsed().as_secs_f64());
                out
            };
            let handle = self.running.spawn(timed.instrument(span));
            self.running_pos.insert(handle.id(), pos);
        }
        self.ready.extend(waiting_long);
        // Items read and not yet handled (running, ready, waiting on a
        // key or a retry), and those holding a worker now.
        metrics::gauge!("blockledger_executor_queue_depth").set(self.locks.len() as f64);
        metrics::gauge!("blockledger_executor_running").set(self.running.len() as f64);
    }

    fn finished(&mut self, pos: u64, done: Done) {
        self.running_long.remove(&pos);
        match done {
            Done::Busy(delay) => {
                // Not an attempt: the item waits, holding its keys, and
                // runs again as if for the first time.
                if let Some(item) = self.items.get_mut(&pos) {
                    item.attempts = item.attempts.saturating_sub(1);
                }
                self.timers.spawn(async move {
                    tokio::time::sleep(delay).await;
                    pos
                });
            }
            Done::Handled => {
                self.items.remove(&pos);
                self.exec.tracker.lock().outstanding.remove(&pos);
                for next in self.locks.release(pos) {
                    self.ready.insert(next);
                }
            }
            Done::Failed(error) => {
                let Some(item) = self.items.get_mut(&pos) else {
                    return;
                };
                tracing::warn!(
                    position = pos,
                    resource = %item.ev.stream_id,
                    attempt = item.attempts,
                    %error,
                    "executor step failed; will retry"
                );
                item.last_error = error;
                if item.attempts >= self.exec.config.max_attempts {
                    // The next start records the failure.
                    self.ready.insert(pos);
                    return;
                }
                let delay = self
                    .exec
                    .config
                    .backoff
                    .saturating_mul(1 << (item.attempts - 1).min(10));
                self.timers.spawn(async move {
                    tokio::time::sleep(delay).await;
                    pos
                });
            }
        }
    }
}
