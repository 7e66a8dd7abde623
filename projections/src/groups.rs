//! The generic volume groups views (Cinder 3.11–3.58, issue 17): folds of
//! the `group_type-<id>` (types and their specs), `group-<id>` (groups
//! and their member volumes) and `group_snapshot-<id>` (group snapshots
//! and their member snapshots) streams, kept inline like every view and
//! rebuilt by a replay. A deleted type, group or group snapshot leaves the
//! view. A volume's `group_id` and a snapshot's `group_snapshot_id` are
//! read here (`group_of_volume`, `group_snapshot_of`).
//!
//! The status shown for a group or group snapshot that follows its
//! members is the domain's (`domain::group::shown`,
//! `domain::group_snapshot::shown`) over the members' statuses as the
//! volumes and snapshots views have them at read time.

use std::collections::BTreeMap;

use domain::group::{GroupEvent, GroupStatus};
use domain::group_snapshot::{GroupSnapshotEvent, GroupSnapshotStatus};
use domain::group_type::GroupTypeEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, stamp, time_at};

pub struct GroupsProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTypeRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub group_specs: BTreeMap<String, String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Creation position: the order of "created_at" without ties.
    pub seq: i64,
}

fn decode<E: serde::de::DeserializeOwned>(ev: &RecordedEvent) -> Option<E> {
    ev.decode().ok()
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn json_col<T: serde::de::DeserializeOwned>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|e| crate::conversion(i, e))
}

impl InlineProjection for GroupsProjection {
    fn name(&self) -> &'static str {
        "groups"
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "DROP TABLE IF EXISTS group_types; DROP TABLE IF EXISTS groups;
             DROP TABLE IF EXISTS group_volumes; DROP TABLE IF EXISTS group_snapshots;
             DROP TABLE IF EXISTS group_snapshot_members;",
        )
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS group_types (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                description TEXT,
                is_public INTEGER NOT NULL,
                group_specs TEXT NOT NULL,
                created_at TEXT NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS group_types_by_name ON group_types(name);
            CREATE TABLE IF NOT EXISTS groups (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                name TEXT,
                description TEXT,
                group_type_id TEXT NOT NULL,
                volume_types TEXT NOT NULL,
                availability_zone TEXT NOT NULL,
                status TEXT NOT NULL,
                group_snapshot_id TEXT,
                source_group_id TEXT,
                pending TEXT NOT NULL,
                created_at TEXT NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS groups_by_type ON groups(group_type_id);
            CREATE TABLE IF NOT EXISTS group_volumes (
                volume_id TEXT PRIMARY KEY,
                group_id TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS group_volumes_by_group ON group_volumes(group_id);
            CREATE TABLE IF NOT EXISTS group_snapshots (
                id TEXT PRIMARY KEY,
                group_id TEXT NOT NULL,
                project_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                name TEXT,
                description TEXT,
                group_type_id TEXT NOT NULL,
                status TEXT NOT NULL,
                follows_members INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS group_snapshots_by_group ON group_snapshots(group_id);
            CREATE TABLE IF NOT EXISTS group_snapshot_members (
                snapshot_id TEXT PRIMARY KEY,
                group_snapshot_id TEXT NOT NULL,
                volume_id TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS group_snapshot_members_by_set
                ON group_snapshot_members(group_snapshot_id);",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if let Some(id) = ev.stream_id.strip_prefix("group_type-") {
            if let Some(e) = decode::<GroupTypeEvent>(ev) {
                apply_type(conn, ev, id, e)?;
            }
        } else if let Some(id) = ev.stream_id.strip_prefix("group_snapshot-") {
            if let Some(e) = decode::<GroupSnapshotEvent>(ev) {
                apply_group_snapshot(conn, ev, id, e)?;
            }
        } else if let Some(id) = ev.stream_id.strip_prefix("group-") {
            if let Some(e) = decode::<GroupEvent>(ev) {
                apply_group(conn, ev, id, e)?;
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "DELETE FROM group_types; DELETE FROM groups; DELETE FROM group_volumes;
             DELETE FROM group_snapshots; DELETE FROM group_snapshot_members;",
        )
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut out = dump_table(conn, "group_types", "id")?;
        out.extend(dump_table(conn, "groups", "id")?);
        out.extend(dump_table(conn, "group_volumes", "volume_id")?);
        out.extend(dump_table(conn, "group_snapshots", "id")?);
        out.extend(dump_table(conn, "group_snapshot_members", "snapshot_id")?);
        Ok(out)
    }
}

fn apply_type(
    conn: &Connection,
    ev: &RecordedEvent,
    id: &str,
    e: GroupTypeEvent,
) -> rusqlite::Result<()> {
    use GroupTypeEvent as E;
    match e {
        E::GroupTypeCreated {
            name,
            description,
            is_public,
            group_specs,
            ..
        } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO group_types VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                name,
                description,
                is_public,
                json_text(&group_specs),
                stamp(&ev.recorded_at),
                ev.position as i64
            ])?;
        }
        E::GroupTypeUpdated {
            name,
            description,
            is_public,
        } => {
            conn.prepare_cached(
                "UPDATE group_types SET name = COALESCE(?2, name),
                    description = COALESCE(?3, description),
                    is_public = COALESCE(?4, is_public) WHERE id = ?1",
            )?
            .execute(params![id, name, description, is_public])?;
        }
        E::GroupTypeDeleted {} => {
            conn.prepare_cached("DELETE FROM group_types WHERE id = ?1")?
                .execute([id])?;
        }
        E::GroupTypeSpecsSet { specs } => {
            let mut all = group_type(conn, id)?
                .map(|t| t.group_specs)
                .unwrap_or_default();
            all.extend(specs);
            set_specs(conn, id, &all)?;
        }
        E::GroupTypeSpecDeleted { key } => {
            let mut all = group_type(conn, id)?
                .map(|t| t.group_specs)
                .unwrap_or_default();
            all.remove(&key);
            set_specs(conn, id, &all)?;
        }
    }
    Ok(())
}

