//! A seeded fuzz test over the route table of every dialect (issue 15):
//! requests with wrong types, huge and negative numbers, floats, numeric
//! strings, deep nesting, long strings, control characters, invalid UTF-8,
//! missing and extra fields, traversal in ids, wrong content types and bad
//! or mismatched tokens. It asserts: no 5xx; no panic in the server's
//! stderr; the server still answers; every 4xx in the error body of the
//! dialect that owns the route; the log unchanged but for refusal records
//! unless a write was accepted (a 2xx); `verify` passes at the end.
//!
//! `FUZZ_SEED=<n>` replays a run (the seed is printed first);
//! `FUZZ_REQUESTS=<n>` sets the count (default 5,000, under ~90 s; the
//! long form is `FUZZ_REQUESTS=100000`).

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{verify, Client};

/// splitmix64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Whose error body a route answers in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Cinder,
    Evs,
    Idc,
    Luna,
    Zstack,
    /// `/healthz`, `/metrics`: plain text; only the status is checked.
    Plain,
}

/// One route: method, path template, owning dialect, a valid-looking body.
struct Route {
    method: &'static str,
    path: &'static str,
    shape: Shape,
    body: Option<Value>,
}

fn r(method: &'static str, path: &'static str, shape: Shape, body: Option<Value>) -> Route {
    Route {
        method,
        path,
        shape,
        body,
    }
}

