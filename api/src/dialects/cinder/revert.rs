//! Cinder 3.40 `{"revert": {"snapshot_id": …}}` on a volume: 202. Below
//! 3.40 the action does not exist (404, as Cinder's version check).

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
