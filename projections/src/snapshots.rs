//! The snapshot list/detail view (CINDER-7.3.x).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{
    Aggregate, SnapshotAggregate, SnapshotEvent, SnapshotState, SnapshotStatus, VolumeEvent,
};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::volumes::{order_by, SortDir, SortKey};
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
    /// A full copy, not a layer over its volume's chain.
    pub full: bool,
    /// Who asked for it (Cinder's snapshot `user_id`, shown from 3.41).
    pub user_id: String,
}

const COLUMNS: &str = "id, project_id, volume_id, name, description, status, size, metadata, \
    progress, volume_type, availability_zone, created_at, updated_at, full, user_id";

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
            full: r.get(13)?,
            user_id: r.get(14)?,
        })
    }
}

impl InlineProjection for SnapshotsProjection {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    /// 2: status from the domain's fold (snapshot_states), raw times.
    /// 3: `full`.
    fn schema_version(&self) -> u32 {
        // 4: user_id (a17, 3.41).
        // 5: the kept states carry the snapshot's backend (issue 16).
        5
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS snapshots; DROP TABLE IF EXISTS snapshot_states;")
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
                seq INTEGER NOT NULL,
                full INTEGER NOT NULL DEFAULT 0,
                user_id TEXT NOT NULL DEFAULT ''
            );
            CREATE INDEX IF NOT EXISTS snapshots_by_project ON snapshots(project_id, seq);
            CREATE INDEX IF NOT EXISTS snapshots_by_volume ON snapshots(volume_id);
            CREATE TABLE IF NOT EXISTS snapshot_states (id TEXT PRIMARY KEY, state TEXT NOT NULL);",
        )
    }

    fn begin_replay(&self) {
        crate::keep_states(STATES);
    }

    fn end_replay(&self, conn: &Connection, finished: bool) -> rusqlite::Result<()> {
        crate::write_kept_states(conn, STATES, finished)
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some(event) = snapshot_event(ev) else {
            return Ok(());
        };
        let id = ev
            .stream_id
            .strip_prefix("snapshot-")
            .unwrap_or(&ev.stream_id);
        let now = stamp(&ev.recorded_at);
        // The status machine is the domain's (see volumes.rs).
        let before: SnapshotState = load_state(conn, STATES, id)?;
        let after = SnapshotAggregate::evolve(before, &event);
        save_state(conn, STATES, id, &after)?;
        match &*event {
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
                full,
                user_id,
                ..
            } => {
                conn.prepare_cached("INSERT INTO snapshots (id, project_id, volume_id, name, description, status,
                        size, metadata, progress, volume_type, availability_zone, created_at,
                        updated_at, seq, full, user_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'creating', ?6, ?7, '0%', ?8, ?9, ?10, ?10, ?11, ?12, ?13)")?.execute(params![
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
                        ev.position as i64,
                        full,
                        user_id
                    ],
                )?;
                return Ok(());
            }
            SnapshotEvent::SnapshotWorkStarted { .. } => return Ok(()),
            // The type's name changed, not the snapshot: no `updated_at`.
            SnapshotEvent::SnapshotTypeRenamed { to, .. } => {
                conn.prepare_cached("UPDATE snapshots SET volume_type = ?2 WHERE id = ?1")?
                    .execute(params![id, to])?;
                return Ok(());
            }
            SnapshotEvent::SnapshotCreated {} => {
                conn.prepare_cached("UPDATE snapshots SET progress = '100%' WHERE id = ?1")?
                    .execute(params![id])?;
            }
            SnapshotEvent::SnapshotStatusUpdated {
                progress: Some(p), ..
            } => {
                conn.prepare_cached("UPDATE snapshots SET progress = ?2 WHERE id = ?1")?
                    .execute(params![id, p])?;
            }
            // t17: moved with its volume's transfer (Cinder 3.55).
            SnapshotEvent::SnapshotTransferred { to_project_id, .. } => {
                conn.prepare_cached("UPDATE snapshots SET project_id = ?2 WHERE id = ?1")?
                    .execute(params![id, to_project_id])?;
            }
            SnapshotEvent::SnapshotUpdated { name, description } => {
                conn.prepare_cached(
                    "UPDATE snapshots SET name = COALESCE(?2, name),
                        description = COALESCE(?3, description) WHERE id = ?1",
                )?
                .execute(params![id, name, description])?;
            }
            // The view no longer shows it; the file may outlive it while
            // clones depend on it (the backend's business).
            SnapshotEvent::SnapshotDeleted {} => {
                conn.prepare_cached("DELETE FROM snapshots WHERE id = ?1")?
                    .execute(params![id])?;
                return Ok(());
            }
            _ => {}
        }
        if let Some(s) = after.snapshot.as_ref() {
            conn.prepare_cached(
                "UPDATE snapshots SET status = ?2, metadata = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![
                id,
                s.status.as_str(),
                serde_json::to_string(&s.metadata).unwrap_or_else(|_| "{}".into()),
                now
            ])?;
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
    /// Cinder's `metadata` filter (3.22): every pair.
    pub metadata: BTreeMap<String, String>,
    /// Cinder 3.65's `consumes_quota`: every snapshot here counts against
    /// its project's quota, so `false` keeps none.
    pub consumes_quota: Option<bool>,
    /// Cinder's like filters (3.34): (column, part of its value).
    pub like: Vec<(&'static str, String)>,
    pub marker: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub sort_key: SortKey,
    pub sort_dir: SortDir,
}

