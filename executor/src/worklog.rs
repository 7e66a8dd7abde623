//! The executor's access to the log, behind one trait (`WorkLog`), so the
//! same executor runs inside the server (`LocalLog`, over the `EventStore`)
//! or as its own process talking to the server (`remote::RemoteLog`, over
//! the internal HTTP API).
//!
//! Everything the executor writes is an **outcome**: a few aggregate
//! commands on volume / snapshot / image aggregates, optionally the move of
//! its checkpoint ("handled up to here"), optionally under a lease. An
//! outcome is a plain serializable value, so a remote executor can send it
//! and the server applies it with `apply_outcome`, the same function the
//! local log runs on the writer thread: one rule for both.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use domain::image::ImageCommand;
use domain::lease::{LeaseAggregate, LeaseCommand};
use domain::{
    SnapshotAggregate, SnapshotCommand, SnapshotWork, VolumeAggregate, VolumeCommand, WorkKind,
};
use eventstore::{EventStore, RecordedEvent, StoreError, WriteTx};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schedule::SharedTracker;

/// A boxed future: the trait is used as `Arc<dyn WorkLog>` (one allocation
/// per call, nothing next to a SQLite read or an HTTP round trip).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the executor could not read or write the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server could not be reached or answered with an error (remote
    /// executors); the step is retried like a store error.
    #[error("server: {0}")]
    Remote(String),
}

/// One aggregate command of an outcome. Only the commands the executor
/// issues, so the internal API cannot be used to run a client's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum OutcomeCommand {
    Volume { id: Uuid, command: VolumeOutcome },
    Snapshot { id: Uuid, command: SnapshotOutcome },
    Image { id: Uuid, command: ImageOutcome },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum VolumeOutcome {
    StartWork { kind: WorkKind },
    CompleteWork { kind: WorkKind },
    FailWork { kind: WorkKind, reason: String },
    EndUpload { image_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum SnapshotOutcome {
    StartWork { kind: SnapshotWork },
    CompleteWork { kind: SnapshotWork },
    FailWork { kind: SnapshotWork, reason: String },
    EndRollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ImageOutcome {
    StartWork,
    Complete {
        size: u64,
        virtual_size: u64,
        checksum_sha256: String,
    },
    Fail {
        reason: String,
    },
}

impl From<VolumeOutcome> for VolumeCommand {
    fn from(c: VolumeOutcome) -> Self {
        match c {
            VolumeOutcome::StartWork { kind } => VolumeCommand::StartWork { kind },
            VolumeOutcome::CompleteWork { kind } => VolumeCommand::CompleteWork { kind },
            VolumeOutcome::FailWork { kind, reason } => VolumeCommand::FailWork { kind, reason },
            VolumeOutcome::EndUpload { image_id } => VolumeCommand::EndUpload { image_id },
        }
    }
}

impl From<SnapshotOutcome> for SnapshotCommand {
    fn from(c: SnapshotOutcome) -> Self {
        match c {
            SnapshotOutcome::StartWork { kind } => SnapshotCommand::StartWork { kind },
            SnapshotOutcome::CompleteWork { kind } => SnapshotCommand::CompleteWork { kind },
            SnapshotOutcome::FailWork { kind, reason } => {
                SnapshotCommand::FailWork { kind, reason }
            }
            SnapshotOutcome::EndRollback => SnapshotCommand::EndRollback,
        }
    }
}

impl From<ImageOutcome> for ImageCommand {
    fn from(c: ImageOutcome) -> Self {
        match c {
            ImageOutcome::StartWork => ImageCommand::StartWork,
            ImageOutcome::Complete {
                size,
                virtual_size,
                checksum_sha256,
            } => ImageCommand::Complete {
                size,
                virtual_size,
                checksum_sha256,
            },
            ImageOutcome::Fail { reason } => ImageCommand::Fail { reason },
        }
    }
}

/// A lease on a work item, as its claimer holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The work item: the log position of the event that asks for it.
    pub item: u64,
    /// Who claimed it (the executor's name).
    pub holder: String,
}

/// What the executor records, in one transaction: its commands in order
/// (a refusal of one does not undo the others: outcome commands on an
/// aggregate that moved on decide nothing or are refused, and the rest
/// still holds), the checkpoint move when the item is handled, and the
/// lease it holds (checked first: not the holder's any more => nothing is
/// recorded; released with the final outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub commands: Vec<OutcomeCommand>,
    /// The metadata of every event recorded (actor, correlation, cause).
    pub metadata: serde_json::Value,
    /// The checkpoint to move, and the position the outcome handles (None:
    /// a "work started" ahead of the work, which handles nothing yet).
    pub checkpoint: String,
    pub handled: Option<u64>,
    pub lease: Option<LeaseRef>,
}

/// What became of an outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Applied {
    /// Recorded. One entry per command: None if it was accepted, else why
    /// the aggregate refused it (recorded as `CommandRejected`).
    Recorded { refused: Vec<Option<String>> },
    /// The lease is not the claimer's any more: nothing was recorded.
    LeaseLost,
}

