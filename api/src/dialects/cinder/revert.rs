//! t17's volume actions: Cinder 3.40 `{"revert": {"snapshot_id": …}}`
//! (202; below 3.40 the action does not exist, 404 as Cinder's version
//! check) and 3.71 `os-extend_volume_completion`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, FieldReason};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::app::volume_revert;
use crate::microversion::VOLUME_REVERT;
use crate::{input, ApiError, AppState, Ctx};

pub async fn revert(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    obj: &Map<String, Value>,
) -> Result<Response, ApiError> {
    if !ctx.at_least(VOLUME_REVERT) {
        return Err(ctx.err(crate::Problem::new(
            StatusCode::NOT_FOUND,
            crate::Reason::NotFound,
            "The resource could not be found.",
        )));
    }
    let b = input::member(obj, "revert").map_err(|e| ctx.err(e))?;
    // Cinder's schema: a string or null, other members allowed; a text
    // that names no snapshot is "not the latest" (400).
    let snapshot_id = match b.get("snapshot_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ctx.err(DomainError::invalid(
                "snapshot_id",
                FieldReason::Invalid,
                format!("Invalid input for field/attribute snapshot_id. Value: {other}. {other} is not of type 'string', 'null'"),
            )))
        }
    };
    volume_revert::revert(&state.app(), &ctx.caller(), &ctx.meta(), id, snapshot_id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Cinder 3.71 `os-extend_volume_completion`: an administrator's (Cinder's
/// RULE_ADMIN_API), body `{"error": bool|string|null}`; 202 when accepted.
/// Cinder's admin_actions.py serves it without a version check, so it is
/// served at every version here too.
pub async fn extend_completion(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    obj: &Map<String, Value>,
) -> Result<Response, ApiError> {
    if !ctx.is_admin {
        return Err(ctx.err(crate::Problem::forbidden(
            "Policy doesn't allow volume_extension:volume_admin_actions:extend_volume_completion to be performed.",
        )));
    }
    let b = input::member(obj, "os-extend_volume_completion").map_err(|e| ctx.err(e))?;
    if let Some(k) = b.keys().find(|k| k.as_str() != "error") {
        return Err(ctx.err(DomainError::invalid(
            "os-extend_volume_completion",
            FieldReason::Invalid,
            format!("Invalid input for field/attribute os-extend_volume_completion. Additional properties are not allowed ('{k}' was unexpected)"),
        )));
    }
    match b.get("error") {
        None | Some(Value::Null | Value::Bool(_) | Value::String(_)) => {}
        Some(other) => {
            return Err(ctx.err(DomainError::invalid(
                "error",
                FieldReason::Invalid,
                format!("Invalid input for field/attribute error. Value: {other}. {other} is not of type 'string', 'null', 'boolean'"),
            )))
        }
    }
    crate::app::volume_extend_completion::complete(&state.app(), &ctx.caller(), &ctx.meta(), id)
        .await
        .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
