//! Volume and job bodies, field for field as the documented examples print
//! them (API.md 2.1.9; examples/CINDER-7.1.*.json, JOB-8.1.1).

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use projections::jobs::{JobEntity, JobKind, JobStatus};
use projections::{JobRow, SnapshotRow, VolumeRow};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::microversion as mv;
use crate::Ctx;

/// Cinder resources: `YYYY-MM-DDTHH:MM:SS.ffffff`, UTC, no zone suffix
/// (DECISIONS.md [5.1 #17]).
pub fn cinder_time(t: &DateTime<Utc>) -> String {
    CinderTime(t).to_string()
}

/// A time as Cinder prints it, written straight into the body (a page of
/// 1,000 volumes prints 2,000 of them; chrono's `format` parses its
/// pattern at every call).
#[derive(Clone, Copy)]
pub struct CinderTime<'a>(pub &'a DateTime<Utc>);

impl CinderTime<'_> {
    /// The 26 ASCII bytes, or None for a leap second or a year of other
    /// than four digits (chrono's own rendering prints those; this equals
    /// it everywhere else). Digits into a fixed buffer: `write!` with
    /// seven padded numbers was 12% of a list page's CPU.
    fn ascii(&self) -> Option<[u8; 26]> {
        use chrono::{Datelike, Timelike};
        // The naive UTC time: a `DateTime`'s own accessors add the (zero)
        // offset at every call.
        let t = self.0.naive_utc();
        let nanos = t.nanosecond();
        let year = t.year();
        if nanos >= 1_000_000_000 || !(0..=9999).contains(&year) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000000";
        let mut put = |at: usize, len: usize, mut n: u32| {
            for d in b[at..at + len].iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year.unsigned_abs());
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 6, nanos / 1000);
        Some(b)
    }
}

impl std::fmt::Display for CinderTime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ascii() {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| std::fmt::Error)?),
            None => write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.6f")),
        }
    }
}

impl Serialize for CinderTime<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
    serde_json::to_value(Links {
        ctx,
        collection,
        id,
    })
    .unwrap_or(Value::Null)
}

/// [`links`], serialized without building a `Value`.
#[derive(Clone, Copy)]
pub struct Links<'a> {
    ctx: &'a Ctx,
    collection: &'a str,
    id: &'a str,
}

/// One link: its keys in the order a JSON object map sorts them.
#[derive(Serialize)]
struct Link<H> {
    href: H,
    rel: &'static str,
}

/// A `Display` value serialized as a JSON string, with no `String` between.
struct Shown<D>(D);

impl<D: std::fmt::Display> Serialize for Shown<D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

struct SelfHref<'a>(Links<'a>);
struct BookmarkHref<'a>(Links<'a>);

impl std::fmt::Display for SelfHref<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.0;
        write!(
            f,
            "{}/{}/{}/{}/{}",
            l.ctx.base_url, l.ctx.api_version, l.ctx.project_id, l.collection, l.id
        )
    }
}

