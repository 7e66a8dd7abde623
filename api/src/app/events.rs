//! The audit trail for everyone (issue 14): a project's events, filtered;
//! one resource's history, optionally as of an instant with its folded
//! state; the log's digest. Reads only: nothing here appends.
//!
//! Which project an event belongs to (`ownership`), decided once per event
//! when the side index (`eventstore::query`) takes it in:
//!
//! - an event of a volume, snapshot, image, transfer, group or group
//!   snapshot stream belongs to the project that owned the resource when it was recorded: the one its
//!   creation event names (`project_id`), so the executor's events of a
//!   project's volume are that project's whoever triggered them, and an
//!   admin's changes to a project's volume are the project's too. A
//!   transfer (`to_project`) belongs to both sides and moves the
//!   resource; what happened before it stays the giver's (the receiver
//!   learns nothing of who used the volume before). Owner at the time,
//!   rather than the current owner, so that no later event can widen who
//!   sees an old one;
//! - a refusal (`CommandRejected`) belongs to the caller's project (the
//!   caller sees what it tried) and to the owner of the resource it named
//!   (the owner sees who tried to touch its resource, e.g. another
//!   project guessing an id);
//! - `quota-<project>` events are that project's; idempotency records the
//!   requesting project's;
//! - the rest (identity, volume and group types, QoS specs, quota
//!   classes, failed logins) belong to no project: an admin sees them with
//!   `all_projects=true`.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{Aggregate, DomainError, SnapshotAggregate, VolumeAggregate};
use eventstore::query::{self, Filter, Ownership};
use eventstore::{rusqlite, RecordedEvent, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{App, AppError, Caller};

/// Events indexed per write job while catching up: bounds how long one
/// audit query holds the writer.
const CATCH_UP_BATCH: usize = 500;

fn refused(e: DomainError) -> AppError {
    AppError::refused(String::new(), e)
}

/// The ownership rule above, for `eventstore::query::catch_up`.
pub fn ownership(ev: &RecordedEvent, owner_of: &dyn Fn(&str) -> Option<String>) -> Ownership {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut projects = Vec::new();
    let mut push = |p: Option<String>| {
        if let Some(p) = p {
            if !projects.contains(&p) {
                projects.push(p);
            }
        }
    };
    if ev.event_type == query::REFUSED {
        push(text(&ev.metadata, "project_id"));
        push(owner_of(query::named_stream(ev)));
        return Ownership {
            projects,
            stream_owner: None,
        };
    }
    let (kind, id) = query::split_stream(&ev.stream_id);
    match kind {
        // g17: a group's and a group snapshot's creation names its project too.
        "volume" | "snapshot" | "image" | "transfer" | "group" | "group_snapshot" => {
            let before = owner_of(&ev.stream_id);
            let current = before.clone().or_else(|| text(&ev.data, "project_id"));
            // `to_project` as stored by version 1 of the transfer events,
            // `to_project_id` by version 2 (r14's upcasters).
            let to = text(&ev.data, "to_project_id").or_else(|| text(&ev.data, "to_project"));
            push(current.clone());
            push(to.clone());
            let after = to.or(current);
            Ownership {
                projects,
                stream_owner: after.filter(|a| before.as_ref() != Some(a)),
            }
        }
        "quota" => {
            push(id.map(str::to_string));
            Ownership {
                projects,
                stream_owner: None,
            }
        }
        "idempotency" => {
            push(text(&ev.metadata, "project_id"));
            Ownership {
                projects,
                stream_owner: None,
            }
        }
        _ => Ownership::default(),
    }
}

/// A read on the store's read connections, for the index's functions
/// (which answer the store's error, not SQLite's).
async fn read<T, F>(app: &App, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
{
    Ok(app.store.query(move |c| Ok(f(c))).await??)
}

/// Brings the side index up to the log's head (as read now).
async fn catch_up(app: &App) -> Result<(), AppError> {
    let (indexed, head) = app
        .store
        .query(|c| {
            let head: u64 =
                c.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                    r.get(0)
                })?;
            Ok((query::indexed_head(c).unwrap_or(0), head))
        })
        .await?;
    if indexed >= head {
        return Ok(());
    }
    loop {
        let (_, done) = app
            .store
            .write(|w| query::catch_up(w.conn(), CATCH_UP_BATCH, &ownership))
            .await?;
        if done {
            return Ok(());
        }
    }
}

/// Events indexed per write job in the background: small, so a request
/// waiting for the writer waits for at most one such job (about a
/// millisecond), never for a whole backlog.
const BACKGROUND_BATCH: usize = 64;

