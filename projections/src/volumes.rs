//! The volume list/detail view: one row per live volume, every field the
//! Cinder and EVS detail bodies need.

use std::collections::BTreeMap;

use domain::VolumeEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, time, volume_event, Filter};

pub struct VolumesProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    pub status: String,
    pub availability_zone: String,
    pub volume_type: String,
    pub metadata: BTreeMap<String, String>,
    pub multiattach: bool,
    pub bootable: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub snapshot_id: Option<String>,
    /// `[{attachment_id, server_id, host_name, device, mode, attached_at}]`.
    pub attachments: Vec<serde_json::Value>,
    pub image_metadata: Option<BTreeMap<String, String>>,
    /// The log position of the volume's creation event: a number that is
    /// stable across restarts and replays (the small provider's numeric
    /// volume `id`).
    pub seq: i64,
}

const COLUMNS: &str = "id, project_id, user_id, name, description, size, status, \
    availability_zone, volume_type, metadata, multiattach, bootable, created_at, updated_at, \
    snapshot_id, attachments, image_metadata, seq";

impl VolumeRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let md: String = r.get(9)?;
        Ok(VolumeRow {
            id: r.get(0)?,
            project_id: r.get(1)?,
            user_id: r.get(2)?,
            name: r.get(3)?,
            description: r.get(4)?,
            size: r.get(5)?,
            status: r.get(6)?,
            availability_zone: r.get(7)?,
            volume_type: r.get(8)?,
            metadata: serde_json::from_str(&md).unwrap_or_default(),
            multiattach: r.get(10)?,
            bootable: r.get(11)?,
            created_at: r.get(12)?,
            updated_at: r.get(13)?,
            snapshot_id: r.get(14)?,
            attachments: serde_json::from_str(&r.get::<_, String>(15)?).unwrap_or_default(),
            image_metadata: r
                .get::<_, Option<String>>(16)?
                .and_then(|m| serde_json::from_str(&m).ok()),
            seq: r.get(17)?,
        })
    }
}

fn stream_volume_id(stream_id: &str) -> &str {
    stream_id.strip_prefix("volume-").unwrap_or(stream_id)
}

