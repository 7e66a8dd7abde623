//! The first outcome of every request sent with an `Idempotency-Key`, by
//! (project, key): what a retry of the same request is answered with,
//! also after a restart, because the outcome is an event in the log.

use eventstore::rusqlite::{self, params, Connection, OptionalExtension};
use eventstore::{InlineProjection, RecordedEvent};
use serde::{Deserialize, Serialize};

/// The stream the outcomes are appended to.
pub const STREAM: &str = "idempotency";
/// The type of the outcome event.
pub const COMPLETED: &str = "IdempotentRequestCompleted";

/// The data of an `IdempotentRequestCompleted` event, and a row of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedRequest {
    pub key: String,
    pub project_id: String,
    /// hex sha256 of method, path (with query) and body: a retry must match.
    pub fingerprint: String,
    pub status: u16,
    /// The response body as sent (UTF-8; empty for a bodiless answer).
    pub body: String,
    #[serde(default)]
    pub content_type: Option<String>,
}

pub struct IdempotencyProjection;

impl InlineProjection for IdempotencyProjection {
    fn name(&self) -> &'static str {
        "idempotency"
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS idempotent_requests (
                project_id TEXT NOT NULL,
                key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                status INTEGER NOT NULL,
                body TEXT NOT NULL,
                content_type TEXT,
                PRIMARY KEY (project_id, key)
            )",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if ev.stream_id != STREAM || ev.event_type != COMPLETED {
            return Ok(());
        }
        let Ok(r) = serde_json::from_str::<CompletedRequest>(ev.data.as_raw()) else {
            return Ok(());
        };
        // The first outcome wins: that is what every retry is answered with.
        conn.prepare_cached(
            "INSERT INTO idempotent_requests
                 (project_id, key, fingerprint, status, body, content_type)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (project_id, key) DO NOTHING",
        )?
        .execute(params![
            r.project_id,
            r.key,
            r.fingerprint,
            r.status,
            r.body,
            r.content_type
        ])
        .map(drop)
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DELETE FROM idempotent_requests")
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        crate::dump_table(conn, "idempotent_requests", "project_id, key")
    }
}

/// The recorded outcome of `key` in `project_id`, if any.
pub fn get(
    conn: &Connection,
    project_id: &str,
    key: &str,
) -> rusqlite::Result<Option<CompletedRequest>> {
    conn.prepare_cached(
        "SELECT fingerprint, status, body, content_type FROM idempotent_requests
         WHERE project_id = ?1 AND key = ?2",
    )?
    .query_row(params![project_id, key], |r| {
        Ok(CompletedRequest {
            key: key.to_string(),
            project_id: project_id.to_string(),
            fingerprint: r.get(0)?,
            status: r.get(1)?,
            body: r.get(2)?,
            content_type: r.get(3)?,
        })
    })
    .optional()
}