fn set_specs(
    conn: &Connection,
    id: &str,
    specs: &BTreeMap<String, String>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE group_types SET group_specs = ?2 WHERE id = ?1")?
        .execute(params![id, json_text(specs)])?;
    Ok(())
}

const TYPE_COLUMNS: &str = "id, name, description, is_public, group_specs, created_at, seq";

fn type_row(r: &Row<'_>) -> rusqlite::Result<GroupTypeRow> {
    Ok(GroupTypeRow {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        is_public: r.get(3)?,
        group_specs: json_col(r, 4)?,
        created_at: time_at(r, 5)?,
        seq: r.get(6)?,
    })
}

/// Every live group type, in creation order.
pub fn group_types(conn: &Connection) -> rusqlite::Result<Vec<GroupTypeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {TYPE_COLUMNS} FROM group_types ORDER BY seq"
    ))?
    .query_map([], type_row)?
    .collect()
}

/// The live group type with this id.
pub fn group_type(conn: &Connection, id: &str) -> rusqlite::Result<Option<GroupTypeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {TYPE_COLUMNS} FROM group_types WHERE id = ?1"
    ))?
    .query_row([id], type_row)
    .optional()
}

/// The live group type with this name.
pub fn group_type_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<GroupTypeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {TYPE_COLUMNS} FROM group_types WHERE name = ?1"
    ))?
    .query_row([name], type_row)
    .optional()
}

fn apply_group(
    conn: &Connection,
    ev: &RecordedEvent,
    id: &str,
    e: GroupEvent,
) -> rusqlite::Result<()> {
    use GroupEvent as E;
    match e {
        E::GroupCreated {
            project_id,
            user_id,
            name,
            description,
            group_type_id,
            volume_type_ids,
            availability_zone,
            status,
            group_snapshot_id,
            source_group_id,
            volumes,
            ..
        } => {
            let pending: Vec<String> = if status == GroupStatus::Creating {
                volumes.iter().map(|v| v.to_string()).collect()
            } else {
                Vec::new()
            };
            conn.prepare_cached(
                "INSERT OR IGNORE INTO groups VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                id,
                project_id,
                user_id,
                name,
                description,
                group_type_id.to_string(),
                json_text(&volume_type_ids),
                availability_zone,
                status.as_str(),
                group_snapshot_id.map(|g| g.to_string()),
                source_group_id.map(|g| g.to_string()),
                json_text(&pending),
                stamp(&ev.recorded_at),
                ev.position as i64
            ])?;
            add_members(conn, id, &volumes)?;
        }
        E::GroupUpdated { name, description } => {
            conn.prepare_cached(
                "UPDATE groups SET name = COALESCE(?2, name),
                    description = COALESCE(?3, description) WHERE id = ?1",
            )?
            .execute(params![id, name, description])?;
        }
        E::GroupVolumesAdded { volume_ids } => add_members(conn, id, &volume_ids)?,
        E::GroupVolumesRemoved { volume_ids } => {
            let mut pending: Vec<String> = conn
                .prepare_cached("SELECT pending FROM groups WHERE id = ?1")?
                .query_row([id], |r| json_col(r, 0))
                .optional()?
                .unwrap_or_default();
            for v in &volume_ids {
                let v = v.to_string();
                pending.retain(|p| *p != v);
                conn.prepare_cached(
                    "DELETE FROM group_volumes WHERE volume_id = ?1 AND group_id = ?2",
                )?
                .execute(params![v, id])?;
            }
            conn.prepare_cached("UPDATE groups SET pending = ?2 WHERE id = ?1")?
                .execute(params![id, json_text(&pending)])?;
        }
        E::GroupStatusReset { status } => {
            conn.prepare_cached("UPDATE groups SET status = ?2, pending = '[]' WHERE id = ?1")?
                .execute(params![id, status.as_str()])?;
        }
        E::GroupDeleted { .. } => {
            conn.prepare_cached("DELETE FROM groups WHERE id = ?1")?
                .execute([id])?;
            conn.prepare_cached("DELETE FROM group_volumes WHERE group_id = ?1")?
                .execute([id])?;
        }
    }
    Ok(())
}

