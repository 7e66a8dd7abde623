//! Operations routes (DESIGN.md URL map): `/healthz`, `/metrics`, and the
//! audit trail (issue 14): `GET /{v2,v3}/{project_id}/events` (every
//! request, accepted or refused, with who, from where, how and its hash;
//! scoped by role, filtered, paged by position), a volume's or snapshot's
//! `…/history` (optionally `as_of` an instant, with its folded state) and
//! the log's `…/events/digest`. The rules are `app::events`'.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use serde_json::{json, Value};

use crate::app::events::{self, AsOf, Kind, ListRequest};
use crate::app::queries;
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v2/{project_id}/events", get(events))
        .route("/v3/{project_id}/events", get(events))
        .route("/v2/{project_id}/events/digest", get(digest))
        .route("/v3/{project_id}/events/digest", get(digest))
        .route(
            "/v2/{project_id}/volumes/{volume_id}/history",
            get(volume_history),
        )
        .route(
            "/v3/{project_id}/volumes/{volume_id}/history",
            get(volume_history),
        )
        .route(
            "/v2/{project_id}/snapshots/{snapshot_id}/history",
            get(snapshot_history),
        )
        .route(
            "/v3/{project_id}/snapshots/{snapshot_id}/history",
            get(snapshot_history),
        )
}

/// Prometheus text (no ids, no names: counts and timings only), for an
/// admin token in keystone mode (issue 13), open in noauth mode. First
/// what the database says at this instant: the log's head, each subscriber's durable checkpoint and how far it lags (the
/// views are inline projections, applied in the append's own transaction,
/// so theirs is the head by construction), and the views' sizes by status;
/// then what the process recorded (`crate::metrics`): request latencies
/// per route and status, executor queue and steps, group-commit batches.
async fn metrics(_: crate::identity::Operator, State(state): State<AppState>) -> Response {
    match queries::gauges(&state.app()).await {
        Ok(g) => {
            let mut out = String::new();
            out.push_str("# TYPE blockledger_log_head_position gauge\n");
            out.push_str(&format!("blockledger_log_head_position {}\n", g.head));
            out.push_str("# TYPE blockledger_executor_checkpoint_position gauge\n");
            out.push_str(&format!(
                "blockledger_executor_checkpoint_position {}\n",
                g.executor_checkpoint
            ));
            let mut checkpoints = vec![("projections".to_owned(), g.head)];
            checkpoints.extend(g.checkpoints);
            out.push_str("# TYPE blockledger_checkpoint_position gauge\n");
            for (name, pos) in &checkpoints {
                out.push_str(&format!(
                    "blockledger_checkpoint_position{{name=\"{name}\"}} {pos}\n"
                ));
            }
            out.push_str(
                "# HELP blockledger_checkpoint_lag_events Log head minus the checkpoint.\n",
            );
            out.push_str("# TYPE blockledger_checkpoint_lag_events gauge\n");
            for (name, pos) in &checkpoints {
                out.push_str(&format!(
                    "blockledger_checkpoint_lag_events{{name=\"{name}\"}} {}\n",
                    g.head - pos
                ));
            }
            for (view, status, n) in g.by_status {
                out.push_str(&format!("blockledger_{view}{{status=\"{status}\"}} {n}\n"));
            }
            if let Some(h) = crate::metrics::handle() {
                out.push_str(&h.render());
            }
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

fn bad(field: &'static str, message: &str) -> DomainError {
    DomainError::invalid(field, FieldReason::Invalid, message)
}

fn position(q: &HashMap<String, String>, key: &'static str) -> Result<Option<u64>, DomainError> {
    q.get(key)
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| bad(key, &format!("{key} must be a position (integer >= 0).")))
        })
        .transpose()
}

