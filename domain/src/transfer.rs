//! The transfer aggregate (CINDER-7.4.x): `transfer-<uuid>`. The auth key
//! is shown once, at creation; the log keeps only its SHA-256, so reading
//! the audit trail never hands out the right to take a volume.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::volume::validate_name;
use crate::{Aggregate, DomainError};

/// What a transfer does with its volume's snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRule {
    /// Below Cinder 3.55 (and on `/v2`): a volume with snapshots is not
    /// transferred [5.1 #26].
    Refuse,
    /// 3.55 without `no_snapshots`: they move with it, and every one must
    /// be `available` (cinder/transfer/api.py `create`); the first that is
    /// not, if any.
    MoveAll { not_available: Option<Uuid> },
    /// 3.55 `no_snapshots`: the volume moves alone.
    Leave,
}

impl SnapshotRule {
    pub fn check(&self) -> Result<(), DomainError> {
        match self {
            SnapshotRule::MoveAll {
                not_available: Some(id),
            } => Err(DomainError::invalid(
                "volume_id",
                crate::error::FieldReason::Conflict,
                format!("Invalid snapshot: snapshot: {id} status must be available"),
            )),
            _ => Ok(()),
        }
    }

    /// The `no_snapshots` the transfer records.
    pub fn no_snapshots(&self) -> bool {
        *self == SnapshotRule::Leave
    }
}

pub fn hash_key(auth_key: &str) -> String {
    hex::encode(Sha256::digest(auth_key.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    Pending,
    Accepted,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: Uuid,
    pub volume_id: Uuid,
    pub project_id: String,
    pub auth_key_sha256: String,
    pub status: TransferStatus,
    /// Cinder 3.55: the snapshots stay with the donor.
    pub no_snapshots: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferState {
    pub transfer: Option<Transfer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCommand {
    Create {
        transfer_id: Uuid,
        volume_id: Uuid,
        project_id: String,
        name: Option<String>,
        auth_key_sha256: String,
        no_snapshots: bool,
    },
    Accept {
        auth_key: String,
        to_project: String,
        to_user: String,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TransferEvent {
    TransferCreated {
        transfer_id: Uuid,
        volume_id: Uuid,
        project_id: String,
        name: Option<String>,
        auth_key_sha256: String,
        /// Since v2 (`upcast`: a v1 transfer is Cinder's default, false).
        no_snapshots: bool,
    },
    /// Stored as `*_id` since v2 (`upcast`).
    TransferAccepted {
        #[serde(rename = "to_project_id")]
        to_project: String,
        #[serde(rename = "to_user_id")]
        to_user: String,
    },
    TransferDeleted {},
}

pub struct TransferAggregate;

impl TransferState {
    pub fn pending(&self) -> Result<&Transfer, DomainError> {
        match &self.transfer {
            Some(t) if t.status == TransferStatus::Pending => Ok(t),
            _ => Err(DomainError::TransferNotFound(String::new())),
        }
    }
}

impl Aggregate for TransferAggregate {
    type State = TransferState;
    type Command = TransferCommand;
    type Event = TransferEvent;

    fn stream_id(id: &str) -> String {
        format!("transfer-{id}")
    }

    fn event_type(e: &TransferEvent) -> &'static str {
        match e {
            TransferEvent::TransferCreated { .. } => "TransferCreated",
            TransferEvent::TransferAccepted { .. } => "TransferAccepted",
            TransferEvent::TransferDeleted {} => "TransferDeleted",
        }
    }

    fn decide(
        state: &TransferState,
        cmd: TransferCommand,
    ) -> Result<Vec<TransferEvent>, DomainError> {
        match cmd {
            TransferCommand::Create {
                transfer_id,
                volume_id,
                project_id,
                name,
                auth_key_sha256,
                no_snapshots,
            } => {
                if state.transfer.is_some() {
                    return Err(DomainError::invalid(
                        "id",
                        crate::error::FieldReason::Conflict,
                        "transfer already exists",
                    ));
                }
                validate_name(name.as_deref())?;
                Ok(vec![TransferEvent::TransferCreated {
                    transfer_id,
                    volume_id,
                    project_id,
                    name,
                    auth_key_sha256,
                    no_snapshots,
                }])
            }
            TransferCommand::Accept {
                auth_key,
                to_project,
                to_user,
            } => {
                let t = state.pending()?;
                if hash_key(&auth_key) != t.auth_key_sha256 {
                    return Err(DomainError::TransferBadAuthKey);
                }
                if to_project == t.project_id {
                    return Err(DomainError::invalid(
                        "project_id",
                        crate::error::FieldReason::Conflict,
                        "Invalid transfer: a project cannot accept its own transfer.",
                    ));
                }
                Ok(vec![TransferEvent::TransferAccepted {
                    to_project,
                    to_user,
                }])
            }
            TransferCommand::Delete => {
                state.pending()?;
                Ok(vec![TransferEvent::TransferDeleted {}])
            }
        }
    }

    fn evolve(mut state: TransferState, e: &TransferEvent) -> TransferState {
        match e {
            TransferEvent::TransferCreated {
                transfer_id,
                volume_id,
                project_id,
                auth_key_sha256,
                no_snapshots,
                ..
            } => {
                state.transfer = Some(Transfer {
                    id: *transfer_id,
                    volume_id: *volume_id,
                    project_id: project_id.clone(),
                    auth_key_sha256: auth_key_sha256.clone(),
                    status: TransferStatus::Pending,
                    no_snapshots: *no_snapshots,
                })
            }
            TransferEvent::TransferAccepted { .. } => {
                if let Some(t) = state.transfer.as_mut() {
                    t.status = TransferStatus::Accepted;
                }
            }
            TransferEvent::TransferDeleted {} => {
                if let Some(t) = state.transfer.as_mut() {
                    t.status = TransferStatus::Deleted;
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> Vec<TransferEvent> {
        TransferAggregate::decide(
            &TransferState::default(),
            TransferCommand::Create {
                transfer_id: Uuid::from_u128(1),
                volume_id: Uuid::from_u128(2),
                project_id: "p1".into(),
                name: None,
                auth_key_sha256: hash_key("9266c59563c84664"),
                no_snapshots: false,
            },
        )
        .unwrap()
    }

    fn accept(key: &str, project: &str) -> TransferCommand {
        TransferCommand::Accept {
            auth_key: key.into(),
            to_project: project.into(),
            to_user: "u".into(),
        }
    }

    #[test]
    fn the_right_key_from_another_project_accepts_once() {
        let ev = created();
        let s = TransferAggregate::fold(&ev);
        assert!(matches!(
            TransferAggregate::decide(&s, accept("wrong", "p2")),
            Err(DomainError::TransferBadAuthKey)
        ));
        assert!(TransferAggregate::decide(&s, accept("9266c59563c84664", "p1")).is_err());
        let mut ev2 = ev.clone();
        ev2.extend(TransferAggregate::decide(&s, accept("9266c59563c84664", "p2")).unwrap());
        let s = TransferAggregate::fold(&ev2);
        assert!(TransferAggregate::decide(&s, accept("9266c59563c84664", "p3")).is_err());
        assert!(
            TransferAggregate::decide(&s, TransferCommand::Delete).is_err(),
            "accepted transfers cannot be deleted"
        );
    }
}
