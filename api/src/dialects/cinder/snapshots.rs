//! Cinder snapshot routes (CINDER-7.3.1 … 7.3.12) and the EVS rollback
//! (EVS-6.2.1). Translation only: the rules are the snapshot and volume
//! deciders'.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::{DomainError, FieldReason, SnapshotCommand};
use projections::snapshots::{SnapshotQuery, SnapshotRow};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::snapshot_create::{self, CreateSnapshotRequest};
use crate::app::{queries, snapshot_actions};
use crate::parse::{self, either as pick, path_uuid, query};
use crate::{input, render, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        // CINDER-7.3.4
        .route(
            &format!("{prefix}/snapshots"),
            post(create)
                .get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, false)),
        )
        // CINDER-7.3.5
        .route(
            &format!("{prefix}/snapshots/detail"),
            get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, true)),
        )
        .route(
            &format!("{prefix}/snapshots/{{snapshot_id}}"),
            get(show).put(update).delete(delete),
        )
        .route(
            &format!("{prefix}/snapshots/{{snapshot_id}}/action"),
            post(action),
        )
        .merge(super::metadata::routes(
            prefix,
            super::metadata::Target::Snapshot,
        ))
}

/// The snapshot `raw` if it exists and the caller may see it.
pub async fn visible_snapshot(
    state: &AppState,
    ctx: &Ctx,
    raw: &str,
) -> Result<SnapshotRow, ApiError> {
    queries::snapshot(&state.app(), &ctx.caller(), raw)
        .await
        .map_err(|e| ctx.err(e))
}

/// CINDER-7.3.1: 202 with the snapshot in `creating`.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let s = input::member(&obj, "snapshot").map_err(|e| ctx.err(e))?;
    let raw_vol = input::opt_str(s, "volume_id")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            // Cinder looks the missing volume up as `None` (tempest's
            // test_create_snapshot_without_passing_volume_id wants 404);
            // the seed's `/v2` says the body is malformed.
            ctx.err(if ctx.is_v3() {
                DomainError::VolumeNotFound("None".into())
            } else {
                DomainError::invalid(
                    "volume_id",
                    FieldReason::Missing,
                    "Malformed request body: 'volume_id' is required.",
                )
            })
        })?;
    let volume_id = path_uuid(&ctx, &raw_vol)?;
    let r = CreateSnapshotRequest {
        volume_id,
        name: pick(s, "name", "display_name").map_err(|e| ctx.err(e))?,
        description: pick(s, "description", "display_description").map_err(|e| ctx.err(e))?,
        metadata: input::metadata(s.get("metadata")).map_err(|e| ctx.err(e))?,
        force: input::opt_bool(s, "force")
            .map_err(|e| ctx.err(e))?
            .unwrap_or(false),
        full: false,
        snapshot_id: None,
    };
    let snapshot_id = snapshot_create::create(&state.app(), &ctx.caller(), &ctx.meta(), r)
        .await
        .map_err(|e| ctx.err(e))?;
    let row = visible_snapshot(&state, &ctx, &snapshot_id.to_string()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"snapshot": cinder_detail(&ctx, &row, !ctx.is_v3())})),
    )
        .into_response())
}

/// Cinder's snapshot `detail` view (show, create, update, the detailed
/// list): from 3.41 (a17) with the `user_id` that asked for it.
fn cinder_detail(ctx: &Ctx, row: &SnapshotRow, extended: bool) -> Value {
    let mut v = render::snapshot(row, extended);
    if ctx.is_v3() && ctx.at_least(crate::microversion::SNAPSHOT_LIST_USER_ID) {
        v["user_id"] = json!(row.user_id);
    }
    v
}

