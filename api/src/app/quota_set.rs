//! Admin `PUT /os-quota-sets/{project_id}`: limits are events.

use std::collections::BTreeMap;

use domain::quota::{QuotaAggregate, QuotaCommand};
use domain::{Aggregate, DomainError};

use super::{App, AppError, Caller, RequestMeta};

pub async fn set(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    project: String,
    changes: BTreeMap<String, i64>,
) -> Result<(), AppError> {
    let known = domain::quota::keys(
        &app.catalog
            .types
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>(),
    );
    app.run(caller, meta, None, move |tx| {
        if !tx.caller.is_admin {
            return Err(AppError::refused(
                QuotaAggregate::stream_id(&project),
                DomainError::NotPermitted("only admin may change quotas.".into()),
            ));
        }
        let cmd = (project.clone(), QuotaCommand::SetLimits { changes, known });
        tx.execute::<QuotaAggregate>(&project, cmd)?;
        Ok(())
    })
    .await
}
