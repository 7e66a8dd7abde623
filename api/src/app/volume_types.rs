//! Volume type management (Cinder's types_manage, types_extra_specs,
//! volume_type_access and volume_type_encryption; issue 12): one use case
//! per operation, each one transaction. Changes are an administrator's
//! (Cinder's policy), refused here, in the application layer, as other
//! admin-only operations are. Reads go through the volume types view,
//! which also gives every create and retype the types the caller may use
//! (`catalog`).

use std::collections::BTreeMap;

use domain::catalog::VolumeType as CatalogType;
use domain::default_type::{DefaultTypeAggregate, DefaultTypeCommand};
use domain::volume_type::{EncryptionChange, VolumeTypeAggregate, VolumeTypeCommand as C};
use domain::{Aggregate, Catalog, DomainError};
use eventstore::rusqlite::Connection;
use projections::volume_types::{self as view, EncryptionRow, TypeRow};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta, Tx};

/// The types `caller` may see and use, over `base`'s zones: Cinder shows a
/// private type only to the projects it is shared with, and to admin.
pub fn catalog(conn: &Connection, base: &Catalog, caller: &Caller) -> Result<Catalog, AppError> {
    let rows = view::list(conn)?;
    // Microversion 3.62: the project's own default, where it set one,
    // overrides the configured one.
    let own = view::project_default(conn, &caller.project_id)?;
    let default_id = own.as_deref().or(base.default_type_id());
    let default_name = rows
        .iter()
        .find(|t| Some(t.id.as_str()) == default_id)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| base.default_type.clone());
    let types = rows
        .into_iter()
        .filter(|t| t.visible_to(&caller.project_id, caller.is_admin))
        .map(|t| CatalogType {
            name: t.name,
            id: t.id,
        })
        .collect();
    Ok(base.with_types(types, default_name))
}

/// The type `raw` names (its id, or its name) if `caller` may see it.
pub fn visible(
    conn: &Connection,
    caller: &Caller,
    raw: &str,
) -> eventstore::rusqlite::Result<Option<TypeRow>> {
    let row = match view::get(conn, raw)? {
        Some(t) => Some(t),
        None => view::by_name(conn, raw)?,
    };
    Ok(row.filter(|t| t.visible_to(&caller.project_id, caller.is_admin)))
}

fn not_found(raw: &str) -> AppError {
    AppError::refused(
        VolumeTypeAggregate::stream_id(raw),
        DomainError::VolumeTypeNotFound(raw.to_string()),
    )
}

fn admin_only(tx: &Tx<'_, '_>, raw: &str) -> Result<(), AppError> {
    if tx.caller.is_admin {
        Ok(())
    } else {
        Err(AppError::refused(
            VolumeTypeAggregate::stream_id(raw),
            DomainError::NotPermitted("Policy doesn't allow volume type management.".into()),
        ))
    }
}

/// The live type `raw` names, for a change by admin.
fn target(tx: &Tx<'_, '_>, raw: &str) -> Result<TypeRow, AppError> {
    admin_only(tx, raw)?;
    visible(tx.conn(), tx.caller, raw)?.ok_or_else(|| not_found(raw))
}

/// A seed type (the configured catalog's) is in the view from the start,
/// without events, so a fresh log holds only what clients did. Its stream
/// begins with the first change an admin makes: its creation, with the
/// values the view shows, is appended first in the same transaction (and
/// undone with the change if the change is refused).
pub(crate) fn materialize(tx: &mut Tx<'_, '_>, t: &TypeRow) -> Result<(), AppError> {
    if !t.seeded {
        return Ok(());
    }
    let (st, _) = tx.w.load::<VolumeTypeAggregate>(&t.id)?;
    if st.volume_type.is_some() {
        return Ok(());
    }
    let Some(seed) = view::seed_row(&t.id) else {
        return Ok(());
    };
    let id = Uuid::parse_str(&t.id).map_err(|_| not_found(&t.id))?;
    tx.execute::<VolumeTypeAggregate>(
        &t.id,
        C::Create {
            id,
            name: seed.name,
            description: seed.description,
            is_public: seed.is_public,
            extra_specs: seed.extra_specs,
            seeded: true,
            name_taken: false,
        },
    )?;
    Ok(())
}

