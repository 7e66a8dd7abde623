//! Cinder's attachment API (microversion 3.27; 3.44 `os-complete`; 3.54
//! `mode` at create), as cinder/api/v3/attachments.py serves it: create
//! answers 200 with the detail view, delete 200 with the summary list of
//! the volume's remaining attachments, complete 204. Below 3.27 the routes
//! do not exist (404, Cinder's VersionNotFoundForAPIMethod).
//!
//! The connection info of a connected record is the volume's real file,
//! as `os-initialize_connection` reports it: os-brick's `local` connector
//! data, flat as Cinder's attachment API returns a driver's (`data` merged
//! with `driver_volume_type`), plus the attachment id and access mode.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::volume::attach::Connector;
use domain::volume::AttachMode;
use domain::{DomainError, FieldReason};
use projections::attachments::{AttachmentQuery, AttachmentView};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::attachment_create::{self, CreateAttachment};
use crate::app::{attachment_complete, attachment_delete, attachment_read, attachment_update};
use crate::microversion::{ATTACHMENTS, ATTACHMENT_COMPLETE, ATTACHMENT_MODE};
use crate::parse::query;
use crate::{input, ApiError, AppState, Ctx, QueryParams};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/attachments"), post(create).get(list))
        .route(&format!("{prefix}/attachments/detail"), get(detail))
        .route(
            &format!("{prefix}/attachments/{{attachment_id}}"),
            get(show).put(update).delete(delete),
        )
        .route(
            &format!("{prefix}/attachments/{{attachment_id}}/action"),
            post(action),
        )
}

/// Below `v` the route is not there.
fn require(ctx: &Ctx, v: (u32, u32)) -> Result<(), ApiError> {
    if ctx.at_least(v) {
        Ok(())
    } else {
        Err(ctx.err(crate::Problem::new(
            StatusCode::NOT_FOUND,
            crate::Reason::NotFound,
            "The resource could not be found.",
        )))
    }
}

fn schema_error(field: &'static str, msg: String) -> DomainError {
    DomainError::invalid(field, FieldReason::Invalid, msg)
}

/// jsonschema's `additionalProperties: false`.
fn only(obj: &Map<String, Value>, name: &'static str, allowed: &[&str]) -> Result<(), DomainError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(schema_error(
            name,
            format!(
                "Invalid input for field/attribute {name}. Value: {}. Additional properties are \
                 not allowed ('{k}' was unexpected)",
                Value::Object(obj.clone())
            ),
        )),
        None => Ok(()),
    }
}

fn parse_mode(v: &Value, field: &'static str) -> Result<Option<AttachMode>, DomainError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s == "rw" => Ok(Some(AttachMode::Rw)),
        Value::String(s) if s == "ro" => Ok(Some(AttachMode::Ro)),
        other => Err(schema_error(
            field,
            format!("Invalid input for field/attribute {field}. Value: {other}. {other} is not one of ['rw', 'ro']"),
        )),
    }
}

/// The parts of a connector this service records; the rest is the
/// client's (os-brick's initiator, ip, platform …) and changes nothing here.
fn connector(v: &Map<String, Value>) -> Result<Connector, DomainError> {
    let text = |k: &'static str| -> Result<Option<String>, DomainError> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                domain::text::check_line(k, s)?;
                Ok(Some(s.clone()))
            }
            Some(other) => Err(schema_error(
                "connector",
                format!("Invalid input for field/attribute {k}. Value: {other}. {other} is not of type 'string'"),
            )),
        }
    };
    Ok(Connector {
        host: text("host")?,
        mountpoint: text("mountpoint")?,
        mode: match v.get("mode") {
            None => None,
            Some(m) => parse_mode(m, "mode")?,
        },
    })
}

fn attachment_id(ctx: &Ctx, p: &HashMap<String, String>) -> Result<Uuid, ApiError> {
    let raw = p.get("attachment_id").cloned().unwrap_or_default();
    input::uuid(&raw).ok_or_else(|| ctx.err(DomainError::AttachmentNotFound(raw)))
}

fn summary(a: &AttachmentView) -> Value {
    json!({"id": a.id, "status": a.status, "instance": a.instance, "volume_id": a.volume_id})
}

