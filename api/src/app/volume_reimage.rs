//! Cinder 3.68 os-reimage: the volume goes `downloading`, the executor
//! writes the image's bytes over it and it returns to its status (or
//! `error`). Volume and image are read in the same write transaction as
//! the decision (`domain::volume::reimage`), so an image deleted a moment
//! earlier is refused instead of half-copied.

use domain::create_rules::{self, ImageFacts};
use domain::volume::reimage::{Reimage, ReimageImage};
use domain::{DomainError, VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn reimage(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    volume_id: Uuid,
    image_id: Uuid,
    reserved: bool,
) -> Result<(), AppError> {
    let job_id = super::new_job_id();
    let job = job_id.clone();
    app.run(caller, meta, Some(&job_id), move |tx| {
        // Cinder's order: the volume (404), then the image (404), then
        // the rules.
        tx.volume(volume_id)?;
        let stream = <VolumeAggregate as domain::Aggregate>::stream_id(&volume_id.to_string());
        let row = projections::images::get(tx.conn(), &image_id.to_string())?;
        // Another project's private image is not found, as Glance hides it.
        let Some(i) = row.filter(|i| {
            tx.caller.owns(&i.project_id) || i.visibility == projections::images::Visibility::Public
        }) else {
            return Err(AppError::refused(
                stream,
                DomainError::ImageNotFound(image_id.to_string()),
            ));
        };
        let metadata = create_rules::volume_image_metadata(&ImageFacts {
            id: i.id.clone(),
            name: i.name.clone(),
            disk_format: i.disk_format.clone(),
            container_format: i.container_format.clone(),
            min_disk: i.min_disk,
            size: i.size,
            checksum_sha256: i.checksum_sha256.clone(),
            os_type: i.os_type.clone(),
        });
        let cmd = VolumeCommand::Reimage(Box::new(Reimage {
            image: ReimageImage {
                image_id,
                status: i.status,
                size: i.size,
                min_disk: i.min_disk,
                virtual_size: i.virtual_size,
                metadata,
            },
            reserved,
            job_id: Some(job.clone()),
        }));
        let d = tx.decide::<VolumeAggregate>(&volume_id.to_string(), cmd)?;
        tx.commit(vec![d])?;
        Ok(())
    })
    .await
}
