//! Running a command against an aggregate inside a write transaction:
//! load the stream, fold it, decide, append with the version we read
//! (optimistic concurrency), or record the refusal.
//!
//! This is the one place where the pure `domain` meets the log, shared by
//! the API (client commands) and the executor (outcome commands).

use domain::{Aggregate, DomainError};
use serde_json::{json, Value};

use rusqlite::{params, OptionalExtension};

use crate::{ExpectedVersion, NewEvent, RecordedEvent, StoreError, WriteTx};

/// The stream where refused commands are recorded for the audit trail.
pub const REQUESTS_STREAM: &str = "requests";

/// Events decided against one stream at one version, not yet appended.
pub struct Decided {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Decodes a stored event back into the aggregate's event type.
pub fn decode<A: Aggregate>(ev: &RecordedEvent) -> Result<A::Event, StoreError> {
    Ok(serde_json::from_value(
        json!({"type": ev.event_type, "data": ev.data}),
    )?)
}

/// Folded aggregate states, kept beside the log in the same transaction as
/// the events they fold: a command reads its aggregate's state and only the
/// events after it, so handling a command costs the same after 10 events
/// and after 10,000 (issue 11). Not a projection: nothing reads it but the
/// runner, a missing or stale row is folded afresh, and `verify` folds
/// streams itself.
pub const STATE_CACHE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS aggregate_states (
    stream_id TEXT PRIMARY KEY,
    state_version INTEGER NOT NULL,
    stream_version INTEGER NOT NULL,
    state TEXT NOT NULL
)";

impl WriteTx<'_> {
    /// The aggregate's current state and stream version: the cached fold
    /// plus the events appended after it (all of them if nothing is cached
    /// or the cache is of another `STATE_VERSION`).
    pub fn load<A: Aggregate>(&self, id: &str) -> Result<(A::State, u64), StoreError> {
        let stream = A::stream_id(id);
        let cached: Option<(u32, u64, String)> = self
            .conn()
            .prepare_cached(
                "SELECT state_version, stream_version, state FROM aggregate_states
                 WHERE stream_id = ?1",
            )?
            .query_row([&stream], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (mut state, mut version) = match cached {
            Some((v, at, text)) if v == A::STATE_VERSION => {
                (serde_json::from_str::<A::State>(&text)?, at)
            }
            _ => (A::State::default(), 0),
        };
        let newer = self.read_stream_after_version(&stream, version)?;
        for ev in &newer {
            // Both sides of the fold agree on where the stream is.
            debug_assert_eq!(ev.stream_version, version + 1, "gap in {stream}");
            state = A::evolve(state, &decode::<A>(ev)?);
            version = ev.stream_version;
        }
        if !newer.is_empty() {
            self.conn()
                .prepare_cached(
                    "INSERT INTO aggregate_states (stream_id, state_version, stream_version, state)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(stream_id) DO UPDATE SET state_version = excluded.state_version,
                    stream_version = excluded.stream_version, state = excluded.state",
                )?
                .execute(params![
                    stream,
                    A::STATE_VERSION,
                    version,
                    serde_json::to_string(&state)?
                ])?;
        }
        Ok((state, version))
    }

    /// Decides `cmd` against aggregate `id` without appending: several
    /// decisions (over several aggregates) can then be committed together,
    /// or none of them if any is refused.
    pub fn decide<A: Aggregate>(
        &self,
        id: &str,
        cmd: A::Command,
        metadata: &Value,
    ) -> Result<Result<Decided, DomainError>, StoreError> {
        let (state, version) = self.load::<A>(id)?;
        let events = match A::decide(&state, cmd) {
            Ok(events) => events,
            Err(e) => return Ok(Err(e)),
        };
        let new = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e)?;
                Ok(NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: A::event_type(e).to_string(),
                    v: A::EVENT_VERSION,
                    data: v.get_mut("data").map(Value::take).unwrap_or(Value::Null),
                    metadata: metadata.clone(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Ok(Decided {
            stream_id: A::stream_id(id),
            expected: if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            },
            events: new,
        }))
    }

    /// `decide`, with a refusal recorded in the audit trail.
    pub fn decide_or_reject<A: Aggregate>(
        &mut self,
        id: &str,
        cmd: A::Command,
        metadata: &Value,
    ) -> Result<Result<Decided, DomainError>, StoreError> {
        let decided = self.decide::<A>(id, cmd, metadata)?;
        if let Err(e) = &decided {
            self.reject(&A::stream_id(id), e, metadata)?;
        }
        Ok(decided)
    }

    /// Appends decisions in order, each with the version it was decided at.
    pub fn commit(&mut self, decided: Vec<Decided>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        for d in decided {
            out.extend(self.append(&d.stream_id, d.expected, d.events)?);
        }
        Ok(out)
    }

    /// Records a refused command in the `requests` stream (the audit trail
    /// shows who tried what, DESIGN.md "What becomes an event").
    pub fn reject(
        &mut self,
        stream_id: &str,
        err: &DomainError,
        metadata: &Value,
    ) -> Result<(), StoreError> {
        self.append(
            REQUESTS_STREAM,
            ExpectedVersion::Any,
            vec![NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: "CommandRejected".into(),
                v: 1,
                // Dialect-neutral: the rule that refused, never a vendor's
                // code (each dialect maps the reason onto its own).
                data: json!({
                    "stream_id": stream_id,
                    "reason": err.reason(),
                    "field": err.field(),
                    "message": err.to_string(),
                }),
                metadata: metadata.clone(),
            }],
        )?;
        Ok(())
    }

    /// Decides `cmd` against aggregate `id` and appends what it decides.
    /// A refusal is recorded as `CommandRejected` in the `requests` stream and
    /// returned as the inner `Err`, so the transaction still commits it.
    pub fn execute<A: Aggregate>(
        &mut self,
        id: &str,
        cmd: A::Command,
        metadata: &Value,
    ) -> Result<Result<Vec<RecordedEvent>, DomainError>, StoreError> {
        match self.decide_or_reject::<A>(id, cmd, metadata)? {
            Ok(d) => Ok(Ok(self.commit(vec![d])?)),
            Err(err) => Ok(Err(err)),
        }
    }
}
