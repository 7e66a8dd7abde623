//! Reset a group snapshot's status (Cinder 3.19, admin).

use domain::group_snapshot::{GroupSnapshotAggregate, GroupSnapshotCommand, GroupSnapshotStatus};
use domain::{Aggregate, DomainError};

use super::group_queries::group_snapshot_in;
use super::{App, AppError, Caller, RequestMeta};

pub async fn reset_status(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    status: GroupSnapshotStatus,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(AppError::refused(
                GroupSnapshotAggregate::stream_id(&raw),
                DomainError::NotPermitted(
                    "Policy doesn't allow group:reset_group_snapshot_status.".into(),
                ),
            ));
        }
        let gs = group_snapshot_in(tx.conn(), tx.caller, &raw)?;
        tx.execute::<GroupSnapshotAggregate>(&gs.id, GroupSnapshotCommand::ResetStatus(status))?;
        Ok(())
    })
    .await
}
