//! The identity view (issue 13): users, projects, role assignments and API
//! key owners, folded from the `identity` stream. No secret is here (nor in
//! the events): password and key hashes and tokens are the API's own
//! tables beside the log, which a rebuild of the views never touches.

use domain::identity::{IdentityEvent, Role, STREAM};
use eventstore::rusqlite::{self, params, Connection, OptionalExtension};
use eventstore::{InlineProjection, RecordedEvent};

use crate::dump_table;

pub struct IdentityProjection;

const TABLES: [&str; 4] = [
    "identity_users",
    "identity_projects",
    "identity_grants",
    "identity_keys",
];

impl InlineProjection for IdentityProjection {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn drop_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        for t in TABLES {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {t};"))?;
        }
        Ok(())
    }

    fn init_schema(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS identity_users (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                domain_id TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS identity_projects (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                domain_id TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS identity_grants (
                user_id TEXT NOT NULL,
                project_id TEXT NOT NULL,
                role TEXT NOT NULL,
                PRIMARY KEY (user_id, project_id, role)
            );
            CREATE TABLE IF NOT EXISTS identity_keys (
                api_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                project_id TEXT NOT NULL
            );",
        )
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent) -> rusqlite::Result<()> {
        if ev.stream_id != STREAM {
            return Ok(());
        }
        let Ok(e) = ev.decode::<IdentityEvent>() else {
            return Ok(());
        };
        match e {
            IdentityEvent::UserAdded {
                user_id,
                name,
                domain_id,
            } => {
                conn.prepare_cached("INSERT INTO identity_users VALUES (?1, ?2, ?3)")?
                    .execute(params![user_id, name, domain_id])?;
            }
            IdentityEvent::UserPasswordSet { .. } => {}
            IdentityEvent::UserDeleted { user_id } => {
                for t in ["identity_grants", "identity_keys"] {
                    conn.prepare_cached(&format!("DELETE FROM {t} WHERE user_id = ?1"))?
                        .execute([&user_id])?;
                }
                conn.prepare_cached("DELETE FROM identity_users WHERE id = ?1")?
                    .execute([&user_id])?;
            }
            IdentityEvent::ProjectAdded {
                project_id,
                name,
                domain_id,
            } => {
                conn.prepare_cached("INSERT INTO identity_projects VALUES (?1, ?2, ?3)")?
                    .execute(params![project_id, name, domain_id])?;
            }
            IdentityEvent::RoleGranted {
                user_id,
                project_id,
                role,
            } => {
                conn.prepare_cached("INSERT OR IGNORE INTO identity_grants VALUES (?1, ?2, ?3)")?
                    .execute(params![user_id, project_id, role.as_str()])?;
            }
            IdentityEvent::ApiKeyAdded {
                api_id,
                user_id,
                project_id,
            } => {
                conn.prepare_cached("INSERT INTO identity_keys VALUES (?1, ?2, ?3)")?
                    .execute(params![api_id, user_id, project_id])?;
            }
        }
        Ok(())
    }

    fn clear(&self, conn: &Connection) -> rusqlite::Result<()> {
        for t in TABLES {
            conn.execute_batch(&format!("DELETE FROM {t};"))?;
        }
        Ok(())
    }

    fn dump(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let mut out = dump_table(conn, "identity_users", "id")?;
        out.extend(dump_table(conn, "identity_projects", "id")?);
        out.extend(dump_table(
            conn,
            "identity_grants",
            "user_id, project_id, role",
        )?);
        out.extend(dump_table(conn, "identity_keys", "api_id")?);
        Ok(out)
    }
}

/// A user or a project: id, name, domain id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub name: String,
    pub domain_id: String,
}

fn named(conn: &Connection, table: &str, column: &str, v: &str) -> rusqlite::Result<Option<Named>> {
    conn.prepare_cached(&format!(
        "SELECT id, name, domain_id FROM {table} WHERE {column} = ?1"
    ))?
    .query_row([v], |r| {
        Ok(Named {
            id: r.get(0)?,
            name: r.get(1)?,
            domain_id: r.get(2)?,
        })
    })
    .optional()
}

pub fn user_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<Named>> {
    named(conn, "identity_users", "name", name)
}

pub fn user_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Named>> {
    named(conn, "identity_users", "id", id)
}

pub fn project_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<Named>> {
    named(conn, "identity_projects", "name", name)
}

pub fn project_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Named>> {
    named(conn, "identity_projects", "id", id)
}

/// The user's roles on the project, strongest first.
pub fn roles(conn: &Connection, user_id: &str, project_id: &str) -> rusqlite::Result<Vec<Role>> {
    let mut stmt = conn.prepare_cached(
        "SELECT role FROM identity_grants WHERE user_id = ?1 AND project_id = ?2",
    )?;
    let names = stmt
        .query_map([user_id, project_id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out: Vec<Role> = names.iter().filter_map(|n| Role::parse(n)).collect();
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Who an API key belongs to: (user id, project id).
pub fn key_owner(conn: &Connection, api_id: &str) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached("SELECT user_id, project_id FROM identity_keys WHERE api_id = ?1")?
        .query_row([api_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

pub fn users(conn: &Connection) -> rusqlite::Result<Vec<Named>> {
    all(conn, "identity_users")
}

pub fn projects(conn: &Connection) -> rusqlite::Result<Vec<Named>> {
    all(conn, "identity_projects")
}

fn all(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Named>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, name, domain_id FROM {table} ORDER BY name"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(Named {
            id: r.get(0)?,
            name: r.get(1)?,
            domain_id: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Every grant as (user name, project name, role), for listings.
pub fn grants(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT u.name, p.name, g.role FROM identity_grants g
         JOIN identity_users u ON u.id = g.user_id
         JOIN identity_projects p ON p.id = g.project_id
         ORDER BY u.name, p.name, g.role",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}