/// The connection info of the volumes of `rows` that are connected, by
/// volume (their backends' registered templates).
async fn connections(
    state: &AppState,
    ctx: &Ctx,
    rows: &[&AttachmentView],
) -> Result<HashMap<Uuid, Value>, ApiError> {
    let ids: Vec<Uuid> = rows
        .iter()
        .filter(|a| a.connected)
        .filter_map(|a| Uuid::parse_str(&a.volume_id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    crate::app::backends::connection_info(&state.app(), ids)
        .await
        .map_err(|e| ctx.err(e))
}

async fn detail_one(state: &AppState, ctx: &Ctx, a: &AttachmentView) -> Result<Value, ApiError> {
    let c = connections(state, ctx, &[a]).await?;
    Ok(detail_view(&c, a))
}

/// Cinder's attachment `connection_info`: the connector's data with the
/// driver type and the attachment's own keys beside it.
fn detail_view(connections: &HashMap<Uuid, Value>, a: &AttachmentView) -> Value {
    let mut v = summary(a);
    v["attached_at"] = json!(a
        .attached_at
        .as_ref()
        .map(crate::render::cinder_time)
        .unwrap_or_default());
    // Nothing here detaches a record and keeps it: a deleted one is gone.
    v["detached_at"] = json!("");
    v["attach_mode"] = json!(a.attach_mode);
    let info = Uuid::parse_str(&a.volume_id)
        .ok()
        .filter(|_| a.connected)
        .and_then(|vid| connections.get(&vid));
    v["connection_info"] = match info {
        Some(info) => {
            let mut c = info["data"].as_object().cloned().unwrap_or_default();
            c.insert(
                "driver_volume_type".into(),
                info["driver_volume_type"].clone(),
            );
            c.insert("volume_id".into(), json!(a.volume_id));
            c.insert("attachment_id".into(), json!(a.id));
            c.insert("access_mode".into(), json!(a.attach_mode));
            c.insert("encrypted".into(), json!(false));
            c.insert("qos_specs".into(), Value::Null);
            Value::Object(c)
        }
        None => json!({}),
    };
    v
}

async fn create(State(state): State<AppState>, ctx: Ctx, body: Bytes) -> Reply {
    require(&ctx, ATTACHMENTS)?;
    let r = (|| -> Result<CreateAttachment, DomainError> {
        let obj = input::json_object(&body)?;
        only(&obj, "body", &["attachment"])?;
        let a = input::member(&obj, "attachment")?;
        let mut allowed = vec!["instance_uuid", "connector", "volume_uuid"];
        if ctx.at_least(ATTACHMENT_MODE) {
            allowed.push("mode");
        }
        only(a, "attachment", &allowed)?;
        let raw_volume = match a.get("volume_uuid") {
            Some(Value::String(s)) => s.clone(),
            None => {
                return Err(DomainError::invalid(
                    "volume_uuid",
                    FieldReason::Missing,
                    "Invalid input for field/attribute attachment. 'volume_uuid' is a required property",
                ))
            }
            Some(other) => {
                return Err(schema_error(
                    "volume_uuid",
                    format!("Invalid input for field/attribute volume_uuid. Value: {other}. {other} is not a 'uuid'"),
                ))
            }
        };
        let volume_id = input::uuid(&raw_volume).ok_or_else(|| {
            schema_error(
                "volume_uuid",
                format!("Invalid input for field/attribute volume_uuid. Value: {raw_volume}. '{raw_volume}' is not a 'uuid'"),
            )
        })?;
        let instance_uuid = match a.get("instance_uuid") {
            None => None,
            Some(Value::String(s)) if domain::text::is_hyphenated_uuid(s) => Some(s.clone()),
            Some(other) => {
                return Err(schema_error(
                    "instance_uuid",
                    format!("Invalid input for field/attribute instance_uuid. Value: {other}. {other} is not a 'uuid'"),
                ))
            }
        };
        let connector = match a.get("connector") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(connector(c)?),
            Some(other) => {
                return Err(schema_error(
                    "connector",
                    format!("Invalid input for field/attribute connector. Value: {other}. {other} is not of type 'object', 'null'"),
                ))
            }
        };
        let mode = match a.get("mode") {
            None => None,
            Some(m) => parse_mode(m, "mode")?,
        };
        Ok(CreateAttachment {
            volume_id,
            instance_uuid,
            mode,
            connector,
        })
    })()
    .map_err(|e| ctx.err(e))?;
    let (app, caller) = (state.app(), ctx.caller());
    let id = attachment_create::create(&app, &caller, &ctx.meta(), r)
        .await
        .map_err(|e| ctx.err(e))?;
    let a = attachment_read::get(&app, &caller, id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({"attachment": detail_one(&state, &ctx, &a).await?})).into_response())
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    require(&ctx, ATTACHMENTS)?;
    let id = attachment_id(&ctx, &p)?;
    let c = (|| -> Result<Connector, DomainError> {
        let obj = input::json_object(&body)?;
        only(&obj, "body", &["attachment"])?;
        let a = input::member(&obj, "attachment")?;
        only(a, "attachment", &["connector"])?;
        match a.get("connector") {
            Some(Value::Object(c)) if !c.is_empty() => connector(c),
            None => Err(DomainError::invalid(
                "connector",
                FieldReason::Missing,
                "Invalid input for field/attribute attachment. 'connector' is a required property",
            )),
            Some(other) => Err(schema_error(
                "connector",
                format!("Invalid input for field/attribute connector. Value: {other}. {other} is not of type 'object' or has too few properties"),
            )),
        }
    })()
    .map_err(|e| ctx.err(e))?;
    let (app, caller) = (state.app(), ctx.caller());
    attachment_update::update(&app, &caller, &ctx.meta(), id, c)
        .await
        .map_err(|e| ctx.err(e))?;
    let a = attachment_read::get(&app, &caller, id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({"attachment": detail_one(&state, &ctx, &a).await?})).into_response())
}

