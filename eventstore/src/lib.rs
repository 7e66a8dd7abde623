//! The append-only event log of blockledger, on SQLite.
//!
//! Generic on purpose: it knows streams, versions, JSON payloads and a hash
//! chain, nothing of volumes. One dedicated writer thread owns the write
//! connection and group-commits concurrent jobs (one transaction per batch,
//! made durable by an fsync that may overlap the next batch's work before
//! any of its jobs is answered), each job in its own savepoint so a rejected command leaves
//! nothing behind. Inline projections are applied inside the same transaction,
//! which is what gives read-your-writes and makes a projection unable to
//! disagree with the log.

pub use rusqlite;

pub mod aggregate;
pub mod asof;
mod json;
pub mod query;

pub use json::StoredJson;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::watch;

/// Max jobs per group commit: bounds the latency a single batch can add.
const MAX_BATCH: usize = 256;

/// Read-only connections in the pool. More than one, so that a slow read
/// (an audit listing, `verify_projections`) does not queue every other read
/// behind it; WAL lets them all read next to the writer. Few, because each
/// holds its own page cache and they share the machine's cores with the
/// writer thread and the executor's disk work anyway.
const READERS: usize = 4;

/// Prepared statements kept per connection.
const STATEMENTS: usize = 256;

pub struct NewEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub v: u32,
    pub data: Value,
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub v: u32,
    /// Parsed when first read; the views decode it from its text
    /// (`decode`) instead.
    pub data: StoredJson,
    /// Parsed when first read: most readers of a replayed event never do.
    pub metadata: StoredJson,
    pub recorded_at: DateTime<Utc>,
    pub hash: String,
}

impl RecordedEvent {
    /// The event as an adjacently tagged enum (`{"type": .., "data": ..}`,
    /// every aggregate's event type), decoded straight from the stored text
    /// of its data: no `Value` of it is built on the way (issue 11).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        let raw = self.data.as_raw();
        let mut doc = Vec::with_capacity(raw.len() + self.event_type.len() + 20);
        doc.extend_from_slice(b"{\"type\":");
        serde_json::to_writer(&mut doc, &self.event_type)?;
        doc.extend_from_slice(b",\"data\":");
        doc.extend_from_slice(raw.as_bytes());
        doc.push(b'}');
        serde_json::from_slice(&doc)
    }
}

/// Optimistic concurrency check; stream versions start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("version conflict on {stream_id}: expected {expected:?}, actual {actual}")]
    VersionConflict {
        stream_id: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event store writer is closed")]
    Closed,
    /// A write job panicked; its savepoint was rolled back, the writer lives on.
    #[error("write job panicked: {0}")]
    Panicked(String),
    /// A batch-level failure (BEGIN/SAVEPOINT/COMMIT) that is not a plain
    /// SQLite failure, reported to every job of the batch.
    #[error("batch failed: {0}")]
    Batch(String),
    /// `open`: the log was written by a newer blockledger (its format
    /// number, `PRAGMA user_version`, is above `LOG_FORMAT`).
    #[error("the log has format {found}; this blockledger reads format {supported} at most (written by a newer version?)")]
    FutureFormat { found: u32, supported: u32 },
    /// `open`: the file is not a database, is truncated, or its newest
    /// events do not verify.
    #[error("the log is damaged: {0}")]
    Corrupt(String),
    /// `open`: no space left to write the log.
    #[error("no space left for the log: {0}")]
    DiskFull(String),
    /// `open`: the log or its directory cannot be written.
    #[error("the log cannot be written: {0}")]
    NotWritable(String),
}

impl StoreError {
    /// A batch error is delivered to every job of the batch, but errors are not
    /// Clone (rusqlite::Error isn't); keep the SQLite codes where possible.
    fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, m)) => {
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(*e, m.clone()))
            }
            StoreError::Closed => StoreError::Closed,
            StoreError::Panicked(m) => StoreError::Panicked(m.clone()),
            other => StoreError::Batch(other.to_string()),
        }
    }

    /// What went wrong at `open`, for an operator: SQLite's codes for a
    /// damaged file, a full disk or a read-only one get their own variants.
    fn at_open(self) -> StoreError {
        use rusqlite::ErrorCode as C;
        let StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) = &self else {
            return self;
        };
        let what = self.to_string();
        // A file cut short reads back short (SQLITE_IOERR_SHORT_READ).
        const SHORT_READ: std::os::raw::c_int = 522;
        match f.code {
            C::NotADatabase | C::DatabaseCorrupt => StoreError::Corrupt(what),
            C::SystemIoFailure if f.extended_code == SHORT_READ => StoreError::Corrupt(what),
            C::DiskFull => StoreError::DiskFull(what),
            C::ReadOnly | C::CannotOpen | C::PermissionDenied => StoreError::NotWritable(what),
            _ => self,
        }
    }
}

/// The layout of the log's own tables, recorded as `PRAGMA user_version`
/// (0 in logs made before it was recorded: the same layout as 1). A log of a
/// higher number was written by a newer blockledger and is refused, not
/// guessed at. Projections carry their own versions (`projection_versions`)
/// and are rebuilt, not refused.
pub const LOG_FORMAT: u32 = 1;

/// How many of the newest events `open` re-hashes: enough to catch a log
/// cut short or damaged at its head, cheap at any log size (`verify` checks
/// the whole chain).
const TAIL_CHECK: u32 = 64;

/// A read model updated inside the append transaction (read-your-writes), rebuildable from position 0.
pub trait InlineProjection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// `CREATE TABLE IF NOT EXISTS ...`; called at every open.
    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()>;
    fn apply(&self, conn: &Connection, event: &RecordedEvent) -> rusqlite::Result<()>;
    /// Delete all its rows.
    fn clear(&self, conn: &Connection) -> rusqlite::Result<()>;
    /// Every row, canonical text, deterministic order.
    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>>;
    /// The shape of this projection's tables; bump it when they change.
    /// `open` rebuilds from the log a projection whose stored version
    /// differs (after `drop_schema` and `init_schema`).
    fn schema_version(&self) -> u32 {
        1
    }
    /// `DROP TABLE IF EXISTS` every table it owns (for a schema change).
    fn drop_schema(&self, _conn: &Connection) -> rusqlite::Result<()> {
        Ok(())
    }
    /// A replay of the whole log (or from an empty view) into `conn` is
    /// about to start on this thread, in one transaction: the projection
    /// may keep what it would write in memory until `end_replay`.
    fn begin_replay(&self) {}
    /// The replay ended: write what was kept (`finished`), or drop it
    /// (the replay failed and its transaction will not commit). Always
    /// called after `begin_replay`, on the same thread.
    fn end_replay(&self, _conn: &Connection, _finished: bool) -> rusqlite::Result<()> {
        Ok(())
    }
    /// A check of the stored view against the log that does not go through
    /// this projection's own fold (e.g. each row's status against the
    /// decider's state after its stream): Some(reason) on a disagreement.
    /// `verify` runs it on the stored views.
    fn audit(&self, _conn: &Connection) -> rusqlite::Result<Option<String>> {
        Ok(None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub events: u64,
    /// (position, reason) of the first row whose hash does not verify.
    pub first_bad: Option<(u64, String)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    v INTEGER NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE(stream_id, stream_version)
);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projection_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
";

const COLUMNS: &str =
    "position, stream_id, stream_version, event_id, event_type, v, data, metadata, recorded_at, hash";

/// Writes `v` as serde_json would with sorted object keys. Done by hand rather
/// than `serde_json::to_vec` so the hash cannot change if some other crate in
/// the build turns on serde_json's `preserve_order` feature (byte-identical
/// to `to_vec` otherwise).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("string to Vec cannot fail");
                out.push(b':');
                write_canonical(val, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, val) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(val, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("scalar to Vec cannot fail"),
    }
}

