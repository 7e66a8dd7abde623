//! Read models. Each view is a fold over the log with its own tables,
//! maintained inline in the append transaction (read-your-writes) and
//! rebuildable from position 0 (`blockledger replay`, `blockledger verify`).

use std::rc::Rc;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::Aggregate;
use eventstore::rusqlite::{self, types::ValueRef, Connection, OptionalExtension};
use eventstore::InlineProjection;

pub mod attachments;
pub mod backends;
pub mod groups;
pub mod idempotency;
pub mod identity;
pub mod images;
pub mod jobs;
pub mod messages;
pub mod metrics;
pub mod quotas;
pub mod snapshots;
pub mod transfers;
pub mod volume_types;
pub mod volumes;

pub use jobs::{JobRow, JobsProjection};
pub use snapshots::{SnapshotRow, SnapshotsProjection};
pub use volumes::{ListQuery, SortDir, SortKey, VolumeRow, VolumesProjection};

/// Every inline projection, in the order they are applied.
pub fn all() -> Vec<Arc<dyn InlineProjection>> {
    vec![
        Arc::new(VolumesProjection),
        Arc::new(JobsProjection),
        Arc::new(SnapshotsProjection),
        Arc::new(snapshots::SnapshotChainProjection),
        Arc::new(quotas::QuotasProjection),
        Arc::new(transfers::TransfersProjection),
        Arc::new(attachments::AttachmentsProjection),
        Arc::new(images::ImagesProjection),
        Arc::new(idempotency::IdempotencyProjection),
        Arc::new(volume_types::VolumeTypesProjection),
        Arc::new(identity::IdentityProjection),
        // After jobs: a failed work's request is the job's.
        Arc::new(messages::MessagesProjection),
        Arc::new(groups::GroupsProjection),
        Arc::new(backends::BackendsProjection),
    ]
}

/// A list query under construction: optional filters become numbered
/// parameters, never text spliced into SQL; the page fetches one row more
/// than asked to tell whether more remain.
pub(crate) struct Filter {
    sql: String,
    args: Vec<rusqlite::types::Value>,
}

impl Filter {
    pub(crate) fn new(select: String) -> Self {
        Filter {
            sql: format!("{select} WHERE 1=1"),
            args: Vec::new(),
        }
    }

    /// Appends `clause`, whose `?` is bound to `v`.
    pub(crate) fn and(&mut self, clause: &str, v: impl Into<rusqlite::types::Value>) {
        self.and_all(clause, [v.into()]);
    }

    /// Appends `clause`; its `?`s are bound to `values`, in order.
    pub(crate) fn and_all(
        &mut self,
        clause: &str,
        values: impl IntoIterator<Item = rusqlite::types::Value>,
    ) {
        let mut values = values.into_iter();
        let mut out = String::from(" AND ");
        for c in clause.chars() {
            if c == '?' {
                if let Some(v) = values.next() {
                    self.args.push(v);
                }
                out.push_str(&format!("?{}", self.args.len()));
            } else {
                out.push(c);
            }
        }
        self.sql.push_str(&out);
    }

    /// Cinder 3.60's time comparisons on a stamped column (`stamp`'s fixed
    /// width text orders as the instants do). A row without the time (a
    /// volume never updated) matches no comparison, as SQL's NULL.
    pub(crate) fn times(&mut self, column: &str, filters: &[TimeFilter]) {
        for f in filters {
            self.and(&format!("{column} {} ?", f.op.sql()), stamp(&f.at));
        }
    }

    /// `column = value` when a value is given.
    pub(crate) fn eq(&mut self, column: &str, v: Option<&String>) {
        if let Some(v) = v {
            self.and(&format!("{column} = ?"), v.clone());
        }
    }

    /// Runs the query with `order` and returns one page and whether more remain.
    /// `column IN (values…)` when values are given (an empty list filters
    /// nothing).
    pub(crate) fn one_of(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.and_all(
            &format!("{column} IN ({marks})"),
            values.iter().map(|v| v.clone().into()),
        );
    }

    /// Keyset paging: keeps the rows of `table` that come after `marker`
    /// in `key`/`dir` order (ties broken by `seq`, the creation position,
    /// so the order is total). False when no row of `table` is `marker`.
    pub(crate) fn after_marker(
        &mut self,
        conn: &Connection,
        table: &str,
        key: volumes::SortKey,
        dir: volumes::SortDir,
        marker: &str,
    ) -> rusqlite::Result<bool> {
        let col = key.column();
        let cmp = dir.comparison();
        let pos: Option<(rusqlite::types::Value, i64)> = conn
            .prepare_cached(&format!("SELECT {col}, seq FROM {table} WHERE id = ?1"))?
            .query_row([marker], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((k, seq)) = pos else {
            return Ok(false);
        };
        if key.is_unique() {
            self.and(&format!("{col} {cmp} ?"), k);
        } else {
            // A row value, so an index on (…, col, seq) serves the range.
            self.and_all(&format!("({col}, seq) {cmp} (?, ?)"), [k, seq.into()]);
        }
        Ok(true)
    }

    /// How many rows match, whatever the page.
    pub(crate) fn count(&self, conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row(
            &format!("SELECT COUNT(*) FROM ({})", self.sql),
            rusqlite::params_from_iter(self.args.iter()),
            |r| r.get(0),
        )
    }

    pub(crate) fn page<T>(
        mut self,
        conn: &Connection,
        order: &str,
        limit: usize,
        offset: usize,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<(Vec<T>, bool)> {
        self.sql.push_str(&format!(
            " ORDER BY {order} LIMIT {} OFFSET {offset}",
            limit.saturating_add(1)
        ));
        // Cached: parsing and planning the statement was 3% of a page of
        // 1,000 volumes; a list asked again is the same text.
        let mut stmt = conn.prepare_cached(&self.sql)?;
        // Room for the page up front (at most a default page, whatever a
        // client asks): growing a Vec of rows by doubling copied it ~10
        // times.
        let mut rows: Vec<T> = Vec::with_capacity(limit.saturating_add(1).min(1001));
        for row in stmt.query_map(rusqlite::params_from_iter(self.args), map)? {
            rows.push(row?);
        }
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }
}

/// Every row of `table` as canonical text, ordered by `order_by`: what
/// `verify` compares between the stored view and a fresh replay.
pub(crate) fn dump_table(
    conn: &Connection,
    table: &str,
    order_by: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order_by}"))?;
    let cols = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(cols);
        for i in 0..cols {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(f) => f.to_string(),
                ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => format!("blob:{}", b.len()),
            });
        }
        out.push(format!("{table}: {}", cells.join(" | ")));
    }
    Ok(out)
}

/// Times are stored raw: UTC, RFC 3339 with microseconds (sorts as text).
/// Each dialect formats them its own way when it renders a row.
/// A comparison of Cinder's time filters (`created_at=gt:2026-…`,
/// microversion 3.60): `gt`, `gte`, `eq`, `neq`, `lt`, `lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    Gt,
    Gte,
    Eq,
    Neq,
    Lt,
    Lte,
}

