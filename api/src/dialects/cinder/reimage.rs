//! Cinder 3.68 `{"os-reimage": {"image_id": …, "reimage_reserved": …}}`
//! (cinder/api/contrib/volume_actions.py `_reimage`, schema
//! cinder/api/schemas/volume_actions.py `reimage`): 202 when accepted;
//! below 3.68 the action does not exist (404, Cinder's version check, as
//! `revert` below 3.40).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, FieldReason};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::app::volume_reimage;
use crate::microversion::REIMAGE;
use crate::{input, ApiError, AppState, Ctx};

/// jsonschema's refusal, as Cinder's validator words it.
fn schema_error(field: &'static str, value: &Value, why: String) -> DomainError {
    DomainError::invalid(
        field,
        FieldReason::Invalid,
        format!("Invalid input for field/attribute {field}. Value: {value}. {why}"),
    )
}

/// Cinder's `parameter_types.boolean`: a JSON boolean or one of its words.
fn schema_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "True" | "TRUE" | "true" | "1" | "ON" | "On" | "on" | "YES" | "Yes" | "yes" => {
                Some(true)
            }
            "False" | "FALSE" | "false" | "0" | "OFF" | "Off" | "off" | "NO" | "No" | "no" => {
                Some(false)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The request's image id and `reimage_reserved`, per Cinder's schema.
fn parse(obj: &Map<String, Value>) -> Result<(Uuid, bool), DomainError> {
    let b = input::member(obj, "os-reimage")?;
    let whole = Value::Object(b.clone());
    if let Some(k) = b
        .keys()
        .find(|k| !matches!(k.as_str(), "image_id" | "reimage_reserved"))
    {
        return Err(schema_error(
            "os-reimage",
            &whole,
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    let image_id = match b.get("image_id") {
        None => {
            return Err(schema_error(
                "os-reimage",
                &whole,
                "'image_id' is a required property".into(),
            ))
        }
        Some(Value::String(s)) => Uuid::parse_str(s).map_err(|_| {
            schema_error(
                "image_id",
                &Value::String(s.clone()),
                format!("'{s}' is not a 'uuid'"),
            )
        })?,
        Some(other) => {
            return Err(schema_error(
                "image_id",
                other,
                format!("{other} is not of type 'string'"),
            ))
        }
    };
    let reserved = match b.get("reimage_reserved") {
        None => false,
        Some(v) => schema_bool(v).ok_or_else(|| {
            schema_error(
                "reimage_reserved",
                v,
                format!("{v} is not one of the allowed boolean values"),
            )
        })?,
    };
    Ok((image_id, reserved))
}

pub async fn reimage(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    obj: &Map<String, Value>,
) -> Result<Response, ApiError> {
    if !ctx.at_least(REIMAGE) {
        return Err(ctx.err(crate::Problem::new(
            StatusCode::NOT_FOUND,
            crate::Reason::NotFound,
            "The resource could not be found.",
        )));
    }
    let (image_id, reserved) = parse(obj).map_err(|e| ctx.err(e))?;
    volume_reimage::reimage(
        &state.app(),
        &ctx.caller(),
        &ctx.meta(),
        id,
        image_id,
        reserved,
    )
    .await
    .map_err(|e| ctx.err(e))?;
    Ok(StatusCode::ACCEPTED.into_response())
}
