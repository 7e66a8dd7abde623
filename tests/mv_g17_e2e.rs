//! Generic volume groups (issue 17, helper g17): each microversion g17
//! owns, requested at the version and one below, bodies checked exactly
//! against Cinder's views (`cinder/api/v3/views/groups.py`,
//! `group_snapshots.py`, `group_types.py`); every test ends with
//! `verify` (the log replayed equals the live views).
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

fn verified(tmp: &tempfile::TempDir) {
    let (ok, report) = verify(tmp.path());
    assert!(ok, "verify: {report}");
}

/// 3.11: group types and group specs (admin manages; members see public
/// types without specs); 3.10 has no such route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_11_group_types_and_specs() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "padmin");
    let member = srv.client("alice", "p1");
    let body = json!({"group_type": {"name": "gt-a", "description": "d",
        "is_public": true, "group_specs": {"consistent_group_snapshot_enabled": "<is> False"}}});
    let r = at(
        &admin,
        "3.10",
        "POST",
        "/v3/padmin/group_types",
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&admin, "3.11", "POST", "/v3/padmin/group_types", Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["group_type"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body,
        json!({"group_type": {"id": id, "name": "gt-a", "description": "d", "is_public": true,
            "group_specs": {"consistent_group_snapshot_enabled": "<is> False"}}})
    );
    // A taken name is 409; a member may not create.
    let dup = json!({"group_type": {"name": "gt-a"}});
    let r = at(
        &admin,
        "3.11",
        "POST",
        "/v3/padmin/group_types",
        Some(dup.clone()),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = at(&member, "3.11", "POST", "/v3/p1/group_types", Some(dup)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let b = json!({"group_type": {"name": "gt-b", "is_public": false}});
    let r = at(&admin, "3.11", "POST", "/v3/padmin/group_types", Some(b)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let private = r.body["group_type"]["id"].as_str().unwrap().to_string();
    // A member sees the public type, without specs; admin filters.
    let r = at(
        &member,
        "3.11",
        "GET",
        &format!("/v3/p1/group_types/{id}"),
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"group_type": {"id": id, "name": "gt-a", "description": "d", "is_public": true}})
    );
    let r = at(
        &member,
        "3.11",
        "GET",
        &format!("/v3/p1/group_types/{private}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let names = |r: &Reply| -> Vec<String> {
        r.body["group_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = at(
        &admin,
        "3.11",
        "GET",
        "/v3/padmin/group_types?is_public=None&sort=name:asc",
        None,
    )
    .await;
    assert_eq!(names(&r), ["gt-a", "gt-b"]);
    let r = at(
        &admin,
        "3.11",
        "GET",
        "/v3/padmin/group_types?is_public=None&sort=name:desc",
        None,
    )
    .await;
    assert_eq!(names(&r), ["gt-b", "gt-a"]);
    let r = at(
        &admin,
        "3.11",
        "GET",
        "/v3/padmin/group_types?is_public=false",
        None,
    )
    .await;
    assert_eq!(names(&r), ["gt-b"]);
    let r = at(
        &member,
        "3.11",
        "GET",
        "/v3/p1/group_types?is_public=false",
        None,
    )
    .await;
    assert_eq!(names(&r), ["gt-a"]);
    let r = at(
        &admin,
        "3.11",
        "GET",
        "/v3/padmin/group_types/default",
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    // Update: 200 with the view.
    let r = at(
        &admin,
        "3.11",
        "PUT",
        &format!("/v3/padmin/group_types/{id}"),
        Some(json!({"group_type": {"name": "gt-a2", "description": "d2"}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["group_type"]["name"], "gt-a2");
    // Specs: create merges (202 with the body), show/update one, delete.
    let specs = format!("/v3/padmin/group_types/{id}/group_specs");
    let r = at(
        &admin,
        "3.11",
        "POST",
        &specs,
        Some(json!({"group_specs": {"k1": "v1", "k2": "v2"}})),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (202, json!({"group_specs": {"k1": "v1", "k2": "v2"}}))
    );
    let r = at(
        &admin,
        "3.11",
        "PUT",
        &format!("{specs}/k2"),
        Some(json!({"k2": "v2b"})),
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"k2": "v2b"})));
    let r = at(
        &admin,
        "3.11",
        "PUT",
        &format!("{specs}/k2"),
        Some(json!({"k3": "x"})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = at(&admin, "3.11", "GET", &specs, None).await;
    assert_eq!(
        r.body,
        json!({"group_specs": {"consistent_group_snapshot_enabled": "<is> False", "k1": "v1", "k2": "v2b"}})
    );
    let r = at(&admin, "3.11", "DELETE", &format!("{specs}/k1"), None).await;
    assert_eq!(r.status, 202);
    let r = at(&admin, "3.11", "GET", &format!("{specs}/k1"), None).await;
    assert_eq!(r.status, 404);
    let r = at(&admin, "3.11", "DELETE", &format!("{specs}/k1"), None).await;
    assert_eq!(r.status, 404);
    let r = at(
        &admin,
        "3.11",
        "DELETE",
        &format!("/v3/padmin/group_types/{private}"),
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    let r = at(
        &admin,
        "3.11",
        "GET",
        &format!("/v3/padmin/group_types/{private}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    drop(srv);
    verified(&tmp);
}
