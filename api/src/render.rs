//! Volume and job bodies, field for field as the documented examples print
//! them (API.md 2.1.9; examples/CINDER-7.1.*.json, JOB-8.1.1).

use chrono::{DateTime, Utc};
use projections::jobs::{JobEntity, JobKind, JobStatus};
use projections::{JobRow, SnapshotRow, VolumeRow};
use serde_json::{json, Map, Value};

use crate::Ctx;

/// Cinder resources: `YYYY-MM-DDTHH:MM:SS.ffffff`, UTC, no zone suffix
/// (DECISIONS.md [5.1 #17]).
pub fn cinder_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// EVS jobs: `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn job_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Glance: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn glance_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `self` and `bookmark` links as Cinder writes them.
pub fn links(ctx: &Ctx, collection: &str, id: &str) -> Value {
    json!([
        {"href": format!("{}/{}/{}/{collection}/{id}", ctx.base_url, ctx.api_version, ctx.project_id), "rel": "self"},
        {"href": format!("{}/{}/{collection}/{id}", ctx.base_url, ctx.project_id), "rel": "bookmark"}
    ])
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The fields every Cinder volume body has (CINDER-7.1.1 create, 7.1.3
/// update): `CinderVolumeCreate`.
pub fn cinder_volume(ctx: &Ctx, v: &VolumeRow) -> Map<String, Value> {
    let mut m = Map::new();
    let attachments: Vec<Value> = v
        .attachments
        .iter()
        .map(|a| {
            json!({
                "server_id": a.attachment.server_id,
                "attachment_id": a.attachment.attachment_id,
                "attached_at": cinder_time(&a.attached_at),
                "host_name": a.attachment.host_name,
                "volume_id": v.id,
                "device": a.attachment.device,
                "id": v.id,
            })
        })
        .collect();
    m.insert("attachments".into(), json!(attachments));
    m.insert("availability_zone".into(), json!(v.availability_zone));
    m.insert("bootable".into(), json!(bool_str(v.bootable)));
    m.insert("consistencygroup_id".into(), Value::Null);
    m.insert("created_at".into(), json!(cinder_time(&v.created_at)));
    m.insert("description".into(), json!(v.description));
    m.insert("encrypted".into(), json!(false));
    m.insert("id".into(), json!(v.id));
    m.insert("links".into(), links(ctx, "volumes", &v.id));
    m.insert("metadata".into(), json!(v.metadata));
    m.insert("name".into(), json!(v.name));
    m.insert("replication_status".into(), json!("disabled"));
    m.insert("multiattach".into(), json!(v.multiattach));
    m.insert("size".into(), json!(v.size));
    m.insert("snapshot_id".into(), json!(v.snapshot_id));
    m.insert("source_volid".into(), json!(v.source_volid));
    m.insert("status".into(), json!(v.status.as_str()));
    m.insert(
        "updated_at".into(),
        json!(v.updated_at.as_ref().map(cinder_time)),
    );
    m.insert("user_id".into(), json!(v.user_id));
    m.insert("volume_type".into(), json!(v.volume_type));
    m
}

/// `CinderVolumeDetail` / `CinderVolumeShow` (CINDER-7.1.5, 7.1.6): the
/// create fields plus the admin/extension attributes.
/// `volume_image_metadata` is `{}` in the detail list and `null` in show,
/// exactly as the two documented examples print it; it holds image
/// properties once volumes can be created from images.
pub fn cinder_volume_detail(ctx: &Ctx, v: &VolumeRow, in_list: bool) -> Value {
    let mut m = cinder_volume(ctx, v);
    m.insert("os-vol-host-attr:host".into(), json!(volume_host(ctx, v)));
    // Cinder (`/v3`) prints the key only for a volume made from an image,
    // the same in list and show (tempest compares the two bodies).
    match &v.image_metadata {
        Some(md) => {
            m.insert("volume_image_metadata".into(), json!(md));
        }
        None if ctx.is_v3() => {}
        None => {
            m.insert(
                "volume_image_metadata".into(),
                if in_list { json!({}) } else { Value::Null },
            );
        }
    }
    m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
    m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    // Cinder's v3 detail shows admin the migration status (none here: a
    // retype never migrates; tempest's retype test reads it as admin).
    if ctx.is_v3() && ctx.is_admin {
        m.insert("migration_status".into(), Value::Null);
    }
    m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
    // A Huawei-only field: `/v3` bodies carry exactly Cinder's fields
    // (DECISIONS.md, Everywhere; tempest's schemas forbid any other).
    if !ctx.is_v3() {
        m.insert("os-volume-replication:extended_status".into(), Value::Null);
    }
    Value::Object(m)
}

/// The backend a volume lives on. `/v2` prints the seed's `zone#type`;
/// `/v3` prints Cinder's `host@backend#pool` (tempest checks the pattern),
/// naming this service's one host, the type's backend and the zone's pool,
/// the same names `/os-services` and `/scheduler-stats/get_pools` list.
pub fn volume_host(ctx: &Ctx, v: &VolumeRow) -> String {
    // The type's backend: a retype without migration keeps the host.
    let backend = domain::catalog::backend_of(&v.volume_type);
    if ctx.is_v3() {
        pool_name(&v.availability_zone, backend)
    } else {
        format!("{}#{}", v.availability_zone, backend)
    }
}

/// The one storage host this service is.
pub const HOST: &str = "blockledger";

/// Cinder's pool name: a volume type's backend, one pool per zone.
pub fn pool_name(zone: &str, volume_type: &str) -> String {
    format!("{HOST}@{volume_type}#{zone}")
}

/// Every volume field any dialect prints; each view picks its own keys.
fn volume_superset(ctx: &Ctx, v: &VolumeRow) -> Map<String, Value> {
    let mut m = match cinder_volume_detail(ctx, v, false) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("shareable".into(), json!(bool_str(v.multiattach)));
    m.insert("service_type".into(), json!("EVS"));
    m.insert("dedicated_storage_id".into(), Value::Null);
    m.insert("dedicated_storage_name".into(), Value::Null);
    // The identifier used when attaching: the volume UUID's 32 hex digits.
    m.insert("wwn".into(), json!(v.id.replace('-', "")));
    m.insert("display_name".into(), json!(v.name));
    m.insert("display_description".into(), json!(v.description));
    m
}

fn pick(m: &Map<String, Value>, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .filter_map(|k| m.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
    )
}

/// EVS-6.1.2 `EvsVolumeDetail` (table fields: the example's plus
/// `shareable` as a string and `multiattach`).
pub fn evs_volume_detail(ctx: &Ctx, v: &VolumeRow) -> Value {
    pick(
        &volume_superset(ctx, v),
        &[
            "id",
            "links",
            "name",
            "status",
            "attachments",
            "description",
            "size",
            "metadata",
            "bootable",
            "availability_zone",
            "os-vol-host-attr:host",
            "source_volid",
            "snapshot_id",
            "created_at",
            "volume_type",
            "os-vol-tenant-attr:tenant_id",
            "volume_image_metadata",
            "shareable",
            "multiattach",
        ],
    )
}

/// EVS-6.1.4 `EvsVolumeUpdate`, wrapped by the caller [5.1 #12].
pub fn evs_volume_update(ctx: &Ctx, v: &VolumeRow) -> Value {
    pick(
        &volume_superset(ctx, v),
        &[
            "id",
            "links",
            "name",
            "status",
            "attachments",
            "description",
            "multiattach",
            "shareable",
            "size",
            "metadata",
            "bootable",
            "availability_zone",
            "os-vol-host-attr:host",
            "source_volid",
            "snapshot_id",
            "created_at",
            "volume_type",
            "os-vol-tenant-attr:tenant_id",
            "os-volume-replication:extended_status",
            "volume_image_metadata",
        ],
    )
}

/// EVS-6.1.5 `EvsVolumeShow`: the Cinder detail plus the vendor fields.
pub fn evs_volume_show(ctx: &Ctx, v: &VolumeRow) -> Value {
    let mut m = volume_superset(ctx, v);
    m.remove("display_name");
    m.remove("display_description");
    Value::Object(m)
}

/// CINDERV1-8.2.1.1 `V1Volume`: `display_name`/`display_description`, no links.
pub fn v1_volume(ctx: &Ctx, v: &VolumeRow) -> Value {
    pick(
        &volume_superset(ctx, v),
        &[
            "attachments",
            "availability_zone",
            "os-vol-host-attr:host",
            "encrypted",
            "os-volume-replication:extended_status",
            "volume_image_metadata",
            "snapshot_id",
            "id",
            "size",
            "os-vol-tenant-attr:tenant_id",
            "os-vol-mig-status-attr:migstat",
            "metadata",
            "status",
            "display_description",
            "source_volid",
            "os-vol-mig-status-attr:name_id",
            "display_name",
            "bootable",
            "created_at",
            "volume_type",
            "multiattach",
            "shareable",
        ],
    )
}

/// A list entry without `/detail`: only `id`, `links` and `name`.
pub fn cinder_volume_summary(ctx: &Ctx, v: &VolumeRow) -> Value {
    json!({"id": v.id, "links": links(ctx, "volumes", &v.id), "name": v.name})
}

/// The EVS name of a job kind (JOB-8.1.1 `job_type`).
pub fn evs_job_type(kind: JobKind) -> &'static str {
    match kind {
        JobKind::CreateVolume => "createVolume",
        JobKind::BatchCreateVolume => "batchCreateVolume",
        JobKind::ExtendVolume => "extendVolume",
        JobKind::DeleteVolume => "deleteVolume",
        JobKind::RollbackVolume => "rollbackVolume",
        JobKind::CreateSnapshot => "createSnapshot",
        JobKind::DeleteSnapshot => "deleteSnapshot",
        JobKind::ExportImage => "uploadVolumeToImage",
        JobKind::AttachVolume => "attachVolume",
        JobKind::DetachVolume => "detachVolume",
    }
}

/// The EVS code of a failed job of `kind` (API.md: EVS.2024 create,
/// EVS.2026 extend, EVS.2020 delete; the rest have none documented).
fn evs_job_error_code(kind: JobKind) -> &'static str {
    match kind {
        JobKind::CreateVolume | JobKind::BatchCreateVolume => "EVS.2024",
        JobKind::ExtendVolume => "EVS.2026",
        JobKind::DeleteVolume => "EVS.2020",
        _ => "EVS.5500",
    }
}

