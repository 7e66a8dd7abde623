//! The API: the application layer (`app`, one use case per operation) and,
//! beside it, the dialect adapters, which only translate between their wire
//! shapes and the use cases' requests and outcomes. Business rules live in
//! `domain`, views in `projections`. Each dialect owns its routes, its
//! authentication and its error rendering (`dialects`).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use domain::Catalog;
use eventstore::EventStore;

pub mod app;
pub mod console;
pub mod context;
pub mod dialects;
pub mod error;
pub mod idempotency;
pub mod identity;
pub mod input;
pub mod internal;
pub mod log_levels;
pub mod metrics;
pub mod microversion;
pub mod ops;
pub mod parse;
pub mod read_only;
pub mod render;
pub mod server;
pub mod versions;

pub use context::Ctx;
pub use dialects::glance::ImageFiles;
pub use dialects::{Dialect, DialectRef};
pub use error::{ApiError, Problem, Reason};

/// A list request's query string, or why it could not be read.
pub type QueryParams = Result<
    axum::extract::Query<std::collections::HashMap<String, String>>,
    axum::extract::rejection::QueryRejection,
>;

/// A volume's work in progress (percent), as the executor reports it.
pub type Progress = Arc<dyn Fn(uuid::Uuid) -> Option<u8> + Send + Sync>;

/// What every handler reads, behind one `Arc`: axum clones the state into
/// each request (the route's service, then the `State` extractor), and a
/// struct of seven `Arc`s cost fourteen contended atomic operations a
/// request where one pointer costs two (its drop was 2% of the HTTP
/// workers' time at 64 clients, perf, issue 11).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl From<Shared> for AppState {
    fn from(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: EventStore,
    pub catalog: Arc<Catalog>,
    /// Where a volume's current bytes are on the data dir's own storage
    /// (the seed backends'), for ZStack's snapshot inventory. Cinder's
    /// connection info comes from the volume's backend as registered in
    /// the log (`app::backends::connection_info`), whichever storage it
    /// is on.
    pub connector: Arc<dyn Fn(uuid::Uuid) -> Connection + Send + Sync>,
    /// Image bytes (the executor's image store).
    pub images: Arc<dyn ImageFiles>,
    /// Percent done of a running image copy, held by the executor: the log
    /// records start and end, not every percent.
    pub progress: Progress,
    /// Where a snapshot's frozen bytes are (ZStack's
    /// `primaryStorageInstallPath`): the backend's layout, reported only.
    pub snapshot_file: Arc<dyn Fn(uuid::Uuid) -> String + Send + Sync>,
    /// How long a dialect documented as synchronous (ZStack) waits for the
    /// disk work before answering that it is still running (`serve
    /// --sync-deadline-ms`).
    pub sync_deadline: std::time::Duration,
    /// How callers authenticate (`serve --auth`), token lifetime, and the
    /// failed-password counters (issue 13).
    pub identity: Arc<identity::Identity>,
}

impl Shared {
    /// The application layer over this state's log and catalog.
    pub fn app(&self) -> app::App {
        app::App {
            store: self.store.clone(),
            catalog: self.catalog.clone(),
        }
    }
}

/// os-brick "local" connector data for one volume.
#[derive(Clone, Debug)]
pub struct Connection {
    pub device_path: String,
    pub format: &'static str,
}

/// Request ids: every response carries `x-openstack-request-id: req-<uuid>`
/// (and Cinder's, `x-compute-request-id` too),
/// and the same id goes into the metadata of the events the request appends.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Also the request's tracing span (everything logged while serving it
/// carries the request id) and its access-log line (target `access`, so
/// `RUST_LOG=info,access=off` silences it).
async fn request_id(mut req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    metrics::record_request(method.as_str(), &resp, elapsed);
    let elapsed_us = elapsed.as_micros() as u64;
    span.in_scope(|| {
        tracing::info!(target: "access", status = resp.status().as_u16(), elapsed_us, "served");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        // Cinder's routes also carry the id as `x-compute-request-id`, the
        // header python-cinderclient reports with an error (issue 12).
        if path.starts_with("/v3/") || path.starts_with("/v2/") {
            resp.headers_mut().insert("x-compute-request-id", v.clone());
        }
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}

/// No route matched: 404 in the body of the dialect whose prefix the path
/// carries.
async fn fallback(req: Request) -> Response {
    let dialect = dialects::for_unrouted(req.uri().path());
    ApiError {
        dialect,
        problem: Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.",
        ),
    }
    .into_response()
}

/// Every Cinder route family under one version prefix.
fn cinder_family(prefix: &str) -> Router<AppState> {
    use dialects::cinder::{
        admin, catalog, clusters, default_types, groups, limits, messages, qos, resource_filters,
        snapshots, summary, transfers, types, volumes, workers,
    };
    volumes::routes(prefix)
        .merge(default_types::routes(prefix))
        .merge(dialects::cinder::attachments::routes(prefix))
        .merge(types::routes(prefix))
        .merge(qos::routes(prefix))
        .merge(snapshots::routes(prefix))
        .merge(catalog::routes(prefix))
        .merge(transfers::routes(prefix))
        .merge(limits::routes(prefix))
        .merge(admin::routes(prefix))
        .merge(messages::routes(prefix))
        .merge(groups::routes(prefix))
        .merge(clusters::routes(prefix))
        .merge(workers::routes(prefix))
        .merge(summary::routes(prefix))
        .merge(resource_filters::routes(prefix))
}

pub fn router(state: AppState) -> Router {
    router_with(state, None)
}

/// `router`, with the internal API for remote executors when the server
/// has their key (`serve --executor-key-file`; `internal`).
pub fn router_with(state: AppState, executor_key: Option<internal::ExecutorKey>) -> Router {
    use dialects::{cinder::CINDER, evs, glance, serve};
    // Installed before the first request, so every route is recorded.
    metrics::handle();
    let idem = &idempotency::Idempotency::new(state.app(), state.identity.clone());
    // Microversion 3.67: every `/v3` route also without the project id
    // (the caller's token names it). Cinder's router maps both forms at
    // every version; 3.67 only tells clients they may rely on it.
    let v3 = cinder_family("/v3/{project_id}")
        .merge(cinder_family("/v3"))
        .layer(middleware::from_fn(microversion::negotiate));
    Router::new()
        // Tagged too, so a 405 there is a JSON fault like any other.
        .merge(serve(versions::routes(), &CINDER, idem))
        .merge(serve(cinder_family("/v2/{project_id}"), &CINDER, idem))
        .merge(serve(v3, &CINDER, idem))
        .merge(serve(
            evs::rollback::routes().merge(evs::volumes::routes()),
            &evs::EVS,
            idem,
        ))
        .merge(serve(dialects::idc::routes(), &dialects::idc::IDC, idem))
        .merge(serve(
            dialects::luna::routes().layer(middleware::from_fn(identity::params_credential)),
            &dialects::luna::LUNA,
            idem,
        ))
        .merge(serve(
            dialects::zstack::routes(),
            &dialects::zstack::ZSTACK,
            idem,
        ))
        .merge(serve(dialects::nova::routes(), &dialects::nova::NOVA, idem))
        .merge(serve(glance::routes(), &glance::GLANCE, idem))
        .merge(serve(ops::routes(), &CINDER, idem))
        .merge(serve(
            identity::keystone::routes(),
            &identity::keystone::KEYSTONE,
            idem,
        ))
        // The web console (issue 14): static files; it calls the routes above.
        .merge(console::routes())
        .merge(internal::routes(executor_key))
        .route_layer(middleware::from_fn(metrics::tag_route))
        .fallback(fallback)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}
