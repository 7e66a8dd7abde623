//! EVS-6.2.1: roll a volume back to its snapshot
//! (`/v2/{project_id}/os-vendor-snapshots/{snapshot_id}/rollback`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use serde_json::json;
use uuid::Uuid;

use crate::app::snapshot_rollback;
use crate::parse::path_uuid;
use crate::{input, ApiError, AppState, Ctx};

type Reply = Result<Response, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v2/{project_id}/os-vendor-snapshots/{snapshot_id}/rollback",
        post(rollback),
    )
}

fn snapshot_id(ctx: &Ctx, p: &HashMap<String, String>) -> Result<(Uuid, String), ApiError> {
    let raw = p.get("snapshot_id").cloned().unwrap_or_default();
    let id =
        input::uuid(&raw).ok_or_else(|| ctx.err(DomainError::SnapshotNotFound(raw.clone())))?;
    Ok((id, raw))
}

/// EVS-6.2.1: 202 `{"rollback": {"volume_id"}}`; the volume goes
/// `rollingback` and the snapshot `rollbacking` until the executor is done.
async fn rollback(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let (snap_id, _) = snapshot_id(&ctx, &p)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let r = input::member(&obj, "rollback").map_err(|e| ctx.err(e))?;
    let raw_vol = input::opt_str(r, "volume_id")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "volume_id",
                FieldReason::Missing,
                "Malformed request body: 'rollback.volume_id' is required.",
            ))
        })?;
    let volume_id = path_uuid(&ctx, &raw_vol)?;
    let name = input::opt_str(r, "name").map_err(|e| ctx.err(e))?;
    snapshot_rollback::rollback(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        snap_id,
        volume_id,
        name,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"rollback": {"volume_id": volume_id}})),
    )
        .into_response())
}
