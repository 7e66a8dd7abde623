//! The log side of `Idempotency-Key` (the HTTP side is
//! `crate::idempotency`): a keyed request's first outcome is an event in
//! the `idempotency` stream, so a retry is answered the same way also after
//! a restart.

use eventstore::{ExpectedVersion, NewEvent, StoreError};
use projections::idempotency::{CompletedRequest, COMPLETED, STREAM};

use super::App;

/// The first outcome of `key` in `project`, if it completed.
pub async fn lookup(
    app: &App,
    project: String,
    key: String,
) -> Result<Option<CompletedRequest>, StoreError> {
    app.store
        .query(move |c| projections::idempotency::get(c, &project, &key))
        .await
}

/// Records a keyed request's outcome; the first one wins.
pub async fn record(
    app: &App,
    done: CompletedRequest,
    project: &str,
    request_id: Option<String>,
) -> Result<(), StoreError> {
    let data = serde_json::to_value(&done)?;
    let metadata = serde_json::json!({
        "project_id": project,
        "request_id": request_id,
        "idempotency_key": done.key,
    });
    app.store
        .write(move |tx| {
            // The first outcome wins (see the view); skip a duplicate event.
            if projections::idempotency::get(tx.conn(), &done.project_id, &done.key)?.is_some() {
                return Ok(());
            }
            tx.append(
                STREAM,
                ExpectedVersion::Any,
                vec![NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: COMPLETED.to_string(),
                    v: 1,
                    data,
                    metadata,
                }],
            )
            .map(drop)
        })
        .await
}
