//! Volume transfers (CINDER-7.4.1 … 7.4.6; DECISIONS.md, Transfers
//! [5.1 #26]). Creating, accepting and deleting each change the transfer
//! and its volume in one transaction: ownership and quota usage move
//! together or not at all.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::transfer::{hash_key, TransferAggregate, TransferCommand};
use domain::{DomainError, VolumeAggregate, VolumeCommand};
use projections::transfers::TransferRow;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cinder::query;
use crate::commands::{self, volume_in_tx};
use crate::{input, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        // CINDER-7.4.5
        .route(
            &format!("{prefix}/os-volume-transfer"),
            post(create)
                .get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, false)),
        )
        // CINDER-7.4.6
        .route(
            &format!("{prefix}/os-volume-transfer/detail"),
            get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, true)),
        )
        .route(
            &format!("{prefix}/os-volume-transfer/{{transfer_id}}"),
            get(show).delete(delete),
        )
        .route(
            &format!("{prefix}/os-volume-transfer/{{transfer_id}}/accept"),
            post(accept),
        )
}

fn links(ctx: &Ctx, id: &str) -> Value {
    json!([
        {"href": format!("{}/{}/{}/os-volume-transfer/{id}", ctx.base_url, ctx.api_version, ctx.project_id), "rel": "self"},
        {"href": format!("{}/{}/os-volume-transfer/{id}", ctx.base_url, ctx.project_id), "rel": "bookmark"}
    ])
}

fn render(ctx: &Ctx, t: &TransferRow, detail: bool) -> Value {
    let mut v =
        json!({"id": t.id, "name": t.name, "volume_id": t.volume_id, "links": links(ctx, &t.id)});
    if detail {
        v["created_at"] = json!(crate::render::cinder_time(&t.created_at));
    }
    v
}

fn not_found(ctx: &Ctx, raw: &str) -> ApiError {
    ctx.err(DomainError::TransferNotFound(raw.to_string()))
}

fn transfer_id(ctx: &Ctx, p: &HashMap<String, String>) -> Result<Uuid, ApiError> {
    let raw = p.get("transfer_id").cloned().unwrap_or_default();
    input::uuid(&raw).ok_or_else(|| not_found(ctx, &raw))
}

/// A one-time key: 16 lowercase hex characters [5.1 #26].
fn new_auth_key() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// CINDER-7.4.1: 202 with the one-time `auth_key`.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let t = input::member(&obj, "transfer").map_err(|e| ctx.err(e))?;
    let raw_vol = input::opt_str(t, "volume_id")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "EVS.5400",
                "Malformed request body: 'volume_id' is required.",
            ))
        })?;
    let volume_id = commands::path_uuid(&ctx, &raw_vol)?;
    let name = input::opt_str(t, "name").map_err(|e| ctx.err(e))?;
    let transfer_id = Uuid::new_v4();
    let auth_key = new_auth_key();
    let hash = hash_key(&auth_key);
    commands::transact(&state, &ctx, None, move |tx, meta, caller| {
        let v = match volume_in_tx(tx, caller, volume_id)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let deps = projections::snapshots::dependents_of(tx.conn(), &volume_id.to_string())?.len();
        let vol_cmd = VolumeCommand::StartTransfer {
            transfer_id,
            dependent_snapshots: deps,
        };
        let t_cmd = TransferCommand::Create {
            transfer_id,
            volume_id,
            project_id: v.project_id,
            name,
            auth_key_sha256: hash,
        };
        let vol =
            match tx.decide_or_reject::<VolumeAggregate>(&volume_id.to_string(), vol_cmd, meta)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        let tr = match tx.decide_or_reject::<TransferAggregate>(
            &transfer_id.to_string(),
            t_cmd,
            meta,
        )? {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        tx.commit(vec![tr, vol])?;
        Ok(Ok(()))
    })
    .await?;
    let row = state
        .store
        .read(|c| projections::transfers::get(c, &transfer_id.to_string()))
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| not_found(&ctx, &transfer_id.to_string()))?;
    let mut body = render(&ctx, &row, true);
    body["auth_key"] = json!(auth_key);
    Ok((StatusCode::ACCEPTED, Json(json!({"transfer": body}))).into_response())
}

