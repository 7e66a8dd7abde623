//! Point in time (issue 14): a copy of the log up to an instant, with
//! every view built from it, in a database of its own.
//!
//! The source is opened read-only (a plain reader next to a live server's
//! writer: WAL lets both go on), and the rows are copied verbatim, hashes
//! included, so the copy's chain verifies like the original's prefix. The
//! views are then built by the same replay that rebuilds them in place
//! (`EventStore::rebuild_projections`): a view of the copy is what the live
//! view was after the same events, because a live view is a fold of the
//! events before it and nothing else (`verify` checks that on every log).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::{EventStore, InlineProjection, StoreError};

/// The instant a copy is taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The log up to and including this position.
    Position(u64),
    /// Every event recorded at or before this time.
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is neither a position (a whole number) nor an RFC 3339 time (e.g. 2026-11-30T00:14:02Z)"
)]
pub struct BadAsOf(String);

impl FromStr for AsOf {
    type Err = BadAsOf;
    fn from_str(s: &str) -> Result<Self, BadAsOf> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(AsOf::Position(n));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| AsOf::Time(t.with_timezone(&Utc)))
            .map_err(|_| BadAsOf(s.to_owned()))
    }
}

/// What a copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The copy's last position (0: no event was recorded by then).
    pub position: u64,
    /// When that event was recorded (stored text), if there is one.
    pub recorded_at: Option<String>,
    /// The source log's head when the copy was taken.
    pub source_head: u64,
}

/// Why a copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    #[error("position {asked} is past the end of the log (its last position is {head})")]
    PastTheEnd { asked: u64, head: u64 },
    #[error(
        "{0} already exists: the copy goes into a new database (choose an empty --out directory)"
    )]
    Exists(String),
    #[error("the source log {0} does not exist")]
    NoSource(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AsOfError {
    fn from(e: rusqlite::Error) -> Self {
        AsOfError::Store(e.into())
    }
}

const COLUMNS: &str =
    "position, stream_id, stream_version, event_id, event_type, v, data, metadata, recorded_at, hash";

/// The last position the copy holds: `Position(n)` itself (refused past
/// the head), or for `Time(t)` the end of the longest prefix of the log
/// recorded at or before `t`. A prefix, not "every event with
/// recorded_at <= t", because a copy must be a chain: should the clock
/// ever have stepped back, the events after the first later one are left
/// out too. Stored times are fixed-width RFC 3339 UTC text with
/// microseconds, so they compare as text; `t` is written the same way
/// (truncated to microseconds, which keeps `<=` exact for stored times).
pub fn resolve(src: &Connection, as_of: AsOf) -> Result<u64, AsOfError> {
    let head: u64 = src.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
        r.get(0)
    })?;
    match as_of {
        AsOf::Position(n) if n > head => Err(AsOfError::PastTheEnd { asked: n, head }),
        AsOf::Position(n) => Ok(n),
        AsOf::Time(t) => {
            let t = t.to_rfc3339_opts(SecondsFormat::Micros, true);
            let first_later: Option<u64> = src
                .query_row(
                    "SELECT MIN(position) FROM events WHERE recorded_at > ?1",
                    [&t],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            Ok(first_later.map_or(head, |p| p - 1))
        }
    }
}

