//! The group type aggregate (Cinder's generic volume group types,
//! microversion 3.11): one stream per type (`group_type-<uuid>`), with
//! Cinder's rules of `group_types.py` and `group_specs.py`. Group types
//! have no seed: a fresh log has none, as a fresh Cinder has none but the
//! `default_group_type` an operator configures (none here, so
//! `GET /group_types/default` is 404, Cinder's answer without one).
//!
//! Facts from outside the stream (is the name taken, do groups use the
//! type) come in the command, read by the use case in the same
//! transaction, so the decider stays pure and holds the rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::type_rules::TypeKind;
use crate::{Aggregate, DomainError};

/// Cinder's column sizes (`group_types.name`/`description`, group spec
/// keys and values are `String(255)`).
pub const MAX_NAME: usize = 255;
pub const MAX_SPEC: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupType {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub group_specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTypeState {
    pub group_type: Option<GroupType>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupTypeCommand {
    Create {
        id: Uuid,
        name: String,
        description: Option<String>,
        is_public: bool,
        group_specs: BTreeMap<String, String>,
        /// Another live group type already has this name.
        name_taken: bool,
    },
    Update {
        name: Option<String>,
        description: Option<String>,
        is_public: Option<bool>,
        /// Another live group type already has the new name.
        name_taken: bool,
    },
    Delete {
        /// A live group is of this type.
        in_use: bool,
    },
    /// Create or update (merge) specs.
    SetSpecs(BTreeMap<String, String>),
    DeleteSpec(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GroupTypeEvent {
    GroupTypeCreated {
        id: Uuid,
        name: String,
        description: Option<String>,
        is_public: bool,
        group_specs: BTreeMap<String, String>,
    },
    GroupTypeUpdated {
        name: Option<String>,
        description: Option<String>,
        is_public: Option<bool>,
    },
    GroupTypeDeleted {},
    GroupTypeSpecsSet {
        specs: BTreeMap<String, String>,
    },
    GroupTypeSpecDeleted {
        key: String,
    },
}

pub struct GroupTypeAggregate;

fn refused(msg: impl Into<String>) -> DomainError {
    DomainError::GroupTypeRefused(msg.into())
}

/// Cinder's group type schema, shared with the volume type's.
const KIND: TypeKind = TypeKind {
    noun: "Group type",
    spec: "Group spec",
    refused: DomainError::GroupTypeRefused,
    max_name: MAX_NAME,
    max_description: MAX_NAME,
    max_spec: MAX_SPEC,
};

/// A group type name: 1–255 characters, not only blanks (Cinder's schema
/// and "Group type name can not be empty.").
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    KIND.name(name)
}

fn validate_description(d: Option<&str>) -> Result<(), DomainError> {
    KIND.description(d)
}

/// Group specs: keys 1–255 characters, values at most 255 (Cinder's
/// `group_specs` schema: `extra_specs_with_no_spaces_key`).
pub fn validate_specs(specs: &BTreeMap<String, String>) -> Result<(), DomainError> {
    KIND.specs(specs)
}

/// Whether a group type asks for consistent group snapshots or
/// replication: Cinder's `<is> True` spec values.
pub fn spec_is_true(specs: &BTreeMap<String, String>, key: &str) -> bool {
    specs
        .get(key)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("<is> true"))
}

impl Aggregate for GroupTypeAggregate {
    type State = GroupTypeState;
    type Command = GroupTypeCommand;
    type Event = GroupTypeEvent;

    fn stream_id(id: &str) -> String {
        format!("group_type-{id}")
    }

    fn event_type(event: &GroupTypeEvent) -> &'static str {
        use GroupTypeEvent::*;
        match event {
            GroupTypeCreated { .. } => "GroupTypeCreated",
            GroupTypeUpdated { .. } => "GroupTypeUpdated",
            GroupTypeDeleted {} => "GroupTypeDeleted",
            GroupTypeSpecsSet { .. } => "GroupTypeSpecsSet",
            GroupTypeSpecDeleted { .. } => "GroupTypeSpecDeleted",
        }
    }

    fn decide(
        state: &GroupTypeState,
        cmd: GroupTypeCommand,
    ) -> Result<Vec<GroupTypeEvent>, DomainError> {
        use GroupTypeCommand as C;
        use GroupTypeEvent as E;
        if let C::Create {
            id,
            name,
            description,
            is_public,
            group_specs,
            name_taken,
        } = cmd
        {
            if state.group_type.is_some() {
                return Err(DomainError::GroupTypeExists(id.to_string()));
            }
            validate_name(&name)?;
            validate_description(description.as_deref())?;
            validate_specs(&group_specs)?;
            if name_taken {
                return Err(DomainError::GroupTypeExists(name));
            }
            return Ok(vec![E::GroupTypeCreated {
                id,
                name,
                description,
                is_public,
                group_specs,
            }]);
        }
        let t = match (&state.group_type, state.deleted) {
            (Some(t), false) => t,
            (t, _) => {
                return Err(DomainError::GroupTypeNotFound(
                    t.as_ref().map(|t| t.id.to_string()).unwrap_or_default(),
                ))
            }
        };
        let id = t.id.to_string();
        match cmd {
            C::Create { .. } => unreachable!("handled above"),
            C::Update {
                name,
                description,
                is_public,
                name_taken,
            } => {
                if name.is_none() && description.is_none() && is_public.is_none() {
                    return Err(refused(
                        "Specify group type name, description or a combination thereof.",
                    ));
                }
                if let Some(n) = &name {
                    validate_name(n)?;
                    if *n != t.name && name_taken {
                        return Err(DomainError::GroupTypeExists(n.clone()));
                    }
                }
                validate_description(description.as_deref())?;
                Ok(vec![E::GroupTypeUpdated {
                    name,
                    description,
                    is_public,
                }])
            }
            C::Delete { in_use } => {
                if in_use {
                    return Err(DomainError::GroupTypeInUse(id));
                }
                Ok(vec![E::GroupTypeDeleted {}])
            }
            C::SetSpecs(specs) => {
                if specs.is_empty() {
                    return Err(refused("No group specs given."));
                }
                validate_specs(&specs)?;
                Ok(vec![E::GroupTypeSpecsSet { specs }])
            }
            C::DeleteSpec(key) => {
                if !t.group_specs.contains_key(&key) {
                    return Err(DomainError::GroupSpecNotFound { type_id: id, key });
                }
                Ok(vec![E::GroupTypeSpecDeleted { key }])
            }
        }
    }

    fn evolve(mut state: GroupTypeState, event: &GroupTypeEvent) -> GroupTypeState {
        use GroupTypeEvent as E;
        match event {
            E::GroupTypeCreated {
                id,
                name,
                description,
                is_public,
                group_specs,
            } => {
                state.group_type = Some(GroupType {
                    id: *id,
                    name: name.clone(),
                    description: description.clone(),
                    is_public: *is_public,
                    group_specs: group_specs.clone(),
                });
            }
            E::GroupTypeDeleted {} => state.deleted = true,
            E::GroupTypeUpdated {
                name,
                description,
                is_public,
            } => {
                if let Some(t) = state.group_type.as_mut() {
                    if let Some(n) = name {
                        t.name = n.clone();
                    }
                    if let Some(d) = description {
                        t.description = Some(d.clone());
                    }
                    if let Some(p) = is_public {
                        t.is_public = *p;
                    }
                }
            }
            E::GroupTypeSpecsSet { specs } => {
                if let Some(t) = state.group_type.as_mut() {
                    t.group_specs
                        .extend(specs.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            E::GroupTypeSpecDeleted { key } => {
                if let Some(t) = state.group_type.as_mut() {
                    t.group_specs.remove(key);
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GroupTypeCommand as C;
    use GroupTypeEvent as E;

    fn id() -> Uuid {
        Uuid::from_u128(7)
    }

    fn created() -> Vec<E> {
        vec![E::GroupTypeCreated {
            id: id(),
            name: "g".into(),
            description: None,
            is_public: true,
            group_specs: BTreeMap::new(),
        }]
    }

    /// Given `events`, when `cmd`: the events decided, or the refusal.
    fn given(events: &[E], cmd: C) -> Result<Vec<E>, DomainError> {
        GroupTypeAggregate::decide(&GroupTypeAggregate::fold(events), cmd)
    }

    fn create(name: &str, name_taken: bool) -> C {
        C::Create {
            id: id(),
            name: name.into(),
            description: Some("d".into()),
            is_public: false,
            group_specs: BTreeMap::from([("k".into(), "v".into())]),
            name_taken,
        }
    }

    #[test]
    fn create_records_the_type_and_refuses_a_blank_or_taken_name() {
        let ev = given(&[], create("gold", false)).unwrap();
        assert!(
            matches!(&ev[..], [E::GroupTypeCreated { name, is_public: false, .. }] if name == "gold")
        );
        assert_eq!(
            given(&[], create(" ", false)).unwrap_err().reason(),
            "group_type_refused"
        );
        assert_eq!(
            given(&[], create("gold", true)).unwrap_err().reason(),
            "group_type_exists"
        );
        assert_eq!(
            given(&created(), create("x", false)).unwrap_err().reason(),
            "group_type_exists"
        );
    }

    #[test]
    fn update_needs_a_field_and_a_free_name() {
        let upd = |name: Option<&str>, name_taken| C::Update {
            name: name.map(String::from),
            description: None,
            is_public: None,
            name_taken,
        };
        assert!(given(&created(), upd(None, false)).is_err());
        assert_eq!(
            given(&created(), upd(Some("h"), true))
                .unwrap_err()
                .reason(),
            "group_type_exists"
        );
        // Its own name is not taken by another.
        assert!(given(&created(), upd(Some("g"), true)).is_ok());
        let mut all = created();
        all.extend(given(&all, upd(Some("h"), false)).unwrap());
        let t = GroupTypeAggregate::fold(&all).group_type.unwrap();
        assert_eq!(t.name, "h");
    }

    #[test]
    fn delete_is_refused_in_use_and_then_the_type_is_gone() {
        assert_eq!(
            given(&created(), C::Delete { in_use: true })
                .unwrap_err()
                .reason(),
            "group_type_in_use"
        );
        let mut all = created();
        all.extend(given(&all, C::Delete { in_use: false }).unwrap());
        assert_eq!(
            given(&all, C::Delete { in_use: false })
                .unwrap_err()
                .reason(),
            "group_type_not_found"
        );
        assert_eq!(
            given(
                &all,
                C::SetSpecs(BTreeMap::from([("a".into(), "1".into())]))
            )
            .unwrap_err()
            .reason(),
            "group_type_not_found"
        );
    }

    #[test]
    fn specs_merge_and_delete_one_key() {
        let set = |k: &str, v: &str| C::SetSpecs(BTreeMap::from([(k.into(), v.into())]));
        let mut all = created();
        all.extend(given(&all, set("a", "1")).unwrap());
        all.extend(given(&all, set("b", "2")).unwrap());
        all.extend(given(&all, set("a", "3")).unwrap());
        let t = GroupTypeAggregate::fold(&all).group_type.unwrap();
        assert_eq!(
            t.group_specs,
            BTreeMap::from([("a".into(), "3".into()), ("b".into(), "2".into())])
        );
        all.extend(given(&all, C::DeleteSpec("a".into())).unwrap());
        assert_eq!(
            given(&all, C::DeleteSpec("a".into())).unwrap_err().reason(),
            "group_spec_not_found"
        );
        assert!(given(&all, set("", "x")).is_err());
        assert!(spec_is_true(
            &BTreeMap::from([(
                "consistent_group_snapshot_enabled".into(),
                "<is> True".into()
            )]),
            "consistent_group_snapshot_enabled"
        ));
    }
}