impl TimeOp {
    pub fn parse(s: &str) -> Option<TimeOp> {
        Some(match s {
            "gt" => TimeOp::Gt,
            "gte" => TimeOp::Gte,
            "eq" => TimeOp::Eq,
            "neq" => TimeOp::Neq,
            "lt" => TimeOp::Lt,
            "lte" => TimeOp::Lte,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            TimeOp::Gt => ">",
            TimeOp::Gte => ">=",
            TimeOp::Eq => "=",
            TimeOp::Neq => "!=",
            TimeOp::Lt => "<",
            TimeOp::Lte => "<=",
        }
    }
}

/// One time comparison: the row's time `op` `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFilter {
    pub op: TimeOp,
    pub at: DateTime<Utc>,
}

/// Runs `fill`, a replay's bulk insert into `table`, with the table's own
/// indexes dropped, then builds them again from their stored definitions
/// (in the same transaction: no reader sees the table without them).
/// SQLite builds an index by sorting its keys once; inserting row by row
/// put each key on a random leaf of each of the volumes view's seven
/// indexes: with 63,000 volumes, the views' final writes were a third of
/// a replay's time (perf, issue 11). The indexes of constraints
/// (PRIMARY KEY, UNIQUE) cannot be dropped and are filled as before: a
/// view's key is a UNIQUE INDEX of its own where that matters.
///
/// The table's triggers are dropped too, and made again after: `fill` does
/// what they would have done (the quota ledger's totals, in one statement
/// rather than two per row).
pub(crate) fn bulk_fill<T>(
    conn: &rusqlite::Connection,
    table: &str,
    fill: impl FnOnce() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let dropped: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_master
             WHERE type IN ('index', 'trigger') AND tbl_name = ?1 AND sql IS NOT NULL
             ORDER BY type, name",
        )?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (kind, name, _) in &dropped {
        let kind = if kind == "index" { "INDEX" } else { "TRIGGER" };
        conn.execute_batch(&format!("DROP {kind} \"{}\"", name.replace('"', "\"\"")))?;
    }
    let out = fill()?;
    for (_, _, sql) in &dropped {
        conn.execute_batch(sql)?;
    }
    Ok(out)
}

pub(crate) fn stamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn conversion(
    i: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

#[cfg(test)]
use eventstore::stamp_fast;

/// A new log with every view's schema, and a connection to it (the
/// directory lives as long as the first half).
#[cfg(test)]
pub(crate) fn views_db() -> (tempfile::TempDir, rusqlite::Connection) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.db");
    drop(eventstore::EventStore::open(&path, all()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    (tmp, conn)
}

/// SQLite's plan of `sql` with `args` (tests that a query reads the index
/// meant for it).
#[cfg(test)]
pub(crate) fn query_plan(
    conn: &rusqlite::Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> String {
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(args, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    plan.join("; ")
}

/// Column `i`, a stored time.
pub(crate) fn time_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    eventstore::parse_time(r.get_ref(i)?.as_str()?).map_err(|e| conversion(i, e))
}

/// Column `i`, an optional stored time.
pub(crate) fn opt_time_at(
    r: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => time_at(r, i).map(Some),
    }
}

/// Column `i`, a typed value stored as its serde string (a status).
pub(crate) fn enum_at<T: serde::de::DeserializeOwned>(
    r: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<T> {
    // Borrowed from the row and read in place: no String, no JSON value.
    let s = r.get_ref(i)?.as_str()?;
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|e| conversion(i, e))
}

/// Column `i`, a JSON text decoded into `T`; the empty object or array
/// (most rows' metadata and attachments) without running the parser.
pub(crate) fn json_at<T: serde::de::DeserializeOwned + Default>(
    r: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<T> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Text(b"{}" | b"[]") => Ok(T::default()),
        rusqlite::types::ValueRef::Text(t) => Ok(serde_json::from_slice(t).unwrap_or_default()),
        _ => Ok(T::default()),
    }
}

/// The folded aggregate state kept for `id` in `table` (`id`, `state`
/// JSON), or the empty state: one row read per event, whatever the
/// stream's length.
pub(crate) fn load_state<S: serde::de::DeserializeOwned + Default + Clone + 'static>(
    conn: &Connection,
    table: &str,
    id: &str,
) -> rusqlite::Result<S> {
    let kept = KEPT.with(|k| {
        k.borrow()
            .get(table)
            .and_then(|t| t.get(id))
            .and_then(|s| s.as_any().downcast_ref::<S>().cloned())
    });
    if let Some(state) = kept {
        return Ok(state);
    }
    // The stored text is read in place and compared with the text this
    // thread last wrote or read for the row: the same text is the same
    // state, so only a row changed behind this thread's back (another
    // connection, a rolled-back savepoint) is parsed again.
    let state: Option<S> = conn
        .prepare_cached(&format!("SELECT state FROM {table} WHERE id = ?1"))?
        .query_row([id], |r| {
            let text = r.get_ref(0)?.as_str()?;
            let known = PARSED.with(|p| {
                p.borrow()
                    .get(table)
                    .and_then(|t| t.get(id))
                    .filter(|(t, _)| t == text)
                    .and_then(|(_, s)| s.downcast_ref::<S>().cloned())
            });
            if known.is_some() {
                return Ok(known);
            }
            let parsed: Option<S> = serde_json::from_str(text).ok();
            if let Some(s) = &parsed {
                remember(table, id, text.to_owned(), s.clone());
            }
            Ok(parsed)
        })
        .optional()?
        .flatten();
    Ok(state.unwrap_or_default())
}

/// States by the stored text they were read from or written as, per
/// table and id, on this thread (the writer's): `load_state`'s parse
/// cache. Bounded like the writer's own fold cache.
type Parsed = std::collections::HashMap<
    String,
    std::collections::HashMap<String, (String, Box<dyn std::any::Any>)>,
>;

thread_local! {
    static PARSED: std::cell::RefCell<Parsed> = Default::default();
}

const PARSED_ROWS: usize = 50_000;

fn remember<S: 'static>(table: &str, id: &str, text: String, state: S) {
    PARSED.with(|p| {
        let mut p = p.borrow_mut();
        let t = match p.get_mut(table) {
            Some(t) => t,
            None => p.entry(table.to_owned()).or_default(),
        };
        if t.len() >= PARSED_ROWS && !t.contains_key(id) {
            t.clear();
        }
        t.insert(id.to_owned(), (text, Box::new(state)));
    });
}

pub(crate) fn save_state<S: serde::Serialize + Clone + 'static>(
    conn: &Connection,
    table: &str,
    id: &str,
    state: &S,
) -> rusqlite::Result<()> {
    let kept = KEPT.with(|k| match k.borrow_mut().get_mut(table) {
        Some(t) => {
            t.insert(id.to_owned(), Box::new(state.clone()));
            true
        }
        None => false,
    });
    if kept {
        return Ok(());
    }
    let json = serde_json::to_string(state)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    // An upsert rewrites the state in place; INSERT OR REPLACE deleted
    // and re-inserted the row and its key's index entry every event.
    conn.prepare_cached(&format!(
        "INSERT INTO {table} (id, state) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET state = excluded.state"
    ))?
    .execute(rusqlite::params![id, json])?;
    remember(table, id, json, state.clone());
    Ok(())
}

/// A view's rows kept in memory by a replay under way on this thread,
/// from `InlineProjection::begin_replay` to `end_replay`, which writes
/// them in bulk (`bulk_fill`): a replay applies the whole log in one
/// transaction on one thread, with no savepoint to undo. One per view, a
/// static beside the thread-local it names.
pub(crate) struct ReplayKept<T: 'static>(
    pub(crate) &'static std::thread::LocalKey<std::cell::RefCell<Option<T>>>,
);