impl Applied {
    /// The refusal of command `i`, if any.
    pub fn refusal(&self, i: usize) -> Option<&str> {
        match self {
            Applied::Recorded { refused } => refused.get(i).and_then(|r| r.as_deref()),
            Applied::LeaseLost => None,
        }
    }
}

/// Applies `outcome` inside a write transaction: the lease check, the
/// commands, the checkpoint move to `mark` (forward only), the lease's
/// release. `now_ms` is the writer's clock (Unix milliseconds), the only
/// time the lease rule sees.
pub fn apply_outcome(
    tx: &mut WriteTx<'_>,
    outcome: &Outcome,
    mark: Option<u64>,
    now_ms: u64,
) -> Result<Applied, StoreError> {
    let lease_meta = outcome.metadata.clone();
    if let Some(lease) = &outcome.lease {
        let id = lease.item.to_string();
        let cmd = LeaseCommand::Hold {
            holder: lease.holder.clone(),
            now_ms,
        };
        // Decided, not executed: a refusal records nothing at all.
        if tx.decide::<LeaseAggregate>(&id, cmd, &lease_meta)?.is_err() {
            return Ok(Applied::LeaseLost);
        }
    }
    let mut refused = Vec::with_capacity(outcome.commands.len());
    for c in &outcome.commands {
        let r = match c.clone() {
            OutcomeCommand::Volume { id, command } => tx
                .execute::<VolumeAggregate>(&id.to_string(), command.into(), &outcome.metadata)?
                .map(drop),
            OutcomeCommand::Snapshot { id, command } => tx
                .execute::<SnapshotAggregate>(&id.to_string(), command.into(), &outcome.metadata)?
                .map(drop),
            OutcomeCommand::Image { id, command } => tx
                .execute::<domain::image::ImageAggregate>(
                    &id.to_string(),
                    command.into(),
                    &outcome.metadata,
                )?
                .map(drop),
        };
        refused.push(r.err().map(|e| e.to_string()));
    }
    if let (Some(_), Some(mark)) = (outcome.handled, mark) {
        tx.advance_checkpoint(&outcome.checkpoint, mark)?;
    }
    if let (Some(lease), Some(_)) = (&outcome.lease, outcome.handled) {
        let cmd = LeaseCommand::Release {
            holder: lease.holder.clone(),
        };
        if let Ok(d) = tx.decide::<LeaseAggregate>(&lease.item.to_string(), cmd, &lease_meta)? {
            tx.commit(vec![d])?;
        }
    }
    Ok(Applied::Recorded { refused })
}

/// The low-water mark of the executor's outstanding items (see
/// `schedule`): the checkpoint an outcome for `done` may set.
#[derive(Clone, Default)]
pub struct LowWater(pub(crate) SharedTracker);

impl LowWater {
    pub fn at(&self, done: u64) -> u64 {
        self.0.lock().low_water(done)
    }
}

/// A claim's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Claim {
    /// The claimer holds the lease until `expires_ms`; `previous` held it
    /// before and never released it (it died or stalled mid-item, or it
    /// is the claimer itself, restarted).
    Granted {
        expires_ms: u64,
        previous: Option<String>,
    },
    /// Another holder's lease is live until `expires_ms`.
    Busy { holder: String, expires_ms: u64 },
}

