//! Admin quota changes: `PUT` and `DELETE /os-quota-sets/{project_id}`,
//! `PUT /os-quota-class-sets/{class}`. Limits are events.

use std::collections::BTreeMap;

use domain::quota::{QuotaAggregate, QuotaClassAggregate, QuotaCommand};
use domain::{Aggregate, DomainError};

use super::{App, AppError, Caller, RequestMeta};

/// Every quota key of the configured volume types.
fn known_keys(app: &App) -> Vec<String> {
    domain::quota::keys(
        &app.catalog
            .types
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>(),
    )
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
    let known = known_keys(app);
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(admin_only(QuotaAggregate::stream_id(&project)));
        }
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
    let known = known_keys(app);
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(admin_only(QuotaClassAggregate::stream_id(&class_name)));
        }
        tx.execute::<QuotaClassAggregate>(&class_name, (class_name.clone(), changes, known))?;
        Ok(())
    })
    .await
}
