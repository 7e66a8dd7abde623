//! The shape every aggregate shares: `decide` turns a command into events
//! against the current state, `evolve` folds one event into the state.

use serde::{de::DeserializeOwned, Serialize};

/// A consistency boundary: one event stream, one state, one decider.
pub trait Aggregate {
    type State: Default + Serialize + DeserializeOwned;
    type Command;
    type Event: Serialize + DeserializeOwned;

    /// The stream that holds this aggregate's events, e.g. `volume-<uuid>`.
    fn stream_id(id: &str) -> String;
    /// Pure: the events `cmd` produces against `state`, or why it is refused.
    fn decide(state: &Self::State, cmd: Self::Command) -> Result<Vec<Self::Event>, DomainError>;
    /// Pure: the state after `event`.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;
    /// The event's type name as stored in the log (`"VolumeCreateRequested"`).
    fn event_type(event: &Self::Event) -> &'static str;
    // The stored shape's version is per event type: `upcast::current_version`.
    /// Version of `State`'s shape and of `evolve`: the command runner keeps
    /// each aggregate's folded state beside the log so a command does not
    /// fold the whole stream; bump this when either changes, and cached
    /// states of the old version are folded afresh.
    const STATE_VERSION: u32 = 1;

    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), |s, e| Self::evolve(s, e))
    }
}

use crate::DomainError;
