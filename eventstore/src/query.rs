//! Filtering the log for the audit API (issue 14): which events match a
//! filter, in position order, a page at a time.
//!
//! The filters (resource, refused or not, user, request, time, project)
//! are not columns of `events`, and the events table's columns are the
//! hash chain's, so they are not changed. They are kept in a side index
//! instead, `audit_events` (one row per event) and `audit_owners` (which
//! projects an event belongs to), built from the log alone and brought up
//! to the head by `catch_up` before a query. It is derived data like the
//! views, but lazy: an append costs nothing more (the write path is the
//! hot one), and the first audit query after many appends indexes them.
//! A missing or dropped index is simply rebuilt from position 1.
//!
//! Which project an event belongs to is the application's rule, not the
//! log's: `catch_up` takes it as a function (`Ownership`).

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{query_events, read_from, RecordedEvent, StoreError};

/// The event type of a refused command (`WriteTx::reject`).
pub const REFUSED: &str = "CommandRejected";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    position INTEGER PRIMARY KEY,
    recorded_us INTEGER NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    refused INTEGER NOT NULL,
    user_id TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS audit_events_resource ON audit_events (resource_id, position);
CREATE INDEX IF NOT EXISTS audit_events_request ON audit_events (request_id);
CREATE INDEX IF NOT EXISTS audit_events_user ON audit_events (user_id, position);
CREATE TABLE IF NOT EXISTS audit_owners (
    project_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (project_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_streams (
    stream_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL
);
";

/// What an event is about and by whom, as the filters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    /// `volume`, `snapshot`, …: the stream's kind, or for a refusal the
    /// kind of the stream it named (`volume-<id>` → `volume`); a stream
    /// without an id (`identity`, `policy`) is its own kind.
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub refused: bool,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    pub recorded_us: i64,
}

/// The stream a refusal named, else the event's own.
pub fn named_stream(ev: &RecordedEvent) -> &str {
    if ev.event_type == REFUSED {
        if let Some(s) = ev.data.get("stream_id").and_then(|s| s.as_str()) {
            return s;
        }
    }
    &ev.stream_id
}

/// `volume-<id>` → (`volume`, Some(id)); `identity` → (`identity`, None).
/// Stream kinds have no `-` (`volume_type-<id>`), ids may.
pub fn split_stream(stream: &str) -> (&str, Option<&str>) {
    match stream.split_once('-') {
        Some((kind, id)) => (kind, Some(id)),
        None => (stream, None),
    }
}

pub fn attrs(ev: &RecordedEvent) -> Attrs {
    let (kind, id) = split_stream(named_stream(ev));
    let text = |k: &str| {
        ev.metadata
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Attrs {
        resource_type: kind.to_string(),
        resource_id: id.map(str::to_string),
        refused: ev.event_type == REFUSED,
        user_id: text("user_id"),
        request_id: text("request_id"),
        recorded_us: ev.recorded_at.timestamp_micros(),
    }
}

/// The projects an event belongs to, and the new owner of its stream if
/// this event sets one (a creation names it, a transfer moves it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub projects: Vec<String>,
    pub stream_owner: Option<String>,
}

/// The application's rule: an event, and the current owner of any stream
/// (as indexed so far), give the event's `Ownership`.
pub type OwnerRule = dyn Fn(&RecordedEvent, &dyn Fn(&str) -> Option<String>) -> Ownership;

/// Position up to which the index is built (0 if it does not exist yet:
/// a read connection cannot create it).
pub fn indexed_head(conn: &Connection) -> Result<u64, StoreError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(position), 0) FROM audit_events",
        [],
        |r| r.get(0),
    )?)
}

