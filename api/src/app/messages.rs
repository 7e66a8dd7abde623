//! User messages (Cinder 3.3): reads of the messages view and the one
//! change, a delete. The view is the caller's project's messages (an
//! admin's: every project's, as Cinder's admin context reads them);
//! another project's message is not found, like a missing one.

use domain::message::{MessageAggregate, MessageCommand};
use domain::DomainError;
use projections::messages::{MessageQuery, MessageRow};

use super::{App, AppError, Caller, RequestMeta};

fn not_found(id: &str) -> AppError {
    AppError::refused(String::new(), DomainError::MessageNotFound(id.to_string()))
}

/// The project a caller reads messages of (None: all).
pub fn scope(caller: &Caller) -> Option<String> {
    (!caller.is_admin).then(|| caller.project_id.clone())
}

pub async fn get(app: &App, caller: &Caller, raw: &str) -> Result<MessageRow, AppError> {
    let id = crate::input::uuid(raw).ok_or_else(|| not_found(raw))?;
    let scope = scope(caller);
    app.read(move |c| projections::messages::get(c, &id.to_string(), scope.as_deref()))
        .await?
        .ok_or_else(|| not_found(raw))
}

/// `q.project_id` is set by the caller's scope here, whatever was asked.
pub async fn list(
    app: &App,
    caller: &Caller,
    mut q: MessageQuery,
) -> Result<Vec<MessageRow>, AppError> {
    q.project_id = scope(caller);
    let marker = q.marker.clone().unwrap_or_default();
    app.read(move |c| projections::messages::list(c, &q))
        .await?
        .ok_or_else(|| not_found(&marker))
}

/// Deletes message `raw`: a `MessageDeleted` event, the view drops it.
pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: &str,
) -> Result<(), AppError> {
    let Some(id) = crate::input::uuid(raw) else {
        return Err(not_found(raw));
    };
    app.run(caller, meta, None, move |tx| {
        let scope = scope(tx.caller);
        let exists =
            projections::messages::get(tx.conn(), &id.to_string(), scope.as_deref())?.is_some();
        tx.execute::<MessageAggregate>(
            &id.to_string(),
            MessageCommand::Delete {
                message_id: id,
                exists,
            },
        )?;
        Ok(())
    })
    .await
}