/// The stored columns that the hash covers, as stored (event_id and
/// recorded_at are the stored text, data/metadata the re-parsed JSON).
struct Canon<'a> {
    position: u64,
    stream_id: &'a str,
    stream_version: u64,
    event_id: &'a str,
    event_type: &'a str,
    v: u32,
    data: &'a Value,
    metadata: &'a Value,
    recorded_at: &'a str,
}

/// hex(sha256(prev_hash_hex || canonical_bytes)); genesis prev is "".
/// The canonical bytes are those of the JSON object of the nine columns
/// with sorted keys, written field by field in that order rather than
/// through a `json!` document (that built and sorted a map per event:
/// half of this function's instructions); `chain_hash_reference` in the
/// tests is the document form, and they must agree byte for byte.
fn chain_hash(prev: &str, c: &Canon) -> String {
    let mut bytes = Vec::with_capacity(512);
    let string = |out: &mut Vec<u8>, s: &str| {
        serde_json::to_writer(&mut *out, s).expect("string to Vec cannot fail")
    };
    let number = |out: &mut Vec<u8>, n: u64| out.extend_from_slice(n.to_string().as_bytes());
    bytes.extend_from_slice(b"{\"data\":");
    write_canonical(c.data, &mut bytes);
    bytes.extend_from_slice(b",\"event_id\":");
    string(&mut bytes, c.event_id);
    bytes.extend_from_slice(b",\"metadata\":");
    write_canonical(c.metadata, &mut bytes);
    bytes.extend_from_slice(b",\"position\":");
    number(&mut bytes, c.position);
    bytes.extend_from_slice(b",\"recorded_at\":");
    string(&mut bytes, c.recorded_at);
    bytes.extend_from_slice(b",\"stream_id\":");
    string(&mut bytes, c.stream_id);
    bytes.extend_from_slice(b",\"stream_version\":");
    number(&mut bytes, c.stream_version);
    bytes.extend_from_slice(b",\"type\":");
    string(&mut bytes, c.event_type);
    bytes.extend_from_slice(b",\"v\":");
    number(&mut bytes, u64::from(c.v));
    bytes.push(b'}');
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(&bytes);
    hex::encode(h.finalize())
}

fn conversion_err(
    col: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

/// A time in exactly the form every stored time has (`stamp` in the
/// views, `recorded_at` in the log: `YYYY-MM-DDTHH:MM:SS.ffffffZ`), read
/// digit by digit; anything else (another form, a leap second, a date
/// that does not exist) is None and left to chrono's RFC 3339 parser.
/// chrono's was 5% of a 1,000-volume list page for two times a row, and
/// 4% of a replay's scan.
pub fn stamp_fast(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 27 || b[26] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if seps.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let year = i32::try_from(num(0, 4)?).ok()?;
    chrono::NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?
        .and_hms_micro_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?)
        .map(|t| t.and_utc())
}

/// A stored time: [`stamp_fast`], else chrono's RFC 3339 parser.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    if let Some(t) = stamp_fast(s) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

fn row_to_event(r: &Row) -> rusqlite::Result<RecordedEvent> {
    // Text columns that are parsed are read in place (`get_ref`), not
    // copied into a String first: every replayed event passes here.
    let text = |i: usize| -> rusqlite::Result<&str> {
        r.get_ref(i)?.as_str().map_err(|e| conversion_err(i, e))
    };
    let json = |i: usize| -> rusqlite::Result<Value> {
        serde_json::from_str(text(i)?).map_err(|e| conversion_err(i, e))
    };
    // Every stored event is read here: one older than its type's current
    // shape is upcast (domain::upcast) before anyone decodes it; one of the
    // current shape keeps its text, parsed only if someone reads it.
    let event_type: String = r.get(4)?;
    let stored_v: u32 = r.get(5)?;
    let (v, data) = if stored_v >= domain::upcast::current_version(&event_type) {
        (stored_v, StoredJson::stored(text(6)?))
    } else {
        let (v, data) = domain::upcast::upcast(&event_type, stored_v, json(6)?);
        (v, StoredJson::from(data))
    };
    Ok(RecordedEvent {
        position: r.get(0)?,
        stream_id: r.get(1)?,
        stream_version: r.get(2)?,
        event_id: uuid::Uuid::parse_str(text(3)?).map_err(|e| conversion_err(3, e))?,
        event_type,
        v,
        data,
        metadata: StoredJson::stored(text(7)?),
        recorded_at: parse_time(text(8)?).map_err(|e| conversion_err(8, e))?,
        hash: r.get(9)?,
    })
}

fn query_events(
    conn: &Connection,
    where_clause: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM events {where_clause}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, row_to_event)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn read_from(
    conn: &Connection,
    after_position: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    read_durable(conn, after_position, limit, i64::MAX as u64)
}

/// `read_from` up to position `head` included.
fn read_durable(
    conn: &Connection,
    after_position: u64,
    limit: usize,
    head: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    query_events(
        conn,
        "WHERE position > ?1 AND position <= ?2 ORDER BY position LIMIT ?3",
        params![after_position, head, limit],
    )
}

fn checkpoint_of(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT position FROM checkpoints WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
    .map(Option::unwrap_or_default)
}

/// Re-hashes one stored row (read as raw columns: tampering may leave text
/// that no longer parses) against the previous row's hash; its own hash if
/// it verifies.
fn check_row(prev: &str, position: u64, r: &Row) -> Result<String, String> {
    let text = |i: usize| {
        r.get::<_, String>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int = |i: usize| r.get::<_, u64>(i).map_err(|e| format!("column {i}: {e}"));
    let json = |i: usize| {
        serde_json::from_str::<Value>(&text(i)?).map_err(|e| format!("column {i} is not JSON: {e}"))
    };
    let v = u32::try_from(int(5)?).map_err(|e| format!("column v: {e}"))?;
    let (stream_id, event_id, event_type, recorded_at) = (text(1)?, text(3)?, text(4)?, text(8)?);
    let (data, metadata) = (json(6)?, json(7)?);
    let c = Canon {
        position,
        stream_id: &stream_id,
        stream_version: int(2)?,
        event_id: &event_id,
        event_type: &event_type,
        v,
        data: &data,
        metadata: &metadata,
        recorded_at: &recorded_at,
    };
    let stored = text(9)?;
    if chain_hash(prev, &c) == stored {
        Ok(stored)
    } else {
        Err("hash mismatch (row changed or link broken)".into())
    }
}

/// The newest `TAIL_CHECK` events follow each other without a gap and each
/// hash verifies against its predecessor's (the first one read is taken as
/// given, unless it is position 1). Reading them also walks the pages a cut
/// short file loses first. Nothing to check in a new log.
fn check_tail(conn: &Connection) -> Result<(), StoreError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM events WHERE position > \
         (SELECT COALESCE(MAX(position), 0) FROM events) - ?1 ORDER BY position"
    ))?;
    let mut rows = stmt.query([TAIL_CHECK + 1])?;
    let mut prev: Option<(u64, String)> = None;
    while let Some(r) = rows.next()? {
        let position: u64 = r.get(0)?;
        let bad = |why: String| {
            StoreError::Corrupt(format!("hash chain broken at position {position}: {why}"))
        };
        match &prev {
            None if position == 1 => prev = Some((1, check_row("", 1, r).map_err(bad)?)),
            None => prev = Some((position, r.get(9)?)),
            Some((p, _)) if *p + 1 != position => {
                return Err(bad(format!("follows event {p}")));
            }
            Some((_, h)) => prev = Some((position, check_row(h, position, r).map_err(bad)?)),
        }
    }
    Ok(())
}

