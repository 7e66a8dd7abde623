//! `os-volume_upload_image` (CINDER-7.2.4, API.md 3.15): the volume goes
//! `uploading` and a queued image is registered, in one transaction; the
//! executor converts the bytes and ends both.

use domain::image::{ImageAggregate, ImageCommand, ImageSource, NewImage};
use domain::{DomainError, VolumeAggregate, VolumeCommand};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::commands::{self, volume_in_tx};
use crate::{input, render, ApiError, AppState, Ctx};

pub async fn upload_image(
    state: &AppState,
    ctx: &Ctx,
    volume_id: Uuid,
    b: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let image_name = input::opt_str(b, "image_name")
        .map_err(|e| ctx.err(e))?
        .ok_or_else(|| {
            ctx.err(DomainError::invalid(
                "EVS.5400",
                "'image_name' is required.",
            ))
        })?;
    // DECISIONS.md, Export format [5.1 #7, #8]: default vhd.
    let disk_format = input::opt_str(b, "disk_format")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_else(|| "vhd".into());
    let container_format = input::opt_str(b, "container_format")
        .map_err(|e| ctx.err(e))?
        .unwrap_or_else(|| "bare".into());
    let force = input::opt_bool(b, "force")
        .map_err(|e| ctx.err(e))?
        .unwrap_or(false);
    let os_type = input::opt_str(b, "__os_type").map_err(|e| ctx.err(e))?;
    // Refuse bad formats before anything is recorded as started.
    domain::image::check_disk_format(&disk_format).map_err(|e| ctx.err(e))?;
    let image_id = Uuid::new_v4();
    let project = ctx.project_id.clone();
    let (df, cf) = (disk_format.clone(), container_format.clone());
    commands::transact(state, ctx, None, move |tx, meta, caller| {
        let v = match volume_in_tx(tx, caller, volume_id)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let start = VolumeCommand::StartUpload { image_id, force };
        let vol =
            match tx.decide_or_reject::<VolumeAggregate>(&volume_id.to_string(), start, meta)? {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
        let img = ImageCommand::Create(NewImage {
            image_id,
            project_id: if caller.is_admin {
                v.project_id.clone()
            } else {
                project
            },
            name: image_name,
            disk_format: df,
            container_format: cf,
            visibility: "private".into(),
            min_disk: v.size,
            source: ImageSource::Volume { volume_id },
            os_type,
        });
        let img = match tx.decide_or_reject::<ImageAggregate>(&image_id.to_string(), img, meta)? {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        tx.commit(vec![vol, img])?;
        Ok(Ok(()))
    })
    .await?;
    let row = commands::visible_volume(state, ctx, &volume_id.to_string())?;
    let image = crate::images::visible_image(state, ctx, &image_id.to_string())?;
    let vt = state
        .catalog
        .types
        .iter()
        .find(|t| t.name == row.volume_type);
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
            "id": vt.map(|t| t.id.clone()),
            "name": row.volume_type,
        },
        "container_format": container_format,
        "disk_format": disk_format,
        "display_description": row.description.clone().unwrap_or_default(),
        "updated_at": row.updated_at.as_ref().map(render::cinder_time),
    }}))
}