/// Indexes at most `max` events after the indexed head, on a write
/// connection (the writer's transaction). Returns the new indexed head and
/// whether it reached the log's head.
pub fn catch_up(
    conn: &Connection,
    max: usize,
    rule: &OwnerRule,
) -> Result<(u64, bool), StoreError> {
    conn.execute_batch(SCHEMA)?;
    let from = indexed_head(conn)?;
    let events = read_from(conn, from, max)?;
    let owners: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
    let owner_of = |stream: &str| -> Option<String> {
        if let Some(o) = owners.borrow().get(stream) {
            return o.clone();
        }
        let o = conn
            .prepare_cached("SELECT project_id FROM audit_streams WHERE stream_id = ?1")
            .and_then(|mut s| s.query_row([stream], |r| r.get::<_, String>(0)).optional())
            .ok()
            .flatten();
        owners.borrow_mut().insert(stream.to_string(), o.clone());
        o
    };
    let mut head = from;
    for ev in &events {
        let a = attrs(ev);
        conn.prepare_cached(
            "INSERT INTO audit_events (position, recorded_us, resource_type, resource_id, refused, user_id, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            ev.position,
            a.recorded_us,
            a.resource_type,
            a.resource_id,
            a.refused,
            a.user_id,
            a.request_id
        ])?;
        let own = rule(ev, &owner_of);
        for p in &own.projects {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO audit_owners (project_id, position) VALUES (?1, ?2)",
            )?
            .execute(params![p, ev.position])?;
        }
        if let Some(p) = own.stream_owner {
            conn.prepare_cached(
                "INSERT INTO audit_streams (stream_id, project_id) VALUES (?1, ?2)
                 ON CONFLICT (stream_id) DO UPDATE SET project_id = excluded.project_id",
            )?
            .execute(params![ev.stream_id, p])?;
            owners.borrow_mut().insert(ev.stream_id.clone(), Some(p));
        }
        head = ev.position;
    }
    Ok((head, events.len() < max))
}

/// One page's question. Every `Some` narrows; `project: None` is every
/// project's events (and those of no project: identity, volume types).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Exclusive.
    pub after: u64,
    /// Inclusive (`as_of`).
    pub upto: Option<u64>,
    pub limit: usize,
    pub project: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub event_type: Option<String>,
    pub refused: Option<bool>,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    /// The stored stream (the admin listing's `stream=`).
    pub stream_id: Option<String>,
    /// Inclusive, microseconds since the epoch.
    pub since_us: Option<i64>,
    /// Inclusive.
    pub until_us: Option<i64>,
}

impl Filter {
    /// The same filter in memory, for a reader without the index (the
    /// `events` command). `owners` is only consulted if `project` is set.
    pub fn matches(&self, ev: &RecordedEvent, owners: &[String]) -> bool {
        let a = attrs(ev);
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        ev.position > self.after
            && self.upto.is_none_or(|u| ev.position <= u)
            && self
                .project
                .as_ref()
                .is_none_or(|p| owners.iter().any(|o| o == p))
            && eq(&self.resource_type, Some(&a.resource_type))
            && eq(&self.resource_id, a.resource_id.as_deref())
            && eq(&self.event_type, Some(&ev.event_type))
            && self.refused.is_none_or(|r| r == a.refused)
            && eq(&self.user_id, a.user_id.as_deref())
            && eq(&self.request_id, a.request_id.as_deref())
            && eq(&self.stream_id, Some(&ev.stream_id))
            && self.since_us.is_none_or(|s| a.recorded_us >= s)
            && self.until_us.is_none_or(|u| a.recorded_us <= u)
    }
}

/// The events matching `f` from the index, oldest first, at most
/// `f.limit`. Only indexed events are seen: `catch_up` first.
pub fn query(conn: &Connection, f: &Filter) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut clauses = vec!["a.position > ?".to_string()];
    let mut args: Vec<Sql> = vec![Sql::Integer(f.after as i64)];
    let mut add = |clause: &str, v: Sql| {
        clauses.push(clause.to_string());
        args.push(v);
    };
    let text = |s: &String| Sql::Text(s.clone());
    if let Some(u) = f.upto {
        add("a.position <= ?", Sql::Integer(u as i64));
    }
    if let Some(p) = &f.project {
        add(
            "EXISTS (SELECT 1 FROM audit_owners o WHERE o.project_id = ? AND o.position = a.position)",
            text(p),
        );
    }
    if let Some(v) = &f.resource_type {
        add("a.resource_type = ?", text(v));
    }
    if let Some(v) = &f.resource_id {
        add("a.resource_id = ?", text(v));
    }
    if let Some(v) = &f.event_type {
        add("e.event_type = ?", text(v));
    }
    if let Some(r) = f.refused {
        add("a.refused = ?", Sql::Integer(r.into()));
    }
    if let Some(v) = &f.user_id {
        add("a.user_id = ?", text(v));
    }
    if let Some(v) = &f.request_id {
        add("a.request_id = ?", text(v));
    }
    if let Some(v) = &f.stream_id {
        add("e.stream_id = ?", text(v));
    }
    if let Some(v) = f.since_us {
        add("a.recorded_us >= ?", Sql::Integer(v));
    }
    if let Some(v) = f.until_us {
        add("a.recorded_us <= ?", Sql::Integer(v));
    }
    args.push(Sql::Integer(i64::try_from(f.limit).unwrap_or(i64::MAX)));
    let where_clause = format!(
        "WHERE position IN (SELECT a.position FROM audit_events a JOIN events e ON e.position = a.position
         WHERE {} ORDER BY a.position LIMIT ?) ORDER BY position",
        clauses.join(" AND ")
    );
    query_events(conn, &where_clause, rusqlite::params_from_iter(args))
}