/// CINDER-7.4.2: another project takes the volume with the right key; a
/// wrong key is refused and recorded (CommandRejected in the log).
async fn accept(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let id = transfer_id(&ctx, &p)?;
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let a = input::member(&obj, "accept").map_err(|e| ctx.err(e))?;
    let auth_key = input::opt_str(a, "auth_key")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "EVS.5400",
                "Malformed request body: 'auth_key' is required.",
            ))
        })?;
    let (to_project, to_user) = (ctx.project_id.clone(), ctx.user_id.clone());
    let volume_id = commands::transact(&state, &ctx, None, move |tx, meta, _| {
        let (st, _) = tx.load::<TransferAggregate>(&id.to_string())?;
        let Ok(t) = st.pending() else {
            return Ok(Err(DomainError::TransferNotFound(id.to_string())));
        };
        let volume_id = t.volume_id;
        let name = projections::transfers::get(tx.conn(), &id.to_string())?.and_then(|r| r.name);
        let t_cmd = TransferCommand::Accept {
            auth_key,
            to_project: to_project.clone(),
            to_user: to_user.clone(),
        };
        let tr = match tx.decide_or_reject::<TransferAggregate>(&id.to_string(), t_cmd, meta)? {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        // The receiving project's quota must hold the volume.
        let quota = projections::quotas::headroom(tx.conn(), &to_project)?;
        let v_cmd = VolumeCommand::CompleteTransfer {
            transfer_id: id,
            to_project,
            to_user,
            quota,
        };
        let vol =
            match tx.decide_or_reject::<VolumeAggregate>(&volume_id.to_string(), v_cmd, meta)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        tx.commit(vec![tr, vol])?;
        Ok(Ok((volume_id, name)))
    })
    .await?;
    let (volume_id, name) = volume_id;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"transfer": {
            "id": id,
            "name": name,
            "volume_id": volume_id,
            "links": links(&ctx, &id.to_string()),
        }})),
    )
        .into_response())
}

/// CINDER-7.4.3: 202; the volume returns to `available`.
async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let id = transfer_id(&ctx, &p)?;
    commands::transact(&state, &ctx, None, move |tx, meta, caller| {
        let (st, _) = tx.load::<TransferAggregate>(&id.to_string())?;
        let t = match st.pending() {
            Ok(t) if caller.is_admin || t.project_id == caller.project_id => t.clone(),
            _ => return Ok(Err(DomainError::TransferNotFound(id.to_string()))),
        };
        let tr =
            match tx.decide::<TransferAggregate>(&id.to_string(), TransferCommand::Delete, meta)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        let vol = tx.decide::<VolumeAggregate>(
            &t.volume_id.to_string(),
            VolumeCommand::CancelTransfer { transfer_id: id },
            meta,
        )?;
        let mut all = vec![tr];
        if let Ok(v) = vol {
            all.push(v);
        }
        tx.commit(all)?;
        Ok(Ok(()))
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// CINDER-7.4.4: no `auth_key`.
async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let id = transfer_id(&ctx, &p)?;
    let row = state
        .store
        .read(|c| projections::transfers::get(c, &id.to_string()))
        .map_err(|e| ctx.err(e))?;
    match row {
        Some(t) if ctx.can_see(&t.project_id) => {
            Ok(Json(json!({"transfer": render(&ctx, &t, true)})).into_response())
        }
        _ => Err(not_found(&ctx, &id.to_string())),
    }
}

async fn list_page(
    state: AppState,
    ctx: Ctx,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    detail: bool,
) -> Reply {
    let q = query(&ctx, q)?;
    let limit = input::limit(q.get("limit").map(String::as_str)).map_err(|e| ctx.err(e))?;
    let offset = input::offset(q.get("offset").map(String::as_str)).map_err(|e| ctx.err(e))?;
    let all = ctx.is_admin && input::all_tenants(&q);
    let project = if all {
        None
    } else {
        Some(ctx.project_id.clone())
    };
    let rows = state
        .store
        .read(|c| projections::transfers::list(c, project.as_deref(), limit, offset))
        .map_err(|e| ctx.err(e))?;
    let items: Vec<Value> = rows.iter().map(|t| render(&ctx, t, detail)).collect();
    Ok(Json(json!({"transfers": items})).into_response())
}
