//! Snapshot operations on one aggregate: update, metadata, delete.

use domain::{Aggregate, SnapshotAggregate, SnapshotCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn command(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    cmd: SnapshotCommand,
) -> Result<(), AppError> {
    let correlation = matches!(cmd, SnapshotCommand::Delete | SnapshotCommand::ForceDelete)
        .then(super::new_job_id);
    // Cinder's policy: resetting a status and forcing a delete are an
    // administrator's (the owner may report progress, Nova-style).
    let admin_only = matches!(
        cmd,
        SnapshotCommand::ForceDelete | SnapshotCommand::ResetStatus { .. }
    );
    app.run(caller, meta, correlation.as_deref(), move |tx| {
        if admin_only && !tx.caller.is_admin {
            return Err(AppError::refused(
                SnapshotAggregate::stream_id(&id.to_string()),
                domain::DomainError::NotPermitted(
                    "Policy doesn't allow this snapshot action.".into(),
                ),
            ));
        }
        tx.snapshot(id)?;
        // g17: a group snapshot's member goes with its set (Cinder's rule).
        if matches!(cmd, SnapshotCommand::Delete | SnapshotCommand::ForceDelete) {
            let set = projections::groups::group_snapshot_of(tx.conn(), &id.to_string())?;
            domain::group::refuse_set_member_delete(set.as_deref())
                .map_err(|e| AppError::refused(SnapshotAggregate::stream_id(&id.to_string()), e))?;
        }
        tx.execute::<SnapshotAggregate>(&id.to_string(), cmd)?;
        Ok(())
    })
    .await
}

/// A snapshot command under the caller's job id (a dialect that answers a
/// job for it).
pub async fn command_with_job(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    cmd: SnapshotCommand,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        tx.snapshot(id)?;
        tx.execute::<SnapshotAggregate>(&id.to_string(), cmd)?;
        Ok(())
    })
    .await
}