async fn list_page(
    state: AppState,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    detail: bool,
) -> Reply {
    let q = query(&ctx, q)?;
    let all = ctx.is_admin && input::all_tenants(&q);
    parse::check_marker(&q).map_err(|e| ctx.err(e))?;
    let (sort_key, sort_dir) = parse::sort(&ctx, &q).map_err(|e| ctx.err(e))?;
    // 3.30 (a17): before it Cinder has no `name` sort key for snapshots
    // (the model's `display_name`, which tempest sends, always sorts).
    let asks_name = q.get("sort_key").is_some_and(|k| k.trim() == "name")
        || q.get("sort").is_some_and(|s| {
            s.split(',')
                .any(|p| p.split(':').next().map(str::trim) == Some("name"))
        });
    if asks_name && !ctx.at_least(crate::microversion::SNAPSHOT_SORT) {
        return Err(ctx.err(DomainError::invalid(
            "sort_key",
            FieldReason::Invalid,
            "Invalid input received: Invalid sort key",
        )));
    }
    let metadata = parse::snapshot_metadata_filter(&ctx, &q).map_err(|e| ctx.err(e))?;
    // 3.31 / 3.34 (a17): configured filters only (non-admin), like filters.
    parse::reject_invalid_filters(&ctx, parse::filter_keys(&q), "snapshot")
        .map_err(|e| ctx.err(e))?;
    let like = parse::like_filters(&ctx, &q, &["name", "description", "status", "volume_id"]);
    if let Some(s) = q.get("status") {
        if !domain::SnapshotStatus::is_documented(s) {
            return Err(ctx.err(DomainError::invalid(
                "status",
                FieldReason::Invalid,
                "Must specify a valid status.",
            )));
        }
    }
    let sq = SnapshotQuery {
        project_id: if all {
            None
        } else {
            Some(ctx.project_id.clone())
        },
        name: q.get("name").cloned(),
        status: q.get("status").cloned(),
        volume_id: q.get("volume_id").cloned(),
        metadata,
        like,
        marker: q.get("marker").cloned(),
        limit: parse::limit(&ctx, &q).map_err(|e| ctx.err(e))?,
        offset: input::offset(q.get("offset").map(String::as_str)).map_err(|e| ctx.err(e))?,
        sort_key,
        sort_dir,
    };
    let (rows, more) = queries::snapshots(&state.app(), sq)
        .await
        .map_err(|e| ctx.err(e))?;
    let items: Vec<Value> = rows
        .iter()
        .map(|s| {
            if detail {
                cinder_detail(&ctx, s, true)
            } else {
                render::snapshot(s, false)
            }
        })
        .collect();
    let mut body = json!({ "snapshots": items });
    let more = super::volumes::has_next(&ctx, more, rows.len(), &q);
    let links = match (more, rows.last()) {
        (true, Some(last)) => {
            let path = if detail {
                "snapshots/detail"
            } else {
                "snapshots"
            };
            super::volumes::next_link(&ctx, path, &q, &last.id)
        }
        _ => Value::Null,
    };
    // CINDER-7.3.4 prints `"snapshots_links": null` when nothing remains,
    // but openstacksdk iterates the key and fails on null; the client wins
    // (DECISIONS.md), so the key appears only when there is a next page.
    if !links.is_null() {
        body["snapshots_links"] = links;
    }
    Ok(Json(body).into_response())
}

/// CINDER-7.3.6.
async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("snapshot_id").map(String::as_str).unwrap_or_default();
    let row = visible_snapshot(&state, &ctx, raw).await?;
    Ok(Json(json!({"snapshot": cinder_detail(&ctx, &row, true)})).into_response())
}

fn snapshot_id(ctx: &Ctx, p: &HashMap<String, String>) -> Result<(Uuid, String), ApiError> {
    let raw = p.get("snapshot_id").cloned().unwrap_or_default();
    let id =
        input::uuid(&raw).ok_or_else(|| ctx.err(DomainError::SnapshotNotFound(raw.clone())))?;
    Ok((id, raw))
}

/// CINDER-7.3.3: 200 with the snapshot.
async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let (id, raw) = snapshot_id(&ctx, &p)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let s = input::member(&obj, "snapshot").map_err(|e| ctx.err(e))?;
    let name = pick(s, "name", "display_name").map_err(|e| ctx.err(e))?;
    let description = pick(s, "description", "display_description").map_err(|e| ctx.err(e))?;
    snapshot_actions::command(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        SnapshotCommand::Update { name, description },
    )
    .await
    .map_err(|e| ctx.err(e))?;
    let row = visible_snapshot(&state, &ctx, &raw).await?;
    Ok(Json(json!({"snapshot": cinder_detail(&ctx, &row, !ctx.is_v3())})).into_response())
}

/// CINDER-7.3.2: 202; the snapshot goes `deleting`, then leaves the view.
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let (id, _) = snapshot_id(&ctx, &p)?;
    snapshot_actions::command(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        SnapshotCommand::Delete,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /snapshots/{id}/action`: Cinder's snapshot actions, 202 with no
/// body. `os-reset_status` and `os-force_delete` are an admin's (refused
/// in the application layer); `os-update_snapshot_status` reports
/// progress as Nova's assisted snapshots do.
async fn action(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let (id, _) = snapshot_id(&ctx, &p)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let status_of =
        |a: &serde_json::Map<String, Value>| -> Result<domain::SnapshotStatus, ApiError> {
            let raw = input::opt_str(a, "status")
                .map_err(|e| ctx.err(e))?
                .unwrap_or_default();
            domain::SnapshotStatus::parse(&raw).ok_or_else(|| {
                ctx.err(DomainError::invalid(
                    "status",
                    FieldReason::Invalid,
                    format!("Invalid status '{raw}'."),
                ))
            })
        };
    let cmd = match obj.iter().next().map(|(k, v)| (k.as_str(), v)) {
        Some(("os-force_delete", _)) if obj.len() == 1 => SnapshotCommand::ForceDelete,
        Some(("os-reset_status", _)) if obj.len() == 1 => {
            let a = input::member(&obj, "os-reset_status").map_err(|e| ctx.err(e))?;
            SnapshotCommand::ResetStatus {
                status: status_of(a)?,
            }
        }
        Some(("os-update_snapshot_status", _)) if obj.len() == 1 => {
            let a = input::member(&obj, "os-update_snapshot_status").map_err(|e| ctx.err(e))?;
            SnapshotCommand::UpdateStatus {
                status: status_of(a)?,
                progress: input::opt_str(a, "progress").map_err(|e| ctx.err(e))?,
            }
        }
        _ => {
            return Err(ctx.err(DomainError::invalid(
                "action",
                FieldReason::Unsupported,
                "There is no such action: the body names exactly one of os-reset_status, \
                 os-update_snapshot_status, os-force_delete.",
            )))
        }
    };
    snapshot_actions::command(&state.app(), &ctx.caller(), &ctx.meta(), id, cmd)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
