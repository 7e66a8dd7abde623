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
use domain::{
    DomainError, SnapshotAggregate, SnapshotCommand, VolumeAggregate, VolumeCommand, VolumeFacts,
};
use projections::snapshots::{SnapshotQuery, SnapshotRow};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::cinder::query;
use crate::commands::{self, snapshot_in_tx, volume_in_tx};
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
        .merge(crate::metadata::routes(
            prefix,
            crate::metadata::Target::Snapshot,
        ))
}

pub fn evs_routes() -> Router<AppState> {
    Router::new().route(
        "/v2/{project_id}/os-vendor-snapshots/{snapshot_id}/rollback",
        post(rollback),
    )
}

fn snapshot_not_found(ctx: &Ctx, raw: &str) -> ApiError {
    ctx.err(DomainError::SnapshotNotFound(raw.to_string()))
}

/// The snapshot `raw` if it exists and the caller may see it.
pub fn visible_snapshot(state: &AppState, ctx: &Ctx, raw: &str) -> Result<SnapshotRow, ApiError> {
    let id = input::uuid(raw).ok_or_else(|| snapshot_not_found(ctx, raw))?;
    let row = state
        .store
        .read(|c| projections::snapshots::get(c, &id.to_string()))
        .map_err(|e| ctx.err(e))?;
    match row {
        Some(s) if ctx.can_see(&s.project_id) => Ok(s),
        _ => Err(snapshot_not_found(ctx, raw)),
    }
}

fn pick(v: &Map<String, Value>, a: &str, b: &str) -> Result<Option<String>, DomainError> {
    Ok(match input::opt_str(v, a)? {
        Some(s) => Some(s),
        None => input::opt_str(v, b)?,
    })
}

/// CINDER-7.3.1: 202 with the snapshot in `creating`.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let s = input::member(&obj, "snapshot").map_err(|e| ctx.err(e))?;
    let raw_vol = input::opt_str(s, "volume_id")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "EVS.5400",
                "Malformed request body: 'volume_id' is required.",
            ))
        })?;
    let volume_id = commands::path_uuid(&ctx, &raw_vol)?;
    let name = pick(s, "name", "display_name").map_err(|e| ctx.err(e))?;
    let description = pick(s, "description", "display_description").map_err(|e| ctx.err(e))?;
    let metadata = input::metadata(s.get("metadata")).map_err(|e| ctx.err(e))?;
    let force = input::opt_bool(s, "force")
        .map_err(|e| ctx.err(e))?
        .unwrap_or(false);
    let snapshot_id = Uuid::new_v4();
    let user_id = ctx.user_id.clone();
    commands::transact(&state, &ctx, None, move |tx, meta, caller| {
        let v = match volume_in_tx(tx, caller, volume_id)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let quota = projections::quotas::headroom(tx.conn(), &v.project_id)?;
        let facts = VolumeFacts {
            id: v.id,
            project_id: v.project_id,
            status: v.status,
            size: v.size,
            volume_type: v.volume_type,
            availability_zone: v.availability_zone,
            head_snapshot: projections::snapshots::head_of(tx.conn(), &v.id.to_string())?
                .and_then(|h| h.parse().ok()),
        };
        let cmd = SnapshotCommand::Create {
            snapshot_id,
            volume: facts,
            user_id,
            name,
            description,
            metadata,
            force,
            quota,
        };
        tx.execute::<SnapshotAggregate>(&snapshot_id.to_string(), cmd, meta)
    })
    .await?;
    let row = visible_snapshot(&state, &ctx, &snapshot_id.to_string())?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"snapshot": render::snapshot(&row, true)})),
    )
        .into_response())
}

async fn list_page(
    state: AppState,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    detail: bool,
) -> Reply {
    let q = query(&ctx, q)?;
    let all = ctx.is_admin && input::all_tenants(&q);
    if let Some(m) = q.get("marker") {
        if input::uuid(m).is_none() {
            return Err(ctx.err(DomainError::invalid("EVS.1024", "invalid filter marker!")));
        }
    }
    if let Some(s) = q.get("status") {
        if !domain::SnapshotStatus::is_documented(s) {
            return Err(ctx.err(DomainError::invalid(
                "EVS.5400",
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
        marker: q.get("marker").cloned(),
        limit: input::limit(q.get("limit").map(String::as_str)).map_err(|e| ctx.err(e))?,
        offset: input::offset(q.get("offset").map(String::as_str)).map_err(|e| ctx.err(e))?,
    };
    let page = state
        .store
        .read(|c| projections::snapshots::list(c, &sq))
        .map_err(|e| ctx.err(e))?;
    let Some((rows, more)) = page else {
        return Err(ctx.err(DomainError::invalid(
            "EVS.1024",
            "invalid filter marker! Marker not found.",
        )));
    };
    let items: Vec<Value> = rows.iter().map(|s| render::snapshot(s, detail)).collect();
    let mut body = json!({ "snapshots": items });
    let links = match (more, rows.last()) {
        (true, Some(last)) => {
            let path = if detail {
                "snapshots/detail"
            } else {
                "snapshots"
            };
            crate::cinder::next_link(&ctx, path, &q, &last.id)
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
    let row = visible_snapshot(&state, &ctx, raw)?;
    Ok(Json(json!({"snapshot": render::snapshot(&row, true)})).into_response())
}

fn snapshot_id(ctx: &Ctx, p: &HashMap<String, String>) -> Result<(Uuid, String), ApiError> {
    let raw = p.get("snapshot_id").cloned().unwrap_or_default();
    let id = input::uuid(&raw).ok_or_else(|| snapshot_not_found(ctx, &raw))?;
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
    commands::execute_snapshot(
        &state,
        &ctx,
        id,
        SnapshotCommand::Update { name, description },
    )
    .await?;
    let row = visible_snapshot(&state, &ctx, &raw)?;
    Ok(Json(json!({"snapshot": render::snapshot(&row, true)})).into_response())
}

/// CINDER-7.3.2: 202; the snapshot goes `deleting`, then leaves the view.
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let (id, _) = snapshot_id(&ctx, &p)?;
    commands::execute_snapshot(&state, &ctx, id, SnapshotCommand::Delete).await?;
    Ok(StatusCode::ACCEPTED.into_response())
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
                "EVS.5400",
                "Malformed request body: 'rollback.volume_id' is required.",
            ))
        })?;
    let volume_id = commands::path_uuid(&ctx, &raw_vol)?;
    let name = input::opt_str(r, "name").map_err(|e| ctx.err(e))?;
    commands::transact(&state, &ctx, None, move |tx, meta, caller| {
        let s = match snapshot_in_tx(tx, caller, snap_id)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = volume_in_tx(tx, caller, volume_id)? {
            return Ok(Err(e));
        }
        // Both sides decide before either appends: all or nothing.
        let snap_cmd = SnapshotCommand::BeginRollback { volume_id };
        let vol_cmd = VolumeCommand::Rollback {
            snapshot_id: snap_id,
            snapshot_volume_id: s.volume_id,
            name,
        };
        let vol =
            match tx.decide_or_reject::<VolumeAggregate>(&volume_id.to_string(), vol_cmd, meta)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        let snap =
            match tx.decide_or_reject::<SnapshotAggregate>(&snap_id.to_string(), snap_cmd, meta)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        tx.commit(vec![snap, vol])?;
        Ok(Ok(()))
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"rollback": {"volume_id": volume_id}})),
    )
        .into_response())
}
