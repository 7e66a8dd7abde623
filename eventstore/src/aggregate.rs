//! Running a command against an aggregate inside a write transaction:
//! load the stream, fold it, decide, append with the version we read
//! (optimistic concurrency), or record the refusal.
//!
//! This is the one place where the pure `domain` meets the log, shared by
//! the API (client commands) and the executor (outcome commands).

use std::any::Any;
use std::collections::HashMap;

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
    /// The aggregate's state after these events (the decider's own fold
    /// of what it decided), kept in the writer's memory once appended.
    after: Option<Box<dyn Any + Send>>,
    /// The same state as stored JSON, when it is time to write a stored
    /// snapshot of the fold (every `SNAPSHOT_EVERY` events of a stream).
    snapshot: Option<(u32, String)>,
}

/// Streams whose folded state the writer keeps in memory. A state is a
/// few hundred bytes to a few KiB; past this many the map is emptied and
/// refills from the stored snapshots (bounded memory with 100,000
/// volumes, and no bookkeeping on the hot path).
const CACHED_STREAMS: usize = 50_000;

/// A stored snapshot of a fold is written once its stream has grown this
/// many events past the previous one: after a restart a command folds at
/// most this many events, and between restarts the memory cache serves
/// (the stored row cost an upsert and a JSON encoding per command).
const SNAPSHOT_EVERY: u64 = 64;

/// The writer's folded states, by stream: each with the version and hash
/// of the last event it folds. `load` trusts an entry only when that is
/// still the stream's last event in the transaction (one indexed read):
/// a savepoint rolled back after the entry was made, or an event appended
/// that did not go through `commit`, shows as another version or hash,
/// and the state is folded from the stored snapshot instead. So the cache
/// needs no undo log and can never answer for a version that is not the
/// log's (the append's expected-version check stays the arbiter).
///
/// Within one batch the check is made once per stream, not at every load
/// (a metadata edit loads its volume three times: the caller's ownership,
/// the decision, the answer; the tip query was 7.7% of the writer's time,
/// issue 11): an entry records the `epoch` in which its version and hash
/// were last seen to be the tip, and the epoch moves at every batch's
/// start and every savepoint rolled back, while an append marks its
/// stream's entry unchecked. Debug builds still query and assert.
#[derive(Default)]
pub(crate) struct StateCache {
    map: HashMap<String, CachedState>,
    epoch: u64,
}

struct CachedState {
    version: u64,
    hash: String,
    /// The epoch in which `version` and `hash` were seen to be the
    /// stream's tip; None once the stream was appended to since.
    checked: Option<u64>,
    /// The version of the stored snapshot as far as this writer knows.
    stored: u64,
    state: Box<dyn Any + Send>,
}

impl StateCache {
    /// Every entry must be checked against its stream's tip again.
    pub(crate) fn forget_checks(&mut self) {
        self.epoch += 1;
    }

    /// The stream was appended to: its entry is no longer known current.
    pub(crate) fn unchecked(&mut self, stream: &str) {
        if let Some(c) = self.map.get_mut(stream) {
            c.checked = None;
        }
    }

    fn put(&mut self, stream: String, entry: CachedState) {
        if self.map.len() >= CACHED_STREAMS && !self.map.contains_key(&stream) {
            self.map.clear();
        }
        self.map.insert(stream, entry);
    }
}

/// Decodes a stored event back into the aggregate's event type.
pub fn decode<A: Aggregate>(ev: &RecordedEvent) -> Result<A::Event, StoreError> {
    // From the stored text, not from a `Value` of it (issue 11).
    Ok(ev.decode()?)
}