impl std::fmt::Display for BookmarkHref<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.0;
        write!(
            f,
            "{}/{}/{}/{}",
            l.ctx.base_url, l.ctx.project_id, l.collection, l.id
        )
    }
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Link {
            href: Shown(SelfHref(*self)),
            rel: "self",
        })?;
        seq.serialize_element(&Link {
            href: Shown(BookmarkHref(*self)),
            rel: "bookmark",
        })?;
        seq.end()
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// A Cinder volume body, typed and borrowing from its row, so a page of
/// 1,000 is written straight into the response bytes: building it as a
/// `serde_json::Value` map (some 30 keys per row, each key and value
/// allocated, then freed) was about half of a page's time. The fields are
/// declared in the order a JSON object map sorts its keys (byte order),
/// so the bytes are exactly those the map printed; the tests check the
/// order and the bytes.
#[derive(Serialize)]
pub struct CinderVolume<'a> {
    attachments: CinderAttachments<'a>,
    availability_zone: &'a str,
    bootable: &'static str,
    /// 3.61, admin only: the cluster of the volume's service. This service
    /// runs no Active/Active clusters (its `/clusters` list is empty), so
    /// the value is null, as Cinder's for a volume outside a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_name: Option<()>,
    consistencygroup_id: (),
    /// 3.65: every volume here counts against its project's quota (there
    /// are no temporary migration volumes, Cinder's only ones that don't).
    #[serde(skip_serializing_if = "Option::is_none")]
    consumes_quota: Option<bool>,
    created_at: CinderTime<'a>,
    description: Option<&'a str>,
    encrypted: bool,
    /// 3.13 (g17): the generic group the volume is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<Option<&'a str>>,
    id: &'a str,
    links: Links<'a>,
    metadata: &'a BTreeMap<String, String>,
    /// Cinder's v3 detail shows admin the migration status (none here: a
    /// retype never migrates; tempest's retype test reads it as admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    migration_status: Option<()>,
    multiattach: bool,
    name: Option<&'a str>,
    #[serde(
        rename = "os-vol-host-attr:host",
        skip_serializing_if = "Option::is_none"
    )]
    host: Option<Shown<VolumeHost<'a>>>,
    #[serde(
        rename = "os-vol-mig-status-attr:migstat",
        skip_serializing_if = "Option::is_none"
    )]
    migstat: Option<()>,
    #[serde(
        rename = "os-vol-mig-status-attr:name_id",
        skip_serializing_if = "Option::is_none"
    )]
    name_id: Option<()>,
    #[serde(
        rename = "os-vol-tenant-attr:tenant_id",
        skip_serializing_if = "Option::is_none"
    )]
    tenant_id: Option<&'a str>,
    /// A Huawei-only field: `/v3` bodies carry exactly Cinder's fields
    /// (DECISIONS.md, Everywhere; tempest's schemas forbid any other).
    #[serde(
        rename = "os-volume-replication:extended_status",
        skip_serializing_if = "Option::is_none"
    )]
    extended_status: Option<()>,
    /// 3.21 (a17): an admin's detail shows it; no backend here has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<()>,
    replication_status: &'static str,
    /// 3.48: the uuid of the `cinder-volume` service (backend) holding the
    /// volume, [`service_uuid`].
    #[serde(skip_serializing_if = "Option::is_none")]
    service_uuid: Option<ServiceUuid<'a>>,
    /// 3.48: whether a consumer must lock around target scans. A volume
    /// here is a file opened by path (no iSCSI target is shared between
    /// volumes): never, `false`. From 3.69 the field may be null (forced
    /// locking); this backend never asks for that.
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_targets: Option<bool>,
    size: i64,
    snapshot_id: Option<&'a str>,
    source_volid: Option<&'a str>,
    status: &'static str,
    updated_at: Option<CinderTime<'a>>,
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_image_metadata: Option<ImageMetadata<'a>>,
    volume_type: &'a str,
    /// 3.63: the type's id, beside its name ([`CinderVolume::with_type_id`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_type_id: Option<&'a str>,
    // 3.64's `encryption_key_id` is printed only for an encrypted volume;
    // this service keeps no key manager and encrypts no volume
    // (`encrypted` is false), so no body has it.
}

/// The uuid of the `cinder-volume` service that holds volumes of
/// `volume_type` (the backend `blockledger@<type>`): derived from the
/// backend's name (UUID v5), so it is the same at every start and in every
/// replay without being stored.
pub fn service_uuid(volume_type: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("blockledger:cinder-volume:{HOST}@{volume_type}").as_bytes(),
    )
}

/// [`service_uuid`] of a volume type, derived when it is printed (a page
/// derives it once per type, [`CinderPageWriter`]).
#[derive(Clone, Copy)]
struct ServiceUuid<'a>(&'a str);

impl Serialize for ServiceUuid<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        service_uuid(self.0).serialize(s)
    }
}

/// `volume_image_metadata` where a body has it: the image's properties,
/// `{}` or `null`.
enum ImageMetadata<'a> {
    Map(&'a BTreeMap<String, String>),
    Empty,
    Null,
}

impl Serialize for ImageMetadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ImageMetadata::Map(m) => m.serialize(s),
            ImageMetadata::Empty => s.serialize_map(Some(0))?.end(),
            ImageMetadata::Null => s.serialize_unit(),
        }
    }
}

/// A volume's attachments as Cinder lists them.
struct CinderAttachments<'a>(&'a VolumeRow);

/// One attachment; keys in sorted order, like [`CinderVolume`]'s.
#[derive(Serialize)]
struct CinderAttachment<'a> {
    attached_at: CinderTime<'a>,
    attachment_id: &'a uuid::Uuid,
    device: &'a str,
    host_name: Option<&'a str>,
    id: &'a str,
    server_id: &'a str,
    volume_id: &'a str,
}

impl Serialize for CinderAttachments<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        s.collect_seq(v.attachments.iter().map(|a| CinderAttachment {
            attached_at: CinderTime(&a.attached_at),
            attachment_id: &a.attachment.attachment_id,
            device: &a.attachment.device,
            host_name: a.attachment.host_name.as_deref(),
            id: &v.id,
            server_id: &a.attachment.server_id,
            volume_id: &v.id,
        }))
    }
}

/// Which Cinder body a [`CinderVolume`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CinderView {
    /// CINDER-7.1.1 create, 7.1.3 update: `CinderVolumeCreate`.
    Plain,
    /// CINDER-7.1.5, an entry of the detail list.
    ListDetail,
    /// CINDER-7.1.6 show.
    Show,
}

