//! Delete a group snapshot (Cinder 3.14 `DELETE /group_snapshots/{id}`):
//! the set and each member snapshot go in one transaction; the executor
//! removes each member's disk snapshot as for any snapshot delete.

use domain::group_snapshot::{GroupSnapshotAggregate, GroupSnapshotCommand};
use domain::{SnapshotAggregate, SnapshotCommand};

use super::group_queries::group_snapshot_in;
use super::{App, AppError, Caller, RequestMeta};

pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        let gs = group_snapshot_in(tx.conn(), tx.caller, &raw)?;
        let mut live = Vec::new();
        let mut member_statuses = Vec::new();
        for (s, _) in &gs.members {
            if let Some(row) = projections::snapshots::get(tx.conn(), s)? {
                member_statuses.push(row.status.as_str().to_string());
                live.push(s.clone());
            }
        }
        tx.execute::<GroupSnapshotAggregate>(
            &gs.id,
            GroupSnapshotCommand::Delete {
                member_statuses,
                source_of_creation: projections::groups::group_snapshot_is_source(
                    tx.conn(),
                    &gs.id,
                )?,
            },
        )?;
        for s in live {
            tx.execute::<SnapshotAggregate>(&s, SnapshotCommand::Delete)?;
        }
        Ok(())
    })
    .await
}
