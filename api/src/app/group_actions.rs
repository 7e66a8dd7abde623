//! One-command group actions: reset status (Cinder 3.20, admin) and the
//! replication actions (3.38: enable, disable, failover, list targets),
//! which the domain answers for the group's type.

use domain::group::{GroupAggregate, GroupCommand, GroupStatus};
use domain::{Aggregate, DomainError};

use super::group_queries::group;
use super::{App, AppError, Caller, RequestMeta};

/// `POST /groups/{id}/action {"reset_status": {"status": …}}` (admin).
pub async fn reset_status(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    status: GroupStatus,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(AppError::refused(
                GroupAggregate::stream_id(&raw),
                DomainError::NotPermitted("Policy doesn't allow group:reset_status.".into()),
            ));
        }
        let g = group(tx, &raw)?;
        tx.execute::<GroupAggregate>(&g.id, GroupCommand::ResetStatus(status))?;
        Ok(())
    })
    .await
}

/// `enable_replication`, `disable_replication`, `failover_replication`
/// and `list_replication_targets`: each refused unless the group's type
/// has `group_replication_enabled` `<is> True` (Cinder's `_check_type`),
/// and then because this backend replicates to no target.
pub async fn replication(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let g = group(tx, &raw)?;
        let replicated =
            projections::groups::group_type(tx.conn(), &g.group_type_id)?.is_some_and(|t| {
                domain::group_type::spec_is_true(&t.group_specs, "group_replication_enabled")
            });
        tx.execute::<GroupAggregate>(
            &g.id,
            GroupCommand::Replication {
                group_type_replicated: replicated,
            },
        )?;
        Ok(())
    })
    .await
}
