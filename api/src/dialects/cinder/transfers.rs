//! Volume transfers (CINDER-7.4.1 … 7.4.6; DECISIONS.md, Transfers
//! [5.1 #26]). Creating, accepting and deleting each change the transfer
//! and its volume in one transaction: ownership and quota usage move
//! together or not at all.
//!
//! t17, Cinder's microversions: `/volume-transfers` is the same resource
//! as `os-volume-transfer` (cinder/api/v3/router.py maps it at every
//! version); 3.55 takes `no_snapshots` at create there and shows it (the
//! snapshots move with the volume unless it is true); 3.57 shows
//! `source_project_id`, `destination_project_id`, `accepted`; 3.59 pages
//! and sorts the lists (before it: oldest first, limit/offset only).
//! 3.70 (encrypted volumes) changes nothing here: no volume of this
//! service has an encryption key, so none was ever refused for one.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use projections::transfers::{TransferQuery, TransferRow, TransferSort};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::{queries, transfers};
use crate::microversion::{TRANSFER_PAGINATION, TRANSFER_PROJECTS, TRANSFER_SNAPSHOTS};
use crate::parse::{path_uuid, query};
use crate::{input, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    let v3 = prefix.starts_with("/v3");
    let mut r = Router::new();
    for (collection, new_api) in [("os-volume-transfer", false), ("volume-transfers", true)] {
        if new_api && !v3 {
            continue;
        }
        r = r
            .route(
                &format!("{prefix}/{collection}"),
                post(move |s: State<AppState>, c: Ctx, b: Bytes| create(s, c, b, new_api))
                    .get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, false)),
            )
            .route(
                &format!("{prefix}/{collection}/detail"),
                get(|s: State<AppState>, c: Ctx, q: QueryParams| list_page(s.0, c, q, true)),
            )
            .route(
                &format!("{prefix}/{collection}/{{transfer_id}}"),
                get(show).delete(delete),
            )
            .route(
                &format!("{prefix}/{collection}/{{transfer_id}}/accept"),
                post(accept),
            );
    }
    r
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
        if ctx.at_least(TRANSFER_SNAPSHOTS) {
            v["no_snapshots"] = json!(t.no_snapshots);
        }
        if ctx.at_least(TRANSFER_PROJECTS) {
            v["source_project_id"] = json!(t.project_id);
            v["destination_project_id"] = json!(t.destination_project_id);
            v["accepted"] = json!(t.accepted);
        }
    }
    v
}

/// Cinder's `parameter_types.boolean` (strutils' spellings).
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "y" | "t" => Some(true),
            "false" | "0" | "no" | "off" | "n" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn not_found(ctx: &Ctx, raw: &str) -> ApiError {
    ctx.err(DomainError::TransferNotFound(raw.to_string()))
}

fn transfer_id(ctx: &Ctx, p: &HashMap<String, String>) -> Result<Uuid, ApiError> {
    let raw = p.get("transfer_id").cloned().unwrap_or_default();
    input::uuid(&raw).ok_or_else(|| not_found(ctx, &raw))
}

/// CINDER-7.4.1: 202 with the one-time `auth_key`. `new_api`: the
/// `/volume-transfers` path, whose create takes `no_snapshots` from 3.55.
async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes, new_api: bool) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let t = input::member(&obj, "transfer").map_err(|e| ctx.err(e))?;
    let takes_flag = new_api && ctx.at_least(TRANSFER_SNAPSHOTS);
    let snapshots = match t.get("no_snapshots") {
        None if takes_flag => transfers::Snapshots::Move,
        None => transfers::Snapshots::Refuse,
        Some(v) if takes_flag => match boolean(v) {
            Some(true) => transfers::Snapshots::Leave,
            Some(false) => transfers::Snapshots::Move,
            None => {
                return Err(ctx.err(DomainError::invalid(
                    "no_snapshots",
                    FieldReason::Invalid,
                    format!("Invalid input for field/attribute no_snapshots. Value: {v}. {v} is not a valid boolean"),
                )))
            }
        },
        Some(_) => {
            return Err(ctx.err(DomainError::invalid(
                "no_snapshots",
                FieldReason::Invalid,
                "Invalid input for field/attribute transfer. Additional properties are not allowed ('no_snapshots' was unexpected)",
            )))
        }
    };
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
    // Cinder strips the name's surrounding spaces.
    let name = input::opt_str(t, "name")
        .map_err(|e| ctx.err(e))?
        .map(|n| n.trim().to_string());
    let (app, caller) = (state.app(), ctx.caller());
    let (transfer_id, auth_key) =
        transfers::create(&app, &caller, &ctx.meta(), volume_id, name, snapshots)
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
    let paged = ctx.at_least(TRANSFER_PAGINATION);
    // Before 3.59: created_at, id ascending; from it Cinder's sort
    // parameters, newest first by default, and a marker.
    let (sort, descending, marker) = if paged {
        let (key, dir) = sort_param(&q).map_err(|e| ctx.err(e))?;
        let marker = match q.get("marker") {
            None => None,
            Some(m) => Some(input::uuid(m).map(|u| u.to_string()).ok_or_else(|| {
                ctx.err(DomainError::invalid(
                    "marker",
                    FieldReason::NotFound,
                    format!("Marker {m} could not be found."),
                ))
            })?),
        };
        (key, dir, marker)
    } else {
        (TransferSort::CreatedAt, false, None)
    };
    let tq = TransferQuery {
        project_id: (!all).then(|| ctx.project_id.clone()),
        sort,
        descending,
        marker: marker.clone(),
        limit,
        offset,
    };
    let rows = queries::transfers(&state.app(), tq)
        .await
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "marker",
                FieldReason::NotFound,
                format!("Marker {} could not be found.", marker.unwrap_or_default()),
            ))
        })?;
    let items: Vec<Value> = rows.iter().map(|t| render(&ctx, t, detail)).collect();
    let mut body = json!({"transfers": items});
    if paged && q.contains_key("limit") && rows.len() == limit {
        if let Some(last) = rows.last() {
            let collection = if ctx.route.contains("/volume-transfers") {
                "volume-transfers"
            } else {
                "os-volume-transfer"
            };
            let path = if detail {
                format!("{collection}/detail")
            } else {
                collection.to_string()
            };
            body["transfers_links"] = super::volumes::next_link(&ctx, &path, &q, &last.id);
        }
    }
    Ok(Json(body).into_response())
}

/// Cinder's `sort=key:dir` or `sort_key`/`sort_dir` (one key here).
fn sort_param(q: &HashMap<String, String>) -> Result<(TransferSort, bool), DomainError> {
    let (key, dir) = match q.get("sort") {
        Some(s) => {
            let first = s.split(',').next().unwrap_or_default();
            match first.split_once(':') {
                Some((k, d)) => (k.to_string(), Some(d.to_string())),
                None => (first.to_string(), None),
            }
        }
        None => (
            q.get("sort_key")
                .cloned()
                .unwrap_or_else(|| "created_at".into()),
            q.get("sort_dir").cloned(),
        ),
    };
    let sort = TransferSort::parse(key.trim()).ok_or_else(|| {
        DomainError::invalid(
            "sort_key",
            FieldReason::Invalid,
            format!("Invalid input received: Invalid sort key {key}"),
        )
    })?;
    let descending = match dir.as_deref().map(str::trim) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(d) => {
            return Err(DomainError::invalid(
                "sort_dir",
                FieldReason::Invalid,
                format!(
                    "Invalid input received: Unknown sort direction {d}, must be 'desc' or 'asc'"
                ),
            ))
        }
    };
    Ok((sort, descending))
}
