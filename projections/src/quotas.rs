//! The quota view: a ledger of every live volume and snapshot with its
//! project, type and size, and the limits set by admins. Usage is the
//! ledger's totals per project, kind and type (`quota_totals`), kept by
//! triggers on the ledger in the same statement as every change to it, so
//! it cannot drift from the ledger (Cinder's `quota_usages` drift is the
//! anti-example): `audit` recomputes them, and `verify` compares them with
//! a replay's.
//!
//! Why totals and not an aggregate at each read: every create checks the
//! project's headroom, and summing the project's ledger (sorted by kind
//! and type) grew with its volumes: 76% of the writer's time at a
//! snapshot create with 9,000 volumes, and the snapshot's latency from
//! 11 to 17 ms (perf, issue 11).

use std::collections::BTreeMap;

use domain::quota::{Headroom, QuotaClassEvent, QuotaEvent, DEFAULT_CLASS};
use domain::{SnapshotEvent, VolumeEvent};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, snapshot_event, volume_event};

/// The ledger row `new` counted into its project's totals (a trigger's
/// body; SQLite triggers cannot call one another, so the move trigger is
/// built of the same two texts as insert and delete).
macro_rules! totals_add {
    () => {
        "INSERT INTO quota_totals VALUES (new.project_id, new.kind, new.volume_type, 1, new.size)
            ON CONFLICT (project_id, kind, volume_type)
            DO UPDATE SET count = count + 1, gigabytes = gigabytes + excluded.gigabytes;"
    };
}

/// The ledger row `old` taken out of its project's totals; a key whose
/// last row went leaves no row behind.
macro_rules! totals_remove {
    () => {
        "UPDATE quota_totals SET count = count - 1, gigabytes = gigabytes - old.size
            WHERE project_id = old.project_id AND kind = old.kind AND volume_type = old.volume_type;
            DELETE FROM quota_totals
            WHERE project_id = old.project_id AND kind = old.kind AND volume_type = old.volume_type
                AND count = 0;"
    };
}

pub struct QuotasProjection;

fn quota_event(ev: &RecordedEvent) -> Option<QuotaEvent> {
    if !ev.stream_id.starts_with("quota-") {
        return None;
    }
    ev.decode().ok()
}

fn quota_class_event(ev: &RecordedEvent) -> Option<QuotaClassEvent> {
    if !ev.stream_id.starts_with("quota_class-") {
        return None;
    }
    ev.decode().ok()
}

