//! Export a snapshot's bytes into the image catalog (the Chinese cloud's
//! `capture_instance`, the small provider's `snapshot-replicate`): a queued
//! image with the snapshot as its source, in the snapshot's project; the
//! executor converts the bytes and activates it.

use domain::image::{ImageAggregate, ImageCommand, ImageSource, NewImage};
use domain::Aggregate;
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSnapshotRequest {
    pub snapshot_id: Uuid,
    pub image_name: String,
    /// Absent: `domain::image::DEFAULT_EXPORT_FORMAT`.
    pub disk_format: Option<String>,
}

/// The new image's id.
pub async fn export(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: ExportSnapshotRequest,
    job_id: String,
) -> Result<Uuid, AppError> {
    let image_id = Uuid::new_v4();
    let disk_format = r
        .disk_format
        .unwrap_or_else(|| domain::image::DEFAULT_EXPORT_FORMAT.to_string());
    app.run(caller, meta, Some(&job_id), move |tx| {
        let stream = ImageAggregate::stream_id(&image_id.to_string());
        let s = tx.snapshot(r.snapshot_id)?;
        domain::image::check_snapshot_source(s.status)
            .map_err(|e| AppError::refused(stream.clone(), e))?;
        let cmd = ImageCommand::Create(NewImage {
            image_id,
            project_id: s.project_id.clone(),
            name: r.image_name,
            disk_format,
            container_format: domain::image::DEFAULT_CONTAINER_FORMAT.to_string(),
            visibility: "private".into(),
            min_disk: s.size,
            source: ImageSource::Snapshot {
                snapshot_id: r.snapshot_id,
            },
            os_type: None,
        });
        tx.execute::<ImageAggregate>(&image_id.to_string(), cmd)?;
        Ok(image_id)
    })
    .await
}
