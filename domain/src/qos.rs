//! The QoS specs aggregate (Cinder's qos_specs_manage): `qos_specs-<uuid>`.
//! A specs set has a name, a consumer and string keys; it is associated
//! with volume types, and the association lives on the type
//! (`VolumeTypeEvent::VolumeTypeQosAssociated`), since a type has at most
//! one. Whether any type is associated comes in the delete command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Aggregate, DomainError};

/// Cinder's consumers; `back-end` when none is given.
pub const CONSUMERS: [&str; 3] = ["front-end", "back-end", "both"];
pub const DEFAULT_CONSUMER: &str = "back-end";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QosSpecs {
    pub id: Uuid,
    pub name: String,
    pub consumer: String,
    pub specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QosState {
    pub qos: Option<QosSpecs>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QosCommand {
    Create {
        id: Uuid,
        name: String,
        consumer: Option<String>,
        specs: BTreeMap<String, String>,
        name_taken: bool,
    },
    SetKeys(BTreeMap<String, String>),
    UnsetKeys(Vec<String>),
    /// `associated`: types still associated; `force` deletes anyway (the
    /// use case disassociates them in the same transaction).
    Delete {
        associated: usize,
        force: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QosEvent {
    QosSpecsCreated {
        id: Uuid,
        name: String,
        consumer: String,
        specs: BTreeMap<String, String>,
    },
    QosSpecsKeysSet {
        specs: BTreeMap<String, String>,
    },
    QosSpecsKeysUnset {
        keys: Vec<String>,
    },
    QosSpecsDeleted {},
}

pub struct QosAggregate;

fn invalid(msg: impl Into<String>) -> DomainError {
    DomainError::invalid("qos_specs", crate::FieldReason::Invalid, msg)
}

fn validate_specs(specs: &BTreeMap<String, String>) -> Result<(), DomainError> {
    for (k, v) in specs {
        if k.trim().is_empty() || k.chars().count() > 255 || v.chars().count() > 255 {
            return Err(invalid(format!(
                "QoS spec '{k}': keys are 1 to 255 characters, values at most 255."
            )));
        }
    }
    Ok(())
}

impl Aggregate for QosAggregate {
    type State = QosState;
    type Command = QosCommand;
    type Event = QosEvent;

    fn stream_id(id: &str) -> String {
        format!("qos_specs-{id}")
    }

    fn event_type(event: &QosEvent) -> &'static str {
        match event {
            QosEvent::QosSpecsCreated { .. } => "QosSpecsCreated",
            QosEvent::QosSpecsKeysSet { .. } => "QosSpecsKeysSet",
            QosEvent::QosSpecsKeysUnset { .. } => "QosSpecsKeysUnset",
            QosEvent::QosSpecsDeleted {} => "QosSpecsDeleted",
        }
    }

    fn decide(state: &QosState, cmd: QosCommand) -> Result<Vec<QosEvent>, DomainError> {
        if let QosCommand::Create {
            id,
            name,
            consumer,
            specs,
            name_taken,
        } = cmd
        {
            if state.qos.is_some() {
                return Err(DomainError::QosSpecsExists(id.to_string()));
            }
            if name.trim().is_empty() || name.chars().count() > 255 {
                return Err(invalid("QoS specs name must be 1 to 255 characters."));
            }
            let consumer = consumer.unwrap_or_else(|| DEFAULT_CONSUMER.to_string());
            if !CONSUMERS.contains(&consumer.as_str()) {
                return Err(invalid(format!(
                    "Valid consumer of QoS specs are: front-end, back-end, both (got '{consumer}')."
                )));
            }
            validate_specs(&specs)?;
            if name_taken {
                return Err(DomainError::QosSpecsExists(name));
            }
            return Ok(vec![QosEvent::QosSpecsCreated {
                id,
                name,
                consumer,
                specs,
            }]);
        }
        let q = match (&state.qos, state.deleted) {
            (Some(q), false) => q,
            (q, _) => {
                return Err(DomainError::QosSpecsNotFound(
                    q.as_ref().map(|q| q.id.to_string()).unwrap_or_default(),
                ))
            }
        };
        match cmd {
            QosCommand::Create { .. } => unreachable!("handled above"),
            QosCommand::SetKeys(specs) => {
                if specs.is_empty() {
                    return Err(invalid("No QoS specs given."));
                }
                validate_specs(&specs)?;
                Ok(vec![QosEvent::QosSpecsKeysSet { specs }])
            }
            QosCommand::UnsetKeys(keys) => {
                if let Some(k) = keys.iter().find(|k| !q.specs.contains_key(*k)) {
                    return Err(DomainError::QosSpecsKeyNotFound {
                        id: q.id.to_string(),
                        key: k.clone(),
                    });
                }
                Ok(vec![QosEvent::QosSpecsKeysUnset { keys }])
            }
            QosCommand::Delete { associated, force } => {
                if associated > 0 && !force {
                    return Err(DomainError::QosSpecsInUse(q.id.to_string()));
                }
                Ok(vec![QosEvent::QosSpecsDeleted {}])
            }
        }
    }

    fn evolve(mut state: QosState, event: &QosEvent) -> QosState {
        match event {
            QosEvent::QosSpecsCreated {
                id,
                name,
                consumer,
                specs,
            } => {
                state.qos = Some(QosSpecs {
                    id: *id,
                    name: name.clone(),
                    consumer: consumer.clone(),
                    specs: specs.clone(),
                })
            }
            QosEvent::QosSpecsKeysSet { specs } => {
                if let Some(q) = state.qos.as_mut() {
                    q.specs
                        .extend(specs.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            QosEvent::QosSpecsKeysUnset { keys } => {
                if let Some(q) = state.qos.as_mut() {
                    for k in keys {
                        q.specs.remove(k);
                    }
                }
            }
            QosEvent::QosSpecsDeleted {} => state.deleted = true,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(events: &[QosEvent], cmd: QosCommand) -> Result<Vec<QosEvent>, DomainError> {
        QosAggregate::decide(&QosAggregate::fold(events), cmd)
    }

    fn create(consumer: Option<&str>, name_taken: bool) -> QosCommand {
        QosCommand::Create {
            id: Uuid::from_u128(7),
            name: "fast".into(),
            consumer: consumer.map(String::from),
            specs: BTreeMap::from([("read_iops_sec".into(), "2000".into())]),
            name_taken,
        }
    }

    #[test]
    fn create_defaults_the_consumer_and_refuses_bad_ones_and_taken_names() {
        let ev = given(&[], create(None, false)).unwrap();
        assert!(
            matches!(&ev[..], [QosEvent::QosSpecsCreated { consumer, .. }] if consumer == "back-end")
        );
        assert!(given(&[], create(Some("middle"), false)).is_err());
        assert_eq!(
            given(&[], create(Some("both"), true)).unwrap_err().reason(),
            "qos_specs_exists"
        );
    }

    #[test]
    fn keys_set_and_unset_and_delete_needs_force_while_associated() {
        let mut all = given(&[], create(Some("front-end"), false)).unwrap();
        all.extend(
            given(
                &all,
                QosCommand::SetKeys(BTreeMap::from([("iops_bytes".into(), "500".into())])),
            )
            .unwrap(),
        );
        all.extend(given(&all, QosCommand::UnsetKeys(vec!["iops_bytes".into()])).unwrap());
        assert_eq!(
            given(&all, QosCommand::UnsetKeys(vec!["iops_bytes".into()]))
                .unwrap_err()
                .reason(),
            "qos_specs_key_not_found"
        );
        let q = QosAggregate::fold(&all).qos.unwrap();
        assert_eq!(q.specs.len(), 1);
        let del = |associated, force| QosCommand::Delete { associated, force };
        assert_eq!(
            given(&all, del(2, false)).unwrap_err().reason(),
            "qos_specs_in_use"
        );
        all.extend(given(&all, del(2, true)).unwrap());
        assert_eq!(
            given(&all, del(0, false)).unwrap_err().reason(),
            "qos_specs_not_found"
        );
    }
}