/// Copies the log at `src_db` up to `as_of` into a new database `out_db`
/// (refused if it exists), with the tables named in `beside` (state kept
/// next to the log that no event rebuilds, e.g. password hashes: whole, as
/// they are now, when the source has them), then builds `projections` from
/// the copied events.
pub fn copy_as_of(
    src_db: &Path,
    as_of: AsOf,
    out_db: &Path,
    projections: Vec<Arc<dyn InlineProjection>>,
    beside: &[&str],
) -> Result<Copied, AsOfError> {
    if !src_db.exists() {
        return Err(AsOfError::NoSource(src_db.display().to_string()));
    }
    if out_db.exists() {
        return Err(AsOfError::Exists(out_db.display().to_string()));
    }
    // Read-only: takes no write lock and never creates or changes the
    // source's files, so a live server's writer goes on undisturbed.
    let src = Connection::open_with_flags(
        src_db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(std::time::Duration::from_secs(5))?;
    // One read transaction: the head, the rows and the side tables are of
    // the same committed state.
    src.execute_batch("BEGIN DEFERRED")?;
    let source_head: u64 =
        src.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
            r.get(0)
        })?;
    let position = resolve(&src, as_of)?;
    let mut side = Vec::new();
    for table in beside {
        let create: Option<String> = src
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(create) = create {
            side.push((table.to_string(), create));
        }
    }

    let store = EventStore::open(out_db, projections)?;
    let src = Arc::new(std::sync::Mutex::new(src));
    let copied = {
        let src = src.clone();
        store.write_blocking(move |tx| -> Result<Option<String>, StoreError> {
            let src = crate::lock(&src);
            let dst = tx.conn();
            let mut read = src.prepare(&format!(
                "SELECT {COLUMNS} FROM events WHERE position <= ?1 ORDER BY position"
            ))?;
            let mut insert = dst.prepare(&format!(
                "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?;
            let mut rows = read.query([position])?;
            let mut last_at = None;
            while let Some(r) = rows.next()? {
                // Raw values, as stored: the copy's hashes are the source's.
                let vals: Vec<rusqlite::types::Value> =
                    (0..10).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                insert.execute(rusqlite::params_from_iter(&vals))?;
                if let rusqlite::types::Value::Text(t) = &vals[8] {
                    last_at = Some(t.clone());
                }
            }
            for (table, create) in &side {
                dst.execute_batch(&format!("DROP TABLE IF EXISTS \"{table}\"; {create};"))?;
                let cols: usize = src.query_row(
                    &format!("SELECT COUNT(*) FROM pragma_table_info('{table}')"),
                    [],
                    |r| r.get(0),
                )?;
                let marks = vec!["?"; cols].join(", ");
                let mut ins = dst.prepare(&format!("INSERT INTO \"{table}\" VALUES ({marks})"))?;
                let mut sel = src.prepare(&format!("SELECT * FROM \"{table}\""))?;
                let mut rows = sel.query([])?;
                while let Some(r) = rows.next()? {
                    let vals: Vec<rusqlite::types::Value> =
                        (0..cols).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                    ins.execute(rusqlite::params_from_iter(&vals))?;
                }
            }
            Ok(last_at)
        })
    };
    let _ = crate::lock(&src).execute_batch("COMMIT");
    let recorded_at = copied?;
    store.rebuild_projections()?;
    store.close();
    Ok(Copied {
        position,
        recorded_at,
        source_head,
    })
}

/// Appending to `store` fails from now on, for as long as the process
/// runs: a temporary trigger on the writer's own connection (the only one
/// that writes), so nothing on disk changes and the file stays a plain
/// log. `serve --read-only` sets it: a copy as of position N keeps
/// answering as of N, whatever a handler might try to record.
pub async fn freeze(store: &EventStore) -> Result<u64, StoreError> {
    store
        .write(|tx| -> Result<u64, StoreError> {
            tx.conn().execute_batch(
                "CREATE TEMP TRIGGER IF NOT EXISTS events_read_only BEFORE INSERT ON main.events
             BEGIN SELECT RAISE(ABORT, 'this log is served read-only'); END;",
            )?;
            Ok(tx.conn().query_row(
                "SELECT COALESCE(MAX(position), 0) FROM events",
                params![],
                |r| r.get(0),
            )?)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_parses_a_position_or_a_time() {
        assert_eq!("42".parse::<AsOf>(), Ok(AsOf::Position(42)));
        assert_eq!(
            "2026-11-30T00:14:02.5+01:00".parse::<AsOf>(),
            Ok(AsOf::Time(
                DateTime::parse_from_rfc3339("2026-11-29T23:14:02.5Z")
                    .unwrap()
                    .with_timezone(&Utc)
            ))
        );
        assert!("yesterday".parse::<AsOf>().is_err());
        assert!("-1".parse::<AsOf>().is_err());
    }
}
