//! Cinder 3.40 `revert`: a volume goes back to its latest snapshot only
//! (cinder/api/v3/volumes.py `revert`, cinder/volume/api.py
//! `revert_to_snapshot`). The bytes move by the service's O(1) rollback.

use uuid::Uuid;

use super::{Volume, VolumeStatus};
use crate::{DomainError, SnapshotStatus};

/// The volume's most recent snapshot, as read in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    pub snapshot_id: Uuid,
    pub status: SnapshotStatus,
    /// The volume's size when the snapshot was taken.
    pub volume_size: i64,
}

/// The refusals in Cinder's order: no snapshot, not the latest (or none
/// named), another size (400); then the volume or the snapshot not
/// `available` (409).
/// `asked` is the client's text (Cinder's schema takes any string).
pub fn check(
    v: &Volume,
    latest: Option<&Latest>,
    asked: Option<&str>,
) -> Result<Uuid, DomainError> {
    let Some(l) = latest else {
        return Err(DomainError::RevertRefused(format!(
            "Volume {} doesn't have any snapshots.",
            v.id
        )));
    };
    if asked != Some(l.snapshot_id.to_string().as_str()) {
        return Err(DomainError::RevertRefused(format!(
            "Specified snapshot {} is None or not the latest one of volume {}.",
            asked.unwrap_or("None"),
            v.id
        )));
    }
    if v.size != l.volume_size {
        return Err(DomainError::RevertRefused(format!(
            "Can't revert volume {} to its latest snapshot {}. The volume size must be equal to \
             the snapshot size.",
            v.id, l.snapshot_id
        )));
    }
    if v.status != VolumeStatus::Available {
        return Err(DomainError::RevertConflict(format!(
            "Invalid volume: Can't revert volume {} to its latest snapshot {}. Volume's status \
             must be 'available'.",
            v.id, l.snapshot_id
        )));
    }
    if l.status != SnapshotStatus::Available {
        return Err(DomainError::RevertConflict(format!(
            "Invalid snapshot: Can't revert volume {} to its latest snapshot {}. Snapshot's \
             status must be 'available'.",
            v.id, l.snapshot_id
        )));
    }
    Ok(l.snapshot_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{VolumeAggregate, VolumeEvent};
    use crate::Aggregate;

    fn volume(size: i64, status: VolumeStatus) -> Volume {
        let ev = [
            VolumeEvent::VolumeCreateRequested {
                volume_id: Uuid::from_u128(1),
                project_id: "p".into(),
                user_id: "u".into(),
                name: None,
                description: None,
                size,
                availability_zone: "nova".into(),
                volume_type: "t".into(),
                metadata: Default::default(),
                multiattach: false,
                job_id: None,
                snapshot_id: None,
                linked_clone: false,
                batch_job_id: None,
                image_id: None,
                image_metadata: None,
                source_volume_id: None,
                backend: None,
            },
            VolumeEvent::VolumeAllocated { size },
        ];
        let mut v = VolumeAggregate::fold(ev.iter()).volume.unwrap();
        v.status = status;
        v
    }

    fn latest(status: SnapshotStatus, size: i64) -> Latest {
        Latest {
            snapshot_id: Uuid::from_u128(9),
            status,
            volume_size: size,
        }
    }

    #[test]
    fn only_the_latest_available_snapshot_of_the_same_size() {
        let v = volume(1, VolumeStatus::Available);
        let l = latest(SnapshotStatus::Available, 1);
        let id = l.snapshot_id.to_string();
        let id = Some(id.as_str());
        assert_eq!(check(&v, Some(&l), id), Ok(l.snapshot_id));
        let no = |r: Result<Uuid, DomainError>| r.unwrap_err();
        assert!(matches!(
            no(check(&v, None, id)),
            DomainError::RevertRefused(m) if m.contains("doesn't have any snapshots")
        ));
        assert!(matches!(
            no(check(&v, Some(&l), Some("not-a-uuid"))),
            DomainError::RevertRefused(m) if m.contains("not the latest")
        ));
        assert!(matches!(
            no(check(&v, Some(&l), None)),
            DomainError::RevertRefused(m) if m.starts_with("Specified snapshot None")
        ));
        let grown = volume(2, VolumeStatus::Available);
        assert!(matches!(
            no(check(&grown, Some(&l), id)),
            DomainError::RevertRefused(m) if m.contains("size must be equal")
        ));
        let used = volume(1, VolumeStatus::InUse);
        assert!(matches!(
            no(check(&used, Some(&l), id)),
            DomainError::RevertConflict(_)
        ));
        let busy = latest(SnapshotStatus::Creating, 1);
        assert!(matches!(
            no(check(&v, Some(&busy), id)),
            DomainError::RevertConflict(m) if m.starts_with("Invalid snapshot")
        ));
    }
}
