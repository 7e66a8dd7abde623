//! Cinder 3.44 `os-complete`: the consumer attached the volume; the
//! record is `attached` and the volume `in-use`.

use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::attachment_read::volume_of;
use super::{App, AppError, Caller, RequestMeta};

pub async fn complete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let volume_id = volume_of(tx, id)?;
        tx.execute::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::CompleteAttachment { attachment_id: id },
        )?;
        Ok(())
    })
    .await
}
