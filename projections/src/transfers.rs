//! The transfer view (CINDER-7.4.x): one row per transfer not deleted. An
//! accepted transfer keeps its row with `accepted` and the destination
//! (Cinder 3.57) but leaves every listing and show, as Cinder soft-deletes
//! it at acceptance; a deleted one leaves the view.

use domain::transfer::TransferEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, stamp, time_at};

pub struct TransfersProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: String,
    /// The source project (Cinder 3.57 `source_project_id`).
    pub project_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Cinder 3.55.
    pub no_snapshots: bool,
    /// Cinder 3.57.
    pub accepted: bool,
    pub destination_project_id: Option<String>,
}

const COLUMNS: &str =
    "id, project_id, volume_id, name, created_at, no_snapshots, accepted, destination_project_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        volume_id: r.get(2)?,
        name: r.get(3)?,
        created_at: time_at(r, 4)?,
        no_snapshots: r.get(5)?,
        accepted: r.get(6)?,
        destination_project_id: r.get(7)?,
    })
}

impl InlineProjection for TransfersProjection {
    fn name(&self) -> &'static str {
        "transfers"
    }

    /// 2: raw times. 3: no_snapshots, accepted, destination (t17).
    fn schema_version(&self) -> u32 {
        3
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
                seq INTEGER NOT NULL,
                no_snapshots INTEGER NOT NULL,
                accepted INTEGER NOT NULL,
                destination_project_id TEXT
            );",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if !ev.stream_id.starts_with("transfer-") {
            return Ok(());
        }
        let Ok(e) = ev.decode::<TransferEvent>() else {
            return Ok(());
        };
        let id = ev
            .stream_id
            .strip_prefix("transfer-")
            .unwrap_or(&ev.stream_id);
        match e {
            TransferEvent::TransferCreated {
                transfer_id,
                volume_id,
                project_id,
                name,
                no_snapshots,
                ..
            } => {
                conn.prepare_cached(
                    "INSERT INTO transfers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, NULL)",
                )?
                .execute(params![
                    transfer_id.to_string(),
                    project_id,
                    volume_id.to_string(),
                    name,
                    stamp(&ev.recorded_at),
                    ev.position as i64,
                    no_snapshots
                ])?;
            }
            TransferEvent::TransferAccepted { to_project, .. } => {
                conn.prepare_cached(
                    "UPDATE transfers SET accepted = 1, destination_project_id = ?2 WHERE id = ?1",
                )?
                .execute(params![id, to_project])?;
            }
            TransferEvent::TransferDeleted {} => {
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

/// A transfer not yet accepted.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<TransferRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM transfers WHERE id = ?1 AND accepted = 0"
    ))?
    .query_row([id], from_row)
    .optional()
}

/// How a transfer list is ordered (Cinder 3.59 `sort`; before it, oldest
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferSort {
    CreatedAt,
    Id,
    Name,
    VolumeId,
}

impl TransferSort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created_at" => Some(Self::CreatedAt),
            "id" => Some(Self::Id),
            "name" | "display_name" => Some(Self::Name),
            "volume_id" => Some(Self::VolumeId),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::CreatedAt => "seq",
            Self::Id => "id",
            Self::Name => "COALESCE(name, '')",
            Self::VolumeId => "volume_id",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TransferQuery {
    /// None: every project (an administrator's `all_tenants`).
    pub project_id: Option<String>,
    pub sort: TransferSort,
    pub descending: bool,
    /// Rows after this transfer in the order asked (Cinder 3.59 `marker`).
    pub marker: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// Pending transfers in the order asked; ties broken by id, the same way.
/// A marker that names no visible transfer yields Ok(None).
pub fn list(conn: &Connection, q: &TransferQuery) -> rusqlite::Result<Option<Vec<TransferRow>>> {
    let dir = if q.descending { "DESC" } else { "ASC" };
    let cmp = if q.descending { "<" } else { ">" };
    let col = q.sort.column();
    if let Some(m) = &q.marker {
        let exists: bool = conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM transfers WHERE id = ?1 AND accepted = 0)",
            )?
            .query_row([m], |r| r.get(0))?;
        if !exists {
            return Ok(None);
        }
    }
    // After the marker: a row-value comparison on (key, id).
    let sql = format!(
        "SELECT {COLUMNS} FROM transfers WHERE accepted = 0 AND (?1 IS NULL OR project_id = ?1)
         AND (?4 IS NULL OR ({col}, id) {cmp} (SELECT {col}, id FROM transfers WHERE id = ?4))
         ORDER BY {col} {dir}, id {dir} LIMIT ?2 OFFSET ?3"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(
        params![q.project_id, q.limit as i64, q.offset as i64, q.marker],
        from_row,
    )?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map(Some)
}
