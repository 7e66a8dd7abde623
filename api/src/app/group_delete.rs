//! Delete a generic group (Cinder 3.13 `POST /groups/{id}/action
//! {"delete": {"delete-volumes": …}}`): with `delete-volumes`, its member
//! volumes are deleted in the same transaction (each as a volume delete,
//! the executor removing its disk), all or nothing.

use domain::group::{GroupAggregate, GroupCommand, MemberFacts};
use domain::{VolumeAggregate, VolumeCommand};
use uuid::Uuid;

use super::group_queries::group;
use super::{App, AppError, Caller, RequestMeta};

pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    delete_volumes: bool,
    job_id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, Some(&job_id.clone()), move |tx| {
        let g = group(tx, &raw)?;
        let mut members = Vec::new();
        for m in &g.volumes {
            let Ok(id) = Uuid::parse_str(m) else { continue };
            let (st, _) = tx.w.load::<VolumeAggregate>(m)?;
            let Some(v) = st.volume.filter(|_| !st.deleted) else {
                continue;
            };
            let has_snapshots = !projections::snapshots::dependents_of(tx.conn(), m)?.is_empty();
            members.push(MemberFacts {
                id,
                status: v.status.as_str().to_string(),
                attached: !v.attachments.is_empty(),
                has_snapshots,
            });
        }
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        let cmd = GroupCommand::Delete {
            delete_volumes,
            status: g.status,
            has_group_snapshots: projections::groups::group_has_snapshots(tx.conn(), &g.id)?,
            members,
            source_of_creation: projections::groups::group_is_source(tx.conn(), &g.id)?,
        };
        // The group goes first: its members are then no group's, which a
        // volume delete requires (Cinder: a volume in a group cannot be
        // deleted on its own).
        tx.execute::<GroupAggregate>(&g.id, cmd)?;
        for id in ids {
            tx.execute::<VolumeAggregate>(
                &id.to_string(),
                VolumeCommand::Delete {
                    job_id: Some(super::new_job_id()),
                    dependent_snapshots: 0,
                },
            )?;
        }
        Ok(())
    })
    .await
}
