//! The volume aggregate: one stream per volume (`volume-<uuid>`).
//!
//! Client commands (create, update, extend, delete) move a volume into a
//! transitional status and record what was asked; the executor's outcome
//! commands (start, complete, fail) record what the disk work did. Outcome
//! commands are idempotent: a stale or repeated delivery decides no events,
//! which is what makes the executor's at-least-once delivery safe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{limits, Aggregate, DomainError};

/// Volume statuses of Huawei A.3 plus the ones DECISIONS.md adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VolumeStatus {
    #[serde(rename = "creating")]
    Creating,
    #[serde(rename = "available")]
    Available,
    #[serde(rename = "in-use")]
    InUse,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "extending")]
    Extending,
    #[serde(rename = "error_extending")]
    ErrorExtending,
    #[serde(rename = "deleting")]
    Deleting,
    #[serde(rename = "error_deleting")]
    ErrorDeleting,
    #[serde(rename = "error_restoring")]
    ErrorRestoring,
    #[serde(rename = "error_rollbacking")]
    ErrorRollbacking,
}

impl VolumeStatus {
    pub const ALL: [VolumeStatus; 10] = [
        VolumeStatus::Creating,
        VolumeStatus::Available,
        VolumeStatus::InUse,
        VolumeStatus::Error,
        VolumeStatus::Extending,
        VolumeStatus::ErrorExtending,
        VolumeStatus::Deleting,
        VolumeStatus::ErrorDeleting,
        VolumeStatus::ErrorRestoring,
        VolumeStatus::ErrorRollbacking,
    ];

    pub fn as_str(self) -> &'static str {
        use VolumeStatus::*;
        match self {
            Creating => "creating",
            Available => "available",
            InUse => "in-use",
            Error => "error",
            Extending => "extending",
            ErrorExtending => "error_extending",
            Deleting => "deleting",
            ErrorDeleting => "error_deleting",
            ErrorRestoring => "error_restoring",
            ErrorRollbacking => "error_rollbacking",
        }
    }

    /// Parses a status as documented; also the A.3 names this service does
    /// not produce yet, so a status filter on them is valid (and empty).
    pub fn is_documented(s: &str) -> bool {
        Self::ALL.iter().any(|k| k.as_str() == s)
            || matches!(
                s,
                "attaching"
                    | "detaching"
                    | "restoring-backup"
                    | "backing-up"
                    | "uploading"
                    | "downloading"
                    | "rollingback"
                    | "error_rollback"
                    | "awaiting-transfer"
                    | "error_detaching"
            )
    }
}

/// Which piece of disk work an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    Create,
    Extend,
    Delete,
}