/// Every method and path the routers in `api/src/dialects/*`, `ops.rs` and
/// `versions.rs` serve. `{p}` project, `{v}` volume, `{s}` snapshot, `{i}`
/// image, `{t}` transfer, `{k}` metadata key, `{z}` zone, `{j}` job,
/// `{a}` LUNA action, `{x}` ZStack snapshot (32 hex).
fn routes() -> Vec<Route> {
    use Shape::*;
    let vol = json!({"volume": {"size": 1, "name": "n", "description": "d",
        "availability_zone": "az-dc-1", "volume_type": "SSD", "metadata": {"a": "b"},
        "multiattach": false}});
    let snap = json!({"snapshot": {"volume_id": "{v}", "name": "n", "description": "d",
        "force": true, "metadata": {"a": "b"}}});
    let mut out = vec![];
    for ver in ["/v2/{p}", "/v3/{p}"] {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let actions = [
            json!({"os-extend": {"new_size": 2}}),
            json!({"os-set_bootable": {"bootable": true}}),
            json!({"os-update_readonly_flag": {"readonly": true}}),
            json!({"os-attach": {"instance_uuid": "16b64847-0a86-42ea-bea8-ed60bd960c68",
                "mountpoint": "/dev/vdb", "mode": "rw"}}),
            json!({"os-detach": {"attachment_id": "{v}"}}),
            json!({"os-reserve": null}),
            json!({"os-unreserve": null}),
            json!({"os-volume_upload_image": {"image_name": "img", "disk_format": "raw",
                "container_format": "bare", "force": false}}),
            json!({"os-initialize_connection": {"connector": {}}}),
            json!({"os-terminate_connection": {"connector": {}}}),
            json!({"os-retype": {"new_type": "SSD", "migration_policy": "never"}}),
        ];
        out.extend([
            r(
                "POST",
                leak(format!("{ver}/volumes")),
                Cinder,
                Some(vol.clone()),
            ),
            r("GET", leak(format!("{ver}/volumes")), Cinder, None),
            r("GET", leak(format!("{ver}/volumes/detail")), Cinder, None),
            r("GET", leak(format!("{ver}/volumes/{{v}}")), Cinder, None),
            r(
                "PUT",
                leak(format!("{ver}/volumes/{{v}}")),
                Cinder,
                Some(vol.clone()),
            ),
            r("DELETE", leak(format!("{ver}/volumes/{{v}}")), Cinder, None),
            r(
                "GET",
                leak(format!("{ver}/volumes/{{v}}/metadata")),
                Cinder,
                None,
            ),
            r(
                "POST",
                leak(format!("{ver}/volumes/{{v}}/metadata")),
                Cinder,
                Some(json!({"metadata": {"a": "b"}})),
            ),
            r(
                "PUT",
                leak(format!("{ver}/volumes/{{v}}/metadata")),
                Cinder,
                Some(json!({"metadata": {"a": "b"}})),
            ),
            r(
                "GET",
                leak(format!("{ver}/volumes/{{v}}/metadata/{{k}}")),
                Cinder,
                None,
            ),
            r(
                "PUT",
                leak(format!("{ver}/volumes/{{v}}/metadata/{{k}}")),
                Cinder,
                Some(json!({"meta": {"k": "v"}})),
            ),
            r(
                "DELETE",
                leak(format!("{ver}/volumes/{{v}}/metadata/{{k}}")),
                Cinder,
                None,
            ),
            r(
                "POST",
                leak(format!("{ver}/snapshots")),
                Cinder,
                Some(snap.clone()),
            ),
            r("GET", leak(format!("{ver}/snapshots")), Cinder, None),
            r("GET", leak(format!("{ver}/snapshots/detail")), Cinder, None),
            r("GET", leak(format!("{ver}/snapshots/{{s}}")), Cinder, None),
            r(
                "PUT",
                leak(format!("{ver}/snapshots/{{s}}")),
                Cinder,
                Some(snap.clone()),
            ),
            r(
                "DELETE",
                leak(format!("{ver}/snapshots/{{s}}")),
                Cinder,
                None,
            ),
            r(
                "GET",
                leak(format!("{ver}/snapshots/{{s}}/metadata")),
                Cinder,
                None,
            ),
            r(
                "POST",
                leak(format!("{ver}/snapshots/{{s}}/metadata")),
                Cinder,
                Some(json!({"metadata": {"a": "b"}})),
            ),
            r(
                "PUT",
                leak(format!("{ver}/snapshots/{{s}}/metadata")),
                Cinder,
                Some(json!({"metadata": {"a": "b"}})),
            ),
            r(
                "GET",
                leak(format!("{ver}/snapshots/{{s}}/metadata/{{k}}")),
                Cinder,
                None,
            ),
            r(
                "PUT",
                leak(format!("{ver}/snapshots/{{s}}/metadata/{{k}}")),
                Cinder,
                Some(json!({"meta": {"k": "v"}})),
            ),
            r(
                "DELETE",
                leak(format!("{ver}/snapshots/{{s}}/metadata/{{k}}")),
                Cinder,
                None,
            ),
            r("GET", leak(format!("{ver}/types")), Cinder, None),
            r("GET", leak(format!("{ver}/types/{{v}}")), Cinder, None),
            r("GET", leak(format!("{ver}/types/default")), Cinder, None),
        ]);
        // Volume type and QoS management (admin): `{v}` stands for a type's
        // or a QoS spec's id as well, which makes most of these a 404.
        let vtype = json!({"volume_type": {"name": "t", "description": "d",
            "os-volume-type-access:is_public": true, "extra_specs": {"a": "b"}}});
        let qos =
            json!({"qos_specs": {"name": "q", "consumer": "back-end", "read_iops_sec": "100"}});
        let type_routes: [(&str, &str, Option<Value>); 17] = [
            ("POST", "/types", Some(vtype.clone())),
            ("PUT", "/types/{v}", Some(vtype)),
            ("DELETE", "/types/{v}", None),
            ("GET", "/types/{v}/extra_specs", None),
            (
                "POST",
                "/types/{v}/extra_specs",
                Some(json!({"extra_specs": {"a": "b"}})),
            ),
            ("GET", "/types/{v}/extra_specs/{k}", None),
            ("PUT", "/types/{v}/extra_specs/{k}", Some(json!({"k": "v"}))),
            ("DELETE", "/types/{v}/extra_specs/{k}", None),
            (
                "POST",
                "/types/{v}/action",
                Some(json!({"addProjectAccess": {"project": "{p}"}})),
            ),
            ("GET", "/types/{v}/os-volume-type-access", None),
            (
                "POST",
                "/types/{v}/encryption",
                Some(json!({"encryption": {"provider": "luks",
                "control_location": "front-end", "cipher": "aes-xts-plain64", "key_size": 256}})),
            ),
            ("GET", "/types/{v}/encryption", None),
            ("POST", "/qos-specs", Some(qos.clone())),
            ("GET", "/qos-specs", None),
            ("PUT", "/qos-specs/{v}", Some(qos)),
            (
                "PUT",
                "/qos-specs/{v}/delete_keys",
                Some(json!({"keys": ["read_iops_sec"]})),
            ),
            ("GET", "/qos-specs/{v}/associate", None),
        ];
        for (method, path, body) in type_routes {
            out.push(r(method, leak(format!("{ver}{path}")), Cinder, body));
        }
        out.extend([
            r(
                "GET",
                leak(format!("{ver}/os-availability-zone")),
                Cinder,
                None,
            ),
            r("GET", leak(format!("{ver}/extensions")), Cinder, None),
            r(
                "GET",
                leak(format!("{ver}/os-quota-sets/{{p}}")),
                Cinder,
                None,
            ),
            r(
                "PUT",
                leak(format!("{ver}/os-quota-sets/{{p}}")),
                Cinder,
                Some(json!({"quota_set": {"volumes": 10}})),
            ),
            r(
                "GET",
                leak(format!("{ver}/os-quota-sets/{{p}}/defaults")),
                Cinder,
                None,
            ),
            r(
                "POST",
                leak(format!("{ver}/os-volume-transfer")),
                Cinder,
                Some(json!({"transfer": {"volume_id": "{v}", "name": "t"}})),
            ),
            r(
                "GET",
                leak(format!("{ver}/os-volume-transfer")),
                Cinder,
                None,
            ),
            r(
                "GET",
                leak(format!("{ver}/os-volume-transfer/detail")),
                Cinder,
                None,
            ),
            r(
                "GET",
                leak(format!("{ver}/os-volume-transfer/{{t}}")),
                Cinder,
                None,
            ),
            r(
                "DELETE",
                leak(format!("{ver}/os-volume-transfer/{{t}}")),
                Cinder,
                None,
            ),
            r(
                "POST",
                leak(format!("{ver}/os-volume-transfer/{{t}}/accept")),
                Cinder,
                Some(json!({"accept": {"auth_key": "0123456789abcdef"}})),
            ),
        ]);
        for a in actions {
            out.push(r(
                "POST",
                leak(format!("{ver}/volumes/{{v}}/action")),
                Cinder,
                Some(a),
            ));
        }
    }
    let evs_vol = json!({"volume": {"size": 1, "name": "n", "availability_zone": "az-dc-1",
        "volume_type": "SSD", "count": 1, "metadata": {"full_clone": "1"}}});
    out.extend([
        r("POST", "/v2/{p}/cloudvolumes", Evs, Some(evs_vol)),
        r("GET", "/v2/{p}/cloudvolumes", Evs, None),
        r("GET", "/v2/{p}/cloudvolumes/detail", Evs, None),
        r("GET", "/v2/{p}/os-vendor-volumes/detail", Evs, None),
        r("GET", "/v2/{p}/os-vendor-volumes/{v}", Evs, None),
        r("GET", "/v1/{p}/volumes/{v}", Evs, None),
        r(
            "PUT",
            "/v2/{p}/cloudvolumes/{v}",
            Evs,
            Some(json!({"volume": {"name": "n", "description": "d"}})),
        ),
        r("DELETE", "/v2/{p}/cloudvolumes/{v}", Evs, None),
        r(
            "POST",
            "/v2/{p}/cloudvolumes/{v}/action",
            Evs,
            Some(json!({"os-extend": {"new_size": 2}})),
        ),
        r("GET", "/v1/{p}/jobs/{j}", Evs, None),
        r(
            "POST",
            "/v2/{p}/os-vendor-snapshots/{s}/rollback",
            Evs,
            Some(json!({"rollback": {"volume_id": "{v}", "name": "n"}})),
        ),
    ]);
    out.extend([
        r("GET", "/v2/zone/{z}/volumes", Idc, None),
        r(
            "PUT",
            "/v2/zone/{z}/volumes",
            Idc,
            Some(json!({"volume": "{v}", "volume_name": "n", "description": "d"})),
        ),
        r(
            "POST",
            "/v2/zone/{z}/volumes",
            Idc,
            Some(json!({"volume_name": "n", "size": 1, "volume_type": 0, "count": 1})),
        ),
        r("DELETE", "/v2/zone/{z}/volumes/{v}", Idc, None),
        r(
            "POST",
            "/v2/zone/{z}/volumes/resize",
            Idc,
            Some(json!({"volumes": ["{v}"], "size": 2})),
        ),
        r(
            "POST",
            "/v2/zone/{z}/volumes/attach",
            Idc,
            Some(json!({"volumes": ["{v}"], "instance_id": "i-1"})),
        ),
        r(
            "POST",
            "/v2/zone/{z}/volumes/detach",
            Idc,
            Some(json!({"volumes": ["{v}"], "instance_id": "i-1"})),
        ),
        r("GET", "/v2/zone/{z}/volume_snapshots", Idc, None),
        r(
            "POST",
            "/v2/zone/{z}/volume_snapshots",
            Idc,
            Some(json!({"resources": ["{v}"], "snapshot_name": "n", "is_full": 0})),
        ),
        r("DELETE", "/v2/zone/{z}/volume_snapshots/{s}", Idc, None),
        r(
            "POST",
            "/v2/zone/{z}/volume_snapshots/apply",
            Idc,
            Some(json!({"snapshot": "{s}"})),
        ),
        r(
            "POST",
            "/v2/zone/{z}/volume_snapshots/capture_instance",
            Idc,
            Some(json!({"instance_id": "i-1", "snapshot_name": "n"})),
        ),
        r(
            "POST",
            "/v2/zone/{z}/volume_snapshots/create_volume",
            Idc,
            Some(json!({"snapshot": "{s}", "volume_name": "n"})),
        ),
        r("GET", "/v2/zone/{z}/jobs/{j}", Idc, None),
    ]);
    for (action, body) in [
        (
            "create",
            json!({"region": "az-dc-1", "label": "l", "size": "1"}),
        ),
        ("list", json!({"region": "az-dc-1"})),
        ("info", json!({"volume_id": "{v}"})),
        (
            "attach",
            json!({"volume_id": "{v}", "vm_id": "16b64847-0a86-42ea-bea8-ed60bd960c68", "target": "auto"}),
        ),
        ("detach", json!({"volume_id": "{v}"})),
        ("extend", json!({"volume_id": "{v}", "size": "2"})),
        ("rename", json!({"volume_id": "{v}", "name": "n"})),
        ("delete", json!({"volume_id": "{v}"})),
        ("snapshot-create", json!({"volume_id": "{v}", "label": "l"})),
        ("snapshot-list", json!({})),
        (
            "snapshot-replicate",
            json!({"snapshot_id": "{s}", "region": "az-dc-1"}),
        ),
        ("snapshot-delete", json!({"snapshot_id": "{s}"})),
        ("{a}", json!({})),
    ] {
        let path: &'static str = Box::leak(format!("/api/volume/{action}").into_boxed_str());
        out.push(r("POST", path, Luna, Some(body.clone())));
        out.push(r("GET", path, Luna, None));
    }
    out.extend([
        r(
            "POST",
            "/zstack/v1/volumes/{v}/volume-snapshots",
            Zstack,
            Some(json!({"params": {"name": "n", "description": "d"},
                "systemTags": ["a"], "userTags": ["b"]})),
        ),
        r("GET", "/zstack/v1/volume-snapshots", Zstack, None),
        r("GET", "/zstack/v1/volume-snapshots/{x}", Zstack, None),
    ]);
    for pre in ["/v2.1/{p}", "/v2.1"] {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        out.extend([
            r("GET", leak(format!("{pre}/os-volumes")), Cinder, None),
            r(
                "POST",
                leak(format!("{pre}/os-volumes")),
                Cinder,
                Some(json!({"volume": {"size": 1, "display_name": "n",
                    "display_description": "d", "metadata": {"a": "b"}}})),
            ),
            r(
                "GET",
                leak(format!("{pre}/os-volumes/detail")),
                Cinder,
                None,
            ),
            r("GET", leak(format!("{pre}/os-volumes/{{v}}")), Cinder, None),
            r(
                "DELETE",
                leak(format!("{pre}/os-volumes/{{v}}")),
                Cinder,
                None,
            ),
            r("GET", leak(format!("{pre}/os-snapshots")), Cinder, None),
            r(
                "POST",
                leak(format!("{pre}/os-snapshots")),
                Cinder,
                Some(json!({"snapshot": {"volume_id": "{v}", "display_name": "n", "force": true}})),
            ),
            r(
                "GET",
                leak(format!("{pre}/os-snapshots/detail")),
                Cinder,
                None,
            ),
            r(
                "GET",
                leak(format!("{pre}/os-snapshots/{{s}}")),
                Cinder,
                None,
            ),
            r(
                "DELETE",
                leak(format!("{pre}/os-snapshots/{{s}}")),
                Cinder,
                None,
            ),
        ]);
    }
    out.extend([
        r("GET", "/image", Cinder, None),
        r("GET", "/image/v2/images", Cinder, None),
        r(
            "POST",
            "/image/v2/images",
            Cinder,
            Some(
                json!({"name": "n", "disk_format": "raw", "container_format": "bare",
                "visibility": "private", "min_disk": 0, "min_ram": 0}),
            ),
        ),
        r("GET", "/image/v2/images/{i}", Cinder, None),
        r("DELETE", "/image/v2/images/{i}", Cinder, None),
        r("GET", "/image/v2/images/{i}/file", Cinder, None),
        r(
            "PUT",
            "/image/v2/images/{i}/file",
            Cinder,
            Some(json!("bytes")),
        ),
        r("GET", "/healthz", Plain, None),
        r("GET", "/metrics", Plain, None),
        r("GET", "/v2/{p}/events", Cinder, None),
        // Issue 14's audit routes.
        r("GET", "/v3/{p}/events", Cinder, None),
        r("GET", "/v3/{p}/events/digest", Cinder, None),
        r("GET", "/v3/{p}/volumes/{v}/history", Cinder, None),
        // Issue 17's microversion routes (asked at `latest` half the time).
        r("GET", "/v3/volumes/detail", Cinder, None),
        r("GET", "/v3/{p}/volumes/summary", Cinder, None),
        r("GET", "/v3/{p}/default-types", Cinder, None),
        r(
            "PUT",
            "/v3/{p}/default-types/{p}",
            Cinder,
            Some(json!({"default_type": {"volume_type": "SSD"}})),
        ),
        r("DELETE", "/v3/default-types/{p}", Cinder, None),
        r("GET", "/v3/{p}/messages", Cinder, None),
        r("GET", "/v3/{p}/attachments/detail", Cinder, None),
        r(
            "POST",
            "/v3/{p}/attachments",
            Cinder,
            Some(
                json!({"attachment": {"volume_uuid": "{v}", "instance_uuid": "{v}",
                "connector": {"host": "h", "initiator": "i"}}}),
            ),
        ),
        r(
            "POST",
            "/v3/{p}/volumes/{v}/action",
            Cinder,
            Some(json!({"revert": {"snapshot_id": "{s}"}})),
        ),
        r("GET", "/v3/{p}/groups/detail", Cinder, None),
        r("GET", "/v3/{p}/group_types", Cinder, None),
        r(
            "POST",
            "/v3/{p}/group_types",
            Cinder,
            Some(json!({"group_type": {"name": "g", "group_specs": {"a": "b"}}})),
        ),
        r("GET", "/v3/{p}/group_snapshots/detail", Cinder, None),
        r("GET", "/v3/{p}/volume-transfers", Cinder, None),
        r(
            "POST",
            "/v3/{p}/volume-transfers",
            Cinder,
            Some(json!({"transfer": {"volume_id": "{v}", "name": "t", "no_snapshots": true}})),
        ),
        r("GET", "/v2/{p}/snapshots/{s}/history", Cinder, None),
        r("GET", "/", Cinder, None),
        r("GET", "/v1", Cinder, None),
        r("GET", "/v2", Cinder, None),
        r("GET", "/v3", Cinder, None),
        r("GET", "/v2/{p}", Cinder, None),
        r("GET", "/v3/{p}", Cinder, None),
    ]);
    out
}

