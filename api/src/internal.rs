//! The internal API for remote executors (issue 16), under `/internal/v1/`
//! on the server's listener: what `executor::remote::RemoteLog` calls.
//!
//! - `GET  events?after=P&limit=N&wait_ms=W`: events after position P, at
//!   most N (bounded by `MAX_BATCH`); when there are none yet, waits up to
//!   W ms (bounded by `MAX_WAIT`) for the head to move: a long poll.
//! - `GET  streams/{stream}[?after=P&limit=N]`: one stream.
//! - `GET|PUT checkpoints/{name}`: an executor's checkpoint (PUT moves it
//!   forward only).
//! - `POST outcomes`: an outcome, applied by the same rule as the embedded
//!   executor's (`app::work_lease::append_outcome`).
//! - `POST|PUT leases/{item}`: claim / renew the lease on a work item.
//! - `PUT backends/{name}` and `backends/{name}/capacity`: the backend an
//!   executor serves, registered as it starts, and its capacity (H1's use
//!   cases, `app::backends`).
//!
//! Authenticated with a shared secret (`serve --executor-key-file F`), sent
//! as `Authorization: Bearer <key>`. The server keeps only the key's
//! SHA-256, compares digests in constant time, and never logs or records
//! the key. Without a key configured these routes do not exist (404, like
//! any unknown path): an executor cannot be let in by a default.
//!
//! Checkpoints reachable here are the executors' own (`executor-…`): the
//! embedded executor's (`executor`) and the views' are not an executor
//! process's to move.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use executor::remote::{
    BackendRegistration, CapacityReport, Events, LeaseRequest, OutcomeRequest, Position, Renewed,
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::{backends, work_lease, AppError};
use crate::AppState;

/// Events per answer, whatever the executor asks.
pub const MAX_BATCH: usize = 1024;
/// Longest long poll: below common proxy idle timeouts.
pub const MAX_WAIT: Duration = Duration::from_secs(25);
/// Longest lease a claim may ask for.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// The SHA-256 of the executors' shared secret. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct ExecutorKey([u8; 32]);

impl std::fmt::Debug for ExecutorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutorKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the executor key file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("the executor key file {0} is empty (or too short: 16 bytes at least)")]
    TooShort(String),
}

impl ExecutorKey {
    /// The key in `secret`, without surrounding white space (a file ends
    /// with a newline). At least 16 bytes: a guessable key is no key.
    pub fn from_secret(secret: &str) -> Option<Self> {
        let s = secret.trim();
        (s.len() >= 16).then(|| ExecutorKey(Sha256::digest(s.as_bytes()).into()))
    }

    /// Reads the key file (only its hash stays in memory).
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read(shown.clone(), e))?;
        Self::from_secret(&text).ok_or(KeyError::TooShort(shown))
    }

    /// Constant time: the digests are compared whole, byte by byte, so the
    /// time taken says nothing about how much of a guess was right.
    fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        d.iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The internal routes; none without a key.
pub fn routes(key: Option<ExecutorKey>) -> Router<AppState> {
    let Some(key) = key else {
        return Router::new();
    };
    let key = Arc::new(key);
    Router::new()
        .route("/internal/v1/events", get(events))
        .route("/internal/v1/streams/{stream}", get(stream))
        .route(
            "/internal/v1/checkpoints/{name}",
            get(checkpoint).put(advance_checkpoint),
        )
        .route("/internal/v1/outcomes", post(outcome))
        .route("/internal/v1/leases/{item}", post(claim).put(renew))
        .route("/internal/v1/backends/{name}", put(register_backend))
        .route(
            "/internal/v1/backends/{name}/capacity",
            put(report_capacity),
        )
        .route_layer(middleware::from_fn(move |req: Request, next: Next| {
            let key = key.clone();
            async move { authenticate(&key, req, next).await }
        }))
}

async fn authenticate(key: &ExecutorKey, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if key.matches(p) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "executor key missing or wrong" })),
        )
            .into_response(),
    }
}

