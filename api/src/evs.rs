//! Huawei EVS custom routes (EVS-6.1.x, JOB-8.1.1): asynchronous calls that
//! answer a `job_id`, and the job view that tracks them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use domain::{DomainError, VolumeCommand};
use serde_json::json;

use crate::cinder::extend_size;
use crate::commands::{self, CreateRules};
use crate::{input, render, ApiError, AppState, Ctx, Problem};

type Reply = Result<Response, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/{project_id}/cloudvolumes", post(create))
        .route(
            "/v2/{project_id}/cloudvolumes/{volume_id}",
            put(update).delete(delete),
        )
        .route(
            "/v2/{project_id}/cloudvolumes/{volume_id}/action",
            post(action),
        )
        .route("/v1/{project_id}/jobs/{job_id}", get(job))
}

fn job_reply(job_id: &str) -> Response {
    (StatusCode::OK, Json(json!({ "job_id": job_id }))).into_response()
}

/// EVS-6.1.1: 200 `{"job_id"}`; poll JOB-8.1.1 for `createVolume`.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let v = input::member(&obj, "volume")
        .map_err(|_| ctx.err(DomainError::invalid("EVS.1008", "null createVolumeReq!")))?;
    let count = input::size(v.get("count"), "count")
        .map_err(|_| {
            ctx.err(DomainError::invalid(
                "EVS.1021",
                "the quantity of volume is invalid!",
            ))
        })?
        .unwrap_or(1);
    if count != 1 {
        // Batch creation (count 2..100) arrives with its batch job model.
        return Err(ctx.err(DomainError::invalid(
            "EVS.1021",
            "the quantity of volume is invalid! Only count=1 is served.",
        )));
    }
    let job_id = commands::new_job_id();
    let cmd = commands::parse_create(&state, &ctx, v, CreateRules::Evs, Some(job_id.clone()))
        .map_err(|e| ctx.err(e))?;
    let id = cmd.volume_id;
    commands::execute_volume(&state, &ctx, id, VolumeCommand::Create(cmd), Some(&job_id)).await?;
    Ok(job_reply(&job_id))
}

/// EVS-6.1.4: name and description; 200 with `{"volume": {...}}`
/// (DECISIONS.md [5.1 #12] wraps it).
async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = commands::path_uuid(&ctx, raw_id)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let v = input::member(&obj, "volume")
        .map_err(|_| ctx.err(DomainError::invalid("EVS.1001", "null volume!")))?;
    let name = input::opt_str(v, "name").map_err(|e| ctx.err(e))?;
    let description = input::opt_str(v, "description").map_err(|e| ctx.err(e))?;
    let cmd = VolumeCommand::Update {
        name,
        description,
        metadata: None,
    };
    commands::execute_volume(&state, &ctx, id, cmd, None).await?;
    let row = commands::visible_volume(&state, &ctx, raw_id)?;
    let mut body = render::cinder_volume_detail(&ctx, &row, false);
    body["shareable"] = json!(if row.multiattach { "true" } else { "false" });
    Ok(Json(json!({ "volume": body })).into_response())
}

/// EVS-6.1.3: 200 `{"job_id"}` (`deleteVolume`).
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = commands::path_uuid(&ctx, raw_id)?;
    let job_id = commands::new_job_id();
    let cmd = VolumeCommand::Delete {
        job_id: Some(job_id.clone()),
    };
    commands::execute_volume(&state, &ctx, id, cmd, Some(&job_id)).await?;
    Ok(job_reply(&job_id))
}

/// EVS-6.1.7: `os-extend`, 200 `{"job_id"}` (`extendVolume`).
async fn action(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = commands::path_uuid(&ctx, raw_id)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let new_size = extend_size(&obj).map_err(|e| ctx.err(e))?;
    let job_id = commands::new_job_id();
    let cmd = VolumeCommand::Extend {
        new_size,
        job_id: Some(job_id.clone()),
    };
    commands::execute_volume(&state, &ctx, id, cmd, Some(&job_id)).await?;
    Ok(job_reply(&job_id))
}

/// JOB-8.1.1: a job of the caller's project, or Common.0011.
async fn job(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let job_id = p.get("job_id").cloned().unwrap_or_default();
    let row = state
        .store
        .read(|c| projections::jobs::get(c, &job_id))
        .map_err(|e| ctx.err(e))?;
    match row {
        Some(j) if ctx.can_see(&j.project_id) => Ok(Json(render::job(&j)).into_response()),
        _ => Err(ctx.err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Common.0011",
            "query job fail.",
        ))),
    }
}
