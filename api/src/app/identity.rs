//! Identity use cases (issue 13): adding users, projects, grants and API
//! keys (events on the `identity` stream, through `App::run`, so the
//! admin who did it is in each event's metadata), and keeping the secrets
//! beside the log: argon2 password hashes, SHA-256 of API key secrets and
//! of tokens. Those tables are not views: a rebuild never touches them, a
//! password change overwrites its row, and nothing in them is usable as a
//! credential if the database is read.

use chrono::{DateTime, Utc};
use domain::identity::{IdentityAggregate, IdentityCommand, Role};
use domain::{DomainError, FieldReason};
use eventstore::rusqlite::{self, params, OptionalExtension};
use eventstore::StoreError;
use projections::identity::{self as view, Named};

use super::{App, AppError, Caller, RequestMeta};

/// Created at every start (`init`); beside the log, never in it.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity_passwords (
    user_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_key_secrets (
    api_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_tokens (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    audit_id TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS identity_tokens_expiry ON identity_tokens (expires_at);
";

pub async fn init(app: &App) -> Result<(), AppError> {
    app.store
        .write(|w| -> Result<(), StoreError> { Ok(w.conn().execute_batch(SCHEMA)?) })
        .await?;
    Ok(())
}

fn refused(field: &'static str, reason: FieldReason, msg: String) -> AppError {
    AppError::refused(
        domain::identity::STREAM,
        DomainError::invalid(field, reason, msg),
    )
}

fn user_id_of(tx: &super::Tx<'_, '_>, name: &str) -> Result<String, AppError> {
    view::user_by_name(tx.conn(), name)?
        .or(view::user_by_id(tx.conn(), name)?)
        .map(|u| u.id)
        .ok_or_else(|| refused("user", FieldReason::NotFound, format!("no user {name}")))
}

fn project_id_of(tx: &super::Tx<'_, '_>, name: &str) -> Result<String, AppError> {
    view::project_by_name(tx.conn(), name)?
        .or(view::project_by_id(tx.conn(), name)?)
        .map(|p| p.id)
        .ok_or_else(|| {
            refused(
                "project",
                FieldReason::NotFound,
                format!("no project {name}"),
            )
        })
}

/// A new user with its (already hashed) password; returns the user id.
pub async fn add_user(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    name: String,
    password_hash: String,
) -> Result<String, AppError> {
    let user_id = uuid::Uuid::new_v4().simple().to_string();
    app.run(caller, meta, None, move |tx| {
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::AddUser {
                user_id: user_id.clone(),
                name,
            },
        )?;
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::SetPassword {
                user_id: user_id.clone(),
            },
        )?;
        tx.conn()
            .execute(
                "INSERT OR REPLACE INTO identity_passwords VALUES (?1, ?2)",
                params![user_id, password_hash],
            )
            .map_err(AppError::from)?;
        Ok(user_id)
    })
    .await
}

/// Replaces a user's password; its tokens stay valid until they expire or
/// are revoked, as in Keystone.
pub async fn set_password(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    user: String,
    password_hash: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let user_id = user_id_of(tx, &user)?;
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::SetPassword {
                user_id: user_id.clone(),
            },
        )?;
        tx.conn().execute(
            "INSERT OR REPLACE INTO identity_passwords VALUES (?1, ?2)",
            params![user_id, password_hash],
        )?;
        Ok(())
    })
    .await
}

/// Deletes a user: its grants and keys go with it (the view folds that),
/// its secrets are forgotten and its tokens stop working at once.
pub async fn delete_user(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    user: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let user_id = user_id_of(tx, &user)?;
        let keys: Vec<String> = {
            let mut st = tx
                .conn()
                .prepare("SELECT api_id FROM identity_keys WHERE user_id = ?1")?;
            let rows = st.query_map([&user_id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::DeleteUser {
                user_id: user_id.clone(),
            },
        )?;
        let c = tx.conn();
        c.execute(
            "DELETE FROM identity_passwords WHERE user_id = ?1",
            [&user_id],
        )?;
        for k in keys {
            c.execute("DELETE FROM identity_key_secrets WHERE api_id = ?1", [&k])?;
        }
        c.execute(
            "UPDATE identity_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            params![user_id, stamp(Utc::now())],
        )?;
        Ok(())
    })
    .await
}