fn instant(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn time(q: &HashMap<String, String>, key: &'static str) -> Result<Option<i64>, DomainError> {
    q.get(key)
        .map(|raw| {
            instant(raw)
                .map(|t| t.timestamp_micros())
                .ok_or_else(|| bad(key, &format!("{key} must be an RFC 3339 time.")))
        })
        .transpose()
}

/// `limit`: 1–1000, `default` if absent.
fn page_limit(q: &HashMap<String, String>, default: usize) -> Result<usize, DomainError> {
    match q.get("limit") {
        None => Ok(default),
        some => input::limit(some.map(String::as_str)),
    }
}

/// The listing's filters, as `app::events` takes them.
fn list_request(ctx: &Ctx, q: &HashMap<String, String>) -> Result<ListRequest, DomainError> {
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let refused = match q.get("outcome").map(String::as_str) {
        None | Some("") => None,
        Some("accepted") => Some(false),
        Some("refused") => Some(true),
        Some(_) => return Err(bad("outcome", "outcome must be accepted or refused.")),
    };
    let all_projects = match q.get("all_projects").map(String::as_str) {
        Some("true" | "True" | "1") => true,
        Some("false" | "False" | "0") => false,
        Some(_) => return Err(bad("all_projects", "all_projects must be true or false.")),
        // The admin listing under /v2 has shown the whole log since issue
        // 2 (operators and tests page through it); /v3 answers the URL's
        // project unless asked for all (contract14.md, DEVIATIONS).
        None => ctx.is_admin && ctx.api_version == "v2",
    };
    Ok(ListRequest {
        filter: eventstore::query::Filter {
            after: position(q, "after")?.unwrap_or(0),
            limit: page_limit(q, 100)?,
            resource_type: text("resource_type"),
            resource_id: text("resource_id"),
            event_type: text("event_type"),
            refused,
            user_id: text("user_id"),
            request_id: text("request_id"),
            stream_id: text("stream"),
            since_us: time(q, "since")?,
            until_us: time(q, "until")?,
            ..Default::default()
        },
        all_projects,
    })
}

/// The same question's next page: every parameter kept, `after` moved.
fn next_link(q: &HashMap<String, String>, path: &str, last: u64) -> String {
    let mut params: Vec<(&str, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "after")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    params.sort();
    params.insert(0, ("after", last.to_string()));
    let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
    // Relative, as the contract with the console has it (contract14.md).
    format!("{path}?{encoded}")
}

fn page_body(q: &HashMap<String, String>, path: &str, page: &events::Page) -> Value {
    let last = page.events.last().map(|e| e.position);
    let next = match last {
        Some(l) if page.more => json!(next_link(q, path, l)),
        _ => Value::Null,
    };
    json!({
        "events": page.events.iter().map(events::event_json).collect::<Vec<_>>(),
        "next": next,
        // The admin listing's cursor since issue 2.
        "next_after": last,
    })
}

/// The request's path without its query.
fn path_of(ctx: &Ctx) -> String {
    ctx.route
        .split_once(' ')
        .map_or(ctx.route.as_str(), |(_, p)| p)
        .to_string()
}

/// `GET /{v2,v3}/{project_id}/events`: a page of the caller's project's
/// events (an admin's: the URL project's, or every project's with
/// `all_projects=true`; under /v2 an admin sees all by default).
async fn events(State(state): State<AppState>, ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let q = query(&ctx, q)?;
    let req = list_request(&ctx, &q).map_err(|e| ctx.err(e))?;
    let page = events::list(&state.app(), &ctx.caller(), req)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(page_body(&q, &path_of(&ctx), &page)).into_response())
}

/// `GET …/events/digest` (admin): the head's position and hash, and
/// whether the chain holds up to it.
async fn digest(State(state): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    let d = events::digest(&state.app(), &ctx.caller())
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({"digest": {
        "position": d.position,
        "hash": d.hash,
        "recorded_at": d.recorded_at.as_ref().map(events::time_text),
        "verified": d.verified,
        "detail": d.detail,
    }}))
    .into_response())
}

async fn volume_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    q: Q,
) -> Result<Response, ApiError> {
    let id = p.get("volume_id").cloned().unwrap_or_default();
    history(state, ctx, Kind::Volume, &id, q).await
}

async fn snapshot_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    q: Q,
) -> Result<Response, ApiError> {
    let id = p.get("snapshot_id").cloned().unwrap_or_default();
    history(state, ctx, Kind::Snapshot, &id, q).await
}

/// One resource's life, the refusals that named it included; with
/// `as_of` (a position or an RFC 3339 time) only up to that instant, with
/// the state the domain folds from it.
async fn history(
    state: AppState,
    ctx: Ctx,
    kind: Kind,
    raw_id: &str,
    q: Q,
) -> Result<Response, ApiError> {
    let q = query(&ctx, q)?;
    let missing = || match kind {
        Kind::Volume => DomainError::VolumeNotFound(raw_id.to_string()),
        Kind::Snapshot => DomainError::SnapshotNotFound(raw_id.to_string()),
    };
    let id = input::uuid(raw_id).ok_or_else(|| ctx.err(missing()))?;
    let parsed = (|| -> Result<_, DomainError> {
        let as_of = match q.get("as_of") {
            None => None,
            Some(raw) => Some(match raw.parse::<u64>() {
                Ok(p) => AsOf::Position(p),
                Err(_) => AsOf::Time(instant(raw).ok_or_else(|| {
                    bad("as_of", "as_of must be a position or an RFC 3339 time.")
                })?),
            }),
        };
        Ok((
            as_of,
            position(&q, "after")?.unwrap_or(0),
            page_limit(&q, 1000)?,
        ))
    })();
    let (as_of, after, limit) = parsed.map_err(|e| ctx.err(e))?;
    let h = events::history(&state.app(), &ctx.caller(), kind, id, as_of, after, limit)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut body = page_body(&q, &path_of(&ctx), &h.page);
    if let Some((n, at, st)) = h.as_of {
        body["as_of"] = json!({
            "position": n,
            "recorded_at": at.as_ref().map(events::time_text),
        });
        body["state"] = st;
    }
    Ok(Json(body).into_response())
}
