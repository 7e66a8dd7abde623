//! What the Cinder and EVS adapters share: turning a create body into a
//! command, running a volume command as the caller, reading a volume the
//! caller may see, and parsing list queries. Translation only; the rules
//! are the domain's.

use std::collections::HashMap;

use domain::volume::{check_single_source, CreateSource, Given, SnapshotSource, VolumeSourceFacts};
use domain::{
    CreateVolume, DomainError, SnapshotAggregate, SnapshotCommand, VolumeAggregate, VolumeCommand,
};
use eventstore::{RecordedEvent, StoreError, WriteTx};
use projections::{ListQuery, SortDir, SortKey, VolumeRow};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{input, ApiError, AppState, Ctx, Problem};

/// Which dialect's create rules apply (DECISIONS.md, Required fields [5.1 #2]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CreateRules {
    /// Only `size` is required; zone and type default; any metadata keys.
    Cinder,
    /// `availability_zone` and `volume_type` are required; metadata may
    /// hold only `hw:passthrough` and `full_clone` [5.1 #20].
    Evs,
}

/// A create request, translated; the snapshot it names (if any) is read
/// inside the write transaction.
pub struct ParsedCreate {
    pub cmd: CreateVolume,
    /// The source snapshot and whether to make a linked clone of it.
    pub snapshot: Option<(Uuid, bool)>,
    /// The image to copy into the new volume (`imageRef`).
    pub image: Option<Uuid>,
    /// The volume to clone (Cinder `source_volid` / `source_replica`).
    pub source_volume: Option<Uuid>,
    pub zone_given: bool,
    pub type_given: bool,
    /// False only for a clone, whose size defaults to the source's.
    pub size_given: bool,
}