/// One change to the ledger's row of a volume or snapshot.
#[derive(Clone, Copy)]
enum Change<'a> {
    /// A new row: kind, project, type, size.
    Add(&'static str, &'a str, &'a str, i64),
    /// An extend reserves its new size; the old one is kept to return to.
    Reserve(i64),
    /// The extend is done: the reserved size stays.
    Keep,
    /// The extend failed: back to the size before it.
    Release,
    Remove,
    Project(&'a str),
    Type(&'a str),
}

/// Where ledger changes go: the table (live), or memory during a replay.
trait Ledger {
    fn change(&mut self, id: &str, change: Change<'_>) -> rusqlite::Result<()>;
}

struct Sql<'c>(&'c Connection);

impl Ledger for Sql<'_> {
    fn change(&mut self, id: &str, change: Change<'_>) -> rusqlite::Result<()> {
        let conn = self.0;
        match change {
            Change::Add(kind, project_id, volume_type, size) => conn
                .prepare_cached("INSERT INTO quota_ledger VALUES (?1, ?2, ?3, ?4, ?5, ?5)")?
                .execute(params![id, kind, project_id, volume_type, size]),
            Change::Reserve(size) => conn
                .prepare_cached(
                    "UPDATE quota_ledger SET prev_size = size, size = ?2 WHERE id = ?1",
                )?
                .execute(params![id, size]),
            Change::Keep => conn
                .prepare_cached("UPDATE quota_ledger SET prev_size = size WHERE id = ?1")?
                .execute(params![id]),
            Change::Release => conn
                .prepare_cached("UPDATE quota_ledger SET size = prev_size WHERE id = ?1")?
                .execute(params![id]),
            Change::Remove => conn
                .prepare_cached("DELETE FROM quota_ledger WHERE id = ?1")?
                .execute(params![id]),
            Change::Project(p) => conn
                .prepare_cached("UPDATE quota_ledger SET project_id = ?2 WHERE id = ?1")?
                .execute(params![id, p]),
            Change::Type(t) => conn
                .prepare_cached("UPDATE quota_ledger SET volume_type = ?2 WHERE id = ?1")?
                .execute(params![id, t]),
        }
        .map(drop)
    }
}

/// A replay's ledger, in memory until its end, then written in key order
/// with the ledger's index built once: row by row, each create's insert,
/// index key and two trigger statements were 18% of a replay of 86,000
/// volumes (perf, issue 11).
mod replay {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use eventstore::rusqlite::{self, ffi, params, Connection};

    use super::{Change, Ledger, Sql};
    use crate::ReplayKept;

    pub(super) struct Entry {
        kind: &'static str,
        project_id: String,
        volume_type: String,
        size: i64,
        prev_size: i64,
    }

    thread_local! {
        static LEDGER: RefCell<Option<HashMap<String, Entry>>> = const { RefCell::new(None) };
    }
    pub(super) static KEPT: ReplayKept<HashMap<String, Entry>> = ReplayKept(&LEDGER);

    /// `f` on the kept ledger when a replay is under way on this thread,
    /// else on the table.
    pub(super) fn run<T>(conn: &Connection, f: impl FnOnce(&mut dyn Ledger) -> T) -> T {
        KEPT.or_live::<dyn Ledger, _>(&mut Sql(conn), |kept| kept, |s| f(s))
    }

    pub(super) fn end(conn: &Connection, finished: bool) -> rusqlite::Result<()> {
        let Some(kept) = KEPT.end(finished) else {
            return Ok(());
        };
        let mut rows: Vec<(String, Entry)> = kept.into_iter().collect();
        // Key order: each insert lands at the right edge of the primary
        // key's b-tree.
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        crate::bulk_fill(conn, "quota_ledger", || {
            let mut insert =
                conn.prepare("INSERT INTO quota_ledger VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            for (id, e) in &rows {
                insert.execute(params![
                    id,
                    e.kind,
                    e.project_id,
                    e.volume_type,
                    e.size,
                    e.prev_size
                ])?;
            }
            // What the triggers (dropped meanwhile) would have added up.
            conn.execute_batch(
                "DELETE FROM quota_totals;
                 INSERT INTO quota_totals
                 SELECT project_id, kind, volume_type, COUNT(*), SUM(size)
                 FROM quota_ledger GROUP BY project_id, kind, volume_type;",
            )
        })
    }

    /// The table's answer to the same statement, so a replay fails where
    /// the live path would have.
    fn constraint(what: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_CONSTRAINT),
            Some(format!(
                "UNIQUE constraint failed: quota_ledger.id ({what})"
            )),
        )
    }

    impl Ledger for HashMap<String, Entry> {
        fn change(&mut self, id: &str, change: Change<'_>) -> rusqlite::Result<()> {
            if let Change::Add(kind, project_id, volume_type, size) = change {
                if self.contains_key(id) {
                    return Err(constraint(id));
                }
                self.insert(
                    id.to_owned(),
                    Entry {
                        kind,
                        project_id: project_id.to_owned(),
                        volume_type: volume_type.to_owned(),
                        size,
                        prev_size: size,
                    },
                );
                return Ok(());
            }
            if let Change::Remove = change {
                self.remove(id);
                return Ok(());
            }
            // An UPDATE of no row changes nothing, as here.
            let Some(e) = self.get_mut(id) else {
                return Ok(());
            };
            match change {
                Change::Reserve(size) => {
                    e.prev_size = e.size;
                    e.size = size;
                }
                Change::Keep => e.prev_size = e.size,
                Change::Release => e.size = e.prev_size,
                Change::Project(p) => p.clone_into(&mut e.project_id),
                Change::Type(t) => t.clone_into(&mut e.volume_type),
                Change::Add(..) | Change::Remove => {}
            }
            Ok(())
        }
    }
}

