//! The transfer view (CINDER-7.4.x): pending transfers only; an accepted
//! or deleted transfer leaves the view.

use domain::transfer::TransferEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, stamp, time_at};

pub struct TransfersProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: String,
    pub project_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        volume_id: r.get(2)?,
        name: r.get(3)?,
        created_at: time_at(r, 4)?,
    })
}

impl InlineProjection for TransfersProjection {
    fn name(&self) -> &'static str {
        "transfers"
    }

    /// 2: raw times.
    fn schema_version(&self) -> u32 {
        2
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS transfers;")
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS transfers (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                volume_id TEXT NOT NULL,
                name TEXT,
                created_at TEXT NOT NULL,
                seq INTEGER NOT NULL
            );",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if !ev.stream_id.starts_with("transfer-") {
            return Ok(());
        }
        let Ok(e) = serde_json::from_value::<TransferEvent>(
            serde_json::json!({"type": ev.event_type, "data": ev.data}),
        ) else {
            return Ok(());
        };
        let id = ev.stream_id.trim_start_matches("transfer-");
        match e {
            TransferEvent::TransferCreated {
                transfer_id,
                volume_id,
                project_id,
                name,
                ..
            } => {
                conn.prepare_cached("INSERT INTO transfers VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                    .execute(params![
                        transfer_id.to_string(),
                        project_id,
                        volume_id.to_string(),
                        name,
                        stamp(&ev.recorded_at),
                        ev.position as i64
                    ])?;
            }
            TransferEvent::TransferAccepted { .. } | TransferEvent::TransferDeleted {} => {
                conn.prepare_cached("DELETE FROM transfers WHERE id = ?1")?
                    .execute(params![id])?;
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM transfers")?
            .execute([])
            .map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "transfers", "id")
    }
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<TransferRow>> {
    conn.prepare_cached(
        "SELECT id, project_id, volume_id, name, created_at FROM transfers WHERE id = ?1",
    )?
    .query_row([id], from_row)
    .optional()
}

/// A project's pending transfers, newest first, paged by limit/offset.
pub fn list(
    conn: &Connection,
    project_id: Option<&str>,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<Vec<TransferRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, project_id, volume_id, name, created_at FROM transfers
         WHERE (?1 IS NULL OR project_id = ?1) ORDER BY seq DESC LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![project_id, limit as i64, offset as i64], from_row)?;
    rows.collect()
}