/// One page in the asked order (newest first by default), and whether more
/// remain. None: unknown marker.
fn filter(q: &SnapshotQuery) -> Filter {
    let mut f = Filter::new(format!("SELECT {COLUMNS} FROM snapshots"));
    f.eq("project_id", q.project_id.as_ref());
    f.eq("name", q.name.as_ref());
    f.eq("status", q.status.as_ref());
    f.eq("volume_id", q.volume_id.as_ref());
    for (col, part) in &q.like {
        // Cinder's `column LIKE '%value%'` (wildcards in the value too).
        f.and(
            &format!("COALESCE({col}, '') LIKE '%' || ? || '%'"),
            part.clone(),
        );
    }
    for (k, v) in &q.metadata {
        let path = format!("$.\"{}\"", k.replace('"', ""));
        f.and_all(
            "json_extract(metadata, ?) = ?",
            [path.into(), v.clone().into()],
        );
    }
    if q.consumes_quota == Some(false) {
        f.and_all("0 = 1", []);
    }
    f
}

/// How many snapshots match `q`'s filters, whatever the page (3.45's
/// `with_count`).
pub fn count(conn: &Connection, q: &SnapshotQuery) -> rusqlite::Result<i64> {
    filter(q).count(conn)
}

pub fn list(
    conn: &Connection,
    q: &SnapshotQuery,
) -> rusqlite::Result<Option<(Vec<SnapshotRow>, bool)>> {
    let mut f = filter(q);
    if let Some(m) = &q.marker {
        if !f.after_marker(conn, "snapshots", q.sort_key, q.sort_dir, m)? {
            return Ok(None);
        }
    }
    f.page(
        conn,
        &order_by(q.sort_key, q.sort_dir),
        q.limit,
        q.offset,
        SnapshotRow::from_row,
    )
    .map(Some)
}

/// The snapshot chains, computed from events alone: per volume its head
/// (the snapshot its current bytes descend from), per snapshot its parent
/// (nearest live ancestor), root (topmost live ancestor) and tree (the
/// first snapshot ever taken in it; stable while its members come and go).
///
/// The head moves: a new snapshot becomes its volume's head; deleting the
/// head makes its parent the head; a rollback to S makes S the head.
pub struct SnapshotChainProjection;

/// One snapshot's place in its volume's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub id: String,
    pub volume_id: String,
    pub parent_id: Option<String>,
    pub root_id: String,
    pub tree_id: String,
    pub is_head: bool,
}

