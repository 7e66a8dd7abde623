//! The image catalog view (Glance v2-shaped): one row per image not
//! deleted. Progress of a running copy is not in the log (the log records
//! start and end, not every percent); the API asks the executor for it.

use chrono::{DateTime, Utc};
use domain::image::{ImageEvent, ImageSource, ImageStatus};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::{dump_table, enum_at, stamp, time_at, Filter};

pub struct ImagesProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub disk_format: String,
    pub container_format: String,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub min_disk: i64,
    pub checksum_sha256: Option<String>,
    pub source_volume_id: Option<String>,
    pub source_snapshot_id: Option<String>,
    pub os_type: Option<String>,
    pub fail_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who sees an image besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }
}

const COLUMNS: &str = "id, project_id, name, status, visibility, disk_format, container_format, \
    size, virtual_size, min_disk, checksum_sha256, source_volume_id, source_snapshot_id, os_type, \
    fail_reason, created_at, updated_at, protected";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        status: enum_at(r, 3)?,
        visibility: enum_at(r, 4)?,
        disk_format: r.get(5)?,
        container_format: r.get(6)?,
        size: r.get(7)?,
        virtual_size: r.get(8)?,
        min_disk: r.get(9)?,
        checksum_sha256: r.get(10)?,
        source_volume_id: r.get(11)?,
        source_snapshot_id: r.get(12)?,
        os_type: r.get(13)?,
        fail_reason: r.get(14)?,
        created_at: time_at(r, 15)?,
        updated_at: time_at(r, 16)?,
        protected: r.get(17)?,
    })
}

impl InlineProjection for ImagesProjection {
    fn name(&self) -> &'static str {
        "images"
    }

    /// 2: raw times; 3: `protected`.
    fn schema_version(&self) -> u32 {
        3
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS images;")
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS images (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                visibility TEXT NOT NULL,
                disk_format TEXT NOT NULL,
                container_format TEXT NOT NULL,
                size INTEGER,
                virtual_size INTEGER,
                min_disk INTEGER NOT NULL,
                checksum_sha256 TEXT,
                source_volume_id TEXT,
                source_snapshot_id TEXT,
                os_type TEXT,
                fail_reason TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                seq INTEGER NOT NULL,
                protected INTEGER NOT NULL DEFAULT 0
            );",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if !ev.stream_id.starts_with("image-") {
            return Ok(());
        }
        let Ok(e) = ev.decode::<ImageEvent>() else {
            return Ok(());
        };
        let id = ev.stream_id.strip_prefix("image-").unwrap_or(&ev.stream_id);
        let now = stamp(&ev.recorded_at);
        match e {
            ImageEvent::ImageCreateRequested {
                image_id,
                project_id,
                name,
                disk_format,
                container_format,
                visibility,
                protected,
                min_disk,
                source,
                os_type,
            } => {
                let (vol, snap) = match source {
                    ImageSource::Volume { volume_id } => (Some(volume_id.to_string()), None),
                    ImageSource::Snapshot { snapshot_id } => (None, Some(snapshot_id.to_string())),
                    ImageSource::Upload => (None, None),
                };
                conn.prepare_cached(
                    "INSERT INTO images VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, NULL, NULL, ?7,
                        NULL, ?8, ?9, ?10, NULL, ?11, ?11, ?12, ?13)",
                )?
                .execute(params![
                    image_id.to_string(),
                    project_id,
                    name,
                    visibility,
                    disk_format,
                    container_format,
                    min_disk,
                    vol,
                    snap,
                    os_type,
                    now,
                    ev.position as i64,
                    protected
                ])?;
            }
            ImageEvent::ImageSaving {} => {
                conn.prepare_cached(
                    "UPDATE images SET status = 'saving', updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![id, now])?;
            }
            ImageEvent::ImageActive {
                size,
                virtual_size,
                checksum_sha256,
                min_disk,
            } => {
                conn.prepare_cached(
                    "UPDATE images SET status = 'active', size = ?2, virtual_size = ?3,
                        checksum_sha256 = ?4, min_disk = ?5, updated_at = ?6 WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    size as i64,
                    virtual_size as i64,
                    checksum_sha256,
                    min_disk,
                    now
                ])?;
            }
            ImageEvent::ImageKilled { reason } => {
                conn.prepare_cached("UPDATE images SET status = 'killed', fail_reason = ?2, updated_at = ?3 WHERE id = ?1")?.execute(params![id, reason, now],
                )?;
            }
            ImageEvent::ImageProtectedSet { protected } => {
                conn.prepare_cached(
                    "UPDATE images SET protected = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id, protected, now])?;
            }
            ImageEvent::ImageDeleted {} => {
                conn.prepare_cached("DELETE FROM images WHERE id = ?1")?
                    .execute(params![id])?;
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("DELETE FROM images")?
            .execute([])
            .map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "images", "id")
    }
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<ImageRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM images WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    /// The caller's project: it sees its own images and public ones.
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub visibility: Option<String>,
    pub disk_format: Option<String>,
    pub marker: Option<String>,
    pub limit: usize,
}

/// One page, newest first, and whether more remain; None: unknown marker.
pub fn list(conn: &Connection, q: &ImageQuery) -> rusqlite::Result<Option<(Vec<ImageRow>, bool)>> {
    let mut f = Filter::new(format!("SELECT {COLUMNS} FROM images"));
    if let Some(p) = &q.project_id {
        f.and("(project_id = ? OR visibility = 'public')", p.clone());
    }
    f.eq("name", q.name.as_ref());
    f.eq("status", q.status.as_ref());
    f.eq("visibility", q.visibility.as_ref());
    f.eq("disk_format", q.disk_format.as_ref());
    if let Some(m) = &q.marker {
        let seq: Option<i64> = conn
            .prepare_cached("SELECT seq FROM images WHERE id = ?1")?
            .query_row([m], |r| r.get(0))
            .optional()?;
        let Some(seq) = seq else {
            return Ok(None);
        };
        f.and("seq < ?", seq);
    }
    f.page(conn, "seq DESC", q.limit, 0, from_row).map(Some)
}
