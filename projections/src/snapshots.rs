//! The snapshot list/detail view (CINDER-7.3.x).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{Aggregate, SnapshotAggregate, SnapshotEvent, SnapshotState, SnapshotStatus};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{
    audit_status, dump_table, enum_at, load_state, opt_time_at, save_state, snapshot_event, stamp,
    time_at, Filter,
};

/// The domain's folded `SnapshotState` per snapshot, as JSON.
const STATES: &str = "snapshot_states";

pub struct SnapshotsProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: String,
    pub project_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: SnapshotStatus,
    pub size: i64,
    pub metadata: BTreeMap<String, String>,
    pub progress: String,
    pub volume_type: String,
    pub availability_zone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, project_id, volume_id, name, description, status, size, metadata, \
    progress, volume_type, availability_zone, created_at, updated_at";

impl SnapshotRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let md: String = r.get(7)?;
        Ok(SnapshotRow {
            id: r.get(0)?,
            project_id: r.get(1)?,
            volume_id: r.get(2)?,
            name: r.get(3)?,
            description: r.get(4)?,
            status: enum_at(r, 5)?,
            size: r.get(6)?,
            metadata: serde_json::from_str(&md).unwrap_or_default(),
            progress: r.get(8)?,
            volume_type: r.get(9)?,
            availability_zone: r.get(10)?,
            created_at: time_at(r, 11)?,
            updated_at: opt_time_at(r, 12)?,
        })
    }
}

impl InlineProjection for SnapshotsProjection {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS snapshots (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                volume_id TEXT NOT NULL,
                name TEXT,
                description TEXT,
                status TEXT NOT NULL,
                size INTEGER NOT NULL,
                metadata TEXT NOT NULL,
                progress TEXT NOT NULL,
                volume_type TEXT NOT NULL,
                availability_zone TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS snapshots_by_project ON snapshots(project_id, seq);
            CREATE INDEX IF NOT EXISTS snapshots_by_volume ON snapshots(volume_id);
            CREATE TABLE IF NOT EXISTS snapshot_states (id TEXT PRIMARY KEY, state TEXT NOT NULL);",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some(event) = snapshot_event(ev) else {
            return Ok(());
        };
        let id = ev.stream_id.trim_start_matches("snapshot-");
        let now = stamp(&ev.recorded_at);
        // The status machine is the domain's (see volumes.rs).
        let before: SnapshotState = load_state(conn, STATES, id)?;
        let after = SnapshotAggregate::evolve(before, &event);
        save_state(conn, STATES, id, &after)?;
        match &event {
            SnapshotEvent::SnapshotCreateRequested {
                snapshot_id,
                volume_id,
                project_id,
                name,
                description,
                metadata,
                size,
                volume_type,
                availability_zone,
                ..
            } => {
                conn.execute(
                    "INSERT INTO snapshots (id, project_id, volume_id, name, description, status,
                        size, metadata, progress, volume_type, availability_zone, created_at,
                        updated_at, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'creating', ?6, ?7, '0%', ?8, ?9, ?10, ?10, ?11)",
                    params![
                        snapshot_id.to_string(),
                        project_id,
                        volume_id.to_string(),
                        name,
                        description,
                        size,
                        serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()),
                        volume_type,
                        availability_zone,
                        now,
                        ev.position as i64
                    ],
                )?;
                return Ok(());
            }
            SnapshotEvent::SnapshotWorkStarted { .. } => return Ok(()),
            SnapshotEvent::SnapshotCreated {} => {
                conn.execute(
                    "UPDATE snapshots SET progress = '100%' WHERE id = ?1",
                    params![id],
                )?;
            }
            SnapshotEvent::SnapshotUpdated { name, description } => {
                conn.execute(
                    "UPDATE snapshots SET name = COALESCE(?2, name),
                        description = COALESCE(?3, description) WHERE id = ?1",
                    params![id, name, description],
                )?;
            }
            // The view no longer shows it; the file may outlive it while
            // clones depend on it (the backend's business).
            SnapshotEvent::SnapshotDeleted {} => {
                conn.execute("DELETE FROM snapshots WHERE id = ?1", params![id])?;
                return Ok(());
            }
            _ => {}
        }
        if let Some(s) = after.snapshot.as_ref() {
            conn.execute(
                "UPDATE snapshots SET status = ?2, metadata = ?3, updated_at = ?4 WHERE id = ?1",
                params![
                    id,
                    s.status.as_str(),
                    serde_json::to_string(&s.metadata).unwrap_or_else(|_| "{}".into()),
                    now
                ],
            )?;
        }
        Ok(())
    }

    /// Each row's status is the decider's fold of the snapshot's stream.
    fn audit(&self, conn: &Connection) -> rusqlite::Result<Option<String>> {
        audit_status::<SnapshotAggregate>(conn, "snapshot-", "snapshots", |s| {
            s.snapshot
                .as_ref()
                .filter(|_| !s.deleted)
                .map(|v| v.status.as_str())
        })
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DELETE FROM snapshots; DELETE FROM snapshot_states;")
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut rows = dump_table(conn, "snapshots", "id")?;
        rows.extend(dump_table(conn, STATES, "id")?);
        Ok(rows)
    }
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<SnapshotRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM snapshots WHERE id = ?1"),
        [id],
        SnapshotRow::from_row,
    )
    .optional()
}

/// Snapshots of `volume_id` that are not already being deleted.
pub fn dependents_of(conn: &Connection, volume_id: &str) -> rusqlite::Result<Vec<SnapshotRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM snapshots WHERE volume_id = ?1 AND status != 'deleting' ORDER BY seq"
    ))?;
    let rows = stmt.query_map([volume_id], SnapshotRow::from_row)?;
    rows.collect()
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotQuery {
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub volume_id: Option<String>,
    pub marker: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// One page, newest first, and whether more remain. None: unknown marker.
pub fn list(
    conn: &Connection,
    q: &SnapshotQuery,
) -> rusqlite::Result<Option<(Vec<SnapshotRow>, bool)>> {
    let mut f = Filter::new(format!("SELECT {COLUMNS} FROM snapshots"));
    f.eq("project_id", q.project_id.as_ref());
    f.eq("name", q.name.as_ref());
    f.eq("status", q.status.as_ref());
    f.eq("volume_id", q.volume_id.as_ref());
    if let Some(m) = &q.marker {
        let seq: Option<i64> = conn
            .query_row("SELECT seq FROM snapshots WHERE id = ?1", [m], |r| r.get(0))
            .optional()?;
        let Some(seq) = seq else {
            return Ok(None);
        };
        f.and("seq < ?", seq);
    }
    f.page(conn, "seq DESC", q.limit, q.offset, SnapshotRow::from_row)
        .map(Some)
}