pub struct CreateTypeRequest {
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: BTreeMap<String, String>,
}

/// `POST /types`: the new type.
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateTypeRequest,
) -> Result<TypeRow, AppError> {
    let id = Uuid::new_v4();
    app.run(caller, meta, None, move |tx| {
        admin_only(tx, &id.to_string())?;
        let name_taken = view::by_name(tx.conn(), &r.name)?.is_some();
        tx.execute::<VolumeTypeAggregate>(
            &id.to_string(),
            C::Create {
                id,
                name: r.name,
                description: r.description,
                is_public: r.is_public,
                extra_specs: r.extra_specs,
                seeded: false,
                name_taken,
            },
        )?;
        view::get(tx.conn(), &id.to_string())?.ok_or_else(|| not_found(&id.to_string()))
    })
    .await
}

/// `PUT /types/{id}`: the type as changed.
pub async fn update(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    name: Option<String>,
    description: Option<String>,
    is_public: Option<bool>,
) -> Result<TypeRow, AppError> {
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        materialize(tx, &t)?;
        let name_taken = match &name {
            Some(n) => view::by_name(tx.conn(), n)?.is_some_and(|o| o.id != t.id),
            None => false,
        };
        let renamed = name.clone().filter(|n| *n != t.name);
        tx.execute::<VolumeTypeAggregate>(
            &t.id,
            C::Update {
                name,
                description,
                is_public,
                name_taken,
            },
        )?;
        if let Some(to) = renamed {
            follow_rename(tx, &t, to)?;
        }
        view::get(tx.conn(), &t.id)?.ok_or_else(|| not_found(&raw))
    })
    .await
}

/// At most this many volumes, snapshots, projects and quota classes follow
/// one rename (each gets an event in the rename's transaction, which holds
/// the writer meanwhile: about 10 ms per thousand).
pub const MAX_RENAME_FOLLOWERS: usize = 10_000;

/// A rename as Cinder does it: volumes and snapshots show the new name,
/// and the per-type quota limits and usage (`volumes_<type>`, …) move to
/// it (Cinder's `update_quota_resource`). Here each of them records the
/// rename in its own stream, so each aggregate's fold, and every view
/// built from the log, agree on the type's name.
fn follow_rename(tx: &mut Tx<'_, '_>, t: &TypeRow, to: String) -> Result<(), AppError> {
    use domain::quota::{QuotaAggregate, QuotaClassAggregate, QuotaClassCommand, QuotaCommand};
    use domain::snapshot::{SnapshotAggregate, SnapshotCommand};
    use domain::volume::{VolumeAggregate, VolumeCommand};
    let from = t.name.clone();
    let f = view::followers(tx.conn(), &from, MAX_RENAME_FOLLOWERS + 1)?;
    if f.len() > MAX_RENAME_FOLLOWERS {
        return Err(AppError::refused(
            VolumeTypeAggregate::stream_id(&t.id),
            DomainError::invalid(
                "name",
                domain::FieldReason::Invalid,
                format!(
                    "Volume type {from} is recorded by more than {MAX_RENAME_FOLLOWERS} volumes, snapshots and quotas; a rename is limited to that many."
                ),
            ),
        ));
    }
    for id in &f.volumes {
        tx.execute::<VolumeAggregate>(
            id,
            VolumeCommand::FollowTypeRename {
                from: from.clone(),
                to: to.clone(),
            },
        )?;
    }
    for id in &f.snapshots {
        tx.execute::<SnapshotAggregate>(
            id,
            SnapshotCommand::FollowTypeRename {
                from: from.clone(),
                to: to.clone(),
            },
        )?;
    }
    for p in &f.projects {
        tx.execute::<QuotaAggregate>(
            p,
            (
                p.clone(),
                QuotaCommand::FollowTypeRename {
                    from: from.clone(),
                    to: to.clone(),
                },
            ),
        )?;
    }
    for c in &f.classes {
        tx.execute::<QuotaClassAggregate>(
            c,
            QuotaClassCommand::FollowTypeRename {
                class_name: c.clone(),
                from: from.clone(),
                to: to.clone(),
            },
        )?;
    }
    Ok(())
}

