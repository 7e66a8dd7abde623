//! The volume operations that touch one aggregate and need no facts from
//! another: update, metadata, flags, reserve, attach and detach. Attach
//! takes a device policy: a device the client names, or the next free one
//! of the server (the small provider's `target=auto`, the Chinese cloud's
//! attach without a mount point).

use domain::volume::AttachMode;
use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

/// Runs a single-volume command as the caller.
pub async fn command(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    cmd: VolumeCommand,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        tx.volume(id)?;
        tx.execute::<VolumeAggregate>(&id.to_string(), cmd)?;
        Ok(())
    })
    .await
}

/// CINDER-7.1.10, 7.1.12, 7.1.14, 7.1.15: edits a volume's metadata and
/// returns it as the writer's fold holds it right after the edit. The
/// route used to read the volume back from the view after its commit (a
/// second trip through the blocking pool, on a read connection whose page
/// cache every commit had just invalidated); the fold is already in the
/// writer's memory, with the version this edit appended.
pub async fn edit_metadata(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    edit: domain::metadata::MetadataEdit,
) -> Result<domain::metadata::Metadata, AppError> {
    app.run(caller, meta, None, move |tx| {
        tx.volume(id)?;
        let stream = id.to_string();
        tx.execute::<VolumeAggregate>(&stream, VolumeCommand::EditMetadata(edit))?;
        let (state, _) = tx.w.load::<VolumeAggregate>(&stream)?;
        Ok(state.volume.map(|v| v.metadata).unwrap_or_default())
    })
    .await
}

/// Which device an attachment takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePolicy {
    Given(String),
    /// The first `/dev/vdX` no volume of the server is attached at.
    NextFree,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub server_id: String,
    pub host_name: Option<String>,
    pub device: DevicePolicy,
    pub mode: AttachMode,
}

/// CINDER-7.2.5: records an attachment (there are no VMs here); returns
/// the attachment id and the device it took.
pub async fn attach(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    r: AttachRequest,
) -> Result<(Uuid, String), AppError> {
    let attachment_id = Uuid::new_v4();
    app.run(caller, meta, None, move |tx| {
        tx.volume(id)?;
        let device = match r.device {
            DevicePolicy::Given(d) => d,
            DevicePolicy::NextFree => {
                let taken = projections::volumes::devices_of_server(tx.conn(), &r.server_id)?;
                domain::volume::next_free_device(&taken)
            }
        };
        let cmd = VolumeCommand::Attach {
            attachment_id,
            server_id: r.server_id,
            host_name: r.host_name,
            device: device.clone(),
            mode: r.mode,
        };
        tx.execute::<VolumeAggregate>(&id.to_string(), cmd)?;
        Ok((attachment_id, device))
    })
    .await
}

/// Attaches several volumes to one server (the Chinese cloud's `attach`),
/// all or nothing, each at the server's next free device.
pub async fn attach_many(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    ids: Vec<Uuid>,
    server_id: String,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        let mut taken = projections::volumes::devices_of_server(tx.conn(), &server_id)?;
        for id in ids {
            tx.volume(id)?;
            let device = domain::volume::next_free_device(&taken);
            taken.push(device.clone());
            let cmd = VolumeCommand::Attach {
                attachment_id: Uuid::new_v4(),
                server_id: server_id.clone(),
                host_name: None,
                device,
                mode: AttachMode::Rw,
            };
            tx.execute::<VolumeAggregate>(&id.to_string(), cmd)?;
        }
        Ok(())
    })
    .await
}

/// Detaches several volumes from one server, all or nothing; a volume not
/// attached to that server is refused.
pub async fn detach_many(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    ids: Vec<Uuid>,
    server_id: String,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        for id in ids {
            let v = tx.volume(id)?;
            let attachment_id = v
                .attachments
                .iter()
                .find(|a| a.server_id == server_id)
                .map(|a| a.attachment_id)
                .ok_or_else(|| {
                    super::AppError::refused(
                        format!("volume-{id}"),
                        domain::DomainError::AttachmentNotFound(server_id.clone()),
                    )
                })?;
            let cmd = VolumeCommand::Detach {
                attachment_id: Some(attachment_id),
            };
            tx.execute::<VolumeAggregate>(&id.to_string(), cmd)?;
        }
        Ok(())
    })
    .await
}