/// Runs one statement without parameters, prepared once per connection:
/// the savepoints and transaction ends run several times per command, and
/// `execute_batch` parsed their SQL every time (12% of the writer's
/// instructions under callgrind).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute()?;
    Ok(())
}

/// Undoes and ends savepoint `name` (two statements: each cached). What
/// the writer checked of its streams' tips may have been undone with it.
fn undo(
    conn: &Connection,
    states: &std::cell::RefCell<aggregate::StateCache>,
    name: &str,
) -> rusqlite::Result<()> {
    states.borrow_mut().forget_checks();
    exec(conn, &format!("ROLLBACK TO {name}"))?;
    exec(conn, &format!("RELEASE {name}"))
}

/// SQLite's WAL beside the database file at `path`.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

fn head_of(conn: &Connection) -> rusqlite::Result<u64> {
    // Prepared once per connection: the writer asks after every commit
    // and parsing the SQL was most of this query's cost (issue 11).
    conn.prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

/// True when `v` holds a floating-point number anywhere: only those may
/// not survive a JSON round trip bit for bit.
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(m) => m.values().any(has_float),
        _ => false,
    }
}

/// Writes inside the current group-commit transaction (and the job's savepoint).
/// Jobs must not COMMIT/ROLLBACK through `conn()` themselves.
pub struct WriteTx<'a> {
    conn: &'a Connection,
    projections: &'a [Arc<dyn InlineProjection>],
    /// The writer's folded aggregate states (aggregate.rs).
    states: &'a std::cell::RefCell<aggregate::StateCache>,
}

impl WriteTx<'_> {
    /// Moves a subscriber's checkpoint in this transaction, so that an
    /// outcome and "this event is handled" commit together.
    pub fn set_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO checkpoints (name, position) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET position = excluded.position",
            params![name, position],
        )?;
        Ok(())
    }

    /// Moves a subscriber's checkpoint forward to `position` in this
    /// transaction, never back: for subscribers whose outcomes commit out
    /// of order (the parallel executor's low-water mark), where a later
    /// transaction may carry an older, still safe, bound.
    pub fn advance_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO checkpoints (name, position) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET position = MAX(position, excluded.position)",
            params![name, position],
        )?;
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// Runs `f` in a savepoint of its own: on `Err` everything `f` appended
    /// is undone, while the rest of the job stays (the application layer
    /// records a refusal after undoing the refused use case's partial work).
    pub fn atomically<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        exec(self.conn, "SAVEPOINT es_unit").map_err(StoreError::from)?;
        let out = f(self);
        if out.is_ok() {
            exec(self.conn, "RELEASE es_unit")
        } else {
            undo(self.conn, self.states, "es_unit")
        }
        .map_err(StoreError::from)?;
        out
    }

    pub fn read_stream(&self, stream_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        query_events(
            self.conn,
            "WHERE stream_id = ?1 ORDER BY stream_version",
            [stream_id],
        )
    }

    /// The stream's events after `version`, in order.
    pub fn read_stream_after_version(
        &self,
        stream_id: &str,
        version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        query_events(
            self.conn,
            "WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version",
            params![stream_id, version],
        )
    }

    /// Last version of the stream, 0 if it does not exist.
    pub fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = ?1",
            )?
            .query_row([stream_id], |r| r.get(0))?)
    }

    /// Appends atomically: on any error nothing of this call remains, even if
    /// the job then decides to return Ok (its own savepoint).
    pub fn append(
        &mut self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        // Idempotency: a retried request carries the same event ids; answer with
        // what was recorded the first time instead of a spurious conflict.
        let by_id =
            |id: uuid::Uuid| query_events(self.conn, "WHERE event_id = ?1", [id.to_string()]);
        if !by_id(events[0].event_id)?.is_empty() {
            let mut out = Vec::with_capacity(events.len());
            for e in &events {
                out.extend(by_id(e.event_id)?);
            }
            return Ok(out);
        }
        exec(self.conn, "SAVEPOINT es_append")?;
        // The stream's tip moves: the writer's fold of it is no longer
        // known to be at the tip (`commit` puts the new one).
        self.states.borrow_mut().unchecked(stream_id);
        match self.append_new(stream_id, expected, events) {
            Ok(out) => {
                exec(self.conn, "RELEASE es_append")?;
                Ok(out)
            }
            Err(e) => {
                undo(self.conn, self.states, "es_append")?;
                Err(e)
            }
        }
    }

    fn append_new(
        &mut self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let current = self.stream_version(stream_id)?;
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(n) => current == n,
        };
        if !ok {
            return Err(StoreError::VersionConflict {
                stream_id: stream_id.to_owned(),
                expected,
                actual: current,
            });
        }
        // Read the chain tip each time rather than caching it: savepoint
        // rollbacks of earlier jobs in the batch, and other processes
        // writing the same log (`blockledger identity` beside a running
        // server), would make a cache lie.
        let (mut position, mut prev): (u64, String) = self
            .conn
            .prepare_cached("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or_default();
        let now = Utc::now();
        let recorded_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let recorded_at_text = recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut insert = self.conn.prepare_cached(&format!(
            "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?;
        let mut out = Vec::with_capacity(events.len());
        for (stream_version, e) in (current + 1..).zip(events) {
            position += 1;
            // Hash and return the JSON as re-parsed from the stored text, so the
            // writer, verify_chain and replays all see exactly the same values
            // (float parsing need not round-trip bit-exactly). Without a float
            // the value is its own re-parse, and parsing it again was ~8% of
            // the writer's instructions (issue 11).
            let data_text = serde_json::to_string(&e.data)?;
            let metadata_text = serde_json::to_string(&e.metadata)?;
            let reparse = |v: Value, text: &str| -> Result<Value, StoreError> {
                Ok(if has_float(&v) {
                    serde_json::from_str(text)?
                } else {
                    v
                })
            };
            let data = reparse(e.data, &data_text)?;
            let metadata = reparse(e.metadata, &metadata_text)?;
            let event_id = e.event_id.to_string();
            let hash = chain_hash(
                &prev,
                &Canon {
                    position,
                    stream_id,
                    stream_version,
                    event_id: &event_id,
                    event_type: &e.event_type,
                    v: e.v,
                    data: &data,
                    metadata: &metadata,
                    recorded_at: &recorded_at_text,
                },
            );
            insert.execute(params![
                position,
                stream_id,
                stream_version,
                event_id,
                e.event_type,
                e.v,
                data_text,
                metadata_text,
                recorded_at_text,
                hash
            ])?;
            let rec = RecordedEvent {
                position,
                stream_id: stream_id.to_owned(),
                stream_version,
                event_id: e.event_id,
                event_type: e.event_type,
                v: e.v,
                data: StoredJson::written(data_text, data),
                metadata: StoredJson::written(metadata_text, metadata),
                recorded_at,
                hash: hash.clone(),
            };
            for p in self.projections {
                p.apply(self.conn, &rec)?;
            }
            prev = hash;
            out.push(rec);
        }
        Ok(out)
    }
}

/// A queued write: type-erased so one channel carries jobs of any T/E.
trait Job: Send {
    /// Runs the closure; true when its writes should be kept.
    fn run(&mut self, tx: &mut WriteTx<'_>) -> bool;
    /// Delivers the outcome once the batch's fate (`commit`) is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    /// Runs in a transaction of its own, without the job savepoint (see
    /// `EventStore::rebuild_projections`).
    fn alone(&self) -> bool;
}

struct TypedJob<F, T, E, R> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    reply: R,
    alone: bool,
}

impl<F, T, E, R> Job for TypedJob<F, T, E, R>
where
    F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
    R: FnOnce(Result<T, E>) + Send,
{
    fn run(&mut self, tx: &mut WriteTx<'_>) -> bool {
        let Some(f) = self.f.take() else { return false };
        let res = catch_unwind(AssertUnwindSafe(|| f(tx))).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            tracing::error!(panic = %msg, "eventstore write job panicked; rolled back");
            Err(E::from(StoreError::Panicked(msg)))
        });
        let ok = res.is_ok();
        self.out = Some(res);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let res = match (self.out, commit) {
            // A failed job keeps its own error: nothing of it was written either way.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(E::from(e)),
            (None, Ok(())) => Err(E::from(StoreError::Batch("job was not run".into()))),
        };
        (self.reply)(res);
    }

    fn alone(&self) -> bool {
        self.alone
    }
}

