//! A project's own default volume type (Cinder microversion 3.62,
//! `/default-types`): the type a create without one gets in that project,
//! overriding the configured default. One stream per project,
//! `default_type-<project_id>`. Whether the named type exists is the use
//! case's lookup; the rule here is what setting and unsetting mean.

use serde::{Deserialize, Serialize};

use crate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultTypeState {
    /// The type's id while one is set.
    pub volume_type_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultTypeCommand {
    /// Set, or replace, the project's default with the type `volume_type_id`.
    Set { volume_type_id: String },
    /// Unset it. Unsetting what is not set changes nothing (Cinder answers
    /// 204 either way).
    Unset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DefaultTypeEvent {
    ProjectDefaultTypeSet { volume_type_id: String },
    ProjectDefaultTypeUnset {},
}

pub struct DefaultTypeAggregate;

impl Aggregate for DefaultTypeAggregate {
    type State = DefaultTypeState;
    type Command = DefaultTypeCommand;
    type Event = DefaultTypeEvent;

    fn stream_id(project_id: &str) -> String {
        format!("default_type-{project_id}")
    }

    fn event_type(event: &DefaultTypeEvent) -> &'static str {
        match event {
            DefaultTypeEvent::ProjectDefaultTypeSet { .. } => "ProjectDefaultTypeSet",
            DefaultTypeEvent::ProjectDefaultTypeUnset {} => "ProjectDefaultTypeUnset",
        }
    }

    fn decide(
        state: &DefaultTypeState,
        cmd: DefaultTypeCommand,
    ) -> Result<Vec<DefaultTypeEvent>, DomainError> {
        Ok(match cmd {
            // Setting the type already set is a no-op: running it twice is once.
            DefaultTypeCommand::Set { volume_type_id }
                if state.volume_type_id.as_deref() == Some(volume_type_id.as_str()) =>
            {
                vec![]
            }
            DefaultTypeCommand::Set { volume_type_id } => {
                vec![DefaultTypeEvent::ProjectDefaultTypeSet { volume_type_id }]
            }
            DefaultTypeCommand::Unset if state.volume_type_id.is_none() => vec![],
            DefaultTypeCommand::Unset => vec![DefaultTypeEvent::ProjectDefaultTypeUnset {}],
        })
    }

    fn evolve(mut state: DefaultTypeState, event: &DefaultTypeEvent) -> DefaultTypeState {
        match event {
            DefaultTypeEvent::ProjectDefaultTypeSet { volume_type_id } => {
                state.volume_type_id = Some(volume_type_id.clone());
            }
            DefaultTypeEvent::ProjectDefaultTypeUnset {} => state.volume_type_id = None,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DefaultTypeCommand as C;
    use DefaultTypeEvent as E;

    fn given(events: &[E], cmd: C) -> Vec<E> {
        DefaultTypeAggregate::decide(&DefaultTypeAggregate::fold(events), cmd).unwrap()
    }

    fn set(id: &str) -> C {
        C::Set {
            volume_type_id: id.into(),
        }
    }

    fn was_set(id: &str) -> E {
        E::ProjectDefaultTypeSet {
            volume_type_id: id.into(),
        }
    }

    #[test]
    fn set_replace_and_unset() {
        assert_eq!(given(&[], set("a")), vec![was_set("a")]);
        assert_eq!(given(&[was_set("a")], set("b")), vec![was_set("b")]);
        assert_eq!(
            given(&[was_set("a")], C::Unset),
            vec![E::ProjectDefaultTypeUnset {}]
        );
    }

    #[test]
    fn repeating_a_command_changes_nothing() {
        assert_eq!(given(&[was_set("a")], set("a")), vec![]);
        assert_eq!(given(&[], C::Unset), vec![]);
        assert_eq!(
            given(&[was_set("a"), E::ProjectDefaultTypeUnset {}], C::Unset),
            vec![]
        );
    }
}
