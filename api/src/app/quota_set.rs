//! Admin quota changes: `PUT` and `DELETE /os-quota-sets/{project_id}`,
//! `PUT /os-quota-class-sets/{class}`. Limits are events.

use std::collections::BTreeMap;

use domain::quota::{QuotaAggregate, QuotaClassAggregate, QuotaClassCommand, QuotaCommand};
use domain::{Aggregate, DomainError};

use super::{App, AppError, Caller, RequestMeta};

/// Every quota key of the volume types (the volume types view), as of
/// this transaction.
fn known_keys(conn: &eventstore::rusqlite::Connection) -> Result<Vec<String>, AppError> {
    let names: Vec<String> = projections::volume_types::list(conn)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    Ok(domain::quota::keys(&names))
}

fn admin_only(stream: String) -> AppError {
    AppError::refused(
        stream,
        DomainError::NotPermitted("only admin may change quotas.".into()),
    )
}

pub async fn set(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    project: String,
    changes: BTreeMap<String, i64>,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(admin_only(QuotaAggregate::stream_id(&project)));
        }
        let known = known_keys(tx.conn())?;
        let cmd = (project.clone(), QuotaCommand::SetLimits { changes, known });
        tx.execute::<QuotaAggregate>(&project, cmd)?;
        Ok(())
    })
    .await
}

/// The project's own limits go; the defaults apply again.
pub async fn reset(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    project: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(admin_only(QuotaAggregate::stream_id(&project)));
        }
        tx.execute::<QuotaAggregate>(&project, (project.clone(), QuotaCommand::Reset))?;
        Ok(())
    })
    .await
}

/// A quota class's limits; the `default` class's are every project's
/// defaults.
pub async fn set_class(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    class_name: String,
    changes: BTreeMap<String, i64>,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(admin_only(QuotaClassAggregate::stream_id(&class_name)));
        }
        let known = known_keys(tx.conn())?;
        tx.execute::<QuotaClassAggregate>(
            &class_name,
            QuotaClassCommand::SetLimits {
                class_name: class_name.clone(),
                changes,
                known,
            },
        )?;
        Ok(())
    })
    .await
}