/// The ids the run's valid resources have.
struct Ids {
    v: String,
    s: String,
    i: String,
}

/// What a placeholder becomes: mostly the real id (so the request gets past
/// the router and into the body's checks), else a hostile spelling.
fn id_value(rng: &mut Rng, real: &str, hostile: bool) -> String {
    if !hostile && rng.chance(70) {
        return real.to_string();
    }
    let u = uuid::Uuid::parse_str(real).ok();
    let other = uuid::Uuid::from_u64_pair(rng.next(), rng.next()).to_string();
    match rng.below(14) {
        0 => real.to_uppercase(),
        1 => format!("%7B{real}%7D"),
        2 => format!("urn:uuid:{real}"),
        3 => u.map(|u| u.simple().to_string()).unwrap_or_default(),
        4 => "..%2f..%2fetc%2fpasswd".into(),
        // (A bare `..` segment is resolved by the client before sending.)
        5 => "..%2F..%2F..%2Fproc%2Fself%2Fenviron".into(),
        6 => format!("{real}%00"),
        7 => "%FF%FE".into(),
        8 => "A".repeat(1 + rng.below(5000)),
        9 => other,
        10 => "-1".into(),
        11 => "99999999999999999999999".into(),
        12 => "%20".into(),
        _ => format!("{real}%0a"),
    }
}