impl<'a> CinderVolume<'a> {
    pub fn new(ctx: &'a Ctx, v: &'a VolumeRow, view: CinderView) -> Self {
        let detail = view != CinderView::Plain;
        let v3 = ctx.is_v3();
        let shared = v3 && ctx.at_least(mv::VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS);
        // Cinder (`/v3`) prints `volume_image_metadata` only for a volume
        // made from an image, the same in list and show (tempest compares
        // the two bodies); the seed's `/v2` prints `{}` in the detail list
        // and `null` in show, exactly as its two documented examples do.
        let image = match (&v.image_metadata, view) {
            (_, CinderView::Plain) => None,
            (Some(md), _) => Some(ImageMetadata::Map(md)),
            (None, _) if v3 => None,
            (None, CinderView::ListDetail) => Some(ImageMetadata::Empty),
            (None, _) => Some(ImageMetadata::Null),
        };
        CinderVolume {
            attachments: CinderAttachments(v),
            availability_zone: &v.availability_zone,
            bootable: bool_str(v.bootable),
            cluster_name: (v3 && ctx.is_admin && ctx.at_least(mv::VOLUME_CLUSTER_NAME))
                .then_some(()),
            consistencygroup_id: (),
            consumes_quota: (v3 && ctx.at_least(mv::USE_QUOTA)).then_some(true),
            created_at: CinderTime(&v.created_at),
            description: v.description.as_deref(),
            encrypted: false,
            group_id: (v3 && ctx.at_least(crate::microversion::GROUP_VOLUME))
                .then_some(v.group_id.as_deref()),
            id: &v.id,
            links: Links {
                ctx,
                collection: "volumes",
                id: &v.id,
            },
            metadata: &v.metadata,
            migration_status: (detail && v3 && ctx.is_admin).then_some(()),
            multiattach: v.multiattach,
            name: v.name.as_deref(),
            host: detail.then_some(Shown(VolumeHost(ctx, v))),
            migstat: detail.then_some(()),
            name_id: detail.then_some(()),
            tenant_id: detail.then_some(v.project_id.as_str()),
            extended_status: (detail && !v3).then_some(()),
            provider_id: (detail
                && ctx.is_admin
                && ctx.at_least(crate::microversion::VOLUME_DETAIL_PROVIDER_ID))
            .then_some(()),
            replication_status: "disabled",
            service_uuid: shared.then_some(ServiceUuid(&v.volume_type)),
            shared_targets: shared.then_some(false),
            size: v.size,
            snapshot_id: v.snapshot_id.as_deref(),
            source_volid: v.source_volid.as_deref(),
            status: v.status.as_str(),
            updated_at: v.updated_at.as_ref().map(CinderTime),
            user_id: &v.user_id,
            volume_image_metadata: image,
            volume_type: &v.volume_type,
            volume_type_id: None,
        }
    }

    /// 3.63: adds `volume_type_id` (the adapter looks the id up in the
    /// types view, which the row does not hold).
    pub fn with_type_id(mut self, id: Option<&'a str>) -> Self {
        let ctx = self.links.ctx;
        if ctx.is_v3() && ctx.at_least(mv::VOLUME_TYPE_ID_IN_VOLUME_DETAIL) {
            self.volume_type_id = id;
        }
        self
    }
}

/// The fields every Cinder volume body has (CINDER-7.1.1 create, 7.1.3
/// update): `CinderVolumeCreate`.
pub fn cinder_volume(ctx: &Ctx, v: &VolumeRow) -> Map<String, Value> {
    object(&CinderVolume::new(ctx, v, CinderView::Plain))
}

/// A `/v3` create or update body: [`cinder_volume`] with 3.63's
/// `volume_type_id` when the adapter looked it up.
pub fn cinder_volume_typed(ctx: &Ctx, v: &VolumeRow, type_id: Option<&str>) -> Value {
    Value::Object(object(
        &CinderVolume::new(ctx, v, CinderView::Plain).with_type_id(type_id),
    ))
}

/// `CinderVolumeDetail` / `CinderVolumeShow` (CINDER-7.1.5, 7.1.6): the
/// create fields plus the admin/extension attributes.
pub fn cinder_volume_detail(ctx: &Ctx, v: &VolumeRow, in_list: bool) -> Value {
    cinder_volume_show(ctx, v, in_list, None)
}

/// [`cinder_volume_detail`] with 3.63's `volume_type_id`.
pub fn cinder_volume_show(ctx: &Ctx, v: &VolumeRow, in_list: bool, type_id: Option<&str>) -> Value {
    let view = if in_list {
        CinderView::ListDetail
    } else {
        CinderView::Show
    };
    Value::Object(object(
        &CinderVolume::new(ctx, v, view).with_type_id(type_id),
    ))
}