fn add_members(conn: &Connection, group: &str, volumes: &[uuid::Uuid]) -> rusqlite::Result<()> {
    for v in volumes {
        conn.prepare_cached("INSERT OR REPLACE INTO group_volumes VALUES (?1, ?2)")?
            .execute(params![v.to_string(), group])?;
    }
    Ok(())
}

fn apply_group_snapshot(
    conn: &Connection,
    ev: &RecordedEvent,
    id: &str,
    e: GroupSnapshotEvent,
) -> rusqlite::Result<()> {
    use GroupSnapshotEvent as E;
    match e {
        E::GroupSnapshotCreated {
            group_id,
            project_id,
            user_id,
            name,
            description,
            group_type_id,
            members,
            ..
        } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO group_snapshots VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?10)",
            )?
            .execute(params![
                id,
                group_id.to_string(),
                project_id,
                user_id,
                name,
                description,
                group_type_id.to_string(),
                GroupSnapshotStatus::Creating.as_str(),
                stamp(&ev.recorded_at),
                ev.position as i64
            ])?;
            for m in members {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO group_snapshot_members VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    m.snapshot_id.to_string(),
                    id,
                    m.volume_id.to_string()
                ])?;
            }
        }
        E::GroupSnapshotStatusReset { status } => {
            conn.prepare_cached(
                "UPDATE group_snapshots SET status = ?2, follows_members = 0 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str()])?;
        }
        E::GroupSnapshotDeleted { .. } => {
            conn.prepare_cached("DELETE FROM group_snapshots WHERE id = ?1")?
                .execute([id])?;
            conn.prepare_cached("DELETE FROM group_snapshot_members WHERE group_snapshot_id = ?1")?
                .execute([id])?;
        }
    }
    Ok(())
}

/// A group as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_type_id: String,
    pub volume_types: Vec<String>,
    pub availability_zone: String,
    /// As shown: the domain's rule over the recorded status and members.
    pub status: GroupStatus,
    pub group_snapshot_id: Option<String>,
    pub source_group_id: Option<String>,
    /// Member volumes, in id order.
    pub volumes: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub seq: i64,
}

const GROUP_COLUMNS: &str = "id, project_id, user_id, name, description, group_type_id,
    volume_types, availability_zone, status, group_snapshot_id, source_group_id, pending,
    created_at, seq";

/// One volume's status in the volumes view (None: gone).
fn volume_status(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT status FROM volumes WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

fn snapshot_status(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT status FROM snapshots WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

fn group_row(conn: &Connection, r: &Row<'_>) -> rusqlite::Result<GroupRow> {
    let id: String = r.get(0)?;
    let recorded: GroupStatus = crate::enum_at(r, 8)?;
    let pending: Vec<String> = json_col(r, 11)?;
    let mut statuses = Vec::new();
    for p in &pending {
        if let Some(s) = volume_status(conn, p)? {
            statuses.push(s);
        }
    }
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
    let volumes = conn
        .prepare_cached(
            "SELECT volume_id FROM group_volumes WHERE group_id = ?1 ORDER BY volume_id",
        )?
        .query_map([&id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(GroupRow {
        project_id: r.get(1)?,
        user_id: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        group_type_id: r.get(5)?,
        volume_types: json_col(r, 6)?,
        availability_zone: r.get(7)?,
        status: domain::group::shown(recorded, !pending.is_empty(), &statuses),
        group_snapshot_id: r.get(9)?,
        source_group_id: r.get(10)?,
        volumes,
        created_at: time_at(r, 12)?,
        seq: r.get(13)?,
        id,
    })
}

/// The live group `id`.
pub fn group(conn: &Connection, id: &str) -> rusqlite::Result<Option<GroupRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(group_row(conn, r)?)),
        None => Ok(None),
    }
}

/// Live groups, of one project (None: every project), in creation order.
pub fn groups(conn: &Connection, project: Option<&str>) -> rusqlite::Result<Vec<GroupRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups WHERE (?1 IS NULL OR project_id = ?1) ORDER BY seq"
    ))?;
    let mut rows = stmt.query([project])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(group_row(conn, r)?);
    }
    Ok(out)
}

/// How many live groups a project has (the `groups` quota's usage).
pub fn groups_in_use(conn: &Connection, project: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM groups WHERE project_id = ?1")?
        .query_row([project], |r| r.get(0))
}

