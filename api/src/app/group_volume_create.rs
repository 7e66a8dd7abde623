//! Create a volume in a generic group (Cinder 3.13: `group_id` in a volume
//! create): the volume's creation and its joining the group are one
//! transaction, so no reader sees the volume outside its group. The group
//! admits only a volume of one of its volume types (the domain's rule).

use domain::group::{GroupAggregate, GroupCommand};
use uuid::Uuid;

use super::group_queries::group;
use super::volume_create::{command, create_and_schedule, precheck, CreateVolumeRequest};
use super::{App, AppError, Caller, RequestMeta};

pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateVolumeRequest,
    group_raw: String,
    job_id: String,
) -> Result<Uuid, AppError> {
    let id = Uuid::new_v4();
    if let Err(e) = precheck(&r, false) {
        return Err(app.refuse(caller, meta, format!("volume-{id}"), e).await);
    }
    let a = app.clone();
    app.run(caller, meta, Some(&job_id.clone()), move |tx| {
        let g = group(tx, &group_raw)?;
        let name = r.name.clone();
        let cmd = command(tx, &a, &r, id, name, Some(job_id), None)?;
        // Cinder refuses a volume without an explicit type in a group
        // (the default type is not assumed there).
        let volume_type_id = match &r.volume_type {
            None => None,
            Some(_) => projections::volume_types::by_name(tx.conn(), &cmd.volume_type)?
                .and_then(|t| Uuid::parse_str(&t.id).ok()),
        };
        // Placed as any create (the group's types name their backends).
        create_and_schedule(tx, &a, cmd)?;
        tx.execute::<GroupAggregate>(
            &g.id,
            GroupCommand::AddCreated {
                volume_id: id,
                volume_type_id,
            },
        )?;
        Ok(id)
    })
    .await
}
