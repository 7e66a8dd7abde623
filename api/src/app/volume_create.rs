//! Create one volume, or a batch (EVS `count`), empty or from a snapshot or
//! an image. The request is dialect-neutral; the dialect says which
//! `CreatePolicy` its document fixes. Sources are read in the same write
//! transaction as the decision, so a snapshot deleted a moment earlier is
//! refused instead of half-copied.

use std::collections::BTreeMap;

use domain::create_rules::{self, CreatePolicy, ImageFacts};
use domain::error::FieldReason;
use domain::volume::{CreateSource, ImageSourceFacts, SnapshotSource, VolumeSourceFacts};
use domain::{CreateVolume, DomainError, VolumeAggregate, VolumeCommand, WorkKind};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta, Tx};

/// Where the first bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRef {
    Snapshot(Uuid),
    Image(Uuid),
    /// A clone (Cinder `source_volid`): the executor makes it an internal
    /// snapshot plus a linked clone (DECISIONS.md, Clones from a volume).
    Volume(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVolumeRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: Option<i64>,
    pub availability_zone: Option<String>,
    pub volume_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub multiattach: bool,
    pub source: Option<SourceRef>,
    pub backup_id: Option<String>,
    pub policy: CreatePolicy,
}

/// Checks what needs no transaction, so a malformed request is refused
/// before anything is read (omicron's "validate before the saga").
pub(crate) fn precheck(r: &CreateVolumeRequest, batch: bool) -> Result<(), DomainError> {
    r.policy.check(
        r.availability_zone.as_deref(),
        r.volume_type.as_deref(),
        &r.metadata,
    )?;
    create_rules::refuse_backup(r.backup_id.as_deref(), batch)?;
    domain::volume::creation_metadata(&r.metadata, r.source.is_some())?;
    if r.size.is_none() && r.source.is_none() {
        return Err(DomainError::invalid(
            "size",
            FieldReason::Missing,
            "invalid volume size! 'size' is required.",
        ));
    }
    Ok(())
}

/// The command for volume `id`, with its source facts read in `tx`.
pub(crate) fn command(
    tx: &Tx<'_, '_>,
    app: &App,
    r: &CreateVolumeRequest,
    id: Uuid,
    name: Option<String>,
    job_id: Option<String>,
    batch_job_id: Option<String>,
) -> Result<CreateVolume, AppError> {
    let stream = format!("volume-{id}");
    let refuse = |e: DomainError| AppError::refused(stream.clone(), e);
    let linked =
        domain::volume::creation_metadata(&r.metadata, r.source.is_some()).map_err(&refuse)?;
    let mut inherited = None;
    let source = match r.source {
        None => None,
        Some(SourceRef::Snapshot(sid)) => {
            let s = tx.snapshot(sid).map_err(|_| {
                refuse(DomainError::invalid(
                    "snapshot_id",
                    FieldReason::NotFound,
                    "invalid snapshot_id!",
                ))
            })?;
            inherited = Some((s.availability_zone.clone(), s.volume_type.clone()));
            Some(CreateSource::Snapshot(SnapshotSource {
                snapshot_id: s.id,
                status: s.status,
                size: s.size,
                volume_type: s.volume_type,
                availability_zone: s.availability_zone,
                linked,
                backend: s.backend,
            }))
        }
        Some(SourceRef::Volume(vid)) => {
            // Another project's volume is not found, like a missing one.
            let v = tx
                .volume(vid)
                .map_err(|_| refuse(DomainError::VolumeNotFound(vid.to_string())))?;
            inherited = Some((v.availability_zone.clone(), v.volume_type.clone()));
            Some(CreateSource::Volume(VolumeSourceFacts {
                volume_id: v.id,
                status: v.status,
                size: v.size,
                volume_type: v.volume_type,
                availability_zone: v.availability_zone,
                backend: v.backend,
            }))
        }
        Some(SourceRef::Image(iid)) => {
            let row = projections::images::get(tx.conn(), &iid.to_string())?;
            let Some(i) = row.filter(|i| {
                tx.caller.owns(&i.project_id)
                    || i.visibility == projections::images::Visibility::Public
            }) else {
                return Err(refuse(DomainError::invalid(
                    "imageRef",
                    FieldReason::NotFound,
                    "invalid imageRef!",
                )));
            };
            let status = i.status;
            let metadata = create_rules::volume_image_metadata(&ImageFacts {
                id: i.id.clone(),
                name: i.name.clone(),
                disk_format: i.disk_format.clone(),
                container_format: i.container_format.clone(),
                min_disk: i.min_disk,
                size: i.size,
                checksum_sha256: i.checksum_sha256.clone(),
                os_type: i.os_type.clone(),
            });
            Some(CreateSource::Image(ImageSourceFacts {
                image_id: iid,
                status,
                min_disk: i.min_disk,
                virtual_size: i.virtual_size.unwrap_or(0).max(0) as u64,
                metadata,
            }))
        }
    };
    // The types this caller may use, as the volume types view has them.
    let catalog = super::volume_types::catalog(tx.conn(), &app.catalog, tx.caller)?;
    let (availability_zone, volume_type) = create_rules::placement(
        &catalog,
        r.availability_zone.as_deref(),
        r.volume_type.as_deref(),
        inherited.as_ref().map(|(z, t)| (z.as_str(), t.as_str())),
    )
    .map_err(&refuse)?;
    let size = match (r.size, &source) {
        (Some(s), _) => s,
        (None, Some(CreateSource::Snapshot(s))) => s.size,
        (None, Some(CreateSource::Volume(v))) => v.size,
        (None, Some(CreateSource::Image(i))) => i.min_disk.max(1),
        (None, None) => 0,
    };
    Ok(CreateVolume {
        volume_id: id,
        project_id: tx.caller.project_id.clone(),
        user_id: tx.caller.user_id.clone(),
        name,
        description: r.description.clone(),
        size,
        availability_zone,
        volume_type,
        metadata: r.metadata.clone(),
        multiattach: r.multiattach,
        job_id,
        batch_job_id,
        source,
        backend: None,
        quota: tx.headroom(&tx.caller.project_id)?,
    })
}