fn substitute(rng: &mut Rng, template: &str, ids: &Ids, hostile: bool) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or(rest.len() - 1);
        let name = &rest[start + 1..end];
        let real = match name {
            "p" => "p1".to_string(),
            "v" => ids.v.clone(),
            "s" => ids.s.clone(),
            "i" => ids.i.clone(),
            "t" => uuid::Uuid::from_u64_pair(1, 2).to_string(),
            "k" => "a".to_string(),
            "z" => "az-dc-1".to_string(),
            "j" => "0".repeat(32),
            "a" => "unknown".to_string(),
            "x" => uuid::Uuid::parse_str(&ids.s)
                .map(|u| u.simple().to_string())
                .unwrap_or_default(),
            _ => name.to_string(),
        };
        let val = if name == "p" {
            // A project in the URL that is not the token's, or hostile.
            match rng.below(10) {
                0 => "p2".into(),
                1 => "..%2f".into(),
                2 => "P1".into(),
                3 => "x".repeat(300),
                _ => real,
            }
        } else {
            id_value(rng, &real, hostile)
        };
        out.push_str(&val);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A value of the wrong kind for wherever it lands.
fn bad_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(24) {
        0 => json!(null),
        1 => json!(true),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(i64::MAX),
        5 => json!(u64::MAX),
        6 => json!(i64::MIN),
        7 => json!(1.5),
        8 => json!(-0.0),
        9 => json!(1e308),
        10 => json!("1"),
        11 => json!(" 7 "),
        12 => json!("1e3"),
        13 => json!("-1"),
        14 => json!("x".repeat(1 + rng.below(70_000))),
        15 => json!("nul\u{0}inside"),
        16 => json!("\u{1b}[31m\u{7f}\u{85}"),
        17 => json!("%s%n../../x"),
        18 => json!([]),
        19 => json!({}),
        20 if depth < 3 => json!([bad_value(rng, depth + 1), bad_value(rng, depth + 1)]),
        21 if depth < 3 => json!({"k": bad_value(rng, depth + 1)}),
        22 => {
            // Nesting deeper than any parser should follow.
            let d = 1 + rng.below(3000);
            serde_json::from_str(&format!(
                "{}{}",
                "[".repeat(d.min(100)),
                "]".repeat(d.min(100))
            ))
            .unwrap_or(json!([]))
        }
        _ => json!("\u{202e}ünï名"),
    }
}