/// A new project; its id is `id` if given (so a deployment can keep the
/// ids its clients know), else a new 32-hex id as Keystone makes them.
pub async fn add_project(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    name: String,
    id: Option<String>,
) -> Result<String, AppError> {
    let project_id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    app.run(caller, meta, None, move |tx| {
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::AddProject {
                project_id: project_id.clone(),
                name,
            },
        )?;
        Ok(project_id)
    })
    .await
}

/// Grants `role` on `project` (name or id) to `user` (name or id).
pub async fn grant(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    user: String,
    project: String,
    role: Role,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let user_id = user_id_of(tx, &user)?;
        let project_id = project_id_of(tx, &project)?;
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::Grant {
                user_id,
                project_id,
                role,
            },
        )?;
        Ok(())
    })
    .await
}

/// A new API key for `user` on `project`: the id is public, the secret's
/// SHA-256 is kept (the secret is random, 256 bits: a slow hash adds
/// nothing) and the secret itself is returned once.
pub async fn add_key(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    user: String,
    project: String,
    secret_hash: String,
) -> Result<String, AppError> {
    let api_id = uuid::Uuid::new_v4().simple().to_string();
    app.run(caller, meta, None, move |tx| {
        let user_id = user_id_of(tx, &user)?;
        let project_id = project_id_of(tx, &project)?;
        tx.execute::<IdentityAggregate>(
            "",
            IdentityCommand::AddApiKey {
                api_id: api_id.clone(),
                user_id,
                project_id,
            },
        )?;
        tx.conn().execute(
            "INSERT INTO identity_key_secrets VALUES (?1, ?2)",
            params![api_id, secret_hash],
        )?;
        Ok(api_id)
    })
    .await
}

/// A user, by id or by name, and its password hash.
pub async fn password_of(
    app: &App,
    user_id: Option<String>,
    name: Option<String>,
) -> Result<Option<(Named, Option<String>)>, AppError> {
    app.read(move |c| {
        let user = match (user_id, name) {
            (Some(id), _) => view::user_by_id(c, &id)?,
            (None, Some(n)) => view::user_by_name(c, &n)?,
            (None, None) => None,
        };
        let Some(user) = user else { return Ok(None) };
        let hash = c
            .prepare_cached("SELECT hash FROM identity_passwords WHERE user_id = ?1")?
            .query_row([&user.id], |r| r.get(0))
            .optional()?;
        Ok(Some((user, hash)))
    })
    .await
}

pub async fn project(
    app: &App,
    id: Option<String>,
    name: Option<String>,
) -> Result<Option<Named>, AppError> {
    app.read(move |c| match (id, name) {
        (Some(id), _) => view::project_by_id(c, &id),
        (None, Some(n)) => view::project_by_name(c, &n),
        (None, None) => Ok(None),
    })
    .await
}

pub async fn roles(app: &App, user_id: String, project_id: String) -> Result<Vec<Role>, AppError> {
    app.read(move |c| view::roles(c, &user_id, &project_id))
        .await
}

/// A token as stored: everything but the token itself.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub hash: String,
    pub user: Named,
    pub project: Named,
    /// The user's current roles on the project (a revoked grant or a
    /// deleted user takes effect on the next request).
    pub roles: Vec<Role>,
    pub audit_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Stores an issued token (by its hash). Not an event: issuing a token