/// Creates volume `cmd` and schedules it (`domain::scheduler`) among the
/// registered backends of the backends view: a clone on its source's
/// backend, any other volume on the backend its type's
/// `volume_backend_name` names, or by the type's old rule
/// (`catalog::backend_of`) when it names none; the backend must meet the
/// type's extra specs and have room for the size. When none can, the
/// create still stands, on the type's old backend, and fails in the same
/// transaction, as Cinder's scheduler fails it after accepting the
/// request (the user message says why).
pub(crate) fn create_and_schedule(
    tx: &mut Tx<'_, '_>,
    app: &App,
    mut cmd: CreateVolume,
) -> Result<(), AppError> {
    let id = cmd.volume_id.to_string();
    let specs = projections::volume_types::by_name(tx.conn(), &cmd.volume_type)?
        .map(|t| t.extra_specs)
        .unwrap_or_default();
    let backends = projections::backends::list(tx.conn())?;
    let ratio = app.catalog.max_over_subscription_ratio;
    let offers: Vec<_> = backends.iter().map(|b| b.offer(ratio)).collect();
    let placed = match &cmd.source {
        Some(CreateSource::Volume(v)) => {
            domain::scheduler::admit_clone(&v.backend, &offers, cmd.size).map(|_| None)
        }
        Some(CreateSource::Snapshot(s)) => {
            domain::scheduler::admit_clone(&s.backend, &offers, cmd.size).map(|_| None)
        }
        _ => domain::scheduler::choose(
            &specs,
            domain::catalog::backend_of(&cmd.volume_type),
            &offers,
            cmd.size,
        )
        .map(|b| Some(b.to_string())),
    };
    // A failed placement records the old rule's backend (None): one an
    // executor serves, so the failed volume can still be deleted.
    cmd.backend = placed.clone().unwrap_or(None);
    tx.execute::<VolumeAggregate>(&id, VolumeCommand::Create(Box::new(cmd)))?;
    if let Err(reason) = placed {
        tx.execute::<VolumeAggregate>(
            &id,
            VolumeCommand::FailWork {
                kind: WorkKind::Create,
                reason: reason.to_string(),
            },
        )?;
    }
    Ok(())
}

/// CINDER-7.1.1 / EVS-6.1.1 with `count` 1: the new volume's id.
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateVolumeRequest,
    job_id: String,
) -> Result<Uuid, AppError> {
    let id = Uuid::new_v4();
    if let Err(e) = precheck(&r, false) {
        return Err(app.refuse(caller, meta, format!("volume-{id}"), e).await);
    }
    let a = app.clone();
    app.run(caller, meta, Some(&job_id.clone()), move |tx| {
        let name = r.name.clone();
        let cmd = command(tx, &a, &r, id, name, Some(job_id), None)?;
        create_and_schedule(tx, &a, cmd)?;
        Ok(id)
    })
    .await
}

/// EVS-6.1.1 with `count` > 1: all or nothing. The whole batch is admitted
/// against the quota first, then each volume is decided with the usage its
/// predecessors left; each has a sub-job of the batch job.
pub async fn create_batch(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateVolumeRequest,
    count: i64,
    batch_job_id: String,
) -> Result<Vec<Uuid>, AppError> {
    let first = Uuid::new_v4();
    let stream = format!("volume-{first}");
    let checks = precheck(&r, count > 1)
        .and_then(|_| create_rules::refuse_batch_source(r.source.is_some(), count))
        .and_then(|_| create_rules::batch_names(r.name.as_deref(), count));
    let names = match checks {
        Ok(n) => n,
        // Refusals before the transaction are recorded like any other.
        Err(e) => return Err(app.refuse(caller, meta, stream, e).await),
    };
    let a = app.clone();
    let job = batch_job_id.clone();
    app.run(caller, meta, Some(&batch_job_id), move |tx| {
        let size = r.size.unwrap_or(0);
        let catalog = super::volume_types::catalog(tx.conn(), &a.catalog, tx.caller)?;
        let (_, volume_type) = create_rules::placement(
            &catalog,
            r.availability_zone.as_deref(),
            r.volume_type.as_deref(),
            None,
        )
        .map_err(|e| AppError::refused(stream.clone(), e))?;
        let n = names.len() as i64;
        let whole = domain::quota::Delta {
            volume_type,
            volumes: n,
            gigabytes: n.saturating_mul(size),
            snapshots: 0,
            new_volume_size: Some(size),
        };
        tx.headroom(&tx.caller.project_id)?
            .admit(&whole)
            .map_err(|e| AppError::refused(stream.clone(), e))?;
        let mut ids = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let id = if i == 0 { first } else { Uuid::new_v4() };
            let cmd = command(
                tx,
                &a,
                &r,
                id,
                name,
                Some(super::new_job_id()),
                Some(job.clone()),
            )?;
            create_and_schedule(tx, &a, cmd)?;
            ids.push(id);
        }
        Ok(ids)
    })
    .await
}
