//! Cinder QoS specs (`/qos-specs`, upstream's qos_specs_manage; issue 12,
//! tempest's QosSpecsTestJSON): each handler parses, calls one use case
//! (`app::qos_specs`) and renders Cinder's view.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use projections::volume_types::QosRow;
use serde_json::{json, Value};

use super::types::string_map;
use crate::app::qos_specs as uc;
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;
type P = Path<HashMap<String, String>>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/qos-specs"), get(list).post(create))
        .route(
            &format!("{prefix}/qos-specs/{{qos_id}}"),
            get(show).put(set_keys).delete(delete),
        )
        .route(
            &format!("{prefix}/qos-specs/{{qos_id}}/delete_keys"),
            put(unset_keys),
        )
        .route(
            &format!("{prefix}/qos-specs/{{qos_id}}/associations"),
            get(associations),
        )
        .route(
            &format!("{prefix}/qos-specs/{{qos_id}}/associate"),
            get(|s: State<AppState>, c: Ctx, p: P, q: QueryParams| associate(s, c, p, q, true)),
        )
        .route(
            &format!("{prefix}/qos-specs/{{qos_id}}/disassociate"),
            get(|s: State<AppState>, c: Ctx, p: P, q: QueryParams| associate(s, c, p, q, false)),
        )
        .route(
            &format!("{prefix}/qos-specs/{{qos_id}}/disassociate_all"),
            get(disassociate_all),
        )
}

fn id(p: &HashMap<String, String>) -> String {
    p.get("qos_id").cloned().unwrap_or_default()
}

fn body(q: &QosRow) -> Value {
    json!({"id": q.id, "name": q.name, "consumer": q.consumer, "specs": q.specs})
}

fn links(ctx: &Ctx, id: &str) -> Value {
    json!([
        {"href": format!("{}/{}/{}/qos-specs/{id}", ctx.base_url, ctx.api_version, ctx.project_id), "rel": "self"},
        {"href": format!("{}/{}/qos-specs/{id}", ctx.base_url, ctx.project_id), "rel": "bookmark"}
    ])
}

async fn list(State(state): State<AppState>, ctx: Ctx) -> Reply {
    let all = uc::list(&state.app(), &ctx.caller())
        .await
        .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = all.iter().map(body).collect();
    Ok(Json(json!({ "qos_specs": all })).into_response())
}

async fn show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let q = uc::show(&state.app(), &ctx.caller(), id(&p))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "qos_specs": body(&q), "links": links(&ctx, &q.id) })).into_response())
}

/// `POST /qos-specs {"qos_specs": {"name", "consumer"?, <key>: <value>…}}`.
async fn create(State(state): State<AppState>, ctx: Ctx, b: Bytes) -> Reply {
    let obj = input::json_object(&b).map_err(|e| ctx.err(e))?;
    let mut specs = input::member(&obj, "qos_specs")
        .map_err(|e| ctx.err(e))?
        .clone();
    let name = match specs.remove("name") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(ctx.err(DomainError::invalid(
                "name",
                FieldReason::Missing,
                "'name' is a required property.",
            )))
        }
    };
    let consumer = match specs.remove("consumer") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ctx.err(DomainError::invalid(
                "consumer",
                FieldReason::WrongType,
                "'consumer' must be a string.",
            )))
        }
    };
    let specs = string_map(Some(&Value::Object(specs)), "qos_specs").map_err(|e| ctx.err(e))?;
    let q = uc::create(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        name,
        consumer,
        specs,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "qos_specs": body(&q), "links": links(&ctx, &q.id) })).into_response())
}

/// `PUT /qos-specs/{id} {"qos_specs": {<key>: <value>…}}`: answers the keys set.
async fn set_keys(State(state): State<AppState>, ctx: Ctx, Path(p): P, b: Bytes) -> Reply {
    let obj = input::json_object(&b).map_err(|e| ctx.err(e))?;
    let specs = input::member(&obj, "qos_specs").map_err(|e| ctx.err(e))?;
    let specs =
        string_map(Some(&Value::Object(specs.clone())), "qos_specs").map_err(|e| ctx.err(e))?;
    uc::set_keys(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id(&p),
        specs.clone(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "qos_specs": specs })).into_response())
}

/// `PUT /qos-specs/{id}/delete_keys {"keys": [...]}` (202).
async fn unset_keys(State(state): State<AppState>, ctx: Ctx, Path(p): P, b: Bytes) -> Reply {
    let obj = input::json_object(&b).map_err(|e| ctx.err(e))?;
    let keys = match obj.get("keys") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|k| k.as_str().map(String::from))
            .collect::<Option<Vec<String>>>(),
        _ => None,
    }
    .ok_or_else(|| {
        ctx.err(DomainError::invalid(
            "keys",
            FieldReason::Invalid,
            "'keys' must be a list of strings.",
        ))
    })?;
    uc::unset_keys(&state.app(), &ctx.caller(), &ctx.meta(), id(&p), keys)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `DELETE /qos-specs/{id}?force=true|false` (202).
async fn delete(State(state): State<AppState>, ctx: Ctx, Path(p): P, q: QueryParams) -> Reply {
    let q = query(&ctx, q)?;
    let force = match q.get("force").map(|s| s.to_ascii_lowercase()) {
        None => false,
        Some(s) if matches!(s.as_str(), "true" | "1" | "yes" | "t" | "y" | "on") => true,
        Some(s) if matches!(s.as_str(), "false" | "0" | "no" | "f" | "n" | "off") => false,
        Some(s) => {
            return Err(ctx.err(DomainError::invalid(
                "force",
                FieldReason::Invalid,
                format!("Invalid value '{s}' for force."),
            )))
        }
    };
    uc::delete(&state.app(), &ctx.caller(), &ctx.meta(), id(&p), force)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn associations(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let all = uc::associations(&state.app(), &ctx.caller(), id(&p))
        .await
        .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = all
        .into_iter()
        .map(|(id, name)| json!({"association_type": "volume_type", "id": id, "name": name}))
        .collect();
    Ok(Json(json!({ "qos_associations": all })).into_response())
}

/// `GET /qos-specs/{id}/associate|disassociate?vol_type_id=` (202).
async fn associate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): P,
    q: QueryParams,
    on: bool,
) -> Reply {
    let q = query(&ctx, q)?;
    let type_id = q.get("vol_type_id").cloned().ok_or_else(|| {
        ctx.err(DomainError::invalid(
            "vol_type_id",
            FieldReason::Missing,
            "Volume Type id must not be None.",
        ))
    })?;
    uc::associate(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id(&p),
        type_id,
        on,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn disassociate_all(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    uc::disassociate_all(&state.app(), &ctx.caller(), &ctx.meta(), id(&p))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
