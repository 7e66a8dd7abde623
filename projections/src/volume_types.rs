//! The volume types view (the catalog every use case resolves types
//! against) and the QoS specs view: folds of the `volume_type-<id>` and
//! `qos_specs-<id>` streams. A deleted type or specs set leaves the view.
//!
//! The configured catalog's types (`domain::catalog::SEED_TYPES`) are the
//! view's starting rows, before any event: a fresh log holds only what
//! clients did, and a seed type's stream begins with the first change an
//! admin makes to it (the use case appends its `VolumeTypeCreated
//! { seeded }` first, carrying exactly these rows' values).

use std::collections::BTreeMap;

use domain::default_type::DefaultTypeEvent;
use domain::qos::QosEvent;
use domain::volume_type::{Encryption, VolumeTypeEvent};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension, Row};
use eventstore::{InlineProjection, RecordedEvent};

use crate::{dump_table, stamp, time_at};

pub struct VolumeTypesProjection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: BTreeMap<String, String>,
    pub qos_specs_id: Option<String>,
    pub seeded: bool,
    /// The projects a private type is shared with.
    pub projects: Vec<String>,
}

impl TypeRow {
    /// Cinder: a private type is visible only to its projects and admin.
    pub fn visible_to(&self, project: &str, is_admin: bool) -> bool {
        is_admin || self.is_public || self.projects.iter().any(|p| p == project)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionRow {
    pub volume_type_id: String,
    pub encryption: Encryption,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QosRow {
    pub id: String,
    pub name: String,
    pub consumer: String,
    pub specs: BTreeMap<String, String>,
}

fn decode<E: serde::de::DeserializeOwned>(ev: &RecordedEvent) -> Option<E> {
    ev.decode().ok()
}

fn specs_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

fn specs_at(r: &Row<'_>, i: usize) -> rusqlite::Result<BTreeMap<String, String>> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|e| crate::conversion(i, e))
}

impl InlineProjection for VolumeTypesProjection {
    fn name(&self) -> &'static str {
        "volume_types"
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "DROP TABLE IF EXISTS volume_types;
             DROP TABLE IF EXISTS volume_type_access;
             DROP TABLE IF EXISTS volume_type_encryption;
             DROP TABLE IF EXISTS qos_specs;
             DROP TABLE IF EXISTS volume_types_seeded;",
        )
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS volume_types (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                description TEXT,
                is_public INTEGER NOT NULL,
                extra_specs TEXT NOT NULL,
                qos_specs_id TEXT,
                seeded INTEGER NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS volume_types_by_name ON volume_types(name);
            CREATE TABLE IF NOT EXISTS volume_type_access (
                type_id TEXT NOT NULL,
                project_id TEXT NOT NULL,
                PRIMARY KEY (type_id, project_id)
            );
            CREATE TABLE IF NOT EXISTS volume_type_encryption (
                type_id TEXT PRIMARY KEY,
                encryption_id TEXT NOT NULL,
                provider TEXT NOT NULL,
                cipher TEXT,
                key_size INTEGER,
                control_location TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT
            );
            CREATE TABLE IF NOT EXISTS qos_specs (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                consumer TEXT NOT NULL,
                specs TEXT NOT NULL,
                seq INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS volume_types_seeded (done INTEGER NOT NULL);
            -- Microversion 3.62: a project's own default type.
            CREATE TABLE IF NOT EXISTS project_default_types (
                project_id TEXT PRIMARY KEY,
                volume_type_id TEXT NOT NULL
            );",
        )?;
        // Once per view (a fresh table, or after `clear`): a seed type an
        // admin deleted stays deleted across restarts.
        let seeded: i64 =
            conn.query_row("SELECT COUNT(*) FROM volume_types_seeded", [], |r| r.get(0))?;
        if seeded == 0 {
            seed(conn)?;
        }
        Ok(())
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if let Some(id) = ev.stream_id.strip_prefix("volume_type-") {
            if let Some(e) = decode::<VolumeTypeEvent>(ev) {
                apply_type(conn, ev, id, e)?;
            }
        } else if let Some(id) = ev.stream_id.strip_prefix("qos_specs-") {
            if let Some(e) = decode::<QosEvent>(ev) {
                apply_qos(conn, ev, id, e)?;
            }
        } else if let Some(project) = ev.stream_id.strip_prefix("default_type-") {
            match decode::<DefaultTypeEvent>(ev) {
                Some(DefaultTypeEvent::ProjectDefaultTypeSet { volume_type_id }) => {
                    conn.prepare_cached(
                        "INSERT INTO project_default_types (project_id, volume_type_id)
                         VALUES (?1, ?2)
                         ON CONFLICT(project_id) DO UPDATE SET volume_type_id = excluded.volume_type_id",
                    )?
                    .execute(params![project, volume_type_id])?;
                }
                Some(DefaultTypeEvent::ProjectDefaultTypeUnset {}) => {
                    conn.prepare_cached("DELETE FROM project_default_types WHERE project_id = ?1")?
                        .execute([project])?;
                }
                None => {}
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "DELETE FROM volume_types; DELETE FROM volume_type_access;
             DELETE FROM volume_type_encryption; DELETE FROM qos_specs;
             DELETE FROM volume_types_seeded; DELETE FROM project_default_types;",
        )?;
        seed(conn)
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut out = dump_table(conn, "volume_types", "id")?;
        out.extend(dump_table(conn, "project_default_types", "project_id")?);
        out.extend(dump_table(
            conn,
            "volume_type_access",
            "type_id, project_id",
        )?);
        out.extend(dump_table(conn, "volume_type_encryption", "type_id")?);
        out.extend(dump_table(conn, "qos_specs", "id")?);
        Ok(out)
    }
}

/// The seed rows: the documented ids, each its own backend, the extra
/// specs CINDER-7.1.7 shows; ordered before every created type.
fn seed(conn: &Connection) -> rusqlite::Result<()> {
    let zone = domain::Catalog::default().default_zone().to_string();
    let n = domain::catalog::SEED_TYPES.len() as i64;
    for (i, (name, id)) in domain::catalog::SEED_TYPES.iter().enumerate() {
        let specs = BTreeMap::from([
            ("volume_backend_name".to_string(), name.to_string()),
            ("availability-zone".to_string(), zone.clone()),
        ]);
        conn.prepare_cached(
            "INSERT OR IGNORE INTO volume_types VALUES (?1, ?2, NULL, 1, ?3, NULL, 1, ?4)",
        )?
        .execute(params![id, name, specs_json(&specs), i as i64 - n])?;
    }
    conn.execute("INSERT INTO volume_types_seeded VALUES (1)", [])?;
    Ok(())
}

/// The values a seed type's first event carries (its row before any event).
pub fn seed_row(id: &str) -> Option<TypeRow> {
    let zone = domain::Catalog::default().default_zone().to_string();
    domain::catalog::SEED_TYPES
        .iter()
        .find(|(_, i)| *i == id)
        .map(|(name, id)| TypeRow {
            id: id.to_string(),
            name: name.to_string(),
            description: None,
            is_public: true,
            extra_specs: BTreeMap::from([
                ("volume_backend_name".to_string(), name.to_string()),
                ("availability-zone".to_string(), zone),
            ]),
            qos_specs_id: None,
            seeded: true,
            projects: Vec::new(),
        })
}

fn apply_type(
    conn: &Connection,
    ev: &RecordedEvent,
    id: &str,
    e: VolumeTypeEvent,
) -> rusqlite::Result<()> {
    use VolumeTypeEvent as E;
    match e {
        E::VolumeTypeCreated {
            name,
            description,
            is_public,
            extra_specs,
            seeded,
            ..
        } => {
            // A seed type's row is there already (`seed`).
            conn.prepare_cached(
                "INSERT OR IGNORE INTO volume_types VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7)",
            )?
            .execute(params![
                id,
                name,
                description,
                is_public,
                specs_json(&extra_specs),
                seeded,
                ev.position as i64
            ])?;
        }
        E::VolumeTypeUpdated {
            name,
            description,
            is_public,
        } => {
            conn.prepare_cached(
                "UPDATE volume_types SET name = COALESCE(?2, name),
                    description = COALESCE(?3, description),
                    is_public = COALESCE(?4, is_public) WHERE id = ?1",
            )?
            .execute(params![id, name, description, is_public])?;
        }
        E::VolumeTypeDeleted {} => {
            for table in [
                "volume_types",
                "volume_type_access",
                "volume_type_encryption",
            ] {
                let key = if table == "volume_types" {
                    "id"
                } else {
                    "type_id"
                };
                conn.prepare_cached(&format!("DELETE FROM {table} WHERE {key} = ?1"))?
                    .execute([id])?;
            }
        }
        E::VolumeTypeExtraSpecsSet { specs } => {
            let mut all = get(conn, id)?.map(|t| t.extra_specs).unwrap_or_default();
            all.extend(specs);
            set_specs(conn, id, &all)?;
        }
        E::VolumeTypeExtraSpecDeleted { key } => {
            let mut all = get(conn, id)?.map(|t| t.extra_specs).unwrap_or_default();
            all.remove(&key);
            set_specs(conn, id, &all)?;
        }
        E::VolumeTypeAccessAdded { project_id } => {
            conn.prepare_cached("INSERT OR IGNORE INTO volume_type_access VALUES (?1, ?2)")?
                .execute(params![id, project_id])?;
        }
        E::VolumeTypeAccessRemoved { project_id } => {
            conn.prepare_cached(
                "DELETE FROM volume_type_access WHERE type_id = ?1 AND project_id = ?2",
            )?
            .execute(params![id, project_id])?;
        }
        E::VolumeTypeEncryptionSet { encryption: e } => {
            // Created keeps its first time; an update stamps updated_at.
            conn.prepare_cached(
                "INSERT INTO volume_type_encryption VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)
                 ON CONFLICT(type_id) DO UPDATE SET provider = ?3, cipher = ?4,
                    key_size = ?5, control_location = ?6, updated_at = ?7",
            )?
            .execute(params![
                id,
                e.encryption_id.to_string(),
                e.provider,
                e.cipher,
                e.key_size,
                e.control_location,
                stamp(&ev.recorded_at)
            ])?;
        }
        E::VolumeTypeEncryptionDeleted {} => {
            conn.prepare_cached("DELETE FROM volume_type_encryption WHERE type_id = ?1")?
                .execute([id])?;
        }
        E::VolumeTypeQosAssociated { qos_specs_id } => {
            conn.prepare_cached("UPDATE volume_types SET qos_specs_id = ?2 WHERE id = ?1")?
                .execute(params![id, qos_specs_id.to_string()])?;
        }
        E::VolumeTypeQosDisassociated { .. } => {
            conn.prepare_cached("UPDATE volume_types SET qos_specs_id = NULL WHERE id = ?1")?
                .execute([id])?;
        }
    }
    Ok(())
}

fn set_specs(
    conn: &Connection,
    id: &str,
    specs: &BTreeMap<String, String>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE volume_types SET extra_specs = ?2 WHERE id = ?1")?
        .execute(params![id, specs_json(specs)])?;
    Ok(())
}

fn apply_qos(conn: &Connection, ev: &RecordedEvent, id: &str, e: QosEvent) -> rusqlite::Result<()> {
    match e {
        QosEvent::QosSpecsCreated {
            name,
            consumer,
            specs,
            ..
        } => {
            conn.prepare_cached("INSERT INTO qos_specs VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![
                    id,
                    name,
                    consumer,
                    specs_json(&specs),
                    ev.position as i64
                ])?;
        }
        QosEvent::QosSpecsKeysSet { specs } => {
            let mut all = qos(conn, id)?.map(|q| q.specs).unwrap_or_default();
            all.extend(specs);
            conn.prepare_cached("UPDATE qos_specs SET specs = ?2 WHERE id = ?1")?
                .execute(params![id, specs_json(&all)])?;
        }
        QosEvent::QosSpecsKeysUnset { keys } => {
            let mut all = qos(conn, id)?.map(|q| q.specs).unwrap_or_default();
            for k in keys {
                all.remove(&k);
            }
            conn.prepare_cached("UPDATE qos_specs SET specs = ?2 WHERE id = ?1")?
                .execute(params![id, specs_json(&all)])?;
        }
        QosEvent::QosSpecsDeleted {} => {
            conn.prepare_cached("DELETE FROM qos_specs WHERE id = ?1")?
                .execute([id])?;
        }
    }
    Ok(())
}

const TYPE_COLUMNS: &str = "id, name, description, is_public, extra_specs, qos_specs_id, seeded";

fn type_row(conn: &Connection, r: &Row<'_>) -> rusqlite::Result<TypeRow> {
    let id: String = r.get(0)?;
    let projects = conn
        .prepare_cached(
            "SELECT project_id FROM volume_type_access WHERE type_id = ?1 ORDER BY project_id",
        )?
        .query_map([&id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(TypeRow {
        id,
        name: r.get(1)?,
        description: r.get(2)?,
        is_public: r.get(3)?,
        extra_specs: specs_at(r, 4)?,
        qos_specs_id: r.get(5)?,
        seeded: r.get(6)?,
        projects,
    })
}

/// Every live type, in creation order (the seed's first).
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TypeRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TYPE_COLUMNS} FROM volume_types ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(type_row(conn, r)?);
    }
    Ok(out)
}

/// The live type with this id.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<TypeRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TYPE_COLUMNS} FROM volume_types WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(type_row(conn, r)?)),
        None => Ok(None),
    }
}