/// Every access the executor makes to the log.
pub trait WorkLog: Send + Sync + 'static {
    /// The durable checkpoint `name` (0 if none).
    fn checkpoint<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<u64, LogError>>;
    /// Events after `after`, ascending, at most `limit`.
    fn read_from(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<RecordedEvent>, LogError>>;
    /// The events of `types` after `after`, ascending, at most `limit`,
    /// and the position the log was looked through (the last event when
    /// the batch is full). This default reads everything and filters here;
    /// the local log skips the other events in SQL without decoding them.
    fn read_types_from(
        &self,
        after: u64,
        limit: usize,
        types: &'static [&'static str],
    ) -> BoxFut<'_, Result<(Vec<RecordedEvent>, u64), LogError>> {
        Box::pin(async move {
            let batch = self.read_from(after, limit).await?;
            let scanned = batch.last().map_or(after, |e| e.position);
            let wanted = batch
                .into_iter()
                .filter(|e| types.contains(&e.event_type.as_str()))
                .collect();
            Ok((wanted, scanned))
        })
    }
    /// Resolves when the head may have moved past `position` (a spurious
    /// wake-up only costs a read). Never resolves if the log is closed.
    fn wait_past(&self, position: u64) -> BoxFut<'_, ()>;
    /// One stream, in order.
    fn read_stream<'a>(
        &'a self,
        stream_id: &'a str,
    ) -> BoxFut<'a, Result<Vec<RecordedEvent>, LogError>>;
    /// One stream's events with position > `after`, at most `limit`.
    fn read_stream_after<'a>(
        &'a self,
        stream_id: &'a str,
        after: u64,
        limit: usize,
    ) -> BoxFut<'a, Result<Vec<RecordedEvent>, LogError>>;
    /// Moves checkpoint `name` forward to `position` (never back).
    fn advance_checkpoint<'a>(
        &'a self,
        name: &'a str,
        position: u64,
    ) -> BoxFut<'a, Result<(), LogError>>;
    /// Records `outcome` in one transaction; the checkpoint moves to
    /// `low_water.at(handled)`.
    fn append<'a>(
        &'a self,
        outcome: Outcome,
        low_water: &'a LowWater,
    ) -> BoxFut<'a, Result<Applied, LogError>>;
    /// Claims (or renews) the lease on work item `item` for `ttl`.
    fn claim<'a>(
        &'a self,
        item: u64,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFut<'a, Result<Claim, LogError>>;
    /// Renews `holder`'s lease on `item` for `ttl`; false if it is not
    /// the holder's any more.
    fn renew<'a>(
        &'a self,
        item: u64,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFut<'a, Result<bool, LogError>>;
}

/// Milliseconds since the Unix epoch: the clock leases are judged by.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Claims or renews a lease inside a write transaction (the server's and
/// the local log's one rule).
pub fn claim_lease(
    tx: &mut WriteTx<'_>,
    item: u64,
    holder: &str,
    ttl: Duration,
    now_ms: u64,
    metadata: &serde_json::Value,
) -> Result<Claim, StoreError> {
    let id = item.to_string();
    let cmd = LeaseCommand::Claim {
        holder: holder.to_string(),
        now_ms,
        ttl_ms: ttl.as_millis() as u64,
    };
    let (before, _) = tx.load::<LeaseAggregate>(&id)?;
    match tx.decide::<LeaseAggregate>(&id, cmd, metadata)? {
        Ok(d) => {
            tx.commit(vec![d])?;
            Ok(Claim::Granted {
                expires_ms: now_ms + ttl.as_millis() as u64,
                previous: before.holder,
            })
        }
        Err(_) => Ok(Claim::Busy {
            holder: before.holder.unwrap_or_default(),
            expires_ms: before.expires_ms,
        }),
    }
}

