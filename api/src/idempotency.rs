//! `Idempotency-Key` enforced: a retried state-changing request (POST, PUT,
//! PATCH, DELETE) with the same key in the same project is answered with
//! the first outcome (same status, same body) instead of acting twice.
//!
//! The outcome of a keyed request that did not fail on our side (any
//! non-5xx status) is appended to the log (`IdempotentRequestCompleted` in
//! the `idempotency` stream) and kept in the `idempotency` view, so a retry
//! after a restart is answered the same way. The same key with another
//! method, path or body is a client bug: 409. So is a retry that arrives
//! while the first attempt is still running (an in-memory set: after a crash
//! nothing is in flight, and the log says what completed).
//!
//! Bodies of `application/octet-stream` requests (image uploads, possibly
//! gigabytes) are not buffered to be fingerprinted: those requests are not
//! checked.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use projections::idempotency::CompletedRequest;
use sha2::{Digest, Sha256};

use crate::dialects::{self, DialectRef};
use crate::{ApiError, Problem, Reason, RequestId};

/// Largest request body fingerprinted; axum's own default body limit, so
/// nothing a handler would accept is refused here.
const MAX_BODY_BYTES: usize = 2 << 20;
/// Longest key accepted; a longer one is not a key (ignored, as in `Ctx`).
const MAX_KEY_BYTES: usize = 255;

/// What the middleware needs: the log, and the keys now being served.
#[derive(Clone)]
pub struct Idempotency {
    app: crate::app::App,
    /// Who the caller is decides whose key it is.
    identity: Arc<crate::identity::Identity>,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Idempotency {
    pub fn new(app: crate::app::App, identity: Arc<crate::identity::Identity>) -> Self {
        Idempotency {
            app,
            identity,
            in_flight: Arc::default(),
        }
    }
}

/// Removes the key from the in-flight set when the request ends, also when
/// the client goes away and the future is dropped.
struct InFlight {
    set: Arc<Mutex<HashSet<(String, String)>>>,
    entry: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.entry);
    }
}

fn header_str(req: &Request, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn fingerprint(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(path_and_query.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

fn conflict(dialect: DialectRef, message: &str) -> Response {
    ApiError {
        dialect,
        problem: Problem::conflict(message),
    }
    .into_response()
}

fn replay(done: CompletedRequest) -> Response {
    let status = StatusCode::from_u16(done.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, done.body).into_response();
    let headers = resp.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Some(v) = done
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// The middleware (one layer in `router`).
pub async fn enforce(State(idem): State<Idempotency>, req: Request, next: Next) -> Response {
    let state_changing = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let key = header_str(&req, "idempotency-key")
        .filter(|k| k.len() <= MAX_KEY_BYTES)
        .map(str::to_string);
    let streamed = header_str(&req, header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("application/octet-stream"));
    let (Some(key), true, false) = (key, state_changing, streamed) else {
        return next.run(req).await;
    };
    // The layer runs inside the dialect's own (`dialects::serve`), which
    // tagged the request; the dialect says who the caller is.
    let dialect = req
        .extensions()
        .get::<DialectRef>()
        .copied()
        .unwrap_or_else(|| dialects::for_unrouted(req.uri().path()));
    let (parts, body) = req.into_parts();
    let Ok(project) = crate::identity::authenticate(&idem.app, &idem.identity, dialect, &parts)
        .await
        .map(|p| p.project_id)
    else {
        // The handler refuses it in the dialect's words.
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError {
                dialect,
                problem: Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Reason::BodyTooLarge,
                    "Request body too large.",
                ),
            }
            .into_response()
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str())
        .to_string();
    let print = fingerprint(&parts.method, &path, &bytes);

    // Claim the key first, then read the log: a first attempt that ends
    // between the two steps is then seen in the log, never missed.
    let entry = (project.clone(), key.clone());
    let _claim = {
        let mut set = idem.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(entry.clone()) {
            return conflict(
                dialect,
                "A request with this Idempotency-Key is still being processed; retry later.",
            );
        }
        InFlight {
            set: idem.in_flight.clone(),
            entry,
        }
    };
    let (p, k) = (project.clone(), key.clone());
    let done = match crate::app::idempotency::lookup(&idem.app, p, k).await {
        Ok(done) => done,
        Err(e) => {
            return ApiError {
                dialect,
                problem: e.into(),
            }
            .into_response()
        }
    };
    if let Some(done) = done {
        if done.fingerprint != print {
            return conflict(
                dialect,
                "This Idempotency-Key was used for a different request.",
            );
        }
        return replay(done);
    }

    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if resp.status().is_server_error() {
        // Ours to fix; a retry should try again, not get the failure back.
        return resp;
    }
    let (resp_parts, resp_body) = resp.into_parts();
    let Ok(body) = to_bytes(resp_body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response body lost").into_response();
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        // Not a body we can keep as text (no API answer is); do not record.
        return Response::from_parts(resp_parts, Body::from(body));
    };
    let done = CompletedRequest {
        key,
        project_id: project.clone(),
        fingerprint: print,
        status: resp_parts.status.as_u16(),
        body: text,
        content_type: resp_parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    if let Err(e) = crate::app::idempotency::record(&idem.app, done, &project, request_id).await {
        // The request itself succeeded; only its replay is lost.
        tracing::error!(error = %e, "idempotency outcome not recorded");
    }
    Response::from_parts(resp_parts, Body::from(body))
}
