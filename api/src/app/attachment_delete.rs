//! Cinder 3.27 attachment-delete: the record goes; the volume's status
//! follows the records left (`available` when none).

use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::attachment_read::volume_of;
use super::{App, AppError, Caller, RequestMeta};

/// Returns the volume the attachment belonged to.
pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
) -> Result<Uuid, AppError> {
    app.run(caller, meta, None, move |tx| {
        let volume_id = volume_of(tx, id)?;
        tx.execute::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::DeleteAttachment { attachment_id: id },
        )?;
        Ok(volume_id)
    })
    .await
}
