//! The backends view (issue 16): one row per registered backend, with its
//! connection template and its last reported capacity. The scheduler
//! places volumes by it, get_pools / capabilities / services describe the
//! backends from it, and an attach reads the volume's backend's template
//! here (`domain::backend::connection_info`).

use domain::backend::BackendEvent;
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, stamp, time_at};

pub struct BackendsProjection;

#[derive(Debug, Clone, PartialEq)]
pub struct BackendRow {
    pub name: String,
    /// `qcow2`, `raw` or `rbd`.
    pub kind: String,
    /// `file` or `ceph`.
    pub storage_protocol: String,
    pub connection: serde_json::Value,
    /// None until the first capacity report.
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// When the capacity was last recorded (None: never).
    pub reported_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl BackendRow {
    /// What the scheduler judges, with the service's over-subscription
    /// ratio (`Catalog::max_over_subscription_ratio`).
    pub fn offer(&self, over_subscription: Option<f64>) -> domain::scheduler::Offer<'_> {
        domain::scheduler::Offer {
            name: &self.name,
            storage_protocol: &self.storage_protocol,
            free_bytes: self.free_bytes,
            over_subscription,
        }
    }

    /// Cinder's `connection_info` for volume `id` on this backend.
    pub fn connection_info(&self, id: uuid::Uuid) -> serde_json::Value {
        domain::backend::connection_info(&self.connection, id)
    }
}

const COLUMNS: &str =
    "name, kind, storage_protocol, connection, total_bytes, free_bytes, reported_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<BackendRow> {
    let text: String = r.get(3)?;
    let bytes = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|n| n.max(0) as u64))
    };
    Ok(BackendRow {
        name: r.get(0)?,
        kind: r.get(1)?,
        storage_protocol: r.get(2)?,
        connection: serde_json::from_str(&text).unwrap_or_default(),
        total_bytes: bytes(4)?,
        free_bytes: bytes(5)?,
        reported_at: match r.get_ref(6)? {
            rusqlite::types::ValueRef::Null => None,
            _ => Some(time_at(r, 6)?),
        },
    })
}

/// SQLite integers are signed: a byte count past i64 (8 EiB) is clamped.
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl InlineProjection for BackendsProjection {
    fn name(&self) -> &'static str {
        "backends"
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DROP TABLE IF EXISTS backends;")
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS backends (
                name TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                storage_protocol TEXT NOT NULL,
                connection TEXT NOT NULL,
                total_bytes INTEGER,
                free_bytes INTEGER,
                reported_at TEXT,
                seq INTEGER NOT NULL
            );",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        let Some(name) = ev.stream_id.strip_prefix("backend-") else {
            return Ok(());
        };
        let Ok(e) = ev.decode::<BackendEvent>() else {
            return Ok(());
        };
        match e {
            BackendEvent::BackendRegistered {
                kind,
                storage_protocol,
                connection,
                ..
            } => {
                // A re-registration keeps the capacity: the same storage
                // moved or was reconfigured; its next report updates it.
                conn.prepare_cached(
                    "INSERT INTO backends (name, kind, storage_protocol, connection, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(name) DO UPDATE SET kind = excluded.kind,
                        storage_protocol = excluded.storage_protocol,
                        connection = excluded.connection",
                )?
                .execute(params![
                    name,
                    kind,
                    storage_protocol,
                    connection.to_string(),
                    ev.position as i64
                ])?;
            }
            BackendEvent::BackendCapacityReported {
                total_bytes,
                free_bytes,
            } => {
                conn.prepare_cached(
                    "UPDATE backends SET total_bytes = ?2, free_bytes = ?3, reported_at = ?4
                     WHERE name = ?1",
                )?
                .execute(params![
                    name,
                    signed(total_bytes),
                    signed(free_bytes),
                    stamp(&ev.recorded_at)
                ])?;
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("DELETE FROM backends;")
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        dump_table(conn, "backends", "name")
    }
}

/// Every registered backend, in registration order.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<BackendRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM backends ORDER BY seq"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

pub fn get(conn: &Connection, name: &str) -> rusqlite::Result<Option<BackendRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM backends WHERE name = ?1"))?
        .query_row([name], from_row)
        .optional()
}