/// An internal failure, as JSON.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        let status = match &e {
            // The domain refused (e.g. a malformed backend name).
            AppError::Refused(_) => StatusCode::BAD_REQUEST,
            AppError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.to_string())
    }
}

impl From<eventstore::StoreError> for Failure {
    fn from(e: eventstore::StoreError) -> Self {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// An executor's name (a lease holder, the tail of its checkpoint name):
/// 1..=128 of ASCII letters, digits and `-_.@#`.
fn executor_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@#".contains(c))
}

/// A position an executor names (a work item, a checkpoint, a handled
/// item) is one the log has: the head only grows, so a check before the
/// write holds at the write. Past the head, a checkpoint would skip work
/// not yet requested.
fn in_log(state: &AppState, what: &str, position: u64) -> Result<(), Failure> {
    let mut head = *state.store.subscribe().borrow();
    if position > head {
        // The published head lags a commit by a moment (it is sent after
        // COMMIT returns), while a reader already sees the committed rows:
        // an executor that read an event in that window names a position
        // the watch does not know yet. The log itself decides (the bench
        // hit this: "work item 1823 is past the log's head 1822").
        head = state.store.head()?;
    }
    if position > head {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("{what} {position} is past the log's head {head}"),
        ));
    }
    Ok(())
}

fn own_checkpoint(name: &str) -> Result<(), Failure> {
    let ok = name.strip_prefix("executor-").is_some_and(executor_name);
    if ok {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("checkpoint {name:?} is not an executor's (executor-<name>)"),
        ))
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    #[serde(default)]
    wait_ms: u64,
}

async fn events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Events>, Failure> {
    let limit = q.limit.unwrap_or(MAX_BATCH).clamp(1, MAX_BATCH);
    let store = &state.store;
    // Subscribed before the read, so a commit between the read and the
    // wait still wakes it.
    let mut head = store.subscribe();
    let mut batch = store.read_from_async(q.after, limit).await?;
    if batch.is_empty() && q.wait_ms > 0 {
        let wait = Duration::from_millis(q.wait_ms).min(MAX_WAIT);
        // The guard `wait_for` returns is not Send: drop it at once.
        let moved = matches!(
            tokio::time::timeout(wait, head.wait_for(|h| *h > q.after)).await,
            Ok(Ok(_))
        );
        if moved {
            batch = store.read_from_async(q.after, limit).await?;
        }
    }
    let head = *head.borrow();
    Ok(Json(Events {
        events: batch,
        head,
    }))
}

#[derive(Deserialize)]
struct StreamQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Json<Events>, Failure> {
    let events = match (q.after, q.limit) {
        (None, None) => state.store.read_stream_async(&stream).await?,
        (after, limit) => {
            state
                .store
                .read_stream_after_async(&stream, after.unwrap_or(0), limit.unwrap_or(MAX_BATCH))
                .await?
        }
    };
    let head = *state.store.subscribe().borrow();
    Ok(Json(Events { events, head }))
}

async fn checkpoint(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Position>, Failure> {
    own_checkpoint(&name)?;
    let position = state.store.checkpoint_async(&name).await?;
    Ok(Json(Position { position }))
}

async fn advance_checkpoint(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(p): Json<Position>,
) -> Result<StatusCode, Failure> {
    own_checkpoint(&name)?;
    in_log(&state, "checkpoint", p.position)?;
    work_lease::advance_checkpoint(&state.app(), name, p.position).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn outcome(
    State(state): State<AppState>,
    Json(req): Json<OutcomeRequest>,
) -> Result<Response, Failure> {
    own_checkpoint(&req.outcome.checkpoint)?;
    for (what, p) in [
        ("handled item", req.outcome.handled),
        ("low-water mark", req.mark),
        ("leased item", req.outcome.lease.as_ref().map(|l| l.item)),
    ] {
        if let Some(p) = p {
            in_log(&state, what, p)?;
        }
    }
    let unleased = req
        .outcome
        .lease
        .as_ref()
        .is_none_or(|l| l.holder.is_empty());
    if req.outcome.handled.is_some() && unleased {
        // A remote executor handles items under a lease: without one, two
        // executors of a backend could both record an item's outcome.
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "an outcome from a remote executor names its lease".into(),
        ));
    }
    let applied = work_lease::append_outcome(&state.app(), req.outcome, req.mark).await?;
    Ok(Json(applied).into_response())
}