/// Parses the `volume` object of a create request into a command.
pub fn parse_create(
    state: &AppState,
    ctx: &Ctx,
    v: &Map<String, Value>,
    rules: CreateRules,
    job_id: Option<String>,
) -> Result<ParsedCreate, DomainError> {
    let zone = input::opt_str(v, "availability_zone")?;
    let vtype = input::opt_str(v, "volume_type")?;
    if rules == CreateRules::Evs && (zone.is_none() || vtype.is_none()) {
        return Err(DomainError::invalid(
            "EVS.2083",
            "AZ and volume type must not be empty or null!",
        ));
    }
    let backup = input::opt_str(v, "backup_id")?;
    let snapshot = input::opt_str(v, "snapshot_id")?;
    let image = input::opt_str(v, "imageRef")?;
    let source = match input::opt_str(v, "source_volid")? {
        Some(s) => Some(s),
        None => input::opt_str(v, "source_replica")?,
    };
    check_single_source(&[
        backup.is_some(),
        snapshot.is_some(),
        image.is_some(),
        source.is_some(),
    ])?;
    // No snapshot, image or source volume exists to name yet, so any id
    // given is invalid; backups are out of scope (DECISIONS.md).
    if backup.is_some() {
        return Err(DomainError::invalid("EVS.1006", "invalid backup id!"));
    }
    let snapshot = match snapshot {
        None => None,
        Some(s) => Some(
            input::uuid(&s)
                .ok_or_else(|| DomainError::invalid("EVS.2045", "invalid snapshot_id!"))?,
        ),
    };
    let image = match image {
        None => None,
        Some(i) => Some(
            input::uuid(&i).ok_or_else(|| DomainError::invalid("EVS.2046", "invalid imageRef!"))?,
        ),
    };
    // Clones are a Cinder feature (DECISIONS.md); EVS has no such field.
    let source_volume = match source {
        None => None,
        Some(s) if rules == CreateRules::Evs => return Err(DomainError::VolumeNotFound(s)),
        Some(s) => Some(input::uuid(&s).ok_or(DomainError::VolumeNotFound(s))?),
    };
    let size = match input::size(v.get("size"), "size")? {
        Some(size) => Some(size),
        // Filled in from the source volume in the write transaction.
        None if source_volume.is_some() => None,
        None => {
            return Err(DomainError::invalid(
                "EVS.1010",
                "invalid volume size! 'size' is required.",
            ))
        }
    };
    let name = match input::opt_str(v, "name")? {
        Some(n) => Some(n),
        None => input::opt_str(v, "display_name")?,
    };
    let description = match input::opt_str(v, "description")? {
        Some(d) => Some(d),
        None => input::opt_str(v, "display_description")?,
    };
    let metadata = input::metadata(v.get("metadata"))?;
    if rules == CreateRules::Evs {
        if let Some(k) = metadata
            .keys()
            .find(|k| *k != "hw:passthrough" && *k != "full_clone")
        {
            return Err(DomainError::InvalidMetadata(format!(
                "metadata key '{k}' is not allowed; only hw:passthrough and full_clone"
            )));
        }
    }
    let linked = domain::volume::creation_metadata(
        &metadata,
        snapshot.is_some() || image.is_some() || source_volume.is_some(),
    )?;
    let multiattach = match input::opt_bool(v, "multiattach")? {
        Some(m) => m,
        None => input::opt_bool(v, "shareable")
            .map_err(|_| DomainError::invalid("EVS.1054", "invalid shareable parameter!"))?
            .unwrap_or(false),
    };
    let (zone_given, type_given) = (zone.is_some(), vtype.is_some());
    let cmd = CreateVolume {
        volume_id: Uuid::new_v4(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        name,
        description,
        size: size.unwrap_or(0),
        availability_zone: state.catalog.resolve_zone(zone.as_deref())?,
        volume_type: state.catalog.resolve_type(vtype.as_deref())?,
        metadata,
        multiattach,
        job_id,
        batch_job_id: None,
        source: None,
        // Read in the write transaction (see `create_volume`).
        quota: Default::default(),
    };
    Ok(ParsedCreate {
        cmd,
        snapshot: snapshot.map(|s| (s, linked)),
        image,
        source_volume,
        zone_given,
        type_given,
        size_given: size.is_some(),
    })
}

/// A new job id: 32 lowercase hex characters [5.1 #18].
pub fn new_job_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Who may touch what, carried into the write transaction.
#[derive(Clone, Debug)]
pub struct Caller {
    pub project_id: String,
    pub is_admin: bool,
}

impl Caller {
    pub fn of(ctx: &Ctx) -> Self {
        Caller {
            project_id: ctx.project_id.clone(),
            is_admin: ctx.is_admin,
        }
    }

    pub fn owns(&self, project: &str) -> bool {
        self.is_admin || project == self.project_id
    }
}

type TxResult<T> = Result<Result<T, DomainError>, StoreError>;

/// Runs `f` in one write transaction as the caller. `f` returns the
/// domain's refusal as the inner error, so refusals are still recorded.
pub async fn transact<T, F>(
    state: &AppState,
    ctx: &Ctx,
    correlation_id: Option<&str>,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteTx<'_>, &Value, &Caller) -> TxResult<T> + Send + 'static,
{
    let meta = ctx.metadata(correlation_id);
    let caller = Caller::of(ctx);
    let result = state
        .store
        .write(move |tx| f(tx, &meta, &caller))
        .await
        .map_err(|e: StoreError| ctx.err(e))?;
    result.map_err(|e| ctx.err(e))
}

/// The live volume `id` if the caller may touch it; another project's
/// volume is not found, exactly like a missing one, so ids do not leak.
pub fn volume_in_tx(
    tx: &WriteTx<'_>,
    caller: &Caller,
    id: Uuid,
) -> TxResult<domain::volume::Volume> {
    let (st, _) = tx.load::<VolumeAggregate>(&id.to_string())?;
    Ok(match st.volume {
        Some(v) if !st.deleted && caller.owns(&v.project_id) => Ok(v),
        _ => Err(DomainError::VolumeNotFound(id.to_string())),
    })
}

/// The live snapshot `id` if the caller may touch it.
pub fn snapshot_in_tx(
    tx: &WriteTx<'_>,
    caller: &Caller,
    id: Uuid,
) -> TxResult<domain::snapshot::Snapshot> {
    let (st, _) = tx.load::<SnapshotAggregate>(&id.to_string())?;
    Ok(match st.snapshot {
        Some(s) if !st.deleted && caller.owns(&s.project_id) => Ok(s),
        _ => Err(DomainError::SnapshotNotFound(id.to_string())),
    })
}

/// Runs `cmd` against volume `id` as the caller.
pub async fn execute_volume(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    cmd: VolumeCommand,
    correlation_id: Option<&str>,
) -> Result<Vec<RecordedEvent>, ApiError> {
    transact(state, ctx, correlation_id, move |tx, meta, caller| {
        if !matches!(cmd, VolumeCommand::Create(_)) {
            if let Err(e) = volume_in_tx(tx, caller, id)? {
                return Ok(Err(e));
            }
        }
        Ok(tx
            .execute::<VolumeAggregate>(&id.to_string(), cmd, meta)?
            .map_err(|e| match e {
                DomainError::VolumeNotFound(_) => DomainError::VolumeNotFound(id.to_string()),
                e => e,
            }))
    })
    .await
}

/// Runs `cmd` against snapshot `id` as the caller.
pub async fn execute_snapshot(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    cmd: SnapshotCommand,
) -> Result<Vec<RecordedEvent>, ApiError> {
    transact(state, ctx, None, move |tx, meta, caller| {
        if let Err(e) = snapshot_in_tx(tx, caller, id)? {
            return Ok(Err(e));
        }
        Ok(tx
            .execute::<SnapshotAggregate>(&id.to_string(), cmd, meta)?
            .map_err(|e| match e {
                DomainError::SnapshotNotFound(_) => DomainError::SnapshotNotFound(id.to_string()),
                e => e,
            }))
    })
    .await
}

/// Creates a volume, from a snapshot if the request names one: the
/// snapshot is read in the same transaction, and its type and zone are the
/// defaults for the new volume.
pub async fn create_volume(state: &AppState, ctx: &Ctx, p: ParsedCreate) -> Result<Uuid, ApiError> {
    let id = p.cmd.volume_id;
    let correlation = p.cmd.job_id.clone();
    transact(
        state,
        ctx,
        correlation.as_deref(),
        move |tx, meta, caller| {
            let mut cmd = p.cmd;
            cmd.quota = projections::quotas::headroom(tx.conn(), &cmd.project_id)?;
            if let Some(image_id) = p.image {
                let row = projections::images::get(tx.conn(), &image_id.to_string())?;
                let Some(i) =
                    row.filter(|i| caller.owns(&i.project_id) || i.visibility == "public")
                else {
                    return Ok(Err(DomainError::invalid("EVS.2046", "invalid imageRef!")));
                };
                let status = match i.status.as_str() {
                    "active" => domain::image::ImageStatus::Active,
                    "saving" => domain::image::ImageStatus::Saving,
                    "killed" => domain::image::ImageStatus::Killed,
                    _ => domain::image::ImageStatus::Queued,
                };
                let mut md = std::collections::BTreeMap::new();
                md.insert("image_id".to_string(), i.id.clone());
                md.insert("image_name".to_string(), i.name.clone());
                md.insert("disk_format".to_string(), i.disk_format.clone());
                md.insert("container_format".to_string(), i.container_format.clone());
                md.insert("min_disk".to_string(), i.min_disk.to_string());
                if let Some(size) = i.size {
                    md.insert("size".to_string(), size.to_string());
                }
                if let Some(sum) = &i.checksum_sha256 {
                    md.insert("checksum".to_string(), sum.clone());
                }
                if let Some(os) = &i.os_type {
                    md.insert("__os_type".to_string(), os.clone());
                }
                cmd.source = Some(CreateSource::Image(domain::volume::ImageSourceFacts {
                    image_id,
                    status,
                    min_disk: i.min_disk,
                    virtual_size: i.virtual_size.unwrap_or(0).max(0) as u64,
                    metadata: md,
                }));
            }
            if let Some(src_id) = p.source_volume {
                // Another project's volume is not found, like a missing one.
                let src = match volume_in_tx(tx, caller, src_id)? {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                };
                let facts = VolumeSourceFacts {
                    volume_id: src.id,
                    status: src.status,
                    size: src.size,
                    volume_type: src.volume_type,
                    availability_zone: src.availability_zone,
                };
                facts.fill_defaults(
                    &mut cmd,
                    Given {
                        size: p.size_given,
                        volume_type: p.type_given,
                        availability_zone: p.zone_given,
                    },
                );
                cmd.source = Some(CreateSource::Volume(facts));
            }
            if let Some((snap_id, linked)) = p.snapshot {
                let s = match snapshot_in_tx(tx, caller, snap_id)? {
                    Ok(s) => s,
                    Err(_) => {
                        return Ok(Err(DomainError::invalid(
                            "EVS.2045",
                            "invalid snapshot_id!",
                        )))
                    }
                };
                if !p.type_given {
                    cmd.volume_type = s.volume_type.clone();
                }
                if !p.zone_given {
                    cmd.availability_zone = s.availability_zone.clone();
                }
                cmd.source = Some(CreateSource::Snapshot(SnapshotSource {
                    snapshot_id: s.id,
                    status: s.status,
                    size: s.size,
                    volume_type: s.volume_type,
                    availability_zone: s.availability_zone,
                    linked,
                }));
            }
            Ok(tx
                .execute::<VolumeAggregate>(
                    &id.to_string(),
                    VolumeCommand::Create(cmd.into()),
                    meta,
                )?
                .map(|_| id))
        },
    )
    .await
}

/// Creates a batch of volumes (EVS `count`) in one transaction: the whole
/// batch is checked against the quota first, then each volume is decided
/// with the usage its predecessors left, so it is all or nothing.
pub async fn create_volumes(
    state: &AppState,
    ctx: &Ctx,
    batch: Vec<ParsedCreate>,
    job_id: &str,
) -> Result<(), ApiError> {
    transact(state, ctx, Some(job_id), move |tx, meta, _| {
        let Some(first) = batch.first() else {
            return Ok(Ok(()));
        };
        let project = first.cmd.project_id.clone();
        let headroom = projections::quotas::headroom(tx.conn(), &project)?;
        let n = batch.len() as i64;
        let whole = domain::quota::Delta {
            volume_type: first.cmd.volume_type.clone(),
            volumes: n,
            gigabytes: n.saturating_mul(first.cmd.size),
            snapshots: 0,
            new_volume_size: Some(first.cmd.size),
        };
        if let Err(e) = headroom.admit(&whole) {
            tx.reject(&format!("volume-{}", first.cmd.volume_id), &e, meta)?;
            return Ok(Err(e));
        }
        for p in batch {
            if p.snapshot.is_some() || p.source_volume.is_some() {
                return Ok(Err(DomainError::invalid(
                    "EVS.5400",
                    "batch creation from a snapshot is not supported; create one volume per snapshot",
                )));
            }
            let mut cmd = p.cmd;
            cmd.quota = projections::quotas::headroom(tx.conn(), &project)?;
            let id = cmd.volume_id.to_string();
            if let Err(e) = tx.execute::<VolumeAggregate>(&id, VolumeCommand::Create(Box::new(cmd)), meta)? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    })
    .await
}

/// Extends a volume against its owner's quota, read in the same transaction.
pub async fn extend_volume(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    new_size: i64,
    job_id: Option<String>,
) -> Result<(), ApiError> {
    let correlation = job_id.clone();
    transact(
        state,
        ctx,
        correlation.as_deref(),
        move |tx, meta, caller| {
            let v = match volume_in_tx(tx, caller, id)? {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let quota = projections::quotas::headroom(tx.conn(), &v.project_id)?;
            let cmd = VolumeCommand::Extend {
                new_size,
                job_id,
                quota,
            };
            Ok(tx
                .execute::<VolumeAggregate>(&id.to_string(), cmd, meta)?
                .map(|_| ()))
        },
    )
    .await
}

/// Deletes a volume; with `cascade` its snapshots go first, in the same
/// transaction, all or nothing (DECISIONS.md, Cascade [5.1 #37]).
pub async fn delete_volume(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    cascade: bool,
    job_id: Option<String>,
) -> Result<(), ApiError> {
    let correlation = job_id.clone();
    transact(
        state,
        ctx,
        correlation.as_deref(),
        move |tx, meta, caller| {
            if let Err(e) = volume_in_tx(tx, caller, id)? {
                return Ok(Err(e));
            }
            let dependents = projections::snapshots::dependents_of(tx.conn(), &id.to_string())?;
            let mut decided = Vec::new();
            let mut remaining = dependents.len();
            if cascade {
                for s in &dependents {
                    match tx.decide_or_reject::<SnapshotAggregate>(
                        &s.id,
                        SnapshotCommand::Delete,
                        meta,
                    )? {
                        Ok(d) => decided.push(d),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                remaining = 0;
            }
            let cmd = VolumeCommand::Delete {
                job_id,
                dependent_snapshots: remaining,
            };
            match tx.decide_or_reject::<VolumeAggregate>(&id.to_string(), cmd, meta)? {
                Ok(d) => decided.push(d),
                Err(e) => return Ok(Err(e)),
            }
            tx.commit(decided)?;
            Ok(Ok(()))
        },
    )
    .await
}

/// The volume `raw_id` if it exists and the caller may see it; 404 otherwise.
pub fn visible_volume(state: &AppState, ctx: &Ctx, raw_id: &str) -> Result<VolumeRow, ApiError> {
    let not_found = || ctx.err(DomainError::VolumeNotFound(raw_id.to_string()));
    let id = input::uuid(raw_id).ok_or_else(not_found)?;
    let row = state
        .store
        .read(|c| projections::volumes::get(c, &id.to_string()))
        .map_err(|e| ctx.err(e))?;
    match row {
        Some(v) if ctx.can_see(&v.project_id) => Ok(v),
        _ => Err(not_found()),
    }
}

/// The path id as a UUID, or 404 in the caller's dialect.
pub fn path_uuid(ctx: &Ctx, raw_id: &str) -> Result<Uuid, ApiError> {
    input::uuid(raw_id).ok_or_else(|| ctx.err(DomainError::VolumeNotFound(raw_id.to_string())))
}

/// Parses the documented list filters and paging (API.md 3.4).
pub fn list_query(ctx: &Ctx, q: &HashMap<String, String>) -> Result<ListQuery, DomainError> {
    let all_tenants = input::all_tenants(q);
    let (mut sort_key, mut sort_dir) = (SortKey::default(), SortDir::default());
    if let Some(sort) = q.get("sort") {
        // Cinder's `sort=key[:dir]` form.
        let (k, d) = sort.split_once(':').unwrap_or((sort.as_str(), "desc"));
        sort_key = SortKey::parse(k)
            .ok_or_else(|| DomainError::invalid("EVS.1039", "invalid sort_key!"))?;
        sort_dir = SortDir::parse(d)
            .ok_or_else(|| DomainError::invalid("EVS.1040", "invalid sort_dir!"))?;
    }
    if let Some(k) = q.get("sort_key") {
        sort_key = SortKey::parse(k)
            .ok_or_else(|| DomainError::invalid("EVS.1039", "invalid sort_key!"))?;
    }
    if let Some(d) = q.get("sort_dir") {
        sort_dir = SortDir::parse(d)
            .ok_or_else(|| DomainError::invalid("EVS.1040", "invalid sort_dir!"))?;
    }
    if let Some(m) = q.get("marker") {
        if input::uuid(m).is_none() {
            return Err(DomainError::invalid("EVS.1024", "invalid filter marker!"));
        }
    }
    if let Some(s) = q.get("status") {
        if !domain::VolumeStatus::is_documented(s) {
            return Err(DomainError::invalid(
                "EVS.5400",
                "Must specify a valid status.",
            ));
        }
    }
    let metadata = match q.get("metadata") {
        None => Default::default(),
        Some(raw) => {
            let v: Value = serde_json::from_str(raw)
                .map_err(|_| DomainError::invalid("EVS.1058", "invalid metadata filter!"))?;
            input::metadata(Some(&v))
                .map_err(|_| DomainError::invalid("EVS.1058", "invalid metadata filter!"))?
        }
    };
    Ok(ListQuery {
        project_id: if all_tenants && ctx.is_admin {
            None
        } else {
            Some(ctx.project_id.clone())
        },
        name: q.get("name").cloned(),
        status: q.get("status").cloned(),
        availability_zone: q.get("availability_zone").cloned(),
        metadata,
        marker: q.get("marker").cloned(),
        limit: input::limit(q.get("limit").map(String::as_str))?,
        offset: input::offset(q.get("offset").map(String::as_str))?,
        sort_key,
        sort_dir,
    })
}

/// Runs a list query; an unknown marker is EVS.1024.
pub fn list_volumes(
    state: &AppState,
    ctx: &Ctx,
    q: &ListQuery,
) -> Result<(Vec<VolumeRow>, bool), ApiError> {
    let res = state
        .store
        .read(|c| Ok(projections::volumes::list(c, q)))
        .map_err(|e| ctx.err(e))?;
    match res {
        Ok(page) => Ok(page),
        Err(projections::volumes::ListError::MarkerNotFound(_)) => Err(ctx.err(
            DomainError::invalid("EVS.1024", "invalid filter marker! Marker not found."),
        )),
        Err(projections::volumes::ListError::Sqlite(e)) => Err(ctx.err(Problem::from(e))),
    }
}
