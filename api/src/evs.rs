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
use domain::{DomainError, VolumeCommand};
use serde_json::json;

use crate::cinder::extend_size;
use crate::commands::{self, CreateRules};
use crate::{input, render, ApiError, AppState, Ctx, Problem, QueryParams};

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

/// Most disks one EVS create may ask for (`count`, EVS-6.1.1).
const MAX_BATCH: i64 = 100;

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
    if !(1..=MAX_BATCH).contains(&count) {
        return Err(ctx.err(DomainError::invalid(
            "EVS.1021",
            format!("the quantity of volume is invalid! count must be 1 to {MAX_BATCH}."),
        )));
    }
    let job_id = commands::new_job_id();
    if count == 1 {
        let parsed =
            commands::parse_create(&state, &ctx, v, CreateRules::Evs, Some(job_id.clone()))
                .map_err(|e| ctx.err(e))?;
        commands::create_volume(&state, &ctx, parsed).await?;
        return Ok(job_reply(&job_id));
    }
    // API.md 3.16 / DECISIONS.md [5.1 #9]: `name-0001`, `name-0002`, …;
    // the base name may use at most 250 bytes.
    let base = input::opt_str(v, "name").map_err(|e| ctx.err(e))?;
    if base.as_ref().is_some_and(|n| n.len() > 250) {
        return Err(ctx.err(DomainError::InvalidName(
            "name must be at most 250 bytes when count > 1".into(),
        )));
    }
    if v.get("backup_id").is_some_and(|b| !b.is_null()) {
        return Err(ctx.err(DomainError::invalid(
            "EVS.1051",
            "can not batch create volume from backup!",
        )));
    }
    let mut batch = Vec::with_capacity(count as usize);
    for i in 1..=count {
        let mut one = v.clone();
        if let Some(b) = &base {
            one.insert("name".into(), json!(format!("{b}-{i:04}")));
        }
        let mut parsed = commands::parse_create(
            &state,
            &ctx,
            &one,
            CreateRules::Evs,
            Some(commands::new_job_id()),
        )
        .map_err(|e| ctx.err(e))?;
        parsed.cmd.batch_job_id = Some(job_id.clone());
        batch.push(parsed);
    }
    commands::create_volumes(&state, &ctx, batch, &job_id).await?;
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
    Ok(Json(json!({ "volume": render::evs_volume_update(&ctx, &row) })).into_response())
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
    commands::delete_volume(&state, &ctx, id, false, Some(job_id.clone())).await?;
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
    commands::extend_volume(&state, &ctx, id, new_size, Some(job_id.clone())).await?;
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

/// EVS lists take `marker`, `name`, `status`, `limit`, `availability_zone`,
/// `sort_key`, `sort_dir` and no offset (API.md 3.4).
async fn evs_page(
    state: &AppState,
    ctx: &Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Vec<projections::VolumeRow>, ApiError> {
    let mut q = crate::cinder::query(ctx, q)?;
    q.remove("offset");
    if let Some(z) = q.get("availability_zone") {
        if !state.catalog.zones.iter().any(|k| k == z) {
            return Err(ctx.err(DomainError::invalid(
                "EVS.1041",
                "invalid filter availability-zone!",
            )));
        }
    }
    if let Some(l) = q.get("limit") {
        if l.trim().parse::<i64>().is_ok_and(|n| n < 1) {
            return Err(ctx.err(DomainError::invalid("EVS.1023", "invalid filter limit!")));
        }
    }
    let lq = commands::list_query(ctx, &q).map_err(|e| ctx.err(e))?;
    Ok(commands::list_volumes(state, ctx, &lq)?.0)
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
    let row = commands::visible_volume(&state, &ctx, raw)?;
    Ok(Json(json!({ "volume": render::evs_volume_show(&ctx, &row) })).into_response())
}

/// CINDERV1-8.2.1.1 (deprecated).
async fn show_v1(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let raw = p.get("volume_id").map(String::as_str).unwrap_or_default();
    let row = commands::visible_volume(&state, &ctx, raw)?;
    Ok(Json(json!({ "volume": render::v1_volume(&ctx, &row) })).into_response())
}
