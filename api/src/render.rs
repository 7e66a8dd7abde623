//! Volume and job bodies, field for field as the documented examples print
//! them (API.md 2.1.9; examples/CINDER-7.1.*.json, JOB-8.1.1).

use projections::{JobRow, VolumeRow};
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
    m.insert("attachments".into(), json!([]));
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
    m.insert("snapshot_id".into(), Value::Null);
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
        if in_list { json!({}) } else { Value::Null },
    );
    m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
    m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
    m.insert("os-volume-replication:extended_status".into(), Value::Null);
    Value::Object(m)
}

/// A list entry without `/detail`: only `id`, `links` and `name`.
pub fn cinder_volume_summary(ctx: &Ctx, v: &VolumeRow) -> Value {
    json!({"id": v.id, "links": links(ctx, "volumes", &v.id), "name": v.name})
}

/// JOB-8.1.1.
pub fn job(j: &JobRow) -> Value {
    json!({
        "status": j.status,
        "entities": j.entities,
        "job_id": j.job_id,
        "job_type": j.job_type,
        "begin_time": j.begin_time,
        "end_time": j.end_time,
        "error_code": j.error_code,
        "fail_reason": j.fail_reason,
    })
}
