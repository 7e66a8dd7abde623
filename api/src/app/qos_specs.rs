//! QoS specs (Cinder's qos_specs_manage; tempest's QosSpecsTestJSON): one
//! use case per operation, all an administrator's (Cinder's policy),
//! refused here otherwise. The association of specs with a type is an
//! event of the type (`VolumeTypeQosAssociated`), so disassociating all
//! and a forced delete decide on every associated type in the same
//! transaction as the specs.

use std::collections::BTreeMap;

use domain::qos::{QosAggregate, QosCommand};
use domain::volume_type::{VolumeTypeAggregate, VolumeTypeCommand};
use domain::{Aggregate, DomainError};
use projections::volume_types::{self as view, QosRow};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta, Tx};

fn stream(id: &str) -> String {
    QosAggregate::stream_id(id)
}

fn admin_only(caller: &Caller, id: &str) -> Result<(), AppError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(AppError::refused(
            stream(id),
            DomainError::NotPermitted("Policy doesn't allow QoS specs management.".into()),
        ))
    }
}

fn not_found(id: &str) -> AppError {
    AppError::refused(stream(id), DomainError::QosSpecsNotFound(id.to_string()))
}

/// The live specs `id`, for a change by admin.
fn target(tx: &Tx<'_, '_>, id: &str) -> Result<QosRow, AppError> {
    admin_only(tx.caller, id)?;
    view::qos(tx.conn(), id)?.ok_or_else(|| not_found(id))
}

/// `POST /qos-specs`: the new specs.
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    name: String,
    consumer: Option<String>,
    specs: BTreeMap<String, String>,
) -> Result<QosRow, AppError> {
    let id = Uuid::new_v4();
    app.run(caller, meta, None, move |tx| {
        admin_only(tx.caller, &id.to_string())?;
        let name_taken = view::qos_by_name(tx.conn(), &name)?.is_some();
        tx.execute::<QosAggregate>(
            &id.to_string(),
            QosCommand::Create {
                id,
                name,
                consumer,
                specs,
                name_taken,
            },
        )?;
        view::qos(tx.conn(), &id.to_string())?.ok_or_else(|| not_found(&id.to_string()))
    })
    .await
}

/// `PUT /qos-specs/{id}`: sets (adds or replaces) keys.
pub async fn set_keys(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: String,
    specs: BTreeMap<String, String>,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let q = target(tx, &id)?;
        tx.execute::<QosAggregate>(&q.id, QosCommand::SetKeys(specs))?;
        Ok(())
    })
    .await
}

/// `PUT /qos-specs/{id}/delete_keys`.
pub async fn unset_keys(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: String,
    keys: Vec<String>,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let q = target(tx, &id)?;
        tx.execute::<QosAggregate>(&q.id, QosCommand::UnsetKeys(keys))?;
        Ok(())
    })
    .await
}

/// Decides disassociating `qos` from every type it is associated with.
fn disassociate_all_in(
    tx: &Tx<'_, '_>,
    qos: &str,
) -> Result<Vec<eventstore::aggregate::Decided>, AppError> {
    let qid = Uuid::parse_str(qos).map_err(|_| not_found(qos))?;
    view::qos_associations(tx.conn(), qos)?
        .into_iter()
        .map(|(type_id, _)| {
            tx.decide::<VolumeTypeAggregate>(&type_id, VolumeTypeCommand::DisassociateQos(qid))
        })
        .collect()
}

/// `DELETE /qos-specs/{id}?force=`: refused while associated unless forced.
pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: String,
    force: bool,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let q = target(tx, &id)?;
        let associated = view::qos_associations(tx.conn(), &q.id)?.len();
        let mut decided =
            vec![tx.decide::<QosAggregate>(&q.id, QosCommand::Delete { associated, force })?];
        decided.extend(disassociate_all_in(tx, &q.id)?);
        tx.commit(decided)?;
        Ok(())
    })
    .await
}

/// `GET /qos-specs/{id}/associate?vol_type_id=` (202).
pub async fn associate(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: String,
    type_id: String,
    associate: bool,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let q = target(tx, &id)?;
        let t = view::get(tx.conn(), &type_id)?.ok_or_else(|| {
            AppError::refused(
                VolumeTypeAggregate::stream_id(&type_id),
                DomainError::VolumeTypeNotFound(type_id.clone()),
            )
        })?;
        super::volume_types::materialize(tx, &t)?;
        let qid = Uuid::parse_str(&q.id).map_err(|_| not_found(&id))?;
        let cmd = if associate {
            VolumeTypeCommand::AssociateQos(qid)
        } else {
            VolumeTypeCommand::DisassociateQos(qid)
        };
        tx.execute::<VolumeTypeAggregate>(&t.id, cmd)?;
        Ok(())
    })
    .await
}

/// `GET /qos-specs/{id}/disassociate_all` (202).
pub async fn disassociate_all(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    id: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let q = target(tx, &id)?;
        let decided = disassociate_all_in(tx, &q.id)?;
        tx.commit(decided)?;
        Ok(())
    })
    .await
}

// Reads (admin only, as Cinder's policy; a refusal is not recorded).

pub async fn list(app: &App, caller: &Caller) -> Result<Vec<QosRow>, AppError> {
    admin_only(caller, "")?;
    app.read(view::qos_list).await
}

pub async fn show(app: &App, caller: &Caller, id: String) -> Result<QosRow, AppError> {
    admin_only(caller, &id)?;
    let key = id.clone();
    app.read(move |c| view::qos(c, &key))
        .await?
        .ok_or_else(|| not_found(&id))
}

/// The types associated with specs `id`: (type id, type name).
pub async fn associations(
    app: &App,
    caller: &Caller,
    id: String,
) -> Result<Vec<(String, String)>, AppError> {
    show(app, caller, id.clone()).await?;
    app.read(move |c| view::qos_associations(c, &id)).await
}