/// A typed body as a JSON object (for the bodies that add or pick keys).
fn object(body: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A body written straight to the response bytes, as `axum::Json` writes
/// one (compact, `application/json`), without a `Value` in between.
pub fn json_response(body: &impl Serialize) -> Response {
    let mut buf = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            buf,
        )
            .into_response(),
        // A body of plain data and string maps cannot fail to encode;
        // answer as `axum::Json` would if it somehow did.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// CINDER-7.1.4 and 7.1.5 list pages: `volumes` and, when there is a next
/// page, `volumes_links` (sorted after `volumes`, as a map prints it).
#[derive(Serialize)]
pub struct VolumePage<T> {
    /// Microversion 3.45's `with_count`: how many volumes the filters
    /// match, whatever the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    pub volumes: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes_links: Option<Value>,
}

/// A list entry without `/detail`: only `id`, `links` and `name`.
#[derive(Serialize)]
pub struct CinderVolumeSummary<'a> {
    id: &'a str,
    links: Links<'a>,
    name: Option<&'a str>,
}

impl<'a> CinderVolumeSummary<'a> {
    pub fn new(ctx: &'a Ctx, v: &'a VolumeRow) -> Self {
        CinderVolumeSummary {
            id: &v.id,
            links: Links {
                ctx,
                collection: "volumes",
                id: &v.id,
            },
            name: v.name.as_deref(),
        }
    }
}

/// A body written by hand as the bytes `serde_json::to_writer` prints for
/// it (issue 11: a page of 1,000 volumes). Through serde, every key and
/// every piece of a `Display` value went through serde_json's escaping
/// loop, some 70,000 calls a page and with the `write!`s 40% of its CPU;
/// here keys are literals and a string with nothing to escape is copied
/// whole. The tests check the bytes equal serde's for the same struct in
/// every view, version, role and microversion.
pub trait RawJson<'a> {
    fn write_raw(&self, w: &mut RawWriter<'a>);
}

/// The output of [`RawJson`] bodies, with what every row of a page shares
/// worked out once: the escaped link prefixes and each volume type's
/// [`service_uuid`].
#[derive(Default)]
pub struct RawWriter<'a> {
    out: Vec<u8>,
    /// (ctx, collection) the prefixes are for; `<base>/<version>/<project>/<collection>/`
    /// and `<base>/<project>/<collection>/`, escaped.
    links: Option<(&'a Ctx, &'a str, Vec<u8>, Vec<u8>)>,
    uuids: Vec<(&'a str, uuid::Uuid)>,
}

/// Whether serde_json prints `s` as it is: it escapes `"`, `\` and the
/// control characters below 0x20, nothing else (UTF-8 stays as it is).
fn plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

impl<'a> RawWriter<'a> {
    fn raw(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// Any value through serde_json itself (numbers, and strings that
    /// need escaping): writing into a `Vec` cannot fail.
    fn serde(&mut self, v: &(impl Serialize + ?Sized)) {
        let _ = serde_json::to_writer(&mut self.out, v);
    }

    fn str(&mut self, s: &str) {
        if plain(s) {
            self.out.reserve(s.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
        } else {
            self.serde(s);
        }
    }

    /// `s` escaped, without its quotes (a part of a longer string: JSON
    /// escapes character by character, so the parts concatenate).
    fn str_part(out: &mut Vec<u8>, s: &str) {
        if plain(s) {
            out.extend_from_slice(s.as_bytes());
        } else if let Ok(q) = serde_json::to_vec(s) {
            out.extend_from_slice(&q[1..q.len() - 1]);
        }
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.raw(b"null"),
        }
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }

    fn time(&mut self, t: CinderTime<'_>) {
        match t.ascii() {
            Some(b) => {
                self.out.push(b'"');
                self.out.extend_from_slice(&b);
                self.out.push(b'"');
            }
            None => self.str(&t.to_string()),
        }
    }

    fn uuid(&mut self, u: &uuid::Uuid) {
        let mut buf = uuid::Uuid::encode_buffer();
        self.str(u.hyphenated().encode_lower(&mut buf));
    }

    fn map(&mut self, m: &BTreeMap<String, String>) {
        self.out.push(b'{');
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.str(k);
            self.out.push(b':');
            self.str(v);
        }
        self.out.push(b'}');
    }

    fn links(&mut self, l: &Links<'a>) {
        let fresh = matches!(&self.links,
            Some((ctx, coll, _, _)) if std::ptr::eq(*ctx, l.ctx) && *coll == l.collection);
        if !fresh {
            let (ctx, coll) = (l.ctx, l.collection);
            let mut own = Vec::new();
            let mut bookmark = Vec::new();
            for part in [
                ctx.base_url.as_str(),
                "/",
                ctx.api_version,
                "/",
                &ctx.project_id,
                "/",
                coll,
                "/",
            ] {
                Self::str_part(&mut own, part);
            }
            for part in [ctx.base_url.as_str(), "/", &ctx.project_id, "/", coll, "/"] {
                Self::str_part(&mut bookmark, part);
            }
            self.links = Some((ctx, coll, own, bookmark));
        }
        let Some((_, _, own, bookmark)) = &self.links else {
            return;
        };
        let out = &mut self.out;
        out.extend_from_slice(b"[{\"href\":\"");
        out.extend_from_slice(own);
        Self::str_part(out, l.id);
        out.extend_from_slice(b"\",\"rel\":\"self\"},{\"href\":\"");
        out.extend_from_slice(bookmark);
        Self::str_part(out, l.id);
        out.extend_from_slice(b"\",\"rel\":\"bookmark\"}]");
    }

