//! The snapshot aggregate: one stream per snapshot (`snapshot-<uuid>`).
//!
//! Rules that involve the source volume (its status when the snapshot is
//! taken) are decided here from `VolumeFacts` the caller read in the same
//! transaction, so the decider stays pure and the check cannot race.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metadata::{self, MetadataEdit};
use crate::volume::{validate_description, validate_metadata, validate_name};
use crate::{Aggregate, DomainError, VolumeStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotStatus {
    #[serde(rename = "creating")]
    Creating,
    #[serde(rename = "available")]
    Available,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "deleting")]
    Deleting,
    #[serde(rename = "error_deleting")]
    ErrorDeleting,
    #[serde(rename = "rollbacking")]
    Rollbacking,
}

impl SnapshotStatus {
    pub const ALL: [SnapshotStatus; 6] = [
        SnapshotStatus::Creating,
        SnapshotStatus::Available,
        SnapshotStatus::Error,
        SnapshotStatus::Deleting,
        SnapshotStatus::ErrorDeleting,
        SnapshotStatus::Rollbacking,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Creating => "creating",
            SnapshotStatus::Available => "available",
            SnapshotStatus::Error => "error",
            SnapshotStatus::Deleting => "deleting",
            SnapshotStatus::ErrorDeleting => "error_deleting",
            SnapshotStatus::Rollbacking => "rollbacking",
        }
    }

    /// The status a name spells, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A.4 names, including `backing-up`, which this service never sets.
    pub fn is_documented(s: &str) -> bool {
        Self::ALL.iter().any(|k| k.as_str() == s) || s == "backing-up"
    }
}

/// What a snapshot needs to know of its source volume, read in the same
/// transaction as the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFacts {
    pub id: Uuid,
    pub project_id: String,
    pub status: VolumeStatus,
    pub size: i64,
    pub volume_type: String,
    pub availability_zone: String,
    /// The volume's head snapshot: the one its current bytes descend from
    /// (the latest taken, or the one it was rolled back to). A new
    /// snapshot's parent.
    pub head_snapshot: Option<Uuid>,
    /// The volume's backend: its snapshots live there too.
    pub backend: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotWork {
    Create,
    Delete,
}

// A command lives for one decision and is moved once; boxing the big
// variant would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotCommand {
    Create {
        snapshot_id: Uuid,
        volume: VolumeFacts,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        metadata: BTreeMap<String, String>,
        force: bool,
        /// A self-contained copy of the volume's bytes instead of a layer
        /// over its chain (the Chinese cloud's `is_full` [5.2 #8]).
        full: bool,
        quota: crate::quota::Headroom,
    },
    Update {
        name: Option<String>,
        description: Option<String>,
    },
    EditMetadata(MetadataEdit),
    /// The snapshot's volume type was renamed; the snapshot records it by
    /// name (its quota counts under the type's keys), so it follows.
    FollowTypeRename {
        from: String,
        to: String,
    },
    Delete,
    /// Admin `os-force_delete`: delete whatever the status.
    ForceDelete,
    /// Admin `os-reset_status`: the operator says what the status is (no
    /// disk work; the next work item is judged against the new status).
    ResetStatus {
        status: SnapshotStatus,
    },
    /// `os-update_snapshot_status` (Nova's assisted snapshots report their
    /// progress): only from `creating` (to creating, available or error)
    /// or `deleting` (to deleting or error_deleting), as Cinder allows.
    UpdateStatus {
        status: SnapshotStatus,
        progress: Option<String>,
    },
    /// The snapshot's side of a rollback: checks it can serve as a source.
    BeginRollback {
        volume_id: Uuid,
    },
    EndRollback,
    /// t17 (Cinder 3.55): the snapshot moves with its volume's transfer.
    Transfer {
        to_project: String,
    },
    StartWork {
        kind: SnapshotWork,
    },
    CompleteWork {
        kind: SnapshotWork,
    },
    FailWork {
        kind: SnapshotWork,
        reason: String,
    },
}