/// The version and hash of `stream`'s last event (None: no such stream):
/// what a fold kept in memory must still match to be trusted.
pub fn stream_tip(
    conn: &rusqlite::Connection,
    stream: &str,
) -> rusqlite::Result<Option<(u64, String)>> {
    conn.prepare_cached(
        "SELECT stream_version, hash FROM events WHERE stream_id = ?1
         ORDER BY stream_version DESC LIMIT 1",
    )?
    .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// The fold of `stream` up to its event `version` included, read on
/// `conn` (a view's connection, inside the writer's transaction or not).
/// For a view that keeps the decider's fold in memory and lost it (a
/// restart, an entry evicted or undone): at most `SNAPSHOT_EVERY` events
/// are read.
pub fn fold_until<A: Aggregate>(
    conn: &rusqlite::Connection,
    stream: &str,
    version: u64,
) -> Result<A::State, StoreError> {
    Ok(fold_stored::<A>(conn, stream, version)?.0)
}

/// The stored snapshot of `stream`'s fold when it is at or before
/// `version` and of this `STATE_VERSION`, then the events after it up to
/// `version`: the state, the version it folds, and the snapshot's version
/// (0: none used).
fn fold_stored<A: Aggregate>(
    conn: &rusqlite::Connection,
    stream: &str,
    version: u64,
) -> Result<(A::State, u64, u64), StoreError> {
    let stored: Option<(u32, u64, String)> = conn
        .prepare_cached(
            "SELECT state_version, stream_version, state FROM aggregate_states
             WHERE stream_id = ?1",
        )?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (mut state, mut at) = match stored {
        Some((v, at, text)) if v == A::STATE_VERSION && at <= version => {
            (serde_json::from_str::<A::State>(&text)?, at)
        }
        _ => (A::State::default(), 0),
    };
    let snapshot = at;
    let events = crate::query_events(
        conn,
        "WHERE stream_id = ?1 AND stream_version > ?2 AND stream_version <= ?3
         ORDER BY stream_version",
        params![stream, at, version],
    )?;
    for ev in &events {
        // Both sides of the fold agree on where the stream is.
        debug_assert_eq!(ev.stream_version, at + 1, "gap in {stream}");
        state = A::evolve(state, &decode::<A>(ev)?);
        at = ev.stream_version;
    }
    Ok((state, at, snapshot))
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
    /// The aggregate's current state and stream version: the writer's
    /// in-memory fold when it is at the stream's last event, else the
    /// stored fold plus the events appended after it (all of them if
    /// nothing is stored or the stored state is of another
    /// `STATE_VERSION`).
    pub fn load<A: Aggregate>(&self, id: &str) -> Result<(A::State, u64), StoreError>
    where
        A::State: Clone + Send + 'static,
    {
        Ok(self.load_with_stored::<A>(id)?.0)
    }

    fn load_with_stored<A: Aggregate>(&self, id: &str) -> Result<((A::State, u64), u64), StoreError>
    where
        A::State: Clone + Send + 'static,
    {
        let stream = A::stream_id(id);
        if let Some(known) = self.checked_state::<A>(&stream) {
            return Ok(known);
        }
        let tip = stream_tip(self.conn(), &stream)?;
        let Some((tip_version, tip_hash)) = tip else {
            return Ok(((A::State::default(), 0), 0));
        };
        {
            let mut states = self.states.borrow_mut();
            let epoch = states.epoch;
            if let Some(c) = states.map.get_mut(&stream) {
                if c.version == tip_version && c.hash == tip_hash {
                    if let Some(state) = c.state.downcast_ref::<A::State>() {
                        c.checked = Some(epoch);
                        return Ok(((state.clone(), tip_version), c.stored));
                    }
                }
            }
        }
        let (state, version, mut stored) = fold_stored::<A>(self.conn(), &stream, tip_version)?;
        if version - stored >= SNAPSHOT_EVERY {
            self.save_snapshot(
                &stream,
                A::STATE_VERSION,
                version,
                &serde_json::to_string(&state)?,
            )?;
            stored = version;
        }
        if version == tip_version {
            let epoch = self.states.borrow().epoch;
            self.states.borrow_mut().put(
                stream,
                CachedState {
                    version,
                    hash: tip_hash,
                    checked: Some(epoch),
                    stored,
                    state: Box::new(state.clone()),
                },
            );
        }
        Ok(((state, version), stored))
    }

    /// The writer's fold of `stream` if it was seen at the stream's tip in
    /// this epoch (no query; debug builds query and assert it).
    fn checked_state<A: Aggregate>(&self, stream: &str) -> Option<((A::State, u64), u64)>
    where
        A::State: Clone + Send + 'static,
    {
        let states = self.states.borrow();
        let c = states.map.get(stream)?;
        if c.checked != Some(states.epoch) {
            return None;
        }
        let state = c.state.downcast_ref::<A::State>()?;
        #[cfg(debug_assertions)]
        {
            let tip = stream_tip(self.conn(), stream).ok().flatten();
            assert_eq!(
                tip,
                Some((c.version, c.hash.clone())),
                "the writer's checked fold of {stream} is not at its tip"
            );
        }
        Some(((state.clone(), c.version), c.stored))
    }

    /// Decides `cmd` against aggregate `id` without appending: several
    /// decisions (over several aggregates) can then be committed together,
    /// or none of them if any is refused.
    pub fn decide<A: Aggregate>(
        &self,
        id: &str,
        cmd: A::Command,
        metadata: &Value,
    ) -> Result<Result<Decided, DomainError>, StoreError>
    where
        A::State: Clone + Send + 'static,
    {
        let ((state, version), stored) = self.load_with_stored::<A>(id)?;
        let events = match A::decide(&state, cmd) {
            Ok(events) => events,
            Err(e) => return Ok(Err(e)),
        };
        // The decider's state after its own events: what a fold of the
        // stream will say once they are appended.
        let after = events.iter().fold(state, |s, e| A::evolve(s, e));
        let snapshot = if version + events.len() as u64 - stored >= SNAPSHOT_EVERY {
            Some((A::STATE_VERSION, serde_json::to_string(&after)?))
        } else {
            None
        };
        let new = events
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e)?;
                Ok(NewEvent {
                    // Time-ordered (v7): the log's unique index on event_id
                    // then grows at its right edge, one page shared by a
                    // whole group commit, where a random v4 id dirtied (and
                    // wrote to the WAL) a page of its own per event.
                    event_id: uuid::Uuid::now_v7(),
                    event_type: A::event_type(e).to_string(),
                    v: domain::upcast::current_version(A::event_type(e)),
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
            after: Some(Box::new(after)),
            snapshot,
        }))
    }

    /// `decide`, with a refusal recorded in the audit trail.
    pub fn decide_or_reject<A: Aggregate>(
        &mut self,
        id: &str,
        cmd: A::Command,
        metadata: &Value,
    ) -> Result<Result<Decided, DomainError>, StoreError>
    where
        A::State: Clone + Send + 'static,
    {
        let decided = self.decide::<A>(id, cmd, metadata)?;
        if let Err(e) = &decided {
            self.reject(&A::stream_id(id), e, metadata)?;
        }
        Ok(decided)
    }

    /// Appends decisions in order, each with the version it was decided at.
    /// The writer keeps each stream's new state in memory, and every
    /// `SNAPSHOT_EVERY` events a stored snapshot of it.
    pub fn commit(&mut self, decided: Vec<Decided>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        for d in decided {
            let ids: Vec<uuid::Uuid> = d.events.iter().map(|e| e.event_id).collect();
            let recorded = self.append(&d.stream_id, d.expected, d.events)?;
            // Only events this call appended (not an idempotent replay of
            // earlier ones) are the ones `after` folds.
            let fresh = recorded.iter().map(|e| e.event_id).eq(ids.iter().copied());
            if let (true, Some(last), Some(after)) = (fresh, recorded.last(), d.after) {
                let mut stored = self
                    .states
                    .borrow()
                    .map
                    .get(&d.stream_id)
                    .map_or(0, |c| c.stored);
                if let Some((state_version, text)) = d.snapshot {
                    self.save_snapshot(&d.stream_id, state_version, last.stream_version, &text)?;
                    stored = last.stream_version;
                }
                let epoch = self.states.borrow().epoch;
                self.states.borrow_mut().put(
                    d.stream_id.clone(),
                    CachedState {
                        version: last.stream_version,
                        hash: last.hash.clone(),
                        checked: Some(epoch),
                        stored,
                        state: after,
                    },
                );
            }
            out.extend(recorded);
        }
        Ok(out)
    }

    fn save_snapshot(
        &self,
        stream: &str,
        state_version: u32,
        version: u64,
        state: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO aggregate_states (stream_id, state_version, stream_version, state)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(stream_id) DO UPDATE SET state_version = excluded.state_version,
                    stream_version = excluded.stream_version, state = excluded.state",
            )?
            .execute(params![stream, state_version, version, state])?;
        Ok(())
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
                event_id: uuid::Uuid::now_v7(),
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
    ) -> Result<Result<Vec<RecordedEvent>, DomainError>, StoreError>
    where
        A::State: Clone + Send + 'static,
    {
        match self.decide_or_reject::<A>(id, cmd, metadata)? {
            Ok(d) => Ok(Ok(self.commit(vec![d])?)),
            Err(err) => Ok(Err(err)),
        }
    }
}