    fn host(&mut self, h: &VolumeHost<'_>) {
        let (ctx, v) = (h.0, h.1);
        let out = &mut self.out;
        out.push(b'"');
        if ctx.is_v3() {
            for part in [HOST, "@", &v.backend, "#", &v.availability_zone] {
                Self::str_part(out, part);
            }
        } else {
            for part in [v.availability_zone.as_str(), "#", &v.backend] {
                Self::str_part(out, part);
            }
        }
        out.push(b'"');
    }

    fn service_uuid(&mut self, t: ServiceUuid<'a>) {
        let u = match self.uuids.iter().find(|(name, _)| *name == t.0) {
            Some((_, u)) => *u,
            None => {
                let u = service_uuid(t.0);
                self.uuids.push((t.0, u));
                u
            }
        };
        self.uuid(&u);
    }
}

impl<'a> RawJson<'a> for CinderVolume<'a> {
    fn write_raw(&self, w: &mut RawWriter<'a>) {
        // In the struct's field order (sorted), skipping what serde skips.
        w.raw(b"{\"attachments\":[");
        let v = self.attachments.0;
        for (i, a) in v.attachments.iter().enumerate() {
            w.raw(if i == 0 {
                b"{\"attached_at\":"
            } else {
                b",{\"attached_at\":"
            });
            w.time(CinderTime(&a.attached_at));
            w.raw(b",\"attachment_id\":");
            w.uuid(&a.attachment.attachment_id);
            w.raw(b",\"device\":");
            w.str(&a.attachment.device);
            w.raw(b",\"host_name\":");
            w.opt_str(a.attachment.host_name.as_deref());
            w.raw(b",\"id\":");
            w.str(&v.id);
            w.raw(b",\"server_id\":");
            w.str(&a.attachment.server_id);
            w.raw(b",\"volume_id\":");
            w.str(&v.id);
            w.raw(b"}");
        }
        w.raw(b"],\"availability_zone\":");
        w.str(self.availability_zone);
        w.raw(b",\"bootable\":");
        w.str(self.bootable);
        if self.cluster_name.is_some() {
            w.raw(b",\"cluster_name\":null");
        }
        w.raw(b",\"consistencygroup_id\":null");
        if let Some(q) = self.consumes_quota {
            w.raw(b",\"consumes_quota\":");
            w.bool(q);
        }
        w.raw(b",\"created_at\":");
        w.time(self.created_at);
        w.raw(b",\"description\":");
        w.opt_str(self.description);
        w.raw(b",\"encrypted\":");
        w.bool(self.encrypted);
        if let Some(g) = self.group_id {
            w.raw(b",\"group_id\":");
            w.opt_str(g);
        }
        w.raw(b",\"id\":");
        w.str(self.id);
        w.raw(b",\"links\":");
        w.links(&self.links);
        w.raw(b",\"metadata\":");
        w.map(self.metadata);
        if self.migration_status.is_some() {
            w.raw(b",\"migration_status\":null");
        }
        w.raw(b",\"multiattach\":");
        w.bool(self.multiattach);
        w.raw(b",\"name\":");
        w.opt_str(self.name);
        if let Some(Shown(h)) = &self.host {
            w.raw(b",\"os-vol-host-attr:host\":");
            w.host(h);
        }
        if self.migstat.is_some() {
            w.raw(b",\"os-vol-mig-status-attr:migstat\":null");
        }
        if self.name_id.is_some() {
            w.raw(b",\"os-vol-mig-status-attr:name_id\":null");
        }
        if let Some(t) = self.tenant_id {
            w.raw(b",\"os-vol-tenant-attr:tenant_id\":");
            w.str(t);
        }
        if self.extended_status.is_some() {
            w.raw(b",\"os-volume-replication:extended_status\":null");
        }
        if self.provider_id.is_some() {
            w.raw(b",\"provider_id\":null");
        }
        w.raw(b",\"replication_status\":");
        w.str(self.replication_status);
        if let Some(u) = self.service_uuid {
            w.raw(b",\"service_uuid\":");
            w.service_uuid(u);
        }
        if let Some(s) = self.shared_targets {
            w.raw(b",\"shared_targets\":");
            w.bool(s);
        }
        w.raw(b",\"size\":");
        w.serde(&self.size);
        w.raw(b",\"snapshot_id\":");
        w.opt_str(self.snapshot_id);
        w.raw(b",\"source_volid\":");
        w.opt_str(self.source_volid);
        w.raw(b",\"status\":");
        w.str(self.status);
        w.raw(b",\"updated_at\":");
        match self.updated_at {
            Some(t) => w.time(t),
            None => w.raw(b"null"),
        }
        w.raw(b",\"user_id\":");
        w.str(self.user_id);
        match &self.volume_image_metadata {
            Some(ImageMetadata::Map(m)) => {
                w.raw(b",\"volume_image_metadata\":");
                w.map(m);
            }
            Some(ImageMetadata::Empty) => w.raw(b",\"volume_image_metadata\":{}"),
            Some(ImageMetadata::Null) => w.raw(b",\"volume_image_metadata\":null"),
            None => {}
        }
        w.raw(b",\"volume_type\":");
        w.str(self.volume_type);
        if let Some(t) = self.volume_type_id {
            w.raw(b",\"volume_type_id\":");
            w.str(t);
        }
        w.raw(b"}");
    }
}

