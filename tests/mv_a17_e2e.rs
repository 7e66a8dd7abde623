//! a17's microversions (issue 17, contract17.md): user messages (3.3,
//! 3.5, 3.31, 3.34) and the admin/misc versions. Each test asks for the
//! version it covers and the one below, against the real binary, and ends
//! with `verify` (a replay of the log equals the live views).
mod support;

use serde_json::{json, Value};
use support::*;

/// A request at microversion `v`.
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

fn assert_verified(dir: &std::path::Path) {
    let (ok, out) = verify(dir);
    assert!(ok, "verify: {out}");
}

/// A type whose extra specs no backend offers (tempest's
/// test_user_messages), created by `admin` in p1.
async fn bogus_type(admin: &Client) -> String {
    let r = admin
        .post(
            "/v3/p1/types",
            &json!({"volume_type": {"name": "bogus", "extra_specs": {
                "storage_protocol": "tempest-storage_protocol-1",
                "vendor_name": "tempest-vendor_name-2"
            }}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["volume_type"]["id"].as_str().unwrap().to_string()
}

/// A volume of `ty` in p1, waited to `status`.
async fn volume_of(c: &Client, v: &str, ty: Option<&str>, status: &str) -> String {
    let mut vol = json!({"size": 1, "name": "v"});
    if let Some(t) = ty {
        vol["volume_type"] = json!(t);
    }
    let r = at(
        c,
        v,
        "POST",
        "/v3/p1/volumes",
        Some(json!({ "volume": vol })),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), status).await;
    id
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// 3.3: `/messages` list/show/delete. A create no backend can serve (the
/// type's extra specs against the capabilities get_pools reports) is
/// accepted, ends in `error`, and leaves Cinder's "no valid backend"
/// message; a refused command names its volume in another. Below 3.3 the
/// routes are 404; another project sees none of p1's messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_3_messages_from_failed_work_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let other = srv.client("bob", "p2");
    let ty = bogus_type(&admin).await;
    let vol = volume_of(&c, "3.3", Some(&ty), "error").await;

    // 3.2: no such resource.
    let r = at(&c, "3.2", "GET", "/v3/p1/messages", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["itemNotFound"]["code"], 404);

    let r = at(&c, "3.3", "GET", "/v3/p1/messages", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["messages"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{}", r.body);
    let m = &list[0];
    assert_eq!(
        keys(m),
        [
            "created_at",
            "event_id",
            "guaranteed_until",
            "id",
            "links",
            "message_level",
            "request_id",
            "resource_type",
            "resource_uuid",
            "user_message"
        ]
    );
    assert_eq!(m["resource_uuid"], vol.as_str());
    assert_eq!(m["resource_type"], "VOLUME");
    assert_eq!(m["event_id"], "VOLUME_VOLUME_001_003");
    assert_eq!(m["message_level"], "ERROR");
    assert_eq!(
        m["user_message"],
        "schedule allocate volume:Could not find any available weighted backend."
    );
    assert!(m["request_id"].as_str().unwrap().starts_with("req-"), "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    assert!(m["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/p1/messages/{id}")));
    // guaranteed_until is created_at plus Cinder's 30 days.
    let t = |k: &str| {
        chrono::NaiveDateTime::parse_from_str(m[k].as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.f")
            .unwrap()
    };
    assert_eq!(
        (t("guaranteed_until") - t("created_at")).num_seconds(),
        2_592_000
    );

    // The volume is in error with no disk work done; a volume of a type a
    // backend offers is created as before.
    let ok = volume_of(&c, "3.3", None, "available").await;

    // A refusal that names a volume: extending the errored one.
    let r = at(
        &c,
        "3.3",
        "POST",
        &format!("/v3/p1/volumes/{vol}/action"),
        Some(json!({"os-extend": {"new_size": 2}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&c, "3.3", "GET", "/v3/p1/messages", None).await;
    let list = r.body["messages"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", r.body);
    // Newest first.
    assert_eq!(list[0]["event_id"], "VOLUME_VOLUME_007_027", "{}", r.body);
    assert!(list[0]["user_message"]
        .as_str()
        .unwrap()
        .starts_with("extend volume:"));
    assert!(list.iter().all(|m| m["resource_uuid"] != ok.as_str()));

    // Show, at 3.3; 3.2 does not know it; p2 does not see it.
    let path = format!("/v3/p1/messages/{id}");
    let r = at(&c, "3.3", "GET", &path, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["message"], *m);
    assert_eq!(at(&c, "3.2", "GET", &path, None).await.status, 404);
    let r = at(&other, "3.3", "GET", &format!("/v3/p2/messages/{id}"), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&other, "3.3", "GET", "/v3/p2/messages", None).await;
    assert_eq!(r.body["messages"], json!([]));
    // The admin reads every project's.
    let r = at(&admin, "3.3", "GET", "/v3/p1/messages", None).await;
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 2);

    // Delete: 204, then gone (show and a second delete 404); p2 cannot.
    let r = at(
        &other,
        "3.3",
        "DELETE",
        &format!("/v3/p2/messages/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(at(&c, "3.2", "DELETE", &path, None).await.status, 404);
    let r = at(&c, "3.3", "DELETE", &path, None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = at(&c, "3.3", "GET", &path, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Message {id} could not be found.")
    );
    assert_eq!(at(&c, "3.3", "DELETE", &path, None).await.status, 404);
    let r = at(&c, "3.3", "GET", "/v3/p1/messages", None).await;
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 1);

    // The view is the log's: a replay equals it.
    drop(srv);
    assert_verified(tmp.path());
}
