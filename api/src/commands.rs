//! What the Cinder and EVS adapters share: turning a create body into a
//! command, running a volume command as the caller, reading a volume the
//! caller may see, and parsing list queries. Translation only; the rules
//! are the domain's.

use std::collections::HashMap;

use domain::volume::check_single_source;
use domain::{CreateVolume, DomainError, VolumeAggregate, VolumeCommand};
use eventstore::RecordedEvent;
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

/// Parses the `volume` object of a create request into a command.
pub fn parse_create(
    state: &AppState,
    ctx: &Ctx,
    v: &Map<String, Value>,
    rules: CreateRules,
    job_id: Option<String>,
) -> Result<CreateVolume, DomainError> {
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
    if snapshot.is_some() {
        return Err(DomainError::invalid("EVS.2045", "invalid snapshot_id!"));
    }
    if image.is_some() {
        return Err(DomainError::invalid("EVS.2046", "invalid imageRef!"));
    }
    if let Some(s) = source {
        return Err(DomainError::VolumeNotFound(s));
    }
    let size = input::size(v.get("size"), "size")?.ok_or_else(|| {
        DomainError::invalid("EVS.1010", "invalid volume size! 'size' is required.")
    })?;
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
    let multiattach = match input::opt_bool(v, "multiattach")? {
        Some(m) => m,
        None => input::opt_bool(v, "shareable")
            .map_err(|_| DomainError::invalid("EVS.1054", "invalid shareable parameter!"))?
            .unwrap_or(false),
    };
    Ok(CreateVolume {
        volume_id: Uuid::new_v4(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        name,
        description,
        size,
        availability_zone: state.catalog.resolve_zone(zone.as_deref())?,
        volume_type: state.catalog.resolve_type(vtype.as_deref())?,
        metadata,
        multiattach,
        job_id,
    })
}

/// A new job id: 32 lowercase hex characters [5.1 #18].
pub fn new_job_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Runs `cmd` against volume `id` as the caller. A volume of another
/// project is not found, exactly like a missing one, so ids do not leak.
pub async fn execute_volume(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    cmd: VolumeCommand,
    correlation_id: Option<&str>,
) -> Result<Vec<RecordedEvent>, ApiError> {
    let meta = ctx.metadata(correlation_id);
    let (project, admin) = (ctx.project_id.clone(), ctx.is_admin);
    let key = id.to_string();
    let result = state
        .store
        .write(move |tx| {
            if !matches!(cmd, VolumeCommand::Create(_)) {
                let (st, _) = tx.load::<VolumeAggregate>(&key)?;
                if let Some(v) = &st.volume {
                    if !admin && v.project_id != project {
                        return Ok(Err(DomainError::VolumeNotFound(key)));
                    }
                }
            }
            tx.execute::<VolumeAggregate>(&key, cmd, &meta)
        })
        .await
        .map_err(|e: eventstore::StoreError| ctx.err(e))?;
    result.map_err(|e| match e {
        DomainError::VolumeNotFound(_) => ctx.err(DomainError::VolumeNotFound(id.to_string())),
        e => ctx.err(e),
    })
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
    let all_tenants = q
        .get("all_tenants")
        .map(|v| matches!(v.as_str(), "1" | "true" | "True"))
        .unwrap_or(false);
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