impl<'a> RawJson<'a> for CinderVolumeSummary<'a> {
    fn write_raw(&self, w: &mut RawWriter<'a>) {
        w.raw(b"{\"id\":");
        w.str(self.id);
        w.raw(b",\"links\":");
        w.links(&self.links);
        w.raw(b",\"name\":");
        w.opt_str(self.name);
        w.raw(b"}");
    }
}

impl<'a, T: RawJson<'a>> VolumePage<T> {
    /// The page's bytes ([`RawJson`]), as `serde_json::to_writer` prints
    /// the page.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = RawWriter::default();
        if let Some(c) = self.count {
            w.raw(b"{\"count\":");
            w.serde(&c);
            w.raw(b",\"volumes\":[");
        } else {
            w.raw(b"{\"volumes\":[");
        }
        for (i, v) in self.volumes.iter().enumerate() {
            if i > 0 {
                w.out.push(b',');
            }
            v.write_raw(&mut w);
            if i == 0 {
                // Rows are about the same size: one allocation for the
                // page instead of doubling up to it.
                let row = w.out.len();
                w.out
                    .reserve(row.saturating_mul(self.volumes.len()) / 8 * 9);
            }
        }
        w.raw(b"]");
        if let Some(l) = &self.volumes_links {
            w.raw(b",\"volumes_links\":");
            w.serde(l);
        }
        w.raw(b"}");
        w.out
    }

    /// The page as a response, with `axum::Json`'s content type.
    pub fn response(&self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.to_bytes(),
        )
            .into_response()
    }
}

/// [`volume_host`], written straight into the body.
struct VolumeHost<'a>(&'a Ctx, &'a VolumeRow);

impl std::fmt::Display for VolumeHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ctx, v) = (self.0, self.1);
        // The backend it was placed on (a retype without migration keeps
        // it, so the host never changes).
        let backend = &v.backend;
        if ctx.is_v3() {
            write!(f, "{HOST}@{backend}#{}", v.availability_zone)
        } else {
            write!(f, "{}#{}", v.availability_zone, backend)
        }
    }
}

