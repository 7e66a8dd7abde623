//! Cinder 3.27 attachment-update: a connector connects the record
//! (`attaching`); the answer's connection info describes the volume's
//! file (the dialect renders it).

use domain::volume::attach::Connector;
use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::attachment_read::volume_of;
use super::{App, AppError, Caller, RequestMeta};

/// Returns the attachment's volume.
pub async fn update(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    connector: Connector,
) -> Result<Uuid, AppError> {
    app.run(caller, meta, None, move |tx| {
        let volume_id = volume_of(tx, id)?;
        tx.execute::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::ConnectAttachment {
                attachment_id: id,
                connector,
            },
        )?;
        Ok(volume_id)
    })
    .await
}
