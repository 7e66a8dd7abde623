//! Cinder volume types (CINDER-7.1.7/7.1.8 and upstream's types_manage,
//! types_extra_specs, volume_type_access, volume_type_encryption; issue
//! 12), under `/v2` and `/v3`. Each handler parses, calls one use case
//! (`app::volume_types`) and renders. Show and list keep the seed's shape
//! (CINDER-7.1.8: `qos_specs_id` included); create and update answer
//! Cinder's types_manage view, as tempest's schemas want.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::volume_type::EncryptionChange;
use domain::{DomainError, FieldReason};
use projections::volume_types::{EncryptionRow, TypeRow};
use serde_json::{json, Map, Value};

use crate::app::volume_types::{self as uc, CreateTypeRequest};
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;
type P = Path<HashMap<String, String>>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/types"), get(list).post(create))
        .route(
            &format!("{prefix}/types/{{type_id}}"),
            get(show).put(update).delete(delete),
        )
        .route(
            &format!("{prefix}/types/{{type_id}}/extra_specs"),
            get(specs_index).post(specs_create),
        )
        .route(
            &format!("{prefix}/types/{{type_id}}/extra_specs/{{key}}"),
            get(spec_show).put(spec_update).delete(spec_delete),
        )
        .route(&format!("{prefix}/types/{{type_id}}/action"), post(action))
        .route(
            &format!("{prefix}/types/{{type_id}}/os-volume-type-access"),
            get(access_list),
        )
        .route(
            &format!("{prefix}/types/{{type_id}}/encryption"),
            get(encryption_show).post(encryption_create),
        )
        .route(
            &format!("{prefix}/types/{{type_id}}/encryption/{{key}}"),
            get(encryption_item)
                .put(encryption_update)
                .delete(encryption_delete),
        )
}

fn param(p: &HashMap<String, String>, k: &str) -> String {
    p.get(k).cloned().unwrap_or_default()
}

fn bad(field: &'static str, msg: impl Into<String>) -> DomainError {
    DomainError::invalid(field, FieldReason::Invalid, msg)
}

/// The seed's CINDER-7.1.8 shape; admin also sees the access flag
/// (`os-volume-type-access:is_public`, Cinder's extension).
fn shown(ctx: &Ctx, t: &TypeRow) -> Value {
    let mut v = json!({
        "extra_specs": t.extra_specs,
        "name": t.name,
        "qos_specs_id": t.qos_specs_id,
        "id": t.id,
        "is_public": t.is_public,
        "description": t.description,
    });
    if ctx.is_admin {
        v["os-volume-type-access:is_public"] = json!(t.is_public);
    }
    v
}

/// Cinder's types_manage view (create and update): no `qos_specs_id`.
fn managed(t: &TypeRow, access_flag: bool) -> Value {
    let mut v = json!({
        "extra_specs": t.extra_specs,
        "name": t.name,
        "id": t.id,
        "is_public": t.is_public,
        "description": t.description,
    });
    if access_flag {
        v["os-volume-type-access:is_public"] = json!(t.is_public);
    }
    v
}

/// `is_public` of a list: absent is public only (Cinder); `none` is all
/// (admin); members always see public types and those shared with them.
async fn list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    let q = query(&ctx, q)?;
    let is_public = match q.get("is_public").map(|s| s.to_ascii_lowercase()) {
        None => Some(true),
        Some(s) if s == "none" => None,
        Some(s) if matches!(s.as_str(), "true" | "1" | "yes" | "t" | "y" | "on") => Some(true),
        Some(s) if matches!(s.as_str(), "false" | "0" | "no" | "f" | "n" | "off") => Some(false),
        Some(s) => return Err(ctx.err(bad("is_public", format!("Invalid is_public filter [{s}]")))),
    };
    // Microversion 3.52: `extra_specs={'k': 'v'}` (a dict literal, as
    // Cinder's `ast.literal_eval` reads it); dropped unread before.
    let extra_specs = match q.get("extra_specs") {
        Some(raw) if ctx.at_least(crate::microversion::SUPPORT_VOLUME_TYPE_FILTER) => {
            crate::parse::metadata_filter(raw).ok_or_else(|| {
                ctx.err(bad(
                    "extra_specs",
                    format!("Invalid extra_specs filter [{raw}]"),
                ))
            })?
        }
        _ => BTreeMap::new(),
    };
    let caller = ctx.caller();
    let rows = uc::list(&state.app(), &caller, None, &extra_specs)
        .await
        .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = rows
        .iter()
        .filter(|t| {
            !ctx.is_admin
                || match is_public {
                    None => true,
                    Some(true) => t.is_public || t.projects.contains(&ctx.project_id),
                    Some(false) => !t.is_public,
                }
        })
        .map(|t| shown(&ctx, t))
        .collect();
    Ok(Json(json!({ "volume_types": all })).into_response())
}

