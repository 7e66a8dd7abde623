//! Snapshot a volume (CINDER-7.3.1): the volume's facts and its owner's
//! quota are read in the same transaction as the snapshot's decision.

use std::collections::BTreeMap;

use domain::{SnapshotAggregate, SnapshotCommand, VolumeFacts};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSnapshotRequest {
    pub volume_id: Uuid,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// An in-use volume needs `force` [5.1 #22].
    pub force: bool,
    /// A full copy instead of a layer over the volume's chain (`is_full`).
    pub full: bool,
    /// A client-chosen id (ZStack's `resourceUuid`); a fresh one otherwise.
    pub snapshot_id: Option<Uuid>,
}

pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateSnapshotRequest,
) -> Result<Uuid, AppError> {
    create_with_job(app, caller, meta, r, super::new_job_id()).await
}

/// How a synchronous snapshot ended (`create_and_wait`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The snapshot exists on disk.
    Ready(Uuid),
    /// The executor could not take it; the reason.
    Failed(Uuid, Option<String>),
    /// The deadline passed; the snapshot is still being taken and ends in
    /// the background.
    Pending(Uuid),
}

/// Snapshots a volume and waits, up to `deadline`, until the snapshot
/// really exists on disk (ZStack's synchronous `CreateVolumeSnapshot`).
pub async fn create_and_wait(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateSnapshotRequest,
    deadline: tokio::time::Instant,
) -> Result<Synced, AppError> {
    let job = super::new_job_id();
    let id = create_with_job(app, caller, meta, r, job.clone()).await?;
    Ok(match super::await_outcome(app, &job, deadline).await? {
        super::Outcome::Succeeded(_) => Synced::Ready(id),
        super::Outcome::Failed(j) => Synced::Failed(id, j.failure),
        super::Outcome::TimedOut => Synced::Pending(id),
    })
}

/// `create` under the caller's job id (the correlation id of the request
/// and of the executor's outcome).
pub async fn create_with_job(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateSnapshotRequest,
    job: String,
) -> Result<Uuid, AppError> {
    // One path for one and many: a single snapshot is a batch of one.
    let ids = create_many(app, caller, meta, vec![r], job).await?;
    ids.into_iter().next().ok_or_else(|| {
        AppError::Store(eventstore::StoreError::Batch(
            "a snapshot request answered no id".into(),
        ))
    })
}

/// Snapshots several volumes under one job (the Chinese cloud's
/// `resources[]`), all or nothing; the new snapshots' ids in order.
pub async fn create_many(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    requests: Vec<CreateSnapshotRequest>,
    job_id: String,
) -> Result<Vec<Uuid>, AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        let mut ids = Vec::with_capacity(requests.len());
        for r in requests {
            let snapshot_id = r.snapshot_id.unwrap_or_else(Uuid::new_v4);
            let v = tx.volume(r.volume_id)?;
            let quota = tx.headroom(&v.project_id)?;
            let volume = VolumeFacts {
                id: v.id,
                project_id: v.project_id,
                status: v.status,
                size: v.size,
                volume_type: v.volume_type,
                availability_zone: v.availability_zone,
                head_snapshot: tx.head_snapshot(r.volume_id)?,
                backend: v.backend,
            };
            let cmd = SnapshotCommand::Create {
                snapshot_id,
                volume,
                user_id: tx.caller.user_id.clone(),
                name: r.name,
                description: r.description,
                metadata: r.metadata,
                force: r.force,
                full: r.full,
                quota,
            };
            tx.execute::<SnapshotAggregate>(&snapshot_id.to_string(), cmd)?;
            ids.push(snapshot_id);
        }
        Ok(ids)
    })
    .await
}
