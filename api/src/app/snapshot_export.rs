//! Export a snapshot's bytes into the image catalog (the Chinese cloud's
//! `capture_instance`, the small provider's `snapshot-replicate`): a queued
//! image with the snapshot as its source, in the snapshot's project; the
//! executor converts the bytes and activates it.
//!
//! The image catalog is one for the whole service (images carry no zone),
//! so every configured zone sees the image: a destination zone is checked
//! against the catalog and recorded nowhere else. A source zone, when the
//! dialect names one, must be the snapshot's (another zone's snapshot is
//! not found there).

use domain::image::{ImageAggregate, ImageCommand, ImageSource, NewImage};
use domain::{Aggregate, DomainError};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSnapshotRequest {
    pub snapshot_id: Uuid,
    pub image_name: String,
    /// Absent: `domain::image::DEFAULT_EXPORT_FORMAT`.
    pub disk_format: Option<String>,
    /// The zone the client says the snapshot is in (the small provider's
    /// `region`).
    pub source_zone: Option<String>,
    /// The zone the image is for (the small provider's `dst_region`).
    pub destination_zone: Option<String>,
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
    let catalog = app.catalog.clone();
    app.run(caller, meta, Some(&job_id), move |tx| {
        let stream = ImageAggregate::stream_id(&image_id.to_string());
        let refuse = |e: DomainError| AppError::refused(stream.clone(), e);
        let s = tx.snapshot(r.snapshot_id)?;
        if r.source_zone
            .as_ref()
            .is_some_and(|z| *z != s.availability_zone)
        {
            return Err(refuse(DomainError::SnapshotNotFound(
                r.snapshot_id.to_string(),
            )));
        }
        if let Some(z) = &r.destination_zone {
            catalog.resolve_zone(Some(z)).map_err(&refuse)?;
        }
        domain::image::check_snapshot_source(s.status).map_err(&refuse)?;
        let cmd = ImageCommand::Create(NewImage {
            image_id,
            project_id: s.project_id.clone(),
            name: r.image_name,
            disk_format,
            container_format: domain::image::DEFAULT_CONTAINER_FORMAT.to_string(),
            visibility: "private".into(),
            protected: false,
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