async fn show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let t = uc::show(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "volume_type": shown(&ctx, &t) })).into_response())
}

/// An object of string values (extra specs, QoS keys); anything else 400.
pub(super) fn string_map(
    v: Option<&Value>,
    field: &'static str,
) -> Result<BTreeMap<String, String>, DomainError> {
    match v {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                // Cinder's schema takes booleans and numbers as their text.
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                _ => Err(bad(field, format!("Value of '{k}' must be a string."))),
            })
            .collect(),
        Some(_) => Err(bad(field, format!("'{field}' must be an object."))),
    }
}

async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let t = input::member(&obj, "volume_type").map_err(|e| ctx.err(e))?;
    let name = input::opt_str(t, "name")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "name",
                FieldReason::Missing,
                "'name' is a required property.",
            ))
        })?;
    let description = input::opt_str(t, "description").map_err(|e| ctx.err(e))?;
    let is_public = input::opt_bool(t, "os-volume-type-access:is_public")
        .map_err(|e| ctx.err(e))?
        .unwrap_or(true);
    let extra_specs = match t.get("extra_specs") {
        Some(Value::Null) => BTreeMap::new(),
        v => string_map(v, "extra_specs").map_err(|e| ctx.err(e))?,
    };
    let r = CreateTypeRequest {
        name,
        description,
        is_public,
        extra_specs,
    };
    let t = uc::create(&state.app(), &ctx.caller(), &ctx.meta(), r)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "volume_type": managed(&t, true) })).into_response())
}

async fn update(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let t = input::member(&obj, "volume_type").map_err(|e| ctx.err(e))?;
    let name = input::opt_str(t, "name").map_err(|e| ctx.err(e))?;
    let description = input::opt_str(t, "description").map_err(|e| ctx.err(e))?;
    let is_public = input::opt_bool(t, "is_public").map_err(|e| ctx.err(e))?;
    let t = uc::update(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        name,
        description,
        is_public,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "volume_type": managed(&t, false) })).into_response())
}

async fn delete(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    uc::delete(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn specs_index(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let t = uc::show(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "extra_specs": t.extra_specs })).into_response())
}

/// `POST …/extra_specs {"extra_specs": {...}}`: merges; answers what was set.
async fn specs_create(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let specs = match obj.get("extra_specs") {
        Some(v @ Value::Object(_)) => string_map(Some(v), "extra_specs"),
        _ => Err(DomainError::invalid(
            "extra_specs",
            FieldReason::Missing,
            "Malformed request body: 'extra_specs' object is required.",
        )),
    }
    .map_err(|e| ctx.err(e))?;
    uc::set_extra_specs(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        specs.clone(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "extra_specs": specs })).into_response())
}

async fn spec_show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let key = param(&p, "key");
    let t = uc::show(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    match t.extra_specs.get(&key) {
        Some(v) => Ok(Json(json!({ key: v })).into_response()),
        None => Err(ctx.err(DomainError::ExtraSpecNotFound { type_id: t.id, key })),
    }
}

/// `PUT …/extra_specs/{key} {"<key>": "<value>"}`: exactly that one key
/// (Cinder: "Request body and URI mismatch", "too many items").
async fn spec_update(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    let key = param(&p, "key");
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    if obj.len() > 1 {
        return Err(ctx.err(bad("body", "Request body contains too many items.")));
    }
    if !obj.contains_key(&key) {
        return Err(ctx.err(bad("body", "Request body and URI mismatch.")));
    }
    let specs = string_map(Some(&Value::Object(obj)), "extra_specs").map_err(|e| ctx.err(e))?;
    uc::set_extra_specs(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        specs.clone(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!(specs)).into_response())
}

