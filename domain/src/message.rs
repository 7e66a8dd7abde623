//! User messages (Cinder microversion 3.3): what went wrong with a
//! caller's request after, or instead of, its answer. A message is not
//! written: it is read off the log (a refused command that named a volume
//! or snapshot, or disk work that failed), and its id is the id of that
//! event. Only its deletion is an event, of stream `message-<id>`.
//!
//! The texts and ids are Cinder's (`cinder/message/message_field.py`), so
//! `event_id` reads `VOLUME_<RESOURCE>_<ACTION>_<DETAIL>` and
//! `user_message` `<action>:<detail>` as Cinder's do.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Aggregate, DomainError};

/// How long a message is kept at least (Cinder's `message_ttl` default,
/// 30 days): `guaranteed_until` is `created_at` plus this.
pub const TTL_SECONDS: i64 = 2_592_000;

/// Cinder's `message_level` (only errors are reported).
pub const LEVEL_ERROR: &str = "ERROR";

/// Cinder's actions: (id, text).
pub mod action {
    pub const SCHEDULE_ALLOCATE_VOLUME: (&str, &str) = ("001", "schedule allocate volume");
    pub const ATTACH_VOLUME: (&str, &str) = ("002", "attach volume");
    pub const COPY_VOLUME_TO_IMAGE: (&str, &str) = ("003", "copy volume to image");
    pub const COPY_IMAGE_TO_VOLUME: (&str, &str) = ("005", "copy image to volume");
    pub const EXTEND_VOLUME: (&str, &str) = ("007", "extend volume");
    pub const CREATE_VOLUME_FROM_BACKEND: (&str, &str) =
        ("008", "create volume from backend storage");
    pub const SNAPSHOT_CREATE: (&str, &str) = ("009", "create snapshot");
    pub const SNAPSHOT_DELETE: (&str, &str) = ("010", "delete snapshot");
    pub const SNAPSHOT_UPDATE: (&str, &str) = ("011", "update snapshot");
    pub const SNAPSHOT_METADATA_UPDATE: (&str, &str) = ("012", "update snapshot metadata");
    /// Cinder's `translate_action` of an id it does not know.
    pub const UNKNOWN: (&str, &str) = ("000", "unknown action");
}

/// Cinder's details: (id, text).
pub mod detail {
    pub const UNKNOWN_ERROR: (&str, &str) = ("001", "An unknown error occurred.");
    pub const NO_BACKEND_AVAILABLE: (&str, &str) =
        ("003", "Could not find any available weighted backend.");
    pub const QUOTA_EXCEED: (&str, &str) = ("006", "Not enough quota resource for operation.");
    pub const DRIVER_FAILED_EXTEND: (&str, &str) =
        ("010", "Volume Driver failed to extend volume.");
    pub const DRIVER_FAILED_CREATE: (&str, &str) = ("012", "Driver failed to create the volume.");
    pub const SNAPSHOT_CREATE_ERROR: (&str, &str) = ("013", "Snapshot failed to create.");
    pub const SNAPSHOT_DELETE_ERROR: (&str, &str) = ("016", "Snapshot failed to delete.");
    pub const VOLUME_INVALID_STATE: (&str, &str) = ("027", "Volume status is invalid.");
}

/// What a message is about and what happened, as Cinder classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// `VOLUME` or `VOLUME_SNAPSHOT`.
    pub resource_type: &'static str,
    pub action: (&'static str, &'static str),
    pub detail_id: &'static str,
    /// The detail's text: Cinder's for a known detail, else the refusal's
    /// own message (more use to the reader than "An unknown error").
    pub detail: String,
}

impl Classified {
    /// Cinder's `event_id`: `VOLUME_<resource>_<action>_<detail>`.
    pub fn event_id(&self) -> String {
        format!(
            "VOLUME_{}_{}_{}",
            self.resource_type, self.action.0, self.detail_id
        )
    }

    /// Cinder's `user_message`: `<action>:<detail>`.
    pub fn user_message(&self) -> String {
        format!("{}:{}", self.action.1, self.detail)
    }
}

fn known(
    resource_type: &'static str,
    action: (&'static str, &'static str),
    d: (&'static str, &'static str),
) -> Classified {
    Classified {
        resource_type,
        action,
        detail_id: d.0,
        detail: d.1.to_string(),
    }
}

/// Failed disk work, by its event's type and reason. Work Cinder reports
/// no message for (a delete, a rollback of a volume) has none here either.
pub fn for_failure(event_type: &str, reason: &str) -> Option<Classified> {
    use action as a;
    use detail as d;
    Some(match event_type {
        "VolumeCreateFailed" if reason.starts_with(crate::scheduler::NO_VALID_BACKEND) => known(
            "VOLUME",
            a::SCHEDULE_ALLOCATE_VOLUME,
            d::NO_BACKEND_AVAILABLE,
        ),
        "VolumeCreateFailed" => known(
            "VOLUME",
            a::CREATE_VOLUME_FROM_BACKEND,
            d::DRIVER_FAILED_CREATE,
        ),
        "VolumeExtendFailed" => known("VOLUME", a::EXTEND_VOLUME, d::DRIVER_FAILED_EXTEND),
        "SnapshotCreateFailed" => known(
            "VOLUME_SNAPSHOT",
            a::SNAPSHOT_CREATE,
            d::SNAPSHOT_CREATE_ERROR,
        ),
        "SnapshotDeleteFailed" => known(
            "VOLUME_SNAPSHOT",
            a::SNAPSHOT_DELETE,
            d::SNAPSHOT_DELETE_ERROR,
        ),
        _ => return None,
    })
}

