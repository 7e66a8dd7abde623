//! `os-volume_upload_image` (CINDER-7.2.4, API.md 3.15): parses the action
//! and renders its answer; `app::image_upload` does the work.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::image_upload::{self, UploadImageRequest};
use crate::app::queries;
use crate::{input, microversion, render, ApiError, AppState, Ctx};
use domain::{DomainError, FieldReason};

pub async fn upload_image(
    state: &AppState,
    ctx: &Ctx,
    volume_id: Uuid,
    b: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let e = |e| ctx.err(e);
    let r = UploadImageRequest {
        volume_id,
        image_name: input::opt_str(b, "image_name").map_err(e)?.ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "image_name",
                FieldReason::Missing,
                "'image_name' is required.",
            ))
        })?,
        disk_format: input::opt_str(b, "disk_format").map_err(e)?,
        container_format: input::opt_str(b, "container_format").map_err(e)?,
        force: input::opt_bool(b, "force").map_err(e)?.unwrap_or(false),
        os_type: input::opt_str(b, "__os_type").map_err(e)?,
        visibility: "private".into(),
        protected: false,
    };
    let r = if ctx.at_least(microversion::UPLOAD_IMAGE_PARAMS) {
        UploadImageRequest {
            visibility: visibility(b).map_err(e)?,
            protected: protected(b).map_err(e)?,
            ..r
        }
    } else {
        // Before 3.1 Cinder's schema has no such properties and refuses
        // them (`additionalProperties: false`).
        if let Some(k) = ["visibility", "protected"]
            .into_iter()
            .find(|k| b.contains_key(*k))
        {
            return Err(ctx.err(DomainError::invalid(
                "os-volume_upload_image",
                FieldReason::Invalid,
                format!(
                    "Invalid input for field/attribute os-volume_upload_image. \
                     Additional properties are not allowed ('{k}' was unexpected)"
                ),
            )));
        }
        r
    };
    let (app, caller) = (state.app(), ctx.caller());
    let image_id = image_upload::upload(&app, &caller, &ctx.meta(), r)
        .await
        .map_err(|e| ctx.err(e))?;
    let row = queries::volume(&app, &caller, &volume_id.to_string())
        .await
        .map_err(|e| ctx.err(e))?;
    let image = queries::image(&app, &caller, &image_id.to_string())
        .await
        .map_err(|e| ctx.err(e))?;
    // The type as the volume types view has it (an admin may have
    // deleted it since; then its id is unknown).
    let vt = crate::app::volume_types::show(&app, &caller, row.volume_type.clone())
        .await
        .ok();
    let mut body = json!({"os-volume_upload_image": {
        "status": row.status.as_str(),
        "size": row.size,
        "id": row.id,
        "image_id": image.id,
        "image_name": image.name,
        // The types API's names (DECISIONS.md [5.1 #8]).
        "volume_type": {
            "description": null,
            "deleted": false,
            "created_at": render::cinder_time(&row.created_at),
            "updated_at": row.updated_at.as_ref().map(render::cinder_time),
            "extra_specs": {
                "volume_backend_name": row.volume_type,
                "availability-zone": row.availability_zone,
            },
            "is_public": true,
            "deleted_at": null,
            "id": vt.map(|t| t.id),
            "name": row.volume_type,
        },
        "container_format": image.container_format,
        "disk_format": image.disk_format,
        "display_description": row.description.clone().unwrap_or_default(),
        "updated_at": row.updated_at.as_ref().map(render::cinder_time),
    }});
    if ctx.is_v3() {
        // Cinder copies these from the image Glance registered, at every
        // microversion; `/v2` keeps the seed's documented shape.
        body["os-volume_upload_image"]["visibility"] = json!(image.visibility.as_str());
        body["os-volume_upload_image"]["protected"] = json!(image.protected);
    }
    Ok(body)
}

/// 3.1's `visibility`: Cinder's schema enumerates Glance's four; this
/// image catalog keeps `private` and `public` (the domain refuses the
/// other two with a 400 of its own).
fn visibility(b: &Map<String, Value>) -> Result<String, DomainError> {
    match b.get("visibility") {
        None => Ok("private".into()),
        Some(Value::String(s))
            if matches!(s.as_str(), "community" | "public" | "private" | "shared") =>
        {
            Ok(s.clone())
        }
        Some(v) => Err(DomainError::invalid(
            "visibility",
            FieldReason::Invalid,
            format!(
                "Invalid input for field/attribute visibility. Value: {v}. \
                 {v} is not one of ['community', 'public', 'private', 'shared']"
            ),
        )),
    }
}

/// 3.1's `protected`: Cinder's `parameter_types.boolean`, a JSON boolean
/// or one of oslo's boolean words; null or anything else is a 400.
fn protected(b: &Map<String, Value>) -> Result<bool, DomainError> {
    const TRUE: [&str; 12] = [
        "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
    ];
    const FALSE: [&str; 12] = [
        "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
    ];
    match b.get("protected") {
        None => Ok(false),
        Some(Value::Bool(x)) => Ok(*x),
        Some(Value::String(s)) if TRUE.contains(&s.as_str()) => Ok(true),
        Some(Value::String(s)) if FALSE.contains(&s.as_str()) => Ok(false),
        Some(v) => Err(DomainError::invalid(
            "protected",
            FieldReason::Invalid,
            format!("Invalid input for field/attribute protected. Value: {v}. {v} is not a valid boolean."),
        )),
    }
}
