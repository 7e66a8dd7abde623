//! Strict input (issue 15 item 4), table-driven: every input the issue
//! lists, on every dialect that has the field, is refused with that
//! dialect's documented 400 (or its 404 for an id in another spelling) and
//! changes nothing: the volume and the snapshot read the same, and the log
//! gains refusal records only.

mod support;

use serde_json::{json, Value};
use support::*;

/// Whose error body a refusal must be in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// Cinder's fault body, also Nova's and Glance's:
    /// `{"badRequest": {"message", "code": 400}}`.
    Cinder(&'static str),
    /// `{"error": {"message", "code": "EVS.xxxx"}}`.
    Evs(&'static str),
    /// `{"ret_code": <non-zero>, "message"}`.
    Idc,
    /// `{"success": "no", "error"}`.
    Luna,
    /// `{"error": {"code", "description", "details"}}`.
    Zstack,
}

struct Case {
    label: String,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    status: u16,
    shape: Shape,
}

fn case(label: &str, method: &'static str, path: &str, body: Option<Value>) -> Case {
    Case {
        label: label.to_string(),
        method,
        path: path.to_string(),
        body: body.map(|b| b.to_string().into_bytes()),
        status: 400,
        shape: Shape::Cinder("badRequest"),
    }
}

impl Case {
    fn is(mut self, status: u16, shape: Shape) -> Case {
        self.status = status;
        self.shape = shape;
        self
    }
}

/// Whether `body` is `shape`'s error body for `status`.
fn check_shape(shape: Shape, status: u16, body: &Value) -> Result<(), String> {
    let ok = match shape {
        Shape::Cinder(fault) => {
            body.as_object().is_some_and(|o| o.len() == 1)
                && body[fault]["code"] == status
                && body[fault]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
        }
        Shape::Evs(code) => {
            body["error"]["code"] == code
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
        }
        Shape::Idc => {
            body["ret_code"].as_i64().is_some_and(|n| n != 0)
                && body["message"].as_str().is_some_and(|m| !m.is_empty())
        }
        Shape::Luna => body["success"] == "no" && body["error"].is_string(),
        Shape::Zstack => {
            body["error"]["code"].is_string()
                && body["error"]["description"].is_string()
                && body["error"]["details"].is_string()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("not a {shape:?} error body: {body}"))
    }
}

/// Events in the log that are not refusals, read through the audit trail.
async fn changes(admin: &Client) -> usize {
    let (mut after, mut n) = (0u64, 0usize);
    loop {
        let r = admin
            .get(&format!("/v2/padmin/events?after={after}&limit=1000"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let events = r.body["events"].as_array().unwrap().clone();
        if events.is_empty() {
            return n;
        }
        n += events
            .iter()
            .filter(|e| e["event_type"] != "CommandRejected")
            .count();
        match r.body["next_after"].as_u64() {
            Some(next) if next > after => after = next,
            _ => return n,
        }
    }
}

async fn send(srv: &Server, token: &str, c: &Case) -> Reply {
    let http = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut req = http.request(m, srv.url(&c.path));
    req = if c.path.starts_with("/zstack/") {
        req.header("Authorization", format!("OAuth {token}"))
    } else {
        req.header("X-Auth-Token", token)
    };
    if let Some(b) = &c.body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.clone());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

/// The other spellings of one id (issue 15 item 4): all name nothing.
fn spellings(id: &str) -> Vec<(&'static str, String)> {
    let u = uuid::Uuid::parse_str(id).unwrap();
    vec![
        ("uppercase", id.to_uppercase()),
        ("braced", format!("%7B{id}%7D")),
        ("urn", format!("urn:uuid:{id}")),
        ("no hyphens", u.simple().to_string()),
        (
            "uppercase no hyphens",
            u.simple().to_string().to_uppercase(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_input_is_refused_in_every_dialect_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "padmin");

    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": "strict", "metadata": {"k": "v"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{v}"), "available")
        .await;
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": v, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(
        &format!("/v3/p1/snapshots/{s}"),
        "snapshot available",
        |r| r.body["snapshot"]["status"] == "available",
    )
    .await;
    let vol_path = format!("/v3/p1/volumes/{v}");
    let snap_path = format!("/v3/p1/snapshots/{s}");
    let hex = uuid::Uuid::parse_str(&s).unwrap().simple().to_string();
    let vm = "16b64847-0a86-42ea-bea8-ed60bd960c68";

    let bad_sizes = [json!("1"), json!(" 7 "), json!("1e3"), json!("+2")];
    let controls = [
        ("NUL", "nul\u{0}inside"),
        ("ESC", "esc\u{1b}[31m"),
        ("LF", "two\nlines"),
        ("DEL", "del\u{7f}"),
        ("C1", "c1\u{85}"),
    ];
    let not_strings = [json!({"b": "c"}), json!(1), json!(true), json!(["x"])];
    let ev = Shape::Evs;
    let cinder = Shape::Cinder("badRequest");
    let not_found = Shape::Cinder("itemNotFound");
    let mut cases: Vec<Case> = vec![];

    // Sizes: `/v3` takes a JSON integer only; `/v2` and EVS also a number
    // with a fraction (truncated), never a string.
    for size in &bad_sizes {
        for ver in ["v2", "v3"] {
            cases.push(case(
                &format!("{ver} create size {size}"),
                "POST",
                &format!("/{ver}/p1/volumes"),
                Some(json!({"volume": {"size": size}})),
            ));
            cases.push(case(
                &format!("{ver} os-extend new_size {size}"),
                "POST",
                &format!("/{ver}/p1/volumes/{v}/action"),
                Some(json!({"os-extend": {"new_size": size}})),
            ));
        }
        cases.push(
            case(
                &format!("EVS create size {size}"),
                "POST",
                "/v2/p1/cloudvolumes",
                Some(json!({"volume": {"size": size, "availability_zone": "az-dc-1", "volume_type": "SSD"}})),
            )
            .is(400, ev("EVS.1010")),
        );
        cases.push(
            case(
                &format!("EVS extend new_size {size}"),
                "POST",
                &format!("/v2/p1/cloudvolumes/{v}/action"),
                Some(json!({"os-extend": {"new_size": size}})),
            )
            .is(400, ev("EVS.1010")),
        );
        cases.push(
            case(
                &format!("IDC create size {size}"),
                "POST",
                "/v2/zone/az-dc-1/volumes",
                Some(json!({"size": size})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(
            case(
                &format!("IDC resize size {size}"),
                "POST",
                "/v2/zone/az-dc-1/volumes/resize",
                Some(json!({"volumes": [v], "size": size})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(case(
            &format!("Nova create size {size}"),
            "POST",
            "/v2.1/p1/os-volumes",
            Some(json!({"volume": {"size": size}})),
        ));
    }
    for size in [json!(1.5), json!(1e3), json!(2.0)] {
        cases.push(case(
            &format!("v3 create size {size}"),
            "POST",
            "/v3/p1/volumes",
            Some(json!({"volume": {"size": size}})),
        ));
        cases.push(case(
            &format!("v3 os-extend new_size {size}"),
            "POST",
            &format!("/v3/p1/volumes/{v}/action"),
            Some(json!({"os-extend": {"new_size": size}})),
        ));
        cases.push(
            case(
                &format!("IDC create size {size}"),
                "POST",
                "/v2/zone/az-dc-1/volumes",
                Some(json!({"size": size})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(
            case(
                &format!("IDC create count {size}"),
                "POST",
                "/v2/zone/az-dc-1/volumes",
                Some(json!({"size": 1, "count": size})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(case(
            &format!("Nova create size {size}"),
            "POST",
            "/v2.1/p1/os-volumes",
            Some(json!({"volume": {"size": size}})),
        ));
    }
    // The small provider documents strings: plain decimal digits only.
    for size in [" 7 ", "1e3", "+2", "-1", "1.5", "0x10"] {
        cases.push(
            case(
                &format!("LUNA create size {size:?}"),
                "POST",
                "/api/volume/create",
                Some(json!({"region": "az-dc-1", "label": "x", "size": size})),
            )
            .is(400, Shape::Luna),
        );
        cases.push(
            case(
                &format!("LUNA extend size {size:?}"),
                "POST",
                "/api/volume/extend",
                Some(json!({"volume_id": v, "size": size})),
            )
            .is(400, Shape::Luna),
        );
    }
    // Quotas are integers too.
    cases.push(case(
        "v3 quota as a string",
        "PUT",
        "/v3/padmin/os-quota-sets/p1",
        Some(json!({"quota_set": {"volumes": "20"}})),
    ));

    // Control characters in names, descriptions, metadata keys and values.
    for (what, text) in controls {
        for ver in ["v2", "v3"] {
            let p = format!("/{ver}/p1/volumes");
            cases.push(case(
                &format!("{ver} create name {what}"),
                "POST",
                &p,
                Some(json!({"volume": {"size": 1, "name": text}})),
            ));
            cases.push(case(
                &format!("{ver} create metadata key {what}"),
                "POST",
                &p,
                Some(json!({"volume": {"size": 1, "metadata": {text: "v"}}})),
            ));
            cases.push(case(
                &format!("{ver} create metadata value {what}"),
                "POST",
                &p,
                Some(json!({"volume": {"size": 1, "metadata": {"k": text}}})),
            ));
            cases.push(case(
                &format!("{ver} update name {what}"),
                "PUT",
                &format!("{p}/{v}"),
                Some(json!({"volume": {"name": text}})),
            ));
            cases.push(case(
                &format!("{ver} metadata merge value {what}"),
                "POST",
                &format!("{p}/{v}/metadata"),
                Some(json!({"metadata": {"k": text}})),
            ));
            cases.push(case(
                &format!("{ver} metadata item {what}"),
                "PUT",
                &format!("{p}/{v}/metadata/k"),
                Some(json!({"meta": {"k": text}})),
            ));
            cases.push(case(
                &format!("{ver} snapshot name {what}"),
                "POST",
                &format!("/{ver}/p1/snapshots"),
                Some(json!({"snapshot": {"volume_id": v, "name": text}})),
            ));
            cases.push(case(
                &format!("{ver} snapshot update {what}"),
                "PUT",
                &format!("/{ver}/p1/snapshots/{s}"),
                Some(json!({"snapshot": {"name": text}})),
            ));
        }
        cases.push(
            case(
                &format!("EVS create name {what}"),
                "POST",
                "/v2/p1/cloudvolumes",
                Some(json!({"volume": {"size": 1, "name": text, "availability_zone": "az-dc-1", "volume_type": "SSD"}})),
            )
            .is(400, ev("EVS.1003")),
        );
        cases.push(
            case(
                &format!("EVS update name {what}"),
                "PUT",
                &format!("/v2/p1/cloudvolumes/{v}"),
                Some(json!({"volume": {"name": text}})),
            )
            .is(400, ev("EVS.1003")),
        );
        cases.push(
            case(
                &format!("IDC create name {what}"),
                "POST",
                "/v2/zone/az-dc-1/volumes",
                Some(json!({"size": 1, "volume_name": text})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(
            case(
                &format!("IDC modify name {what}"),
                "PUT",
                "/v2/zone/az-dc-1/volumes",
                Some(json!({"volume": v, "volume_name": text})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(
            case(
                &format!("IDC snapshot name {what}"),
                "POST",
                "/v2/zone/az-dc-1/volume_snapshots",
                Some(json!({"resources": [v], "snapshot_name": text})),
            )
            .is(400, Shape::Idc),
        );
        cases.push(
            case(
                &format!("LUNA create label {what}"),
                "POST",
                "/api/volume/create",
                Some(json!({"region": "az-dc-1", "label": text, "size": "1"})),
            )
            .is(400, Shape::Luna),
        );
        cases.push(
            case(
                &format!("LUNA rename {what}"),
                "POST",
                "/api/volume/rename",
                Some(json!({"volume_id": v, "name": text})),
            )
            .is(400, Shape::Luna),
        );
        cases.push(
            case(
                &format!("ZStack snapshot name {what}"),
                "POST",
                &format!("/zstack/v1/volumes/{v}/volume-snapshots"),
                Some(json!({"params": {"name": text}})),
            )
            .is(400, Shape::Zstack),
        );
        cases.push(
            case(
                &format!("ZStack tag {what}"),
                "POST",
                &format!("/zstack/v1/volumes/{v}/volume-snapshots"),
                Some(json!({"params": {"name": "n"}, "userTags": [text]})),
            )
            .is(400, Shape::Zstack),
        );
        cases.push(case(
            &format!("Nova create name {what}"),
            "POST",
            "/v2.1/p1/os-volumes",
            Some(json!({"volume": {"size": 1, "display_name": text}})),
        ));
        cases.push(case(
            &format!("Nova snapshot name {what}"),
            "POST",
            "/v2.1/p1/os-snapshots",
            Some(json!({"snapshot": {"volume_id": v, "display_name": text}})),
        ));
    }
    // Descriptions are free text: line breaks and tabs are content there,
    // every other control character is refused.
    for (what, text) in controls.iter().filter(|(w, _)| *w != "LF") {
        cases.push(case(
            &format!("v3 create description {what}"),
            "POST",
            "/v3/p1/volumes",
            Some(json!({"volume": {"size": 1, "description": text}})),
        ));
        cases.push(
            case(
                &format!("ZStack description {what}"),
                "POST",
                &format!("/zstack/v1/volumes/{v}/volume-snapshots"),
                Some(json!({"params": {"name": "n", "description": text}})),
            )
            .is(400, Shape::Zstack),
        );
    }

    // Metadata values are strings, never stringified.
    for val in &not_strings {
        for ver in ["v2", "v3"] {
            cases.push(case(
                &format!("{ver} create metadata {val}"),
                "POST",
                &format!("/{ver}/p1/volumes"),
                Some(json!({"volume": {"size": 1, "metadata": {"a": val}}})),
            ));
            cases.push(case(
                &format!("{ver} metadata merge {val}"),
                "POST",
                &format!("/{ver}/p1/volumes/{v}/metadata"),
                Some(json!({"metadata": {"k": val}})),
            ));
            cases.push(case(
                &format!("{ver} metadata replace {val}"),
                "PUT",
                &format!("/{ver}/p1/volumes/{v}/metadata"),
                Some(json!({"metadata": {"k": val}})),
            ));
            cases.push(case(
                &format!("{ver} metadata item {val}"),
                "PUT",
                &format!("/{ver}/p1/volumes/{v}/metadata/k"),
                Some(json!({"meta": {"k": val}})),
            ));
            cases.push(case(
                &format!("{ver} snapshot metadata {val}"),
                "POST",
                &format!("/{ver}/p1/snapshots/{s}/metadata"),
                Some(json!({"metadata": {"k": val}})),
            ));
        }
        cases.push(
            case(
                &format!("EVS create metadata {val}"),
                "POST",
                "/v2/p1/cloudvolumes",
                Some(json!({"volume": {"size": 1, "availability_zone": "az-dc-1", "volume_type": "SSD", "metadata": {"full_clone": val}}})),
            )
            .is(400, ev("EVS.5400")),
        );
        cases.push(case(
            &format!("Nova create metadata {val}"),
            "POST",
            "/v2.1/p1/os-volumes",
            Some(json!({"volume": {"size": 1, "metadata": {"a": val}}})),
        ));
    }

    // os-attach: a UUID and a device path.
    let attaches = [
        (
            "instance_uuid not a uuid",
            json!("not-a-uuid\u{0}"),
            json!("/dev/vdb"),
        ),
        (
            "instance_uuid braced",
            json!(format!("{{{vm}}}")),
            json!("/dev/vdb"),
        ),
        ("instance_uuid number", json!(7), json!("/dev/vdb")),
        ("mountpoint format string", json!(vm), json!("%s%n../../x")),
        (
            "mountpoint traversal",
            json!(vm),
            json!("/dev/../etc/passwd"),
        ),
        ("mountpoint NUL", json!(vm), json!("/dev/vdb\u{0}")),
        ("mountpoint bare", json!(vm), json!("vdb")),
    ];
    for (what, inst, mount) in &attaches {
        for ver in ["v2", "v3"] {
            cases.push(case(
                &format!("{ver} os-attach {what}"),
                "POST",
                &format!("/{ver}/p1/volumes/{v}/action"),
                Some(json!({"os-attach": {"instance_uuid": inst, "mountpoint": mount}})),
            ));
        }
    }
    cases.push(
        case(
            "IDC attach instance_id NUL",
            "POST",
            "/v2/zone/az-dc-1/volumes/attach",
            Some(json!({"volumes": [v], "instance_id": "vm\u{0}1"})),
        )
        .is(400, Shape::Idc),
    );
    for (what, vm_id, target) in [
        ("vm_id not a uuid", "not-a-uuid", "auto"),
        ("vm_id uppercase", &*vm.to_uppercase(), "auto"),
        ("target format string", vm, "%s%n../../x"),
        ("target traversal", vm, "/dev/../etc"),
    ] {
        cases.push(
            case(
                &format!("LUNA attach {what}"),
                "POST",
                "/api/volume/attach",
                Some(json!({"volume_id": v, "vm_id": vm_id, "target": target})),
            )
            .is(400, Shape::Luna),
        );
    }

    // Ids in their canonical spelling only.
    for (what, sp) in spellings(&v) {
        for ver in ["v2", "v3"] {
            cases.push(
                case(
                    &format!("{ver} show volume {what}"),
                    "GET",
                    &format!("/{ver}/p1/volumes/{sp}"),
                    None,
                )
                .is(404, not_found),
            );
            cases.push(
                case(
                    &format!("{ver} delete volume {what}"),
                    "DELETE",
                    &format!("/{ver}/p1/volumes/{sp}"),
                    None,
                )
                .is(404, not_found),
            );
            cases.push(
                case(
                    &format!("{ver} extend volume {what}"),
                    "POST",
                    &format!("/{ver}/p1/volumes/{sp}/action"),
                    Some(json!({"os-extend": {"new_size": 2}})),
                )
                .is(404, not_found),
            );
        }
        cases.push(
            case(
                &format!("EVS show volume {what}"),
                "GET",
                &format!("/v2/p1/os-vendor-volumes/{sp}"),
                None,
            )
            .is(404, ev("EVS.5404")),
        );
        cases.push(
            case(
                &format!("EVS update volume {what}"),
                "PUT",
                &format!("/v2/p1/cloudvolumes/{sp}"),
                Some(json!({"volume": {"name": "x"}})),
            )
            .is(404, ev("EVS.5404")),
        );
        cases.push(
            case(
                &format!("Nova show volume {what}"),
                "GET",
                &format!("/v2.1/p1/os-volumes/{sp}"),
                None,
            )
            .is(404, not_found),
        );
        cases.push(
            case(
                &format!("Nova delete volume {what}"),
                "DELETE",
                &format!("/v2.1/p1/os-volumes/{sp}"),
                None,
            )
            .is(404, not_found),
        );
        cases.push(
            case(
                &format!("IDC delete volume {what}"),
                "DELETE",
                &format!("/v2/zone/az-dc-1/volumes/{sp}"),
                None,
            )
            .is(404, Shape::Idc),
        );
        cases.push(
            case(
                &format!("IDC modify volume {what}"),
                "PUT",
                "/v2/zone/az-dc-1/volumes",
                Some(json!({"volume": sp, "volume_name": "x"})),
            )
            .is(404, Shape::Idc),
        );
        cases.push(
            case(
                &format!("LUNA info {what}"),
                "POST",
                "/api/volume/info",
                Some(json!({"volume_id": sp})),
            )
            .is(404, Shape::Luna),
        );
        cases.push(
            case(
                &format!("LUNA rename {what}"),
                "POST",
                "/api/volume/rename",
                Some(json!({"volume_id": sp, "name": "x"})),
            )
            .is(404, Shape::Luna),
        );
    }
    for (what, sp) in spellings(&s) {
        for ver in ["v2", "v3"] {
            cases.push(
                case(
                    &format!("{ver} show snapshot {what}"),
                    "GET",
                    &format!("/{ver}/p1/snapshots/{sp}"),
                    None,
                )
                .is(404, not_found),
            );
            cases.push(
                case(
                    &format!("{ver} delete snapshot {what}"),
                    "DELETE",
                    &format!("/{ver}/p1/snapshots/{sp}"),
                    None,
                )
                .is(404, not_found),
            );
        }
        // ZStack's own spelling is the 32-hex form; only lowercase.
        if what != "no hyphens" {
            cases.push(
                case(
                    &format!("ZStack show snapshot {what}"),
                    "GET",
                    &format!("/zstack/v1/volume-snapshots/{sp}"),
                    None,
                )
                .is(404, Shape::Zstack),
            );
        }
        cases.push(
            case(
                &format!("IDC delete snapshot {what}"),
                "DELETE",
                &format!("/v2/zone/az-dc-1/volume_snapshots/{sp}"),
                None,
            )
            .is(404, Shape::Idc),
        );
    }
    cases.push(
        case(
            "ZStack snapshot of an uppercase volume id",
            "POST",
            &format!(
                "/zstack/v1/volumes/{}/volume-snapshots",
                uuid::Uuid::parse_str(&v)
                    .unwrap()
                    .simple()
                    .to_string()
                    .to_uppercase()
            ),
            Some(json!({"params": {"name": "n"}})),
        )
        .is(404, Shape::Zstack),
    );
    cases.push(
        case(
            "LUNA numeric id with a leading zero",
            "POST",
            "/api/volume/info",
            Some(json!({"volume_id": "01"})),
        )
        .is(404, Shape::Luna),
    );

    // Images as Glance validates them.
    for (what, body) in [
        ("min_disk 0.9", json!({"name": "i", "min_disk": 0.9})),
        ("min_disk \"1e3\"", json!({"name": "i", "min_disk": "1e3"})),
        ("min_disk \"1\"", json!({"name": "i", "min_disk": "1"})),
        ("min_disk -1", json!({"name": "i", "min_disk": -1})),
        ("min_disk null", json!({"name": "i", "min_disk": null})),
        ("min_ram -1", json!({"name": "i", "min_ram": -1})),
        ("min_ram 1.5", json!({"name": "i", "min_ram": 1.5})),
        ("min_ram \"1\"", json!({"name": "i", "min_ram": "1"})),
        (
            "disk_format null",
            json!({"name": "i", "disk_format": null}),
        ),
        (
            "disk_format bogus",
            json!({"name": "i", "disk_format": "bogus"}),
        ),
        (
            "container_format null",
            json!({"name": "i", "container_format": null}),
        ),
        ("visibility null", json!({"name": "i", "visibility": null})),
        (
            "visibility bogus",
            json!({"name": "i", "visibility": "everyone"}),
        ),
        ("name NUL", json!({"name": "i\u{0}"})),
    ] {
        cases.push(case(
            &format!("Glance create {what}"),
            "POST",
            "/image/v2/images",
            Some(body),
        ));
    }
    for (what, sp) in spellings(&uuid::Uuid::new_v4().to_string()) {
        cases.push(
            case(
                &format!("Glance show image {what}"),
                "GET",
                &format!("/image/v2/images/{sp}"),
                None,
            )
            .is(404, not_found),
        );
    }
    let _ = cinder;

    let volume_before = c.get(&vol_path).await.body;
    let snapshot_before = c.get(&snap_path).await.body;
    let zstack_before = send(
        &srv,
        "alice:p1",
        &case(
            "",
            "GET",
            &format!("/zstack/v1/volume-snapshots/{hex}"),
            None,
        ),
    )
    .await
    .body;
    let changes_before = changes(&admin).await;
    let refusals_before = refusals(&admin).await;
    let mut failures = vec![];
    for k in &cases {
        let token = if k.path.contains("/padmin/") {
            "admin:padmin"
        } else {
            "alice:p1"
        };
        let r = send(&srv, token, k).await;
        if r.status != k.status {
            failures.push(format!(
                "{}: {} {} answered {} (wanted {}): {}",
                k.label, k.method, k.path, r.status, k.status, r.body
            ));
            continue;
        }
        if let Err(e) = check_shape(k.shape, k.status, &r.body) {
            failures.push(format!("{}: {e}", k.label));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(c.get(&vol_path).await.body, volume_before);
    assert_eq!(c.get(&snap_path).await.body, snapshot_before);
    let zstack_after = send(
        &srv,
        "alice:p1",
        &case(
            "",
            "GET",
            &format!("/zstack/v1/volume-snapshots/{hex}"),
            None,
        ),
    )
    .await
    .body;
    assert_eq!(zstack_after, zstack_before);
    assert_eq!(
        changes(&admin).await,
        changes_before,
        "a refused request changed the log"
    );
    assert!(refusals(&admin).await > refusals_before);
    let lists = c.get("/v3/p1/volumes").await;
    assert_eq!(lists.body["volumes"].as_array().unwrap().len(), 1);
    eprintln!("{} strict-input cases refused", cases.len());
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}
