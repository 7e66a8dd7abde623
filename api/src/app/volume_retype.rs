//! Cinder's `os-retype` without migration (issue 12; tempest's
//! VolumeRetypeWithoutMigrationTest): the volume keeps its bytes and its
//! backend and takes the new type. A retype that would move the volume to
//! another backend, or change its encryption, needs a migration, which this
//! service does not do; it is refused whatever the migration policy.

use domain::catalog::backend_of;
use domain::{DomainError, VolumeAggregate, VolumeCommand};
use projections::volume_types as view;
use uuid::Uuid;

use super::{volume_types, App, AppError, Caller, RequestMeta};

pub async fn retype(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    volume_id: Uuid,
    new_type: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let v = tx.volume(volume_id)?;
        let stream = format!("volume-{volume_id}");
        // g17: a group's member keeps one of the group's types (Cinder).
        let group = projections::groups::group_of_volume(tx.conn(), &volume_id.to_string())?;
        domain::group::refuse_member_retype(group.as_deref())
            .map_err(|e| AppError::refused(stream.clone(), e))?;
        // The types this caller may use: a private type it was not given
        // is unknown to it (404, as Cinder).
        let to = volume_types::visible(tx.conn(), tx.caller, &new_type)?.ok_or_else(|| {
            AppError::refused(
                stream.clone(),
                DomainError::VolumeTypeNotFound(new_type.clone()),
            )
        })?;
        let from = view::by_name(tx.conn(), &v.volume_type)?;
        let encryption = |t: Option<&view::TypeRow>| -> Result<_, AppError> {
            Ok(match t {
                Some(t) => view::encryption(tx.conn(), &t.id)?.map(|e| e.encryption),
                None => None,
            })
        };
        // The volume stays on its backend: the new type must place there
        // (the backend its `volume_backend_name` names, or its old rule's).
        // Only the placement keys are judged, as before backends were data.
        let placement: std::collections::BTreeMap<String, String> = to
            .extra_specs
            .iter()
            .filter(|(k, _)| k.ends_with("volume_backend_name"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let here = domain::scheduler::Offer {
            name: &v.backend,
            storage_protocol: domain::scheduler::STORAGE_PROTOCOL,
            free_bytes: None,
            over_subscription: None,
        };
        let migration_needed =
            if domain::scheduler::choose(&placement, backend_of(&to.name), &[here], 0).is_err() {
                Some(format!(
                    "type {} does not place volumes on backend {}, the volume's",
                    to.name, v.backend
                ))
            } else if encryption(from.as_ref())? != encryption(Some(&to))? {
                Some("the types' encryption differs".to_string())
            } else {
                None
            };
        let quota = tx.headroom(&v.project_id)?;
        tx.execute::<VolumeAggregate>(
            &volume_id.to_string(),
            VolumeCommand::Retype {
                new_type: to.name,
                migration_needed,
                quota,
            },
        )?;
        Ok(())
    })
    .await
}