impl InlineProjection for QuotasProjection {
    fn name(&self) -> &'static str {
        "quotas"
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(concat!(
            "CREATE TABLE IF NOT EXISTS quota_ledger (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                project_id TEXT NOT NULL,
                volume_type TEXT NOT NULL,
                size INTEGER NOT NULL,
                prev_size INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS quota_ledger_by_project ON quota_ledger(project_id);
            CREATE TABLE IF NOT EXISTS quota_totals (
                project_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                volume_type TEXT NOT NULL,
                count INTEGER NOT NULL,
                gigabytes INTEGER NOT NULL,
                PRIMARY KEY (project_id, kind, volume_type)
            ) WITHOUT ROWID;
            CREATE TRIGGER IF NOT EXISTS quota_totals_add AFTER INSERT ON quota_ledger BEGIN
            ",
            totals_add!(),
            "
            END;
            CREATE TRIGGER IF NOT EXISTS quota_totals_remove AFTER DELETE ON quota_ledger BEGIN
            ",
            totals_remove!(),
            "
            END;
            CREATE TRIGGER IF NOT EXISTS quota_totals_move
            AFTER UPDATE OF project_id, volume_type, size ON quota_ledger BEGIN
            ",
            totals_remove!(),
            totals_add!(),
            "
            END;
            CREATE TABLE IF NOT EXISTS quota_limits (
                project_id TEXT NOT NULL,
                resource TEXT NOT NULL,
                hard_limit INTEGER NOT NULL,
                PRIMARY KEY (project_id, resource)
            );
            CREATE TABLE IF NOT EXISTS quota_class_limits (
                class_name TEXT NOT NULL,
                resource TEXT NOT NULL,
                hard_limit INTEGER NOT NULL,
                PRIMARY KEY (class_name, resource)
            );",
        ))
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if let Some(e) = volume_event(ev) {
            let id = ev
                .stream_id
                .strip_prefix("volume-")
                .unwrap_or(&ev.stream_id);
            let change = match &*e {
                VolumeEvent::VolumeCreateRequested {
                    project_id,
                    volume_type,
                    size,
                    ..
                } => Change::Add("volume", project_id, volume_type, *size),
                // Reserved at request (so two requests cannot both pass a
                // limit), released if the work fails.
                VolumeEvent::VolumeExtendRequested { new_size, .. } => Change::Reserve(*new_size),
                VolumeEvent::VolumeExtended { .. } => Change::Keep,
                VolumeEvent::VolumeExtendFailed { .. } => Change::Release,
                VolumeEvent::VolumeDeleted {} => Change::Remove,
                VolumeEvent::VolumeTransferred { to_project, .. } => Change::Project(to_project),
                // The volume now counts under its new type's keys (or its
                // type's new name's).
                VolumeEvent::VolumeRetyped { to, .. }
                | VolumeEvent::VolumeTypeRenamed { to, .. } => Change::Type(to),
                _ => return Ok(()),
            };
            replay::run(conn, |ledger| ledger.change(id, change))?;
        } else if let Some(e) = snapshot_event(ev) {
            let id = ev
                .stream_id
                .strip_prefix("snapshot-")
                .unwrap_or(&ev.stream_id);
            let change = match &*e {
                SnapshotEvent::SnapshotCreateRequested {
                    project_id,
                    volume_type,
                    size,
                    ..
                } => Change::Add("snapshot", project_id, volume_type, *size),
                SnapshotEvent::SnapshotDeleted {} => Change::Remove,
                // t17: the accepting project's usage from now on.
                SnapshotEvent::SnapshotTransferred { to_project_id, .. } => {
                    Change::Project(to_project_id)
                }
                SnapshotEvent::SnapshotTypeRenamed { to, .. } => Change::Type(to),
                _ => return Ok(()),
            };
            replay::run(conn, |ledger| ledger.change(id, change))?;
        } else if let Some(e) = quota_event(ev) {
            match e {
                QuotaEvent::QuotaLimitsSet {
                    project_id,
                    changes,
                } => {
                    for (k, v) in changes {
                        conn.execute(
                            "INSERT INTO quota_limits VALUES (?1, ?2, ?3)
                             ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
                            params![project_id, k, v],
                        )?;
                    }
                }
                QuotaEvent::QuotaLimitsReset { project_id } => {
                    conn.execute(
                        "DELETE FROM quota_limits WHERE project_id = ?1",
                        params![project_id],
                    )?;
                }
                QuotaEvent::QuotaTypeRenamed {
                    project_id,
                    from,
                    to,
                } => rename_type_rows(conn, "quota_limits", "project_id", &project_id, &from, &to)?,
            }
        } else if let Some(e) = quota_class_event(ev) {
            match e {
                QuotaClassEvent::QuotaClassLimitsSet {
                    class_name,
                    changes,
                } => {
                    for (k, v) in changes {
                        conn.prepare_cached(
                            "INSERT INTO quota_class_limits VALUES (?1, ?2, ?3)
                             ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
                        )?
                        .execute(params![class_name, k, v])?;
                    }
                }
                QuotaClassEvent::QuotaClassTypeRenamed {
                    class_name,
                    from,
                    to,
                } => rename_type_rows(
                    conn,
                    "quota_class_limits",
                    "class_name",
                    &class_name,
                    &from,
                    &to,
                )?,
            }
        }
        Ok(())
    }

    fn begin_replay(&self) {
        replay::KEPT.begin();
    }

    fn end_replay(&self, conn: &Connection, finished: bool) -> rusqlite::Result<()> {
        replay::end(conn, finished)
    }

    /// Every table dropped and made again: a DELETE of the ledger ran its
    /// delete trigger once per row (and SQLite truncates no table with a
    /// trigger), 3% of a replay of 86,000 volumes (perf, issue 11).
    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        self.drop_schema(conn)?;
        self.init_schema(conn)
    }

    /// 2: `quota_totals` and its triggers.
    fn schema_version(&self) -> u32 {
        2
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        // The triggers go with their table.
        conn.execute_batch(
            "DROP TABLE IF EXISTS quota_totals; DROP TABLE IF EXISTS quota_ledger;
             DROP TABLE IF EXISTS quota_limits; DROP TABLE IF EXISTS quota_class_limits;",
        )
    }

    /// The totals equal the ledger's, row for row.
    fn audit(&self, conn: &Connection) -> rusqlite::Result<Option<String>> {
        let ledger = "SELECT project_id, kind, volume_type, COUNT(*), SUM(size)
                      FROM quota_ledger GROUP BY project_id, kind, volume_type";
        let totals = "SELECT project_id, kind, volume_type, count, gigabytes FROM quota_totals";
        let first = |a: &str, b: &str| -> rusqlite::Result<Option<String>> {
            conn.query_row(&format!("{a} EXCEPT {b} LIMIT 1"), [], |r| {
                Ok(format!(
                    "project {}, {} of type {}: {} totalling {} GB",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?
                ))
            })
            .optional()
        };
        if let Some(row) = first(ledger, totals)? {
            return Ok(Some(format!("the ledger has {row}, its totals do not")));
        }
        if let Some(row) = first(totals, ledger)? {
            return Ok(Some(format!("the totals have {row}, the ledger does not")));
        }
        Ok(None)
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut rows = dump_table(conn, "quota_ledger", "id")?;
        rows.extend(dump_table(
            conn,
            "quota_totals",
            "project_id, kind, volume_type",
        )?);
        rows.extend(dump_table(conn, "quota_limits", "project_id, resource")?);
        rows.extend(dump_table(
            conn,
            "quota_class_limits",
            "class_name, resource",
        )?);
        Ok(rows)
    }
}