/// JOB-8.1.1; a batch job lists its sub-jobs under `entities.sub_jobs`.
pub fn job(j: &JobRow) -> Value {
    let entities = match &j.entity {
        JobEntity::Batch => json!({"sub_jobs": j.sub_jobs.iter().map(job).collect::<Vec<_>>()}),
        JobEntity::Volume(id) => json!({ "volume_id": id }),
        JobEntity::Snapshot(id) => json!({ "snapshot_id": id }),
        JobEntity::Image(id) => json!({ "image_id": id }),
    };
    let failed = j.status == JobStatus::Fail;
    json!({
        "status": j.status.as_str(),
        "entities": entities,
        "job_id": j.job_id,
        "job_type": evs_job_type(j.kind),
        "begin_time": job_time(&j.begin_time),
        "end_time": j.end_time.as_ref().map(job_time).unwrap_or_default(),
        "error_code": failed.then(|| evs_job_error_code(j.kind)),
        "fail_reason": if failed { j.failure.clone() } else { None },
    })
}

/// CINDER-7.3.x snapshot bodies. `detail` adds the extended attributes
/// (7.3.1/7.3.3 tables, 7.3.5/7.3.6 examples); the plain list (7.3.4) has
/// none.
pub fn snapshot(s: &SnapshotRow, detail: bool) -> Value {
    let mut m = json!({
        "status": s.status.as_str(),
        "description": s.description,
        "created_at": cinder_time(&s.created_at),
        "metadata": s.metadata,
        "volume_id": s.volume_id,
        "size": s.size,
        "id": s.id,
        "name": s.name,
        "updated_at": s.updated_at.as_ref().map(cinder_time),
    });
    if detail {
        m["os-extended-snapshot-attributes:progress"] = json!(s.progress);
        m["os-extended-snapshot-attributes:project_id"] = json!(s.project_id);
    }
    m
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn each_dialect_formats_the_raw_time_its_own_way() {
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .unwrap()
            .checked_add_signed(chrono::Duration::microseconds(123_456))
            .unwrap();
        assert_eq!(super::cinder_time(&t), "2026-01-02T03:04:05.123456");
        assert_eq!(super::job_time(&t), "2026-01-02T03:04:05.123Z");
        assert_eq!(super::glance_time(&t), "2026-01-02T03:04:05Z");
    }
}
