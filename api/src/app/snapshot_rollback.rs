//! Roll a volume back to a snapshot (EVS-6.2.1): the volume goes
//! `rollingback` and the snapshot `rollbacking` together; both sides decide
//! before either appends, so it is all or nothing.

use domain::{SnapshotAggregate, SnapshotCommand, VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn rollback(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    snapshot_id: Uuid,
    volume_id: Uuid,
    name: Option<String>,
) -> Result<(), AppError> {
    let job = super::new_job_id();
    app.run(caller, meta, Some(&job), move |tx| {
        let s = tx.snapshot(snapshot_id)?;
        tx.volume(volume_id)?;
        let vol = tx.decide::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::Rollback {
                snapshot_id,
                snapshot_volume_id: s.volume_id,
                name,
            },
        )?;
        let snap = tx.decide::<SnapshotAggregate>(
            &snapshot_id.to_string(),
            SnapshotCommand::BeginRollback { volume_id },
        )?;
        tx.commit(vec![snap, vol])?;
        Ok(())
    })
    .await
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
    app.run(caller, meta, Some(&job_id), move |tx| {
        for snapshot_id in snapshot_ids {
            let s = tx.snapshot(snapshot_id)?;
            tx.volume(s.volume_id)?;
            let vol = tx.decide::<VolumeAggregate>(
                &s.volume_id.to_string(),
                VolumeCommand::Rollback {
                    snapshot_id,
                    snapshot_volume_id: s.volume_id,
                    name: None,
                },
            )?;
            let snap = tx.decide::<SnapshotAggregate>(
                &snapshot_id.to_string(),
                SnapshotCommand::BeginRollback {
                    volume_id: s.volume_id,
                },
            )?;
            tx.commit(vec![snap, vol])?;
        }
        Ok(())
    })
    .await
}
