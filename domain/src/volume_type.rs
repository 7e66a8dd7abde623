//! The volume type aggregate: one stream per type (`volume_type-<uuid>`),
//! with Cinder's rules for type management (types_manage, types_extra_specs,
//! volume_type_access, volume_type_encryption and the QoS association of
//! qos_specs_manage). The configured catalog's types are its first events
//! (`seeded`); an admin creates, changes and deletes the rest.
//!
//! Facts from outside the stream (is the name taken, do volumes use the
//! type, is it the default) come in the command, read by the use case in
//! the same transaction, so the decider stays pure and holds the rule.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::type_rules::TypeKind;
use crate::{Aggregate, DomainError};

/// Cinder's column sizes (`volume_types.name`/`description`, extra spec
/// keys and values are `String(255)`).
pub const MAX_NAME: usize = 255;
pub const MAX_DESCRIPTION: usize = 255;
pub const MAX_SPEC: usize = 255;

/// Encryption of a type's volumes (volume_type_encryption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub encryption_id: Uuid,
    pub provider: String,
    pub cipher: Option<String>,
    pub key_size: Option<i64>,
    pub control_location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeType {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: BTreeMap<String, String>,
    /// The projects a private type is visible to (besides admin).
    pub projects: BTreeSet<String>,
    pub encryption: Option<Encryption>,
    pub qos_specs_id: Option<Uuid>,
    pub seeded: bool,
}

