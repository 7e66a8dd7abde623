//! Volume and job bodies, field for field as the documented examples print
//! them (API.md 2.1.9; examples/CINDER-7.1.*.json, JOB-8.1.1).

use projections::{JobRow, SnapshotRow, VolumeRow};
use serde_json::{json, Map, Value};

use crate::Ctx;

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
                "server_id": a["server_id"],
                "attachment_id": a["attachment_id"],
                "attached_at": a["attached_at"],
                "host_name": a["host_name"],
                "volume_id": v.id,
                "device": a["device"],
                "id": v.id,
            })
        })
        .collect();
    m.insert("attachments".into(), json!(attachments));
    m.insert("availability_zone".into(), json!(v.availability_zone));
    m.insert("bootable".into(), json!(bool_str(v.bootable)));
    m.insert("consistencygroup_id".into(), Value::Null);
    m.insert("created_at".into(), json!(v.created_at));
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
    m.insert("source_volid".into(), Value::Null);
    m.insert("status".into(), json!(v.status));
    m.insert("updated_at".into(), json!(v.updated_at));
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
    m.insert(
        "os-vol-host-attr:host".into(),
        json!(format!("{}#{}", v.availability_zone, v.volume_type)),
    );
    m.insert(
        "volume_image_metadata".into(),
        match &v.image_metadata {
            Some(md) => json!(md),
            None if in_list => json!({}),
            None => Value::Null,
        },
    );
    m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
    m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
    m.insert("os-volume-replication:extended_status".into(), Value::Null);
    Value::Object(m)
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

/// JOB-8.1.1; a batch job lists its sub-jobs under `entities.sub_jobs`.
pub fn job(j: &JobRow) -> Value {
    let entities = if j.job_type == "batchCreateVolume" {
        json!({"sub_jobs": j.sub_jobs.iter().map(job).collect::<Vec<_>>()})
    } else {
        j.entities.clone()
    };
    json!({
        "status": j.status,
        "entities": entities,
        "job_id": j.job_id,
        "job_type": j.job_type,
        "begin_time": j.begin_time,
        "end_time": j.end_time,
        "error_code": j.error_code,
        "fail_reason": j.fail_reason,
    })
}

/// CINDER-7.3.x snapshot bodies. `detail` adds the extended attributes
/// (7.3.1/7.3.3 tables, 7.3.5/7.3.6 examples); the plain list (7.3.4) has
/// none.
pub fn snapshot(s: &SnapshotRow, detail: bool) -> Value {
    let mut m = json!({
        "status": s.status,
        "description": s.description,
        "created_at": s.created_at,
        "metadata": s.metadata,
        "volume_id": s.volume_id,
        "size": s.size,
        "id": s.id,
        "name": s.name,
        "updated_at": s.updated_at,
    });
    if detail {
        m["os-extended-snapshot-attributes:progress"] = json!(s.progress);
        m["os-extended-snapshot-attributes:project_id"] = json!(s.project_id);
    }
    m
}
