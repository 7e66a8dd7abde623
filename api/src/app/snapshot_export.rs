//! Export a snapshot's frozen bytes as an image (the small provider's
//! `snapshot-replicate`): a queued image with
//! `ImageSource::Snapshot` is registered in one transaction, after the
//! snapshot (the caller's, available, in the source zone) and the
//! destination zone are checked; the executor converts the bytes and ends
//! the image (`active`, or `killed` with a reason).
//!
//! The image catalog is one for the whole service (images carry no zone),
//! so every configured zone sees the image: the destination zone is
//! checked against the catalog and recorded in nothing else.

use domain::image::{ImageAggregate, ImageCommand, ImageSource, NewImage};
use domain::{Aggregate, DomainError, SnapshotAggregate};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSnapshotRequest {
    pub snapshot_id: Uuid,
    /// The zone the client says the snapshot is in; another zone's
    /// snapshot is not found there.
    pub source_zone: Option<String>,
    pub destination_zone: String,
    pub image_name: String,
    pub disk_format: String,
}

/// The new image's id.
pub async fn export(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: ExportSnapshotRequest,
) -> Result<Uuid, AppError> {
    let image_id = Uuid::new_v4();
    let job = super::new_job_id();
    let catalog = app.catalog.clone();
    app.run(caller, meta, Some(&job), move |tx| {
        let stream = SnapshotAggregate::stream_id(&r.snapshot_id.to_string());
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
        catalog
            .resolve_zone(Some(&r.destination_zone))
            .map_err(&refuse)?;
        domain::image::check_snapshot_exportable(s.status).map_err(&refuse)?;
        // The image belongs to the snapshot's project, also when an admin
        // exports another project's snapshot.
        let cmd = ImageCommand::Create(NewImage {
            image_id,
            project_id: s.project_id.clone(),
            name: r.image_name,
            disk_format: r.disk_format,
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
