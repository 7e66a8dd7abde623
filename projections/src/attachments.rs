//! The attachment view (Cinder 3.27 `/attachments`): one row per
//! attachment record of a live volume, reserved, attaching or attached.
//! The records of os-attach show here too, as Cinder's do. The project is
//! the volume's (joined at read), so a transfer moves them with it.

use chrono::{DateTime, Utc};
use domain::volume::AttachMode;
use domain::VolumeEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, opt_time_at, stamp, volume_event};

pub struct AttachmentsProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentView {
    pub id: String,
    pub volume_id: String,
    pub project_id: String,
    pub instance: Option<String>,
    /// reserved, attaching or attached.
    pub status: String,
    /// rw, ro or Cinder's "null" (none asked yet).
    pub attach_mode: String,
    pub attached_at: Option<DateTime<Utc>>,
    /// A connector was given: the record has connection info.
    pub connected: bool,
}

fn mode(m: Option<AttachMode>) -> &'static str {
    match m {
        None => "null",
        Some(AttachMode::Rw) => "rw",
        Some(AttachMode::Ro) => "ro",
    }
}

const SELECT: &str = "SELECT a.id, a.volume_id, v.project_id, a.instance, a.status, \
    a.attach_mode, a.attached_at, a.connected FROM attachments a JOIN volumes v ON v.id = a.volume_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AttachmentView> {
    Ok(AttachmentView {
        id: r.get(0)?,
        volume_id: r.get(1)?,
        project_id: r.get(2)?,
        instance: r.get(3)?,
        status: r.get(4)?,
        attach_mode: r.get(5)?,
        attached_at: opt_time_at(r, 6)?,
        connected: r.get(7)?,
    })
}

impl InlineProjection for AttachmentsProjection {
    fn name(&self) -> &'static str {
        "attachments"
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS attachments;")
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS attachments (
                id TEXT PRIMARY KEY,
                volume_id TEXT NOT NULL,
                instance TEXT,
                status TEXT NOT NULL,
                attach_mode TEXT NOT NULL,
                attached_at TEXT,
                connected INTEGER NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS attachments_volume ON attachments (volume_id);",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some(e) = volume_event(ev) else {
            return Ok(());
        };
        let volume_id = ev
            .stream_id
            .strip_prefix("volume-")
            .unwrap_or(&ev.stream_id);
        let now = || stamp(&ev.recorded_at);
        match &*e {
            VolumeEvent::AttachmentReserved {
                attachment_id,
                instance_uuid,
                attach_mode,
            } => {
                conn.prepare_cached(
                    "INSERT INTO attachments VALUES (?1, ?2, ?3, 'reserved', ?4, NULL, 0, ?5)",
                )?
                .execute(params![
                    attachment_id.to_string(),
                    volume_id,
                    instance_uuid,
                    mode(*attach_mode),
                    ev.position as i64
                ])?;
            }
            // Cinder's volume_attached(mark_attached=False): the attach
            // time and mode are set when the connection is made.
            VolumeEvent::AttachmentConnected {
                attachment_id,
                connection,
            } => {
                conn.prepare_cached(
                    "UPDATE attachments SET status = 'attaching', attach_mode = ?2,
                        attached_at = ?3, connected = 1 WHERE id = ?1",
                )?
                .execute(params![
                    attachment_id.to_string(),
                    mode(Some(connection.mode)),
                    now()
                ])?;
            }
            VolumeEvent::VolumeAttached { attachment } => {
                let id = attachment.attachment_id.to_string();
                let m = mode(Some(attachment.mode));
                let n = conn
                    .prepare_cached(
                        "UPDATE attachments SET status = 'attached', attach_mode = ?2,
                            attached_at = COALESCE(attached_at, ?3) WHERE id = ?1",
                    )?
                    .execute(params![id, m, now()])?;
                if n == 0 {
                    // os-attach: a record made attached.
                    conn.prepare_cached(
                        "INSERT INTO attachments VALUES (?1, ?2, ?3, 'attached', ?4, ?5, 0, ?6)",
                    )?
                    .execute(params![
                        id,
                        volume_id,
                        attachment.server_id,
                        m,
                        now(),
                        ev.position as i64
                    ])?;
                }
            }
            VolumeEvent::VolumeDetached { attachment_id } => {
                conn.prepare_cached("DELETE FROM attachments WHERE id = ?1")?
                    .execute(params![attachment_id.to_string()])?;
            }
            VolumeEvent::VolumeDeleted {} => {
                conn.prepare_cached("DELETE FROM attachments WHERE volume_id = ?1")?
                    .execute(params![volume_id])?;
            }
            _ => {}
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM attachments")?
            .execute([])
            .map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "attachments", "id")
    }
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<AttachmentView>> {
    conn.prepare_cached(&format!("{SELECT} WHERE a.id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The filters of Cinder's attachment list (`allowed_filters`).
#[derive(Debug, Clone, Default)]
pub struct AttachmentQuery {
    /// None: every project (an administrator's `all_tenants`).
    pub project_id: Option<String>,
    pub volume_id: Option<String>,
    pub instance: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// Newest first, as Cinder's default sort (created_at desc).
pub fn list(conn: &Connection, q: &AttachmentQuery) -> rusqlite::Result<Vec<AttachmentView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE (?1 IS NULL OR v.project_id = ?1) AND (?2 IS NULL OR a.volume_id = ?2)
            AND (?3 IS NULL OR a.instance = ?3) AND (?4 IS NULL OR a.status = ?4)
         ORDER BY a.seq DESC LIMIT ?5 OFFSET ?6"
    ))?;
    let rows = stmt.query_map(
        params![
            q.project_id,
            q.volume_id,
            q.instance,
            q.status,
            q.limit as i64,
            q.offset as i64
        ],
        from_row,
    )?;
    rows.collect()
}

/// The records of one volume, newest first (attachment-delete's answer).
pub fn of_volume(conn: &Connection, volume_id: &str) -> rusqlite::Result<Vec<AttachmentView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE a.volume_id = ?1 ORDER BY a.seq DESC"
    ))?;
    let rows = stmt.query_map([volume_id], from_row)?;
    rows.collect()
}
