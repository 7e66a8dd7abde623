//! Cinder 3.40 revert-to-snapshot: the volume goes back to its latest
//! snapshot by the existing O(1) rollback (the volume `rollingback`, the
//! snapshot `rollbacking`, the executor swaps the overlay), after
//! Cinder's checks (`domain::volume::revert`).

use domain::volume::revert::{self, Latest};
use domain::{SnapshotAggregate, SnapshotCommand, VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn revert(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    volume_id: Uuid,
    snapshot_id: Option<String>,
) -> Result<(), AppError> {
    let job_id = super::new_job_id();
    app.run(caller, meta, Some(&job_id), move |tx| {
        let v = tx.volume(volume_id)?;
        let latest = projections::snapshots::latest_of(tx.conn(), &volume_id.to_string())?
            .and_then(|s| {
                Some(Latest {
                    snapshot_id: Uuid::parse_str(&s.id).ok()?,
                    status: s.status,
                    volume_size: s.size,
                })
            });
        let snapshot_id =
            revert::check(&v, latest.as_ref(), snapshot_id.as_deref()).map_err(|e| {
                AppError::refused(
                    <VolumeAggregate as domain::Aggregate>::stream_id(&volume_id.to_string()),
                    e,
                )
            })?;
        let vol = tx.decide::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::Rollback {
                snapshot_id,
                snapshot_volume_id: volume_id,
                name: None,
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