struct Writer {
    conn: Connection,
    projections: Vec<Arc<dyn InlineProjection>>,
    states: std::cell::RefCell<aggregate::StateCache>,
    /// Makes a batch durable and answers it when nothing else waits.
    durability: Durability,
    /// Each batch once its COMMIT returned, to the syncer, which makes it
    /// durable and answers it while this thread runs the next.
    committed: mpsc::Sender<Committed>,
    /// Batches handed to the syncer and not answered yet.
    at_syncer: Arc<std::sync::atomic::AtomicUsize>,
    /// The database's `data_version` at the start of the last batch, if
    /// that batch committed (`run_batch`).
    clean_since: std::cell::Cell<Option<i64>>,
}

/// A batch whose transaction ended, on its way to its replies.
struct Committed {
    jobs: Vec<Box<dyn Job>>,
    commit: Result<(), StoreError>,
    /// The log's head after the COMMIT (None when it failed).
    head: Option<u64>,
}

/// What makes committed batches durable and answers them: one fsync of
/// the WAL for every batch whose COMMIT returned before it began, then the
/// head is published and the batches' jobs are replied to, in order.
///
/// The writer connection commits with `synchronous=NORMAL` (the WAL is
/// written, not fsynced) and this fsync follows, on the syncer thread
/// when more work is queued: the next batch's work then runs on the
/// writer while the syncer waits on the disk. With the fsync inside the
/// COMMIT (`FULL`), the writer sat off the CPU for about half of every
/// batch's 9 ms at 64 clients of durable updates (perf: the writer thread
/// on the CPU ~50% of the time with a queue waiting, issue 11). When
/// nothing waits, the writer does it itself: a handoff to another thread
/// only adds a wakeup to a lone request's latency.
///
/// What it keeps: an acknowledged write is durable (the reply comes after
/// the fsync), and nothing that acts on the log (the executor, the
/// remote executors' and the events API's `read_from`, every subscriber
/// of the head) sees a position before it is durable: they read up to the
/// head published here. A view read by another request may show a commit
/// a few milliseconds before its fsync returns; only a power loss (not a
/// crash of the process: the OS keeps the written WAL) in that window
/// would take it back, and its writer was never told it was stored.
struct Durability {
    /// The WAL file, opened at the first sync (SQLite creates it).
    wal: std::path::PathBuf,
    file: Option<std::fs::File>,
    head: Arc<watch::Sender<u64>>,
    /// Tells the checkpointer a commit added to the WAL (never blocks: a
    /// tick already waiting covers this one too).
    wal_grew: mpsc::SyncSender<()>,
}

impl Durability {
    fn answer(&mut self, group: Vec<Committed>) {
        if group.iter().any(|c| c.commit.is_ok()) {
            let started = std::time::Instant::now();
            if let Err(e) = self.sync() {
                // The batches are committed and readable, yet may not
                // survive a power loss, and a failed fsync cannot be
                // retried (Linux drops the dirty pages' error state once
                // reported). Stop here: a restart recovers what the disk
                // holds, and no caller is told "stored".
                tracing::error!(error = %e, wal = %self.wal.display(),
                    "fsync of the WAL failed; stopping so that no write is acknowledged without being durable");
                std::process::abort();
            }
            metrics::histogram!("blockledger_eventstore_sync_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        if let Some(h) = group.iter().filter_map(|c| c.head).max() {
            // Published only once durable: subscribers must never see a
            // position that could still vanish.
            self.head.send_if_modified(|cur| {
                let later = h > *cur;
                if later {
                    *cur = h;
                }
                later
            });
            let _ = self.wal_grew.try_send(());
        }
        // Replies only after the fsync: an acknowledged write is durable.
        for c in group {
            for job in c.jobs {
                job.finish(c.commit.as_ref().map(|_| ()).map_err(StoreError::duplicate));
            }
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            return f.sync_data();
        }
        let f = std::fs::File::open(&self.wal)?;
        f.sync_data()?;
        // The WAL's directory entry too, once: SQLite syncs the directory
        // of a file it created at that file's first sync, which is now ours.
        if let Some(dir) = self.wal.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.file = Some(f);
        Ok(())
    }
}

/// The syncer thread: answers the batches the writer hands over, all
/// those waiting sharing one fsync. Ends after the writer.
fn run_syncer(
    mut durability: Durability,
    rx: mpsc::Receiver<Committed>,
    at_syncer: Arc<std::sync::atomic::AtomicUsize>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            group.push(next);
        }
        let n = group.len();
        durability.answer(group);
        at_syncer.fetch_sub(n, std::sync::atomic::Ordering::Release);
    }
}

/// The writer checkpoints the WAL itself only past this many pages (about
/// 40 MiB): a backstop for a checkpointer that cannot keep up. Normally
/// the checkpointer thread does it, off the writer's path (SQLite's
/// default, 1,000 pages, ran the checkpoint inside the commit: 11.5% of
/// the writer's time at 64 clients of durable updates, issue 11).
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// The writer's page cache between replays, in KiB (a replay raises it to
/// `REPLAY_CACHE_KIB` for its transaction).
///
/// Small on purpose: when a b-tree page splits, SQLite's balance_nonroot
/// may swap two sibling pages through a temporary page number, the lock
/// byte's page (262,145 with 4 KiB pages); the next COMMIT then truncates
/// the page cache to the database's size, and as that number lies far
/// past the end, pcache1 walks its whole hash table and every cached page
/// (gdb: iMaxKey 262145 at most commits of random-key index inserts). With
/// 64 MiB that walk was 9.3% of the writer's time at 64 clients of durable
/// updates (perf); with 8 MiB the bench's 64-client row went from
/// 3,065-3,254/s to 3,368-3,683/s and the paced p99 from 10.8-13.4 ms to
/// 6.9-8.9 ms (issue 11, two runs each, alternated). Pages that do not fit
/// are read again from the OS's page cache.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The page cache of a replay's transaction, and of every reader.
const REPLAY_CACHE_KIB: i64 = 64 * 1024;

