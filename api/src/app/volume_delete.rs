//! Delete a volume (CINDER-7.1.2, EVS-6.1.3); with `cascade` its snapshots
//! go first, in the same transaction, all or nothing (DECISIONS.md,
//! Cascade [5.1 #37]).

use domain::{
    Aggregate, DomainError, SnapshotAggregate, SnapshotCommand, VolumeAggregate, VolumeCommand,
};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    cascade: bool,
    job_id: String,
) -> Result<(), AppError> {
    delete_forced(app, caller, meta, id, cascade, false, job_id).await
}

/// `delete`, or with `force` (Cinder 3.23) whatever the volume's status.
pub async fn delete_forced(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    cascade: bool,
    force: bool,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id.clone()), move |tx| {
        tx.volume(id)?;
        // g17: a group's member goes with its group (Cinder's rule).
        let group = projections::groups::group_of_volume(tx.conn(), &id.to_string())?;
        domain::group::refuse_member_delete(group.as_deref())
            .map_err(|e| AppError::refused(format!("volume-{id}"), e))?;
        let dependents = projections::snapshots::dependents_of(tx.conn(), &id.to_string())?;
        let mut decided = Vec::new();
        let mut remaining = dependents.len();
        if cascade {
            for s in &dependents {
                decided.push(tx.decide::<SnapshotAggregate>(&s.id, SnapshotCommand::Delete)?);
            }
            remaining = 0;
        }
        let cmd = if force {
            // Cinder's `volume:force_delete` policy: an admin's.
            if !tx.caller.is_admin {
                return Err(AppError::refused(
                    VolumeAggregate::stream_id(&id.to_string()),
                    DomainError::NotPermitted("volume:force_delete".into()),
                ));
            }
            VolumeCommand::ForceDelete {
                job_id: Some(job_id),
                dependent_snapshots: remaining,
            }
        } else {
            VolumeCommand::Delete {
                job_id: Some(job_id),
                dependent_snapshots: remaining,
            }
        };
        decided.push(tx.decide::<VolumeAggregate>(&id.to_string(), cmd)?);
        tx.commit(decided)?;
        Ok(())
    })
    .await
}
