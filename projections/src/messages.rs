//! The user messages view (Cinder microversion 3.3): one row per refused
//! command that named a volume or snapshot and per failed disk work
//! (`domain::message` classifies them), until a `MessageDeleted`. A
//! message's id is its source event's id, so a replay rebuilds the same
//! rows; a message belongs to the project that made the request.

use domain::message::{self, Classified};
use eventstore::query::{named_stream, split_stream, REFUSED};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};
use serde_json::Value;

use crate::{dump_table, stamp, time_at};

pub struct MessagesProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub project_id: String,
    pub request_id: String,
    pub event_id: String,
    pub message_level: String,
    pub user_message: String,
    pub resource_type: String,
    pub resource_uuid: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The columns a list may filter and sort on (Cinder's `Message` model's,
/// less the ones this view has no use for).
pub const COLUMNS: [&str; 8] = [
    "id",
    "project_id",
    "request_id",
    "event_id",
    "message_level",
    "resource_type",
    "resource_uuid",
    "created_at",
];

const SELECT: &str = "SELECT id, project_id, request_id, event_id, message_level, user_message,
    resource_type, resource_uuid, created_at FROM messages";

fn from_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        request_id: r.get(2)?,
        event_id: r.get(3)?,
        message_level: r.get(4)?,
        user_message: r.get(5)?,
        resource_type: r.get(6)?,
        resource_uuid: r.get(7)?,
        created_at: time_at(r, 8)?,
    })
}

fn text<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A request's method and path from the event's metadata (events before
/// issue 14 carry them in `route` only).
fn method_and_path(meta: &Value) -> (String, String) {
    match (text(meta, "method"), text(meta, "path")) {
        (Some(m), Some(p)) => (m.to_string(), p.to_string()),
        _ => match text(meta, "route").and_then(|r| r.split_once(' ')) {
            Some((m, p)) => (m.to_string(), p.to_string()),
            None => (String::new(), String::new()),
        },
    }
}

/// What `ev` says went wrong, and about which resource.
fn classify(ev: &RecordedEvent) -> Option<(Classified, String)> {
    if ev.event_type == REFUSED {
        let (kind, id) = split_stream(named_stream(ev));
        let (method, path) = method_and_path(&ev.metadata);
        let c = message::for_refusal(
            kind,
            &method,
            &path,
            text(&ev.data, "reason").unwrap_or_default(),
            text(&ev.data, "message").unwrap_or_default(),
        )?;
        return Some((c, id?.to_string()));
    }
    let (kind, id) = split_stream(&ev.stream_id);
    if !matches!(kind, "volume" | "snapshot") {
        return None;
    }
    // The reason only picks among a failure type's messages: asking with
    // none first tells whether the type has any, so the data of every
    // other event (nearly all of them) is never parsed (issue 11).
    message::for_failure(&ev.event_type, "")?;
    let c = message::for_failure(&ev.event_type, text(&ev.data, "reason").unwrap_or_default())?;
    Some((c, id?.to_string()))
}

impl InlineProjection for MessagesProjection {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS messages;")
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                request_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                message_level TEXT NOT NULL,
                user_message TEXT NOT NULL,
                resource_type TEXT NOT NULL,
                resource_uuid TEXT,
                created_at TEXT NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS messages_by_project ON messages(project_id, seq);",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if let Some(id) = ev.stream_id.strip_prefix("message-") {
            if ev.event_type == "MessageDeleted" {
                conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                    .execute([id])?;
            }
            return Ok(());
        }
        let Some((c, resource_uuid)) = classify(ev) else {
            return Ok(());
        };
        let Some(project) = text(&ev.metadata, "project_id") else {
            return Ok(());
        };
        // The executor's outcome carries the job, not the request: the
        // request is the one that opened the job (the jobs view, applied
        // before this one).
        let request_id = match text(&ev.metadata, "request_id") {
            Some(r) => Some(r.to_string()),
            None => match text(&ev.metadata, "correlation_id") {
                Some(job) => crate::jobs::request_of(conn, job, &ev.stream_id)?,
                None => None,
            },
        };
        conn.prepare_cached(
            "INSERT OR REPLACE INTO messages VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            ev.event_id.to_string(),
            project,
            request_id.unwrap_or_default(),
            c.event_id(),
            message::LEVEL_ERROR,
            c.user_message(),
            c.resource_type,
            resource_uuid,
            stamp(&ev.recorded_at),
            ev.position as i64
        ])?;
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM messages")?
            .execute([])
            .map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "messages", "id")
    }
}

/// Message `id`, if `project` (None: every project) has it.
pub fn get(
    conn: &Connection,
    id: &str,
    project: Option<&str>,
) -> rusqlite::Result<Option<MessageRow>> {
    conn.prepare_cached(&format!(
        "{SELECT} WHERE id = ?1 AND (?2 IS NULL OR project_id = ?2)"
    ))?
    .query_row(params![id, project], from_row)
    .optional()
}

/// How a list matches a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    /// Cinder's `<key>~` (3.34): the value anywhere in the column.
    Like(String),
}

/// A messages list: filters on `COLUMNS`, sort keys (each with ascending
/// or not), then paging.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub project_id: Option<String>,
    pub filters: Vec<(&'static str, Match)>,
    /// Empty: Cinder's default, newest first.
    pub sort: Vec<(&'static str, bool)>,
    pub marker: Option<String>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// The messages `q` selects, in order; None when the marker names no
/// message the caller may see.
pub fn list(conn: &Connection, q: &MessageQuery) -> rusqlite::Result<Option<Vec<MessageRow>>> {
    let mut f = crate::Filter::new(SELECT.to_string());
    if let Some(p) = &q.project_id {
        f.and("project_id = ?", p.clone());
    }
    for (col, m) in &q.filters {
        match m {
            Match::Exact(v) => f.and(&format!("{col} = ?"), v.clone()),
            Match::Like(v) => f.and(&format!("{col} LIKE '%' || ? || '%'"), v.clone()),
        }
    }
    let mut order: Vec<String> = q
        .sort
        .iter()
        .map(|(c, asc)| format!("{c} {}", if *asc { "ASC" } else { "DESC" }))
        .collect();
    if q.sort.is_empty() {
        order.push("created_at DESC".into());
    }
    // Cinder adds `id` so the order is total; creation order breaks ties
    // here the same way for equal times.
    order.push("seq DESC".into());
    let sql = format!("{} ORDER BY {}", f.sql, order.join(", "));
    let mut stmt = conn.prepare(&sql)?;
    let rows: Vec<MessageRow> = stmt
        .query_map(rusqlite::params_from_iter(f.args.iter()), from_row)?
        .collect::<Result<_, _>>()?;
    let start = match &q.marker {
        None => 0,
        Some(m) => match rows.iter().position(|r| &r.id == m) {
            Some(i) => i + 1,
            None => return Ok(None),
        },
    };
    let rows = rows
        .into_iter()
        .skip(start + q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    Ok(Some(rows))
}
