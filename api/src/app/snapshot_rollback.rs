//! Roll volumes back to snapshots (EVS-6.2.1, the Chinese cloud's
//! `apply`): each volume goes `rollingback` and its snapshot `rollbacking`
//! together; every side decides before any appends, so it is all or
//! nothing.

use domain::{SnapshotAggregate, SnapshotCommand, VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

/// One rollback: the snapshot, the volume the client names (the decider
/// refuses any but the snapshot's own [5.1 #29]; `None`: the snapshot's
/// own), and the new name it may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    pub snapshot_id: Uuid,
    pub volume_id: Option<Uuid>,
    pub name: Option<String>,
}

/// EVS-6.2.1: one snapshot onto the named volume.
pub async fn rollback(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    snapshot_id: Uuid,
    volume_id: Uuid,
    name: Option<String>,
) -> Result<(), AppError> {
    let r = RollbackRequest {
        snapshot_id,
        volume_id: Some(volume_id),
        name,
    };
    rollback_many_named(app, caller, meta, vec![r], super::new_job_id()).await
}

/// Rolls each snapshot's own volume back to it (the Chinese cloud's
/// `apply`), all or nothing, under one job.
pub async fn rollback_many(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    snapshot_ids: Vec<Uuid>,
    job_id: String,
) -> Result<(), AppError> {
    let requests = snapshot_ids
        .into_iter()
        .map(|snapshot_id| RollbackRequest {
            snapshot_id,
            volume_id: None,
            name: None,
        })
        .collect();
    rollback_many_named(app, caller, meta, requests, job_id).await
}

async fn rollback_many_named(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    requests: Vec<RollbackRequest>,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        for r in requests {
            let s = tx.snapshot(r.snapshot_id)?;
            let volume_id = r.volume_id.unwrap_or(s.volume_id);
            tx.volume(volume_id)?;
            let vol = tx.decide::<VolumeAggregate>(
                &volume_id.to_string(),
                VolumeCommand::Rollback {
                    snapshot_id: r.snapshot_id,
                    snapshot_volume_id: s.volume_id,
                    name: r.name,
                },
            )?;
            let snap = tx.decide::<SnapshotAggregate>(
                &r.snapshot_id.to_string(),
                SnapshotCommand::BeginRollback { volume_id },
            )?;
            tx.commit(vec![snap, vol])?;
        }
        Ok(())
    })
    .await
}