/// `in_use` per quota key for a project: totals and per type.
pub fn usage(conn: &Connection, project_id: &str) -> rusqlite::Result<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, volume_type, count, gigabytes FROM quota_totals WHERE project_id = ?1",
    )?;
    let mut out = BTreeMap::new();
    let rows = stmt.query_map([project_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (kind, ty, count, gb) = row?;
        let count_key = if kind == "volume" {
            "volumes"
        } else {
            "snapshots"
        };
        *out.entry(count_key.to_string()).or_insert(0) += count;
        *out.entry(format!("{count_key}_{ty}")).or_insert(0) += count;
        *out.entry("gigabytes".to_string()).or_insert(0) += gb;
        *out.entry(format!("gigabytes_{ty}")).or_insert(0) += gb;
    }
    // g17: Cinder's `groups` quota counts the project's live groups (the
    // groups view's rows, themselves a fold of the log).
    let groups = crate::groups::groups_in_use(conn, project_id)?;
    if groups > 0 {
        out.insert("groups".to_string(), groups);
    }
    Ok(out)
}

/// The limits that bind a project beyond the built-in defaults: the
/// `default` quota class's, overridden by the project's own.
pub fn limits(conn: &Connection, project_id: &str) -> rusqlite::Result<BTreeMap<String, i64>> {
    let mut out = class_limits(conn, DEFAULT_CLASS)?;
    out.extend(project_limits(conn, project_id)?);
    Ok(out)
}

