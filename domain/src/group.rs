//! The generic volume group aggregate (Cinder 3.13+): one stream per group
//! (`group-<uuid>`), with Cinder's rules of `cinder/group/api.py`. The
//! group records which volumes are its members; a volume's `group_id` is
//! the groups view's answer, so no volume event changes shape.
//!
//! Membership changes need no disk work here (every volume of this
//! service lives on its one backend), so an update records the new
//! membership at once, where Cinder passes through `updating`. A group
//! created from a group snapshot or another group is `creating` while the
//! member volumes it created are: its shown status follows theirs
//! (`shown_status`), until they are all made or one failed.
//!
//! Facts from outside the stream (the volumes' statuses and owners, the
//! types, the quota) come in the command, read by the use case in the same
//! transaction, so the decider stays pure and holds the rule.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Aggregate, DomainError};

/// Cinder's `GroupStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupStatus {
    #[serde(rename = "creating")]
    Creating,
    #[serde(rename = "available")]
    Available,
    #[serde(rename = "updating")]
    Updating,
    #[serde(rename = "deleting")]
    Deleting,
    #[serde(rename = "deleted")]
    Deleted,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "error_deleting")]
    ErrorDeleting,
    #[serde(rename = "in-use")]
    InUse,
}

impl GroupStatus {
    pub const ALL: [GroupStatus; 8] = [
        GroupStatus::Creating,
        GroupStatus::Available,
        GroupStatus::Updating,
        GroupStatus::Deleting,
        GroupStatus::Deleted,
        GroupStatus::Error,
        GroupStatus::ErrorDeleting,
        GroupStatus::InUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Creating => "creating",
            GroupStatus::Available => "available",
            GroupStatus::Updating => "updating",
            GroupStatus::Deleting => "deleting",
            GroupStatus::Deleted => "deleted",
            GroupStatus::Error => "error",
            GroupStatus::ErrorDeleting => "error_deleting",
            GroupStatus::InUse => "in-use",
        }
    }

    pub fn parse(s: &str) -> Option<GroupStatus> {
        GroupStatus::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Volume statuses Cinder lets a volume join a group in
/// (`VALID_ADD_VOL_TO_GROUP_STATUS`) and leave it in
/// (`VALID_REMOVE_VOL_FROM_GROUP_STATUS`).
pub const ADD_STATUSES: [&str; 2] = ["available", "in-use"];
pub const REMOVE_STATUSES: [&str; 4] = ["available", "in-use", "error", "error_deleting"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: Uuid,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_type_id: Uuid,
    pub volume_type_ids: Vec<Uuid>,
    pub availability_zone: String,
    pub status: GroupStatus,
    pub volumes: BTreeSet<Uuid>,
    pub group_snapshot_id: Option<Uuid>,
    pub source_group_id: Option<Uuid>,
    /// Members being created from the source: the shown status follows
    /// theirs while the recorded one is `creating`.
    pub pending: BTreeSet<Uuid>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub group: Option<Group>,
    pub deleted: bool,
}

/// The status a group shows: the recorded one, except that a group made
/// from a source is `creating` while any member it made is, `error` once
/// one failed, and `available` when all are made. `pending` holds those
/// members' volume statuses (a deleted one: absent).
pub fn shown_status(g: &Group, pending: &[&str]) -> GroupStatus {
    shown(g.status, !g.pending.is_empty(), pending)
}

/// `shown_status` from the recorded status, whether members are pending,
/// and their statuses (what the groups view keeps).
pub fn shown(recorded: GroupStatus, has_pending: bool, pending: &[&str]) -> GroupStatus {
    if recorded != GroupStatus::Creating || !has_pending {
        return recorded;
    }
    if pending.iter().any(|s| s.starts_with("error")) {
        GroupStatus::Error
    } else if pending
        .iter()
        .all(|s| !matches!(*s, "creating" | "downloading"))
    {
        GroupStatus::Available
    } else {
        GroupStatus::Creating
    }
}

/// A volume named in an update's `add_volumes`, as the use case found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// None: no such volume (or another project's, which is not found).
    pub volume: Option<CandidateVolume>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateVolume {
    pub id: Uuid,
    pub project_id: String,
    pub status: String,
    /// The id of the volume's type (None: a type the view no longer has).
    pub volume_type_id: Option<Uuid>,
    /// The group it is in now, if any.
    pub group_id: Option<Uuid>,
}

/// A member volume as group deletion needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    pub id: Uuid,
    pub status: String,
    pub attached: bool,
    pub has_snapshots: bool,
}

