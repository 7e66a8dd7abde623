//! a17's microversions (issue 17, contract17.md): user messages (3.3,
//! 3.5, 3.31, 3.34) and the admin/misc versions. Each test asks for the
//! version it covers and the one below, against the real binary, and ends
//! with `verify` (a replay of the log equals the live views).
mod support;

use serde_json::{json, Value};
use support::*;

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

/// Refusals in p1 naming volume `vol` (an errored volume cannot extend),
/// `n` of them, each a message.
async fn refusals_on(c: &Client, vol: &str, n: usize) {
    for _ in 0..n {
        let r = at(
            c,
            "3.3",
            "POST",
            &format!("/v3/p1/volumes/{vol}/action"),
            Some(json!({"os-extend": {"new_size": 2}})),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
}

fn ids(r: &Reply, key: &str) -> Vec<String> {
    r.body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// 3.5: messages take `limit`/`marker`/`offset`, `sort` and filters on
/// their fields (Cinder's `is_valid_model_filters`: an unknown key lists
/// nothing); at 3.4 every parameter is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_5_messages_pagination_sort_and_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let ty = bogus_type(&admin).await;
    let vol = volume_of(&c, "3.5", Some(&ty), "error").await;
    refusals_on(&c, &vol, 2).await;
    let all = at(&c, "3.5", "GET", "/v3/p1/messages", None).await;
    let all_ids = ids(&all, "messages");
    assert_eq!(all_ids.len(), 3, "{}", all.body);

    // 3.4: limit and filters are not read.
    let r = at(&c, "3.4", "GET", "/v3/p1/messages?limit=1&event_id=x", None).await;
    assert_eq!(ids(&r, "messages"), all_ids);
    assert!(r.body.get("messages_links").is_none());

    let r = at(&c, "3.5", "GET", "/v3/p1/messages?limit=2", None).await;
    assert_eq!(ids(&r, "messages"), all_ids[..2]);
    let next = r.body["messages_links"][0]["href"].as_str().unwrap();
    assert!(next.contains(&format!("marker={}", all_ids[1])), "{next}");
    let r = at(
        &c,
        "3.5",
        "GET",
        &format!("/v3/p1/messages?limit=2&marker={}", all_ids[1]),
        None,
    )
    .await;
    assert_eq!(ids(&r, "messages"), all_ids[2..]);
    assert!(r.body.get("messages_links").is_none());
    let r = at(&c, "3.5", "GET", "/v3/p1/messages?offset=1&limit=1", None).await;
    assert_eq!(ids(&r, "messages"), all_ids[1..2]);
    // Oldest first.
    let r = at(
        &c,
        "3.5",
        "GET",
        "/v3/p1/messages?sort=created_at:asc",
        None,
    )
    .await;
    let mut rev = all_ids.clone();
    rev.reverse();
    assert_eq!(ids(&r, "messages"), rev);
    // A filter on a field; an unknown key lists nothing.
    let r = at(
        &c,
        "3.5",
        "GET",
        "/v3/p1/messages?event_id=VOLUME_VOLUME_001_003",
        None,
    )
    .await;
    assert_eq!(ids(&r, "messages"), all_ids[2..]);
    let r = at(&c, "3.5", "GET", "/v3/p1/messages?colour=blue", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["messages"], json!([]));
    for bad in ["sort=colour", "sort=created_at:up", "limit=-1"] {
        let r = at(&c, "3.5", "GET", &format!("/v3/p1/messages?{bad}"), None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = at(
        &c,
        "3.5",
        "GET",
        "/v3/p1/messages?marker=00000000-0000-4000-8000-000000000000",
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.7: `/clusters` (none here: no service is configured into one) and
/// `cluster` in os-services; 3.26 adds the replication fields and
/// filters. Below 3.7 neither exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_7_and_3_26_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let r = at(&admin, "3.6", "GET", "/v3/p1/clusters", None).await;
    assert_eq!(r.status, 404);
    let r = at(&admin, "3.6", "GET", "/v3/p1/os-services", None).await;
    assert!(r.body["services"][0].get("cluster").is_none(), "{}", r.body);
    let r = at(&admin, "3.7", "GET", "/v3/p1/os-services", None).await;
    let services = r.body["services"].as_array().unwrap();
    assert!(!services.is_empty());
    assert!(
        services.iter().all(|s| s["cluster"].is_null()),
        "{}",
        r.body
    );
    for path in ["/v3/p1/clusters", "/v3/p1/clusters/detail"] {
        let r = at(&admin, "3.7", "GET", path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, json!({"clusters": []}));
    }
    let r = at(
        &admin,
        "3.7",
        "GET",
        "/v3/p1/clusters/c1?binary=cinder-volume",
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["itemNotFound"]["message"],
        "Cluster c1 could not be found."
    );
    let r = at(
        &admin,
        "3.7",
        "PUT",
        "/v3/p1/clusters/disable",
        Some(json!({"name": "c1"})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(
        &admin,
        "3.7",
        "PUT",
        "/v3/p1/clusters/enable",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        at(&c, "3.7", "GET", "/v3/p1/clusters", None).await.status,
        403
    );
    // Replication filters: unknown before 3.26.
    let r = at(&admin, "3.25", "GET", "/v3/p1/clusters?frozen=true", None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&admin, "3.26", "GET", "/v3/p1/clusters?frozen=true", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = at(&admin, "3.26", "GET", "/v3/p1/clusters?colour=1", None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.12: `/volumes/summary` counts the caller's volumes and their size
/// (an admin's `all_tenants`: everyone's) under the list filters; 3.36
/// adds every distinct metadata value. At 3.11 `summary` is a volume id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_12_and_3_36_volume_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let other = srv.client("bob", "p2");
    for (size, md) in [(1, json!({"k": "a"})), (2, json!({"k": "b", "z": "1"}))] {
        let r = c
            .post(
                "/v3/p1/volumes",
                &json!({"volume": {"size": size, "metadata": md}}),
            )
            .await;
        let id = r.body["volume"]["id"].as_str().unwrap().to_string();
        c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
            .await;
    }
    let r = other
        .post("/v3/p2/volumes", &json!({"volume": {"size": 4}}))
        .await;
    assert_eq!(r.status, 202);

    let r = at(&c, "3.11", "GET", "/v3/p1/volumes/summary", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&c, "3.12", "GET", "/v3/p1/volumes/summary", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"volume-summary": {"total_count": 2, "total_size": 3}})
    );
    let r = at(
        &c,
        "3.12",
        "GET",
        "/v3/p1/volumes/summary?metadata={'k':'b'}",
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"volume-summary": {"total_count": 1, "total_size": 2}})
    );
    let r = at(&c, "3.35", "GET", "/v3/p1/volumes/summary", None).await;
    assert!(r.body["volume-summary"].get("metadata").is_none());
    let r = at(&c, "3.36", "GET", "/v3/p1/volumes/summary", None).await;
    assert_eq!(
        r.body,
        json!({"volume-summary": {"total_count": 2, "total_size": 3,
            "metadata": {"k": ["a", "b"], "z": ["1"]}}})
    );
    let r = at(
        &admin,
        "3.12",
        "GET",
        "/v3/p1/volumes/summary?all_tenants=1",
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"volume-summary": {"total_count": 3, "total_size": 7}})
    );
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.15: a volume's metadata carries an ETag; a replacing write whose
/// `If-Match` names another is a 412 and changes nothing. At 3.14
/// there is no ETag and `If-Match` is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_15_volume_metadata_etags() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "metadata": {"a": "1"}}}),
        )
        .await;
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    let path = format!("/v3/p1/volumes/{id}/metadata");
    let r = at(&c, "3.14", "GET", &path, None).await;
    assert!(r.headers.get("etag").is_none());
    let r = at(&c, "3.15", "GET", &path, None).await;
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(r.body, json!({"metadata": {"a": "1"}}));

    let put = |v: &'static str, tag: &str| {
        let req = c
            .http
            .put(format!("{}{path}", c.base))
            .header("X-Auth-Token", &c.token)
            .header("OpenStack-API-Version", format!("volume {v}"))
            .header("If-Match", format!("\"{tag}\""))
            .body(json!({"metadata": {"b": "2"}}).to_string());
        async move { req.send().await.unwrap() }
    };
    // 3.14: If-Match is not read.
    let r = put("3.14", "stale").await;
    assert_eq!(r.status().as_u16(), 200);
    let r = at(&c, "3.15", "GET", &path, None).await;
    let etag2 = r.headers["etag"].to_str().unwrap().to_string();
    assert_ne!(etag, etag2);
    // 3.15: the old tag is refused, the current one accepted.
    let r = put("3.15", &etag).await;
    assert_eq!(r.status().as_u16(), 412);
    let r = at(&c, "3.15", "GET", &path, None).await;
    assert_eq!(r.headers["etag"].to_str().unwrap(), etag2, "unchanged");
    let r = put("3.15", &etag2).await;
    assert_eq!(r.status().as_u16(), 200);
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.21: an admin's volume detail shows `provider_id` (null: no backend
/// here keeps one); not a user's, not at 3.20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_21_provider_id_for_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let id = volume_of(&c, "3.21", None, "available").await;
    let path = format!("/v3/p1/volumes/{id}");
    let r = at(&admin, "3.21", "GET", &path, None).await;
    assert_eq!(r.body["volume"]["provider_id"], Value::Null);
    assert!(r.body["volume"]
        .as_object()
        .unwrap()
        .contains_key("provider_id"));
    let r = at(&admin, "3.21", "GET", "/v3/p1/volumes/detail", None).await;
    assert!(r.body["volumes"][0]
        .as_object()
        .unwrap()
        .contains_key("provider_id"));
    let r = at(&admin, "3.20", "GET", &path, None).await;
    assert!(!r.body["volume"]
        .as_object()
        .unwrap()
        .contains_key("provider_id"));
    let r = at(&c, "3.21", "GET", &path, None).await;
    assert!(!r.body["volume"]
        .as_object()
        .unwrap()
        .contains_key("provider_id"));
    drop(srv);
    assert_verified(tmp.path());
}

async fn snapshot_of(c: &Client, vol: &str, name: &str, md: Value) -> String {
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": vol, "name": name, "metadata": md}}),
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
    id
}

/// 3.22 snapshot `metadata` filter, 3.30 sort by `name`, 3.41 `user_id`
/// in a snapshot's detail; each against the version below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_22_3_30_3_41_snapshot_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let vol = volume_of(&c, "3.22", None, "available").await;
    let b = snapshot_of(&c, &vol, "b", json!({"k": "1"})).await;
    let a = snapshot_of(&c, &vol, "a", json!({"k": "2"})).await;

    let list = |r: &Reply| ids(r, "snapshots");
    let q = "/v3/p1/snapshots?metadata={'k':'1'}";
    assert_eq!(list(&at(&c, "3.21", "GET", q, None).await).len(), 2);
    assert_eq!(list(&at(&c, "3.22", "GET", q, None).await), vec![b.clone()]);

    let q = "/v3/p1/snapshots?sort=name:asc";
    assert_eq!(at(&c, "3.29", "GET", q, None).await.status, 400);
    // The model's own `display_name` sorts at any version (tempest).
    let q2 = "/v3/p1/snapshots?sort_key=display_name&sort_dir=asc";
    assert_eq!(
        list(&at(&c, "3.0", "GET", q2, None).await),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        list(&at(&c, "3.30", "GET", q, None).await),
        [a.clone(), b.clone()]
    );

    let path = format!("/v3/p1/snapshots/{a}");
    let r = at(&c, "3.40", "GET", &path, None).await;
    assert!(r.body["snapshot"].get("user_id").is_none());
    let r = at(&c, "3.41", "GET", &path, None).await;
    assert_eq!(r.body["snapshot"]["user_id"], "alice");
    let r = at(&c, "3.41", "GET", "/v3/p1/snapshots/detail", None).await;
    assert_eq!(r.body["snapshots"][0]["user_id"], "alice");
    let r = at(&c, "3.41", "GET", "/v3/p1/snapshots", None).await;
    assert!(r.body["snapshots"][0].get("user_id").is_none());
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.23: `DELETE /volumes/{id}?force=true` (an admin's) deletes a volume
/// a plain delete refuses (a reserved, `attaching` one); a user's force is
/// 403; at 3.22 `force` is not read; a non-boolean is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_23_volume_delete_force() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let id = volume_of(&c, "3.23", None, "available").await;
    // Reserved (os-reserve): `attaching`, which a plain delete refuses.
    let r = c
        .post(
            &format!("/v3/p1/volumes/{id}/action"),
            &json!({"os-reserve": {}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let path = format!("/v3/p1/volumes/{id}?force=true");
    let r = at(&admin, "3.22", "DELETE", &path, None).await;
    assert_eq!(r.status, 400, "3.22 ignores force: {}", r.body);
    let r = at(&c, "3.23", "DELETE", &path, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = at(
        &admin,
        "3.23",
        "DELETE",
        &format!("/v3/p1/volumes/{id}?force=maybe"),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A volume in error (no backend for its type) too.
    let ty = bogus_type(&admin).await;
    let bad = volume_of(&c, "3.23", Some(&ty), "error").await;
    let r = at(
        &admin,
        "3.23",
        "DELETE",
        &format!("/v3/p1/volumes/{bad}?force=true"),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(
        &admin,
        "3.23",
        "DELETE",
        &format!("/v3/p1/volumes/{id}?force=yes"),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for v in [&bad, &id] {
        c.wait_until(&format!("/v3/p1/volumes/{v}"), "gone", |r| r.status == 404)
            .await;
    }
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.24: `POST /workers/cleanup` names the volume services asked to clean
/// up (an admin's); a resource id with no pending work is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_24_workers_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let r = at(
        &admin,
        "3.23",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = at(
        &admin,
        "3.24",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let cleaning = r.body["cleaning"].as_array().unwrap();
    assert_eq!(cleaning.len(), 3, "one per backend: {}", r.body);
    assert_eq!(r.body["unavailable"], json!([]));
    assert_eq!(
        cleaning[0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["binary", "cluster_name", "host", "id"]
    );
    let r = at(
        &admin,
        "3.24",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({"host": "blockledger@SSD"})),
    )
    .await;
    assert_eq!(
        r.body["cleaning"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    let r = at(
        &admin,
        "3.24",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({"is_up": false})),
    )
    .await;
    assert_eq!(r.body["cleaning"], json!([]));
    let vol = volume_of(&c, "3.24", None, "available").await;
    let r = at(
        &admin,
        "3.24",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({"resource_id": vol})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &admin,
        "3.24",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({"resource_type": "backup"})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.24",
        "POST",
        "/v3/p1/workers/cleanup",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 403);
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.4: the volume list's `glance_metadata` filter (the image metadata a
/// volume made from an image carries); at 3.3 it is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_4_glance_metadata_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let src = volume_of(&c, "3.4", None, "available").await;
    let r = c
        .post(
            &format!("/v3/p1/volumes/{src}/action"),
            &json!({"os-volume_upload_image": {"image_name": "golden", "disk_format": "raw"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let image = r.body["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.wait_until(&format!("/image/v2/images/{image}"), "active", |r| {
        r.body["status"] == "active"
    })
    .await;
    c.wait_status(&format!("/v3/p1/volumes/{src}"), "available")
        .await;
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "imageRef": image}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let from_image = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{from_image}"), "available")
        .await;

    let q = "/v3/p1/volumes?glance_metadata={'image_name':'golden'}";
    assert_eq!(
        ids(&at(&c, "3.3", "GET", q, None).await, "volumes").len(),
        2
    );
    assert_eq!(
        ids(&at(&c, "3.4", "GET", q, None).await, "volumes"),
        vec![from_image.clone()]
    );
    let q = format!("/v3/p1/volumes?glance_metadata={{'image_id':'{image}','image_name':'other'}}");
    assert_eq!(
        at(&c, "3.4", "GET", &q, None).await.body["volumes"],
        json!([])
    );
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.28: get_pools filters by `name` and capability; 3.35 by
/// `volume_type` (the pools whose backend the type's extra specs allow);
/// below each the filter is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_28_and_3_35_pool_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let pools = |r: &Reply| -> Vec<String> {
        r.body["pools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let base = "/v3/p1/scheduler-stats/get_pools";
    let all = pools(&at(&admin, "3.27", "GET", base, None).await);
    assert_eq!(all.len(), 15, "3 backends x 5 zones");
    let one = "blockledger@SSD#toronto";
    let q = format!("{base}?name={}", one.replace('#', "%23"));
    assert_eq!(pools(&at(&admin, "3.27", "GET", &q, None).await).len(), 15);
    assert_eq!(pools(&at(&admin, "3.28", "GET", &q, None).await), [one]);
    let q = format!("{base}?volume_backend_name=SAS&storage_protocol=file");
    let sas = pools(&at(&admin, "3.28", "GET", &q, None).await);
    assert_eq!(sas.len(), 5);
    assert!(sas.iter().all(|p| p.starts_with("blockledger@SAS#")));

    // A type pinned to a backend, and the bogus one no backend serves.
    let r = admin
        .post(
            "/v3/p1/types",
            &json!({"volume_type": {"name": "fast", "extra_specs": {"volume_backend_name": "SSD"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bogus = bogus_type(&admin).await;
    let q = format!("{base}?volume_type=fast");
    assert_eq!(pools(&at(&admin, "3.34", "GET", &q, None).await).len(), 15);
    let fast = pools(&at(&admin, "3.35", "GET", &q, None).await);
    assert_eq!(fast.len(), 5);
    assert!(fast.iter().all(|p| p.starts_with("blockledger@SSD#")));
    let q = format!("{base}?volume_type={bogus}");
    assert_eq!(
        at(&admin, "3.35", "GET", &q, None).await.body["pools"],
        json!([])
    );
    let q = format!("{base}?volume_type=nope");
    assert_eq!(at(&admin, "3.35", "GET", &q, None).await.status, 404);
    // From 3.31 only the configured pool filters, for admins too.
    let q = format!("{base}?storage_protocol=file");
    assert_eq!(at(&admin, "3.30", "GET", &q, None).await.status, 200);
    assert_eq!(at(&admin, "3.31", "GET", &q, None).await.status, 400);
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.31: a non-admin's list filters must be configured ones (400
/// otherwise; an admin's are not checked); 3.33 reports the configuration;
/// 3.34 like filters (`name~`) for an admin, as the default configuration
/// enables none for users; each against the version below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_31_3_33_3_34_resource_filters_and_like() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    for name in ["alpha-one", "beta-two"] {
        let r = c
            .post(
                "/v3/p1/volumes",
                &json!({"volume": {"size": 1, "name": name}}),
            )
            .await;
        let id = r.body["volume"]["id"].as_str().unwrap().to_string();
        c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
            .await;
    }
    let q = "/v3/p1/volumes?colour=blue";
    assert_eq!(at(&c, "3.30", "GET", q, None).await.status, 200);
    let r = at(&c, "3.31", "GET", q, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid filters colour are found in query options."
    );
    assert_eq!(at(&admin, "3.31", "GET", q, None).await.status, 200);
    let r = at(
        &c,
        "3.31",
        "GET",
        "/v3/p1/volumes?name=alpha-one&all_tenants=1&limit=5",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        at(&c, "3.31", "GET", "/v3/p1/snapshots?colour=1", None)
            .await
            .status,
        400
    );
    assert_eq!(
        at(&c, "3.31", "GET", "/v3/p1/messages?colour=1", None)
            .await
            .status,
        400
    );

    let r = at(&c, "3.32", "GET", "/v3/p1/resource_filters", None).await;
    assert_eq!(r.status, 404);
    let r = at(
        &c,
        "3.33",
        "GET",
        "/v3/p1/resource_filters?resource=snapshot",
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"resource_filters": [{"resource": "snapshot", "filters":
            ["name", "status", "volume_id", "metadata", "availability_zone", "consumes_quota"]}]})
    );
    let r = at(&c, "3.33", "GET", "/v3/p1/resource_filters", None).await;
    assert_eq!(r.body["resource_filters"].as_array().unwrap().len(), 9);
    let r = at(
        &c,
        "3.33",
        "GET",
        "/v3/p1/resource_filters?resource=nothing",
        None,
    )
    .await;
    assert_eq!(r.body, json!({"resource_filters": []}));

    let names = |r: &Reply| -> Vec<String> {
        r.body["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    let q = "/v3/p1/volumes?name~=pha";
    assert_eq!(names(&at(&admin, "3.33", "GET", q, None).await).len(), 2);
    assert_eq!(
        names(&at(&admin, "3.34", "GET", q, None).await),
        ["alpha-one"]
    );
    // The default configuration enables no like filter for users.
    assert_eq!(at(&c, "3.34", "GET", q, None).await.status, 400);
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.39: an admin reads another project's limits with `project_id`; a
/// user's `project_id`, or an admin's at 3.38, is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_39_limits_of_another_project() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "p1");
    let c = srv.client("alice", "p1");
    let other = srv.client("bob", "p2");
    let r = other
        .post("/v3/p2/volumes", &json!({"volume": {"size": 3}}))
        .await;
    assert_eq!(r.status, 202);
    let used = |r: &Reply| r.body["limits"]["absolute"]["totalGigabytesUsed"].clone();
    let q = "/v3/p1/limits?project_id=p2";
    assert_eq!(used(&at(&admin, "3.38", "GET", q, None).await), json!(0));
    assert_eq!(used(&at(&admin, "3.39", "GET", q, None).await), json!(3));
    assert_eq!(used(&at(&c, "3.39", "GET", q, None).await), json!(0));
    drop(srv);
    assert_verified(tmp.path());
}

/// 3.32: `os-services/set-log` changes the running process's log level
/// for a target prefix and `get-log` reports it per service; at 3.31 the
/// actions do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_32_set_and_get_log_levels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let srv = Server::start_full(&data, "qcow2", &[], &[], Some(&log));
    let admin = srv.client("admin", "p1");
    // The harness starts the server at `warn`: no access lines. Raising
    // `access` to info makes the running process write them.
    let served = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("served")
    };
    assert_eq!(
        at(&admin, "3.32", "GET", "/v3/p1/volumes", None)
            .await
            .status,
        200
    );
    assert!(!served());
    let r = at(
        &admin,
        "3.32",
        "PUT",
        "/v3/p1/os-services/set-log",
        Some(json!({"level": "INFO", "prefix": "access"})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    admin
        .wait_until("/v3/p1/volumes", "access lines logged", |_| served())
        .await;
    let set = json!({"level": "debug", "prefix": "executor"});
    let r = at(
        &admin,
        "3.31",
        "PUT",
        "/v3/p1/os-services/set-log",
        Some(set.clone()),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(
        &admin,
        "3.32",
        "PUT",
        "/v3/p1/os-services/set-log",
        Some(set),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(
        &admin,
        "3.32",
        "PUT",
        "/v3/p1/os-services/get-log",
        Some(json!({"prefix": "executor"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let levels = r.body["log_levels"].as_array().unwrap();
    // The API, the scheduler and one volume service per backend.
    assert_eq!(levels.len(), 5, "{}", r.body);
    assert!(
        levels
            .iter()
            .all(|l| l["levels"] == json!({"executor": "DEBUG"})),
        "{}",
        r.body
    );
    let r = at(
        &admin,
        "3.32",
        "PUT",
        "/v3/p1/os-services/get-log",
        Some(json!({"binary": "cinder-volume", "server": "blockledger@SSD"})),
    )
    .await;
    let levels = r.body["log_levels"].as_array().unwrap();
    assert_eq!(levels.len(), 1, "{}", r.body);
    assert_eq!(levels[0]["host"], "blockledger@SSD");
    assert_eq!(levels[0]["levels"]["executor"], "DEBUG");
    // The level the server started with (the harness's RUST_LOG).
    assert!(levels[0]["levels"]["root"].is_string(), "{}", r.body);
    // Errors only, everywhere: the prefix's own level goes.
    let r = at(
        &admin,
        "3.32",
        "PUT",
        "/v3/p1/os-services/set-log",
        Some(json!({"level": "ERROR"})),
    )
    .await;
    assert_eq!(r.status, 202);
    let r = at(
        &admin,
        "3.32",
        "PUT",
        "/v3/p1/os-services/get-log",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.body["log_levels"][0]["levels"], json!({"root": "ERROR"}));
    for bad in [
        json!({"level": "loud"}),
        json!({"level": "debug", "binary": "nova"}),
        json!({"level": "debug", "colour": 1}),
    ] {
        let r = at(
            &admin,
            "3.32",
            "PUT",
            "/v3/p1/os-services/set-log",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    drop(srv);
    assert_verified(&data);
}