impl<T: Default + 'static> ReplayKept<T> {
    /// A replay starts on this thread: keep from now on.
    pub(crate) fn begin(&self) {
        self.0.with(|k| *k.borrow_mut() = Some(T::default()));
    }

    /// `f` on what is kept, or on None when no replay is under way on
    /// this thread (the live path).
    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&mut T>) -> R) -> R {
        self.0.with(|k| f(k.borrow_mut().as_mut()))
    }

    /// `f` on what is kept seen as the view's store `S` (`as_store`) when
    /// a replay is under way on this thread, else on `live` (the table).
    pub(crate) fn or_live<S: ?Sized, R>(
        &self,
        live: &mut S,
        as_store: fn(&mut T) -> &mut S,
        f: impl FnOnce(&mut S) -> R,
    ) -> R {
        self.with(|kept| match kept {
            Some(kept) => f(as_store(kept)),
            None => f(live),
        })
    }

    /// The replay ended: what it kept, to write if it `finished` (None
    /// when it failed, or nothing was kept). Keeping stops either way.
    pub(crate) fn end(&self, finished: bool) -> Option<T> {
        self.0.with(|k| k.borrow_mut().take()).filter(|_| finished)
    }
}

/// A folded state kept in memory during a replay, written out at its end.
trait Kept {
    fn as_any(&self) -> &dyn std::any::Any;
    fn json(&self) -> serde_json::Result<String>;
}

impl<S: serde::Serialize + 'static> Kept for S {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

type KeptTables =
    std::collections::HashMap<String, std::collections::HashMap<String, Box<dyn Kept>>>;

thread_local! {
    /// The state tables whose rows a replay on this thread keeps in
    /// memory: a replay applies the whole log in one transaction on one
    /// thread with no savepoint to undo, so each volume's state need not
    /// be read back and re-encoded as JSON at every one of its events,
    /// only written once at the end (`end_replay`).
    static KEPT: std::cell::RefCell<KeptTables> = Default::default();
}

/// `InlineProjection::begin_replay` of a view with a state table.
pub(crate) fn keep_states(table: &str) {
    KEPT.with(|k| k.borrow_mut().insert(table.to_owned(), Default::default()));
}

/// `InlineProjection::end_replay`: writes the kept states (when the replay
/// finished) and stops keeping them.
pub(crate) fn write_kept_states(
    conn: &Connection,
    table: &str,
    finished: bool,
) -> rusqlite::Result<()> {
    let Some(kept) = KEPT.with(|k| k.borrow_mut().remove(table)) else {
        return Ok(());
    };
    if !finished {
        return Ok(());
    }
    let mut stmt = conn.prepare(&format!(
        "INSERT INTO {table} (id, state) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET state = excluded.state"
    ))?;
    // In id order: each insert lands at the right edge of the table's
    // b-tree (see volumes::replay::end).
    let mut kept: Vec<_> = kept.into_iter().collect();
    kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (id, state) in kept {
        let json = state
            .json()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        stmt.execute(rusqlite::params![id, json])?;
    }
    Ok(())
}