/// `DELETE /types/{id}`: refused while volumes use it, and for the default.
pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
) -> Result<(), AppError> {
    let default_id = app.catalog.default_type_id().map(String::from);
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        materialize(tx, &t)?;
        // g17: a type a generic group lists is in use too (Cinder's
        // `volume_type_destroy` counts group type mappings).
        let in_use = view::in_use(tx.conn(), &t.name)?
            || projections::groups::volume_type_in_groups(tx.conn(), &t.id)?;
        // The configured default, or a project's own (3.62).
        let is_default = default_id.as_deref() == Some(t.id.as_str())
            || view::project_defaults(tx.conn())?
                .iter()
                .any(|(_, id)| *id == t.id);
        tx.execute::<VolumeTypeAggregate>(&t.id, C::Delete { in_use, is_default })?;
        Ok(())
    })
    .await
}

/// One command on the type `raw` names, by admin.
async fn on_type(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    cmd: impl FnOnce(&Tx<'_, '_>, &TypeRow) -> Result<C, AppError> + Send + 'static,
) -> Result<TypeRow, AppError> {
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        materialize(tx, &t)?;
        let cmd = cmd(tx, &t)?;
        tx.execute::<VolumeTypeAggregate>(&t.id, cmd)?;
        view::get(tx.conn(), &t.id)?.ok_or_else(|| not_found(&raw))
    })
    .await
}

/// `POST /types/{id}/extra_specs` (merge) and `PUT …/extra_specs/{key}`.
pub async fn set_extra_specs(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    specs: BTreeMap<String, String>,
) -> Result<(), AppError> {
    on_type(app, caller, meta, raw, move |_, _| {
        Ok(C::SetExtraSpecs(specs))
    })
    .await
    .map(|_| ())
}

/// `DELETE /types/{id}/extra_specs/{key}`.
pub async fn delete_extra_spec(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    key: String,
) -> Result<(), AppError> {
    on_type(app, caller, meta, raw, move |_, _| {
        Ok(C::DeleteExtraSpec(key))
    })
    .await
    .map(|_| ())
}

/// `addProjectAccess` / `removeProjectAccess`.
pub async fn access(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    project: String,
    add: bool,
) -> Result<(), AppError> {
    on_type(app, caller, meta, raw, move |_, _| {
        Ok(if add {
            C::AddAccess(project)
        } else {
            C::RemoveAccess(project)
        })
    })
    .await
    .map(|_| ())
}

/// `POST /types/{id}/encryption`: the encryption as created.
pub async fn create_encryption(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    change: EncryptionChange,
) -> Result<EncryptionRow, AppError> {
    let t = on_type(app, caller, meta, raw.clone(), move |tx, t| {
        Ok(C::CreateEncryption {
            encryption_id: Uuid::new_v4(),
            change,
            in_use: view::in_use(tx.conn(), &t.name)?,
        })
    })
    .await?;
    encryption_of(app, &t.id, &raw).await
}

/// `PUT /types/{id}/encryption/{encryption_id}`.
pub async fn update_encryption(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    encryption_id: String,
    change: EncryptionChange,
) -> Result<EncryptionRow, AppError> {
    let t = on_type(app, caller, meta, raw.clone(), move |tx, t| {
        check_encryption_id(tx.conn(), t, &encryption_id)?;
        Ok(C::UpdateEncryption {
            change,
            in_use: view::in_use(tx.conn(), &t.name)?,
        })
    })
    .await?;
    encryption_of(app, &t.id, &raw).await
}