impl InlineProjection for VolumesProjection {
    fn name(&self) -> &'static str {
        "volumes"
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS volumes (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                name TEXT,
                description TEXT,
                size INTEGER NOT NULL,
                status TEXT NOT NULL,
                prev_status TEXT NOT NULL,
                availability_zone TEXT NOT NULL,
                volume_type TEXT NOT NULL,
                metadata TEXT NOT NULL,
                multiattach INTEGER NOT NULL,
                bootable INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT,
                snapshot_id TEXT,
                attachments TEXT NOT NULL DEFAULT '[]',
                image_metadata TEXT,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS volumes_by_project ON volumes(project_id, seq);
            CREATE UNIQUE INDEX IF NOT EXISTS volumes_by_seq ON volumes(seq);",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some(event) = volume_event(ev) else {
            return Ok(());
        };
        let id = stream_volume_id(&ev.stream_id);
        let now = time::resource(&ev.recorded_at);
        let set_status = |status: &str| {
            conn.execute(
                "UPDATE volumes SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, status, now],
            )
        };
        match event {
            VolumeEvent::VolumeCreateRequested {
                volume_id,
                project_id,
                user_id,
                name,
                description,
                size,
                availability_zone,
                volume_type,
                metadata,
                multiattach,
                snapshot_id,
                image_metadata,
                ..
            } => {
                conn.execute(
                    "INSERT INTO volumes (id, project_id, user_id, name, description, size, status,
                        prev_status, availability_zone, volume_type, metadata, multiattach, bootable,
                        created_at, updated_at, seq, snapshot_id, image_metadata)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'creating', 'creating', ?7, ?8, ?9, ?10, ?14, ?11, NULL, ?12, ?13, ?15)",
                    params![
                        volume_id.to_string(),
                        project_id,
                        user_id,
                        name,
                        description,
                        size,
                        availability_zone,
                        volume_type,
                        serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()),
                        multiattach,
                        now,
                        ev.position as i64,
                        snapshot_id.map(|s| s.to_string()),
                        image_metadata.is_some(),
                        image_metadata.as_ref().and_then(|m| serde_json::to_string(m).ok())
                    ],
                )?;
            }
            VolumeEvent::VolumeWorkStarted { .. } => {}
            VolumeEvent::VolumeAllocated { .. } => {
                set_status("available")?;
            }
            VolumeEvent::VolumeCreateFailed { .. } => {
                set_status("error")?;
            }
            VolumeEvent::VolumeUpdated {
                name,
                description,
                metadata,
            } => {
                let md =
                    metadata.map(|m| serde_json::to_string(&m).unwrap_or_else(|_| "{}".into()));
                conn.execute(
                    "UPDATE volumes SET name = COALESCE(?2, name),
                        description = COALESCE(?3, description),
                        metadata = COALESCE(?4, metadata), updated_at = ?5 WHERE id = ?1",
                    params![id, name, description, md, now],
                )?;
            }
            VolumeEvent::VolumeExtendRequested { .. } => {
                conn.execute(
                    "UPDATE volumes SET prev_status = status, status = 'extending', updated_at = ?2
                     WHERE id = ?1",
                    params![id, now],
                )?;
            }
            VolumeEvent::VolumeExtended { new_size } => {
                conn.execute(
                    "UPDATE volumes SET size = ?2, status = prev_status, updated_at = ?3 WHERE id = ?1",
                    params![id, new_size, now],
                )?;
            }
            VolumeEvent::VolumeExtendFailed { .. } => {
                set_status("error_extending")?;
            }
            VolumeEvent::VolumeDeleteRequested { .. } => {
                set_status("deleting")?;
            }
            VolumeEvent::VolumeDeleted {} => {
                conn.execute("DELETE FROM volumes WHERE id = ?1", params![id])?;
            }
            VolumeEvent::VolumeDeleteFailed { .. } => {
                set_status("error_deleting")?;
            }
            VolumeEvent::VolumeMetadataSet { metadata } => {
                conn.execute(
                    "UPDATE volumes SET metadata = ?2, updated_at = ?3 WHERE id = ?1",
                    params![
                        id,
                        serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()),
                        now
                    ],
                )?;
            }
            VolumeEvent::VolumeRollbackRequested { .. } => {
                set_status("rollingback")?;
            }
            VolumeEvent::VolumeRolledBack { name, .. } => {
                conn.execute(
                    "UPDATE volumes SET status = 'available', name = COALESCE(?2, name), updated_at = ?3
                     WHERE id = ?1",
                    params![id, name, now],
                )?;
            }
            VolumeEvent::VolumeRollbackFailed { .. } => {
                set_status("error_rollbacking")?;
            }
            VolumeEvent::VolumeAttached { attachment } => {
                let mut a = serde_json::to_value(&attachment).unwrap_or_default();
                a["attached_at"] = serde_json::Value::String(now.clone());
                conn.execute(
                    "UPDATE volumes SET attachments = json_insert(attachments, '$[#]', json(?2)),
                        status = 'in-use', updated_at = ?3 WHERE id = ?1",
                    params![id, a.to_string(), now],
                )?;
            }
            VolumeEvent::VolumeDetached { attachment_id } => {
                conn.execute(
                    "UPDATE volumes SET attachments = (SELECT json_group_array(json(value))
                        FROM json_each(volumes.attachments)
                        WHERE json_extract(value, '$.attachment_id') != ?2),
                        updated_at = ?3 WHERE id = ?1",
                    params![id, attachment_id.to_string(), now],
                )?;
                conn.execute(
                    "UPDATE volumes SET status = 'available'
                     WHERE id = ?1 AND json_array_length(attachments) = 0",
                    params![id],
                )?;
            }
            VolumeEvent::VolumeReserved {} => {
                conn.execute(
                    "UPDATE volumes SET status = 'attaching', updated_at = ?2
                     WHERE id = ?1 AND status = 'available'",
                    params![id, now],
                )?;
            }
            VolumeEvent::VolumeUnreserved {} => {
                set_status("available")?;
            }
            VolumeEvent::VolumeBootableSet { bootable } => {
                conn.execute(
                    "UPDATE volumes SET bootable = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, bootable, now],
                )?;
            }
            VolumeEvent::VolumeReadonlySet { readonly } => {
                conn.execute(
                    "UPDATE volumes SET metadata = json_set(metadata, '$.readonly', ?2),
                        updated_at = ?3 WHERE id = ?1",
                    params![id, domain::volume::readonly_flag(readonly), now],
                )?;
            }
            VolumeEvent::VolumeUploadStarted { .. } => {
                set_status("uploading")?;
            }
            VolumeEvent::VolumeUploadEnded { previous, .. } => {
                set_status(previous.as_str())?;
            }
            VolumeEvent::VolumeTransferStarted { .. } => {
                set_status("awaiting-transfer")?;
            }
            VolumeEvent::VolumeTransferCancelled { .. } => {
                set_status("available")?;
            }
            VolumeEvent::VolumeTransferred {
                to_project,
                to_user,
                ..
            } => {
                conn.execute(
                    "UPDATE volumes SET status = 'available', project_id = ?2, user_id = ?3,
                        updated_at = ?4 WHERE id = ?1",
                    params![id, to_project, to_user, now],
                )?;
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute("DELETE FROM volumes", []).map(|_| ())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "volumes", "id")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    Id,
    Status,
    Size,
    #[default]
    CreatedAt,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "id" => Some(SortKey::Id),
            "status" => Some(SortKey::Status),
            "size" => Some(SortKey::Size),
            "created_at" => Some(SortKey::CreatedAt),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            SortKey::Id => "id",
            SortKey::Status => "status",
            SortKey::Size => "size",
            // seq orders exactly as created_at does, without ties.
            SortKey::CreatedAt => "seq",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    Asc,
    #[default]
    Desc,
}