/// One mutation of a valid-looking body, chosen so most results are invalid.
fn mutate(rng: &mut Rng, v: &mut Value, depth: usize) {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 4 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(6) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(format!("extra_{}", rng.below(5)), bad_value(rng, 0));
                }
                2 => {
                    m.insert(k, bad_value(rng, 0));
                }
                _ => {
                    if let Some(child) = m.get_mut(&k) {
                        if child.is_object() {
                            mutate(rng, child, depth + 1);
                        } else {
                            *child = bad_value(rng, 0);
                        }
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            a[i] = bad_value(rng, 0);
        }
        other => *other = bad_value(rng, 0),
    }
}

/// `"{v}"` in a body template becomes the real id (or a hostile one).
fn fill(rng: &mut Rng, v: &mut Value, ids: &Ids) {
    match v {
        Value::String(s) if s.starts_with('{') && s.ends_with('}') && s.len() == 3 => {
            *s = substitute(rng, s, ids, false)
                .replace("%2f", "/")
                .replace("%7B", "{");
        }
        Value::Object(m) => m.values_mut().for_each(|x| fill(rng, x, ids)),
        Value::Array(a) => a.iter_mut().for_each(|x| fill(rng, x, ids)),
        _ => {}
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    shape: Shape,
}

fn generate(rng: &mut Rng, routes: &[Route], ids: &Ids) -> Request {
    let route = rng.pick(routes);
    // A route without a body that changes something (a DELETE) would too
    // often be a valid request: its id or its token is always wrong.
    let bodiless_write = route.body.is_none() && route.method != "GET";
    let names_one = ["{v}", "{s}", "{i}", "{k}"]
        .iter()
        .any(|p| route.path.contains(p));
    let hostile_id = bodiless_write && names_one && rng.chance(50);
    let bad_token = bodiless_write && !hostile_id;
    let mut path = substitute(rng, route.path, ids, hostile_id);
    // Query strings: sometimes hostile paging and filters.
    if rng.chance(15) {
        let q = rng.pick(&[
            "limit=-1",
            "limit=1e3",
            "limit=%201",
            "offset=-5",
            "offset=99999999999999999999",
            "marker=..%2f",
            "sort=name:sideways",
            "metadata=%7B%22a%22%3A1%7D",
            "status=%00",
            "all_tenants=1",
            "a=%FF",
            "cascade=maybe",
            "volumes=..%2f",
            "q=uuid%3D%00",
        ]);
        path.push_str(if path.contains('?') { "&" } else { "?" });
        path.push_str(q);
    }
    let mut method = route.method.to_string();
    if rng.chance(3) {
        method = rng
            .pick(&["PATCH", "PUT", "DELETE", "POST", "GET"])
            .to_string();
    }
    let mut body = route.body.clone().map(|mut b| {
        fill(rng, &mut b, ids);
        b
    });
    // Mostly a mutated body; never the pristine one on a route that writes.
    let raw_body: Option<Vec<u8>> = match rng.below(20) {
        0 => Some(vec![0xff, 0xfe, b'{', 0xc3, 0x28, b'}']),
        1 => Some(b"{\"volume\": {\"size\": 1,".to_vec()),
        2 => Some(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        3 => Some(format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300)).into_bytes()),
        4 => Some(b"null".to_vec()),
        5 => Some(b"size=1&name=%00".to_vec()),
        _ => {
            if let Some(b) = body.as_mut() {
                for _ in 0..1 + rng.below(3) {
                    mutate(rng, b, 0);
                }
            }
            body.map(|b| b.to_string().into_bytes())
        }
    };
    // Mostly the right token, so most requests reach the body's checks.
    let token = match if bad_token || rng.chance(25) {
        rng.below(6)
    } else {
        6
    } {
        0 => None,
        1 => Some("garbage".to_string()),
        2 => Some("bob:p2".to_string()),
        3 => Some("alice:".to_string()),
        4 => Some(format!("{}:p1", "u".repeat(400))),
        5 => Some("alice:p1\u{7f}".to_string()),
        _ => Some("alice:p1".to_string()),
    };
    let mut headers = vec![];
    if let Some(t) = token {
        if route.shape == Shape::Zstack {
            headers.push((
                "Authorization".to_string(),
                format!("OAuth {t}").into_bytes(),
            ));
        } else {
            headers.push(("X-Auth-Token".to_string(), t.into_bytes()));
        }
    }
    let types: [&str; 9] = [
        "application/json",
        "application/json",
        "application/json",
        "application/json;charset=UTF-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/octet-stream",
    ];
    let ct = *rng.pick(&types);
    if !ct.is_empty() {
        headers.push(("Content-Type".to_string(), ct.as_bytes().to_vec()));
    }
    if rng.chance(5) {
        headers.push(("OpenStack-API-Version".into(), b"volume 9.99".to_vec()));
    } else if rng.chance(2) {
        // Issue 17: the routes and bodies of the later microversions.
        headers.push(("OpenStack-API-Version".into(), b"volume latest".to_vec()));
    }
    if rng.chance(3) {
        headers.push(("X-OpenStack-Nova-API-Version".into(), b"2.99".to_vec()));
    }
    Request {
        method,
        path,
        headers,
        body: raw_body,
        shape: route.shape,
    }
}