impl InlineProjection for SnapshotChainProjection {
    fn name(&self) -> &'static str {
        "snapshot_chain"
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS snapshot_chain (
                id TEXT PRIMARY KEY,
                volume_id TEXT NOT NULL,
                parent_id TEXT,
                root_id TEXT NOT NULL,
                tree_id TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS snapshot_chain_by_parent ON snapshot_chain(parent_id);
            CREATE TABLE IF NOT EXISTS volume_heads (
                volume_id TEXT PRIMARY KEY,
                head_id TEXT NOT NULL
            );",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if let Some(volume_id) = ev.stream_id.strip_prefix("volume-") {
            match crate::volume_event(ev).as_deref() {
                Some(VolumeEvent::VolumeRolledBack { snapshot_id, .. }) => {
                    set_head(conn, volume_id, Some(&snapshot_id.to_string()))?;
                }
                Some(VolumeEvent::VolumeDeleted {}) => set_head(conn, volume_id, None)?,
                _ => {}
            }
            return Ok(());
        }
        let Some(event) = snapshot_event(ev) else {
            return Ok(());
        };
        let id = ev
            .stream_id
            .strip_prefix("snapshot-")
            .unwrap_or(&ev.stream_id);
        match &*event {
            SnapshotEvent::SnapshotCreateRequested {
                volume_id,
                parent_snapshot_id,
                ..
            } => {
                let parent = match parent_snapshot_id {
                    Some(p) => chain(conn, &p.to_string())?,
                    None => None,
                };
                let (root, tree) = parent
                    .as_ref()
                    .map_or((id.to_string(), id.to_string()), |p| {
                        (p.root_id.clone(), p.tree_id.clone())
                    });
                conn.prepare_cached("INSERT OR REPLACE INTO snapshot_chain (id, volume_id, parent_id, root_id, tree_id)
                     VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![id, volume_id.to_string(), parent.map(|p| p.id), root, tree],
                )?;
                set_head(conn, &volume_id.to_string(), Some(id))?;
            }
            SnapshotEvent::SnapshotDeleted {} => {
                let Some(gone) = chain(conn, id)? else {
                    return Ok(());
                };
                // Its children hang from its parent now.
                let children: Vec<String> = {
                    let mut stmt =
                        conn.prepare("SELECT id FROM snapshot_chain WHERE parent_id = ?1")?;
                    let rows = stmt.query_map([id], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                };
                conn.prepare_cached(
                    "UPDATE snapshot_chain SET parent_id = ?2 WHERE parent_id = ?1",
                )?
                .execute(params![id, gone.parent_id])?;
                if gone.parent_id.is_none() {
                    // A root went: each child roots its own subtree.
                    for child in &children {
                        conn.prepare_cached(
                            "WITH RECURSIVE sub(id) AS (
                                SELECT ?1 UNION ALL
                                SELECT c.id FROM snapshot_chain c JOIN sub ON c.parent_id = sub.id)
                             UPDATE snapshot_chain SET root_id = ?1 WHERE id IN sub",
                        )?
                        .execute([child])?;
                    }
                }
                if gone.is_head {
                    set_head(conn, &gone.volume_id, gone.parent_id.as_deref())?;
                }
                conn.prepare_cached("DELETE FROM snapshot_chain WHERE id = ?1")?
                    .execute([id])?;
            }
            _ => {}
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DELETE FROM snapshot_chain; DELETE FROM volume_heads;")
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut rows = dump_table(conn, "snapshot_chain", "id")?;
        rows.extend(dump_table(conn, "volume_heads", "volume_id")?);
        Ok(rows)
    }
}

fn set_head(conn: &Connection, volume_id: &str, head: Option<&str>) -> rusqlite::Result<()> {
    match head {
        Some(h) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO volume_heads (volume_id, head_id) VALUES (?1, ?2)",
            )?
            .execute(params![volume_id, h])?,
        None => conn
            .prepare_cached("DELETE FROM volume_heads WHERE volume_id = ?1")?
            .execute([volume_id])?,
    };
    Ok(())
}

/// The volume's head snapshot, if it has one: the parent of its next one.
pub fn head_of(conn: &Connection, volume_id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT head_id FROM volume_heads WHERE volume_id = ?1")?
        .query_row([volume_id], |r| r.get(0))
        .optional()
}

/// Snapshot `id`'s place in its chain, while it exists.
pub fn chain(conn: &Connection, id: &str) -> rusqlite::Result<Option<ChainRow>> {
    conn.prepare_cached("SELECT c.id, c.volume_id, c.parent_id, c.root_id, c.tree_id,
            EXISTS(SELECT 1 FROM volume_heads h WHERE h.volume_id = c.volume_id AND h.head_id = c.id)
         FROM snapshot_chain c WHERE c.id = ?1")?.query_row([id],
        |r| {
            Ok(ChainRow {
                id: r.get(0)?,
                volume_id: r.get(1)?,
                parent_id: r.get(2)?,
                root_id: r.get(3)?,
                tree_id: r.get(4)?,
                is_head: r.get(5)?,
            })
        },
    )
    .optional()
}