/// The limits an admin set for the project itself.
pub fn project_limits(
    conn: &Connection,
    project_id: &str,
) -> rusqlite::Result<BTreeMap<String, i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT resource, hard_limit FROM quota_limits WHERE project_id = ?1")?;
    let rows = stmt.query_map([project_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The limits set for a quota class (built-in defaults apply to the rest).
pub fn class_limits(
    conn: &Connection,
    class_name: &str,
) -> rusqlite::Result<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT resource, hard_limit FROM quota_class_limits WHERE class_name = ?1",
    )?;
    let rows = stmt.query_map([class_name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Limits and usage for a decider.
pub fn headroom(conn: &Connection, project_id: &str) -> rusqlite::Result<Headroom> {
    Ok(Headroom {
        limits: limits(conn, project_id)?,
        usage: usage(conn, project_id)?,
        unchecked: false,
    })
}

/// One project's volumes and snapshots of one volume type (a backend in
/// Cinder's `/os-hosts/{host}` view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeUsage {
    pub project_id: String,
    pub volumes: i64,
    pub volume_gb: i64,
    pub snapshots: i64,
    pub snapshot_gb: i64,
}

/// Usage of one volume type, per project.
pub fn usage_of_type(conn: &Connection, volume_type: &str) -> rusqlite::Result<Vec<TypeUsage>> {
    let mut stmt = conn.prepare(
        "SELECT project_id,
                SUM(CASE WHEN kind = 'volume' THEN count ELSE 0 END),
                SUM(CASE WHEN kind = 'volume' THEN gigabytes ELSE 0 END),
                SUM(CASE WHEN kind = 'snapshot' THEN count ELSE 0 END),
                SUM(CASE WHEN kind = 'snapshot' THEN gigabytes ELSE 0 END)
         FROM quota_totals WHERE volume_type = ?1 GROUP BY project_id ORDER BY project_id",
    )?;
    let rows = stmt.query_map([volume_type], |r| {
        Ok(TypeUsage {
            project_id: r.get(0)?,
            volumes: r.get(1)?,
            volume_gb: r.get(2)?,
            snapshots: r.get(3)?,
            snapshot_gb: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Moves one owner's per-type limit rows from type `from`'s keys to `to`'s
/// (a type rename; the domain's `quota::rename_type_keys` on the view).
fn rename_type_rows(
    conn: &Connection,
    table: &str,
    owner_col: &str,
    owner: &str,
    from: &str,
    to: &str,
) -> rusqlite::Result<()> {
    for (old, new) in domain::quota::type_keys(from)
        .into_iter()
        .zip(domain::quota::type_keys(to))
    {
        conn.execute(
            &format!("DELETE FROM {table} WHERE {owner_col} = ?1 AND resource = ?2 AND EXISTS (SELECT 1 FROM {table} WHERE {owner_col} = ?1 AND resource = ?3)"),
            params![owner, new, old],
        )?;
        conn.execute(
            &format!("UPDATE {table} SET resource = ?3 WHERE {owner_col} = ?1 AND resource = ?2"),
            params![owner, old, new],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The totals follow every change the view makes to its ledger
    /// (create, extend reserved and given back, transfer, retype, delete),
    /// and `audit` names a total that differs from the ledger's.
    #[test]
    fn totals_follow_the_ledger_and_audit_checks_them() {
        let conn = Connection::open_in_memory().unwrap();
        QuotasProjection.init_schema(&conn).unwrap();
        // `usage` counts the project's groups too.
        crate::groups::GroupsProjection.init_schema(&conn).unwrap();
        let run = |sql: &str| conn.execute_batch(sql).unwrap();
        let usage_of = |p: &str| usage(&conn, p).unwrap().into_iter().collect::<Vec<_>>();
        let kv = |pairs: &[(&str, i64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        };
        run(
            "INSERT INTO quota_ledger VALUES ('v1', 'volume', 'p1', 'SSD', 10, 10);
             INSERT INTO quota_ledger VALUES ('v2', 'volume', 'p1', 'SSD', 5, 5);
             INSERT INTO quota_ledger VALUES ('s1', 'snapshot', 'p1', 'SSD', 10, 10);
             UPDATE quota_ledger SET prev_size = size, size = 20 WHERE id = 'v2';",
        );
        assert_eq!(
            usage_of("p1"),
            kv(&[
                ("gigabytes", 40),
                ("gigabytes_SSD", 40),
                ("snapshots", 1),
                ("snapshots_SSD", 1),
                ("volumes", 2),
                ("volumes_SSD", 2)
            ])
        );
        run("UPDATE quota_ledger SET size = prev_size WHERE id = 'v2';
             UPDATE quota_ledger SET prev_size = size WHERE id = 'v1';
             UPDATE quota_ledger SET project_id = 'p2' WHERE id = 'v1';
             UPDATE quota_ledger SET volume_type = 'SATA' WHERE id = 'v2';
             DELETE FROM quota_ledger WHERE id = 's1';");
        assert_eq!(
            usage_of("p1"),
            kv(&[
                ("gigabytes", 5),
                ("gigabytes_SATA", 5),
                ("volumes", 1),
                ("volumes_SATA", 1)
            ])
        );
        assert_eq!(
            usage_of("p2"),
            kv(&[
                ("gigabytes", 10),
                ("gigabytes_SSD", 10),
                ("volumes", 1),
                ("volumes_SSD", 1)
            ])
        );
        // No row is left for a key whose last item went.
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM quota_totals", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(QuotasProjection.audit(&conn).unwrap(), None);
        run("UPDATE quota_totals SET gigabytes = 6 WHERE project_id = 'p1'");
        let found = QuotasProjection.audit(&conn).unwrap().unwrap();
        assert!(found.contains("project p1, volume of type SATA"), "{found}");
    }
}