/// `POST /attachments/{id}/action` `{"os-complete": {}}` (3.44): 204.
async fn action(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    require(&ctx, ATTACHMENT_COMPLETE)?;
    let id = attachment_id(&ctx, &p)?;
    (|| -> Result<(), DomainError> {
        let obj = input::json_object(&body)?;
        if !obj.contains_key("os-complete") {
            return Err(DomainError::invalid(
                "os-complete",
                FieldReason::Missing,
                "Invalid input for field/attribute body. 'os-complete' is a required property",
            ));
        }
        only(&obj, "body", &["os-complete"])
    })()
    .map_err(|e| ctx.err(e))?;
    attachment_complete::complete(&state.app(), &ctx.caller(), &ctx.meta(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    require(&ctx, ATTACHMENTS)?;
    let id = attachment_id(&ctx, &p)?;
    let app = state.app();
    let volume_id = attachment_delete::delete(&app, &ctx.caller(), &ctx.meta(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    let left = attachment_read::of_volume(&app, volume_id)
        .await
        .map_err(|e| ctx.err(e))?;
    let items: Vec<Value> = left.iter().map(summary).collect();
    Ok(Json(json!({"attachments": items})).into_response())
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    require(&ctx, ATTACHMENTS)?;
    let id = attachment_id(&ctx, &p)?;
    let a = attachment_read::get(&state.app(), &ctx.caller(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({"attachment": detail_one(&state, &ctx, &a).await?})).into_response())
}

async fn list(s: State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    list_page(s.0, ctx, q, false).await
}

async fn detail(s: State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    list_page(s.0, ctx, q, true).await
}

async fn list_page(state: AppState, ctx: Ctx, q: QueryParams, detail: bool) -> Reply {
    require(&ctx, ATTACHMENTS)?;
    let q = query(&ctx, q)?;
    let limit = input::limit(q.get("limit").map(String::as_str)).map_err(|e| ctx.err(e))?;
    let offset = input::offset(q.get("offset").map(String::as_str)).map_err(|e| ctx.err(e))?;
    let all = ctx.is_admin && q.contains_key("all_tenants");
    let aq = AttachmentQuery {
        project_id: (!all).then(|| ctx.project_id.clone()),
        volume_id: q.get("volume_id").cloned(),
        instance: q.get("instance_id").cloned(),
        // `status` and `attach_status` both name the record's status.
        status: q.get("attach_status").or(q.get("status")).cloned(),
        limit,
        offset,
    };
    let rows = attachment_read::list(&state.app(), aq)
        .await
        .map_err(|e| ctx.err(e))?;
    let conns = if detail {
        connections(&state, &ctx, &rows.iter().collect::<Vec<_>>()).await?
    } else {
        HashMap::new()
    };
    let items: Vec<Value> = rows
        .iter()
        .map(|a| {
            if detail {
                detail_view(&conns, a)
            } else {
                summary(a)
            }
        })
        .collect();
    Ok(Json(json!({"attachments": items})).into_response())
}
