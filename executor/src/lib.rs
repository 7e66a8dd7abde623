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

use std::sync::Arc;

use domain::{Aggregate, VolumeAggregate, VolumeCommand, VolumeEvent, VolumeState, WorkKind};
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

#[derive(Clone)]
pub struct Executor {
    store: EventStore,
    backend: Arc<dyn StorageBackend>,
}

impl Executor {
    pub fn new(store: EventStore, backend: Arc<dyn StorageBackend>) -> Self {
        Executor { store, backend }
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
        let from = self.store.checkpoint(CHECKPOINT)?;
        let batch = self.store.read_from(from, BATCH)?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(false);
        };
        for ev in &batch {
            if let Some(kind) = work_of(ev) {
                self.perform(ev, kind).await?;
                self.save_checkpoint(ev.position).await?;
            }
        }
        self.save_checkpoint(last).await?;
        Ok(batch.len() == BATCH)
    }

    async fn save_checkpoint(&self, position: u64) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.save_checkpoint(CHECKPOINT, position))
            .await
            .map_err(|e| StoreError::Panicked(e.to_string()))?
    }

    fn state(&self, id: &str) -> Result<VolumeState, StoreError> {
        let events = self.store.read_stream(&VolumeAggregate::stream_id(id))?;
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
        let meta = json!({
            "actor": "executor",
            "project_id": trigger.metadata["project_id"],
            "correlation_id": trigger.metadata["correlation_id"],
            "caused_by": trigger.event_id,
        });
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
        let state = self.state(&id_str)?;
        let Some(v) = state.volume.as_ref().filter(|_| !state.deleted) else {
            return Ok(());
        };
        let pending = match kind {
            WorkKind::Create => v.status == domain::VolumeStatus::Creating,
            WorkKind::Extend => v.status == domain::VolumeStatus::Extending,
            WorkKind::Delete => v.status == domain::VolumeStatus::Deleting,
        };
        if !pending {
            return Ok(()); // already done: a replay after a restart
        }
        self.command(&id_str, VolumeCommand::StartWork { kind }, ev)
            .await?;
        let backend = self.backend.clone();
        let size = v.pending_size.unwrap_or(v.size).max(0) as u64 * GIB;
        let result = tokio::task::spawn_blocking(move || match kind {
            WorkKind::Create => backend.create(id, size),
            WorkKind::Extend => backend.extend(id, size),
            WorkKind::Delete => backend.delete(id),
        })
        .await
        .map_err(|e| StoreError::Panicked(e.to_string()))?;
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
        self.command(&id_str, cmd, ev).await
    }
}

/// The disk work an event asks for, if any.
fn work_of(ev: &RecordedEvent) -> Option<WorkKind> {
    if !ev.stream_id.starts_with("volume-") {
        return None;
    }
    match decode::<VolumeAggregate>(ev).ok()? {
        VolumeEvent::VolumeCreateRequested { .. } => Some(WorkKind::Create),
        VolumeEvent::VolumeExtendRequested { .. } => Some(WorkKind::Extend),
        VolumeEvent::VolumeDeleteRequested { .. } => Some(WorkKind::Delete),
        _ => None,
    }
}
