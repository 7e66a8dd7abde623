//! Cinder's user messages (microversion 3.3; paging, sort and filters
//! from 3.5, 3.31 and 3.34): `GET /messages`, `GET /messages/{id}`,
//! `DELETE /messages/{id}`, in Cinder's `MessagesController` shapes.
//! Below 3.3 the routes do not exist for the caller (404, as Cinder
//! answers a method its version does not have).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Duration;
use projections::messages::MessageRow;
use serde_json::{json, Value};

use crate::app::messages;
use crate::microversion::MESSAGES;
use crate::render::cinder_time;
use crate::{parse, ApiError, AppState, Ctx, Problem, QueryParams, Reason};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/messages"), get(list))
        .route(
            &format!("{prefix}/messages/{{message_id}}"),
            get(show).delete(delete),
        )
}

/// The version check every message route makes first.
fn served(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.is_v3() && ctx.at_least(MESSAGES) {
        Ok(())
    } else {
        Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.",
        )))
    }
}

fn links(ctx: &Ctx, id: &str) -> Value {
    json!([
        {"href": format!("{}/{}/{}/messages/{id}", ctx.base_url, ctx.api_version, ctx.project_id), "rel": "self"},
        {"href": format!("{}/{}/messages/{id}", ctx.base_url, ctx.project_id), "rel": "bookmark"}
    ])
}

/// Cinder's `ViewBuilder.detail`: `resource_*` only when the message has
/// them; `guaranteed_until` is the message's expiry.
fn render(ctx: &Ctx, m: &MessageRow) -> Value {
    let expires = m.created_at + Duration::seconds(domain::message::TTL_SECONDS);
    let mut v = json!({
        "id": m.id,
        "event_id": m.event_id,
        "user_message": m.user_message,
        "message_level": m.message_level,
        "created_at": cinder_time(&m.created_at),
        "guaranteed_until": cinder_time(&expires),
        "request_id": m.request_id,
        "links": links(ctx, &m.id),
    });
    if !m.resource_type.is_empty() {
        v["resource_type"] = json!(m.resource_type);
    }
    if let Some(u) = &m.resource_uuid {
        v["resource_uuid"] = json!(u);
    }
    v
}

fn message_id(p: &HashMap<String, String>) -> String {
    p.get("message_id").cloned().unwrap_or_default()
}

async fn list(State(state): State<AppState>, ctx: Ctx, q: QueryParams) -> Reply {
    served(&ctx)?;
    let q = parse::query(&ctx, q)?;
    let Some(mq) = parse::message_query(&ctx, &q).map_err(|e| ctx.err(e))? else {
        return Ok(Json(json!({"messages": []})).into_response());
    };
    // The page size Cinder's `_get_collection_links` compares with: the
    // asked limit, else the largest page.
    let limit = mq.limit.unwrap_or(domain::limits::MAX_PAGE_LIMIT as usize);
    let rows = messages::list(&state.app(), &ctx.caller(), mq)
        .await
        .map_err(|e| ctx.err(e))?;
    let mut body = json!({
        "messages": rows.iter().map(|m| render(&ctx, m)).collect::<Vec<_>>()
    });
    if let Some(last) = rows.last().filter(|_| rows.len() >= limit && limit > 0) {
        body["messages_links"] =
            crate::dialects::cinder::volumes::next_link(&ctx, "messages", &q, &last.id);
    }
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    served(&ctx)?;
    let m = messages::get(&state.app(), &ctx.caller(), &message_id(&p))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({"message": render(&ctx, &m)})).into_response())
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    served(&ctx)?;
    messages::delete(&state.app(), &ctx.caller(), &ctx.meta(), &message_id(&p))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
