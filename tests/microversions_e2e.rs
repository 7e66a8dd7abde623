//! Volume microversions past 3.0 (issue 17): one test per version
//! boundary, the behaviour at N-1 against N, plus discovery advertising the
//! true maximum (VER-5.1) and `latest` resolving to it.
mod support;

use serde_json::{json, Value};
use support::*;

/// A request at microversion `v` ("3.1", "latest", …).
async fn at(c: &Client, v: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = c
        .http
        .request(m, format!("{}{}", c.base, path))
        .header("X-Auth-Token", &c.token)
        .header("Content-Type", "application/json")
        .header("OpenStack-API-Version", format!("volume {v}"));
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

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
