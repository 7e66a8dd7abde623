//! Cinder 3.71 `os-extend_volume_completion` (an administrator's, as
//! Nova's): the rule is `domain::volume::completion`; a refusal is
//! recorded like any other.

use domain::VolumeAggregate;
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

pub async fn complete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let v = tx.volume(id)?;
        domain::volume::completion::check(&v).map_err(|e| {
            AppError::refused(
                <VolumeAggregate as domain::Aggregate>::stream_id(&id.to_string()),
                e,
            )
        })
    })
    .await
}