/// Whether `project` owns any event of the stream itself (not counting
/// refusals that named it); with `None`, whether the stream exists.
pub fn stream_visible(
    conn: &Connection,
    stream_id: &str,
    project: Option<&str>,
) -> Result<bool, StoreError> {
    Ok(match project {
        None => conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = ?1)",
            [stream_id],
            |r| r.get(0),
        )?,
        Some(p) => conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM events e JOIN audit_owners o
               ON o.position = e.position AND o.project_id = ?2 WHERE e.stream_id = ?1)",
            params![stream_id, p],
            |r| r.get(0),
        )?,
    })
}

/// The newest event recorded at or before `us` (an `as_of` time).
pub fn position_at(conn: &Connection, us: i64) -> Result<u64, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(position), 0) FROM audit_events WHERE recorded_us <= ?1",
        [us],
        |r| r.get(0),
    )?)
}

/// The stream's events up to `upto`, oldest first (for folding a state as
/// of an instant).
pub fn stream_upto(
    conn: &Connection,
    stream_id: &str,
    upto: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    query_events(
        conn,
        "WHERE stream_id = ?1 AND position <= ?2 ORDER BY stream_version",
        params![stream_id, upto],
    )
}

/// One event by position.
pub fn at(conn: &Connection, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
    Ok(query_events(conn, "WHERE position = ?1", [position])?.pop())
}

/// At most `limit` events after `after`, oldest first, on any connection
/// (the `events` command reads the file read-only, without the index).
pub fn after(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    read_from(conn, after, limit)
}

/// Whether the log extends a digest (`hash` at `position`, as the digest
/// route answered it earlier): every row up to the head re-hashes against
/// its predecessor, and the row at `position` still has that hash. `Ok`
/// with the number of events, or where and why it diverges.
pub fn check_digest(
    conn: &Connection,
    position: u64,
    hash: &str,
) -> Result<Result<u64, String>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM events ORDER BY position",
        crate::COLUMNS
    ))?;
    let mut rows = stmt.query([])?;
    let (mut events, mut prev) = (0u64, String::new());
    while let Some(r) = rows.next()? {
        events += 1;
        let at: u64 = r.get(0)?;
        let checked = if at != events {
            Err(format!("position gap: expected {events}, found {at}"))
        } else {
            crate::check_row(&prev, at, r)
        };
        match checked {
            Err(why) if events <= position => {
                return Ok(Err(format!(
                    "the log diverges from the digest at position {events}: {why}"
                )))
            }
            Err(why) => {
                return Ok(Err(format!(
                    "the log holds the digest's {position} events but its chain breaks after them, at position {events}: {why}"
                )))
            }
            Ok(h) => {
                if at == position && !h.eq_ignore_ascii_case(hash) {
                    return Ok(Err(format!(
                        "position {position} has hash {h}, the digest says {hash}: the log diverges at or before position {position} (its own chain holds, so it was re-hashed from there on)"
                    )));
                }
                prev = h;
            }
        }
    }
    if events < position {
        return Ok(Err(format!(
            "the log has {events} events, the digest is of position {position}: it diverges at position {} (cut short)",
            events + 1
        )));
    }
    Ok(Ok(events))
}