/// `DELETE /types/{id}/encryption/{encryption_id}`.
pub async fn delete_encryption(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    encryption_id: String,
) -> Result<(), AppError> {
    on_type(app, caller, meta, raw, move |tx, t| {
        check_encryption_id(tx.conn(), t, &encryption_id)?;
        Ok(C::DeleteEncryption {
            in_use: view::in_use(tx.conn(), &t.name)?,
        })
    })
    .await
    .map(|_| ())
}

/// The path's encryption id must be the type's (404 otherwise).
fn check_encryption_id(conn: &Connection, t: &TypeRow, eid: &str) -> Result<(), AppError> {
    match view::encryption(conn, &t.id)? {
        Some(e) if e.encryption.encryption_id.to_string() == eid => Ok(()),
        _ => Err(AppError::refused(
            VolumeTypeAggregate::stream_id(&t.id),
            DomainError::EncryptionNotFound(t.id.clone()),
        )),
    }
}

async fn encryption_of(app: &App, type_id: &str, raw: &str) -> Result<EncryptionRow, AppError> {
    let id = type_id.to_string();
    app.read(move |c| view::encryption(c, &id))
        .await?
        .ok_or_else(|| {
            AppError::refused(
                VolumeTypeAggregate::stream_id(raw),
                DomainError::EncryptionNotFound(raw.to_string()),
            )
        })
}

// Reads: not recorded when refused.

/// `GET /types`: the types the caller may see; admin may filter on
/// `is_public` (None: all for admin; members see public and shared ones).
pub async fn list(
    app: &App,
    caller: &Caller,
    is_public: Option<bool>,
    extra_specs: &BTreeMap<String, String>,
) -> Result<Vec<TypeRow>, AppError> {
    let caller = caller.clone();
    let rows = app.read(view::list).await?;
    Ok(rows
        .into_iter()
        .filter(|t| t.visible_to(&caller.project_id, caller.is_admin))
        .filter(|t| is_public.is_none_or(|p| t.is_public == p))
        // Microversion 3.52: types holding every asked spec with its value.
        .filter(|t| {
            extra_specs
                .iter()
                .all(|(k, v)| t.extra_specs.get(k) == Some(v))
        })
        .collect())
}

/// `GET /types/{id}` (by id or name) and `GET /types/default`.
pub async fn show(app: &App, caller: &Caller, raw: String) -> Result<TypeRow, AppError> {
    let caller = caller.clone();
    let project = caller.project_id.clone();
    let own = app
        .read(move |c| view::project_default(c, &project))
        .await?;
    let default_id = own.or_else(|| app.catalog.default_type_id().map(String::from));
    let raw = if raw == "default" {
        default_id.unwrap_or(raw)
    } else {
        raw
    };
    let key = raw.clone();
    app.read(move |c| visible(c, &caller, &key))
        .await?
        .ok_or_else(|| not_found(&raw))
}

/// `GET /types/{id}/encryption`: None when the type has none (Cinder
/// answers `{}`).
pub async fn encryption(
    app: &App,
    caller: &Caller,
    raw: String,
) -> Result<Option<EncryptionRow>, AppError> {
    // Cinder's policy: encryption specs are an administrator's to read.
    if !caller.is_admin {
        return Err(AppError::refused(
            VolumeTypeAggregate::stream_id(&raw),
            DomainError::NotPermitted("Policy doesn't allow reading encryption specs.".into()),
        ));
    }
    let t = show(app, caller, raw).await?;
    app.read(move |c| view::encryption(c, &t.id)).await
}

