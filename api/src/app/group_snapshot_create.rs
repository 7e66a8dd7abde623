//! Snapshot a generic group (Cinder 3.14 `POST /group_snapshots`): the
//! group snapshot and one snapshot of each member volume, appended in ONE
//! log transaction, so the set is consistent as of one instant of the log
//! (no member joins, leaves or changes between two of its snapshots). Each
//! member snapshot is decided by the snapshot aggregate exactly as a
//! single snapshot is (an in-use volume is taken with force, as Cinder's
//! `create_snapshots_in_db(force=True)`), and the executor takes each on
//! disk as any snapshot.

use domain::group_snapshot::{GroupFacts, GroupSnapshotAggregate, GroupSnapshotCommand, Member};
use domain::{Aggregate, DomainError, SnapshotAggregate, SnapshotCommand, VolumeFacts};
use projections::groups::GroupSnapshotRow;
use uuid::Uuid;

use super::group_queries::{group, group_snapshot_in};
use super::{App, AppError, Caller, RequestMeta};

pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    group_raw: String,
    name: Option<String>,
    description: Option<String>,
    job_id: String,
) -> Result<GroupSnapshotRow, AppError> {
    let id = Uuid::new_v4();
    app.run(caller, meta, Some(&job_id), move |tx| {
        let g = group(tx, &group_raw)?;
        let refuse = |e: DomainError| {
            AppError::refused(GroupSnapshotAggregate::stream_id(&id.to_string()), e)
        };
        let parse = |s: &str| {
            Uuid::parse_str(s).map_err(|_| refuse(DomainError::GroupNotFound(s.to_string())))
        };
        let facts = GroupFacts {
            id: parse(&g.id)?,
            project_id: g.project_id.clone(),
            group_type_id: parse(&g.group_type_id)?,
            status: g.status,
        };
        let mut members = Vec::new();
        for m in &g.volumes {
            let vid = parse(m)?;
            let v = tx.volume(vid)?;
            let snapshot_id = Uuid::new_v4();
            let quota = tx.headroom(&v.project_id)?;
            let volume = VolumeFacts {
                id: v.id,
                project_id: v.project_id,
                status: v.status,
                size: v.size,
                volume_type: v.volume_type,
                availability_zone: v.availability_zone,
                head_snapshot: tx.head_snapshot(vid)?,
                backend: v.backend,
            };
            // Appended before the next is decided: each sees the quota
            // usage the previous ones left.
            tx.execute::<SnapshotAggregate>(
                &snapshot_id.to_string(),
                SnapshotCommand::Create {
                    snapshot_id,
                    volume,
                    user_id: tx.caller.user_id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    metadata: Default::default(),
                    force: true,
                    full: false,
                    quota,
                },
            )?;
            members.push(Member {
                snapshot_id,
                volume_id: vid,
            });
        }
        tx.execute::<GroupSnapshotAggregate>(
            &id.to_string(),
            GroupSnapshotCommand::Create {
                id,
                group: facts,
                user_id: tx.caller.user_id.clone(),
                name,
                description,
                members,
            },
        )?;
        group_snapshot_in(tx.conn(), tx.caller, &id.to_string())
    })
    .await
}
