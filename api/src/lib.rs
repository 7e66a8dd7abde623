//! HTTP adapters. One module per dialect; each only translates between its
//! wire shapes and the domain's commands and the projections' views. Business
//! rules live in `domain`, views in `projections`.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use domain::Catalog;
use eventstore::EventStore;

pub mod catalog;
pub mod cinder;
pub mod commands;
pub mod context;
pub mod error;
pub mod evs;
pub mod idempotency;
pub mod images;
pub mod input;
pub mod metadata;
pub mod microversion;
pub mod ops;
pub mod render;
pub mod snapshots;
pub mod transfers;
pub mod upload;
pub mod versions;

pub use context::{Ctx, Dialect};
pub use error::{ApiError, Problem};

/// A list request's query string, or why it could not be read.
pub type QueryParams = Result<
    axum::extract::Query<std::collections::HashMap<String, String>>,
    axum::extract::rejection::QueryRejection,
>;

#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub catalog: Arc<Catalog>,
    /// Where a volume's current bytes are, for `os-initialize_connection`:
    /// the storage backend knows its layout, the API only reports it.
    pub connector: Arc<dyn Fn(uuid::Uuid) -> Connection + Send + Sync>,
    /// Image bytes (the executor's image store).
    pub images: Arc<dyn images::ImageFiles>,
    /// Percent done of a running image copy, held by the executor: the log
    /// records start and end, not every percent.
    pub progress: Arc<dyn Fn(uuid::Uuid) -> Option<u8> + Send + Sync>,
}

/// os-brick "local" connector data for one volume.
#[derive(Clone, Debug)]
pub struct Connection {
    pub device_path: String,
    pub format: &'static str,
}

/// Request ids: every response carries `x-openstack-request-id: req-<uuid>`,
/// and the same id goes into the metadata of the events the request appends.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    let dialect = Dialect::from_path(req.uri().path());
    let mut resp = next.run(req).await;
    // Rejections made by axum itself (a body over the size limit, a method
    // a route does not serve) come as plain text: give them the dialect's
    // error body like every other refusal.
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request body too large.".to_string(),
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed on this resource.".to_string(),
            s => s.canonical_reason().unwrap_or("Error").to_string(),
        };
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "EVS.5413"
        } else {
            "EVS.5400"
        };
        resp = ApiError {
            dialect,
            problem: Problem::new(status, code, message),
        }
        .into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}

async fn fallback(req: Request) -> Response {
    let dialect = Dialect::from_path(req.uri().path());
    ApiError {
        dialect,
        problem: Problem::new(
            StatusCode::NOT_FOUND,
            "EVS.5404",
            "The resource could not be found.",
        ),
    }
    .into_response()
}

/// Every Cinder route family under one version prefix.
fn cinder_family(prefix: &str) -> Router<AppState> {
    cinder::routes(prefix)
        .merge(snapshots::routes(prefix))
        .merge(catalog::routes(prefix))
        .merge(transfers::routes(prefix))
}

pub fn router(state: AppState) -> Router {
    let idem = idempotency::Idempotency::new(state.store.clone());
    let v3 = cinder_family("/v3/{project_id}").layer(middleware::from_fn(microversion::negotiate));
    Router::new()
        .merge(versions::routes())
        .merge(cinder_family("/v2/{project_id}"))
        .merge(snapshots::evs_routes())
        .merge(v3)
        .merge(evs::routes())
        .merge(images::routes())
        .merge(ops::routes())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(idem, idempotency::enforce))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}
