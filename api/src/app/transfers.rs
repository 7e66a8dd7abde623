//! Volume transfers (CINDER-7.4.1 … 7.4.3; DECISIONS.md, Transfers
//! [5.1 #26]). Creating, accepting and deleting each change the transfer
//! and its volume in one transaction: ownership and quota usage move
//! together or not at all.

use domain::transfer::{hash_key, SnapshotRule, TransferAggregate, TransferCommand};
use domain::{
    Aggregate, DomainError, SnapshotAggregate, SnapshotCommand, SnapshotStatus, VolumeAggregate,
    VolumeCommand,
};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta};

/// A one-time key: 16 lowercase hex characters [5.1 #26].
fn new_auth_key() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// What the client asked of the volume's snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshots {
    /// Before Cinder 3.55: a volume with snapshots is refused [5.1 #26].
    Refuse,
    /// 3.55: they move with the volume.
    Move,
    /// 3.55 `no_snapshots`.
    Leave,
}

/// CINDER-7.4.1: the transfer's id and its one-time key (shown once; the
/// log keeps only its sha256).
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    volume_id: Uuid,
    name: Option<String>,
    snapshots: Snapshots,
) -> Result<(Uuid, String), AppError> {
    let transfer_id = Uuid::new_v4();
    let auth_key = new_auth_key();
    let hash = hash_key(&auth_key);
    app.run(caller, meta, None, move |tx| {
        let v = tx.volume(volume_id)?;
        let deps = projections::snapshots::dependents_of(tx.conn(), &volume_id.to_string())?;
        let rule = match snapshots {
            Snapshots::Refuse => SnapshotRule::Refuse,
            Snapshots::Leave => SnapshotRule::Leave,
            Snapshots::Move => SnapshotRule::MoveAll {
                not_available: deps
                    .iter()
                    .find(|s| s.status != SnapshotStatus::Available)
                    .and_then(|s| Uuid::parse_str(&s.id).ok()),
            },
        };
        let no_snapshots = rule.no_snapshots();
        let vol = tx.decide::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::StartTransfer {
                transfer_id,
                dependent_snapshots: deps.len(),
                snapshots: rule,
            },
        )?;
        let tr = tx.decide::<TransferAggregate>(
            &transfer_id.to_string(),
            TransferCommand::Create {
                transfer_id,
                volume_id,
                project_id: v.project_id,
                name,
                auth_key_sha256: hash,
                no_snapshots,
            },
        )?;
        tx.commit(vec![tr, vol])?;
        Ok(())
    })
    .await?;
    Ok((transfer_id, auth_key))
}

/// CINDER-7.4.2: the caller's project takes the volume with the right key
/// (a wrong key is refused and recorded); its quota must hold the volume.
/// Returns the volume id and the transfer's name.
pub async fn accept(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
    auth_key: String,
) -> Result<(Uuid, Option<String>), AppError> {
    app.run(caller, meta, None, move |tx| {
        let stream = TransferAggregate::stream_id(&id.to_string());
        let (st, _) = tx.w.load::<TransferAggregate>(&id.to_string())?;
        let Ok(t) = st.pending() else {
            return Err(AppError::refused(
                stream,
                DomainError::TransferNotFound(id.to_string()),
            ));
        };
        let volume_id = t.volume_id;
        // Cinder 3.55: unless the transfer said `no_snapshots`, the
        // volume's snapshots go with it (and count in the taker's quota).
        let moving = if t.no_snapshots {
            vec![]
        } else {
            projections::snapshots::dependents_of(tx.conn(), &volume_id.to_string())?
        };
        let name = projections::transfers::get(tx.conn(), &id.to_string())?.and_then(|r| r.name);
        let (to_project, to_user) = (tx.caller.project_id.clone(), tx.caller.user_id.clone());
        let tr = tx.decide::<TransferAggregate>(
            &id.to_string(),
            TransferCommand::Accept {
                auth_key,
                to_project: to_project.clone(),
                to_user: to_user.clone(),
            },
        )?;
        let quota = tx.headroom(&to_project)?;
        let vol = tx.decide::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::CompleteTransfer {
                transfer_id: id,
                to_project: to_project.clone(),
                to_user,
                quota,
                moving_snapshots: moving.iter().map(|s| s.size).collect(),
            },
        )?;
        let mut all = vec![tr, vol];
        for s in &moving {
            all.push(tx.decide::<SnapshotAggregate>(
                &s.id,
                SnapshotCommand::Transfer {
                    to_project: to_project.clone(),
                },
            )?);
        }
        tx.commit(all)?;
        Ok((volume_id, name))
    })
    .await
}

/// CINDER-7.4.3: the volume returns to `available`.
pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: Uuid,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let stream = TransferAggregate::stream_id(&id.to_string());
        let (st, _) = tx.w.load::<TransferAggregate>(&id.to_string())?;
        let t = match st.pending() {
            Ok(t) if tx.caller.owns(&t.project_id) => t.clone(),
            _ => {
                return Err(AppError::refused(
                    stream,
                    DomainError::TransferNotFound(id.to_string()),
                ))
            }
        };
        let mut all =
            vec![tx.decide::<TransferAggregate>(&id.to_string(), TransferCommand::Delete)?];
        // The volume may have moved on (deleted by an admin): then only
        // the transfer ends.
        if let Ok(v) = tx.decide::<VolumeAggregate>(
            &t.volume_id.to_string(),
            VolumeCommand::CancelTransfer { transfer_id: id },
        ) {
            all.push(v);
        }
        tx.commit(all)?;
        Ok(())
    })
    .await
}
