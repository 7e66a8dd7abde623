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
use domain::{DomainError, FieldReason};
use projections::transfers::TransferRow;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::{queries, transfers};
use crate::parse::{path_uuid, query};
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

/// CINDER-7.4.1: 202 with the one-time `auth_key`.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let t = input::member(&obj, "transfer").map_err(|e| ctx.err(e))?;
    let raw_vol = input::opt_str(t, "volume_id")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "volume_id",
                FieldReason::Missing,
                "Malformed request body: 'volume_id' is required.",
            ))
        })?;
    let volume_id = path_uuid(&ctx, &raw_vol)?;
    let name = input::opt_str(t, "name").map_err(|e| ctx.err(e))?;
    let (app, caller) = (state.app(), ctx.caller());
    let (transfer_id, auth_key) = transfers::create(&app, &caller, &ctx.meta(), volume_id, name)
        .await
        .map_err(|e| ctx.err(e))?;
    let row = queries::transfer(&app, &caller, transfer_id)
        .await
        .map_err(|e| ctx.err(e))?;
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
                "auth_key",
                FieldReason::Missing,
                "Malformed request body: 'auth_key' is required.",
            ))
        })?;
    let (volume_id, name) =
        transfers::accept(&state.app(), &ctx.caller(), &ctx.meta(), id, auth_key)
            .await
            .map_err(|e| ctx.err(e))?;
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
    transfers::delete(&state.app(), &ctx.caller(), &ctx.meta(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// CINDER-7.4.4: no `auth_key`.
async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    let id = transfer_id(&ctx, &p)?;
    let t = queries::transfer(&state.app(), &ctx.caller(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({"transfer": render(&ctx, &t, true)})).into_response())
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
    let rows = queries::transfers(&state.app(), project, limit, offset)
        .await
        .map_err(|e| ctx.err(e))?;
    let items: Vec<Value> = rows.iter().map(|t| render(&ctx, t, detail)).collect();
    Ok(Json(json!({"transfers": items})).into_response())
}
