//! Create a generic group (Cinder 3.13 `POST /groups`) and create one from
//! a group snapshot or another group (3.14 `POST /groups/action`
//! `create-from-src`). A group from a source is made in ONE transaction
//! with its member volumes: one new volume per snapshot of the group
//! snapshot (from that snapshot), or per volume of the source group (a
//! clone of it), each decided by the volume aggregate as any create from a
//! snapshot or a clone is, so the executor copies each as it does those.

use domain::group::{GroupAggregate, GroupCommand, Source};
use domain::{Aggregate, DomainError, VolumeAggregate, VolumeCommand};
use projections::groups::{self as view, GroupRow};
use uuid::Uuid;

use super::group_queries::{group_in, group_not_found, group_snapshot_in};
use super::volume_create::{command as volume_command, CreateVolumeRequest, SourceRef};
use super::{App, AppError, Caller, RequestMeta, Tx};

pub struct CreateGroupRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The group type, by id or name.
    pub group_type: String,
    /// Volume types, by id or name.
    pub volume_types: Vec<String>,
    pub availability_zone: Option<String>,
}

fn refuse(id: Uuid, e: DomainError) -> AppError {
    AppError::refused(GroupAggregate::stream_id(&id.to_string()), e)
}

/// The `groups` quota: the project's limit and its live groups.
fn groups_quota(tx: &Tx<'_, '_>) -> Result<(i64, i64), AppError> {
    let h = tx.headroom(&tx.caller.project_id)?;
    let limit = h
        .limits
        .get("groups")
        .copied()
        .unwrap_or_else(|| domain::quota::limit_of(&Default::default(), "groups"));
    Ok((h.usage.get("groups").copied().unwrap_or(0), limit))
}

/// `POST /groups`: the new group, `available` at once (a group is a
/// record here; no backend work makes it).
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateGroupRequest,
) -> Result<GroupRow, AppError> {
    let id = Uuid::new_v4();
    let zone = app.catalog.default_zone().to_string();
    app.run(caller, meta, None, move |tx| {
        let gt = match view::group_type(tx.conn(), &r.group_type)?
            .or(view::group_type_by_name(tx.conn(), &r.group_type)?)
            .filter(|t| t.is_public || tx.caller.is_admin)
        {
            Some(t) => t,
            None => {
                return Err(refuse(
                    id,
                    DomainError::GroupTypeNotFound(r.group_type.clone()),
                ))
            }
        };
        let mut volume_type_ids = Vec::new();
        for raw in &r.volume_types {
            let t = super::volume_types::visible(tx.conn(), tx.caller, raw)?
                .ok_or_else(|| refuse(id, DomainError::VolumeTypeNotFound(raw.clone())))?;
            let tid = Uuid::parse_str(&t.id)
                .map_err(|_| refuse(id, DomainError::VolumeTypeNotFound(raw.clone())))?;
            if !volume_type_ids.contains(&tid) {
                volume_type_ids.push(tid);
            }
        }
        let availability_zone = match r.availability_zone {
            None => zone,
            Some(z) if z == zone => z,
            Some(z) => return Err(refuse(id, DomainError::InvalidAvailabilityZone(z))),
        };
        let group_type_id = Uuid::parse_str(&gt.id)
            .map_err(|_| refuse(id, DomainError::GroupTypeNotFound(gt.id.clone())))?;
        let (groups_in_use, groups_limit) = groups_quota(tx)?;
        tx.execute::<GroupAggregate>(
            &id.to_string(),
            GroupCommand::Create {
                id,
                project_id: tx.caller.project_id.clone(),
                user_id: tx.caller.user_id.clone(),
                name: r.name,
                description: r.description,
                group_type_id,
                volume_type_ids,
                availability_zone,
                source: Source::None,
                groups_in_use,
                groups_limit,
            },
        )?;
        group_in(tx.conn(), tx.caller, &id.to_string())
    })
    .await
}

/// The source of `create-from-src`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSourceRef {
    GroupSnapshot(String),
    Group(String),
}

enum Kind {
    GroupSnapshot(Uuid, String),
    Group(Uuid, domain::group::GroupStatus),
}

