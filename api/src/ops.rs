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
use domain::DomainError;
use serde_json::json;

use crate::cinder::query;
use crate::{input, ApiError, AppState, Ctx, Problem};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v2/{project_id}/events", get(events))
}

/// Prometheus text: the log's head, the executor's durable checkpoint, and
/// the views' sizes by status.
async fn metrics(State(state): State<AppState>) -> Response {
    let read = state.store.read(|c| {
        let head: i64 = c.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
            r.get(0)
        })?;
        let checkpoint: i64 = c.query_row(
            "SELECT COALESCE(MAX(position), 0) FROM checkpoints WHERE name = 'executor'",
            [],
            |r| r.get(0),
        )?;
        let mut by_status = Vec::new();
        for (table, metric) in [
            ("volumes", "volumes"),
            ("snapshots", "snapshots"),
            ("images", "images"),
        ] {
            let mut stmt = c.prepare(&format!(
                "SELECT status, COUNT(*) FROM {table} GROUP BY status ORDER BY status"
            ))?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (status, n) = row?;
                by_status.push(format!("blockledger_{metric}{{status=\"{status}\"}} {n}"));
            }
        }
        Ok((head, checkpoint, by_status))
    });
    match read {
        Ok((head, checkpoint, by_status)) => {
            let mut out = String::new();
            out.push_str("# TYPE blockledger_log_head_position gauge\n");
            out.push_str(&format!("blockledger_log_head_position {head}\n"));
            out.push_str("# TYPE blockledger_executor_checkpoint_position gauge\n");
            out.push_str(&format!(
                "blockledger_executor_checkpoint_position {checkpoint}\n"
            ));
            for line in by_status {
                out.push_str(&line);
                out.push('\n');
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
    if !ctx.is_admin {
        return Err(ctx.err(Problem::new(
            StatusCode::FORBIDDEN,
            "EVS.5403",
            "Policy check failed: the audit trail is admin only.",
        )));
    }
    let q = query(&ctx, q)?;
    let after = match q.get("after") {
        None => 0,
        Some(a) => a.parse::<u64>().map_err(|_| {
            ctx.err(DomainError::invalid(
                "EVS.5400",
                "after must be a position (integer >= 0).",
            ))
        })?,
    };
    let limit = match q.get("limit") {
        None => 100,
        some => input::limit(some.map(String::as_str)).map_err(|e| ctx.err(e))?,
    };
    let events = match q.get("stream") {
        Some(s) => {
            let mut all = state.store.read_stream(s).map_err(|e| ctx.err(e))?;
            all.retain(|e| e.position > after);
            all.truncate(limit);
            all
        }
        None => state
            .store
            .read_from(after, limit)
            .map_err(|e| ctx.err(e))?,
    };
    let next = events.last().map(|e| e.position);
    Ok(Json(json!({"events": events, "next_after": next})).into_response())
}
