//! Huawei EVS custom routes (EVS-6.1.x, JOB-8.1.1): asynchronous calls that
//! answer a `job_id`, and the job view that tracks them.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use domain::create_rules::CreatePolicy;
use domain::{DomainError, FieldReason, VolumeCommand};
use serde_json::json;

use crate::app::{self, queries, volume_actions, volume_create, volume_delete, volume_extend};
use crate::dialects::cinder::volumes::{extend_size, visible};
use crate::parse::{self, path_uuid};
use crate::{input, render, ApiError, AppState, Ctx, Problem, QueryParams, Reason};

type Reply = Result<Response, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        // EVS-6.1.6 (deprecated): id, links, name
        .route(
            "/v2/{project_id}/cloudvolumes",
            post(create).get(|s: State<AppState>, c: Ctx, q: QueryParams| {
                evs_list(s.0, c, q, render::cinder_volume_summary)
            }),
        )
        // EVS-6.1.2
        .route(
            "/v2/{project_id}/cloudvolumes/detail",
            get(|s: State<AppState>, c: Ctx, q: QueryParams| {
                evs_list(s.0, c, q, render::evs_volume_detail)
            }),
        )
        // EVS-A5-1: only in the permission table; the EVS-6.1.5 view per disk
        .route(
            "/v2/{project_id}/os-vendor-volumes/detail",
            get(|s: State<AppState>, c: Ctx, q: QueryParams| {
                evs_list(s.0, c, q, render::evs_volume_show)
            }),
        )
        .route(
            "/v2/{project_id}/os-vendor-volumes/{volume_id}",
            get(show_vendor),
        )
        .route("/v1/{project_id}/volumes/{volume_id}", get(show_v1))
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

/// EVS-6.1.1: 200 `{"job_id"}`; poll JOB-8.1.1 for `createVolume` (or
/// `batchCreateVolume` with `sub_jobs` when `count` > 1).
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let v = input::member(&obj, "volume")
        .map_err(|_| ctx.err(Problem::vendor("EVS.1008", "null createVolumeReq!")))?;
    let count = input::size(v.get("count"), "count")
        .map_err(|_| {
            ctx.err(DomainError::invalid(
                "count",
                FieldReason::Invalid,
                "the quantity of volume is invalid!",
            ))
        })?
        .unwrap_or(1);
    let r = parse::create_request(v, CreatePolicy::EVS_CUSTOM).map_err(|e| ctx.err(e))?;
    let (app, caller, meta) = (state.app(), ctx.caller(), ctx.meta());
    let job_id = app::new_job_id();
    if count == 1 {
        volume_create::create(&app, &caller, &meta, r, job_id.clone())
            .await
            .map_err(|e| ctx.err(e))?;
    } else {
        volume_create::create_batch(&app, &caller, &meta, r, count, job_id.clone())
            .await
            .map_err(|e| ctx.err(e))?;
    }
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
    let id = path_uuid(&ctx, raw_id)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let v = input::member(&obj, "volume")
        .map_err(|_| ctx.err(Problem::vendor("EVS.1001", "null volume!")))?;
    let name = input::opt_str(v, "name").map_err(|e| ctx.err(e))?;
    let description = input::opt_str(v, "description").map_err(|e| ctx.err(e))?;
    let cmd = VolumeCommand::Update {
        name,
        description,
        metadata: None,
    };
    volume_actions::command(&state.app(), &ctx.caller(), &ctx.meta(), id, cmd)
        .await
        .map_err(|e| ctx.err(e))?;
    let row = visible(&state, &ctx, raw_id).await?;
    Ok(Json(json!({ "volume": render::evs_volume_update(&ctx, &row) })).into_response())
}

/// EVS-6.1.3: 200 `{"job_id"}` (`deleteVolume`).
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw_id = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let id = path_uuid(&ctx, raw_id)?;
    let job_id = app::new_job_id();
    volume_delete::delete(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        false,
        job_id.clone(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
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
    let id = path_uuid(&ctx, raw_id)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let new_size = extend_size(&obj).map_err(|e| ctx.err(e))?;
    let job_id = app::new_job_id();
    volume_extend::extend(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        new_size,
        job_id.clone(),
        domain::volume::ExtendPolicy::OPEN,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(job_reply(&job_id))
}

/// JOB-8.1.1: a job of the caller's project, or Common.0011.
async fn job(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let job_id = p.get("job_id").cloned().unwrap_or_default();
    match queries::job(&state.app(), &ctx.caller(), job_id)
        .await
        .map_err(|e| ctx.err(e))?
    {
        Some(j) => Ok(Json(render::job(&j)).into_response()),
        None => Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::JobNotFound,
            "query job fail.",
        ))),
    }
}

/// EVS lists take `marker`, `name`, `status`, `limit`, `availability_zone`,
/// `sort_key`, `sort_dir` and no offset (API.md 3.4).
async fn evs_page(
    state: &AppState,
    ctx: &Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Vec<projections::VolumeRow>, ApiError> {
    let mut q = parse::query(ctx, q)?;
    q.remove("offset");
    if let Some(z) = q.get("availability_zone") {
        if !state.catalog.zones.iter().any(|k| k == z) {
            return Err(ctx.err(DomainError::invalid(
                "availability_zone",
                FieldReason::Invalid,
                "invalid filter availability-zone!",
            )));
        }
    }
    let lq = parse::list_query(ctx, &q).map_err(|e| ctx.err(e))?;
    Ok(queries::volumes(&state.app(), lq)
        .await
        .map_err(|e| ctx.err(e))?
        .0)
}

/// One EVS list page rendered with `view`.
async fn evs_list(
    state: AppState,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    view: fn(&Ctx, &projections::VolumeRow) -> serde_json::Value,
) -> Reply {
    let rows = evs_page(&state, &ctx, q).await?;
    let items: Vec<_> = rows.iter().map(|v| view(&ctx, v)).collect();
    Ok(Json(json!({ "volumes": items })).into_response())
}

/// EVS-6.1.5.
async fn show_vendor(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let row = visible(&state, &ctx, raw).await?;
    Ok(Json(json!({ "volume": render::evs_volume_show(&ctx, &row) })).into_response())
}

/// CINDERV1-8.2.1.1 (deprecated).
async fn show_v1(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let row = visible(&state, &ctx, raw).await?;
    Ok(Json(json!({ "volume": render::v1_volume(&ctx, &row) })).into_response())
}