/// At most this many checkpoints a second: each copies what the commits
/// since the last one added, and fsyncs the database file once.
///
/// Short, because a checkpoint's fsync of the database file and the
/// writer's fsync of the WAL share the device: every 100 ms, a checkpoint
/// wrote a few hundred pages and its fsync took up to 40 ms (perf trace),
/// and the commit whose fsync came during it waited as long. Requests
/// paced at 1,000/s then had a p99 of 20-23 ms; checkpoints every 20 ms
/// gave 8-14 ms, every 5 ms 5-12 ms, with no loss at 64 clients
/// unpaced (issue 11, `bench --only durable`, several runs of each).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// The checkpointer: copies committed WAL pages into the database file on
/// its own connection (PASSIVE: it never blocks the writer or a reader,
/// and stops short of pages a reader still needs), after commits, at most
/// every `CHECKPOINT_EVERY`. Ends when the writer does.
fn run_checkpointer(conn: Connection, wal_grew: mpsc::Receiver<()>) {
    while wal_grew.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the next commit retries it");
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
    // The last commits' pages: checkpointed now, so a clean stop leaves a
    // short WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Box<dyn Job>>) {
        // The next batch's first job: one that must run alone, met while
        // filling a batch, or one taken to see whether any was queued.
        let mut held: Option<Box<dyn Job>> = None;
        // recv() keeps yielding queued jobs after the sender is dropped, so
        // close() drains before the thread exits.
        while let Some(first) = held.take().or_else(|| rx.recv().ok()) {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && !batch[0].alone() {
                match rx.try_recv() {
                    Ok(job) if job.alone() => {
                        held = Some(job);
                        break;
                    }
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let started = std::time::Instant::now();
            let commit = self.run_batch(&mut batch);
            // How much each fsync is shared, and what a batch costs.
            metrics::histogram!("blockledger_eventstore_batch_jobs").record(batch.len() as f64);
            metrics::histogram!("blockledger_eventstore_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::trace!(jobs = batch.len(), ok = commit.is_ok(), "eventstore batch");
            let head = match &commit {
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "eventstore batch failed");
                    let _ = self.conn.execute_batch("ROLLBACK");
                    None
                }
                Ok(()) => head_of(&self.conn).ok(),
            };
            let committed = Committed {
                jobs: batch,
                commit,
                head,
            };
            // Nothing queued and nothing at the syncer: no next batch to
            // overlap the fsync with, so this thread makes it durable and
            // answers (the order of answers stays the order of commits).
            let idle = held.is_none()
                && self.at_syncer.load(std::sync::atomic::Ordering::Acquire) == 0
                && match rx.try_recv() {
                    Ok(job) => {
                        held = Some(job);
                        false
                    }
                    Err(_) => true,
                };
            if idle {
                self.durability.answer(vec![committed]);
                continue;
            }
            self.at_syncer
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            if let Err(mpsc::SendError(c)) = self.committed.send(committed) {
                // The syncer is gone (it ends only after this thread, so it
                // panicked): answered here instead.
                self.durability.answer(vec![c]);
            }
        }
    }

    fn run_batch(&self, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
        exec(&self.conn, "BEGIN IMMEDIATE")?;
        // Between transactions another process may have appended (the
        // `identity` CLI beside a running server), or a failed batch was
        // rolled back: then every stream tip is checked again. Otherwise
        // the writer's checks stand: `data_version` moves only with
        // another connection's commit, and nothing but this thread writes
        // through this one. Checking every stream's tip again at each
        // batch was 8% of the writer's time at 64 clients (perf, issue 11);
        // debug builds still assert each tip the cache trusts.
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.clean_since.take() != Some(version) {
            self.states.borrow_mut().forget_checks();
        }
        let mut tx = WriteTx {
            conn: &self.conn,
            projections: &self.projections,
            states: &self.states,
        };
        if let [job] = batch {
            if job.alone() {
                // The transaction is the job's atomicity: kept whole or
                // rolled back whole.
                if job.run(&mut tx) {
                    exec(&self.conn, "COMMIT")?;
                    self.clean_since.set(Some(version));
                } else {
                    exec(&self.conn, "ROLLBACK")?;
                }
                return Ok(());
            }
        }
        for job in batch.iter_mut() {
            exec(&self.conn, "SAVEPOINT es_job")?;
            if job.run(&mut tx) {
                exec(&self.conn, "RELEASE es_job")?;
            } else {
                undo(&self.conn, &self.states, "es_job")?;
            }
        }
        exec(&self.conn, "COMMIT")?;
        self.clean_since.set(Some(version));
        Ok(())
    }
}

struct Inner {
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Ends after the writer (its channel closes with the writer).
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// Ends after the syncer (its channel closes with the syncer).
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    readers: ReadPool,
    head: Arc<watch::Sender<u64>>,
    projections: Vec<Arc<dyn InlineProjection>>,
    /// The database file: a replay scans the log on a connection of its own.
    path: std::path::PathBuf,
}

/// A poisoned mutex only means another thread panicked while holding it; the
/// guarded values (a connection, a channel) stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fixed set of read-only connections. Taking one blocks the calling
/// thread until one is free: callers on the async runtime go through
/// `EventStore::query`, which waits on a blocking-pool thread instead.
struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    freed: Condvar,
}

/// A connection taken from the pool; goes back on drop (also on unwind).
struct Pooled<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

/// A read-only connection to the log: the pool's, and a replay's scan.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl ReadPool {
    fn open(path: &Path, n: usize) -> Result<Self, StoreError> {
        let mut idle = Vec::with_capacity(n);
        for _ in 0..n {
            let conn = open_reader(path)?;
            conn.set_prepared_statement_cache_capacity(STATEMENTS);
            idle.push(conn);
        }
        Ok(ReadPool {
            idle: Mutex::new(idle),
            freed: Condvar::new(),
        })
    }

    fn get(&self) -> Pooled<'_> {
        let mut idle = lock(&self.idle);
        loop {
            if let Some(conn) = idle.pop() {
                return Pooled {
                    pool: self,
                    conn: Some(conn),
                };
            }
            idle = self.freed.wait(idle).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.idle).push(conn);
            self.pool.freed.notify_one();
        }
    }
}

