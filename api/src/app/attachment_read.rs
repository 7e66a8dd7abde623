//! Reads of the attachment view (Cinder 3.27 show, list, detail), and the
//! lookup the attachment commands share: the volume an attachment belongs
//! to, if the caller may touch it.

use domain::{DomainError, VolumeAggregate};
use projections::attachments::{AttachmentQuery, AttachmentView};
use uuid::Uuid;

use super::{App, AppError, Caller, Tx};

fn not_found(id: &str) -> AppError {
    AppError::refused(
        format!("attachment-{id}"),
        DomainError::AttachmentNotFound(id.to_string()),
    )
}

/// The attachment `id` if the caller's project owns its volume.
pub async fn get(app: &App, caller: &Caller, id: Uuid) -> Result<AttachmentView, AppError> {
    match app
        .read(move |c| projections::attachments::get(c, &id.to_string()))
        .await?
    {
        Some(a) if caller.owns(&a.project_id) => Ok(a),
        _ => Err(not_found(&id.to_string())),
    }
}

pub async fn list(app: &App, q: AttachmentQuery) -> Result<Vec<AttachmentView>, AppError> {
    app.read(move |c| projections::attachments::list(c, &q))
        .await
}

/// The records left on a volume (attachment-delete's answer).
pub async fn of_volume(app: &App, volume_id: Uuid) -> Result<Vec<AttachmentView>, AppError> {
    app.read(move |c| projections::attachments::of_volume(c, &volume_id.to_string()))
        .await
}

/// Inside a command's transaction: the volume of attachment `id`, which
/// the caller must own; a stranger's attachment is as unknown as a
/// missing one (404).
pub(crate) fn volume_of(tx: &Tx<'_, '_>, id: Uuid) -> Result<Uuid, AppError> {
    let row = projections::attachments::get(tx.conn(), &id.to_string())?
        .ok_or_else(|| not_found(&id.to_string()))?;
    let volume_id = Uuid::parse_str(&row.volume_id).map_err(|_| not_found(&id.to_string()))?;
    tx.volume(volume_id).map_err(|e| match e {
        AppError::Refused(_) => AppError::refused(
            <VolumeAggregate as domain::Aggregate>::stream_id(&row.volume_id),
            DomainError::AttachmentNotFound(id.to_string()),
        ),
        other => other,
    })?;
    Ok(volume_id)
}