/// Renews a lease inside a write transaction; false if `holder` does not
/// hold it any more (nothing recorded).
pub fn renew_lease(
    tx: &mut WriteTx<'_>,
    item: u64,
    holder: &str,
    ttl: Duration,
    now_ms: u64,
    metadata: &serde_json::Value,
) -> Result<bool, StoreError> {
    let cmd = LeaseCommand::Renew {
        holder: holder.to_string(),
        now_ms,
        ttl_ms: ttl.as_millis() as u64,
    };
    match tx.decide::<LeaseAggregate>(&item.to_string(), cmd, metadata)? {
        Ok(d) => {
            tx.commit(vec![d])?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// The log in this process: the executor embedded in the server.
#[derive(Clone)]
pub struct LocalLog {
    store: EventStore,
}

impl LocalLog {
    pub fn new(store: EventStore) -> Self {
        LocalLog { store }
    }

    /// Claims or renews (`op`: `claim_lease`, `renew_lease`) the lease of
    /// `item` for `holder` in one write transaction, recorded as the
    /// executor's.
    fn lease<T: Send + 'static>(
        &self,
        op: LeaseOp<T>,
        item: u64,
        holder: &str,
        ttl: Duration,
    ) -> BoxFut<'_, Result<T, LogError>> {
        let holder = holder.to_string();
        Box::pin(async move {
            let meta = serde_json::json!({ "actor": "executor" });
            Ok(self
                .store
                .write(move |tx| op(tx, item, &holder, ttl, now_ms(), &meta))
                .await?)
        })
    }
}

/// `claim_lease` or `renew_lease`.
type LeaseOp<T> =
    fn(&mut WriteTx<'_>, u64, &str, Duration, u64, &serde_json::Value) -> Result<T, StoreError>;

impl WorkLog for LocalLog {
    fn checkpoint<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<u64, LogError>> {
        Box::pin(async move { Ok(self.store.checkpoint_async(name).await?) })
    }

    fn read_from(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<RecordedEvent>, LogError>> {
        Box::pin(async move { Ok(self.store.read_from_async(after, limit).await?) })
    }

    fn read_types_from(
        &self,
        after: u64,
        limit: usize,
        types: &'static [&'static str],
    ) -> BoxFut<'_, Result<(Vec<RecordedEvent>, u64), LogError>> {
        Box::pin(async move {
            Ok(self
                .store
                .read_types_from_async(after, limit, types)
                .await?)
        })
    }

    fn wait_past(&self, position: u64) -> BoxFut<'_, ()> {
        let mut head = self.store.subscribe();
        Box::pin(async move {
            if head.wait_for(|h| *h > position).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }

    fn read_stream<'a>(
        &'a self,
        stream_id: &'a str,
    ) -> BoxFut<'a, Result<Vec<RecordedEvent>, LogError>> {
        Box::pin(async move { Ok(self.store.read_stream_async(stream_id).await?) })
    }

    fn read_stream_after<'a>(
        &'a self,
        stream_id: &'a str,
        after: u64,
        limit: usize,
    ) -> BoxFut<'a, Result<Vec<RecordedEvent>, LogError>> {
        Box::pin(async move {
            Ok(self
                .store
                .read_stream_after_async(stream_id, after, limit)
                .await?)
        })
    }

    fn advance_checkpoint<'a>(
        &'a self,
        name: &'a str,
        position: u64,
    ) -> BoxFut<'a, Result<(), LogError>> {
        let name = name.to_string();
        Box::pin(async move {
            Ok(self
                .store
                .write(move |tx| tx.advance_checkpoint(&name, position))
                .await?)
        })
    }

    fn append<'a>(
        &'a self,
        outcome: Outcome,
        low_water: &'a LowWater,
    ) -> BoxFut<'a, Result<Applied, LogError>> {
        let low_water = low_water.clone();
        Box::pin(async move {
            Ok(self
                .store
                .write(move |tx| {
                    // The mark is computed on the writer thread, so every
                    // item whose outcome committed earlier counts as done.
                    let mark = outcome.handled.map(|h| low_water.at(h));
                    apply_outcome(tx, &outcome, mark, now_ms())
                })
                .await?)
        })
    }

    fn claim<'a>(
        &'a self,
        item: u64,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFut<'a, Result<Claim, LogError>> {
        self.lease(claim_lease, item, holder, ttl)
    }

    fn renew<'a>(
        &'a self,
        item: u64,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFut<'a, Result<bool, LogError>> {
        self.lease(renew_lease, item, holder, ttl)
    }
}