/// What a group made from `source` takes from it: the type, the volume
/// types, the zone, and per member its source and volume type.
struct Plan {
    group_type_id: String,
    volume_type_ids: Vec<String>,
    zone: String,
    members: Vec<(SourceRef, String)>,
    kind: Kind,
}

fn plan(tx: &Tx<'_, '_>, source: &GroupSourceRef) -> Result<Plan, AppError> {
    match source {
        GroupSourceRef::GroupSnapshot(raw) => {
            let gs = group_snapshot_in(tx.conn(), tx.caller, raw)?;
            let src = group_in(tx.conn(), tx.caller, &gs.group_id)?;
            let mut members = Vec::new();
            for (snap, _) in &gs.members {
                let sid = Uuid::parse_str(snap).map_err(|_| group_not_found(&gs.group_id))?;
                let s = tx.snapshot(sid)?;
                members.push((SourceRef::Snapshot(sid), s.volume_type));
            }
            let id = Uuid::parse_str(&gs.id).map_err(|_| group_not_found(raw))?;
            Ok(Plan {
                group_type_id: gs.group_type_id,
                volume_type_ids: src.volume_types,
                zone: src.availability_zone,
                members,
                kind: Kind::GroupSnapshot(id, gs.status.as_str().to_string()),
            })
        }
        GroupSourceRef::Group(raw) => {
            let src = group_in(tx.conn(), tx.caller, raw)?;
            let mut members = Vec::new();
            for v in &src.volumes {
                let vid = Uuid::parse_str(v).map_err(|_| group_not_found(raw))?;
                let vol = tx.volume(vid)?;
                members.push((SourceRef::Volume(vid), vol.volume_type));
            }
            let id = Uuid::parse_str(&src.id).map_err(|_| group_not_found(raw))?;
            Ok(Plan {
                group_type_id: src.group_type_id,
                volume_type_ids: src.volume_types,
                zone: src.availability_zone,
                members,
                kind: Kind::Group(id, src.status),
            })
        }
    }
}

/// `POST /groups/action {"create-from-src": …}`: the new group, with its
/// member volumes being made.
pub async fn create_from_source(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    name: Option<String>,
    description: Option<String>,
    source: GroupSourceRef,
    job_id: String,
) -> Result<GroupRow, AppError> {
    let id = Uuid::new_v4();
    let a = app.clone();
    app.run(caller, meta, Some(&job_id.clone()), move |tx| {
        let plan = plan(tx, &source)?;
        // Each volume is appended before the next is decided, so each
        // sees the quota usage its predecessors left; all of it, and the
        // group, are one transaction (undone together if one is refused).
        let mut new_volumes = Vec::new();
        for (src, volume_type) in plan.members {
            let vid = Uuid::new_v4();
            let r = CreateVolumeRequest {
                name: None,
                description: None,
                size: None,
                availability_zone: Some(plan.zone.clone()),
                volume_type: Some(volume_type),
                metadata: Default::default(),
                multiattach: false,
                source: Some(src),
                backup_id: None,
                policy: domain::create_rules::CreatePolicy::OPEN,
            };
            let cmd = volume_command(tx, &a, &r, vid, None, Some(super::new_job_id()), None)?;
            tx.execute::<VolumeAggregate>(&vid.to_string(), VolumeCommand::Create(Box::new(cmd)))?;
            new_volumes.push(vid);
        }
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| group_not_found(s));
        let (groups_in_use, groups_limit) = groups_quota(tx)?;
        let cmd = GroupCommand::Create {
            id,
            project_id: tx.caller.project_id.clone(),
            user_id: tx.caller.user_id.clone(),
            name,
            description,
            group_type_id: parse(&plan.group_type_id)?,
            volume_type_ids: plan
                .volume_type_ids
                .iter()
                .map(|t| parse(t))
                .collect::<Result<_, _>>()?,
            availability_zone: plan.zone,
            source: match plan.kind {
                Kind::GroupSnapshot(id, status) => Source::GroupSnapshot {
                    id,
                    status,
                    members: new_volumes,
                },
                Kind::Group(id, status) => Source::Group {
                    id,
                    status,
                    members: new_volumes,
                },
            },
            groups_in_use,
            groups_limit,
        };
        tx.execute::<GroupAggregate>(&id.to_string(), cmd)?;
        group_in(tx.conn(), tx.caller, &id.to_string())
    })
    .await
}