fn lease_args(req: &LeaseRequest) -> Result<Duration, Failure> {
    let ttl = Duration::from_millis(req.ttl_ms);
    if !executor_name(&req.holder) || ttl.is_zero() || ttl > MAX_TTL {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "a lease needs a holder (1..128 of letters, digits, -_.@#) and ttl_ms in 1..={}",
                MAX_TTL.as_millis()
            ),
        ));
    }
    Ok(ttl)
}

async fn claim(
    State(state): State<AppState>,
    Path(item): Path<u64>,
    Json(req): Json<LeaseRequest>,
) -> Result<Response, Failure> {
    let ttl = lease_args(&req)?;
    in_log(&state, "work item", item)?;
    let claim = work_lease::claim(&state.app(), item, req.holder, ttl).await?;
    Ok(Json(claim).into_response())
}

async fn renew(
    State(state): State<AppState>,
    Path(item): Path<u64>,
    Json(req): Json<LeaseRequest>,
) -> Result<Json<Renewed>, Failure> {
    let ttl = lease_args(&req)?;
    in_log(&state, "work item", item)?;
    let renewed = work_lease::renew(&state.app(), item, req.holder, ttl).await?;
    Ok(Json(Renewed { renewed }))
}

/// `PUT backends/{name}`: the executor serving `name` registers it
/// (`app::backends::register`: recorded only when new or changed).
async fn register_backend(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(r): Json<BackendRegistration>,
) -> Result<Json<serde_json::Value>, Failure> {
    let registration = domain::backend::Registration {
        name: name.clone(),
        kind: r.kind,
        storage_protocol: r.storage_protocol,
        connection: r.connection,
    };
    let recorded = backends::register(
        &state.app(),
        &backends::service_caller(&name),
        &backends::service_meta("PUT /internal/v1/backends/{name}"),
        registration,
    )
    .await?;
    Ok(Json(json!({ "recorded": recorded })))
}

/// `PUT backends/{name}/capacity` (`app::backends::report_capacity`:
/// recorded only when it moved enough).
async fn report_capacity(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(c): Json<CapacityReport>,
) -> Result<Json<serde_json::Value>, Failure> {
    let capacity = domain::backend::Capacity {
        total_bytes: c.total_bytes,
        free_bytes: c.free_bytes,
    };
    let recorded = backends::report_capacity(
        &state.app(),
        &backends::service_caller(&name),
        &backends::service_meta("PUT /internal/v1/backends/{name}/capacity"),
        name,
        capacity,
    )
    .await?;
    Ok(Json(json!({ "recorded": recorded })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_matches_only_itself_and_is_never_shown() {
        let k = ExecutorKey::from_secret("0123456789abcdef-secret\n").unwrap();
        assert!(k.matches("0123456789abcdef-secret"));
        assert!(!k.matches("0123456789abcdef-secreT"));
        assert!(!k.matches(""));
        assert_eq!(format!("{k:?}"), "ExecutorKey(..)");
        assert!(ExecutorKey::from_secret("short\n").is_none());
    }

    #[test]
    fn only_executor_checkpoints_are_reachable() {
        assert!(own_checkpoint("executor-remote-1").is_ok());
        assert!(own_checkpoint("executor").is_err());
        assert!(own_checkpoint("executor-").is_err());
        assert!(own_checkpoint("audit").is_err());
    }
}
