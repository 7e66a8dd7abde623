//! The image catalog's own operations (Glance-style `/image/v2/images`):
//! register an image to upload into, delete one, and the two ends of a
//! client upload. Exports from volumes are `image_upload`.

use domain::image::{ImageAggregate, ImageCommand, ImageSource, NewImage};
use domain::{Aggregate, DomainError};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterImageRequest {
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub visibility: String,
    pub protected: bool,
    pub min_disk: i64,
}

/// A queued image of the caller's project.
pub async fn register(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: RegisterImageRequest,
) -> Result<Uuid, AppError> {
    let id = Uuid::new_v4();
    app.run(caller, meta, None, move |tx| {
        domain::image::may_publish(&r.visibility, tx.caller.is_admin)
            .map_err(|e| AppError::refused(ImageAggregate::stream_id(&id.to_string()), e))?;
        let cmd = ImageCommand::Create(NewImage {
            image_id: id,
            project_id: tx.caller.project_id.clone(),
            name: r.name,
            disk_format: r.disk_format,
            container_format: r.container_format,
            visibility: r.visibility,
            protected: r.protected,
            min_disk: r.min_disk,
            source: ImageSource::Upload,
            os_type: None,
        });
        tx.execute::<ImageAggregate>(&id.to_string(), cmd)?;
        Ok(id)
    })
    .await
}

/// Runs an image command on an image the caller owns (a public image of
/// another project is readable, not writable).
pub async fn command(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    cmd: ImageCommand,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let stream = ImageAggregate::stream_id(&id.to_string());
        let (st, _) = tx.w.load::<ImageAggregate>(&id.to_string())?;
        match st.live() {
            Ok(i) if tx.caller.owns(&i.project_id) => {}
            Ok(i) if i.visibility == "public" => {
                return Err(AppError::refused(
                    stream,
                    DomainError::NotPermitted("not the image's owner.".into()),
                ))
            }
            _ => {
                return Err(AppError::refused(
                    stream,
                    DomainError::ImageNotFound(id.to_string()),
                ))
            }
        }
        tx.execute::<ImageAggregate>(&id.to_string(), cmd)?;
        Ok(())
    })
    .await
}