/// The backend a volume lives on. `/v2` prints the seed's `zone#type`;
/// `/v3` prints Cinder's `host@backend#pool` (tempest checks the pattern),
/// naming this service's one host, the type's backend and the zone's pool,
/// the same names `/os-services` and `/scheduler-stats/get_pools` list.
pub fn volume_host(ctx: &Ctx, v: &VolumeRow) -> String {
    VolumeHost(ctx, v).to_string()
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
    Value::Object(object(&CinderVolumeSummary::new(ctx, v)))
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
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone, Utc};
    use projections::volumes::AttachmentRow;
    use projections::VolumeRow;
    use serde_json::{json, Map, Value};

    use crate::Ctx;

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

    /// The hand-written Cinder time equals chrono's `%Y-%m-%dT%H:%M:%S%.6f`
    /// over years, days, nanoseconds (truncated, not rounded) and the
    /// years chrono prints in other than four digits.
    #[test]
    fn the_fast_cinder_time_is_chronos() {
        let chrono = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let secs = (seed % 400_000_000_000) as i64 - 100_000_000_000;
            let nanos = (seed >> 20) as u32 % 1_000_000_000;
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(super::cinder_time(&t), chrono(&t), "{secs} {nanos}");
        }
        for t in [
            Utc.timestamp_opt(0, 999_999_999).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(7, 1, 1, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(super::cinder_time(&t), chrono(&t));
        }
    }

    fn ctx(api_version: &'static str, is_admin: bool) -> Ctx {
        Ctx {
            user_id: "u1".into(),
            project_id: "p\"1".into(),
            is_admin,
            role: domain::identity::Role::Admin,
            dialect: crate::dialects::DialectRef(&crate::dialects::cinder::CINDER),
            api_version,
            base_url: "http://127.0.0.1:8776".into(),
            request_id: "req".into(),
            route: "r".into(),
            idempotency_key: None,
            remote_addr: None,
            microversion: (3, 0),
        }
    }

    /// Rows with and without every optional part, with text to escape.
    fn rows() -> Vec<VolumeRow> {
        let t = Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap();
        let base = VolumeRow {
            id: "0b7a1e3c-52b1-4d4e-9a44-1f1a2d2f0a01".into(),
            project_id: "p1".into(),
            user_id: "u1".into(),
            name: None,
            description: None,
            size: 1,
            status: domain::VolumeStatus::Available,
            availability_zone: "az-dc-1".into(),
            volume_type: "SSD".into(),
            metadata: BTreeMap::new(),
            multiattach: false,
            bootable: false,
            created_at: t,
            updated_at: None,
            snapshot_id: None,
            source_volid: None,
            group_id: None,
            attachments: Vec::new(),
            image_metadata: None,
            seq: 7,
            backend: "SSD".into(),
        };
        let attachment = |i: u128, host: Option<&str>| AttachmentRow {
            attachment: domain::volume::Attachment {
                attachment_id: uuid::Uuid::from_u128(i),
                server_id: format!("server-{i}"),
                host_name: host.map(str::to_string),
                device: format!("/dev/vd{i}"),
                mode: domain::volume::AttachMode::Rw,
            },
            attached_at: t,
        };
        let full = VolumeRow {
            name: Some("n\"ame \u{e9}\u{1f600}\n<tab>\t".into()),
            description: Some("d\\e".into()),
            size: 1024,
            status: domain::VolumeStatus::InUse,
            metadata: BTreeMap::from([
                ("k\"1".to_string(), "v/1".to_string()),
                ("a".to_string(), String::new()),
            ]),
            multiattach: true,
            bootable: true,
            updated_at: Some(t + chrono::Duration::microseconds(5)),
            snapshot_id: Some("s1".into()),
            source_volid: Some("v0".into()),
            attachments: vec![attachment(1, Some("h")), attachment(2, None)],
            image_metadata: Some(BTreeMap::from([("image_id".into(), "i1".into())])),
            ..base.clone()
        };
        let empty_image = VolumeRow {
            image_metadata: Some(BTreeMap::new()),
            name: Some(String::new()),
            ..base.clone()
        };
        vec![base, full, empty_image]
    }

    /// The Value-map rendering the typed bodies replaced (as it was before
    /// issue 11's list work), kept here as the oracle they must equal
    /// byte for byte.
    fn oracle(ctx: &Ctx, v: &VolumeRow, detail: Option<bool>) -> Value {
        let mut m = Map::new();
        let attachments: Vec<Value> = v
            .attachments
            .iter()
            .map(|a| {
                json!({
                    "server_id": a.attachment.server_id,
                    "attachment_id": a.attachment.attachment_id,
                    "attached_at": super::cinder_time(&a.attached_at),
                    "host_name": a.attachment.host_name,
                    "volume_id": v.id,
                    "device": a.attachment.device,
                    "id": v.id,
                })
            })
            .collect();
        let links = json!([
            {"href": format!("{}/{}/{}/volumes/{}", ctx.base_url, ctx.api_version, ctx.project_id, v.id), "rel": "self"},
            {"href": format!("{}/{}/volumes/{}", ctx.base_url, ctx.project_id, v.id), "rel": "bookmark"}
        ]);
        m.insert("attachments".into(), json!(attachments));
        m.insert("availability_zone".into(), json!(v.availability_zone));
        m.insert("bootable".into(), json!(super::bool_str(v.bootable)));
        m.insert("consistencygroup_id".into(), Value::Null);
        m.insert(
            "created_at".into(),
            json!(super::cinder_time(&v.created_at)),
        );
        m.insert("description".into(), json!(v.description));
        m.insert("encrypted".into(), json!(false));
        m.insert("id".into(), json!(v.id));
        m.insert("links".into(), links);
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
            json!(v.updated_at.as_ref().map(super::cinder_time)),
        );
        m.insert("user_id".into(), json!(v.user_id));
        m.insert("volume_type".into(), json!(v.volume_type));
        let Some(in_list) = detail else {
            return Value::Object(m);
        };
        let backend = &v.backend;
        let host = if ctx.is_v3() {
            format!("blockledger@{backend}#{}", v.availability_zone)
        } else {
            format!("{}#{}", v.availability_zone, backend)
        };
        m.insert("os-vol-host-attr:host".into(), json!(host));
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
        if ctx.is_v3() && ctx.is_admin {
            m.insert("migration_status".into(), Value::Null);
        }
        m.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
        if !ctx.is_v3() {
            m.insert("os-volume-replication:extended_status".into(), Value::Null);
        }
        Value::Object(m)
    }

    /// Every typed Cinder body prints exactly the bytes of the Value map
    /// it replaced, in every dialect version, role and view, alone and
    /// as a page; and printing it through a `Value` (which sorts keys)
    /// changes nothing, so its fields are declared in sorted order.
    #[test]
    fn typed_cinder_bodies_are_the_value_maps_bytes() {
        use super::{CinderView, CinderVolume, CinderVolumeSummary, VolumePage};
        let bytes = |b: &dyn erased::Body| b.bytes();
        for (version, admin) in [("v2", false), ("v2", true), ("v3", false), ("v3", true)] {
            let ctx = ctx(version, admin);
            let rows = rows();
            for v in &rows {
                for (view, detail) in [
                    (CinderView::Plain, None),
                    (CinderView::ListDetail, Some(true)),
                    (CinderView::Show, Some(false)),
                ] {
                    let typed = CinderVolume::new(&ctx, v, view);
                    let want = oracle(&ctx, v, detail).to_string();
                    assert_eq!(bytes(&typed), want, "{version} {admin} {view:?}");
                    let through_value = serde_json::to_value(&typed).unwrap().to_string();
                    assert_eq!(through_value, want);
                }
                let summary = CinderVolumeSummary::new(&ctx, v);
                let want =
                    json!({"id": v.id, "links": oracle(&ctx, v, None)["links"], "name": v.name});
                assert_eq!(bytes(&summary), want.to_string());
            }
            let next = json!([{"href": "h", "rel": "next"}]);
            for links in [None, Some(next.clone())] {
                let page = VolumePage {
                    count: None,
                    volumes: rows
                        .iter()
                        .map(|v| CinderVolume::new(&ctx, v, CinderView::ListDetail))
                        .collect(),
                    volumes_links: links.clone(),
                };
                let mut want = json!({
                    "volumes": rows.iter().map(|v| oracle(&ctx, v, Some(true))).collect::<Vec<_>>()
                });
                if let Some(l) = links {
                    want["volumes_links"] = l;
                }
                assert_eq!(bytes(&page), want.to_string());
            }
        }
    }

    /// The hand-written page bytes (`RawJson`, what list pages send) equal
    /// serde's for the same typed bodies at every microversion that adds
    /// or drops a field, in both versions and roles, with and without a
    /// count and a next link, and with text to escape in the rows, the
    /// project and the link base.
    #[test]
    fn raw_pages_are_serdes_bytes() {
        use super::{CinderView, CinderVolume, CinderVolumeSummary, VolumePage};
        let mut rows = rows();
        let mut odd = rows[1].clone();
        odd.backend = "b\\e\u{1}".into();
        odd.availability_zone = "z\"".into();
        odd.id = "i\td".into();
        odd.user_id = "\u{7f}\u{e9}".into();
        odd.attachments[0].attachment.device = "/dev/\"x".into();
        odd.attachments[0].attached_at = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        odd.created_at = Utc.with_ymd_and_hms(-5, 1, 1, 0, 0, 0).unwrap();
        rows.push(odd);
        let mut other_type = rows[0].clone();
        other_type.volume_type = "HDD".into();
        rows.push(other_type);
        let serde_bytes = |b: &dyn erased::Body| b.bytes();
        for (version, admin) in [("v2", false), ("v2", true), ("v3", false), ("v3", true)] {
            for micro in [
                (3, 0),
                (3, 13),
                (3, 21),
                (3, 48),
                (3, 61),
                (3, 63),
                (3, 65),
                (3, 70),
            ] {
                let mut ctx = ctx(version, admin);
                ctx.microversion = micro;
                ctx.base_url = "http://h\"/x".into();
                for view in [CinderView::Plain, CinderView::ListDetail, CinderView::Show] {
                    for (count, links) in [
                        (None, None),
                        (Some(12), Some(json!([{"href": "h\"", "rel": "next"}]))),
                    ] {
                        let page = VolumePage {
                            count,
                            volumes: rows
                                .iter()
                                .map(|v| {
                                    CinderVolume::new(&ctx, v, view).with_type_id(Some("t\"1"))
                                })
                                .collect(),
                            volumes_links: links.clone(),
                        };
                        let raw = String::from_utf8(page.to_bytes()).unwrap();
                        assert_eq!(
                            raw,
                            serde_bytes(&page),
                            "{version} {admin} {micro:?} {view:?}"
                        );
                        let summaries = VolumePage {
                            count,
                            volumes: rows
                                .iter()
                                .map(|v| CinderVolumeSummary::new(&ctx, v))
                                .collect(),
                            volumes_links: links,
                        };
                        let raw = String::from_utf8(summaries.to_bytes()).unwrap();
                        assert_eq!(raw, serde_bytes(&summaries));
                    }
                }
            }
        }
        // An empty page.
        let empty: VolumePage<CinderVolumeSummary> = VolumePage {
            count: Some(0),
            volumes: Vec::new(),
            volumes_links: None,
        };
        assert_eq!(
            String::from_utf8(empty.to_bytes()).unwrap(),
            r#"{"count":0,"volumes":[]}"#
        );
    }

    /// Serializes a typed body as the response does (`to_writer`).
    mod erased {
        pub trait Body {
            fn bytes(&self) -> String;
        }
        impl<T: serde::Serialize> Body for T {
            fn bytes(&self) -> String {
                let mut buf = Vec::new();
                serde_json::to_writer(&mut buf, self).unwrap();
                String::from_utf8(buf).unwrap()
            }
        }
    }
}