/// How often the background indexer looks at the log's head.
const BACKGROUND_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the side index near the log's head while the server runs, so the
/// first audit query after a start over a long log (or after a burst of
/// writes) does not pay for indexing the whole backlog itself: a lazy
/// index alone made the first query after 5,000 writes take 1.9 s (debug
/// build). It indexes at start, then only while the log is quiet (no
/// append for an interval, and none since): under a steady stream of
/// writes the writer's time goes to the writes, and a query then catches
/// up what is left by itself.
/// Runs until `stop` turns true; a failure is logged and retried at the
/// next tick.
pub async fn index_in_background(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    let head = app.store.subscribe();
    let mut indexed = 0u64;
    // The head at the previous tick; None at start, when the backlog of a
    // restart is indexed whatever the traffic.
    let mut previous: Option<u64> = None;
    loop {
        let now = *head.borrow();
        let at_start = previous.is_none();
        let quiet = previous.is_none_or(|p| p == now);
        if quiet && now > indexed {
            loop {
                if *stop.borrow() {
                    return;
                }
                // Writes came back: they have the writer again until the
                // next quiet interval. Without this, a pause after a burst
                // started the whole burst's backlog, which then ran beside
                // the writes that followed: 250,000 events indexed 64 at a
                // time in front of each request took a 1-client stream of
                // updates from 700/s to 76/s (bench, issue 11).
                if !at_start && *head.borrow() != now {
                    break;
                }
                match app
                    .store
                    .write(|w| query::catch_up(w.conn(), BACKGROUND_BATCH, &ownership))
                    .await
                {
                    Ok((at, done)) => {
                        indexed = at;
                        if done {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "audit index: catching up failed; retrying later");
                        break;
                    }
                }
            }
        }
        previous = Some(now);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(BACKGROUND_INTERVAL) => {}
        }
    }
}

/// Whose events a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The caller's project (for an admin, the URL's).
    Project,
    /// Every event (admin only).
    All,
}

/// A listing's question, parsed by the adapter.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Filter,
    /// `all_projects=true`.
    pub all_projects: bool,
}

/// A page of events; `more` if the page is full (there may be more).
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<RecordedEvent>,
    pub more: bool,
}

fn scope(caller: &Caller, all_projects: bool) -> Result<Scope, AppError> {
    match (all_projects, caller.is_admin) {
        (true, true) => Ok(Scope::All),
        (true, false) => Err(refused(DomainError::NotPermitted(
            "all_projects is for administrators only.".into(),
        ))),
        (false, _) => Ok(Scope::Project),
    }
}

/// `GET …/events`: the caller's project's events (an admin's: the URL
/// project's, or all with `all_projects`), filtered, one page.
pub async fn list(app: &App, caller: &Caller, req: ListRequest) -> Result<Page, AppError> {
    let mut f = req.filter;
    f.project = match scope(caller, req.all_projects)? {
        Scope::All => None,
        Scope::Project => Some(caller.project_id.clone()),
    };
    page(app, f).await
}

async fn page(app: &App, f: Filter) -> Result<Page, AppError> {
    catch_up(app).await?;
    let limit = f.limit;
    let events = read(app, move |c| query::query(c, &f)).await?;
    Ok(Page {
        more: events.len() >= limit,
        events,
    })
}

/// Which resource a history is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Volume,
    Snapshot,
}

/// `as_of`: a position, or an instant (the newest event at or before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Position(u64),
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone)]
pub struct History {
    pub page: Page,
    /// With `as_of`: the event the instant resolves to (position 0 and no
    /// time if the log was empty then) and the resource's folded state.
    pub as_of: Option<(u64, Option<DateTime<Utc>>, Value)>,
}

/// `GET …/{volumes|snapshots}/{id}/history`: the resource's own events
/// and the refusals that named it, as far as the caller may see them (a
/// resource none of whose events is the caller's project's is not found,
/// like a missing one, so ids do not leak).
pub async fn history(
    app: &App,
    caller: &Caller,
    kind: Kind,
    id: Uuid,
    as_of: Option<AsOf>,
    after: u64,
    limit: usize,
) -> Result<History, AppError> {
    catch_up(app).await?;
    let (stream, not_found) = match kind {
        Kind::Volume => (
            VolumeAggregate::stream_id(&id.to_string()),
            DomainError::VolumeNotFound(id.to_string()),
        ),
        Kind::Snapshot => (
            SnapshotAggregate::stream_id(&id.to_string()),
            DomainError::SnapshotNotFound(id.to_string()),
        ),
    };
    let project = (!caller.is_admin).then(|| caller.project_id.clone());
    let (s, p) = (stream.clone(), project.clone());
    let visible = read(app, move |c| query::stream_visible(c, &s, p.as_deref())).await?;
    if !visible {
        return Err(AppError::refused(stream, not_found));
    }
    let upto = match as_of {
        None => None,
        Some(AsOf::Position(p)) => Some(p),
        Some(AsOf::Time(t)) => {
            let us = t.timestamp_micros();
            Some(read(app, move |c| query::position_at(c, us)).await?)
        }
    };
    let (kind_name, id_text) = query::split_stream(&stream);
    let f = Filter {
        after,
        upto,
        limit,
        project,
        resource_type: Some(kind_name.to_string()),
        resource_id: id_text.map(str::to_string),
        ..Filter::default()
    };
    let page = page(app, f).await?;
    let as_of = match upto {
        None => None,
        Some(n) => {
            let s = stream.clone();
            let (at, events) = read(app, move |c| {
                Ok((query::at(c, n)?, query::stream_upto(c, &s, n)?))
            })
            .await?;
            let state = match kind {
                Kind::Volume => fold::<VolumeAggregate>(&events)?,
                Kind::Snapshot => fold::<SnapshotAggregate>(&events)?,
            };
            Some((n, at.map(|e| e.recorded_at), state))
        }
    };
    Ok(History { page, as_of })
}