impl SortDir {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "asc" => Some(SortDir::Asc),
            "desc" => Some(SortDir::Desc),
            _ => None,
        }
    }
}

/// A validated list request (the adapter has checked ranges and spellings).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// None: every project (admin with `all_tenants`).
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub marker: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub sort_key: SortKey,
    pub sort_dir: SortDir,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("marker {0} not found")]
    MarkerNotFound(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<VolumeRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
        [id],
        VolumeRow::from_row,
    )
    .optional()
}

/// The live volume whose creation event is at log position `seq`.
pub fn get_by_seq(conn: &Connection, seq: i64) -> rusqlite::Result<Option<VolumeRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM volumes WHERE seq = ?1"),
        [seq],
        VolumeRow::from_row,
    )
    .optional()
}

/// One page of volumes; also says whether more remain after it.
pub fn list(conn: &Connection, q: &ListQuery) -> Result<(Vec<VolumeRow>, bool), ListError> {
    let col = q.sort_key.column();
    let (cmp, dir) = match q.sort_dir {
        SortDir::Asc => (">", "ASC"),
        SortDir::Desc => ("<", "DESC"),
    };
    let mut f = Filter::new(format!("SELECT {COLUMNS} FROM volumes"));
    f.eq("project_id", q.project_id.as_ref());
    f.eq("name", q.name.as_ref());
    f.eq("status", q.status.as_ref());
    f.eq("availability_zone", q.availability_zone.as_ref());
    for (k, v) in &q.metadata {
        let path = format!("$.\"{}\"", k.replace('"', ""));
        f.and_all(
            "json_extract(metadata, ?) = ?",
            [path.into(), v.clone().into()],
        );
    }
    if let Some(m) = &q.marker {
        let pos: Option<(rusqlite::types::Value, i64)> = conn
            .query_row(
                &format!("SELECT {col}, seq FROM volumes WHERE id = ?1"),
                [m],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((key, seq)) = pos else {
            return Err(ListError::MarkerNotFound(m.clone()));
        };
        f.and_all(
            &format!("({col} {cmp} ? OR ({col} = ? AND seq {cmp} ?))"),
            [key.clone(), key, seq.into()],
        );
    }
    Ok(f.page(
        conn,
        &format!("{col} {dir}, seq {dir}"),
        q.limit,
        q.offset,
        VolumeRow::from_row,
    )?)
}

/// The devices a server's attachments hold, across all live volumes (for
/// attaching at the next free device).
pub fn devices_of_server(conn: &Connection, server_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT json_extract(a.value, '$.device') FROM volumes, json_each(volumes.attachments) a
         WHERE json_extract(a.value, '$.server_id') = ?1",
    )?;
    let rows = stmt.query_map([server_id], |r| r.get::<_, Option<String>>(0))?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}