/// A refused command that named `kind`'s stream (`volume`, `snapshot`),
/// by the request's method and path and the refusal's reason and message.
pub fn for_refusal(
    kind: &str,
    method: &str,
    path: &str,
    reason: &str,
    message: &str,
) -> Option<Classified> {
    use action as a;
    let resource_type = match kind {
        "volume" => "VOLUME",
        "snapshot" => "VOLUME_SNAPSHOT",
        _ => return None,
    };
    let path = path.trim_end_matches('/');
    let last = path.rsplit('/').next().unwrap_or("");
    let action = match (kind, method) {
        ("volume", "POST") if last == "volumes" => a::SCHEDULE_ALLOCATE_VOLUME,
        ("volume", _) if reason.contains("extend") => a::EXTEND_VOLUME,
        ("volume", _) if reason.contains("upload") || reason.starts_with("image") => {
            a::COPY_VOLUME_TO_IMAGE
        }
        ("volume", _) if reason.contains("attach") => a::ATTACH_VOLUME,
        ("snapshot", "POST") if last == "snapshots" => a::SNAPSHOT_CREATE,
        ("snapshot", "DELETE") => a::SNAPSHOT_DELETE,
        ("snapshot", _) if path.contains("/metadata") => a::SNAPSHOT_METADATA_UPDATE,
        ("snapshot", "PUT") => a::SNAPSHOT_UPDATE,
        _ => a::UNKNOWN,
    };
    let (detail_id, detail) = if reason.ends_with("_quota") {
        (detail::QUOTA_EXCEED.0, detail::QUOTA_EXCEED.1.to_string())
    } else if reason.contains("wrong_status") || reason.contains("not_available") {
        (detail::VOLUME_INVALID_STATE.0, message.to_string())
    } else {
        (detail::UNKNOWN_ERROR.0, message.to_string())
    };
    Some(Classified {
        resource_type,
        action,
        detail_id,
        detail,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageCommand {
    /// `exists`: the messages view has the message and the caller may see
    /// it (read in the same transaction).
    Delete { message_id: Uuid, exists: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum MessageEvent {
    MessageDeleted { message_id: Uuid },
}

pub struct MessageAggregate;

impl Aggregate for MessageAggregate {
    type State = MessageState;
    type Command = MessageCommand;
    type Event = MessageEvent;

    fn stream_id(id: &str) -> String {
        format!("message-{id}")
    }

    fn decide(state: &MessageState, cmd: MessageCommand) -> Result<Vec<MessageEvent>, DomainError> {
        match cmd {
            MessageCommand::Delete { message_id, exists } => {
                if state.deleted || !exists {
                    return Err(DomainError::MessageNotFound(message_id.to_string()));
                }
                Ok(vec![MessageEvent::MessageDeleted { message_id }])
            }
        }
    }

    fn evolve(mut state: MessageState, event: &MessageEvent) -> MessageState {
        match event {
            MessageEvent::MessageDeleted { .. } => state.deleted = true,
        }
        state
    }

    fn event_type(event: &MessageEvent) -> &'static str {
        match event {
            MessageEvent::MessageDeleted { .. } => "MessageDeleted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_no_backend_serves_is_cinders_no_valid_host_message() {
        let c = for_failure("VolumeCreateFailed", crate::scheduler::NO_VALID_BACKEND).unwrap();
        assert_eq!(c.event_id(), "VOLUME_VOLUME_001_003");
        assert_eq!(
            c.user_message(),
            "schedule allocate volume:Could not find any available weighted backend."
        );
        let c = for_failure("VolumeCreateFailed", "qemu-img: disk full").unwrap();
        assert_eq!(c.event_id(), "VOLUME_VOLUME_008_012");
        assert!(for_failure("VolumeDeleteFailed", "x").is_none());
    }

    #[test]
    fn refusals_are_classified_by_request_and_reason() {
        let c = for_refusal("volume", "POST", "/v3/p/volumes", "gigabytes_quota", "over").unwrap();
        assert_eq!(c.event_id(), "VOLUME_VOLUME_001_006");
        let c = for_refusal(
            "snapshot",
            "DELETE",
            "/v3/p/snapshots/x",
            "snapshot_wrong_status",
            "busy",
        )
        .unwrap();
        assert_eq!(c.event_id(), "VOLUME_VOLUME_SNAPSHOT_010_027");
        assert_eq!(c.user_message(), "delete snapshot:busy");
        assert!(for_refusal("transfer", "POST", "/", "x", "y").is_none());
    }

    #[test]
    fn a_message_is_deleted_once() {
        let id = Uuid::new_v4();
        let s = MessageState::default();
        let ev = MessageAggregate::decide(
            &s,
            MessageCommand::Delete {
                message_id: id,
                exists: true,
            },
        )
        .unwrap();
        let s = MessageAggregate::fold(&ev);
        assert!(MessageAggregate::decide(
            &s,
            MessageCommand::Delete {
                message_id: id,
                exists: true
            }
        )
        .is_err());
    }
}