// Events are decoded, folded and dropped (as `VolumeEvent`): a box would
// only complicate the serde shape.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SnapshotEvent {
    SnapshotCreateRequested {
        snapshot_id: Uuid,
        volume_id: Uuid,
        project_id: String,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        metadata: BTreeMap<String, String>,
        /// GiB: the source volume's size, counted against snapshot quotas.
        size: i64,
        volume_type: String,
        availability_zone: String,
        /// The volume's head snapshot when this one was taken: its parent
        /// in the volume's snapshot chain (a v1 event without it: none,
        /// from `upcast`).
        parent_snapshot_id: Option<Uuid>,
        /// A full copy rather than a layer (a v1 event without it: false).
        full: bool,
        /// The backend the snapshot lives on: its volume's (issue 16).
        /// Events written before placement was recorded have none; their
        /// volume was on `catalog::backend_of(volume_type)`, and so is the
        /// snapshot (the fold resolves it so, no upcast step needed).
        #[serde(default)]
        backend: Option<String>,
    },
    SnapshotWorkStarted {
        kind: SnapshotWork,
    },
    SnapshotCreated {},
    SnapshotCreateFailed {
        reason: String,
    },
    SnapshotUpdated {
        name: Option<String>,
        description: Option<String>,
    },
    SnapshotMetadataSet {
        metadata: BTreeMap<String, String>,
    },
    SnapshotTypeRenamed {
        from: String,
        to: String,
    },
    SnapshotDeleteRequested {},
    SnapshotDeleted {},
    SnapshotDeleteFailed {
        reason: String,
    },
    SnapshotRollbackStarted {
        volume_id: Uuid,
    },
    SnapshotRollbackEnded {},
    SnapshotStatusReset {
        status: SnapshotStatus,
    },
    SnapshotStatusUpdated {
        status: SnapshotStatus,
        progress: Option<String>,
    },
    /// Its volume's transfer was accepted (Cinder 3.55, not `no_snapshots`).
    SnapshotTransferred {
        from_project_id: String,
        to_project_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: Uuid,
    pub volume_id: Uuid,
    pub project_id: String,
    pub status: SnapshotStatus,
    pub size: i64,
    pub volume_type: String,
    pub availability_zone: String,
    pub metadata: BTreeMap<String, String>,
    pub work_started: bool,
    /// A full copy, not a layer (states cached before the field: false).
    #[serde(default)]
    pub full: bool,
    /// Its volume's backend (`SnapshotCreateRequested.backend`, resolved).
    pub backend: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    pub snapshot: Option<Snapshot>,
    pub deleted: bool,
}

impl SnapshotState {
    pub fn live(&self) -> Result<&Snapshot, DomainError> {
        match (&self.snapshot, self.deleted) {
            (Some(s), false) => Ok(s),
            _ => Err(DomainError::SnapshotNotFound(String::new())),
        }
    }
}

pub struct SnapshotAggregate;

impl SnapshotWork {
    fn pending(self) -> SnapshotStatus {
        match self {
            SnapshotWork::Create => SnapshotStatus::Creating,
            SnapshotWork::Delete => SnapshotStatus::Deleting,
        }
    }
}

impl Aggregate for SnapshotAggregate {
    type State = SnapshotState;
    type Command = SnapshotCommand;
    type Event = SnapshotEvent;

    fn stream_id(id: &str) -> String {
        format!("snapshot-{id}")
    }

    // 2: `Snapshot.backend` (issue 16).
    const STATE_VERSION: u32 = 2;

