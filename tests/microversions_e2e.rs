//! Volume microversions past 3.0 (issue 17): one test per version
//! boundary, the behaviour at N-1 against N, plus discovery advertising the
//! true maximum (VER-5.1) and `latest` resolving to it.
mod support;

use serde_json::{json, Value};
use support::*;

async fn new_volume(c: &Client, name: &str) -> String {
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": name}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_the_negotiated_maximum() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let root: Value = reqwest::get(srv.url("/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let max = root["versions"][1]["version"].as_str().unwrap().to_string();
    assert_eq!(root["versions"][1]["min_version"], "3.0");
    assert_ne!(max, "3.0", "{root}");
    let r = at(&c, "latest", "GET", "/v3/p1/volumes", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["openstack-api-version"], format!("volume {max}"));
    let r = at(&c, &max, "GET", "/v3/p1/volumes", None).await;
    assert_eq!(r.status, 200);
    // One past the maximum is 406, as outside any range.
    let (maj, min) = max.split_once('.').unwrap();
    let past = format!("{maj}.{}", min.parse::<u32>().unwrap() + 1);
    let r = at(&c, &past, "GET", "/v3/p1/volumes", None).await;
    assert_eq!(r.status, 406, "{past}");
}

/// 3.1: `os-volume_upload_image` takes `visibility` and `protected`
/// (CINDER-7.2.4); before it Cinder's schema refuses them. A protected
/// image cannot be deleted until the owner lifts the protection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_1_upload_to_image_takes_visibility_and_protected() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = new_volume(&c, "src").await;
    let path = format!("/v3/p1/volumes/{vol}/action");
    let up = |extra: Value| {
        let mut b = json!({"image_name": "img", "disk_format": "raw"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        json!({ "os-volume_upload_image": b })
    };

    // 3.0: the fields are not in the schema.
    let r = at(
        &c,
        "3.0",
        "POST",
        &path,
        Some(up(json!({"protected": true}))),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // 3.1: bad values are 400 and record nothing.
    for bad in [
        json!({"protected": "maybe"}),
        json!({"visibility": "everyone"}),
    ] {
        let r = at(&c, "3.1", "POST", &path, Some(up(bad.clone()))).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // `public` needs the upload_public policy (an administrator).
    let r = at(
        &c,
        "3.1",
        "POST",
        &path,
        Some(up(json!({"visibility": "public"}))),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    let r = at(
        &c,
        "3.1",
        "POST",
        &path,
        Some(up(json!({"protected": "yes"}))),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let u = &r.body["os-volume_upload_image"];
    assert_eq!(u["protected"], true);
    assert_eq!(u["visibility"], "private");
    let image = u["image_id"].as_str().unwrap().to_string();
    let img = c
        .wait_until(&format!("/image/v2/images/{image}"), "active", |r| {
            r.body["status"] == "active"
        })
        .await;
    assert_eq!(img.body["protected"], true);
    c.wait_status(&format!("/v3/p1/volumes/{vol}"), "available")
        .await;
    let r = c.delete(&format!("/image/v2/images/{image}")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .send(
            "PATCH",
            &format!("/image/v2/images/{image}"),
            Some(r#"[{"op": "replace", "path": "/protected", "value": false}]"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["protected"], false);
    let r = c.delete(&format!("/image/v2/images/{image}")).await;
    assert_eq!(r.status, 204, "{}", r.body);

    // An administrator may publish.
    let admin = srv.client("admin", "p1");
    let r = at(
        &admin,
        "3.1",
        "POST",
        &path,
        Some(up(json!({"visibility": "public", "image_name": "pub"}))),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["os-volume_upload_image"]["visibility"], "public");
    assert_eq!(r.body["os-volume_upload_image"]["protected"], false);
}

/// 3.2: the `bootable` list filter is strict (oslo's boolean words, else
/// 400); before it only False/false/FALSE mean false and any other
/// value true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_2_bootable_filter_is_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let boot = new_volume(&c, "boot").await;
    let plain = new_volume(&c, "plain").await;
    let r = c
        .post(
            &format!("/v3/p1/volumes/{boot}/action"),
            &json!({"os-set_bootable": {"bootable": true}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids = |r: &Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["volumes"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let list = |v: &'static str, f: &'static str| {
        let c = &c;
        async move { at(c, v, "GET", &format!("/v3/p1/volumes?bootable={f}"), None).await }
    };
    for (v, f, want) in [
        ("3.0", "true", vec![boot.clone()]),
        ("3.0", "false", vec![plain.clone()]),
        // Before 3.2 `0` and `f` are true (Python's bool of a string).
        ("3.1", "0", vec![boot.clone()]),
        ("3.1", "f", vec![boot.clone()]),
        ("3.2", "0", vec![plain.clone()]),
        ("3.2", "f", vec![plain.clone()]),
        ("3.2", "YES", vec![boot.clone()]),
    ] {
        let r = list(v, f).await;
        assert_eq!(r.status, 200, "{v} {f}: {}", r.body);
        assert_eq!(ids(&r), want, "{v} bootable={f}");
    }
    let r = list("3.1", "maybe").await;
    assert_eq!(ids(&r), vec![boot.clone()]);
    let r = list("3.2", "maybe").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["badRequest"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bootable = maybe"),
        "{}",
        r.body
    );
    // The summary list filters as the detail list does.
    let r = at(&c, "3.2", "GET", "/v3/p1/volumes/detail?bootable=1", None).await;
    assert_eq!(ids(&r), vec![boot]);
}

fn vol_ids(r: &Reply) -> Vec<String> {
    let mut v: Vec<String> = r.body["volumes"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// 3.45: `with_count=true` adds `count` (every match, whatever the page) to
/// the volume lists; before 3.45 the parameter is dropped unread. A value
/// that is not a boolean is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_45_with_count() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    for n in ["a", "b", "c"] {
        new_volume(&c, n).await;
    }
    for path in ["/v3/p1/volumes", "/v3/p1/volumes/detail"] {
        let r = at(
            &c,
            "3.44",
            "GET",
            &format!("{path}?with_count=true&limit=1"),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.get("count").is_none(), "{}", r.body);
        let r = at(
            &c,
            "3.45",
            "GET",
            &format!("{path}?with_count=true&limit=1"),
            None,
        )
        .await;
        assert_eq!(r.body["count"], 3, "{}", r.body);
        assert_eq!(r.body["volumes"].as_array().unwrap().len(), 1);
        let r = at(
            &c,
            "3.45",
            "GET",
            &format!("{path}?with_count=true&name=b"),
            None,
        )
        .await;
        assert_eq!(r.body["count"], 1, "{}", r.body);
        let r = at(&c, "3.45", "GET", &format!("{path}?with_count=false"), None).await;
        assert!(r.body.get("count").is_none(), "{}", r.body);
        let r = at(&c, "3.45", "GET", &format!("{path}?with_count=maybe"), None).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    assert!(verify(tmp.path()).0);
}

/// 3.48: `shared_targets` and `service_uuid` in volume bodies (the same
/// service for volumes of one type, another for another type); 3.69 lets
/// `shared_targets` be null, which this backend never asks for. 3.61:
/// `cluster_name` (null: no clusters) for admin only. 3.63:
/// `volume_type_id`. 3.64: `encryption_key_id` only for an encrypted
/// volume (none here). 3.65: `consumes_quota`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_48_to_v3_69_volume_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "p1");
    let a = new_volume(&c, "a").await;
    let b = new_volume(&c, "b").await;
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "name": "sas", "volume_type": "SAS"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let sas = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{sas}"), "available")
        .await;
    let show = |who: &'static str, v: &'static str, id: String| {
        let cl = if who == "admin" {
            admin.cloned()
        } else {
            c.cloned()
        };
        async move {
            at(&cl, v, "GET", &format!("/v3/p1/volumes/{id}"), None)
                .await
                .body["volume"]
                .clone()
        }
    };
    let old = show("alice", "3.47", a.clone()).await;
    for k in [
        "shared_targets",
        "service_uuid",
        "cluster_name",
        "volume_type_id",
        "consumes_quota",
    ] {
        assert!(old.get(k).is_none(), "{k} at 3.47: {old}");
    }
    let va = show("alice", "3.48", a.clone()).await;
    assert_eq!(va["shared_targets"], false);
    let sa = va["service_uuid"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&sa).is_ok(), "{va}");
    assert_eq!(
        show("alice", "3.48", b.clone()).await["service_uuid"],
        sa.as_str()
    );
    assert_ne!(
        show("alice", "3.48", sas.clone()).await["service_uuid"],
        sa.as_str()
    );
    assert_eq!(
        show("alice", "3.69", a.clone()).await["shared_targets"],
        false
    );
    // 3.61: admin only.
    assert!(show("admin", "3.60", a.clone())
        .await
        .get("cluster_name")
        .is_none());
    let adm = show("admin", "3.61", a.clone()).await;
    assert!(
        adm.get("cluster_name").is_some() && adm["cluster_name"].is_null(),
        "{adm}"
    );
    assert!(show("alice", "3.61", a.clone())
        .await
        .get("cluster_name")
        .is_none());
    // 3.63: the id the types list gives the type.
    assert!(show("alice", "3.62", a.clone())
        .await
        .get("volume_type_id")
        .is_none());
    let types = at(&c, "3.63", "GET", "/v3/p1/types", None).await.body;
    let id_of = |name: &str| {
        types["volume_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let v63 = show("alice", "3.63", sas.clone()).await;
    assert_eq!(v63["volume_type_id"], id_of("SAS").as_str(), "{v63}");
    // 3.64: no volume here is encrypted, so no key id.
    let v64 = show("alice", "3.64", a.clone()).await;
    assert_eq!(v64["encrypted"], false);
    assert!(v64.get("encryption_key_id").is_none(), "{v64}");
    // 3.65.
    assert!(show("alice", "3.64", a.clone())
        .await
        .get("consumes_quota")
        .is_none());
    assert_eq!(
        show("alice", "3.65", a.clone()).await["consumes_quota"],
        true
    );
    // The detail list carries the same fields as show.
    let list = at(&c, "3.65", "GET", "/v3/p1/volumes/detail", None)
        .await
        .body;
    for v in list["volumes"].as_array().unwrap() {
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(*v, show("alice", "3.65", id).await);
    }
    // Create and update bodies too.
    let r = at(
        &c,
        "3.65",
        "PUT",
        &format!("/v3/p1/volumes/{a}"),
        Some(json!({"volume": {"name": "a2"}})),
    )
    .await;
    assert_eq!(r.body["volume"]["consumes_quota"], true, "{}", r.body);
    assert_eq!(r.body["volume"]["shared_targets"], false, "{}", r.body);
    assert!(r.body["volume"]["volume_type_id"].is_string(), "{}", r.body);
    // 3.65's filter: every volume here consumes quota.
    let r = at(
        &c,
        "3.65",
        "GET",
        "/v3/p1/volumes?consumes_quota=true",
        None,
    )
    .await;
    assert_eq!(vol_ids(&r).len(), 3);
    let r = at(
        &c,
        "3.65",
        "GET",
        "/v3/p1/volumes?consumes_quota=false",
        None,
    )
    .await;
    assert_eq!(vol_ids(&r).len(), 0, "{}", r.body);
    let r = at(
        &c,
        "3.64",
        "GET",
        "/v3/p1/volumes?consumes_quota=false",
        None,
    )
    .await;
    assert_eq!(vol_ids(&r).len(), 3, "dropped before 3.65: {}", r.body);
    let r = at(&c, "3.65", "GET", "/v3/p1/volumes?consumes_quota=x", None).await;
    assert_eq!(r.status, 400);
    assert!(verify(tmp.path()).0);
}

/// 3.52: the type list filters on `extra_specs` (a dict literal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_52_volume_type_extra_specs_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let names = |r: &Reply| {
        let mut v: Vec<String> = r.body["volume_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let q = "/v3/p1/types?extra_specs=%7B%27volume_backend_name%27%3A%20%27SAS%27%7D";
    let all = names(&at(&c, "3.51", "GET", q, None).await);
    assert!(all.len() >= 3, "{all:?}");
    assert_eq!(names(&at(&c, "3.52", "GET", q, None).await), vec!["SAS"]);
    let r = at(
        &c,
        "3.52",
        "GET",
        "/v3/p1/types?extra_specs=%7B%22volume_backend_name%22%3A%22none%22%7D",
        None,
    )
    .await;
    assert!(names(&r).is_empty());
    let r = at(&c, "3.52", "GET", "/v3/p1/types?extra_specs=oops", None).await;
    assert_eq!(r.status, 400);
}

/// 3.53: create takes only the documented keys; update must name one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_53_strict_create_and_update_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let body = json!({"volume": {"size": 1, "name": "x", "status": "available"}});
    let r = at(&c, "3.52", "POST", "/v3/p1/volumes", Some(body.clone())).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    let r = at(&c, "3.53", "POST", "/v3/p1/volumes", Some(body)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.body["badRequest"]["message"].as_str().unwrap();
    assert!(msg.contains("'status' was unexpected"), "{msg}");
    let before = vol_ids(&c.get("/v3/p1/volumes").await);
    assert_eq!(before, vec![id.clone()], "a refused create changes nothing");
    // An empty update: the seed's own rule refuses it before 3.53, the
    // schema from 3.53.
    let r = at(
        &c,
        "3.52",
        "PUT",
        &format!("/v3/p1/volumes/{id}"),
        Some(json!({"volume": {}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.53",
        "PUT",
        &format!("/v3/p1/volumes/{id}"),
        Some(json!({"volume": {}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.body["badRequest"]["message"].as_str().unwrap();
    assert!(
        msg.contains("is not valid under any of the given schemas"),
        "{msg}"
    );
    let r = at(
        &c,
        "3.53",
        "PUT",
        &format!("/v3/p1/volumes/{id}"),
        Some(json!({"volume": {"name": "n", "size": 2}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        c.get(&format!("/v3/p1/volumes/{id}")).await.body["volume"]["name"],
        "x"
    );
    let r = at(
        &c,
        "3.53",
        "PUT",
        &format!("/v3/p1/volumes/{id}"),
        Some(json!({"volume": {"description": "d"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(verify(tmp.path()).0);
}

/// 3.60: `created_at` / `updated_at` comparisons on the volume lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_60_time_comparison_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let first = new_volume(&c, "first").await;
    let r = c.get(&format!("/v3/p1/volumes/{first}")).await;
    let t1 = r.body["volume"]["created_at"].as_str().unwrap().to_string();
    let second = new_volume(&c, "second").await;
    let list = |q: String, v: &'static str| {
        let c = c.cloned();
        async move { at(&c, v, "GET", &format!("/v3/p1/volumes/detail?{q}"), None).await }
    };
    let both = {
        let mut v = vec![first.clone(), second.clone()];
        v.sort();
        v
    };
    assert_eq!(
        vol_ids(&list(format!("created_at=gt:{t1}"), "3.59").await),
        both
    );
    assert_eq!(
        vol_ids(&list(format!("created_at=gt:{t1}"), "3.60").await),
        vec![second.clone()]
    );
    assert_eq!(
        vol_ids(&list(format!("created_at=lte:{t1}"), "3.60").await),
        vec![first.clone()]
    );
    assert_eq!(
        vol_ids(&list(format!("created_at=eq:{t1}"), "3.60").await),
        vec![first.clone()]
    );
    assert_eq!(
        vol_ids(&list(format!("created_at=neq:{t1}"), "3.60").await),
        vec![second.clone()]
    );
    assert_eq!(
        vol_ids(
            &list(
                format!("created_at=gte:{t1},lt:2999-01-01T00:00:00"),
                "3.60"
            )
            .await
        ),
        both
    );
    // Both were updated (created, then available); one never-updated
    // comparison window matches none.
    assert!(vol_ids(&list("updated_at=lt:2000-01-01".into(), "3.60").await).is_empty());
    assert_eq!(
        vol_ids(&list("updated_at=gt:2000-01-01".into(), "3.60").await),
        both
    );
    for bad in [
        "created_at=after:2020-01-01",
        "created_at=gt:yesterday",
        "updated_at=2020",
    ] {
        let r = list(bad.into(), "3.60").await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
}

/// 3.62: a project's own default type (`/default-types`, admin only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_62_project_default_types() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "p1");
    let types = at(&c, "3.62", "GET", "/v3/p1/types", None).await.body;
    let sas_id = types["volume_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "SAS")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .unwrap();
    let set = json!({"default_type": {"volume_type": "SAS"}});
    // Not below 3.62; not for a member.
    let r = at(
        &admin,
        "3.61",
        "PUT",
        "/v3/default-types/p1",
        Some(set.clone()),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&c, "3.62", "PUT", "/v3/default-types/p1", Some(set.clone())).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = at(&admin, "3.62", "GET", "/v3/default-types/p1", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Unknown type 400, bad body 400; nothing set.
    let r = at(
        &admin,
        "3.62",
        "PUT",
        "/v3/default-types/p1",
        Some(json!({"default_type": {"volume_type": "nope"}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &admin,
        "3.62",
        "PUT",
        "/v3/default-types/p1",
        Some(json!({"default_type": {"volume_type": "SAS", "x": 1}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&admin, "3.62", "GET", "/v3/default-types", None).await;
    assert_eq!(r.body, json!({"default_types": []}));
    // Set (by name, through the URL with the project too).
    let r = at(
        &admin,
        "3.62",
        "PUT",
        "/v3/p1/default-types/p1",
        Some(set.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"default_type": {"project_id": "p1", "volume_type_id": sas_id}})
    );
    let r = at(&admin, "3.62", "GET", "/v3/default-types/p1", None).await;
    assert_eq!(r.body["default_type"]["volume_type_id"], sas_id.as_str());
    let r = at(&admin, "3.62", "GET", "/v3/default-types", None).await;
    assert_eq!(r.body["default_types"].as_array().unwrap().len(), 1);
    // p1's creates without a type get SAS; p2's the configured default.
    let v = new_volume(&c, "d").await;
    assert_eq!(
        c.get(&format!("/v3/p1/volumes/{v}")).await.body["volume"]["volume_type"],
        "SAS"
    );
    assert_eq!(
        at(&c, "3.62", "GET", "/v3/p1/types/default", None)
            .await
            .body["volume_type"]["name"],
        "SAS"
    );
    let other = srv.client("bob", "p2");
    let r = other
        .post("/v3/p2/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_ne!(r.body["volume"]["volume_type"], "SAS", "{}", r.body);
    // A project's default cannot be deleted.
    let r = at(
        &admin,
        "3.62",
        "DELETE",
        &format!("/v3/p1/types/{sas_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Unset: 204, twice; the configured default applies again.
    for _ in 0..2 {
        let r = at(&admin, "3.62", "DELETE", "/v3/default-types/p1", None).await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = at(&admin, "3.62", "GET", "/v3/default-types/p1", None).await;
    assert_eq!(r.status, 404);
    assert_ne!(
        at(&c, "3.62", "GET", "/v3/p1/types/default", None)
            .await
            .body["volume_type"]["name"],
        "SAS"
    );
    assert!(verify(tmp.path()).0);
}

/// 3.67: the `/v3` routes without the project id, the token naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_67_urls_without_the_project_id() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = at(
        &c,
        "3.67",
        "POST",
        "/v3/volumes",
        Some(json!({"volume": {"size": 1, "name": "np"}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    let r = at(&c, "3.67", "GET", "/v3/volumes/detail", None).await;
    assert_eq!(vol_ids(&r), vec![id.clone()]);
    let r = at(&c, "3.67", "GET", &format!("/v3/volumes/{id}"), None).await;
    assert_eq!(r.body["volume"]["name"], "np");
    // Another project's caller sees nothing of p1's.
    let bob = srv.client("bob", "p2");
    let r = at(&bob, "3.67", "GET", &format!("/v3/volumes/{id}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&c, "3.67", "DELETE", &format!("/v3/volumes/{id}"), None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(verify(tmp.path()).0);
}

/// 3.45 and 3.65 on the snapshot lists: `count` with `with_count`, the
/// `consumes_quota` field and filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_45_v3_65_snapshot_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let v = new_volume(&c, "v").await;
    for n in ["s1", "s2"] {
        let r = c
            .post(
                "/v3/p1/snapshots",
                &json!({"snapshot": {"volume_id": v, "name": n}}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["snapshot"]["id"].as_str().unwrap().to_string();
        c.wait_until(
            &format!("/v3/p1/snapshots/{id}"),
            "snapshot available",
            |r| r.body["snapshot"]["status"] == "available",
        )
        .await;
    }
    let r = at(
        &c,
        "3.44",
        "GET",
        "/v3/p1/snapshots/detail?with_count=true&limit=1",
        None,
    )
    .await;
    assert!(r.body.get("count").is_none(), "{}", r.body);
    let r = at(
        &c,
        "3.45",
        "GET",
        "/v3/p1/snapshots/detail?with_count=true&limit=1",
        None,
    )
    .await;
    assert_eq!(r.body["count"], 2, "{}", r.body);
    assert_eq!(r.body["snapshots"].as_array().unwrap().len(), 1);
    assert!(r.body["snapshots"][0].get("consumes_quota").is_none());
    let r = at(&c, "3.65", "GET", "/v3/p1/snapshots/detail", None).await;
    for s in r.body["snapshots"].as_array().unwrap() {
        assert_eq!(s["consumes_quota"], true, "{s}");
    }
    let r = at(
        &c,
        "3.65",
        "GET",
        "/v3/p1/snapshots?consumes_quota=false&with_count=1",
        None,
    )
    .await;
    assert_eq!(r.body["count"], 0, "{}", r.body);
    assert!(r.body["snapshots"].as_array().unwrap().is_empty());
    assert!(verify(tmp.path()).0);
}

/// 3.49: `backend_state` of each volume service (not the scheduler's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_49_backend_state_in_services() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let r = at(&admin, "3.48", "GET", "/v3/p1/os-services", None).await;
    assert!(r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s.get("backend_state").is_none()));
    let r = at(&admin, "3.49", "GET", "/v3/p1/os-services", None).await;
    let services = r.body["services"].as_array().unwrap();
    assert!(
        services.iter().any(|s| s["binary"] == "cinder-volume"),
        "{}",
        r.body
    );
    for s in services {
        if s["binary"] == "cinder-volume" {
            assert_eq!(s["backend_state"], "up", "{s}");
        } else {
            assert!(s.get("backend_state").is_none(), "{s}");
        }
    }
}
