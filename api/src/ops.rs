//! Operations routes (DESIGN.md URL map): `/healthz`, `/metrics`, and the
//! admin audit trail `GET /v2/{project_id}/events` (every request, accepted
//! or refused, with its envelope and hash).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use serde_json::json;

use crate::app::queries;
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v2/{project_id}/events", get(events))
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

/// Admin only: events after `after` (default 0), optionally of one
/// `stream`, at most `limit` (1–1000, default 100).
async fn events(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(&ctx, q)?;
    let after = match q.get("after") {
        None => 0,
        Some(a) => a.parse::<u64>().map_err(|_| {
            ctx.err(DomainError::invalid(
                "after",
                FieldReason::Invalid,
                "after must be a position (integer >= 0).",
            ))
        })?,
    };
    let limit = match q.get("limit") {
        None => 100,
        some => input::limit(some.map(String::as_str)).map_err(|e| ctx.err(e))?,
    };
    let events = queries::events(
        &state.app(),
        &ctx.caller(),
        after,
        q.get("stream").cloned(),
        limit,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    let next = events.last().map(|e| e.position);
    Ok(Json(json!({"events": events, "next_after": next})).into_response())
}