/// Whether a 4xx body is in `shape`'s error form (see strict_e2e).
fn in_form(shape: Shape, status: u16, body: &Value) -> bool {
    match shape {
        Shape::Cinder => body.as_object().is_some_and(|o| {
            o.len() == 1
                && o.values().all(|f| {
                    f["code"] == status && f["message"].as_str().is_some_and(|m| !m.is_empty())
                })
        }),
        Shape::Evs => body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        Shape::Idc => {
            body["ret_code"].as_i64().is_some_and(|n| n != 0) && body["message"].is_string()
        }
        Shape::Luna => body["success"] == "no" && body["error"].is_string(),
        Shape::Zstack => {
            body["error"]["code"].is_string()
                && body["error"]["description"].is_string()
                && body["error"]["details"].is_string()
        }
        Shape::Plain => true,
    }
}

struct ServerProc {
    child: Child,
    base: String,
    stderr_path: std::path::PathBuf,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real binary with its stderr in a file, so a panic can be found.
fn start(data_dir: &Path, log_dir: &Path) -> ServerProc {
    use std::io::BufRead;
    let stderr_path = log_dir.join("server.stderr");
    let err = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_blockledger"))
        .args([
            "serve",
            "--auth",
            "noauth",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "qcow2",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "warn,access=off")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start blockledger");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    ServerProc {
        child,
        base,
        stderr_path,
    }
}

fn client(base: &str, token: &str) -> Client {
    Client {
        http: reqwest::Client::new(),
        base: base.to_string(),
        token: token.to_string(),
    }
}

/// Every event after `after`, read through the audit trail.
async fn events_after(admin: &Client, mut after: u64) -> Vec<Value> {
    let mut out = vec![];
    loop {
        let r = admin
            .get(&format!("/v2/padmin/events?after={after}&limit=1000"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let events = r.body["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return out;
        }
        out.extend(events);
        match r.body["next_after"].as_u64() {
            Some(next) if next > after => after = next,
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_never_break_the_service() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let count: usize = std::env::var("FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    eprintln!("fuzz: FUZZ_SEED={seed} FUZZ_REQUESTS={count}");

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let srv = start(&data, tmp.path());
    let c = client(&srv.base, "alice:p1");
    let admin = client(&srv.base, "admin:padmin");

    // One volume, one snapshot, one image for the ids to name.
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": "fz"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{v}"), "available")
        .await;
    let r = c
        .post("/v3/p1/snapshots", &json!({"snapshot": {"volume_id": v}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(
        &format!("/v3/p1/snapshots/{s}"),
        "snapshot available",
        |r| r.body["snapshot"]["status"] == "available",
    )
    .await;
    let r = c
        .post(
            "/image/v2/images",
            &json!({"name": "fz", "disk_format": "raw"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let i = r.body["id"].as_str().unwrap().to_string();
    let ids = Arc::new(Ids { v, s, i });
    let before = events_after(&admin, 0)
        .await
        .last()
        .and_then(|e| e["position"].as_u64())
        .unwrap_or(0);

    let routes = Arc::new(routes());
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let accepted_writes = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    // The request ids of refused requests: the log may hold refusal
    // records for them, nothing else.
    let refused = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let started = Instant::now();
    // No pooled connections: the server rightly closes a connection whose
    // body it refused unread (413), and a reused one would read as a
    // failure of the next request.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (routes, next, failures, ids, http, base) = (
            routes.clone(),
            next.clone(),
            failures.clone(),
            ids.clone(),
            http.clone(),
            srv.base.clone(),
        );
        let (accepted_writes, statuses, accepted, refused) = (
            accepted_writes.clone(),
            statuses.clone(),
            accepted.clone(),
            refused.clone(),
        );
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return;
                }
                // Each request from its own stream: a seed replays it
                // whatever the interleaving.
                let mut rng = Rng::new(seed ^ (n as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
                let req = generate(&mut rng, &routes, &ids);
                let Ok(m) = reqwest::Method::from_bytes(req.method.as_bytes()) else {
                    continue;
                };
                let mut b = http.request(m, format!("{base}{}", req.path));
                for (k, val) in &req.headers {
                    if let Ok(hv) = reqwest::header::HeaderValue::from_bytes(val) {
                        b = b.header(k.as_str(), hv);
                    }
                }
                if let Some(body) = &req.body {
                    b = b.body(body.clone());
                }
                let desc = || {
                    format!(
                        "#{n} {} {} {:?}",
                        req.method,
                        req.path.chars().take(200).collect::<String>(),
                        req.body
                            .as_ref()
                            .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).to_string())
                    )
                };
                let resp = match b.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: no answer: {e}", desc()));
                        continue;
                    }
                };
                let status = resp.status().as_u16();
                if status >= 400 {
                    if let Some(id) = resp
                        .headers()
                        .get("x-openstack-request-id")
                        .and_then(|v| v.to_str().ok())
                    {
                        refused.lock().unwrap().insert(id.to_string());
                    }
                }
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                let text = resp.bytes().await.unwrap_or_default();
                if status >= 500 {
                    failures.lock().unwrap().push(format!(
                        "{}: {status} {}",
                        desc(),
                        String::from_utf8_lossy(&text)
                    ));
                } else if (400..500).contains(&status) {
                    let body: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
                    let shape = req.shape;
                    if !in_form(shape, status, &body) {
                        failures.lock().unwrap().push(format!(
                            "{}: {status} not in {shape:?} form: {}",
                            desc(),
                            String::from_utf8_lossy(&text[..text.len().min(300)])
                        ));
                    }
                } else if status < 300 && req.method != "GET" {
                    accepted_writes.fetch_add(1, Ordering::Relaxed);
                    accepted
                        .lock()
                        .unwrap()
                        .push(format!("{status} {}", desc()));
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.expect("worker");
    }
    let elapsed = started.elapsed();

    // Still alive, and no panic on the way.
    let h = c.get("/healthz").await;
    assert_eq!(h.status, 200, "server no longer answers");
    let mut stderr = String::new();
    std::fs::File::open(&srv.stderr_path)
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let panics: Vec<&str> = stderr.lines().filter(|l| l.contains("panicked")).collect();
    let appended = events_after(&admin, before).await;
    let refused = refused.lock().unwrap().clone();
    let (mut refusal_records, mut changes, mut traced) = (0usize, 0usize, 0usize);
    let mut leaked = vec![];
    for e in &appended {
        if e["event_type"] == "CommandRejected" {
            refusal_records += 1;
            continue;
        }
        changes += 1;
        if let Some(id) = e["metadata"]["request_id"].as_str() {
            traced += 1;
            if refused.contains(id) {
                leaked.push(format!(
                    "{} {} by refused {id}",
                    e["event_type"], e["stream_id"]
                ));
            }
        }
    }
    let writes = accepted_writes.load(Ordering::Relaxed);
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "fuzz: seed {seed}: {count} requests in {:.1} s ({:.0}/s), statuses {:?}, \
         accepted writes {writes}, log: {refusal_records} refusal records, {changes} other \
         events ({traced} with a request id), {} by refused requests; failures {}, panics {}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        statuses.lock().unwrap(),
        leaked.len(),
        failures.len(),
        panics.len()
    );
    // Valid by chance: shown, so the generator can be kept mostly invalid.
    for a in accepted.lock().unwrap().iter().take(10) {
        eprintln!("fuzz: accepted {}", a.chars().take(300).collect::<String>());
    }
    assert!(
        panics.is_empty(),
        "seed {seed}: the server panicked:\n{}",
        panics.join("\n")
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failures, first 30:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        leaked.is_empty(),
        "seed {seed}: refused requests changed the log:\n{}",
        leaked
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(refusal_records > 0, "seed {seed}: no refusal was recorded");
    drop(srv);
    let (ok, out) = verify(&data);
    assert!(ok, "seed {seed}: verify failed: {out}");
}