/// changes no one's rights, and readers get tokens too (so this does not
/// go through `App::run`'s policy check).
pub async fn store_token(
    app: &App,
    hash: String,
    user_id: String,
    project_id: String,
    audit_id: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), AppError> {
    app.store
        .write(move |w| -> Result<(), StoreError> {
            let c = w.conn();
            // Expired tokens are of no use to anyone: forget them as new
            // ones come, so the table stays the size of the live ones.
            c.prepare_cached("DELETE FROM identity_tokens WHERE expires_at < ?1")?
                .execute([stamp(Utc::now() - chrono::Duration::hours(1))])?;
            c.prepare_cached("INSERT INTO identity_tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)")?
                .execute(params![
                    hash,
                    user_id,
                    project_id,
                    audit_id,
                    stamp(issued_at),
                    stamp(expires_at)
                ])?;
            Ok(())
        })
        .await?;
    Ok(())
}

/// The token whose SHA-256 is `hash`, with its user and project as they
/// are now; None if unknown or its user or project is gone.
pub async fn token(app: &App, hash: String) -> Result<Option<TokenRecord>, AppError> {
    app.read(move |c| {
        let row: Option<(String, String, String, String, String, Option<String>)> = c
            .prepare_cached(
                "SELECT user_id, project_id, audit_id, issued_at, expires_at, revoked_at
                 FROM identity_tokens WHERE hash = ?1",
            )?
            .query_row([&hash], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        let Some((user_id, project_id, audit_id, issued, expires, revoked)) = row else {
            return Ok(None);
        };
        let (Some(user), Some(project)) = (
            view::user_by_id(c, &user_id)?,
            view::project_by_id(c, &project_id)?,
        ) else {
            return Ok(None);
        };
        let roles = view::roles(c, &user_id, &project_id)?;
        Ok(Some(TokenRecord {
            hash,
            user,
            project,
            roles,
            audit_id,
            issued_at: parse_time(&issued),
            expires_at: parse_time(&expires),
            revoked: revoked.is_some(),
        }))
    })
    .await
}

/// Revokes the token whose SHA-256 is `hash`; false if there is none.
pub async fn revoke_token(app: &App, hash: String) -> Result<bool, AppError> {
    Ok(app
        .store
        .write(move |w| -> Result<usize, StoreError> {
            Ok(w.conn().execute(
                "UPDATE identity_tokens SET revoked_at = ?2 WHERE hash = ?1 AND revoked_at IS NULL",
                params![hash, stamp(Utc::now())],
            )?)
        })
        .await?
        > 0)
}

/// An API key's owner (user id, project id) and secret hash.
pub async fn key(app: &App, api_id: String) -> Result<Option<(String, String, String)>, AppError> {
    app.read(move |c| {
        let Some((user, project)) = view::key_owner(c, &api_id)? else {
            return Ok(None);
        };
        let hash: Option<String> = c
            .prepare_cached("SELECT hash FROM identity_key_secrets WHERE api_id = ?1")?
            .query_row([&api_id], |r| r.get(0))
            .optional()?;
        Ok(hash.map(|h| (user, project, h)))
    })
    .await
}

/// Users (with their grants as `user, project, role` names) and projects,
/// for the CLI's listings.
pub async fn listing(
    app: &App,
) -> Result<(Vec<Named>, Vec<Named>, Vec<(String, String, String)>), AppError> {
    app.read(|c| Ok((view::users(c)?, view::projects(c)?, view::grants(c)?)))
        .await
}

/// Records a refusal made outside a use case (a failed authentication):
/// the named user, never the secret, as the request's metadata.
pub async fn record_refusal(
    app: &App,
    meta: &RequestMeta,
    who: &str,
    error: DomainError,
) -> Result<(), AppError> {
    let metadata = serde_json::json!({
        "request_id": meta.request_id,
        "project_id": null,
        "user_id": who,
        "dialect": meta.dialect,
        "route": meta.route,
        "idempotency_key": null,
        "correlation_id": null,
        "remote_addr": meta.remote_addr,
        "method": meta.method_and_path().0,
        "path": meta.method_and_path().1,
    });
    app.store
        .write(move |w| w.reject(domain::identity::STREAM, &error, &metadata))
        .await?;
    Ok(())
}