/// `GET /types/{id}/os-volume-type-access`: admin only; Cinder answers 404
/// for a public type ("Access list not available for public volume
/// types").
pub async fn access_list(app: &App, caller: &Caller, raw: String) -> Result<TypeRow, AppError> {
    if !caller.is_admin {
        return Err(AppError::refused(
            VolumeTypeAggregate::stream_id(&raw),
            DomainError::NotPermitted("Policy doesn't allow volume type access listing.".into()),
        ));
    }
    let t = show(app, caller, raw.clone()).await?;
    if t.is_public {
        return Err(AppError::refused(
            VolumeTypeAggregate::stream_id(&raw),
            DomainError::TypeAccessNotFound {
                type_id: t.id,
                project: "(public type)".into(),
            },
        ));
    }
    Ok(t)
}

/// Every type's name (the per-type quota keys), whoever asks.
/// Every type's id by its name (names are unique), for bodies that show a
/// volume's type id beside the name it records (microversion 3.63).
pub async fn ids_by_name(app: &App) -> Result<std::collections::HashMap<String, String>, AppError> {
    Ok(app
        .read(view::list)
        .await?
        .into_iter()
        .map(|t| (t.name, t.id))
        .collect())
}

pub async fn names(app: &App) -> Result<Vec<String>, AppError> {
    Ok(app
        .read(view::list)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect())
}

/// Microversion 3.62 (`/default-types`): an administrator's, as Cinder's
/// policy has it.
fn default_types_admin(tx: &Tx<'_, '_>, project: &str) -> Result<(), AppError> {
    if tx.caller.is_admin {
        Ok(())
    } else {
        Err(AppError::refused(
            DefaultTypeAggregate::stream_id(project),
            DomainError::NotPermitted("Policy doesn't allow default type management.".into()),
        ))
    }
}

/// `PUT /default-types/{project}`: `raw` (a type's name or id) becomes the
/// type a create without one gets in `project`. An unknown type is 400, as
/// Cinder answers. Returns the type's id.
pub async fn set_project_default(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    project: String,
    raw: String,
) -> Result<String, AppError> {
    app.run(caller, meta, None, move |tx| {
        default_types_admin(tx, &project)?;
        let t = visible(tx.conn(), tx.caller, &raw)?.ok_or_else(|| {
            AppError::refused(
                DefaultTypeAggregate::stream_id(&project),
                DomainError::invalid(
                    "volume_type",
                    domain::FieldReason::Invalid,
                    format!("Volume type {raw} could not be found."),
                ),
            )
        })?;
        tx.execute::<DefaultTypeAggregate>(
            &project,
            DefaultTypeCommand::Set {
                volume_type_id: t.id.clone(),
            },
        )?;
        Ok(t.id)
    })
    .await
}

/// `GET /default-types/{project}`: the type id, or 404 when none is set.
pub async fn project_default(
    app: &App,
    caller: &Caller,
    project: String,
) -> Result<String, AppError> {
    if !caller.is_admin {
        return Err(AppError::refused(
            DefaultTypeAggregate::stream_id(&project),
            DomainError::NotPermitted("Policy doesn't allow default type management.".into()),
        ));
    }
    let key = project.clone();
    app.read(move |c| view::project_default(c, &key))
        .await?
        .ok_or_else(|| {
            AppError::refused(
                DefaultTypeAggregate::stream_id(&project),
                DomainError::invalid(
                    "project_id",
                    domain::FieldReason::NotFound,
                    format!("Default type for project {project} not found."),
                ),
            )
        })
}

/// `GET /default-types`: every project's own default, (project, type id).
pub async fn project_defaults(
    app: &App,
    caller: &Caller,
) -> Result<Vec<(String, String)>, AppError> {
    if !caller.is_admin {
        return Err(AppError::refused(
            "default_type",
            DomainError::NotPermitted("You are not authorized to perform this operation.".into()),
        ));
    }
    app.read(view::project_defaults).await
}

/// `DELETE /default-types/{project}`: the configured default applies again.
pub async fn unset_project_default(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    project: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        default_types_admin(tx, &project)?;
        tx.execute::<DefaultTypeAggregate>(&project, DefaultTypeCommand::Unset)?;
        Ok(())
    })
    .await
}
