//! Microversion 3.62: `/default-types`, a project's own default volume
//! type (Cinder's `default_types.py`, admin only). Below 3.62 the routes
//! do not exist (404, as Cinder's version check answers).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::{DomainError, FieldReason};
use serde_json::{json, Value};

use crate::app::volume_types as uc;
use crate::microversion::DEFAULT_TYPE_OVERRIDES;
use crate::{input, ApiError, AppState, Ctx, Problem, Reason};

type Reply = Result<Response, ApiError>;

pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/default-types"), get(list))
        // Not `{project_id}`: that name is the URL's own project (Ctx).
        .route(
            &format!("{prefix}/default-types/{{target_project}}"),
            get(show).put(set).delete(unset),
        )
}

fn served(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.is_v3() && ctx.at_least(DEFAULT_TYPE_OVERRIDES) {
        Ok(())
    } else {
        Err(ctx.err(Problem::new(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.",
        )))
    }
}

/// The project the path names (with or without the URL's own project).
fn target(p: &HashMap<String, String>) -> String {
    p.get("target_project").cloned().unwrap_or_default()
}

fn body(project: &str, type_id: &str) -> Value {
    json!({ "project_id": project, "volume_type_id": type_id })
}

/// `PUT /default-types/{project}` `{"default_type": {"volume_type": …}}`:
/// 200 with the default.
async fn set(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
    raw: Bytes,
) -> Reply {
    served(&ctx)?;
    let project = target(&p);
    let obj = input::json_object(&raw).map_err(|e| ctx.err(e))?;
    let bad = |msg: String| {
        ctx.err(DomainError::invalid(
            "default_type",
            FieldReason::Invalid,
            msg,
        ))
    };
    if obj.keys().any(|k| k != "default_type") {
        return Err(bad(
            "Invalid input: only 'default_type' is allowed in the body.".into(),
        ));
    }
    let dt = input::member(&obj, "default_type").map_err(|e| ctx.err(e))?;
    if dt.keys().any(|k| k != "volume_type") {
        return Err(bad(
            "Invalid input for field/attribute default_type: only 'volume_type' is allowed.".into(),
        ));
    }
    let volume_type = match dt.get("volume_type") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => s.clone(),
        _ => {
            return Err(bad(
                "Invalid input for field/attribute volume_type: a name or id of 1 to 255 characters is required."
                    .into(),
            ))
        }
    };
    let id = uc::set_project_default(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        project.clone(),
        volume_type,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "default_type": body(&project, &id) })).into_response())
}

/// `GET /default-types/{project}`: 200, or 404 when the project set none.
async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    served(&ctx)?;
    let project = target(&p);
    let id = uc::project_default(&state.app(), &ctx.caller(), project.clone())
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(Json(json!({ "default_type": body(&project, &id) })).into_response())
}

/// `GET /default-types`: every project's own default.
async fn list(State(state): State<AppState>, ctx: Ctx) -> Reply {
    served(&ctx)?;
    let all = uc::project_defaults(&state.app(), &ctx.caller())
        .await
        .map_err(|e| ctx.err(e))?;
    let items: Vec<Value> = all.iter().map(|(p, t)| body(p, t)).collect();
    Ok(Json(json!({ "default_types": items })).into_response())
}

/// `DELETE /default-types/{project}`: 204, set or not.
async fn unset(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(p): Path<HashMap<String, String>>,
) -> Reply {
    served(&ctx)?;
    uc::unset_project_default(&state.app(), &ctx.caller(), &ctx.meta(), target(&p))
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
