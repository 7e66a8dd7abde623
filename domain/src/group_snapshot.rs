//! The group snapshot aggregate (Cinder 3.14+): one stream per group
//! snapshot (`group_snapshot-<uuid>`). A group snapshot is a consistent set
//! of snapshots of its group's member volumes: the use case appends the
//! group snapshot and every member snapshot in ONE log transaction, so the
//! set is taken as of one instant of the log (no volume joins, leaves or
//! changes between two of its snapshots), and the executor takes each
//! member's disk snapshot as it does any snapshot.
//!
//! Its shown status follows its members' while it is `creating`
//! (`shown_status`); an admin's reset (3.19) replaces that.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Aggregate, DomainError};

/// Cinder's `GroupSnapshotStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupSnapshotStatus {
    Creating,
    Available,
    Updating,
    Deleting,
    Deleted,
    Error,
    ErrorDeleting,
}

impl GroupSnapshotStatus {
    pub const ALL: [GroupSnapshotStatus; 7] = [
        GroupSnapshotStatus::Creating,
        GroupSnapshotStatus::Available,
        GroupSnapshotStatus::Updating,
        GroupSnapshotStatus::Deleting,
        GroupSnapshotStatus::Deleted,
        GroupSnapshotStatus::Error,
        GroupSnapshotStatus::ErrorDeleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupSnapshotStatus::Creating => "creating",
            GroupSnapshotStatus::Available => "available",
            GroupSnapshotStatus::Updating => "updating",
            GroupSnapshotStatus::Deleting => "deleting",
            GroupSnapshotStatus::Deleted => "deleted",
            GroupSnapshotStatus::Error => "error",
            GroupSnapshotStatus::ErrorDeleting => "error_deleting",
        }
    }

    pub fn parse(s: &str) -> Option<GroupSnapshotStatus> {
        GroupSnapshotStatus::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

/// One snapshot of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub snapshot_id: Uuid,
    pub volume_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub id: Uuid,
    pub group_id: Uuid,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_type_id: Uuid,
    pub status: GroupSnapshotStatus,
    pub members: Vec<Member>,
    /// Whether the shown status follows the members' (until a reset).
    pub follows_members: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshotState {
    pub group_snapshot: Option<GroupSnapshot>,
    pub deleted: bool,
}

/// The status a group snapshot shows: while it follows its members,
/// `error` once one failed, `available` when all are taken, else
/// `creating`. `members` holds the member snapshots' statuses.
pub fn shown_status(gs: &GroupSnapshot, members: &[&str]) -> GroupSnapshotStatus {
    shown(gs.status, gs.follows_members, members)
}

/// `shown_status` from what the groups view keeps.
pub fn shown(
    recorded: GroupSnapshotStatus,
    follows_members: bool,
    members: &[&str],
) -> GroupSnapshotStatus {
    if !follows_members {
        return recorded;
    }
    if members.iter().any(|s| s.starts_with("error")) {
        GroupSnapshotStatus::Error
    } else if members.iter().all(|s| *s == "available") {
        GroupSnapshotStatus::Available
    } else {
        GroupSnapshotStatus::Creating
    }
}

/// The group as a group snapshot needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    pub id: Uuid,
    pub project_id: String,
    pub group_type_id: Uuid,
    /// The group's status as shown.
    pub status: crate::group::GroupStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSnapshotCommand {
    Create {
        id: Uuid,
        group: GroupFacts,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        /// The member snapshots decided in the same transaction.
        members: Vec<Member>,
    },
    ResetStatus(GroupSnapshotStatus),
    Delete {
        /// The member snapshots' statuses (for the shown status).
        member_statuses: Vec<String>,
        /// A group being created from this group snapshot.
        source_of_creation: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GroupSnapshotEvent {
    GroupSnapshotCreated {
        id: Uuid,
        group_id: Uuid,
        project_id: String,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        group_type_id: Uuid,
        members: Vec<Member>,
    },
    GroupSnapshotStatusReset {
        status: GroupSnapshotStatus,
    },
    GroupSnapshotDeleted {
        /// The member snapshots deleted with it.
        snapshot_ids: Vec<Uuid>,
    },
}

pub struct GroupSnapshotAggregate;

fn refused(msg: impl Into<String>) -> DomainError {
    DomainError::GroupSnapshotRefused(msg.into())
}

impl Aggregate for GroupSnapshotAggregate {
    type State = GroupSnapshotState;
    type Command = GroupSnapshotCommand;
    type Event = GroupSnapshotEvent;

    fn stream_id(id: &str) -> String {
        format!("group_snapshot-{id}")
    }

    fn event_type(event: &GroupSnapshotEvent) -> &'static str {
        use GroupSnapshotEvent::*;
        match event {
            GroupSnapshotCreated { .. } => "GroupSnapshotCreated",
            GroupSnapshotStatusReset { .. } => "GroupSnapshotStatusReset",
            GroupSnapshotDeleted { .. } => "GroupSnapshotDeleted",
        }
    }

    fn decide(
        state: &GroupSnapshotState,
        cmd: GroupSnapshotCommand,
    ) -> Result<Vec<GroupSnapshotEvent>, DomainError> {
        use GroupSnapshotCommand as C;
        use GroupSnapshotEvent as E;
        if let C::Create {
            id,
            group,
            user_id,
            name,
            description,
            members,
        } = cmd
        {
            if state.group_snapshot.is_some() {
                return Err(refused(format!("GroupSnapshot {id} already exists.")));
            }
            for (field, v) in [("name", &name), ("description", &description)] {
                if v.as_ref().is_some_and(|s| s.chars().count() > 255) {
                    return Err(DomainError::invalid(
                        field,
                        crate::FieldReason::Invalid,
                        format!("Group snapshot {field} must be at most 255 characters."),
                    ));
                }
            }
            // Cinder's `create_group_snapshot` needs the group usable: a
            // group being created, changed or deleted has no consistent
            // set of volumes to take.
            if group.status != crate::group::GroupStatus::Available {
                return Err(DomainError::GroupRefused(format!(
                    "Group {} status must be available, but current status is: {}.",
                    group.id,
                    group.status.as_str()
                )));
            }
            return Ok(vec![E::GroupSnapshotCreated {
                id,
                group_id: group.id,
                project_id: group.project_id,
                user_id,
                name,
                description,
                group_type_id: group.group_type_id,
                members,
            }]);
        }
        let gs = match (&state.group_snapshot, state.deleted) {
            (Some(g), false) => g,
            (g, _) => {
                return Err(DomainError::GroupSnapshotNotFound(
                    g.as_ref().map(|g| g.id.to_string()).unwrap_or_default(),
                ))
            }
        };
        match cmd {
            C::Create { .. } => unreachable!("handled above"),
            C::ResetStatus(status) => Ok(vec![E::GroupSnapshotStatusReset { status }]),
            C::Delete {
                member_statuses,
                source_of_creation,
            } => {
                let statuses: Vec<&str> = member_statuses.iter().map(String::as_str).collect();
                let shown = shown_status(gs, &statuses);
                if !matches!(
                    shown,
                    GroupSnapshotStatus::Available | GroupSnapshotStatus::Error
                ) || source_of_creation
                {
                    return Err(refused(
                        "GroupSnapshot status must be available or error, and no Group can be currently using it as source for its creation.",
                    ));
                }
                Ok(vec![E::GroupSnapshotDeleted {
                    snapshot_ids: gs.members.iter().map(|m| m.snapshot_id).collect(),
                }])
            }
        }
    }

    fn evolve(mut state: GroupSnapshotState, event: &GroupSnapshotEvent) -> GroupSnapshotState {
        use GroupSnapshotEvent as E;
        match event {
            E::GroupSnapshotCreated {
                id,
                group_id,
                project_id,
                user_id,
                name,
                description,
                group_type_id,
                members,
            } => {
                state.group_snapshot = Some(GroupSnapshot {
                    id: *id,
                    group_id: *group_id,
                    project_id: project_id.clone(),
                    user_id: user_id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    group_type_id: *group_type_id,
                    status: GroupSnapshotStatus::Creating,
                    members: members.clone(),
                    follows_members: true,
                });
            }
            E::GroupSnapshotStatusReset { status } => {
                if let Some(gs) = state.group_snapshot.as_mut() {
                    gs.status = *status;
                    gs.follows_members = false;
                }
            }
            E::GroupSnapshotDeleted { .. } => state.deleted = true,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupStatus;
    use GroupSnapshotCommand as C;
    use GroupSnapshotEvent as E;

    fn group(status: GroupStatus) -> GroupFacts {
        GroupFacts {
            id: Uuid::from_u128(1),
            project_id: "p".into(),
            group_type_id: Uuid::from_u128(2),
            status,
        }
    }

    fn members() -> Vec<Member> {
        (0..2)
            .map(|i| Member {
                snapshot_id: Uuid::from_u128(10 + i),
                volume_id: Uuid::from_u128(20 + i),
            })
            .collect()
    }

    fn create(status: GroupStatus) -> C {
        C::Create {
            id: Uuid::from_u128(3),
            group: group(status),
            user_id: "u".into(),
            name: Some("gs".into()),
            description: None,
            members: members(),
        }
    }

    /// Given `events`, when `cmd`: the events decided, or the refusal.
    fn given(events: &[E], cmd: C) -> Result<Vec<E>, DomainError> {
        GroupSnapshotAggregate::decide(&GroupSnapshotAggregate::fold(events), cmd)
    }

    #[test]
    fn a_group_snapshot_is_the_whole_set_of_an_available_group() {
        let ev = given(&[], create(GroupStatus::Available)).unwrap();
        assert!(
            matches!(&ev[..], [E::GroupSnapshotCreated { members: m, group_type_id, .. }]
            if m.len() == 2 && *group_type_id == Uuid::from_u128(2))
        );
        assert_eq!(
            given(&[], create(GroupStatus::Creating))
                .unwrap_err()
                .reason(),
            "group_refused"
        );
        assert!(given(&ev, create(GroupStatus::Available)).is_err());
    }

    #[test]
    fn the_shown_status_follows_the_members_until_a_reset() {
        let ev = given(&[], create(GroupStatus::Available)).unwrap();
        let gs = GroupSnapshotAggregate::fold(&ev).group_snapshot.unwrap();
        assert_eq!(
            shown_status(&gs, &["available", "creating"]),
            GroupSnapshotStatus::Creating
        );
        assert_eq!(
            shown_status(&gs, &["available", "available"]),
            GroupSnapshotStatus::Available
        );
        assert_eq!(
            shown_status(&gs, &["error", "creating"]),
            GroupSnapshotStatus::Error
        );
        let mut all = ev.clone();
        all.extend(given(&all, C::ResetStatus(GroupSnapshotStatus::Creating)).unwrap());
        let gs = GroupSnapshotAggregate::fold(&all).group_snapshot.unwrap();
        assert_eq!(
            shown_status(&gs, &["available", "available"]),
            GroupSnapshotStatus::Creating
        );
    }

    #[test]
    fn delete_needs_a_settled_set_not_used_as_a_source() {
        let ev = given(&[], create(GroupStatus::Available)).unwrap();
        let del = |s: &[&str], source| C::Delete {
            member_statuses: s.iter().map(|s| s.to_string()).collect(),
            source_of_creation: source,
        };
        assert_eq!(
            given(&ev, del(&["creating", "available"], false))
                .unwrap_err()
                .reason(),
            "group_snapshot_refused"
        );
        assert!(given(&ev, del(&["available", "available"], true)).is_err());
        let d = given(&ev, del(&["available", "error"], false)).unwrap();
        assert!(
            matches!(&d[..], [E::GroupSnapshotDeleted { snapshot_ids }] if snapshot_ids.len() == 2)
        );
        let mut all = ev.clone();
        all.extend(d);
        assert_eq!(
            given(&all, del(&[], false)).unwrap_err().reason(),
            "group_snapshot_not_found"
        );
    }
}