impl VolumeType {
    /// Cinder: a private type is visible and usable only to the projects
    /// it was shared with, and to admin.
    pub fn visible_to(&self, project: &str, is_admin: bool) -> bool {
        is_admin || self.is_public || self.projects.contains(project)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeTypeState {
    pub volume_type: Option<VolumeType>,
    pub deleted: bool,
}

impl VolumeTypeState {
    fn live(&self, hint: &str) -> Result<&VolumeType, DomainError> {
        match (&self.volume_type, self.deleted) {
            (Some(t), false) => Ok(t),
            _ => Err(DomainError::VolumeTypeNotFound(hint.to_string())),
        }
    }
}

/// Fields of an encryption create or update (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionChange {
    pub provider: Option<String>,
    pub cipher: Option<Option<String>>,
    pub key_size: Option<Option<i64>>,
    pub control_location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeTypeCommand {
    Create {
        id: Uuid,
        name: String,
        description: Option<String>,
        is_public: bool,
        extra_specs: BTreeMap<String, String>,
        /// The configured catalog's type, appended at startup.
        seeded: bool,
        /// Another live type already has this name.
        name_taken: bool,
    },
    Update {
        name: Option<String>,
        description: Option<String>,
        is_public: Option<bool>,
        name_taken: bool,
    },
    Delete {
        in_use: bool,
        is_default: bool,
    },
    SetExtraSpecs(BTreeMap<String, String>),
    DeleteExtraSpec(String),
    AddAccess(String),
    RemoveAccess(String),
    CreateEncryption {
        encryption_id: Uuid,
        change: EncryptionChange,
        in_use: bool,
    },
    UpdateEncryption {
        change: EncryptionChange,
        in_use: bool,
    },
    DeleteEncryption {
        in_use: bool,
    },
    AssociateQos(Uuid),
    DisassociateQos(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum VolumeTypeEvent {
    VolumeTypeCreated {
        id: Uuid,
        name: String,
        description: Option<String>,
        is_public: bool,
        extra_specs: BTreeMap<String, String>,
        seeded: bool,
    },
    VolumeTypeUpdated {
        name: Option<String>,
        description: Option<String>,
        is_public: Option<bool>,
    },
    VolumeTypeDeleted {},
    VolumeTypeExtraSpecsSet {
        specs: BTreeMap<String, String>,
    },
    VolumeTypeExtraSpecDeleted {
        key: String,
    },
    VolumeTypeAccessAdded {
        project_id: String,
    },
    VolumeTypeAccessRemoved {
        project_id: String,
    },
    VolumeTypeEncryptionSet {
        encryption: Encryption,
    },
    VolumeTypeEncryptionDeleted {},
    VolumeTypeQosAssociated {
        qos_specs_id: Uuid,
    },
    VolumeTypeQosDisassociated {
        qos_specs_id: Uuid,
    },
}

pub struct VolumeTypeAggregate;

fn refused(msg: impl Into<String>) -> DomainError {
    DomainError::VolumeTypeRefused(msg.into())
}

/// Cinder's volume type schema, shared with the group type's.
const KIND: TypeKind = TypeKind {
    noun: "Volume type",
    spec: "Extra spec",
    refused: DomainError::VolumeTypeRefused,
    max_name: MAX_NAME,
    max_description: MAX_DESCRIPTION,
    max_spec: MAX_SPEC,
};

/// A type name: 1–255 characters, not only blanks (Cinder's schema and
/// "Volume type name can not be empty.").
pub fn validate_name(name: &str) -> Result<(), DomainError> {
    KIND.name(name)
}

fn validate_description(d: Option<&str>) -> Result<(), DomainError> {
    KIND.description(d)
}

/// Extra specs: keys 1–255 characters, values at most 255 (Cinder's
/// `extra_specs_with_no_spaces_key` schema: no blank key).
pub fn validate_specs(specs: &BTreeMap<String, String>) -> Result<(), DomainError> {
    KIND.specs(specs)
}

const CONTROL_LOCATIONS: [&str; 2] = ["front-end", "back-end"];

fn encryption_after(
    before: Option<&Encryption>,
    encryption_id: Uuid,
    c: EncryptionChange,
) -> Result<Encryption, DomainError> {
    let provider = c
        .provider
        .or_else(|| before.map(|e| e.provider.clone()))
        .ok_or_else(|| refused("Encryption provider is required."))?;
    if provider.trim().is_empty() || provider.chars().count() > MAX_SPEC {
        return Err(refused("Encryption provider must be 1 to 255 characters."));
    }
    let control_location = c
        .control_location
        .or_else(|| before.map(|e| e.control_location.clone()))
        .unwrap_or_else(|| "front-end".to_string());
    if !CONTROL_LOCATIONS.contains(&control_location.as_str()) {
        return Err(refused(format!(
            "Valid control location are: front-end, back-end (got '{control_location}')."
        )));
    }
    let key_size = c
        .key_size
        .unwrap_or_else(|| before.and_then(|e| e.key_size));
    if let Some(k) = key_size {
        if k < 0 {
            return Err(refused("key_size must be non-negative."));
        }
    }
    let cipher = c
        .cipher
        .unwrap_or_else(|| before.and_then(|e| e.cipher.clone()));
    Ok(Encryption {
        encryption_id,
        provider,
        cipher,
        key_size,
        control_location,
    })
}

impl Aggregate for VolumeTypeAggregate {
    type State = VolumeTypeState;
    type Command = VolumeTypeCommand;
    type Event = VolumeTypeEvent;

    fn stream_id(id: &str) -> String {
        format!("volume_type-{id}")
    }

    fn event_type(event: &VolumeTypeEvent) -> &'static str {
        use VolumeTypeEvent::*;
        match event {
            VolumeTypeCreated { .. } => "VolumeTypeCreated",
            VolumeTypeUpdated { .. } => "VolumeTypeUpdated",
            VolumeTypeDeleted {} => "VolumeTypeDeleted",
            VolumeTypeExtraSpecsSet { .. } => "VolumeTypeExtraSpecsSet",
            VolumeTypeExtraSpecDeleted { .. } => "VolumeTypeExtraSpecDeleted",
            VolumeTypeAccessAdded { .. } => "VolumeTypeAccessAdded",
            VolumeTypeAccessRemoved { .. } => "VolumeTypeAccessRemoved",
            VolumeTypeEncryptionSet { .. } => "VolumeTypeEncryptionSet",
            VolumeTypeEncryptionDeleted {} => "VolumeTypeEncryptionDeleted",
            VolumeTypeQosAssociated { .. } => "VolumeTypeQosAssociated",
            VolumeTypeQosDisassociated { .. } => "VolumeTypeQosDisassociated",
        }
    }

    fn decide(
        state: &VolumeTypeState,
        cmd: VolumeTypeCommand,
    ) -> Result<Vec<VolumeTypeEvent>, DomainError> {
        use VolumeTypeCommand as C;
        use VolumeTypeEvent as E;
        if let C::Create {
            id,
            name,
            description,
            is_public,
            extra_specs,
            seeded,
            name_taken,
        } = cmd
        {
            if state.volume_type.is_some() {
                return Err(DomainError::VolumeTypeExists(id.to_string()));
            }
            validate_name(&name)?;
            validate_description(description.as_deref())?;
            validate_specs(&extra_specs)?;
            if name_taken {
                return Err(DomainError::VolumeTypeExists(name));
            }
            return Ok(vec![E::VolumeTypeCreated {
                id,
                name,
                description,
                is_public,
                extra_specs,
                seeded,
            }]);
        }
        let hint = state
            .volume_type
            .as_ref()
            .map(|t| t.id.to_string())
            .unwrap_or_default();
        let t = state.live(&hint)?;
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
                        "Specify volume type name, description, is_public or a combination thereof.",
                    ));
                }
                if let Some(n) = &name {
                    validate_name(n)?;
                }
                validate_description(description.as_deref())?;
                let rename = name.as_ref().filter(|n| **n != t.name);
                if rename.is_some() && name_taken {
                    return Err(DomainError::VolumeTypeExists(
                        rename.cloned().unwrap_or_default(),
                    ));
                }
                // Volumes, snapshots and per-type quotas record the type
                // by name: the rename use case has each of them follow
                // (`FollowTypeRename`) in this same transaction.
                Ok(vec![E::VolumeTypeUpdated {
                    name,
                    description,
                    is_public,
                }])
            }
            C::Delete { in_use, is_default } => {
                if is_default {
                    return Err(refused(
                        "Default volume type can not be deleted.".to_string(),
                    ));
                }
                if in_use {
                    return Err(DomainError::VolumeTypeInUse(id));
                }
                Ok(vec![E::VolumeTypeDeleted {}])
            }
            C::SetExtraSpecs(specs) => {
                if specs.is_empty() {
                    return Err(refused("No extra specs given."));
                }
                validate_specs(&specs)?;
                Ok(vec![E::VolumeTypeExtraSpecsSet { specs }])
            }
            C::DeleteExtraSpec(key) => {
                if !t.extra_specs.contains_key(&key) {
                    return Err(DomainError::ExtraSpecNotFound { type_id: id, key });
                }
                Ok(vec![E::VolumeTypeExtraSpecDeleted { key }])
            }
            C::AddAccess(project_id) => {
                if t.is_public {
                    return Err(refused(
                        "Type access modification is not applicable to public volume type.",
                    ));
                }
                if t.projects.contains(&project_id) {
                    return Err(DomainError::TypeAccessExists {
                        type_id: id,
                        project: project_id,
                    });
                }
                Ok(vec![E::VolumeTypeAccessAdded { project_id }])
            }
            C::RemoveAccess(project_id) => {
                if t.is_public {
                    return Err(refused(
                        "Type access modification is not applicable to public volume type.",
                    ));
                }
                if !t.projects.contains(&project_id) {
                    return Err(DomainError::TypeAccessNotFound {
                        type_id: id,
                        project: project_id,
                    });
                }
                Ok(vec![E::VolumeTypeAccessRemoved { project_id }])
            }
            C::CreateEncryption {
                encryption_id,
                change,
                in_use,
            } => {
                if t.encryption.is_some() {
                    return Err(DomainError::EncryptionExists(id));
                }
                if in_use {
                    return Err(refused(
                        "Cannot create encryption specs. Volume type in use.",
                    ));
                }
                let encryption = encryption_after(None, encryption_id, change)?;
                Ok(vec![E::VolumeTypeEncryptionSet { encryption }])
            }
            C::UpdateEncryption { change, in_use } => {
                let Some(before) = &t.encryption else {
                    return Err(DomainError::EncryptionNotFound(id));
                };
                if in_use {
                    return Err(refused(
                        "Cannot update encryption specs. Volume type in use.",
                    ));
                }
                let encryption = encryption_after(Some(before), before.encryption_id, change)?;
                Ok(vec![E::VolumeTypeEncryptionSet { encryption }])
            }
            C::DeleteEncryption { in_use } => {
                if t.encryption.is_none() {
                    return Err(DomainError::EncryptionNotFound(id));
                }
                if in_use {
                    return Err(refused(
                        "Cannot delete encryption specs. Volume type in use.",
                    ));
                }
                Ok(vec![E::VolumeTypeEncryptionDeleted {}])
            }
            C::AssociateQos(qos_specs_id) => match t.qos_specs_id {
                // Cinder: associating again with the same specs is a no-op.
                Some(q) if q == qos_specs_id => Ok(vec![]),
                Some(q) => Err(refused(format!(
                    "Type {id} is already associated with another qos specs: {q}"
                ))),
                None => Ok(vec![E::VolumeTypeQosAssociated { qos_specs_id }]),
            },
            C::DisassociateQos(qos_specs_id) => {
                if t.qos_specs_id == Some(qos_specs_id) {
                    Ok(vec![E::VolumeTypeQosDisassociated { qos_specs_id }])
                } else {
                    // Cinder clears the association whatever it was;
                    // nothing to record when it is not this one.
                    Ok(vec![])
                }
            }
        }
    }

    fn evolve(mut state: VolumeTypeState, event: &VolumeTypeEvent) -> VolumeTypeState {
        use VolumeTypeEvent as E;
        if let E::VolumeTypeCreated {
            id,
            name,
            description,
            is_public,
            extra_specs,
            seeded,
        } = event
        {
            state.volume_type = Some(VolumeType {
                id: *id,
                name: name.clone(),
                description: description.clone(),
                is_public: *is_public,
                extra_specs: extra_specs.clone(),
                projects: BTreeSet::new(),
                encryption: None,
                qos_specs_id: None,
                seeded: *seeded,
            });
            return state;
        }
        if let E::VolumeTypeDeleted {} = event {
            state.deleted = true;
            return state;
        }
        let Some(t) = state.volume_type.as_mut() else {
            return state;
        };
        match event {
            E::VolumeTypeCreated { .. } | E::VolumeTypeDeleted {} => {}
            E::VolumeTypeUpdated {
                name,
                description,
                is_public,
            } => {
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
            E::VolumeTypeExtraSpecsSet { specs } => {
                t.extra_specs
                    .extend(specs.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            E::VolumeTypeExtraSpecDeleted { key } => {
                t.extra_specs.remove(key);
            }
            E::VolumeTypeAccessAdded { project_id } => {
                t.projects.insert(project_id.clone());
            }
            E::VolumeTypeAccessRemoved { project_id } => {
                t.projects.remove(project_id);
            }
            E::VolumeTypeEncryptionSet { encryption } => t.encryption = Some(encryption.clone()),
            E::VolumeTypeEncryptionDeleted {} => t.encryption = None,
            E::VolumeTypeQosAssociated { qos_specs_id } => t.qos_specs_id = Some(*qos_specs_id),
            E::VolumeTypeQosDisassociated { .. } => t.qos_specs_id = None,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VolumeTypeCommand as C;
    use VolumeTypeEvent as E;

    fn id() -> Uuid {
        Uuid::parse_str("11111111-1111-4111-8111-111111111111").unwrap()
    }

    fn created(is_public: bool) -> Vec<E> {
        vec![E::VolumeTypeCreated {
            id: id(),
            name: "gold".into(),
            description: None,
            is_public,
            extra_specs: BTreeMap::new(),
            seeded: false,
        }]
    }

    /// Given `events`, when `cmd`: the events decided, or the refusal.
    fn given(events: &[E], cmd: C) -> Result<Vec<E>, DomainError> {
        let state = VolumeTypeAggregate::fold(events);
        VolumeTypeAggregate::decide(&state, cmd)
    }

    fn create(name: &str, name_taken: bool) -> C {
        C::Create {
            id: id(),
            name: name.into(),
            description: Some("d".into()),
            is_public: true,
            extra_specs: BTreeMap::from([("k".into(), "v".into())]),
            seeded: false,
            name_taken,
        }
    }

    #[test]
    fn create_records_the_type() {
        let ev = given(&[], create("gold", false)).unwrap();
        assert!(matches!(&ev[..], [E::VolumeTypeCreated { name, .. }] if name == "gold"));
    }

    #[test]
    fn create_refuses_an_empty_or_taken_name_and_a_second_create() {
        assert_eq!(
            given(&[], create("  ", false)).unwrap_err().reason(),
            "volume_type_refused"
        );
        assert_eq!(
            given(&[], create("gold", true)).unwrap_err().reason(),
            "volume_type_exists"
        );
        assert_eq!(
            given(&created(true), create("x", false))
                .unwrap_err()
                .reason(),
            "volume_type_exists"
        );
    }

    #[test]
    fn update_needs_a_field_and_a_free_name() {
        let none = C::Update {
            name: None,
            description: None,
            is_public: None,
            name_taken: false,
        };
        assert!(given(&created(true), none).is_err());
        let rename = |name_taken| C::Update {
            name: Some("silver".into()),
            description: None,
            is_public: Some(false),
            name_taken,
        };
        assert_eq!(
            given(&created(true), rename(true)).unwrap_err().reason(),
            "volume_type_exists"
        );
        let ev = given(&created(true), rename(false)).unwrap();
        let mut all = created(true);
        all.extend(ev);
        let t = VolumeTypeAggregate::fold(&all).volume_type.unwrap();
        assert_eq!((t.name.as_str(), t.is_public), ("silver", false));
    }

    #[test]
    fn delete_is_refused_in_use_or_for_the_default_and_then_is_404() {
        let del = |in_use, is_default| C::Delete { in_use, is_default };
        assert_eq!(
            given(&created(true), del(true, false))
                .unwrap_err()
                .reason(),
            "volume_type_in_use"
        );
        assert_eq!(
            given(&created(true), del(false, true))
                .unwrap_err()
                .reason(),
            "volume_type_refused"
        );
        let mut all = created(true);
        all.extend(given(&all, del(false, false)).unwrap());
        assert_eq!(
            given(&all, del(false, false)).unwrap_err().reason(),
            "volume_type_not_found"
        );
        assert_eq!(
            given(&[], del(false, false)).unwrap_err().reason(),
            "volume_type_not_found"
        );
    }

    #[test]
    fn extra_specs_set_merge_and_delete() {
        let mut all = created(true);
        let set = |k: &str, v: &str| C::SetExtraSpecs(BTreeMap::from([(k.into(), v.into())]));
        all.extend(given(&all, set("a", "1")).unwrap());
        all.extend(given(&all, set("b", "2")).unwrap());
        all.extend(given(&all, set("a", "3")).unwrap());
        let t = VolumeTypeAggregate::fold(&all).volume_type.unwrap();
        assert_eq!(t.extra_specs.get("a").unwrap(), "3");
        assert_eq!(t.extra_specs.len(), 2);
        all.extend(given(&all, C::DeleteExtraSpec("a".into())).unwrap());
        assert_eq!(
            given(&all, C::DeleteExtraSpec("a".into()))
                .unwrap_err()
                .reason(),
            "extra_spec_not_found"
        );
        assert!(given(&all, set("", "x")).is_err());
        assert!(given(&all, C::SetExtraSpecs(BTreeMap::new())).is_err());
    }

    #[test]
    fn access_is_for_private_types_once_per_project() {
        assert!(given(&created(true), C::AddAccess("p1".into())).is_err());
        let mut all = created(false);
        all.extend(given(&all, C::AddAccess("p1".into())).unwrap());
        assert_eq!(
            given(&all, C::AddAccess("p1".into())).unwrap_err().reason(),
            "type_access_exists"
        );
        let t = VolumeTypeAggregate::fold(&all).volume_type.unwrap();
        assert!(t.visible_to("p1", false));
        assert!(!t.visible_to("p2", false));
        assert!(t.visible_to("p2", true));
        all.extend(given(&all, C::RemoveAccess("p1".into())).unwrap());
        assert_eq!(
            given(&all, C::RemoveAccess("p1".into()))
                .unwrap_err()
                .reason(),
            "type_access_not_found"
        );
    }

    #[test]
    fn encryption_create_update_delete() {
        let eid = Uuid::nil();
        let change = EncryptionChange {
            provider: Some("LuksEncryptor".into()),
            cipher: Some(Some("aes-xts-plain64".into())),
            key_size: Some(Some(256)),
            control_location: Some("front-end".into()),
        };
        let mut all = created(true);
        let mk = |in_use| C::CreateEncryption {
            encryption_id: eid,
            change: change.clone(),
            in_use,
        };
        assert!(given(&all, mk(true)).is_err());
        all.extend(given(&all, mk(false)).unwrap());
        assert_eq!(
            given(&all, mk(false)).unwrap_err().reason(),
            "encryption_exists"
        );
        let upd = C::UpdateEncryption {
            change: EncryptionChange {
                key_size: Some(Some(128)),
                control_location: Some("back-end".into()),
                ..Default::default()
            },
            in_use: false,
        };
        all.extend(given(&all, upd).unwrap());
        let e = VolumeTypeAggregate::fold(&all)
            .volume_type
            .unwrap()
            .encryption
            .unwrap();
        assert_eq!(e.key_size, Some(128));
        assert_eq!(e.provider, "LuksEncryptor");
        assert_eq!(e.control_location, "back-end");
        let bad = C::UpdateEncryption {
            change: EncryptionChange {
                control_location: Some("middle".into()),
                ..Default::default()
            },
            in_use: false,
        };
        assert!(given(&all, bad).is_err());
        all.extend(given(&all, C::DeleteEncryption { in_use: false }).unwrap());
        assert_eq!(
            given(&all, C::DeleteEncryption { in_use: false })
                .unwrap_err()
                .reason(),
            "encryption_not_found"
        );
    }

    #[test]
    fn a_type_has_at_most_one_qos_association() {
        let q1 = Uuid::from_u128(1);
        let q2 = Uuid::from_u128(2);
        let mut all = created(true);
        all.extend(given(&all, C::AssociateQos(q1)).unwrap());
        assert_eq!(given(&all, C::AssociateQos(q1)).unwrap(), vec![]);
        assert!(given(&all, C::AssociateQos(q2)).is_err());
        assert_eq!(given(&all, C::DisassociateQos(q2)).unwrap(), vec![]);
        all.extend(given(&all, C::DisassociateQos(q1)).unwrap());
        assert_eq!(
            VolumeTypeAggregate::fold(&all)
                .volume_type
                .unwrap()
                .qos_specs_id,
            None
        );
    }
}