/// Where a new group's volumes come from (3.14 create-from-source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    None,
    GroupSnapshot {
        id: Uuid,
        /// The group snapshot's status as shown.
        status: String,
        /// The new member volumes (one per snapshot of the set).
        members: Vec<Uuid>,
    },
    Group {
        id: Uuid,
        status: GroupStatus,
        members: Vec<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCommand {
    Create {
        id: Uuid,
        project_id: String,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        group_type_id: Uuid,
        volume_type_ids: Vec<Uuid>,
        availability_zone: String,
        source: Source,
        /// The project's live groups and its `groups` limit (-1: none).
        groups_in_use: i64,
        groups_limit: i64,
    },
    Update {
        name: Option<String>,
        description: Option<String>,
        add: Vec<Candidate>,
        /// The ids asked to be removed, and the members' statuses.
        remove: Vec<String>,
        member_statuses: Vec<(Uuid, String)>,
    },
    /// A volume created in the group (`group_id` of a volume create).
    AddCreated {
        volume_id: Uuid,
        /// The new volume's type, by id.
        volume_type_id: Option<Uuid>,
    },
    ResetStatus(GroupStatus),
    Delete {
        delete_volumes: bool,
        /// The group's status as shown.
        status: GroupStatus,
        has_group_snapshots: bool,
        members: Vec<MemberFacts>,
        /// A group or group snapshot being created from this group.
        source_of_creation: bool,
    },
    /// enable/disable/failover replication and list targets (3.38): only a
    /// group whose type has `group_replication_enabled` may, and only with
    /// a backend that replicates (this one does not).
    Replication {
        group_type_replicated: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GroupEvent {
    GroupCreated {
        id: Uuid,
        project_id: String,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        group_type_id: Uuid,
        volume_type_ids: Vec<Uuid>,
        availability_zone: String,
        status: GroupStatus,
        group_snapshot_id: Option<Uuid>,
        source_group_id: Option<Uuid>,
        /// Member volumes created with the group (from its source).
        volumes: Vec<Uuid>,
    },
    GroupUpdated {
        name: Option<String>,
        description: Option<String>,
    },
    GroupVolumesAdded {
        volume_ids: Vec<Uuid>,
    },
    GroupVolumesRemoved {
        volume_ids: Vec<Uuid>,
    },
    GroupStatusReset {
        status: GroupStatus,
    },
    GroupDeleted {
        /// The member volumes deleted with it.
        volume_ids: Vec<Uuid>,
    },
}

pub struct GroupAggregate;

fn refused(msg: impl Into<String>) -> DomainError {
    DomainError::GroupRefused(msg.into())
}

fn invalid_volume(msg: impl Into<String>) -> DomainError {
    DomainError::invalid("volumes", crate::FieldReason::Invalid, msg)
}

/// Cinder's group name and description: at most 255 characters.
fn validate_text(field: &'static str, v: Option<&str>) -> Result<(), DomainError> {
    match v {
        Some(s) if s.chars().count() > 255 => Err(DomainError::invalid(
            field,
            crate::FieldReason::Invalid,
            format!("Group {field} must be at most 255 characters."),
        )),
        _ => Ok(()),
    }
}

/// May a volume be created in (or join) this group now: Cinder's
/// `create` with `group_id`: the group's types must include the volume's.
pub fn admits_type(g: &Group, volume_type_id: Option<Uuid>) -> Result<(), DomainError> {
    match volume_type_id {
        Some(t) if g.volume_type_ids.contains(&t) => Ok(()),
        Some(t) => Err(DomainError::invalid(
            "volume_type",
            crate::FieldReason::Invalid,
            format!(
                "Invalid volume_type provided: {t} (requested type must be supported by this group)."
            ),
        )),
        None => Err(DomainError::invalid(
            "volume_type",
            crate::FieldReason::Missing,
            "volume_type must be provided when creating a volume in a group.",
        )),
    }
}

/// Cinder: a volume in a group is deleted with its group (`delete-volumes`)
/// or after leaving it, never on its own; `group_id` is its group.
pub fn refuse_member_delete(group_id: Option<&str>) -> Result<(), DomainError> {
    match group_id {
        Some(g) => Err(DomainError::invalid(
            "group_id",
            crate::FieldReason::Conflict,
            format!("Invalid volume: Volume must not belong to a group (it is in group {g}); remove it from the group or delete the group with delete-volumes."),
        )),
        None => Ok(()),
    }
}

/// Cinder: a volume in a group is not retyped (its type is one the group
/// lists; `retype` expects `group_id` None).
pub fn refuse_member_retype(group_id: Option<&str>) -> Result<(), DomainError> {
    match group_id {
        Some(g) => Err(DomainError::RetypeRefused(format!(
            "Retype needs volume to not be part of a group (it is in group {g})."
        ))),
        None => Ok(()),
    }
}

/// Cinder: a snapshot of a group snapshot is deleted with its set, never
/// on its own ("Snapshot must not be part of a group.").
pub fn refuse_set_member_delete(group_snapshot_id: Option<&str>) -> Result<(), DomainError> {
    match group_snapshot_id {
        Some(gs) => Err(DomainError::invalid(
            "group_snapshot_id",
            crate::FieldReason::Conflict,
            format!("Invalid snapshot: Snapshot must not be part of a group (it is in group snapshot {gs})."),
        )),
        None => Ok(()),
    }
}

impl GroupAggregate {
    fn create(cmd: GroupCommand) -> Result<Vec<GroupEvent>, DomainError> {
        let GroupCommand::Create {
            id,
            project_id,
            user_id,
            name,
            description,
            group_type_id,
            volume_type_ids,
            availability_zone,
            source,
            groups_in_use,
            groups_limit,
        } = cmd
        else {
            unreachable!("only Create")
        };
        validate_text("name", name.as_deref())?;
        validate_text("description", description.as_deref())?;
        if volume_type_ids.is_empty() {
            return Err(DomainError::invalid(
                "volume_types",
                crate::FieldReason::Missing,
                "volume_types must be provided to create group.",
            ));
        }
        if groups_limit >= 0 && groups_in_use + 1 > groups_limit {
            return Err(DomainError::GroupCountQuota {
                limit: groups_limit,
                in_use: groups_in_use,
            });
        }
        let (status, group_snapshot_id, source_group_id, volumes) = match source {
            Source::None => (GroupStatus::Available, None, None, Vec::new()),
            Source::GroupSnapshot {
                id: gs,
                status,
                members,
            } => {
                if status != "available" {
                    return Err(refused(format!(
                        "Group snapshot {gs} status must be available, but current status is: {status}."
                    )));
                }
                if members.is_empty() {
                    return Err(refused(
                        "Group snapshot is empty. No group will be created.",
                    ));
                }
                (GroupStatus::Creating, Some(gs), None, members)
            }
            Source::Group {
                id: sg,
                status,
                members,
            } => {
                if status != GroupStatus::Available {
                    return Err(refused(format!(
                        "Source group {sg} status must be available, but current status is: {}.",
                        status.as_str()
                    )));
                }
                if members.is_empty() {
                    return Err(refused("Source Group is empty. No group will be created."));
                }
                (GroupStatus::Creating, None, Some(sg), members)
            }
        };
        Ok(vec![GroupEvent::GroupCreated {
            id,
            project_id,
            user_id,
            name,
            description,
            group_type_id,
            volume_type_ids,
            availability_zone,
            status,
            group_snapshot_id,
            source_group_id,
            volumes,
        }])
    }

    /// Cinder's `update`: name/description, `add_volumes` and
    /// `remove_volumes` (`_validate_add_volumes`, `_validate_remove_volumes`).
    fn update(
        g: &Group,
        name: Option<String>,
        description: Option<String>,
        add: Vec<Candidate>,
        remove: Vec<String>,
        member_statuses: Vec<(Uuid, String)>,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        validate_text("name", name.as_deref())?;
        validate_text("description", description.as_deref())?;
        let name = name.filter(|n| g.name.as_ref() != Some(n));
        let description = description.filter(|d| g.description.as_ref() != Some(d));
        let both: Vec<&String> = add
            .iter()
            .map(|c| &c.id)
            .filter(|a| remove.contains(a))
            .collect();
        if !both.is_empty() {
            return Err(invalid_volume(format!(
                "Invalid volume: UUIDs {both:?} are in both add and remove volume list."
            )));
        }
        let mut removed = Vec::new();
        for r in &remove {
            let member = member_statuses.iter().find(|(id, _)| id.to_string() == *r);
            match member {
                Some((id, status)) if REMOVE_STATUSES.contains(&status.as_str()) => {
                    if !removed.contains(id) {
                        removed.push(*id);
                    }
                }
                Some((id, status)) => {
                    return Err(invalid_volume(format!(
                        "Invalid volume: Cannot remove volume {id} from group {} because volume is in an invalid state: {status}. Valid states are: {REMOVE_STATUSES:?}.",
                        g.id
                    )))
                }
                None => {
                    return Err(invalid_volume(format!(
                        "Invalid volume: Cannot remove volume {r} from group {} because it is not in the group.",
                        g.id
                    )))
                }
            }
        }
        let mut added = Vec::new();
        for c in add {
            // Already a member: nothing to add (Cinder drops it).
            if g.volumes.iter().any(|m| m.to_string() == c.id) {
                continue;
            }
            let Some(v) = c.volume else {
                return Err(invalid_volume(format!(
                    "Invalid volume: Cannot add volume {} to group {} because volume cannot be found.",
                    c.id, g.id
                )));
            };
            let cannot = |why: String| {
                invalid_volume(format!(
                    "Invalid volume: Cannot add volume {} to group {} {why}",
                    v.id, g.id
                ))
            };
            if let Some(other) = v.group_id {
                return Err(cannot(format!("because it is already in group {other}.")));
            }
            if v.project_id != g.project_id {
                return Err(cannot("as they belong to different projects.".into()));
            }
            match v.volume_type_id {
                None => return Err(cannot("because it has no volume type.".into())),
                Some(t) if !g.volume_type_ids.contains(&t) => {
                    return Err(cannot(format!(
                        "because volume type {t} is not supported by the group."
                    )))
                }
                Some(_) => {}
            }
            if !ADD_STATUSES.contains(&v.status.as_str()) {
                return Err(cannot(format!(
                    "because volume is in an invalid state: {}. Valid states are: {ADD_STATUSES:?}.",
                    v.status
                )));
            }
            if !added.contains(&v.id) {
                added.push(v.id);
            }
        }
        if name.is_none() && description.is_none() && added.is_empty() && removed.is_empty() {
            return Err(refused(format!(
                "Cannot update group {} because no valid name, description, add_volumes, or remove_volumes were provided.",
                g.id
            )));
        }
        // Cinder: a membership change needs the group available; a name or
        // description alone may change in any status.
        if (!added.is_empty() || !removed.is_empty()) && g.status != GroupStatus::Available {
            return Err(refused("Group status must be available."));
        }
        let mut out = Vec::new();
        if name.is_some() || description.is_some() {
            out.push(GroupEvent::GroupUpdated { name, description });
        }
        if !removed.is_empty() {
            out.push(GroupEvent::GroupVolumesRemoved {
                volume_ids: removed,
            });
        }
        if !added.is_empty() {
            out.push(GroupEvent::GroupVolumesAdded { volume_ids: added });
        }
        Ok(out)
    }

    /// Cinder's `delete`.
    fn delete(
        g: &Group,
        delete_volumes: bool,
        status: GroupStatus,
        has_group_snapshots: bool,
        members: Vec<MemberFacts>,
        source_of_creation: bool,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        if !delete_volumes && !matches!(status, GroupStatus::Available | GroupStatus::Error) {
            return Err(refused(format!(
                "Group status must be available or error, but current status is: {}",
                status.as_str()
            )));
        }
        if has_group_snapshots {
            return Err(refused("Group has existing snapshots."));
        }
        if !members.is_empty() && !delete_volumes {
            return Err(refused(format!(
                "Group {} still contains volumes. The delete-volumes flag is required to delete it.",
                g.id
            )));
        }
        for m in &members {
            if m.attached {
                return Err(refused(format!(
                    "Volume in group {} is attached. Need to detach first.",
                    g.id
                )));
            }
            if m.has_snapshots {
                return Err(refused("Volume in group still has dependent snapshots."));
            }
        }
        if source_of_creation {
            return Err(refused(format!(
                "Cannot delete group {}. It cannot be the source for an ongoing group or group snapshot creation.",
                g.id
            )));
        }
        Ok(vec![GroupEvent::GroupDeleted {
            volume_ids: members.iter().map(|m| m.id).collect(),
        }])
    }
}

impl Aggregate for GroupAggregate {
    type State = GroupState;
    type Command = GroupCommand;
    type Event = GroupEvent;

    fn stream_id(id: &str) -> String {
        format!("group-{id}")
    }

    fn event_type(event: &GroupEvent) -> &'static str {
        use GroupEvent::*;
        match event {
            GroupCreated { .. } => "GroupCreated",
            GroupUpdated { .. } => "GroupUpdated",
            GroupVolumesAdded { .. } => "GroupVolumesAdded",
            GroupVolumesRemoved { .. } => "GroupVolumesRemoved",
            GroupStatusReset { .. } => "GroupStatusReset",
            GroupDeleted { .. } => "GroupDeleted",
        }
    }

    fn decide(state: &GroupState, cmd: GroupCommand) -> Result<Vec<GroupEvent>, DomainError> {
        use GroupCommand as C;
        if let C::Create { id, .. } = &cmd {
            if state.group.is_some() {
                return Err(refused(format!("Group {id} already exists.")));
            }
            return Self::create(cmd);
        }
        let g = match (&state.group, state.deleted) {
            (Some(g), false) => g,
            (g, _) => {
                return Err(DomainError::GroupNotFound(
                    g.as_ref().map(|g| g.id.to_string()).unwrap_or_default(),
                ))
            }
        };
        match cmd {
            C::Create { .. } => unreachable!("handled above"),
            C::Update {
                name,
                description,
                add,
                remove,
                member_statuses,
            } => Self::update(g, name, description, add, remove, member_statuses),
            C::AddCreated {
                volume_id,
                volume_type_id,
            } => {
                admits_type(g, volume_type_id)?;
                Ok(vec![GroupEvent::GroupVolumesAdded {
                    volume_ids: vec![volume_id],
                }])
            }
            C::ResetStatus(status) => Ok(vec![GroupEvent::GroupStatusReset { status }]),
            C::Delete {
                delete_volumes,
                status,
                has_group_snapshots,
                members,
                source_of_creation,
            } => Self::delete(
                g,
                delete_volumes,
                status,
                has_group_snapshots,
                members,
                source_of_creation,
            ),
            C::Replication {
                group_type_replicated,
            } => {
                if !group_type_replicated {
                    return Err(DomainError::GroupTypeRefused(format!(
                        "Group {} is not a replication group type.",
                        g.id
                    )));
                }
                // A replication type, but this backend has no replication
                // target (Cinder's driver raises; its API answers 400).
                Err(refused(format!(
                    "Group {}: replication is not supported by the backend.",
                    g.id
                )))
            }
        }
    }

    fn evolve(mut state: GroupState, event: &GroupEvent) -> GroupState {
        use GroupEvent as E;
        match event {
            E::GroupCreated {
                id,
                project_id,
                user_id,
                name,
                description,
                group_type_id,
                volume_type_ids,
                availability_zone,
                status,
                group_snapshot_id,
                source_group_id,
                volumes,
            } => {
                let members: BTreeSet<Uuid> = volumes.iter().copied().collect();
                state.group = Some(Group {
                    id: *id,
                    project_id: project_id.clone(),
                    user_id: user_id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    group_type_id: *group_type_id,
                    volume_type_ids: volume_type_ids.clone(),
                    availability_zone: availability_zone.clone(),
                    status: *status,
                    pending: if *status == GroupStatus::Creating {
                        members.clone()
                    } else {
                        BTreeSet::new()
                    },
                    volumes: members,
                    group_snapshot_id: *group_snapshot_id,
                    source_group_id: *source_group_id,
                });
            }
            E::GroupDeleted { .. } => state.deleted = true,
            E::GroupUpdated { name, description } => {
                if let Some(g) = state.group.as_mut() {
                    if let Some(n) = name {
                        g.name = Some(n.clone());
                    }
                    if let Some(d) = description {
                        g.description = Some(d.clone());
                    }
                }
            }
            E::GroupVolumesAdded { volume_ids } => {
                if let Some(g) = state.group.as_mut() {
                    g.volumes.extend(volume_ids.iter().copied());
                }
            }
            E::GroupVolumesRemoved { volume_ids } => {
                if let Some(g) = state.group.as_mut() {
                    for v in volume_ids {
                        g.volumes.remove(v);
                        g.pending.remove(v);
                    }
                }
            }
            E::GroupStatusReset { status } => {
                if let Some(g) = state.group.as_mut() {
                    // An admin's word replaces the members' progress.
                    g.status = *status;
                    g.pending.clear();
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests;