/// Per project, the volumes on backend `name` and their snapshots (Cinder's
/// `/os-hosts/{host}` usage), from the quota ledger's counts.
pub fn usage_of_backend(
    conn: &Connection,
    name: &str,
) -> rusqlite::Result<Vec<crate::quotas::TypeUsage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT q.project_id,
                SUM(q.kind = 'volume'),
                COALESCE(SUM(CASE WHEN q.kind = 'volume' THEN q.size END), 0),
                SUM(q.kind = 'snapshot'),
                COALESCE(SUM(CASE WHEN q.kind = 'snapshot' THEN q.size END), 0)
         FROM quota_ledger q
         WHERE (q.kind = 'volume' AND q.id IN (SELECT id FROM volumes WHERE backend = ?1))
            OR (q.kind = 'snapshot' AND q.id IN (SELECT s.id FROM snapshots s
                 JOIN volumes v ON v.id = s.volume_id WHERE v.backend = ?1))
         GROUP BY q.project_id ORDER BY q.project_id",
    )?;
    let rows = stmt.query_map([name], |r| {
        Ok(crate::quotas::TypeUsage {
            project_id: r.get(0)?,
            volumes: r.get(1)?,
            volume_gb: r.get(2)?,
            snapshots: r.get(3)?,
            snapshot_gb: r.get(4)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use domain::backend::{BackendAggregate, BackendCommand, Capacity, Registration};
    use eventstore::EventStore;
    use serde_json::json;

    const GIB: u64 = 1 << 30;

    fn run(store: &EventStore, name: &str, cmd: BackendCommand) -> usize {
        let name = name.to_string();
        store
            .write_blocking(move |tx| {
                tx.execute::<BackendAggregate>(&name, cmd, &json!({"project_id": "admin"}))
            })
            .unwrap()
            .unwrap()
            .len()
    }

    fn reg(name: &str, kind: &str, dir: &str) -> BackendCommand {
        BackendCommand::Register(Registration {
            name: name.into(),
            kind: kind.into(),
            storage_protocol: domain::backend::protocol_of(kind).into(),
            connection: json!({"driver_volume_type": "local", "volumes_dir": dir, "format": kind}),
        })
    }

    fn cap(total: u64, free: u64) -> BackendCommand {
        BackendCommand::ReportCapacity(Capacity {
            total_bytes: total,
            free_bytes: free,
        })
    }

    /// Registrations and capacity reports folded live, then the view
    /// rebuilt from position 0: the two agree, and the live view says
    /// what the events did.
    #[test]
    fn replay_equals_live() {
        let tmp = tempfile::tempdir().unwrap();
        let store = EventStore::open(&tmp.path().join("t.db"), crate::all()).unwrap();
        assert_eq!(run(&store, "SSD", reg("SSD", "qcow2", "/d/volumes")), 1);
        assert_eq!(
            run(&store, "fast", reg("fast", "raw", "/d/fast/volumes")),
            1
        );
        // The same at the next start: nothing appended.
        assert_eq!(run(&store, "SSD", reg("SSD", "qcow2", "/d/volumes")), 0);
        assert_eq!(run(&store, "fast", cap(100 * GIB, 40 * GIB)), 1);
        assert_eq!(run(&store, "fast", cap(100 * GIB, 40 * GIB - 1)), 0);
        assert_eq!(run(&store, "fast", cap(100 * GIB, 30 * GIB)), 1);
        // Moved: the template changes, the capacity stays.
        assert_eq!(run(&store, "fast", reg("fast", "raw", "/e/volumes")), 1);
        let live = store.read(super::list).unwrap();
        assert_eq!(
            live.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["SSD", "fast"]
        );
        let fast = &live[1];
        assert_eq!(fast.kind, "raw");
        assert_eq!(fast.connection["volumes_dir"], "/e/volumes");
        assert_eq!(
            (fast.total_bytes, fast.free_bytes),
            (Some(100 * GIB), Some(30 * GIB))
        );
        assert!(fast.reported_at.is_some());
        assert_eq!(live[0].free_bytes, None);
        let id = uuid::Uuid::from_u128(1);
        assert_eq!(
            fast.connection_info(id)["data"]["device_path"],
            format!("/e/volumes/{id}")
        );
        let dump = |s: &EventStore| {
            crate::all()
                .iter()
                .map(|p| s.read(|c| p.dump(c)).unwrap())
                .collect::<Vec<_>>()
        };
        let before = dump(&store);
        store.rebuild_projections().unwrap();
        assert_eq!(before, dump(&store));
        assert_eq!(store.read(super::list).unwrap(), live);
    }
}