    fn event_type(event: &SnapshotEvent) -> &'static str {
        use SnapshotEvent::*;
        match event {
            SnapshotCreateRequested { .. } => "SnapshotCreateRequested",
            SnapshotWorkStarted { .. } => "SnapshotWorkStarted",
            SnapshotCreated {} => "SnapshotCreated",
            SnapshotCreateFailed { .. } => "SnapshotCreateFailed",
            SnapshotUpdated { .. } => "SnapshotUpdated",
            SnapshotMetadataSet { .. } => "SnapshotMetadataSet",
            SnapshotTypeRenamed { .. } => "SnapshotTypeRenamed",
            SnapshotDeleteRequested {} => "SnapshotDeleteRequested",
            SnapshotDeleted {} => "SnapshotDeleted",
            SnapshotDeleteFailed { .. } => "SnapshotDeleteFailed",
            SnapshotRollbackStarted { .. } => "SnapshotRollbackStarted",
            SnapshotRollbackEnded {} => "SnapshotRollbackEnded",
            SnapshotStatusReset { .. } => "SnapshotStatusReset",
            SnapshotStatusUpdated { .. } => "SnapshotStatusUpdated",
            SnapshotTransferred { .. } => "SnapshotTransferred",
        }
    }

    fn decide(
        state: &SnapshotState,
        cmd: SnapshotCommand,
    ) -> Result<Vec<SnapshotEvent>, DomainError> {
        use SnapshotCommand as C;
        use SnapshotEvent as E;
        use SnapshotStatus as S;
        match cmd {
            C::Create {
                snapshot_id,
                volume,
                user_id,
                name,
                description,
                metadata,
                force,
                full,
                quota,
            } => {
                if state.snapshot.is_some() {
                    return Err(DomainError::invalid(
                        "id",
                        crate::error::FieldReason::Conflict,
                        "snapshot already exists",
                    ));
                }
                match volume.status {
                    VolumeStatus::Available => {}
                    // DECISIONS.md [5.1 #22]: an in-use volume needs force.
                    VolumeStatus::InUse if force => {}
                    other => {
                        return Err(DomainError::SnapshotVolumeWrongStatus(
                            other.as_str().into(),
                        ))
                    }
                }
                validate_name(name.as_deref())?;
                validate_description(description.as_deref())?;
                validate_metadata(&metadata)?;
                quota.admit(&crate::quota::Delta::snapshot(
                    &volume.volume_type,
                    volume.size,
                ))?;
                Ok(vec![E::SnapshotCreateRequested {
                    snapshot_id,
                    volume_id: volume.id,
                    project_id: volume.project_id,
                    user_id,
                    name,
                    description,
                    metadata,
                    size: volume.size,
                    volume_type: volume.volume_type,
                    availability_zone: volume.availability_zone,
                    parent_snapshot_id: volume.head_snapshot,
                    full,
                    backend: Some(volume.backend),
                }])
            }
            C::Update { name, description } => {
                state.live()?;
                if name.is_none() && description.is_none() {
                    return Err(DomainError::NameAndDescriptionEmpty);
                }
                validate_name(name.as_deref())?;
                validate_description(description.as_deref())?;
                Ok(vec![E::SnapshotUpdated { name, description }])
            }
            C::EditMetadata(edit) => {
                let s = state.live()?;
                let metadata = metadata::apply(&s.metadata, &edit)?;
                Ok(vec![E::SnapshotMetadataSet { metadata }])
            }
            C::FollowTypeRename { from, to } => Ok(match state.live() {
                Ok(s) if s.volume_type == from && from != to => {
                    vec![E::SnapshotTypeRenamed { from, to }]
                }
                _ => vec![],
            }),
            C::Delete => {
                let s = state.live()?;
                match s.status {
                    // A failed delete may be retried.
                    S::Available | S::Error | S::ErrorDeleting => {
                        Ok(vec![E::SnapshotDeleteRequested {}])
                    }
                    other => Err(DomainError::SnapshotDeleteWrongStatus(
                        other.as_str().into(),
                    )),
                }
            }
            C::ForceDelete => {
                // Whatever the status, even `deleting` (a reset status may
                // say so with no delete queued): the executor's delete is
                // idempotent, so asking again is safe.
                state.live()?;
                Ok(vec![E::SnapshotDeleteRequested {}])
            }
            C::ResetStatus { status } => {
                state.live()?;
                if status == S::Rollbacking {
                    return Err(DomainError::invalid(
                        "status",
                        crate::error::FieldReason::Invalid,
                        "Invalid status: rollbacking is set by a rollback only.",
                    ));
                }
                Ok(vec![E::SnapshotStatusReset { status }])
            }
            C::UpdateStatus { status, progress } => {
                let s = state.live()?;
                let allowed: &[SnapshotStatus] = match s.status {
                    S::Creating => &[S::Creating, S::Available, S::Error],
                    S::Deleting => &[S::Deleting, S::ErrorDeleting],
                    _ => &[],
                };
                if !allowed.contains(&status) {
                    return Err(DomainError::invalid(
                        "status",
                        crate::error::FieldReason::Invalid,
                        format!(
                            "Provided snapshot status {} not allowed for snapshot with status {}.",
                            status.as_str(),
                            s.status.as_str()
                        ),
                    ));
                }
                if let Some(p) = &progress {
                    let ok = p
                        .strip_suffix('%')
                        .and_then(|n| n.parse::<u8>().ok())
                        .is_some_and(|n| n <= 100);
                    if !ok {
                        return Err(DomainError::invalid(
                            "progress",
                            crate::error::FieldReason::Invalid,
                            "progress must be a percentage from 0% to 100%.",
                        ));
                    }
                }
                Ok(vec![E::SnapshotStatusUpdated { status, progress }])
            }
            C::Transfer { to_project } => {
                let s = state.live()?;
                Ok(vec![E::SnapshotTransferred {
                    from_project_id: s.project_id.clone(),
                    to_project_id: to_project,
                }])
            }
            C::BeginRollback { volume_id } => {
                let s = state.live()?;
                if s.volume_id != volume_id {
                    return Err(DomainError::RollbackWrongVolume(s.volume_id.to_string()));
                }
                if s.status != S::Available {
                    return Err(DomainError::SnapshotNotAvailable(s.status.as_str().into()));
                }
                Ok(vec![E::SnapshotRollbackStarted { volume_id }])
            }
            C::EndRollback => match state.live() {
                Ok(s) if s.status == S::Rollbacking => Ok(vec![E::SnapshotRollbackEnded {}]),
                _ => Ok(vec![]),
            },
            C::StartWork { kind } => {
                let s = state.live()?;
                if s.status != kind.pending() || s.work_started {
                    return Ok(vec![]);
                }
                Ok(vec![E::SnapshotWorkStarted { kind }])
            }
            C::CompleteWork { kind } => match state.live() {
                Ok(s) if s.status == kind.pending() => Ok(vec![match kind {
                    SnapshotWork::Create => E::SnapshotCreated {},
                    SnapshotWork::Delete => E::SnapshotDeleted {},
                }]),
                _ => Ok(vec![]),
            },
            C::FailWork { kind, reason } => match state.live() {
                Ok(s) if s.status == kind.pending() => Ok(vec![match kind {
                    SnapshotWork::Create => E::SnapshotCreateFailed { reason },
                    SnapshotWork::Delete => E::SnapshotDeleteFailed { reason },
                }]),
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(mut state: SnapshotState, event: &SnapshotEvent) -> SnapshotState {
        use SnapshotEvent as E;
        use SnapshotStatus as S;
        if let E::SnapshotCreateRequested {
            snapshot_id,
            volume_id,
            project_id,
            size,
            volume_type,
            availability_zone,
            metadata,
            full,
            backend,
            ..
        } = event
        {
            let backend = backend
                .clone()
                .unwrap_or_else(|| crate::catalog::backend_of(volume_type).to_string());
            state.snapshot = Some(Snapshot {
                id: *snapshot_id,
                volume_id: *volume_id,
                project_id: project_id.clone(),
                status: S::Creating,
                size: *size,
                volume_type: volume_type.clone(),
                availability_zone: availability_zone.clone(),
                metadata: metadata.clone(),
                work_started: false,
                full: *full,
                backend,
            });
            return state;
        }
        let Some(s) = state.snapshot.as_mut() else {
            return state;
        };
        let mut set = |st: SnapshotStatus| {
            s.status = st;
            s.work_started = false;
        };
        match event {
            E::SnapshotCreateRequested { .. } | E::SnapshotUpdated { .. } => {}
            E::SnapshotWorkStarted { .. } => s.work_started = true,
            E::SnapshotCreated {} => set(S::Available),
            E::SnapshotCreateFailed { .. } => set(S::Error),
            E::SnapshotMetadataSet { metadata } => s.metadata = metadata.clone(),
            E::SnapshotTypeRenamed { to, .. } => s.volume_type = to.clone(),
            E::SnapshotDeleteRequested {} => set(S::Deleting),
            E::SnapshotDeleted {} => state.deleted = true,
            E::SnapshotDeleteFailed { .. } => set(S::ErrorDeleting),
            E::SnapshotRollbackStarted { .. } => set(S::Rollbacking),
            E::SnapshotRollbackEnded {} => set(S::Available),
            E::SnapshotStatusReset { status } | E::SnapshotStatusUpdated { status, .. } => {
                set(*status)
            }
            E::SnapshotTransferred { to_project_id, .. } => s.project_id = to_project_id.clone(),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: VolumeStatus) -> VolumeFacts {
        VolumeFacts {
            id: Uuid::nil(),
            project_id: "p".into(),
            status,
            size: 4,
            volume_type: "SSD".into(),
            availability_zone: "az-dc-1".into(),
            head_snapshot: Some(Uuid::from_u128(3)),
            backend: "fast".into(),
        }
    }

    fn create(status: VolumeStatus, force: bool) -> SnapshotCommand {
        SnapshotCommand::Create {
            snapshot_id: Uuid::from_u128(7),
            volume: facts(status),
            user_id: "u".into(),
            name: Some("s".into()),
            description: None,
            metadata: BTreeMap::new(),
            force,
            full: false,
            quota: crate::quota::Headroom::unlimited(),
        }
    }

    fn given(events: &[SnapshotEvent]) -> SnapshotState {
        SnapshotAggregate::fold(events)
    }

    #[test]
    fn a_type_rename_renames_a_live_snapshot_of_that_type_only() {
        let rename = |from: &str, to: &str| SnapshotCommand::FollowTypeRename {
            from: from.into(),
            to: to.into(),
        };
        let mut events =
            SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::Available, false)).unwrap();
        let ev = SnapshotAggregate::decide(&given(&events), rename("SSD", "fast")).unwrap();
        assert_eq!(
            ev,
            vec![SnapshotEvent::SnapshotTypeRenamed {
                from: "SSD".into(),
                to: "fast".into()
            }]
        );
        events.extend(ev);
        let s = given(&events).snapshot.unwrap();
        assert_eq!(
            (s.volume_type.as_str(), s.status),
            ("fast", SnapshotStatus::Creating)
        );
        // Twice is once; another type's rename and no snapshot change nothing.
        for (state, cmd) in [
            (given(&events), rename("SSD", "fast")),
            (given(&events), rename("SATA", "slow")),
            (given(&[]), rename("SSD", "fast")),
        ] {
            assert_eq!(SnapshotAggregate::decide(&state, cmd).unwrap(), vec![]);
        }
    }

    #[test]
    fn snapshot_of_an_available_volume_records_its_size() {
        let ev =
            SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::Available, false)).unwrap();
        assert!(matches!(
            &ev[..],
            [SnapshotEvent::SnapshotCreateRequested { size: 4, parent_snapshot_id: Some(p), .. }]
                if *p == Uuid::from_u128(3)
        ));
    }

    #[test]
    fn in_use_needs_force_and_busy_volumes_are_refused() {
        assert!(
            SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::InUse, false)).is_err()
        );
        assert!(SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::InUse, true)).is_ok());
        for st in [
            VolumeStatus::Creating,
            VolumeStatus::Extending,
            VolumeStatus::Deleting,
        ] {
            assert!(
                SnapshotAggregate::decide(&given(&[]), create(st, true)).is_err(),
                "{st:?}"
            );
        }
    }

    #[test]
    fn delete_only_when_available_or_error() {
        let req =
            SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::Available, false)).unwrap();
        let err = SnapshotAggregate::decide(&given(&req), SnapshotCommand::Delete).unwrap_err();
        assert_eq!(err.reason(), "snapshot_delete_wrong_status");
        let mut ev = req.clone();
        ev.push(SnapshotEvent::SnapshotCreated {});
        assert!(SnapshotAggregate::decide(&given(&ev), SnapshotCommand::Delete).is_ok());
    }

    #[test]
    fn rollback_only_to_the_source_volume_from_available() {
        let mut ev =
            SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::Available, false)).unwrap();
        let early = SnapshotCommand::BeginRollback {
            volume_id: Uuid::nil(),
        };
        assert_eq!(
            SnapshotAggregate::decide(&given(&ev), early)
                .unwrap_err()
                .reason(),
            "snapshot_not_available"
        );
        ev.push(SnapshotEvent::SnapshotCreated {});
        let other = SnapshotCommand::BeginRollback {
            volume_id: Uuid::from_u128(9),
        };
        assert!(matches!(
            SnapshotAggregate::decide(&given(&ev), other),
            Err(DomainError::RollbackWrongVolume(_))
        ));
        let ok = SnapshotCommand::BeginRollback {
            volume_id: Uuid::nil(),
        };
        ev.extend(SnapshotAggregate::decide(&given(&ev), ok).unwrap());
        assert_eq!(
            given(&ev).snapshot.unwrap().status,
            SnapshotStatus::Rollbacking
        );
        ev.extend(SnapshotAggregate::decide(&given(&ev), SnapshotCommand::EndRollback).unwrap());
        assert_eq!(
            given(&ev).snapshot.unwrap().status,
            SnapshotStatus::Available
        );
    }

    #[test]
    fn a_snapshot_lives_on_its_volumes_backend() {
        let ev =
            SnapshotAggregate::decide(&given(&[]), create(VolumeStatus::Available, false)).unwrap();
        assert!(matches!(
            &ev[0],
            SnapshotEvent::SnapshotCreateRequested { backend: Some(b), .. } if b == "fast"
        ));
        assert_eq!(given(&ev).snapshot.unwrap().backend, "fast");
        // Written before placement was recorded: the type's old rule.
        let mut old = serde_json::to_value(&ev[0]).unwrap();
        old["data"].as_object_mut().unwrap().remove("backend");
        let old: SnapshotEvent = serde_json::from_value(old).unwrap();
        assert_eq!(given(&[old]).snapshot.unwrap().backend, "SSD");
    }

    #[test]
    fn reset_update_and_force_delete_follow_cinder() {
        let created = vec![
            SnapshotEvent::SnapshotCreateRequested {
                snapshot_id: Uuid::nil(),
                volume_id: Uuid::nil(),
                project_id: "p".into(),
                user_id: "u".into(),
                name: None,
                description: None,
                metadata: BTreeMap::new(),
                size: 1,
                volume_type: "SSD".into(),
                availability_zone: "az".into(),
                parent_snapshot_id: None,
                full: false,
                backend: None,
            },
            SnapshotEvent::SnapshotCreated {},
        ];
        let fold = |evs: &[SnapshotEvent]| {
            evs.iter()
                .fold(SnapshotState::default(), SnapshotAggregate::evolve)
        };
        let st = fold(&created);
        // update_snapshot_status only from creating (or deleting).
        let upd = |status, p: &str| SnapshotCommand::UpdateStatus {
            status,
            progress: Some(p.into()),
        };
        assert!(SnapshotAggregate::decide(&st, upd(SnapshotStatus::Error, "80%")).is_err());
        let reset = SnapshotAggregate::decide(
            &st,
            SnapshotCommand::ResetStatus {
                status: SnapshotStatus::Creating,
            },
        )
        .unwrap();
        let mut evs = created.clone();
        evs.extend(reset);
        let st = fold(&evs);
        assert_eq!(st.live().unwrap().status, SnapshotStatus::Creating);
        assert!(SnapshotAggregate::decide(&st, upd(SnapshotStatus::Error, "180%")).is_err());
        assert!(SnapshotAggregate::decide(&st, upd(SnapshotStatus::Deleting, "80%")).is_err());
        let ok = SnapshotAggregate::decide(&st, upd(SnapshotStatus::Error, "80%")).unwrap();
        evs.extend(ok);
        assert_eq!(fold(&evs).live().unwrap().status, SnapshotStatus::Error);
        // A plain delete refuses `deleting`; force delete does not.
        evs.push(SnapshotEvent::SnapshotStatusReset {
            status: SnapshotStatus::Deleting,
        });
        let st = fold(&evs);
        assert!(SnapshotAggregate::decide(&st, SnapshotCommand::Delete).is_err());
        assert_eq!(
            SnapshotAggregate::decide(&st, SnapshotCommand::ForceDelete).unwrap(),
            vec![SnapshotEvent::SnapshotDeleteRequested {}]
        );
        assert!(SnapshotAggregate::decide(
            &st,
            SnapshotCommand::ResetStatus {
                status: SnapshotStatus::Rollbacking
            }
        )
        .is_err());
    }
}
