//! `os-volume_upload_image` (CINDER-7.2.4, API.md 3.15): parses the action
//! and renders its answer; `app::image_upload` does the work.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::image_upload::{self, UploadImageRequest};
use crate::app::queries;
use crate::{input, render, ApiError, AppState, Ctx};
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
    Ok(json!({"os-volume_upload_image": {
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
    }}))
}
