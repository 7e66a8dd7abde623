//! Export a volume's bytes as an image (CINDER-7.2.4, API.md 3.15): the
//! volume goes `uploading` and a queued image is registered in one
//! transaction; the executor converts the bytes and ends both.

use domain::image::{ImageAggregate, ImageCommand, ImageSource, NewImage};
use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadImageRequest {
    pub volume_id: Uuid,
    pub image_name: String,
    /// Absent: `domain::image::DEFAULT_EXPORT_FORMAT`.
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub force: bool,
    pub os_type: Option<String>,
    /// Microversion 3.1: the image's visibility (default `private`;
    /// `public` needs Cinder's `upload_public` policy, an administrator)
    /// and Glance's `protected`.
    pub visibility: String,
    pub protected: bool,
}

/// The new image's id.
pub async fn upload(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: UploadImageRequest,
) -> Result<Uuid, AppError> {
    let image_id = Uuid::new_v4();
    let disk_format = r
        .disk_format
        .unwrap_or_else(|| domain::image::DEFAULT_EXPORT_FORMAT.to_string());
    // Refuse bad formats before anything is recorded as started.
    if let Err(e) = domain::image::check_disk_format(&disk_format) {
        let stream = format!("image-{image_id}");
        return Err(app.refuse(caller, meta, stream, e).await);
    }
    let job = super::new_job_id();
    app.run(caller, meta, Some(&job), move |tx| {
        let v = tx.volume(r.volume_id)?;
        // Cinder checks `upload_public` once the volume is found.
        domain::image::may_publish(&r.visibility, tx.caller.is_admin)
            .map_err(|e| AppError::refused(format!("volume-{}", r.volume_id), e))?;
        let start = VolumeCommand::StartUpload {
            image_id,
            force: r.force,
        };
        let vol = tx.decide::<VolumeAggregate>(&r.volume_id.to_string(), start)?;
        // The image belongs to the volume's project, also when an admin
        // exports another project's volume.
        let img = ImageCommand::Create(NewImage {
            image_id,
            project_id: v.project_id.clone(),
            name: r.image_name,
            disk_format,
            container_format: r
                .container_format
                .unwrap_or_else(|| domain::image::DEFAULT_CONTAINER_FORMAT.to_string()),
            visibility: r.visibility,
            protected: r.protected,
            min_disk: v.size,
            source: ImageSource::Volume {
                volume_id: r.volume_id,
            },
            os_type: r.os_type,
        });
        let img = tx.decide::<ImageAggregate>(&image_id.to_string(), img)?;
        tx.commit(vec![vol, img])?;
        Ok(image_id)
    })
    .await
}
