//! Snapshot a volume (CINDER-7.3.1): the volume's facts and its owner's
//! quota are read in the same transaction as the snapshot's decision.

use std::collections::BTreeMap;

use domain::{SnapshotAggregate, SnapshotCommand, VolumeFacts};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSnapshotRequest {
    pub volume_id: Uuid,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// An in-use volume needs `force` [5.1 #22].
    pub force: bool,
    /// A client-chosen id (ZStack's `resourceUuid`); a fresh one otherwise.
    pub snapshot_id: Option<Uuid>,
}

pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateSnapshotRequest,
) -> Result<Uuid, AppError> {
    let ids = create_many(app, caller, meta, vec![r], super::new_job_id()).await?;
    // One request, one snapshot: create_many answers an id per request.
    assert_eq!(ids.len(), 1, "one snapshot per request");
    Ok(ids[0])
}

/// Snapshots several volumes under one job (the Chinese cloud's
/// `resources[]`), all or nothing; the new snapshots' ids in order.
pub async fn create_many(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    requests: Vec<CreateSnapshotRequest>,
    job_id: String,
) -> Result<Vec<Uuid>, AppError> {
    app.run(caller, meta, Some(&job_id), move |tx| {
        let mut ids = Vec::with_capacity(requests.len());
        for r in requests {
            let snapshot_id = r.snapshot_id.unwrap_or_else(Uuid::new_v4);
            let v = tx.volume(r.volume_id)?;
            let quota = tx.headroom(&v.project_id)?;
            let volume = VolumeFacts {
                id: v.id,
                project_id: v.project_id,
                status: v.status,
                size: v.size,
                volume_type: v.volume_type,
                availability_zone: v.availability_zone,
                head_snapshot: tx.head_snapshot(r.volume_id)?,
            };
            let cmd = SnapshotCommand::Create {
                snapshot_id,
                volume,
                user_id: tx.caller.user_id.clone(),
                name: r.name,
                description: r.description,
                metadata: r.metadata,
                force: r.force,
                quota,
            };
            tx.execute::<SnapshotAggregate>(&snapshot_id.to_string(), cmd)?;
            ids.push(snapshot_id);
        }
        Ok(ids)
    })
    .await
}