/// The audit `verify` runs: every stream `<prefix><id>` is folded with the
/// aggregate's own `evolve`, read straight from the events table (no cached
/// state), and the status the decider holds must be the status column of
/// `table`'s row `id`; a live aggregate without a row, or a row without a
/// live aggregate, is a disagreement too.
pub(crate) fn audit_status<A: Aggregate>(
    conn: &Connection,
    prefix: &str,
    table: &str,
    status_of: impl Fn(&A::State) -> Option<&'static str>,
) -> rusqlite::Result<Option<String>> {
    let mut rows: std::collections::BTreeMap<String, String> = {
        let mut stmt = conn.prepare(&format!("SELECT id, status FROM {table}"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut stmt = conn.prepare(
        "SELECT stream_id, event_type, data, v FROM events
         WHERE stream_id LIKE ?1 || '%' ORDER BY stream_id, stream_version",
    )?;
    let mut events = stmt.query([prefix])?;
    let mut current: Option<(String, A::State)> = None;
    let mut check = |id: &str, state: &A::State| -> Option<String> {
        let decided = status_of(state);
        let stored = rows.remove(id);
        (decided != stored.as_deref()).then(|| {
            format!(
                "{table} row {id}: stored status {} but the decider's fold of its stream says {}",
                stored.as_deref().unwrap_or("<no row>"),
                decided.unwrap_or("<none>")
            )
        })
    };
    while let Some(row) = events.next()? {
        let stream: String = row.get(0)?;
        let event_type: String = row.get(1)?;
        let data: String = row.get(2)?;
        let id = stream[prefix.len()..].to_string();
        if current.as_ref().is_some_and(|(c, _)| *c != id) {
            if let Some((c, st)) = current.take() {
                if let Some(bad) = check(&c, &st) {
                    return Ok(Some(bad));
                }
            }
        }
        let (_, state) = current.get_or_insert_with(|| (id, A::State::default()));
        let data: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        // Raw rows, not the store's reader: upcast here as it does.
        let (_, data) = domain::upcast::upcast(&event_type, row.get(3)?, data);
        if let Ok(ev) = serde_json::from_value::<A::Event>(
            serde_json::json!({"type": event_type, "data": data}),
        ) {
            *state = A::evolve(std::mem::take(state), &ev);
        }
    }
    if let Some((c, st)) = current.take() {
        if let Some(bad) = check(&c, &st) {
            return Ok(Some(bad));
        }
    }
    Ok(rows.into_iter().next().map(|(id, status)| {
        format!("{table} row {id} (status {status}) has no live aggregate in the log")
    }))
}

/// Decodes a stored event of a snapshot stream, or None for other streams.
pub(crate) fn snapshot_event(ev: &eventstore::RecordedEvent) -> Option<Rc<domain::SnapshotEvent>> {
    if !ev.stream_id.starts_with("snapshot-") {
        return None;
    }
    thread_local! {
        static LAST: Decoded<domain::SnapshotEvent> = const { std::cell::RefCell::new(None) };
    }
    decode_once(&LAST, ev)
}

/// Decodes a stored event of the volume stream, or None for other streams.
pub(crate) fn volume_event(ev: &eventstore::RecordedEvent) -> Option<Rc<domain::VolumeEvent>> {
    if !ev.stream_id.starts_with("volume-") {
        return None;
    }
    thread_local! {
        static LAST: Decoded<domain::VolumeEvent> = const { std::cell::RefCell::new(None) };
    }
    decode_once(&LAST, ev)
}

/// The last event decoded on this thread, by event id.
type Decoded<E> = std::cell::RefCell<Option<(uuid::Uuid, Option<Rc<E>>)>>;

/// Every projection of a volume or snapshot event decodes it; the JSON is
/// decoded once (projections run one after the other on the writer
/// thread, and a replay's thread) and the others share it: a deep copy
/// for each of the five views that read an event, and its drop, were ~9%
/// of a replay's instructions (callgrind, issue 11). Keyed by the event's
/// unique id, so an event rolled back with its savepoint can never be
/// answered for another.
fn decode_once<E: serde::de::DeserializeOwned>(
    last: &'static std::thread::LocalKey<Decoded<E>>,
    ev: &eventstore::RecordedEvent,
) -> Option<Rc<E>> {
    last.with(|cell| {
        if let Some((id, e)) = &*cell.borrow() {
            if *id == ev.event_id {
                return e.clone();
            }
        }
        let e: Option<Rc<E>> = ev.decode().ok().map(Rc::new);
        *cell.borrow_mut() = Some((ev.event_id, e.clone()));
        e
    })
}

#[cfg(test)]
mod tests {
    use eventstore::EventStore;

    /// The digit-by-digit reading of a stored time equals chrono's RFC 3339
    /// parser on every time `stamp` writes, and leaves every other text
    /// (which chrono reads or refuses) to it.
    #[test]
    fn a_stamp_reads_back_as_chrono_reads_it() {
        use chrono::{DateTime, TimeZone, Utc};
        let chrono = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let secs = (seed % 250_000_000_000) as i64 - 62_000_000_000;
            let t = Utc
                .timestamp_opt(secs, (seed >> 24) as u32 % 1_000_000_000)
                .unwrap();
            let s = super::stamp(&t);
            let fast = super::stamp_fast(&s);
            if (0..=9999).contains(&chrono::Datelike::year(&t)) {
                assert_eq!(fast, Some(chrono(&s).unwrap()), "{s}");
            } else {
                assert_eq!(fast, None, "{s}");
            }
        }
        for s in [
            "2026-02-30T00:00:00.000000Z",
            "2026-01-01T24:00:00.000000Z",
            "2026-01-01T23:59:60.000000Z",
            "2026-01-01T23:59:59.000000+00:00",
            "2026-01-01 23:59:59.000000Z",
            "2026-01-01T23:59:59.00000Z",
            "2026-01-01T23:5a:59.000000Z",
            "+026-01-01T23:59:59.000000Z",
        ] {
            assert_eq!(super::stamp_fast(s), None, "{s}");
        }
    }

    /// A store with one available volume and one available snapshot of it.
    fn store_with_volume_and_snapshot() -> (tempfile::TempDir, EventStore, String, String) {
        use domain::{SnapshotAggregate, SnapshotCommand, SnapshotWork, VolumeFacts, VolumeStatus};
        let tmp = tempfile::tempdir().unwrap();
        let store = EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        let meta = json!({"project_id": "p1"});
        let vol = uuid::Uuid::new_v4();
        let snap = uuid::Uuid::new_v4();
        let vcmds = [
            VolumeCommand::Create(Box::new(CreateVolume {
                volume_id: vol,
                project_id: "p1".into(),
                user_id: "u".into(),
                name: Some("v".into()),
                description: None,
                size: 1,
                availability_zone: "az-dc-1".into(),
                volume_type: "SSD".into(),
                metadata: Default::default(),
                multiattach: false,
                job_id: None,
                batch_job_id: None,
                source: None,
                backend: None,
                quota: domain::quota::Headroom::unlimited(),
            })),
            VolumeCommand::CompleteWork {
                kind: WorkKind::Create,
            },
        ];
        for cmd in vcmds {
            let m = meta.clone();
            store
                .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&vol.to_string(), cmd, &m))
                .unwrap()
                .unwrap();
        }
        let scmds = [
            SnapshotCommand::Create {
                snapshot_id: snap,
                volume: VolumeFacts {
                    id: vol,
                    project_id: "p1".into(),
                    status: VolumeStatus::Available,
                    size: 1,
                    volume_type: "SSD".into(),
                    availability_zone: "az-dc-1".into(),
                    head_snapshot: None,
                    backend: "SSD".into(),
                },
                user_id: "u".into(),
                name: None,
                description: None,
                metadata: Default::default(),
                force: false,
                full: false,
                quota: domain::quota::Headroom::unlimited(),
            },
            SnapshotCommand::CompleteWork {
                kind: SnapshotWork::Create,
            },
        ];
        for cmd in scmds {
            let m = meta.clone();
            store
                .write_blocking(move |tx| {
                    tx.execute::<SnapshotAggregate>(&snap.to_string(), cmd, &m)
                })
                .unwrap()
                .unwrap();
        }
        (tmp, store, vol.to_string(), snap.to_string())
    }

    /// Tampers the stored view behind the projections' back (verify opens
    /// its own connection to the same file).
    fn tamper(tmp: &tempfile::TempDir, sql: &str) {
        let conn = eventstore::rusqlite::Connection::open(tmp.path().join("t.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    /// Runs `cmd` against volume `id` with `meta`; the events it appended.
    fn on_volume(
        store: &EventStore,
        id: &str,
        cmd: VolumeCommand,
        meta: serde_json::Value,
    ) -> Vec<eventstore::RecordedEvent> {
        let id = id.to_string();
        store
            .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&id, cmd, &meta))
            .unwrap()
            .unwrap()
    }

    /// Snapshots `vol` as the API does: the head read in the same transaction.
    fn take_snapshot(store: &EventStore, vol: &str) -> String {
        use domain::{SnapshotAggregate, SnapshotCommand, SnapshotWork, VolumeFacts, VolumeStatus};
        let snap = uuid::Uuid::new_v4();
        let v = vol.to_string();
        store
            .write_blocking(move |tx| {
                let head = crate::snapshots::head_of(tx.conn(), &v)?.map(|h| h.parse().unwrap());
                let cmd = SnapshotCommand::Create {
                    snapshot_id: snap,
                    volume: VolumeFacts {
                        id: v.parse().unwrap(),
                        project_id: "p1".into(),
                        status: VolumeStatus::Available,
                        size: 1,
                        volume_type: "SSD".into(),
                        availability_zone: "az-dc-1".into(),
                        head_snapshot: head,
                        backend: "SSD".into(),
                    },
                    user_id: "u".into(),
                    name: None,
                    description: None,
                    metadata: Default::default(),
                    force: false,
                    full: false,
                    quota: domain::quota::Headroom::unlimited(),
                };
                let meta = json!({"project_id": "p1"});
                tx.execute::<SnapshotAggregate>(&snap.to_string(), cmd, &meta)?
                    .unwrap();
                tx.execute::<SnapshotAggregate>(
                    &snap.to_string(),
                    SnapshotCommand::CompleteWork {
                        kind: SnapshotWork::Create,
                    },
                    &meta,
                )
            })
            .unwrap()
            .unwrap();
        snap.to_string()
    }

    fn delete_snapshot(store: &EventStore, snap: &str) {
        use domain::{SnapshotAggregate, SnapshotCommand, SnapshotWork};
        let s = snap.to_string();
        store
            .write_blocking(move |tx| {
                let meta = json!({"project_id": "p1"});
                tx.execute::<SnapshotAggregate>(&s, SnapshotCommand::Delete, &meta)?
                    .unwrap();
                tx.execute::<SnapshotAggregate>(
                    &s,
                    SnapshotCommand::CompleteWork {
                        kind: SnapshotWork::Delete,
                    },
                    &meta,
                )
            })
            .unwrap()
            .unwrap();
    }

    /// Every view rebuilt from position 0 equals the view built live.
    fn assert_replay_equals_live(store: &EventStore) {
        let dump = |store: &EventStore| -> Vec<Vec<String>> {
            super::all()
                .iter()
                .map(|p| store.read(|c| p.dump(c)).unwrap())
                .collect()
        };
        let live = dump(store);
        store.rebuild_projections().unwrap();
        assert_eq!(live, dump(store));
    }

    #[test]
    fn the_head_moves_with_creates_deletes_and_rollbacks() {
        use crate::snapshots::{chain, head_of};
        let (_tmp, store, vol, s0) = store_with_volume_and_snapshot();
        delete_snapshot(&store, &s0);
        let head = |store: &EventStore| store.read(|c| head_of(c, &vol)).unwrap();
        let chain_of = |store: &EventStore, s: &str| store.read(|c| chain(c, s)).unwrap().unwrap();
        assert_eq!(head(&store), None);
        let s1 = take_snapshot(&store, &vol);
        let s2 = take_snapshot(&store, &vol);
        let s3 = take_snapshot(&store, &vol);
        assert_eq!(head(&store), Some(s3.clone()));
        let (c1, c2, c3) = (
            chain_of(&store, &s1),
            chain_of(&store, &s2),
            chain_of(&store, &s3),
        );
        assert_eq!(c1.parent_id, None);
        assert_eq!(c2.parent_id, Some(s1.clone()));
        assert_eq!(c3.parent_id, Some(s2.clone()));
        assert!(c3.is_head && !c2.is_head && !c1.is_head);
        assert!([&c1, &c2, &c3]
            .iter()
            .all(|c| c.root_id == s1 && c.tree_id == s1));

        delete_snapshot(&store, &s3);
        assert_eq!(head(&store), Some(s2.clone()));
        assert!(chain_of(&store, &s2).is_head);

        let meta = json!({"project_id": "p1"});
        let rollback = VolumeCommand::Rollback {
            snapshot_id: s1.parse().unwrap(),
            snapshot_volume_id: vol.parse().unwrap(),
            name: None,
        };
        on_volume(&store, &vol, rollback, meta.clone());
        assert_eq!(
            head(&store),
            Some(s2.clone()),
            "not before the rollback is done"
        );
        on_volume(
            &store,
            &vol,
            VolumeCommand::CompleteWork {
                kind: WorkKind::Rollback,
            },
            meta,
        );
        assert_eq!(head(&store), Some(s1.clone()));
        let s4 = take_snapshot(&store, &vol);
        let c4 = chain_of(&store, &s4);
        assert_eq!(c4.parent_id, Some(s1.clone()));
        assert_eq!(c4.root_id, s1);
        assert!(c4.is_head);

        // The root goes: its children root their own subtrees.
        delete_snapshot(&store, &s1);
        let (c2, c4) = (chain_of(&store, &s2), chain_of(&store, &s4));
        assert_eq!((c2.parent_id, c2.root_id.as_str()), (None, s2.as_str()));
        assert_eq!((c4.parent_id, c4.root_id.as_str()), (None, s4.as_str()));
        assert_eq!(c4.tree_id, s1, "the tree keeps its name");
        assert_eq!(head(&store), Some(s4));

        assert_eq!(store.verify_projections().unwrap(), None);
        assert_replay_equals_live(&store);
    }

    #[test]
    fn a_job_is_its_correlation_and_belongs_to_the_resource_project() {
        use crate::jobs::{get, JobEntity, JobKind, JobStatus};
        let (_tmp, store, vol, _) = store_with_volume_and_snapshot();
        // An admin extends alice's (p1's) volume through EVS: job "j1".
        let admin = json!({"project_id": "admin", "correlation_id": "j1"});
        let extend = VolumeCommand::Extend {
            new_size: 2,
            job_id: Some("j1".into()),
            quota: domain::quota::Headroom::unlimited(),
            policy: domain::volume::ExtendPolicy::OPEN,
        };
        let req = on_volume(&store, &vol, extend, admin);
        let job = store.read(|c| get(c, "j1")).unwrap().unwrap();
        assert_eq!(job.project_id, "p1");
        assert_eq!(
            (job.kind, job.status),
            (JobKind::ExtendVolume, JobStatus::Init)
        );
        assert_eq!(job.entity, JobEntity::Volume(vol.clone()));
        assert_eq!(job.end_time, None);
        // The executor copies the correlation id onto what it appends.
        let exec =
            json!({"actor": "executor", "correlation_id": "j1", "caused_by": req[0].event_id});
        let start = VolumeCommand::StartWork {
            kind: WorkKind::Extend,
        };
        on_volume(&store, &vol, start, exec.clone());
        let job = store.read(|c| get(c, "j1")).unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Running);
        let fail = VolumeCommand::FailWork {
            kind: WorkKind::Extend,
            reason: "disk full".into(),
        };
        on_volume(&store, &vol, fail, exec);
        let job = store.read(|c| get(c, "j1")).unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Fail);
        assert_eq!(job.failure.as_deref(), Some("disk full"));
        assert!(job.end_time.is_some());

        // A request without a correlation id (Cinder) is correlated by its
        // own event id, which the executor's events carry as `caused_by`.
        let delete = VolumeCommand::Delete {
            job_id: None,
            dependent_snapshots: 0,
        };
        let req = on_volume(&store, &vol, delete, json!({"project_id": "p1"}));
        let exec =
            json!({"actor": "executor", "correlation_id": null, "caused_by": req[0].event_id});
        let done = VolumeCommand::CompleteWork {
            kind: WorkKind::Delete,
        };
        on_volume(&store, &vol, done, exec);
        let id = req[0].event_id.to_string();
        let job = store.read(|c| get(c, &id)).unwrap().unwrap();
        assert_eq!(
            (job.kind, job.status),
            (JobKind::DeleteVolume, JobStatus::Success)
        );
        assert_eq!(store.verify_projections().unwrap(), None);
        assert_replay_equals_live(&store);
    }

    #[test]
    fn a_view_whose_schema_changed_is_rebuilt_from_the_log_at_open() {
        let (tmp, store, vol, snap) = store_with_volume_and_snapshot();
        store.close();
        drop(store);
        // As a data dir written before this schema: old tables, old version.
        tamper(
            &tmp,
            "DROP TABLE volumes;
             CREATE TABLE volumes (id TEXT PRIMARY KEY, prev_status TEXT NOT NULL);
             UPDATE projection_versions SET version = 1 WHERE name = 'volumes';
             DELETE FROM snapshot_chain; DELETE FROM volume_heads;
             DELETE FROM projection_versions WHERE name = 'snapshot_chain';",
        );
        let store = EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        assert_eq!(store.verify_projections().unwrap(), None);
        let row = store
            .read(|c| crate::volumes::get(c, &vol))
            .unwrap()
            .unwrap();
        assert_eq!(row.status, domain::VolumeStatus::Available);
        let head = store.read(|c| crate::snapshots::head_of(c, &vol)).unwrap();
        assert_eq!(head, Some(snap));
    }

    /// A metadata edit that sets `k` to "v".
    fn edit(k: &str) -> VolumeCommand {
        let mut md = std::collections::BTreeMap::new();
        md.insert(k.to_string(), "v".to_string());
        VolumeCommand::EditMetadata(domain::metadata::MetadataEdit::Merge(md))
    }

    /// The fold of the volume's whole stream as the log holds it.
    fn fold_of(store: &EventStore, vol: &str) -> domain::VolumeState {
        use domain::Aggregate;
        let events: Vec<_> = store
            .read_stream(&format!("volume-{vol}"))
            .unwrap()
            .iter()
            .map(|e| (*super::volume_event(e).unwrap()).clone())
            .collect();
        VolumeAggregate::fold(&events)
    }

    /// The command runner's cached fold (eventstore::aggregate) equals a
    /// fold of the whole stream after many commands, and a cache of another
    /// state version is ignored, not trusted.
    #[test]
    fn the_cached_fold_equals_a_fresh_fold() {
        use domain::metadata::MetadataEdit;
        let (tmp, store, vol, _) = store_with_volume_and_snapshot();
        for i in 0..200 {
            let mut md = std::collections::BTreeMap::new();
            md.insert(format!("k{}", i % 7), format!("v{i}"));
            on_volume(
                &store,
                &vol,
                VolumeCommand::EditMetadata(MetadataEdit::Merge(md)),
                json!({}),
            );
        }
        let fresh = |store: &EventStore| fold_of(store, &vol);
        let loaded = |store: &EventStore| {
            let id = vol.clone();
            store
                .write_blocking(move |tx| tx.load::<VolumeAggregate>(&id))
                .unwrap()
        };
        let (state, version) = loaded(&store);
        assert_eq!(state, fresh(&store));
        assert_eq!(version, 202);
        // A cache row of another shape is folded afresh.
        tamper(
            &tmp,
            "UPDATE aggregate_states SET state_version = 999, state = '{}'",
        );
        let (state, version) = loaded(&store);
        assert_eq!((state, version), (fresh(&store), 202));
    }

    /// The writer's in-memory fold (eventstore::aggregate) never answers
    /// for events a savepoint rolled back: a command decided, appended and
    /// cached, then undone, and another appended at the same version
    /// behind the cache's back; the next load is the fold of what the log
    /// holds.
    #[test]
    fn the_memory_fold_never_outlives_a_rollback() {
        let (_tmp, store, vol, _) = store_with_volume_and_snapshot();
        let (gone, kept) = (edit("gone"), edit("kept"));
        let id = vol.clone();
        let (before, after) = store
            .write_blocking(move |tx| {
                let meta = json!({});
                let before = tx.load::<VolumeAggregate>(&id)?;
                // Decided now, appended after the undo, around `commit`:
                // the cache is not told of it.
                let d = tx.decide::<VolumeAggregate>(&id, kept, &meta)?.unwrap();
                let undone: Result<(), eventstore::StoreError> = tx.atomically(|tx| {
                    tx.execute::<VolumeAggregate>(&id, gone, &meta)?.unwrap();
                    Err(eventstore::StoreError::Batch("undo".into()))
                });
                assert!(undone.is_err());
                // Right after the undo: the fold from before it.
                assert_eq!(tx.load::<VolumeAggregate>(&id)?, before);
                // The undone entry has this version too, but not this hash.
                tx.append(&d.stream_id, d.expected, d.events)?;
                let after = tx.load::<VolumeAggregate>(&id)?;
                Ok::<_, eventstore::StoreError>((before, after))
            })
            .unwrap();
        let keys = |s: &domain::VolumeState| s.volume.as_ref().unwrap().metadata.clone();
        assert!(keys(&before.0).is_empty(), "{:?}", before.0);
        assert_eq!(keys(&after.0).keys().collect::<Vec<_>>(), ["kept"]);
        assert_eq!(after.1, before.1 + 1);
        assert_eq!(after.0, fold_of(&store, &vol));
        assert_eq!(store.verify_projections().unwrap(), None);
    }

    /// A fold the writer saw at its stream's tip is trusted without asking
    /// the log again only within one batch (eventstore::aggregate): another
    /// process appending between two batches (the `identity` CLI beside a
    /// running server does) shows in the next load, which equals a fold
    /// of the whole stream.
    #[test]
    fn a_fold_is_checked_again_after_another_process_appended() {
        let (tmp, store, vol, _) = store_with_volume_and_snapshot();
        let load = |store: &EventStore| {
            let id = vol.clone();
            store
                .write_blocking(move |tx| {
                    let first = tx.load::<VolumeAggregate>(&id)?;
                    // The second load of the batch is served from memory.
                    let second = tx.load::<VolumeAggregate>(&id)?;
                    assert_eq!(first, second);
                    Ok::<_, eventstore::StoreError>(first)
                })
                .unwrap()
        };
        on_volume(&store, &vol, edit("mine"), json!({}));
        let (before, version) = load(&store);
        let other = EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        on_volume(&other, &vol, edit("theirs"), json!({}));
        other.close();
        let (after, after_version) = load(&store);
        assert_eq!(after_version, version + 1);
        let keys: Vec<String> = after.volume.clone().unwrap().metadata.into_keys().collect();
        assert_eq!(keys, ["mine", "theirs"], "{before:?}");
        assert_eq!(after, fold_of(&store, &vol));
    }

    /// The volume view's fold in memory (`volumes::folds`) is trusted only
    /// while the event it folds last is still the stream's: an event this
    /// writer appended and undid leaves an entry at its version; another
    /// process then appends a different event at that version, and this
    /// writer the next one. The view holds what the log holds, never the
    /// undone reservation's status.
    #[test]
    fn the_view_never_copies_a_fold_of_an_undone_event() {
        let (tmp, store, vol, _) = store_with_volume_and_snapshot();
        let id = vol.clone();
        store
            .write_blocking(move |tx| {
                let undone: Result<(), eventstore::StoreError> = tx.atomically(|tx| {
                    tx.execute::<VolumeAggregate>(&id, VolumeCommand::Reserve, &json!({}))?
                        .unwrap();
                    Err(eventstore::StoreError::Batch("undo".into()))
                });
                assert!(undone.is_err());
                Ok::<_, eventstore::StoreError>(())
            })
            .unwrap();
        let other = EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        on_volume(&other, &vol, edit("theirs"), json!({}));
        other.close();
        on_volume(&store, &vol, edit("mine"), json!({}));
        let row = store
            .read(|c| crate::volumes::get(c, &vol))
            .unwrap()
            .unwrap();
        assert_eq!(row.metadata.keys().collect::<Vec<_>>(), ["mine", "theirs"]);
        assert_eq!(row.status, domain::VolumeStatus::Available);
        // The reservation made now moves the row (an undone one in the
        // view's memory would have made it look like no change).
        on_volume(&store, &vol, VolumeCommand::Reserve, json!({}));
        let row = store
            .read(|c| crate::volumes::get(c, &vol))
            .unwrap()
            .unwrap();
        assert_eq!(
            Some(row.status),
            fold_of(&store, &vol).volume.map(|v| v.status)
        );
        assert_ne!(row.status, domain::VolumeStatus::Available);
        assert_eq!(store.verify_projections().unwrap(), None);
        assert_replay_equals_live(&store);
    }

    /// Two commands decided against the same version of one volume (as
    /// two concurrent requests would be): the first to append wins, the
    /// second is a version conflict, never applied on top, and the next
    /// load (served from the writer's memory) holds the winner only.
    #[test]
    fn two_decisions_at_one_version_one_wins_the_other_conflicts() {
        let (_tmp, store, vol, _) = store_with_volume_and_snapshot();
        let (a, b) = (edit("a"), edit("b"));
        let id = vol.clone();
        let (second, after) = store
            .write_blocking(move |tx| {
                let meta = json!({});
                let da = tx.decide::<VolumeAggregate>(&id, a, &meta)?.unwrap();
                let db = tx.decide::<VolumeAggregate>(&id, b, &meta)?.unwrap();
                assert_eq!(da.expected, db.expected);
                tx.commit(vec![da])?;
                let second = tx.commit(vec![db]);
                Ok::<_, eventstore::StoreError>((second, tx.load::<VolumeAggregate>(&id)?))
            })
            .unwrap();
        assert!(
            matches!(second, Err(eventstore::StoreError::VersionConflict { .. })),
            "{second:?}"
        );
        let keys: Vec<String> = after.0.volume.unwrap().metadata.into_keys().collect();
        assert_eq!(keys, ["a"]);
        assert_eq!(store.verify_projections().unwrap(), None);
    }

    #[test]
    fn a_clean_log_verifies() {
        let (_tmp, store, _, _) = store_with_volume_and_snapshot();
        assert_eq!(store.verify_projections().unwrap(), None);
    }

    #[test]
    fn verify_reports_a_volume_status_the_decider_disagrees_with() {
        let (tmp, store, vol, _) = store_with_volume_and_snapshot();
        tamper(
            &tmp,
            &format!("UPDATE volumes SET status = 'error' WHERE id = '{vol}'"),
        );
        let report = store.verify_projections().unwrap().expect("a mismatch");
        assert!(report.contains("decider"), "{report}");
        assert!(report.contains(&vol), "{report}");
        assert!(report.contains("stored status error"), "{report}");
    }

    #[test]
    fn verify_reports_a_snapshot_status_the_decider_disagrees_with() {
        let (tmp, store, _, snap) = store_with_volume_and_snapshot();
        tamper(
            &tmp,
            &format!("UPDATE snapshots SET status = 'deleting' WHERE id = '{snap}'"),
        );
        let report = store.verify_projections().unwrap().expect("a mismatch");
        assert!(report.contains("decider"), "{report}");
        assert!(report.contains(&snap), "{report}");
    }

    // Replay equals live: the views built event by event in the append
    // transactions equal the views rebuilt from position 0.
    use domain::{CreateVolume, VolumeAggregate, VolumeCommand, WorkKind};
    use serde_json::json;

    #[test]
    fn replay_equals_live() {
        let tmp = tempfile::tempdir().unwrap();
        let store = eventstore::EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        let meta = json!({"project_id": "p1"});
        let ids: Vec<String> = (0..5).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        for (i, id) in ids.iter().enumerate() {
            let cmds = vec![
                VolumeCommand::Create(Box::new(CreateVolume {
                    volume_id: id.parse().unwrap(),
                    project_id: "p1".into(),
                    user_id: "u".into(),
                    name: Some(format!("v{i}")),
                    description: None,
                    size: 1 + i as i64,
                    availability_zone: "az-dc-1".into(),
                    volume_type: "SSD".into(),
                    metadata: Default::default(),
                    multiattach: false,
                    job_id: Some(format!("{:032x}", i)),
                    batch_job_id: None,
                    source: None,
                    backend: None,
                    quota: domain::quota::Headroom::unlimited(),
                })),
                VolumeCommand::StartWork {
                    kind: WorkKind::Create,
                },
                VolumeCommand::CompleteWork {
                    kind: WorkKind::Create,
                },
                VolumeCommand::Extend {
                    new_size: 10,
                    job_id: None,
                    quota: domain::quota::Headroom::unlimited(),
                    policy: domain::volume::ExtendPolicy::OPEN,
                },
                VolumeCommand::FailWork {
                    kind: WorkKind::Extend,
                    reason: "x".into(),
                },
                VolumeCommand::Update {
                    name: Some("renamed".into()),
                    description: None,
                    metadata: None,
                },
                VolumeCommand::Delete {
                    job_id: Some(format!("{:032x}", 100 + i)),
                    dependent_snapshots: 0,
                },
            ];
            let n = if i % 2 == 0 { cmds.len() } else { 4 };
            for cmd in cmds.into_iter().take(n) {
                let (id, meta) = (id.clone(), meta.clone());
                store
                    .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&id, cmd, &meta))
                    .unwrap()
                    .unwrap();
            }
        }
        // One more volume through the row's other columns: attachments
        // (json_insert / json_group_array in the live path), bootable,
        // type, owner, metadata, a reservation that changes nothing.
        let extra = uuid::Uuid::new_v4();
        let (a1, a2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let attach = |a: uuid::Uuid, dev: &str| VolumeCommand::Attach {
            attachment_id: a,
            server_id: format!("srv-{a}"),
            host_name: Some("h\"1".into()),
            device: dev.into(),
            mode: domain::volume::AttachMode::Rw,
        };
        let mut md = std::collections::BTreeMap::new();
        md.insert("k\u{e9}".to_string(), "v\"1".to_string());
        let transfer = uuid::Uuid::new_v4();
        let extra_cmds = vec![
            VolumeCommand::Create(Box::new(CreateVolume {
                volume_id: extra,
                project_id: "p1".into(),
                user_id: "u".into(),
                name: None,
                description: Some("d".into()),
                size: 3,
                availability_zone: "az-dc-1".into(),
                volume_type: "SSD".into(),
                metadata: md.clone(),
                multiattach: true,
                job_id: None,
                batch_job_id: None,
                source: None,
                backend: None,
                quota: domain::quota::Headroom::unlimited(),
            })),
            VolumeCommand::StartWork {
                kind: WorkKind::Create,
            },
            VolumeCommand::CompleteWork {
                kind: WorkKind::Create,
            },
            VolumeCommand::EditMetadata(domain::metadata::MetadataEdit::Merge(md)),
            attach(a1, "/dev/vdb"),
            attach(a2, "/dev/vdc"),
            VolumeCommand::Detach {
                attachment_id: Some(a1),
            },
            VolumeCommand::Detach {
                attachment_id: Some(a2),
            },
            VolumeCommand::Reserve,
            VolumeCommand::Unreserve,
            VolumeCommand::SetBootable { bootable: true },
            // An extend that succeeds keeps its reserved size.
            VolumeCommand::Extend {
                new_size: 5,
                job_id: None,
                quota: domain::quota::Headroom::unlimited(),
                policy: domain::volume::ExtendPolicy::OPEN,
            },
            VolumeCommand::CompleteWork {
                kind: WorkKind::Extend,
            },
            VolumeCommand::Retype {
                new_type: "SATA".into(),
                migration_needed: None,
                quota: domain::quota::Headroom::unlimited(),
            },
            VolumeCommand::StartTransfer {
                transfer_id: transfer,
                dependent_snapshots: 0,
                snapshots: domain::transfer::SnapshotRule::Refuse,
            },
            VolumeCommand::CompleteTransfer {
                transfer_id: transfer,
                to_project: "p2".into(),
                to_user: "u2".into(),
                quota: domain::quota::Headroom::unlimited(),
                moving_snapshots: vec![],
            },
            attach(a1, "/dev/vdd"),
        ];
        for cmd in extra_cmds {
            let (id, meta) = (extra.to_string(), meta.clone());
            let what = format!("{cmd:?}");
            store
                .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&id, cmd, &meta))
                .unwrap()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let row = store
            .read(|c| crate::volumes::get(c, &extra.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                row.attachments.len(),
                row.bootable,
                row.volume_type.as_str()
            ),
            (1, true, "SATA")
        );
        assert_eq!(
            (row.project_id.as_str(), row.user_id.as_str()),
            ("p2", "u2")
        );
        assert_eq!(store.verify_projections().unwrap(), None);
        let live: Vec<Vec<String>> = super::all()
            .iter()
            .map(|p| store.read(|c| p.dump(c)).unwrap())
            .collect();
        let indexes = || {
            store
                .read(|c| {
                    c.prepare(
                        "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')
                         ORDER BY name",
                    )?
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap()
        };
        let before = indexes();
        assert!(
            before.iter().any(|(n, _)| n.starts_with("volumes_"))
                && before.iter().any(|(n, _)| n == "quota_totals_add"),
            "{before:?}"
        );
        store.rebuild_projections().unwrap();
        // The replay's bulk writes drop and rebuild the views' indexes and
        // triggers (`bulk_fill`): every one is back, as defined.
        assert_eq!(indexes(), before);
        let replayed: Vec<Vec<String>> = super::all()
            .iter()
            .map(|p| store.read(|c| p.dump(c)).unwrap())
            .collect();
        assert_eq!(live, replayed);
        // The replay kept its states in memory on the writer thread and
        // wrote them out at its end: the next live event is stored again.
        let (id, meta2) = (ids[1].clone(), meta.clone());
        store
            .write_blocking(move |tx| {
                tx.execute::<VolumeAggregate>(
                    &id,
                    VolumeCommand::Update {
                        name: Some("after the replay".into()),
                        description: None,
                        metadata: None,
                    },
                    &meta2,
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(store.verify_projections().unwrap(), None);
        let volumes = live[0].iter().filter(|r| r.starts_with("volumes:")).count();
        assert_eq!(volumes, 6, "six volumes, none deleted yet");
        assert_eq!(
            live[1].len(),
            15,
            "six create jobs, six extend jobs, three delete jobs"
        );
    }

    /// The jobs view a replay keeps in memory equals the table the live
    /// path wrote, through every way a job is stored: a batch and its
    /// members, a request on two volumes (its job split into a parent and
    /// sub-jobs), starts, failures and successes, and a job id seen twice.
    #[test]
    fn jobs_replay_equals_live_through_batches_and_splits() {
        let tmp = tempfile::tempdir().unwrap();
        let store = eventstore::EventStore::open(&tmp.path().join("t.db"), super::all()).unwrap();
        // An outcome's metadata has no request id (the executor appends
        // it): the messages view reads it from the jobs view, which a
        // replay keeps in memory.
        let run = |id: &str, cmd: VolumeCommand, correlation: &str| {
            let outcome = matches!(
                cmd,
                VolumeCommand::StartWork { .. }
                    | VolumeCommand::CompleteWork { .. }
                    | VolumeCommand::FailWork { .. }
            );
            let meta = if outcome {
                json!({"project_id": "p1", "correlation_id": correlation})
            } else {
                json!({"project_id": "p1", "correlation_id": correlation,
                    "request_id": format!("req-{correlation}")})
            };
            let id = id.to_string();
            store
                .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&id, cmd, &meta))
                .unwrap()
                .unwrap();
        };
        let create = |id: &str, job: Option<String>, batch: Option<&str>| {
            VolumeCommand::Create(Box::new(CreateVolume {
                volume_id: id.parse().unwrap(),
                project_id: "p1".into(),
                user_id: "u".into(),
                name: None,
                description: None,
                size: 1,
                availability_zone: "az-dc-1".into(),
                volume_type: "SSD".into(),
                metadata: Default::default(),
                multiattach: false,
                job_id: job,
                batch_job_id: batch.map(str::to_string),
                source: None,
                backend: None,
                quota: domain::quota::Headroom::unlimited(),
            }))
        };
        let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        // A batch of three; the second fails, the third never starts.
        for (i, id) in ids[..3].iter().enumerate() {
            run(
                id,
                create(id, Some(format!("{:032x}", 7 + i)), Some("batch-1")),
                "c-batch",
            );
        }
        let start = || VolumeCommand::StartWork {
            kind: WorkKind::Create,
        };
        run(&ids[0], start(), "c-batch");
        run(
            &ids[0],
            VolumeCommand::CompleteWork {
                kind: WorkKind::Create,
            },
            "c-batch",
        );
        run(&ids[1], start(), "c-batch");
        let fail = VolumeCommand::FailWork {
            kind: WorkKind::Create,
            reason: "disk \"full\"".into(),
        };
        run(&ids[1], fail, "c-batch");
        // One volume alone, then one request deleting two volumes: the
        // delete's job becomes a parent of two sub-jobs.
        run(&ids[3], create(&ids[3], None, None), "c-alone");
        run(&ids[3], start(), "c-alone");
        run(
            &ids[3],
            VolumeCommand::CompleteWork {
                kind: WorkKind::Create,
            },
            "c-alone",
        );
        for id in [&ids[0], &ids[3]] {
            let delete = VolumeCommand::Delete {
                job_id: None,
                dependent_snapshots: 0,
            };
            run(id, delete, "c-two");
        }
        run(
            &ids[3],
            VolumeCommand::StartWork {
                kind: WorkKind::Delete,
            },
            "c-two",
        );
        run(
            &ids[3],
            VolumeCommand::CompleteWork {
                kind: WorkKind::Delete,
            },
            "c-two",
        );

        let parent = store
            .read(|c| crate::jobs::get(c, "c-two"))
            .unwrap()
            .expect("the delete's job");
        assert_eq!(parent.sub_jobs.len(), 2, "{parent:?}");
        let batch = store
            .read(|c| crate::jobs::get(c, "batch-1"))
            .unwrap()
            .expect("the batch's job");
        assert_eq!(batch.sub_jobs.len(), 3, "{batch:?}");
        assert_eq!(batch.status, crate::jobs::JobStatus::Running, "{batch:?}");
        use eventstore::InlineProjection;
        let message = store
            .read(|c| {
                c.query_row("SELECT request_id FROM messages", [], |r| {
                    r.get::<_, String>(0)
                })
            })
            .unwrap();
        assert_eq!(message, "req-c-batch", "the failure's message");
        let live = store.read(|c| crate::jobs::JobsProjection.dump(c)).unwrap();
        assert_eq!(store.verify_projections().unwrap(), None);
        store.rebuild_projections().unwrap();
        let replayed = store.read(|c| crate::jobs::JobsProjection.dump(c)).unwrap();
        assert_eq!(live, replayed);
        assert_eq!(live.len(), 3 + 1 + 1 + 1 + 2, "{live:#?}");
    }

    #[test]
    fn a_job_kind_is_stored_by_its_serde_name() {
        use crate::jobs::JobKind as K;
        for k in [
            K::CreateVolume,
            K::BatchCreateVolume,
            K::ExtendVolume,
            K::DeleteVolume,
            K::RollbackVolume,
            K::CreateSnapshot,
            K::DeleteSnapshot,
            K::ExportImage,
            K::AttachVolume,
            K::DetachVolume,
        ] {
            assert_eq!(json!(k), json!(k.as_str()));
        }
    }
}