/// A list over snapshots with their chain facts (the Chinese cloud's
/// snapshot list): every filter optional.
#[derive(Debug, Clone, Default)]
pub struct ChainQuery {
    pub project_id: Option<String>,
    pub availability_zone: Option<String>,
    /// Only these ids (empty: any).
    pub ids: Vec<String>,
    pub volume_id: Option<String>,
    /// Any of these statuses (empty: any).
    pub statuses: Vec<String>,
    /// A substring of the name, or a prefix of the id.
    pub search: Option<String>,
    pub root_id: Option<String>,
    /// Only full copies (or only layers).
    pub full: Option<bool>,
    pub limit: usize,
    pub offset: usize,
}

/// One snapshot with its place in its chain and the chain's totals.
#[derive(Debug, Clone)]
pub struct SnapshotInChain {
    pub snapshot: SnapshotRow,
    pub chain: ChainRow,
    /// On the path from the volume's head back to the root.
    pub on_head_chain: bool,
    /// Sum of the sizes and number of the live snapshots sharing its root.
    pub chain_size: i64,
    pub chain_count: i64,
    pub latest_in_chain: DateTime<Utc>,
}

fn chain_filter(q: &ChainQuery) -> Filter {
    let mut f = Filter::new(format!(
        "SELECT {} FROM snapshots s JOIN snapshot_chain c ON c.id = s.id",
        COLUMNS
            .split(", ")
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    f.eq("s.project_id", q.project_id.as_ref());
    f.eq("s.availability_zone", q.availability_zone.as_ref());
    f.eq("s.volume_id", q.volume_id.as_ref());
    f.eq("c.root_id", q.root_id.as_ref());
    f.one_of("s.id", &q.ids);
    f.one_of("s.status", &q.statuses);
    if let Some(w) = &q.search {
        f.and_all(
            "(instr(COALESCE(s.name, ''), ?) > 0 OR instr(s.id, ?) = 1)",
            [w.clone().into(), w.clone().into()],
        );
    }
    if let Some(full) = q.full {
        f.and("s.full = ?", full);
    }
    f
}

/// One page (newest first) and the number of all matches.
pub fn list_in_chains(
    conn: &Connection,
    q: &ChainQuery,
) -> rusqlite::Result<(Vec<SnapshotInChain>, i64)> {
    let total = chain_filter(q).count(conn)?;
    let (rows, _) =
        chain_filter(q).page(conn, "s.seq DESC", q.limit, q.offset, SnapshotRow::from_row)?;
    let mut out = Vec::with_capacity(rows.len());
    for s in rows {
        let Some(c) = chain(conn, &s.id)? else {
            continue;
        };
        // Times are stored as RFC 3339 UTC with micros: text order is time order.
        let (chain_size, chain_count, latest) = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(s.size), 0), COUNT(*), MAX(s.created_at)
             FROM snapshot_chain c JOIN snapshots s ON s.id = c.id WHERE c.root_id = ?1",
            )?
            .query_row([&c.root_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    crate::opt_time_at(r, 2)?,
                ))
            })?;
        let on_head_chain = match head_of(conn, &c.volume_id)? {
            None => false,
            Some(head) => {
                // Walk up from the head; chains are short (bounded).
                let mut cur = Some(head);
                let mut found = false;
                for _ in 0..MAX_CHAIN_WALK {
                    match cur {
                        Some(ref id) if *id == c.id => {
                            found = true;
                            break;
                        }
                        Some(id) => {
                            cur = chain(conn, &id)?.and_then(|r| r.parent_id);
                        }
                        None => break,
                    }
                }
                found
            }
        };
        out.push(SnapshotInChain {
            latest_in_chain: latest.unwrap_or(s.created_at),
            snapshot: s,
            chain: c,
            on_head_chain,
            chain_size,
            chain_count,
        });
    }
    Ok((out, total))
}

/// The longest parent walk followed (a volume's snapshot quota is far
/// smaller): a bound, so a damaged view cannot loop.
const MAX_CHAIN_WALK: usize = 10_000;

/// t17 (Cinder 3.40): the volume's most recent snapshot still in the log's
/// view, whatever its status (Cinder's `get_latest_snapshot`).
pub fn latest_of(conn: &Connection, volume_id: &str) -> rusqlite::Result<Option<SnapshotRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM snapshots WHERE volume_id = ?1 ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row([volume_id], SnapshotRow::from_row)
    .optional()
}