impl Inner {
    fn close(&self) {
        drop(lock(&self.jobs).take());
        // The last handle may be dropped by a job on the writer thread, or
        // with a job's answer on the syncer's: neither waits for itself.
        let me = std::thread::current().id();
        let ours = |h: &Option<JoinHandle<()>>| h.as_ref().is_some_and(|h| h.thread().id() == me);
        if ours(&lock(&self.writer)) || ours(&lock(&self.syncer)) {
            return;
        }
        for thread in [&self.writer, &self.syncer, &self.checkpointer] {
            if let Some(handle) = lock(thread).take() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Every projection's statements stay prepared (rusqlite keeps 16 by
    // default; an event touches more than that across the views, and
    // re-parsing SQL was most of a replay's time).
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    // The views of a large log do not fit SQLite's default 2 MiB page
    // cache: a replay then spilled pages to the WAL mid-transaction. (The
    // writer's own cache is smaller outside a replay: `WRITER_CACHE_KIB`.)
    conn.pragma_update(None, "cache_size", -REPLAY_CACHE_KIB)?;
    // Statement and savepoint journals in memory: they only undo a
    // statement or a savepoint inside an open transaction and are never
    // needed after a crash. On disk, every write transaction created,
    // unlinked and wrote a temporary file in /var/tmp (issue 11, strace of
    // a create/delete cycle).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // WAL: readers never block the writer. FULL: fsync the WAL on every
    // commit, so an acknowledged write survives power loss (the writer's
    // connection commits with NORMAL and leaves that fsync to `Durability`,
    // after the COMMIT and before any answer).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")
}

impl EventStore {
    /// Opens (or creates) the log. Refuses a log of a newer format
    /// (`FutureFormat`), a damaged one (`Corrupt`: not a database, cut
    /// short, or its newest events not verifying), and says so when the
    /// disk is full or read-only.
    pub fn open(
        path: &Path,
        projections: Vec<Arc<dyn InlineProjection>>,
    ) -> Result<Self, StoreError> {
        Self::open_checked(path, projections, true).map_err(StoreError::at_open)
    }

    /// Like `open`, without re-hashing the newest events: for `verify`,
    /// which checks the whole chain and names the first bad position.
    pub fn open_for_audit(
        path: &Path,
        projections: Vec<Arc<dyn InlineProjection>>,
    ) -> Result<Self, StoreError> {
        Self::open_checked(path, projections, false).map_err(StoreError::at_open)
    }

    fn open_checked(
        path: &Path,
        projections: Vec<Arc<dyn InlineProjection>>,
        tail_check: bool,
    ) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        let format: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if format > LOG_FORMAT {
            return Err(StoreError::FutureFormat {
                found: format,
                supported: LOG_FORMAT,
            });
        }
        if tail_check {
            check_tail(&conn)?;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        if format < LOG_FORMAT {
            tx.pragma_update(None, "user_version", LOG_FORMAT)?;
        }
        tx.execute_batch(aggregate::STATE_CACHE_SCHEMA)?;
        // A projection whose tables changed shape (or that is new) is
        // rebuilt from the log before anything reads it.
        let mut stale = Vec::new();
        for p in &projections {
            let stored: Option<u32> = tx
                .query_row(
                    "SELECT version FROM projection_versions WHERE name = ?1",
                    [p.name()],
                    |r| r.get(0),
                )
                .optional()?;
            if stored != Some(p.schema_version()) {
                p.drop_schema(&tx)?;
                p.init_schema(&tx)?;
                p.clear(&tx)?;
                tx.execute(
                    "INSERT OR REPLACE INTO projection_versions (name, version) VALUES (?1, ?2)",
                    rusqlite::params![p.name(), p.schema_version()],
                )?;
                stale.push(p.clone());
            } else {
                p.init_schema(&tx)?;
            }
        }
        if !stale.is_empty() {
            // This transaction changed no event: another connection's scan
            // reads the same log up to the same head.
            replay(&mut open_reader(path)?, head_of(&tx)?, &tx, &stale)?;
        }
        tx.commit()?;
        let (head, _) = watch::channel(head_of(&conn)?);
        let head = Arc::new(head);

        let readers = ReadPool::open(path, READERS)?;

        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        let checkpoint_conn = Connection::open(path)?;
        checkpoint_conn.busy_timeout(std::time::Duration::from_secs(5))?;
        checkpoint_conn.pragma_update(None, "synchronous", "FULL")?;
        let (wal_grew, wal_grew_rx) = mpsc::sync_channel(1);
        let checkpointer = std::thread::Builder::new()
            .name("eventstore-checkpointer".into())
            .spawn(move || run_checkpointer(checkpoint_conn, wal_grew_rx))
            .map_err(|e| StoreError::Batch(format!("spawning checkpointer thread: {e}")))?;

        // The writer's COMMIT writes the WAL without waiting for the disk;
        // the syncer's fsync makes each batch durable before it is
        // answered (`Durability`). Checkpoints still sync (NORMAL syncs the WAL
        // before copying it and the database file after).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (committed, rx_committed) = mpsc::channel::<Committed>();
        let durability = |wal_grew| Durability {
            wal: wal_path(path),
            file: None,
            head: head.clone(),
            wal_grew,
        };
        let at_syncer = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let syncer = {
            let (durability, at_syncer) = (durability(wal_grew.clone()), at_syncer.clone());
            std::thread::Builder::new()
                .name("eventstore-syncer".into())
                .spawn(move || run_syncer(durability, rx_committed, at_syncer))
                .map_err(|e| StoreError::Batch(format!("spawning syncer thread: {e}")))?
        };

        let (tx_jobs, rx_jobs) = mpsc::channel::<Box<dyn Job>>();
        let writer = Writer {
            conn,
            projections: projections.clone(),
            states: Default::default(),
            durability: durability(wal_grew),
            committed,
            at_syncer,
            clean_since: Default::default(),
        };
        let handle = std::thread::Builder::new()
            .name("eventstore-writer".into())
            .spawn(move || writer.run(rx_jobs))
            .map_err(|e| StoreError::Batch(format!("spawning writer thread: {e}")))?;
        Ok(EventStore {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Some(tx_jobs)),
                writer: Mutex::new(Some(handle)),
                syncer: Mutex::new(Some(syncer)),
                checkpointer: Mutex::new(Some(checkpointer)),
                readers,
                head,
                projections,
                path: path.to_owned(),
            }),
        })
    }

    fn submit<T, E, F>(
        &self,
        f: F,
        reply: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), StoreError>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit_job(f, reply, false)
    }

    fn submit_job<T, E, F>(
        &self,
        f: F,
        reply: impl FnOnce(Result<T, E>) + Send + 'static,
        alone: bool,
    ) -> Result<(), StoreError>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let job: Box<dyn Job> = Box::new(TypedJob {
            f: Some(f),
            out: None,
            reply,
            alone,
        });
        let guard = lock(&self.inner.jobs);
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)
    }

    /// Runs `f` on the single writer thread inside the current group-commit
    /// transaction; resolves after the batch committed. Dropping the future
    /// does not cancel the job.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .unwrap_or_else(|_| Err(E::from(StoreError::Closed)))
    }

    /// Like `write` for sync callers; blocks the calling thread (don't use it
    /// on an async runtime worker, and never from inside a write job: the
    /// writer would wait for itself).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .unwrap_or_else(|_| Err(E::from(StoreError::Closed)))
    }

    /// Runs `f` on a pooled read-only connection (WAL: sees the last
    /// committed state). Blocks the calling thread, also while waiting for
    /// a free connection: async callers use `query`.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        Ok(f(&self.inner.readers.get())?)
    }

    /// Runs `f` on a pooled read-only connection on tokio's blocking pool,
    /// so neither the wait for a connection nor SQLite's I/O holds up a
    /// runtime worker. A panic in `f` is `StoreError::Panicked`.
    pub async fn query<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.on_reader(move |c| Ok(f(c)?)).await
    }

    async fn on_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.readers.get()))
            .await
            .map_err(|e| StoreError::Panicked(e.to_string()))?
    }

    pub fn read_stream(&self, stream_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        query_events(
            &self.inner.readers.get(),
            "WHERE stream_id = ?1 ORDER BY stream_version",
            [stream_id],
        )
    }

    /// Events of one stream with position > `after_position`, at most
    /// `limit`, off the async runtime.
    pub async fn read_stream_after_async(
        &self,
        stream_id: &str,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream_id = stream_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.on_reader(move |c| {
            query_events(
                c,
                "WHERE stream_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3",
                params![stream_id, after_position, limit],
            )
        })
        .await
    }

    /// `read_stream` off the async runtime.
    pub async fn read_stream_async(
        &self,
        stream_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.on_reader(move |c| {
            query_events(
                c,
                "WHERE stream_id = ?1 ORDER BY stream_version",
                [stream_id],
            )
        })
        .await
    }

    /// Events with position > `after_position`, ascending, at most `limit`,
    /// up to the durable head (`head`).
    pub fn read_from(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.durable_head();
        read_durable(&self.inner.readers.get(), after_position, limit, head)
    }

    /// `read_from` off the async runtime.
    pub async fn read_from_async(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.durable_head();
        self.on_reader(move |c| read_durable(c, after_position, limit, head))
            .await
    }

    /// The last position this process's writer made durable (the
    /// syncer's, `Durability`): a reader's connection may already see later
    /// commits whose fsync has not returned, and nothing that acts on the
    /// log may act on those.
    fn durable_head(&self) -> u64 {
        *self.inner.head.borrow()
    }

    /// The events of the given types after `after_position`, at most
    /// `limit`, and how far the log was looked through: the last event
    /// returned when the batch is full, else the durable head at the time
    /// of the read (every position up to it is committed, so nothing can
    /// appear behind it). For a subscriber that acts on few
    /// kinds of events (the executor): the others are skipped by their
    /// type column, never decoded; reading and parsing every event was
    /// ~9% of the server's CPU under a stream of metadata updates (issue 11).
    pub async fn read_types_from_async(
        &self,
        after_position: u64,
        limit: usize,
        types: &'static [&'static str],
    ) -> Result<(Vec<RecordedEvent>, u64), StoreError> {
        let head = self.durable_head();
        self.on_reader(move |c| {
            let list = types
                .iter()
                .map(|t| format!("'{}'", t.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(",");
            let bound = i64::try_from(limit).unwrap_or(i64::MAX);
            let events = query_events(
                c,
                &format!(
                    "WHERE position > ?1 AND position <= ?2 AND event_type IN ({list})
                     ORDER BY position LIMIT ?3"
                ),
                params![after_position, head, bound],
            )?;
            let scanned = match events.last() {
                Some(last) if events.len() >= limit => last.position,
                _ => head.max(after_position),
            };
            Ok((events, scanned))
        })
        .await
    }

    /// Last position a reader sees, 0 when empty: it may run ahead of the
    /// durable head that `subscribe` publishes by a batch whose fsync has
    /// not returned yet.
    pub fn head(&self) -> Result<u64, StoreError> {
        Ok(head_of(&self.inner.readers.get())?)
    }

    /// The durable head: the last position, published once the batch
    /// that wrote it is fsynced (`Durability`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    /// 0 if none saved.
    pub fn checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        self.read(|c| checkpoint_of(c, name))
    }

    /// `checkpoint` off the async runtime.
    pub async fn checkpoint_async(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.query(move |c| checkpoint_of(c, &name)).await
    }

    /// Goes through the writer (single writer, durable when it returns).
    pub fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write_blocking(move |tx| tx.set_checkpoint(&name, position))
    }

    /// Recomputes every hash from the stored columns. Note: a chain without an
    /// external anchor cannot detect removal of the newest events.
    pub fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        let mut reader = self.inner.readers.get();
        let snap = Snapshot::begin(&mut reader)?; // one consistent view while writers go on
        let mut stmt = snap
            .0
            .prepare(&format!("SELECT {COLUMNS} FROM events ORDER BY position"))?;
        let mut rows = stmt.query([])?;
        let (mut events, mut prev, mut first_bad) = (0u64, String::new(), None);
        while let Some(r) = rows.next()? {
            events += 1;
            if first_bad.is_some() {
                continue;
            }
            let position: u64 = r.get(0)?;
            if position != events {
                first_bad = Some((position, format!("position gap: expected {events}")));
                continue;
            }
            match check_row(&prev, position, r) {
                Ok(hash) => prev = hash,
                Err(reason) => first_bad = Some((position, reason)),
            }
        }
        Ok(ChainReport { events, first_bad })
    }

    /// Clears every projection and re-applies the whole log, in one transaction
    /// on the writer (readers never see a half-built read model).
    ///
    /// The replay runs as a transaction of its own, not inside a job
    /// savepoint: with a savepoint open, every page the replay writes went
    /// to SQLite's in-memory sub-journal, and each statement journal (the
    /// jobs view's UPDATEs open one) is released by truncating that journal
    /// to its mark, which walks its chunk list from the start. The cost per
    /// statement grew with everything written before it: two thirds of a
    /// 244,000-event replay's time (perf, issue 11).
    pub fn rebuild_projections(&self) -> Result<u64, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let path = self.inner.path.clone();
        self.submit_job(
            move |tx: &mut WriteTx<'_>| {
                // A connection of its own, not the pool's: a reader taken
                // here would wait on callers that may be waiting on the
                // writer. It sees every event: this transaction appends none.
                let mut log = open_reader(&path)?;
                for p in tx.projections {
                    p.clear(tx.conn)?;
                }
                replay(&mut log, head_of(tx.conn)?, tx.conn, tx.projections)
            },
            move |r| {
                let _ = tx.send(r);
            },
            true,
        )?;
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Replays the log into a fresh in-memory database and compares every
    /// projection's dump with the stored one.
    pub fn verify_projections(&self) -> Result<Option<String>, StoreError> {
        let fresh = Connection::open_in_memory()?;
        for p in &self.inner.projections {
            p.init_schema(&fresh)?;
        }
        let mut reader = self.inner.readers.get();
        // Same snapshot for the log and the stored read models, else a
        // concurrent commit would show up as a false mismatch.
        let snap = Snapshot::begin(&mut reader)?;
        for p in &self.inner.projections {
            if let Some(reason) = p.audit(snap.0)? {
                return Ok(Some(format!("projection {}: {reason}", p.name())));
            }
        }
        let head = head_of(snap.0)?;
        replay(snap.0, head, &fresh, &self.inner.projections)?;
        for p in &self.inner.projections {
            let (stored, replayed) = (p.dump(snap.0)?, p.dump(&fresh)?);
            if stored != replayed {
                let i = stored
                    .iter()
                    .zip(&replayed)
                    .take_while(|(a, b)| a == b)
                    .count();
                let show = |rows: &[String]| {
                    rows.get(i)
                        .map_or("<no row>".to_owned(), |r| format!("{r:?}"))
                };
                return Ok(Some(format!(
                    "projection {}: row {i} differs: stored {} vs replayed {} ({} stored rows, {} replayed)",
                    p.name(),
                    show(&stored),
                    show(&replayed),
                    stored.len(),
                    replayed.len()
                )));
            }
        }
        Ok(None)
    }

    /// Stops the writer after draining queued jobs; later writes get `Closed`.
    /// Reads keep working. Also happens when the last handle is dropped.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// Streams every event of the log up to `upto` (in order) through the
