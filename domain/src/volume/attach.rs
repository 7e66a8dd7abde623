//! Cinder's attachment records (microversion 3.27 `/attachments`, 3.44
//! `os-complete`, 3.54 `mode`), the rules of cinder/volume/api.py
//! `_attachment_reserve`, `attachment_update` and the db layer's
//! `_get_statuses_from_attachments`:
//!
//! - create reserves: the volume must be `available` (or, multiattach,
//!   `in-use`); the same instance may reserve again (Nova's migration);
//!   a volume in an error status is refused. With a connector the record
//!   is connected at once (`attaching`).
//! - update connects a record (`attaching`): refused (409) in an error
//!   status or when another record of a non-multiattach volume already
//!   holds a connection.
//! - complete marks the record `attached` (the legacy `attachments` list,
//!   as os-attach makes).
//! - delete removes the record.
//!
//! The volume's status follows its records: the first of the statuses in
//! alphabetical order wins (attached > attaching > reserved), none left is
//! `available`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AttachMode, Volume, VolumeStatus};
use crate::DomainError;

/// A record's `attach_status` before it is attached (an attached record
/// lives in `Volume::attachments`, as os-attach's do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PendingStatus {
    Reserved,
    Attaching,
}

/// What the decider keeps of a record not yet attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAttachment {
    pub attachment_id: Uuid,
    pub instance_uuid: Option<String>,
    /// The mode asked at create (3.54); None is Cinder's `"null"`.
    pub attach_mode: Option<AttachMode>,
    pub status: PendingStatus,
    /// Set once a connector was given (update, or create with one).
    pub connection: Option<Connection>,
}

/// The connection a connector made: where the consumer mounts the volume
/// and in which mode (the record's mode if create asked one, else the
/// connector's, else rw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub host: Option<String>,
    /// Cinder records `na` when the connector names none.
    pub mountpoint: String,
    pub mode: AttachMode,
}

/// The parts of a client's connector this service uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connector {
    pub host: Option<String>,
    pub mountpoint: Option<String>,
    pub mode: Option<AttachMode>,
}

fn is_error(s: VolumeStatus) -> bool {
    s.as_str().contains("error")
}

/// The volume's status from its records, or None when the volume is in a
/// status of other work (an upload, an extend) that its own end restores.
pub fn status_from_attachments(v: &Volume) -> Option<VolumeStatus> {
    if !matches!(
        v.status,
        VolumeStatus::Available
            | VolumeStatus::InUse
            | VolumeStatus::Attaching
            | VolumeStatus::Reserved
    ) {
        return None;
    }
    Some(if !v.attachments.is_empty() {
        VolumeStatus::InUse
    } else if v
        .pending
        .iter()
        .any(|p| p.status == PendingStatus::Attaching)
    {
        VolumeStatus::Attaching
    } else if !v.pending.is_empty() {
        VolumeStatus::Reserved
    } else {
        VolumeStatus::Available
    })
}

/// Whether `instance` already holds a record of the volume.
fn holds(v: &Volume, instance: &str) -> bool {
    v.attachments.iter().any(|a| a.server_id == instance)
        || v.pending
            .iter()
            .any(|p| p.instance_uuid.as_deref() == Some(instance))
}

/// `_attachment_reserve` and the error-status check of `attachment_create`.
pub fn check_reserve(v: &Volume, instance: Option<&str>) -> Result<(), DomainError> {
    if is_error(v.status) {
        return Err(DomainError::InvalidVolume(format!(
            "Volume attachments can not be created if the volume is in an error state. \
             The Volume {} currently has a status of: {} ",
            v.id,
            v.status.as_str()
        )));
    }
    let (ok, expected) = if v.multiattach {
        (
            matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse),
            "available or in-use or downloading",
        )
    } else {
        (
            v.status == VolumeStatus::Available,
            "available or downloading",
        )
    };
    if ok {
        return Ok(());
    }
    // The same instance may reserve again (LP 1694530: a migrating server).
    let again = matches!(v.status, VolumeStatus::InUse | VolumeStatus::Reserved)
        && instance.is_some_and(|i| holds(v, i));
    if again {
        return Ok(());
    }
    Err(DomainError::InvalidVolume(format!(
        "Volume {} status must be {expected} to reserve, but the current status is {}.",
        v.id,
        v.status.as_str()
    )))
}

