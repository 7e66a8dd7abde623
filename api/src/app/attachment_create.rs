//! Cinder 3.27 attachment-create: reserves the volume for an instance
//! and, with a connector, connects it in the same transaction (3.54: the
//! mode asked).

use domain::volume::attach::Connector;
use domain::volume::AttachMode;
use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone)]
pub struct CreateAttachment {
    pub volume_id: Uuid,
    pub instance_uuid: Option<String>,
    pub mode: Option<AttachMode>,
    pub connector: Option<Connector>,
}

/// Returns the new attachment's id.
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateAttachment,
) -> Result<Uuid, AppError> {
    let attachment_id = Uuid::new_v4();
    app.run(caller, meta, None, move |tx| {
        tx.volume(r.volume_id)?;
        tx.execute::<VolumeAggregate>(
            &r.volume_id.to_string(),
            VolumeCommand::ReserveAttachment {
                attachment_id,
                instance_uuid: r.instance_uuid,
                mode: r.mode,
                connector: r.connector,
            },
        )?;
        Ok(attachment_id)
    })
    .await
}