/// projections into `dst`. `log` is another connection to the same log,
/// already at (or past) `upto`: its scan runs on a thread of its own, so
/// reading and parsing the rows overlaps applying them (issue 11: they
/// were 42% and 55% of a replay's time on one thread).
fn replay(
    log: &mut Connection,
    upto: u64,
    dst: &Connection,
    projections: &[Arc<dyn InlineProjection>],
) -> Result<u64, StoreError> {
    // The whole replay, its views' final writes included, runs with the
    // large page cache (the writer's own is small: `WRITER_CACHE_KIB`).
    let cache: i64 = dst.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
    dst.pragma_update(None, "cache_size", -REPLAY_CACHE_KIB)?;
    let out = replay_with_cache(log, upto, dst, projections);
    dst.pragma_update(None, "cache_size", cache)?;
    out
}

fn replay_with_cache(
    log: &mut Connection,
    upto: u64,
    dst: &Connection,
    projections: &[Arc<dyn InlineProjection>],
) -> Result<u64, StoreError> {
    for p in projections {
        p.begin_replay();
    }
    let out = replay_events(log, upto, dst, projections);
    let mut ended = Ok(());
    for p in projections {
        let e = p.end_replay(dst, out.is_ok());
        if ended.is_ok() {
            ended = e;
        }
    }
    let n = out?;
    ended?;
    Ok(n)
}