impl WorkKind {
    /// The transitional status in which this work is pending.
    fn pending_status(self) -> VolumeStatus {
        match self {
            WorkKind::Create => VolumeStatus::Creating,
            WorkKind::Extend => VolumeStatus::Extending,
            WorkKind::Delete => VolumeStatus::Deleting,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVolume {
    pub volume_id: Uuid,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    /// Already resolved against the catalog (see `Catalog::resolve_zone`).
    pub availability_zone: String,
    pub volume_type: String,
    pub metadata: BTreeMap<String, String>,
    pub multiattach: bool,
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeCommand {
    Create(CreateVolume),
    Update {
        name: Option<String>,
        description: Option<String>,
        metadata: Option<BTreeMap<String, String>>,
    },
    Extend {
        new_size: i64,
        job_id: Option<String>,
    },
    Delete {
        job_id: Option<String>,
    },
    /// Executor: the disk work for `kind` has begun.
    StartWork {
        kind: WorkKind,
    },
    /// Executor: the disk work for `kind` succeeded.
    CompleteWork {
        kind: WorkKind,
    },
    /// Executor: the disk work for `kind` failed for `reason`.
    FailWork {
        kind: WorkKind,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum VolumeEvent {
    VolumeCreateRequested {
        volume_id: Uuid,
        project_id: String,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        size: i64,
        availability_zone: String,
        volume_type: String,
        metadata: BTreeMap<String, String>,
        multiattach: bool,
        job_id: Option<String>,
    },
    VolumeWorkStarted {
        kind: WorkKind,
    },
    VolumeAllocated {
        size: i64,
    },
    VolumeCreateFailed {
        reason: String,
    },
    VolumeUpdated {
        name: Option<String>,
        description: Option<String>,
        /// Replaces all metadata when present.
        #[serde(default)]
        metadata: Option<BTreeMap<String, String>>,
    },
    VolumeExtendRequested {
        old_size: i64,
        new_size: i64,
        job_id: Option<String>,
    },
    VolumeExtended {
        new_size: i64,
    },
    VolumeExtendFailed {
        reason: String,
    },
    VolumeDeleteRequested {
        job_id: Option<String>,
    },
    VolumeDeleted {},
    VolumeDeleteFailed {
        reason: String,
    },
}

/// What the decider needs to know about a volume (not the view: the view is
/// a projection with every documented field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub id: Uuid,
    pub project_id: String,
    pub size: i64,
    pub status: VolumeStatus,
    pub multiattach: bool,
    /// Status to return to when an extend ends (available or in-use).
    pub status_before_extend: VolumeStatus,
    pub pending_size: Option<i64>,
    /// The work of the current transitional status has been started.
    pub work_started: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeState {
    pub volume: Option<Volume>,
    pub deleted: bool,
}

impl VolumeState {
    /// The live volume, or 404 if it never existed or is deleted.
    fn live(&self, id_hint: &str) -> Result<&Volume, DomainError> {
        match (&self.volume, self.deleted) {
            (Some(v), false) => Ok(v),
            _ => Err(DomainError::VolumeNotFound(id_hint.to_string())),
        }
    }
}

pub struct VolumeAggregate;

pub fn validate_size(size: i64) -> Result<(), DomainError> {
    if (limits::MIN_VOLUME_GB..=limits::MAX_VOLUME_GB).contains(&size) {
        Ok(())
    } else {
        Err(DomainError::InvalidSize { got: size })
    }
}

pub fn validate_name(name: Option<&str>) -> Result<(), DomainError> {
    match name {
        Some(n) if n.len() > limits::MAX_NAME_BYTES => Err(DomainError::InvalidName(format!(
            "name must be at most {} bytes",
            limits::MAX_NAME_BYTES
        ))),
        _ => Ok(()),
    }
}

pub fn validate_description(desc: Option<&str>) -> Result<(), DomainError> {
    match desc {
        Some(d) if d.len() > limits::MAX_DESCRIPTION_BYTES => {
            Err(DomainError::InvalidDescription(format!(
                "description must be at most {} bytes",
                limits::MAX_DESCRIPTION_BYTES
            )))
        }
        _ => Ok(()),
    }
}

/// At most one data source per create (EVS.1016, API.md 3.17).
pub fn check_single_source(sources: &[bool]) -> Result<(), DomainError> {
    if sources.iter().filter(|s| **s).count() > 1 {
        Err(DomainError::invalid(
            "EVS.1016",
            "Invalid input received: May specify only one of imageRef, snapshot_id, backup_id!",
        ))
    } else {
        Ok(())
    }
}

/// Metadata rules shared by every dialect (API.md 3.12): non-empty keys,
/// 255-byte keys and values, bounded count and total size.
pub fn validate_metadata(md: &BTreeMap<String, String>) -> Result<(), DomainError> {
    if md.len() > limits::MAX_METADATA_ITEMS {
        return Err(DomainError::InvalidMetadata(format!(
            "at most {} metadata items are allowed",
            limits::MAX_METADATA_ITEMS
        )));
    }
    let mut total = 0usize;
    for (k, v) in md {
        if k.is_empty() || k.len() > limits::MAX_METADATA_KEY_BYTES {
            return Err(DomainError::InvalidMetadata(format!(
                "metadata key must be 1 to {} bytes",
                limits::MAX_METADATA_KEY_BYTES
            )));
        }
        if v.len() > limits::MAX_METADATA_VALUE_BYTES {
            return Err(DomainError::InvalidMetadata(format!(
                "metadata value of '{k}' must be at most {} bytes",
                limits::MAX_METADATA_VALUE_BYTES
            )));
        }
        total += k.len() + v.len();
    }
    if total >= limits::MAX_METADATA_TOTAL_BYTES {
        return Err(DomainError::MetadataTooLarge);
    }
    Ok(())
}

impl Aggregate for VolumeAggregate {
    type State = VolumeState;
    type Command = VolumeCommand;
    type Event = VolumeEvent;

    fn stream_id(id: &str) -> String {
        format!("volume-{id}")
    }

    fn event_type(event: &VolumeEvent) -> &'static str {
        use VolumeEvent::*;
        match event {
            VolumeCreateRequested { .. } => "VolumeCreateRequested",
            VolumeWorkStarted { .. } => "VolumeWorkStarted",
            VolumeAllocated { .. } => "VolumeAllocated",
            VolumeCreateFailed { .. } => "VolumeCreateFailed",
            VolumeUpdated { .. } => "VolumeUpdated",
            VolumeExtendRequested { .. } => "VolumeExtendRequested",
            VolumeExtended { .. } => "VolumeExtended",
            VolumeExtendFailed { .. } => "VolumeExtendFailed",
            VolumeDeleteRequested { .. } => "VolumeDeleteRequested",
            VolumeDeleted {} => "VolumeDeleted",
            VolumeDeleteFailed { .. } => "VolumeDeleteFailed",
        }
    }

    fn decide(state: &VolumeState, cmd: VolumeCommand) -> Result<Vec<VolumeEvent>, DomainError> {
        use VolumeCommand as C;
        use VolumeEvent as E;
        use VolumeStatus as S;
        match cmd {
            C::Create(c) => {
                if state.volume.is_some() {
                    return Err(DomainError::VolumeAlreadyExists(c.volume_id.to_string()));
                }
                validate_size(c.size)?;
                validate_name(c.name.as_deref())?;
                validate_description(c.description.as_deref())?;
                validate_metadata(&c.metadata)?;
                Ok(vec![E::VolumeCreateRequested {
                    volume_id: c.volume_id,
                    project_id: c.project_id,
                    user_id: c.user_id,
                    name: c.name,
                    description: c.description,
                    size: c.size,
                    availability_zone: c.availability_zone,
                    volume_type: c.volume_type,
                    metadata: c.metadata,
                    multiattach: c.multiattach,
                    job_id: c.job_id,
                }])
            }
            C::Update {
                name,
                description,
                metadata,
            } => {
                state.live("")?;
                if name.is_none() && description.is_none() && metadata.is_none() {
                    return Err(DomainError::NameAndDescriptionEmpty);
                }
                validate_name(name.as_deref())?;
                validate_description(description.as_deref())?;
                if let Some(md) = &metadata {
                    validate_metadata(md)?;
                }
                Ok(vec![E::VolumeUpdated {
                    name,
                    description,
                    metadata,
                }])
            }
            C::Extend { new_size, job_id } => {
                let v = state.live("")?;
                match v.status {
                    S::Available => {}
                    S::InUse if v.multiattach => return Err(DomainError::ExtendMultiattachInUse),
                    S::InUse => {}
                    S::ErrorExtending => return Err(DomainError::ExtendErrorExtending),
                    other => return Err(DomainError::ExtendWrongStatus(other.as_str().into())),
                }
                if new_size <= v.size {
                    return Err(DomainError::NewSizeNotGreater {
                        old: v.size,
                        new: new_size,
                    });
                }
                validate_size(new_size)?;
                Ok(vec![E::VolumeExtendRequested {
                    old_size: v.size,
                    new_size,
                    job_id,
                }])
            }
            C::Delete { job_id } => {
                let v = state.live("")?;
                match v.status {
                    S::Available
                    | S::Error
                    | S::ErrorExtending
                    | S::ErrorRestoring
                    | S::ErrorRollbacking
                    // A failed delete may be retried (Cinder allows it too).
                    | S::ErrorDeleting => Ok(vec![E::VolumeDeleteRequested { job_id }]),
                    other => Err(DomainError::DeleteWrongStatus(other.as_str().into())),
                }
            }
            C::StartWork { kind } => {
                let v = state.live("")?;
                if v.status != kind.pending_status() || v.work_started {
                    return Ok(vec![]); // stale or repeated delivery
                }
                Ok(vec![E::VolumeWorkStarted { kind }])
            }
            C::CompleteWork { kind } => {
                let v = match state.live("") {
                    Ok(v) => v,
                    Err(_) => return Ok(vec![]),
                };
                if v.status != kind.pending_status() {
                    return Ok(vec![]);
                }
                Ok(vec![match kind {
                    WorkKind::Create => E::VolumeAllocated { size: v.size },
                    WorkKind::Extend => E::VolumeExtended {
                        new_size: v.pending_size.unwrap_or(v.size),
                    },
                    WorkKind::Delete => E::VolumeDeleted {},
                }])
            }
            C::FailWork { kind, reason } => {
                let v = match state.live("") {
                    Ok(v) => v,
                    Err(_) => return Ok(vec![]),
                };
                if v.status != kind.pending_status() {
                    return Ok(vec![]);
                }
                Ok(vec![match kind {
                    WorkKind::Create => E::VolumeCreateFailed { reason },
                    WorkKind::Extend => E::VolumeExtendFailed { reason },
                    WorkKind::Delete => E::VolumeDeleteFailed { reason },
                }])
            }
        }
    }

    fn evolve(mut state: VolumeState, event: &VolumeEvent) -> VolumeState {
        use VolumeEvent as E;
        use VolumeStatus as S;
        if let E::VolumeCreateRequested {
            volume_id,
            project_id,
            size,
            multiattach,
            ..
        } = event
        {
            state.volume = Some(Volume {
                id: *volume_id,
                project_id: project_id.clone(),
                size: *size,
                status: S::Creating,
                multiattach: *multiattach,
                status_before_extend: S::Available,
                pending_size: None,
                work_started: false,
            });
            return state;
        }
        let Some(v) = state.volume.as_mut() else {
            return state;
        };
        match event {
            E::VolumeCreateRequested { .. } => {}
            E::VolumeWorkStarted { .. } => v.work_started = true,
            E::VolumeAllocated { .. } => {
                v.status = S::Available;
                v.work_started = false;
            }
            E::VolumeCreateFailed { .. } => {
                v.status = S::Error;
                v.work_started = false;
            }
            E::VolumeUpdated { .. } => {}
            E::VolumeExtendRequested { new_size, .. } => {
                v.status_before_extend = v.status;
                v.status = S::Extending;
                v.pending_size = Some(*new_size);
                v.work_started = false;
            }
            E::VolumeExtended { new_size } => {
                v.size = *new_size;
                v.status = v.status_before_extend;
                v.pending_size = None;
                v.work_started = false;
            }
            E::VolumeExtendFailed { .. } => {
                v.status = S::ErrorExtending;
                v.pending_size = None;
                v.work_started = false;
            }
            E::VolumeDeleteRequested { .. } => {
                v.status = S::Deleting;
                v.work_started = false;
            }
            E::VolumeDeleted {} => state.deleted = true,
            E::VolumeDeleteFailed { .. } => {
                v.status = S::ErrorDeleting;
                v.work_started = false;
            }
        }
        state
    }
}

#[cfg(test)]
mod tests;