/// The live type with this name.
pub fn by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<TypeRow>> {
    let id: Option<String> = conn
        .prepare_cached("SELECT id FROM volume_types WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => get(conn, &id),
        None => Ok(None),
    }
}

/// Whether any volume or snapshot (not yet deleted) has the type named
/// `name` (Cinder's VolumeTypeInUse counts both). Snapshots are read from
/// the quota ledger, which holds every live snapshot with its type.
pub fn in_use(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM volumes WHERE volume_type = ?1)
             OR EXISTS(SELECT 1 FROM quota_ledger WHERE kind = 'snapshot' AND volume_type = ?1)",
    )?
    .query_row([name], |r| r.get(0))
}

/// Everything that records the type named `name` by name, and so follows
/// a rename of it: live volumes and snapshots (the quota ledger holds each
/// with its type), and the projects and quota classes with per-type limits
/// of it. At most `limit` of each kind are read (the caller refuses more).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TypeFollowers {
    pub volumes: Vec<String>,
    pub snapshots: Vec<String>,
    pub projects: Vec<String>,
    pub classes: Vec<String>,
}

impl TypeFollowers {
    pub fn len(&self) -> usize {
        self.volumes.len() + self.snapshots.len() + self.projects.len() + self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn followers(conn: &Connection, name: &str, limit: usize) -> rusqlite::Result<TypeFollowers> {
    let keys = domain::quota::type_keys(name);
    let ids = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(TypeFollowers {
        volumes: ids(
            "SELECT id FROM quota_ledger WHERE kind = 'volume' AND volume_type = ?1 ORDER BY id LIMIT ?2",
            &[&name, &limit],
        )?,
        snapshots: ids(
            "SELECT id FROM quota_ledger WHERE kind = 'snapshot' AND volume_type = ?1 ORDER BY id LIMIT ?2",
            &[&name, &limit],
        )?,
        projects: ids(
            "SELECT DISTINCT project_id FROM quota_limits WHERE resource IN (?1, ?2, ?3)
             ORDER BY project_id LIMIT ?4",
            &[&keys[0], &keys[1], &keys[2], &limit],
        )?,
        classes: ids(
            "SELECT DISTINCT class_name FROM quota_class_limits WHERE resource IN (?1, ?2, ?3)
             ORDER BY class_name LIMIT ?4",
            &[&keys[0], &keys[1], &keys[2], &limit],
        )?,
    })
}

pub fn encryption(conn: &Connection, type_id: &str) -> rusqlite::Result<Option<EncryptionRow>> {
    conn.prepare_cached(
        "SELECT type_id, encryption_id, provider, cipher, key_size, control_location,
            created_at, updated_at FROM volume_type_encryption WHERE type_id = ?1",
    )?
    .query_row([type_id], |r| {
        let eid: String = r.get(1)?;
        Ok(EncryptionRow {
            volume_type_id: r.get(0)?,
            encryption: Encryption {
                encryption_id: eid.parse().map_err(|e| crate::conversion(1, e))?,
                provider: r.get(2)?,
                cipher: r.get(3)?,
                key_size: r.get(4)?,
                control_location: r.get(5)?,
            },
            created_at: time_at(r, 6)?,
            updated_at: crate::opt_time_at(r, 7)?,
        })
    })
    .optional()
}

fn qos_row(r: &Row<'_>) -> rusqlite::Result<QosRow> {
    Ok(QosRow {
        id: r.get(0)?,
        name: r.get(1)?,
        consumer: r.get(2)?,
        specs: specs_at(r, 3)?,
    })
}

pub fn qos(conn: &Connection, id: &str) -> rusqlite::Result<Option<QosRow>> {
    conn.prepare_cached("SELECT id, name, consumer, specs FROM qos_specs WHERE id = ?1")?
        .query_row([id], qos_row)
        .optional()
}

/// Microversion 3.62: the type id `project` has set as its default.
pub fn project_default(conn: &Connection, project: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT volume_type_id FROM project_default_types WHERE project_id = ?1")?
        .query_row([project], |r| r.get(0))
        .optional()
}

/// Every project's own default type: (project, type id), by project.
pub fn project_defaults(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT project_id, volume_type_id FROM project_default_types ORDER BY project_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub fn qos_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<QosRow>> {
    conn.prepare_cached("SELECT id, name, consumer, specs FROM qos_specs WHERE name = ?1")?
        .query_row([name], qos_row)
        .optional()
}

/// Every QoS specs set, in creation order.
pub fn qos_list(conn: &Connection) -> rusqlite::Result<Vec<QosRow>> {
    conn.prepare_cached("SELECT id, name, consumer, specs FROM qos_specs ORDER BY seq")?
        .query_map([], qos_row)?
        .collect()
}

/// The types associated with QoS specs `id`: (type id, type name).
pub fn qos_associations(conn: &Connection, id: &str) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached("SELECT id, name FROM volume_types WHERE qos_specs_id = ?1 ORDER BY seq")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use domain::qos::{QosAggregate, QosCommand};
    use domain::volume_type::{EncryptionChange, VolumeTypeAggregate, VolumeTypeCommand as C};
    use domain::{CreateVolume, VolumeAggregate, VolumeCommand};
    use eventstore::EventStore;
    use serde_json::json;
    use uuid::Uuid;

    fn on_type(store: &EventStore, id: Uuid, cmd: C) {
        let meta = json!({"project_id": "admin"});
        store
            .write_blocking(move |tx| {
                tx.execute::<VolumeTypeAggregate>(&id.to_string(), cmd, &meta)
            })
            .unwrap()
            .unwrap();
    }

    fn create(id: Uuid, name: &str, is_public: bool) -> C {
        C::Create {
            id,
            name: name.into(),
            description: Some("d".into()),
            is_public,
            extra_specs: BTreeMap::from([("k".into(), "v".into())]),
            seeded: false,
            name_taken: false,
        }
    }

    /// Every type command folded live, then the view rebuilt from position
    /// 0: the two agree, and the live view says what the events did.
    #[test]
    fn replay_equals_live() {
        let tmp = tempfile::tempdir().unwrap();
        let store = EventStore::open(&tmp.path().join("t.db"), crate::all()).unwrap();
        let (gold, silver, gone) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        on_type(&store, gold, create(gold, "gold", false));
        on_type(&store, silver, create(silver, "silver", true));
        on_type(&store, gone, create(gone, "gone", true));
        on_type(&store, gold, C::AddAccess("p1".into()));
        on_type(&store, gold, C::AddAccess("p2".into()));
        on_type(&store, gold, C::RemoveAccess("p2".into()));
        on_type(
            &store,
            gold,
            C::SetExtraSpecs(BTreeMap::from([("a".into(), "1".into())])),
        );
        on_type(&store, gold, C::DeleteExtraSpec("k".into()));
        on_type(
            &store,
            silver,
            C::Update {
                name: Some("bronze".into()),
                description: None,
                is_public: None,
                name_taken: false,
            },
        );
        on_type(
            &store,
            silver,
            C::CreateEncryption {
                encryption_id: Uuid::new_v4(),
                change: EncryptionChange {
                    provider: Some("luks".into()),
                    ..Default::default()
                },
                in_use: false,
            },
        );
        on_type(
            &store,
            gone,
            C::CreateEncryption {
                encryption_id: Uuid::new_v4(),
                change: EncryptionChange {
                    provider: Some("luks".into()),
                    ..Default::default()
                },
                in_use: false,
            },
        );
        on_type(
            &store,
            gone,
            C::Delete {
                in_use: false,
                is_default: false,
            },
        );
        let qos = Uuid::new_v4();
        let meta = json!({"project_id": "admin"});
        for cmd in [
            QosCommand::Create {
                id: qos,
                name: "fast".into(),
                consumer: None,
                specs: BTreeMap::from([("x".into(), "1".into())]),
                name_taken: false,
            },
            QosCommand::SetKeys(BTreeMap::from([("y".into(), "2".into())])),
            QosCommand::UnsetKeys(vec!["x".into()]),
        ] {
            let meta = meta.clone();
            store
                .write_blocking(move |tx| tx.execute::<QosAggregate>(&qos.to_string(), cmd, &meta))
                .unwrap()
                .unwrap();
        }
        on_type(&store, gold, C::AssociateQos(qos));
        // A volume of type bronze: the type is in use.
        let vol = Uuid::new_v4();
        let cmd = VolumeCommand::Create(Box::new(CreateVolume {
            volume_id: vol,
            project_id: "p1".into(),
            user_id: "u".into(),
            name: None,
            description: None,
            size: 1,
            availability_zone: "az-dc-1".into(),
            volume_type: "bronze".into(),
            metadata: Default::default(),
            multiattach: false,
            job_id: None,
            batch_job_id: None,
            source: None,
            backend: None,
            quota: domain::quota::Headroom::unlimited(),
        }));
        let m = meta.clone();
        store
            .write_blocking(move |tx| tx.execute::<VolumeAggregate>(&vol.to_string(), cmd, &m))
            .unwrap()
            .unwrap();

        let g = store
            .read(|c| super::get(c, &gold.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(g.projects, ["p1"]);
        assert_eq!(g.extra_specs, BTreeMap::from([("a".into(), "1".into())]));
        assert_eq!(g.qos_specs_id, Some(qos.to_string()));
        assert!(g.visible_to("p1", false) && !g.visible_to("p2", false));
        let names: Vec<String> = store
            .read(super::list)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["SSD", "SAS", "SATA", "gold", "bronze"]);
        assert!(store.read(|c| super::in_use(c, "bronze")).unwrap());
        assert!(!store.read(|c| super::in_use(c, "gold")).unwrap());
        assert!(store
            .read(|c| super::encryption(c, &gone.to_string()))
            .unwrap()
            .is_none());
        let q = store
            .read(|c| super::qos(c, &qos.to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(q.specs, BTreeMap::from([("y".into(), "2".into())]));
        assert_eq!(
            store
                .read(|c| super::qos_associations(c, &qos.to_string()))
                .unwrap(),
            vec![(gold.to_string(), "gold".to_string())]
        );

        // A seed type's stream begins at its first change; once deleted it
        // stays deleted when the store is opened again.
        let sas = Uuid::parse_str(domain::catalog::SEED_TYPES[1].1).unwrap();
        let row = super::seed_row(&sas.to_string()).unwrap();
        on_type(
            &store,
            sas,
            C::Create {
                id: sas,
                name: row.name,
                description: row.description,
                is_public: row.is_public,
                extra_specs: row.extra_specs,
                seeded: true,
                name_taken: false,
            },
        );
        on_type(
            &store,
            sas,
            C::Delete {
                in_use: false,
                is_default: false,
            },
        );
        let seed_ids = |store: &EventStore| -> Vec<String> {
            store
                .read(super::list)
                .unwrap()
                .into_iter()
                .filter(|t| t.seeded)
                .map(|t| t.name)
                .collect()
        };
        assert_eq!(seed_ids(&store), ["SSD", "SATA"]);
        store.close();
        let store = EventStore::open(&tmp.path().join("t.db"), crate::all()).unwrap();
        assert_eq!(seed_ids(&store), ["SSD", "SATA"]);

        let view = super::VolumeTypesProjection;
        let live = store
            .read(|c| eventstore::InlineProjection::dump(&view, c))
            .unwrap();
        store.rebuild_projections().unwrap();
        let replayed = store
            .read(|c| eventstore::InlineProjection::dump(&view, c))
            .unwrap();
        assert_eq!(live, replayed);
        assert_eq!(store.verify_projections().unwrap(), None);
    }
}
