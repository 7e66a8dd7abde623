//! Backends as data (issue 16): whoever serves a backend (the embedded
//! executors of `serve`, a remote executor through the internal API)
//! registers it at start and reports its capacity at start and
//! periodically. Each is one command on the backend's aggregate; the
//! domain decides whether anything is new enough to record, so a restart
//! or a quiet disk appends nothing. And the reads of the backends view
//! the dialects describe backends from.

use std::collections::HashMap;

use domain::backend::{BackendAggregate, BackendCommand, Capacity, Registration};
use projections::backends::BackendRow;

use super::{App, AppError, Caller, RequestMeta};

/// The caller a backend's own server acts as (the embedded executors have
/// no credential: they are this process).
pub fn service_caller(backend: &str) -> Caller {
    Caller {
        user_id: format!("executor:{backend}"),
        project_id: String::new(),
        is_admin: true,
        role: domain::identity::Role::Admin,
    }
}

/// Event metadata of a backend's own report (no HTTP request behind it).
pub fn service_meta(route: &str) -> RequestMeta {
    RequestMeta {
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        dialect: "executor",
        route: route.to_string(),
        idempotency_key: None,
        remote_addr: None,
    }
}

/// Registers `r` (appended only if it differs from the log's). Whether an
/// event was appended.
pub async fn register(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: Registration,
) -> Result<bool, AppError> {
    app.run(caller, meta, None, move |tx| {
        let name = r.name.clone();
        let appended = tx.execute::<BackendAggregate>(&name, BackendCommand::Register(r))?;
        Ok(!appended.is_empty())
    })
    .await
}

/// Reports backend `name`'s capacity (appended only when it moved enough,
/// `domain::backend::moved_enough`). Whether an event was appended.
pub async fn report_capacity(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    name: String,
    capacity: Capacity,
) -> Result<bool, AppError> {
    app.run(caller, meta, None, move |tx| {
        let appended =
            tx.execute::<BackendAggregate>(&name, BackendCommand::ReportCapacity(capacity))?;
        Ok(!appended.is_empty())
    })
    .await
}

/// Every registered backend (the view's rows, in registration order).
pub async fn list(app: &App) -> Result<Vec<BackendRow>, AppError> {
    app.read(projections::backends::list).await
}

/// Cinder's `connection_info` for each of `volumes` whose backend is
/// registered, from the backend's template (one read for them all). A
/// volume that is gone, or whose backend is not registered, has none.
pub async fn connection_info(
    app: &App,
    volumes: Vec<uuid::Uuid>,
) -> Result<HashMap<uuid::Uuid, serde_json::Value>, AppError> {
    app.read(move |c| {
        let backends: HashMap<String, BackendRow> = projections::backends::list(c)?
            .into_iter()
            .map(|b| (b.name.clone(), b))
            .collect();
        let mut out = HashMap::new();
        for id in volumes {
            let Some(v) = projections::volumes::get(c, &id.to_string())? else {
                continue;
            };
            if let Some(b) = backends.get(&v.backend) {
                out.insert(id, b.connection_info(id));
            }
        }
        Ok(out)
    })
    .await
}