async fn spec_delete(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    uc::delete_extra_spec(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        param(&p, "key"),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /types/{id}/action`: `addProjectAccess` / `removeProjectAccess`
/// `{"project": "<project id>"}` (202).
async fn action(State(state): State<AppState>, ctx: Ctx, Path(p): P, body: Bytes) -> Reply {
    let obj = input::json_object(&body).map_err(|e| ctx.err(e))?;
    let (name, add) = if obj.contains_key("addProjectAccess") {
        ("addProjectAccess", true)
    } else if obj.contains_key("removeProjectAccess") {
        ("removeProjectAccess", false)
    } else {
        return Err(ctx.err(bad("body", "There is no such action.")));
    };
    let b = input::member(&obj, name).map_err(|e| ctx.err(e))?;
    let project = input::opt_str(b, "project")
        .map_err(|e| ctx.err(e))?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "project",
                FieldReason::Missing,
                "'project' is a required property.",
            ))
        })?;
    uc::access(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        project,
        add,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn access_list(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let t = uc::access_list(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    let all: Vec<Value> = t
        .projects
        .iter()
        .map(|p| json!({"volume_type_id": t.id, "project_id": p}))
        .collect();
    Ok(Json(json!({ "volume_type_access": all })).into_response())
}

fn encryption_body(e: &EncryptionRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("volume_type_id".into(), json!(e.volume_type_id));
    m.insert(
        "encryption_id".into(),
        json!(e.encryption.encryption_id.to_string()),
    );
    m.insert("provider".into(), json!(e.encryption.provider));
    m.insert("cipher".into(), json!(e.encryption.cipher));
    m.insert("key_size".into(), json!(e.encryption.key_size));
    m.insert(
        "control_location".into(),
        json!(e.encryption.control_location),
    );
    m
}

/// `{"encryption": {provider, cipher, key_size, control_location}}`.
fn encryption_change(body: &Bytes, create: bool) -> Result<EncryptionChange, DomainError> {
    let obj = input::json_object(body)?;
    let e = input::member(&obj, "encryption")?;
    let provider = input::opt_str(e, "provider")?;
    let control_location = input::opt_str(e, "control_location")?;
    if create && (provider.is_none() || control_location.is_none()) {
        return Err(DomainError::invalid(
            "encryption",
            FieldReason::Missing,
            "'provider' and 'control_location' are required properties.",
        ));
    }
    let cipher = match e.get("cipher") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => return Err(bad("cipher", "'cipher' must be a string or null.")),
    };
    let key_size = match e.get("key_size") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_i64() {
            Some(n) => Some(Some(n)),
            None => return Err(bad("key_size", "'key_size' must be an integer or null.")),
        },
    };
    Ok(EncryptionChange {
        provider,
        cipher,
        key_size,
        control_location,
    })
}

/// `GET /types/{id}/encryption`: the encryption, or `{}` when there is none.
async fn encryption_show(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let e = uc::encryption(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    let Some(e) = e else {
        return Ok(Json(json!({})).into_response());
    };
    let mut m = encryption_body(&e);
    m.insert("deleted".into(), json!(false));
    m.insert(
        "created_at".into(),
        json!(crate::render::cinder_time(&e.created_at)),
    );
    m.insert(
        "updated_at".into(),
        json!(e.updated_at.as_ref().map(crate::render::cinder_time)),
    );
    m.insert("deleted_at".into(), Value::Null);
    Ok(Json(Value::Object(m)).into_response())
}

/// `GET /types/{id}/encryption/{key}`: one field, `{key: value}`.
async fn encryption_item(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    let key = param(&p, "key");
    let e = uc::encryption(&state.app(), &ctx.caller(), param(&p, "type_id"))
        .await
        .map_err(|e| ctx.err(e))?;
    let value = e
        .as_ref()
        .and_then(|e| encryption_body(e).get(&key).cloned());
    match value {
        Some(v) => Ok(Json(json!({ key: v })).into_response()),
        None => Err(ctx.err(DomainError::EncryptionNotFound(param(&p, "type_id")))),
    }
}

async fn encryption_create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): P,
    body: Bytes,
) -> Reply {
    let change = encryption_change(&body, true).map_err(|e| ctx.err(e))?;
    let e = uc::create_encryption(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        change,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "encryption": encryption_body(&e) })).into_response())
}

/// `PUT /types/{id}/encryption/{encryption_id}`: answers the fields given.
async fn encryption_update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): P,
    body: Bytes,
) -> Reply {
    let change = encryption_change(&body, false).map_err(|e| ctx.err(e))?;
    let e = uc::update_encryption(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        param(&p, "key"),
        change.clone(),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    let all = encryption_body(&e);
    let mut out = Map::new();
    for (given, k) in [
        (change.provider.is_some(), "provider"),
        (change.cipher.is_some(), "cipher"),
        (change.key_size.is_some(), "key_size"),
        (change.control_location.is_some(), "control_location"),
    ] {
        if let (true, Some(v)) = (given, all.get(k)) {
            out.insert(k.into(), v.clone());
        }
    }
    Ok(Json(json!({ "encryption": out })).into_response())
}

async fn encryption_delete(State(state): State<AppState>, ctx: Ctx, Path(p): P) -> Reply {
    uc::delete_encryption(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        param(&p, "type_id"),
        param(&p, "key"),
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