/// Whether a live group is of this group type (Cinder's GroupTypeInUse).
pub fn group_type_in_use(conn: &Connection, type_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM groups WHERE group_type_id = ?1)")?
        .query_row([type_id], |r| r.get(0))
}

/// Whether a live group lists this volume type (a type in use by groups).
pub fn volume_type_in_groups(conn: &Connection, volume_type_id: &str) -> rusqlite::Result<bool> {
    let needle = format!("\"{volume_type_id}\"");
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM groups WHERE instr(volume_types, ?1) > 0)")?
        .query_row([needle], |r| r.get(0))
}

/// The group a volume is a member of (its `group_id`).
pub fn group_of_volume(conn: &Connection, volume_id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT group_id FROM group_volumes WHERE volume_id = ?1")?
        .query_row([volume_id], |r| r.get(0))
        .optional()
}

/// Whether a group is the source of a group still being created from it,
/// or has group snapshots (Cinder refuses to delete it then).
pub fn group_is_source(conn: &Connection, group_id: &str) -> rusqlite::Result<bool> {
    let sources: Vec<String> = conn
        .prepare_cached("SELECT id FROM groups WHERE source_group_id = ?1 AND status = 'creating'")?
        .query_map([group_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for s in sources {
        if group(conn, &s)?.is_some_and(|g| g.status == GroupStatus::Creating) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a group snapshot is the source of a group still being created.
pub fn group_snapshot_is_source(conn: &Connection, gs_id: &str) -> rusqlite::Result<bool> {
    let sources: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM groups WHERE group_snapshot_id = ?1 AND status = 'creating'",
        )?
        .query_map([gs_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for s in sources {
        if group(conn, &s)?.is_some_and(|g| g.status == GroupStatus::Creating) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A group snapshot as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshotRow {
    pub id: String,
    pub group_id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_type_id: String,
    /// As shown: the domain's rule over the recorded status and members.
    pub status: GroupSnapshotStatus,
    /// (snapshot id, volume id), in snapshot id order.
    pub members: Vec<(String, String)>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub seq: i64,
}

const GS_COLUMNS: &str = "id, group_id, project_id, user_id, name, description, group_type_id,
    status, follows_members, created_at, seq";

fn gs_row(conn: &Connection, r: &Row<'_>) -> rusqlite::Result<GroupSnapshotRow> {
    let id: String = r.get(0)?;
    let recorded: GroupSnapshotStatus = crate::enum_at(r, 7)?;
    let follows: bool = r.get(8)?;
    let members = members_of(conn, &id)?;
    let mut statuses = Vec::new();
    for (s, _) in &members {
        // A member snapshot gone from the view no longer holds the set up.
        if let Some(st) = snapshot_status(conn, s)? {
            statuses.push(st);
        }
    }
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
    Ok(GroupSnapshotRow {
        group_id: r.get(1)?,
        project_id: r.get(2)?,
        user_id: r.get(3)?,
        name: r.get(4)?,
        description: r.get(5)?,
        group_type_id: r.get(6)?,
        status: domain::group_snapshot::shown(recorded, follows, &statuses),
        members,
        created_at: time_at(r, 9)?,
        seq: r.get(10)?,
        id,
    })
}

fn members_of(conn: &Connection, gs_id: &str) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached(
        "SELECT snapshot_id, volume_id FROM group_snapshot_members
         WHERE group_snapshot_id = ?1 ORDER BY snapshot_id",
    )?
    .query_map([gs_id], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// The live group snapshot `id`.
pub fn group_snapshot(conn: &Connection, id: &str) -> rusqlite::Result<Option<GroupSnapshotRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {GS_COLUMNS} FROM group_snapshots WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(gs_row(conn, r)?)),
        None => Ok(None),
    }
}

/// Live group snapshots, of one project (None: every project), in
/// creation order.
pub fn group_snapshots(
    conn: &Connection,
    project: Option<&str>,
) -> rusqlite::Result<Vec<GroupSnapshotRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {GS_COLUMNS} FROM group_snapshots WHERE (?1 IS NULL OR project_id = ?1) ORDER BY seq"
    ))?;
    let mut rows = stmt.query([project])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(gs_row(conn, r)?);
    }
    Ok(out)
}

/// Whether a group has live group snapshots.
pub fn group_has_snapshots(conn: &Connection, group_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM group_snapshots WHERE group_id = ?1)")?
        .query_row([group_id], |r| r.get(0))
}

/// The group snapshot a snapshot belongs to (its `group_snapshot_id`).
pub fn group_snapshot_of(conn: &Connection, snapshot_id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT group_snapshot_id FROM group_snapshot_members WHERE snapshot_id = ?1",
    )?
    .query_row([snapshot_id], |r| r.get(0))
    .optional()
}