/// The domain's fold of a stream's events, as JSON (the aggregate's
/// serialized state: `{"volume": {...} | null, "deleted": bool}`).
fn fold<A: Aggregate>(events: &[RecordedEvent]) -> Result<Value, AppError> {
    let mut state = A::State::default();
    for ev in events {
        let e = eventstore::aggregate::decode::<A>(ev)?;
        state = A::evolve(state, &e);
    }
    Ok(serde_json::to_value(&state).map_err(eventstore::StoreError::from)?)
}

/// The log's head and whether the chain holds up to it.
#[derive(Debug, Clone)]
pub struct Digest {
    pub position: u64,
    pub hash: String,
    pub recorded_at: Option<DateTime<Utc>>,
    pub verified: bool,
    pub detail: String,
}

/// `GET …/events/digest` (admin): the head event's position and hash,
/// and a re-hash of the chain up to it.
pub async fn digest(app: &App, caller: &Caller) -> Result<Digest, AppError> {
    if !caller.is_admin {
        return Err(refused(DomainError::NotPermitted(
            "the log's digest is for administrators only.".into(),
        )));
    }
    let head = read(app, |c| {
        let n: u64 = c.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
            r.get(0)
        })?;
        query::at(c, n)
    })
    .await?;
    let store = app.store.clone();
    let report = tokio::task::spawn_blocking(move || store.verify_chain())
        .await
        .map_err(|e| eventstore::StoreError::Panicked(e.to_string()))??;
    let (position, hash, recorded_at) = match head {
        Some(e) => (e.position, e.hash, Some(e.recorded_at)),
        None => (0, String::new(), None),
    };
    // The chain was read after the head: events appended in between are
    // beyond `position` and do not count against it.
    let (verified, detail) = match report.first_bad {
        Some((bad, why)) if bad <= position => {
            (false, format!("hash chain broken at position {bad}: {why}"))
        }
        _ => (
            true,
            format!("hash chain holds from position 1 to {position}"),
        ),
    };
    Ok(Digest {
        position,
        hash,
        recorded_at,
        verified,
        detail,
    })
}

/// An RFC 3339 time as microseconds since the epoch (`since`, `until`).
pub fn instant_us(raw: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// RFC 3339 with microseconds, as stored.
pub fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An event as the audit API and `blockledger events --json` show it:
/// what (type, data), the outcome, who, from where, how, position and
/// hash. Keys an event recorded before issue 14 lacks (roles, remote
/// address) are null; its method and path are read from `route`, which
/// always held both. The stored envelope stays under `metadata` and
/// `stream_version`/`event_id` too (the admin listing's shape since issue
/// 2).
pub fn event_json(ev: &RecordedEvent) -> Value {
    let a = query::attrs(ev);
    let md = &ev.metadata;
    let get = |k: &str| md.get(k).cloned().unwrap_or(Value::Null);
    let route = md.get("route").and_then(Value::as_str);
    let (method, path) = match (md.get("method"), md.get("path")) {
        (Some(m), Some(p)) => (m.clone(), p.clone()),
        _ => match route.and_then(|r| r.split_once(' ')) {
            Some((m, p)) if m.bytes().all(|b| b.is_ascii_uppercase()) => (json!(m), json!(p)),
            _ => (Value::Null, route.map_or(Value::Null, |r| json!(r))),
        },
    };
    let mut who = json!({
        "user_id": get("user_id"),
        "project_id": get("project_id"),
        "roles": get("roles"),
    });
    if let Some(actor) = md.get("actor").and_then(Value::as_str) {
        who["system"] = json!(actor);
    }
    json!({
        "position": ev.position,
        "hash": ev.hash,
        "recorded_at": time_text(&ev.recorded_at),
        "stream_id": ev.stream_id,
        "stream_version": ev.stream_version,
        "event_id": ev.event_id,
        "resource_type": a.resource_type,
        "resource_id": a.resource_id,
        "event_type": ev.event_type,
        "v": ev.v,
        "outcome": if a.refused { "refused" } else { "accepted" },
        "data": ev.data,
        "who": who,
        "from": {"remote_addr": get("remote_addr")},
        "how": {
            "dialect": get("dialect"),
            "method": method,
            "route": path,
            "request_id": get("request_id"),
        },
        "metadata": ev.metadata,
    })
}