/// Events a replay's scan sends at a time, and batches it may run ahead of
/// the projections: bounds the events held in memory (about 8 × 512).
const SCAN_BATCH: usize = 512;
const SCAN_AHEAD: usize = 8;

fn replay_events(
    log: &mut Connection,
    upto: u64,
    dst: &Connection,
    projections: &[Arc<dyn InlineProjection>],
) -> Result<u64, StoreError> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Vec<RecordedEvent>>(SCAN_AHEAD);
        let scan = std::thread::Builder::new()
            .name("eventstore-replay-scan".into())
            .spawn_scoped(s, move || scan_log(log, upto, tx))
            .map_err(|e| StoreError::Batch(format!("spawning the replay's scan: {e}")))?;
        let (mut n, mut last) = (0u64, 0u64);
        let applied = (|| {
            // Ends when the scan does (its sender dropped); returning early
            // drops the receiver, which stops the scan at its next send.
            for batch in rx {
                for ev in &batch {
                    for p in projections {
                        p.apply(dst, ev)?;
                    }
                    last = ev.position;
                    n += 1;
                }
            }
            Ok::<_, StoreError>(())
        })();
        let scanned = scan
            .join()
            .map_err(|_| StoreError::Batch("the replay's scan panicked".into()))?;
        scanned?;
        applied?;
        // The scan's connection must have seen exactly the head it was
        // given: anything else would leave the views short of the log.
        if last != upto {
            return Err(StoreError::Batch(format!(
                "replay read the log up to position {last}, expected {upto}"
            )));
        }
        Ok(n)
    })
}

/// Reads the log up to `upto` in order, parsed, in batches.
fn scan_log(
    log: &mut Connection,
    upto: u64,
    out: mpsc::SyncSender<Vec<RecordedEvent>>,
) -> Result<(), StoreError> {
    if upto == 0 {
        // A new log: its table may not even be committed yet.
        return Ok(());
    }
    // The log is read through a memory map for the replay: each of its
    // pages was otherwise a pread into a page-cache buffer malloc'ed for
    // it (issue 11: 25,000 preads for a 127,558-event log). Only for the
    // replay: a server's resident size would count every page it mapped.
    let unmapped: i64 = log.query_row("PRAGMA mmap_size", [], |r| r.get(0))?;
    log.pragma_update(None, "mmap_size", REPLAY_MMAP_BYTES)?;
    let scanned = (|| {
        let mut stmt = log.prepare(&format!(
            "SELECT {COLUMNS} FROM events WHERE position <= ?1 ORDER BY position"
        ))?;
        let mut rows = stmt.query([upto])?;
        let mut batch = Vec::with_capacity(SCAN_BATCH);
        while let Some(r) = rows.next()? {
            batch.push(row_to_event(r)?);
            if batch.len() == SCAN_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(SCAN_BATCH));
                if out.send(full).is_err() {
                    // The projections stopped (and say why).
                    return Ok(());
                }
            }
        }
        // An error here means the projections stopped: theirs is reported.
        let _ = out.send(batch);
        Ok::<_, StoreError>(())
    })();
    log.pragma_update(None, "mmap_size", unmapped)?;
    scanned
}

/// How much of the database file a replay maps (SQLite caps it at its
/// own compile-time limit, 2 GiB on Linux; the rest is read as before).
const REPLAY_MMAP_BYTES: i64 = 1 << 31;

/// A read transaction on the reader, ended on drop (also on early return).
struct Snapshot<'a>(&'a mut Connection);

impl<'a> Snapshot<'a> {
    fn begin(conn: &'a mut Connection) -> rusqlite::Result<Self> {
        conn.execute_batch("BEGIN DEFERRED")?;
        Ok(Snapshot(conn))
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("COMMIT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash as first written: a `json!` document of the nine columns,
    /// canonicalised. Every stored log was hashed this way.
    fn chain_hash_reference(prev: &str, c: &Canon) -> String {
        let doc = serde_json::json!({
            "position": c.position, "stream_id": c.stream_id, "stream_version": c.stream_version,
            "event_id": c.event_id, "type": c.event_type, "v": c.v,
            "data": c.data, "metadata": c.metadata, "recorded_at": c.recorded_at,
        });
        let mut bytes = Vec::new();
        write_canonical(&doc, &mut bytes);
        let mut h = Sha256::new();
        h.update(prev.as_bytes());
        h.update(&bytes);
        hex::encode(h.finalize())
    }

    #[test]
    fn the_field_by_field_hash_equals_the_document_hash() {
        let datas = [
            serde_json::json!({}),
            serde_json::json!(null),
            serde_json::json!({"z": 1, "a": [1.5, -2, "x\"y\\\n\u{7f}é😀"], "m": {"b": null, "a": true}}),
            serde_json::json!({"size": 18446744073709551615u64, "neg": -9223372036854775808i64, "f": 1e-7}),
        ];
        let metas = [
            serde_json::json!({"request_id": "req-1", "correlation_id": null}),
            serde_json::json!({"k": "\u{0}\t"}),
        ];
        for (i, data) in datas.iter().enumerate() {
            for meta in &metas {
                let c = Canon {
                    position: 1 + i as u64 * 1_000_003,
                    stream_id: "volume-\"quoted\"",
                    stream_version: u64::MAX - i as u64,
                    event_id: "0b7c2a3e-1111-4222-8333-444455556666",
                    event_type: "VolumeMetadataEdited",
                    v: u32::MAX - i as u32,
                    data,
                    metadata: meta,
                    recorded_at: "2026-11-29T21:00:00.123456Z",
                };
                for prev in ["", "ab12"] {
                    assert_eq!(chain_hash(prev, &c), chain_hash_reference(prev, &c));
                }
            }
        }
    }
}