/// The pending record `id` of the volume, or 404.
pub fn pending(v: &Volume, id: Uuid) -> Result<&PendingAttachment, DomainError> {
    v.pending
        .iter()
        .find(|p| p.attachment_id == id)
        .ok_or_else(|| DomainError::AttachmentNotFound(id.to_string()))
}

/// `attachment_update`'s refusals, then the connection the connector makes.
pub fn connect(v: &Volume, id: Uuid, connector: &Connector) -> Result<Connection, DomainError> {
    let rec = match pending(v, id) {
        Ok(r) => Some(r),
        // An attached record may be updated again (a new connector).
        Err(e) if !v.attachments.iter().any(|a| a.attachment_id == id) => return Err(e),
        Err(_) => None,
    };
    if is_error(v.status) {
        return Err(DomainError::AttachmentConflict(format!(
            "Volume attachments can not be updated if the volume is in an error state. \
             The Volume {} currently has a status of: {} ",
            v.id,
            v.status.as_str()
        )));
    }
    let records = v.attachments.len() + v.pending.len();
    let others_connected = v.attachments.iter().any(|a| a.attachment_id != id)
        || v.pending
            .iter()
            .any(|p| p.attachment_id != id && p.connection.is_some());
    if records > 1 && !v.multiattach && others_connected {
        return Err(DomainError::AttachmentConflict(format!(
            "duplicate connectors detected on volume {}",
            v.id
        )));
    }
    let mode = rec
        .and_then(|r| r.attach_mode)
        .or(connector.mode)
        .unwrap_or(AttachMode::Rw);
    Ok(Connection {
        host: connector.host.clone(),
        mountpoint: connector.mountpoint.clone().unwrap_or_else(|| "na".into()),
        mode,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::volume::{Attachment, VolumeAggregate, VolumeCommand, VolumeEvent, VolumeState};
    use crate::Aggregate;

    fn vid() -> Uuid {
        Uuid::from_u128(7)
    }

    fn available(multiattach: bool) -> Vec<VolumeEvent> {
        vec![
            VolumeEvent::VolumeCreateRequested {
                volume_id: vid(),
                project_id: "p1".into(),
                user_id: "u1".into(),
                name: None,
                description: None,
                size: 1,
                availability_zone: "nova".into(),
                volume_type: "t".into(),
                metadata: BTreeMap::new(),
                multiattach,
                job_id: None,
                snapshot_id: None,
                linked_clone: false,
                batch_job_id: None,
                image_id: None,
                image_metadata: None,
                source_volume_id: None,
                backend: None,
            },
            VolumeEvent::VolumeAllocated { size: 1 },
        ]
    }

    fn run(events: &mut Vec<VolumeEvent>, cmd: VolumeCommand) -> Result<(), DomainError> {
        let s = VolumeAggregate::fold(events.iter());
        events.extend(VolumeAggregate::decide(&s, cmd)?);
        Ok(())
    }

    fn status(events: &[VolumeEvent]) -> VolumeStatus {
        VolumeAggregate::fold(events).volume.unwrap().status
    }

    fn reserve(id: u128, instance: &str, connector: Option<Connector>) -> VolumeCommand {
        VolumeCommand::ReserveAttachment {
            attachment_id: Uuid::from_u128(id),
            instance_uuid: Some(instance.into()),
            mode: None,
            connector,
        }
    }

    #[test]
    fn reserve_connect_complete_delete_moves_the_volume_status() {
        let mut ev = available(false);
        run(&mut ev, reserve(1, "i1", None)).unwrap();
        assert_eq!(status(&ev), VolumeStatus::Reserved);
        run(
            &mut ev,
            VolumeCommand::ConnectAttachment {
                attachment_id: Uuid::from_u128(1),
                connector: Connector {
                    host: Some("h".into()),
                    mountpoint: Some("/dev/vdb".into()),
                    mode: None,
                },
            },
        )
        .unwrap();
        assert_eq!(status(&ev), VolumeStatus::Attaching);
        run(
            &mut ev,
            VolumeCommand::CompleteAttachment {
                attachment_id: Uuid::from_u128(1),
            },
        )
        .unwrap();
        assert_eq!(status(&ev), VolumeStatus::InUse);
        let v = VolumeAggregate::fold(&ev).volume.unwrap();
        assert_eq!(
            v.attachments,
            vec![Attachment {
                attachment_id: Uuid::from_u128(1),
                server_id: "i1".into(),
                host_name: Some("h".into()),
                device: "/dev/vdb".into(),
                mode: AttachMode::Rw,
            }]
        );
        assert!(v.pending.is_empty());
        run(
            &mut ev,
            VolumeCommand::DeleteAttachment {
                attachment_id: Uuid::from_u128(1),
            },
        )
        .unwrap();
        assert_eq!(status(&ev), VolumeStatus::Available);
    }

    #[test]
    fn a_second_attachment_needs_multiattach_or_the_same_instance() {
        let mut ev = available(false);
        run(&mut ev, reserve(1, "i1", Some(Connector::default()))).unwrap();
        assert_eq!(status(&ev), VolumeStatus::Attaching);
        let err = run(&mut ev, reserve(2, "i2", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Invalid volume: Volume {} status must be available or downloading to reserve, \
                 but the current status is attaching.",
                vid()
            )
        );
        run(
            &mut ev,
            VolumeCommand::CompleteAttachment {
                attachment_id: Uuid::from_u128(1),
            },
        )
        .unwrap();
        // The same server again (a migration) is allowed, another is not.
        run(&mut ev, reserve(3, "i1", None)).unwrap();
        assert_eq!(status(&ev), VolumeStatus::InUse);
        assert!(run(&mut ev, reserve(4, "i2", None)).is_err());

        let mut multi = available(true);
        run(&mut multi, reserve(1, "i1", Some(Connector::default()))).unwrap();
        run(
            &mut multi,
            VolumeCommand::CompleteAttachment {
                attachment_id: Uuid::from_u128(1),
            },
        )
        .unwrap();
        run(&mut multi, reserve(2, "i2", None)).unwrap();
        assert_eq!(status(&multi), VolumeStatus::InUse);
        // Reserved (not in-use) refuses even a multiattach volume.
        let mut multi2 = available(true);
        run(&mut multi2, reserve(1, "i1", None)).unwrap();
        assert!(run(&mut multi2, reserve(2, "i2", None)).is_err());
    }

    #[test]
    fn deleting_one_of_several_keeps_the_strongest_status() {
        let mut ev = available(true);
        run(&mut ev, reserve(1, "i1", Some(Connector::default()))).unwrap();
        run(
            &mut ev,
            VolumeCommand::CompleteAttachment {
                attachment_id: Uuid::from_u128(1),
            },
        )
        .unwrap();
        run(&mut ev, reserve(2, "i2", None)).unwrap();
        run(
            &mut ev,
            VolumeCommand::DeleteAttachment {
                attachment_id: Uuid::from_u128(1),
            },
        )
        .unwrap();
        assert_eq!(status(&ev), VolumeStatus::Reserved);
        assert!(matches!(
            run(
                &mut ev,
                VolumeCommand::DeleteAttachment {
                    attachment_id: Uuid::from_u128(1)
                }
            ),
            Err(DomainError::AttachmentNotFound(_))
        ));
    }

    #[test]
    fn the_mode_asked_at_create_wins_over_the_connector() {
        let mut ev = available(false);
        run(
            &mut ev,
            VolumeCommand::ReserveAttachment {
                attachment_id: Uuid::from_u128(1),
                instance_uuid: None,
                mode: Some(AttachMode::Ro),
                connector: Some(Connector {
                    mode: Some(AttachMode::Rw),
                    ..Connector::default()
                }),
            },
        )
        .unwrap();
        let v = VolumeAggregate::fold(&ev).volume.unwrap();
        let c = v.pending[0].connection.clone().unwrap();
        assert_eq!(c.mode, AttachMode::Ro);
        assert_eq!(c.mountpoint, "na");
    }

    #[test]
    fn an_error_volume_takes_no_attachment() {
        let mut ev = available(false);
        ev[1] = VolumeEvent::VolumeCreateFailed { reason: "x".into() };
        let err = run(&mut ev, reserve(1, "i1", None)).unwrap_err();
        assert!(err.to_string().contains("in an error state"), "{err}");
        let _ = VolumeState::default();
    }
}
