//! Generic volume groups (issue 17, helper g17): each microversion g17
//! owns, requested at the version and one below, bodies checked exactly
//! against Cinder's views (`cinder/api/v3/views/groups.py`,
//! `group_snapshots.py`, `group_types.py`); every test ends with
//! `verify` (the log replayed equals the live views).
mod support;

use serde_json::{json, Value};
use support::*;

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

/// Polls `path` at microversion `v` until `pred` holds, or panics at the
/// deadline.
async fn wait_at(c: &Client, v: &str, path: &str, pred: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let r = at(c, v, "GET", path, None).await;
        if pred(&r) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path}: not reached by the deadline; last reply {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A group type (by admin) and the id of a volume type members may use.
async fn group_type(admin: &Client, name: &str) -> (String, String) {
    let r = at(
        admin,
        "3.11",
        "POST",
        "/v3/padmin/group_types",
        Some(json!({"group_type": {"name": name}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let gt = r.body["group_type"]["id"].as_str().unwrap().to_string();
    let types = admin.get("/v3/padmin/types").await.body;
    let vt = types["volume_types"][0]["id"].as_str().unwrap().to_string();
    (gt, vt)
}

async fn new_group(c: &Client, v: &str, gt: &str, vt: &str, name: &str) -> String {
    let r = at(
        c,
        v,
        "POST",
        "/v3/p1/groups",
        Some(json!({"group": {"name": name, "group_type": gt, "volume_types": [vt]}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["group"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body, json!({"group": {"id": id, "name": name}}));
    id
}

async fn volume_in(c: &Client, v: &str, vt: &str, group: &str) -> String {
    let r = at(
        c,
        v,
        "POST",
        "/v3/p1/volumes",
        Some(json!({"volume": {"size": 1, "volume_type": vt, "group_id": group}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;
    id
}

fn ids(r: &Reply, key: &str) -> Vec<String> {
    let mut v: Vec<String> = r.body[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {}", r.body))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// 3.13: groups (create, show, list, update add/remove, delete with
/// delete-volumes) and `group_id` in volume bodies; 3.10: the `group_id`
/// volume-list filter. One below each: no route / no field / no filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_13_groups_and_v3_10_group_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "padmin");
    let c = srv.client("alice", "p1");
    let (gt, vt) = group_type(&admin, "gt").await;
    let body = json!({"group": {"name": "g1", "group_type": gt, "volume_types": [vt]}});
    let r = at(&c, "3.12", "POST", "/v3/p1/groups", Some(body)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let g1 = new_group(&c, "3.13", &gt, &vt, "g1").await;
    let g2 = new_group(&c, "3.13", &gt, &vt, "g2").await;
    // A type the group does not take is refused; so is no type.
    let other = admin.get("/v3/padmin/types").await.body["volume_types"][1]["id"].clone();
    let r = at(
        &c,
        "3.13",
        "POST",
        "/v3/p1/volumes",
        Some(json!({"volume": {"size": 1, "volume_type": other, "group_id": g1}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.13",
        "POST",
        "/v3/p1/volumes",
        Some(json!({"volume": {"size": 1, "group_id": g1}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let v1 = volume_in(&c, "3.13", &vt, &g1).await;
    let v2 = volume_in(&c, "3.13", &vt, &g1).await;
    // 3.12 ignores `group_id` and shows none.
    let r = at(
        &c,
        "3.12",
        "POST",
        "/v3/p1/volumes",
        Some(json!({"volume": {"size": 1, "volume_type": vt, "group_id": g2}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body["volume"].get("group_id").is_none(), "{}", r.body);
    let loose = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/p1/volumes/{loose}"), "available")
        .await;
    let r = at(&c, "3.13", "GET", &format!("/v3/p1/volumes/{v1}"), None).await;
    assert_eq!(r.body["volume"]["group_id"], g1.as_str());
    let r = at(&c, "3.13", "GET", &format!("/v3/p1/volumes/{loose}"), None).await;
    assert_eq!(r.body["volume"]["group_id"], Value::Null);
    // 3.10 filters on group_id; 3.9 does not.
    let r = at(
        &c,
        "3.10",
        "GET",
        &format!("/v3/p1/volumes?group_id={g1}"),
        None,
    )
    .await;
    let mut want = vec![v1.clone(), v2.clone()];
    want.sort();
    assert_eq!(ids(&r, "volumes"), want);
    let r = at(
        &c,
        "3.9",
        "GET",
        &format!("/v3/p1/volumes?group_id={g1}"),
        None,
    )
    .await;
    assert_eq!(ids(&r, "volumes").len(), 3);
    // Show at 3.13: Cinder's detail view, exactly.
    let r = at(&c, "3.13", "GET", &format!("/v3/p1/groups/{g1}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = &r.body["group"];
    let zone = at(&c, "3.13", "GET", &format!("/v3/p1/volumes/{v1}"), None)
        .await
        .body["volume"]["availability_zone"]
        .clone();
    assert_eq!(
        r.body,
        json!({"group": {"id": g1, "status": "available", "availability_zone": zone,
            "created_at": g["created_at"], "name": "g1", "description": null,
            "group_type": gt, "volume_types": [vt]}})
    );
    // Lists: summary and detail; another project sees none of them.
    let r = at(&c, "3.13", "GET", "/v3/p1/groups", None).await;
    assert_eq!(
        r.body["groups"][0].as_object().unwrap().len(),
        2,
        "{}",
        r.body
    );
    let mut both = vec![g1.clone(), g2.clone()];
    both.sort();
    assert_eq!(ids(&r, "groups"), both);
    let r = at(&c, "3.13", "GET", "/v3/p1/groups/detail?name=g2", None).await;
    assert_eq!(ids(&r, "groups"), vec![g2.clone()]);
    let bob = srv.client("bob", "p2");
    let r = at(&bob, "3.13", "GET", &format!("/v3/p2/groups/{g1}"), None).await;
    assert_eq!(r.status, 404);
    // Update: remove v2, rename; add a volume of another group: 400.
    let r = at(
        &c,
        "3.13",
        "PUT",
        &format!("/v3/p1/groups/{g1}"),
        Some(json!({"group": {"name": "g1b", "description": "d", "remove_volumes": v2}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(
        &c,
        "3.10",
        "GET",
        &format!("/v3/p1/volumes?group_id={g1}"),
        None,
    )
    .await;
    assert_eq!(ids(&r, "volumes"), vec![v1.clone()]);
    let r = at(
        &c,
        "3.13",
        "PUT",
        &format!("/v3/p1/groups/{g2}"),
        Some(json!({"group": {"add_volumes": v1}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.13",
        "PUT",
        &format!("/v3/p1/groups/{g1}"),
        Some(json!({"group": {"add_volumes": format!("{v2},{loose}")}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(
        &c,
        "3.10",
        "GET",
        &format!("/v3/p1/volumes?group_id={g1}"),
        None,
    )
    .await;
    let mut three = vec![v1.clone(), v2.clone(), loose.clone()];
    three.sort();
    assert_eq!(ids(&r, "volumes"), three);
    // A member is not retyped.
    let r = at(
        &c,
        "3.13",
        "POST",
        &format!("/v3/p1/volumes/{v1}/action"),
        Some(json!({"os-retype": {"new_type": other}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A member is deleted with its group only.
    let r = at(&c, "3.13", "DELETE", &format!("/v3/p1/volumes/{v1}"), None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let del = |dv: bool| json!({"delete": {"delete-volumes": dv}});
    let r = at(
        &c,
        "3.13",
        "POST",
        &format!("/v3/p1/groups/{g1}/action"),
        Some(del(false)),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.13",
        "POST",
        &format!("/v3/p1/groups/{g1}/action"),
        Some(del(true)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(
        &c,
        "3.13",
        "POST",
        &format!("/v3/p1/groups/{g2}/action"),
        Some(del(false)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    for v in [&v1, &v2, &loose] {
        c.wait_until(&format!("/v3/p1/volumes/{v}"), "volume gone", |r| {
            r.status == 404
        })
        .await;
    }
    let r = at(&c, "3.13", "GET", "/v3/p1/groups/detail", None).await;
    assert_eq!(r.body, json!({"groups": []}));
    // A volume type a group lists is in use (Cinder's volume_type_destroy).
    let r = admin
        .post("/v3/padmin/types", &json!({"volume_type": {"name": "gvt"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let gvt = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    let g3 = new_group(&c, "3.13", &gt, &gvt, "g3").await;
    let r = admin.delete(&format!("/v3/padmin/types/{gvt}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &admin,
        "3.11",
        "DELETE",
        &format!("/v3/padmin/group_types/{gt}"),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(
        &c,
        "3.13",
        "POST",
        &format!("/v3/p1/groups/{g3}/action"),
        Some(del(false)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = admin.delete(&format!("/v3/padmin/types/{gvt}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // The group type is free again.
    let r = at(
        &admin,
        "3.11",
        "DELETE",
        &format!("/v3/padmin/group_types/{gt}"),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    drop(srv);
    verified(&tmp);
}

/// 3.14: group snapshots (the set of member snapshots with the group
/// snapshot, in one transaction), create-from-src from a group snapshot
/// and from a group, and the `group_snapshot_id`/`source_group_id` group
/// fields; 3.13 has none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_14_group_snapshots_and_create_from_source() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "padmin");
    let c = srv.client("alice", "p1");
    let (gt, vt) = group_type(&admin, "gt").await;
    let g = new_group(&c, "3.13", &gt, &vt, "g").await;
    let v1 = volume_in(&c, "3.13", &vt, &g).await;
    let v2 = volume_in(&c, "3.13", &vt, &g).await;
    let body = json!({"group_snapshot": {"group_id": g, "name": "gs"}});
    let r = at(
        &c,
        "3.13",
        "POST",
        "/v3/p1/group_snapshots",
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(&c, "3.14", "POST", "/v3/p1/group_snapshots", Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let gs = r.body["group_snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body,
        json!({"group_snapshot": {"id": gs, "name": "gs", "group_type_id": gt}})
    );
    let path = format!("/v3/p1/group_snapshots/{gs}");
    let r = wait_at(&c, "3.14", &path, |r| {
        r.body["group_snapshot"]["status"] == "available"
    })
    .await;
    let created = r.body["group_snapshot"]["created_at"].clone();
    assert_eq!(
        r.body,
        json!({"group_snapshot": {"id": gs, "group_id": g, "group_type_id": gt,
            "status": "available", "created_at": created, "name": "gs", "description": null}})
    );
    // The set is one transaction of the log: the group snapshot and its
    // member snapshots are adjacent positions of one request, and the
    // project sees them in its audit trail.
    let ev = c.get("/v3/p1/events?limit=1000").await;
    assert_eq!(ev.status, 200, "{}", ev.body);
    let events = ev.body["events"].as_array().unwrap();
    let set = events
        .iter()
        .find(|e| e["event_type"] == "GroupSnapshotCreated")
        .unwrap_or_else(|| panic!("no GroupSnapshotCreated in {}", ev.body));
    let request = set["how"]["request_id"].clone();
    let mut positions: Vec<i64> = events
        .iter()
        .filter(|e| e["how"]["request_id"] == request)
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    positions.sort();
    let kinds = events
        .iter()
        .filter(|e| {
            e["how"]["request_id"] == request && e["event_type"] == "SnapshotCreateRequested"
        })
        .count();
    assert_eq!(kinds, 2);
    assert_eq!(positions.len(), 3, "{positions:?}");
    assert_eq!(positions[2] - positions[0], 2, "{positions:?}");
    // One snapshot of each member, named as the set.
    let snaps = c.get("/v3/p1/snapshots/detail").await.body;
    let members: Vec<&Value> = snaps["snapshots"].as_array().unwrap().iter().collect();
    let mut of: Vec<String> = members
        .iter()
        .map(|s| s["volume_id"].as_str().unwrap().to_string())
        .collect();
    of.sort();
    let mut want = vec![v1.clone(), v2.clone()];
    want.sort();
    assert_eq!(of, want);
    assert!(members
        .iter()
        .all(|s| s["name"] == "gs" && s["status"] == "available"));
    // A member snapshot goes with its set only.
    let sid = members[0]["id"].as_str().unwrap().to_string();
    let r = c.delete(&format!("/v3/p1/snapshots/{sid}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&c, "3.14", "GET", "/v3/p1/group_snapshots", None).await;
    assert_eq!(
        r.body,
        json!({"group_snapshots": [{"id": gs, "name": "gs"}]})
    );
    // From the group snapshot, and from the group.
    for (name, src) in [
        ("from-gs", json!({"group_snapshot_id": gs})),
        ("from-g", json!({"source_group_id": g})),
    ] {
        let mut b = src.clone();
        b["name"] = json!(name);
        let r = at(
            &c,
            "3.13",
            "POST",
            "/v3/p1/groups/action",
            Some(json!({"create-from-src": b.clone()})),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.body);
        let r = at(
            &c,
            "3.14",
            "POST",
            "/v3/p1/groups/action",
            Some(json!({"create-from-src": b})),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let n = r.body["group"]["id"].as_str().unwrap().to_string();
        assert_eq!(r.body, json!({"group": {"id": n, "name": name}}));
        let gp = format!("/v3/p1/groups/{n}");
        let r = wait_at(&c, "3.14", &gp, |r| {
            r.body["group"]["status"] == "available"
        })
        .await;
        assert_eq!(r.body["group"]["group_type"], gt.as_str());
        assert_eq!(r.body["group"]["volume_types"], json!([vt]));
        assert_eq!(
            r.body["group"]["group_snapshot_id"],
            src.get("group_snapshot_id").cloned().unwrap_or(Value::Null)
        );
        assert_eq!(
            r.body["group"]["source_group_id"],
            src.get("source_group_id").cloned().unwrap_or(Value::Null)
        );
        let r13 = at(&c, "3.13", "GET", &gp, None).await;
        assert!(r13.body["group"].get("group_snapshot_id").is_none());
        let r = at(
            &c,
            "3.10",
            "GET",
            &format!("/v3/p1/volumes/detail?group_id={n}"),
            None,
        )
        .await;
        let vols = r.body["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2, "{}", r.body);
        assert!(vols.iter().all(|v| v["status"] == "available"));
        let r = at(
            &c,
            "3.14",
            "POST",
            &format!("{gp}/action"),
            Some(json!({"delete": {"delete-volumes": true}})),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // The group with a group snapshot cannot go; the set can.
    let r = at(
        &c,
        "3.14",
        "POST",
        &format!("/v3/p1/groups/{g}/action"),
        Some(json!({"delete": {"delete-volumes": true}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = at(&c, "3.14", "DELETE", &path, None).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = at(&c, "3.14", "GET", &path, None).await;
    assert_eq!(r.status, 404);
    c.wait_until("/v3/p1/snapshots", "member snapshots gone", |r| {
        r.body["snapshots"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    let r = at(
        &c,
        "3.14",
        "POST",
        &format!("/v3/p1/groups/{g}/action"),
        Some(json!({"delete": {"delete-volumes": true}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_until(&format!("/v3/p1/volumes/{v1}"), "gone", |r| r.status == 404)
        .await;
    drop(srv);
    verified(&tmp);
}

/// 3.19 group snapshot reset_status and 3.20 group reset_status (admin;
/// one below: no such action), and the `groups` quota (413 past it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_19_v3_20_reset_status_and_groups_quota() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "padmin");
    let c = srv.client("alice", "p1");
    let (gt, vt) = group_type(&admin, "gt").await;
    let g = new_group(&c, "3.13", &gt, &vt, "g").await;
    volume_in(&c, "3.13", &vt, &g).await;
    let r = at(
        &c,
        "3.14",
        "POST",
        "/v3/p1/group_snapshots",
        Some(json!({"group_snapshot": {"group_id": g}})),
    )
    .await;
    let gs = r.body["group_snapshot"]["id"].as_str().unwrap().to_string();
    let gsp = format!("/v3/p1/group_snapshots/{gs}");
    wait_at(&c, "3.14", &gsp, |r| {
        r.body["group_snapshot"]["status"] == "available"
    })
    .await;
    let reset = |s: &str| json!({"reset_status": {"status": s}});
    // Group: 3.19 has no reset, 3.20 has; a member may not.
    let ga = format!("/v3/padmin/groups/{g}/action");
    let r = at(&admin, "3.19", "POST", &ga, Some(reset("error"))).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = at(
        &c,
        "3.20",
        "POST",
        &format!("/v3/p1/groups/{g}/action"),
        Some(reset("error")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = at(&admin, "3.20", "POST", &ga, Some(reset("bogus"))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    for s in ["creating", "available", "error"] {
        let r = at(&admin, "3.20", "POST", &ga, Some(reset(s))).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let r = at(&c, "3.20", "GET", &format!("/v3/p1/groups/{g}"), None).await;
        assert_eq!(r.body["group"]["status"], s);
    }
    // Group snapshot: 3.18 none, 3.19 yes.
    let gsa = format!("/v3/padmin/group_snapshots/{gs}/action");
    let r = at(&admin, "3.18", "POST", &gsa, Some(reset("error"))).await;
    assert_eq!(r.status, 404, "{}", r.body);
    for s in ["creating", "error", "available"] {
        let r = at(&admin, "3.19", "POST", &gsa, Some(reset(s))).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let r = at(&c, "3.19", "GET", &gsp, None).await;
        assert_eq!(r.body["group_snapshot"]["status"], s);
    }
    // `groups` quota: one more group than the limit is 413.
    let r = admin
        .put(
            "/v3/padmin/os-quota-sets/p1",
            &json!({"quota_set": {"groups": 2}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    new_group(&c, "3.13", &gt, &vt, "second").await;
    let r = at(
        &c,
        "3.13",
        "POST",
        "/v3/p1/groups",
        Some(json!({"group": {"name": "third", "group_type": gt, "volume_types": [vt]}})),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = admin.get("/v3/padmin/os-quota-sets/p1?usage=true").await;
    assert_eq!(r.body["quota_set"]["groups"]["in_use"], 2, "{}", r.body);
    assert_eq!(r.body["quota_set"]["groups"]["limit"], 2, "{}", r.body);
    drop(srv);
    verified(&tmp);
}

/// 3.25 `volumes` (with `list_volume`), 3.29 group snapshot list filters,
/// sort and pages, 3.38 `replication_status` and the replication actions
/// (refused: the type is not a replication type), 3.58 `project_id` (admin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_25_v3_29_v3_38_v3_58_group_fields_and_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "padmin");
    let c = srv.client("alice", "p1");
    let (gt, vt) = group_type(&admin, "gt").await;
    let g = new_group(&c, "3.13", &gt, &vt, "g").await;
    let v = volume_in(&c, "3.13", &vt, &g).await;
    let gp = format!("/v3/p1/groups/{g}?list_volume=true");
    let r = at(&c, "3.24", "GET", &gp, None).await;
    assert!(r.body["group"].get("volumes").is_none(), "{}", r.body);
    let r = at(&c, "3.25", "GET", &gp, None).await;
    assert_eq!(r.body["group"]["volumes"], json!([v]));
    let r = at(&c, "3.25", "GET", &format!("/v3/p1/groups/{g}"), None).await;
    assert!(r.body["group"].get("volumes").is_none(), "{}", r.body);
    let r = at(
        &c,
        "3.25",
        "GET",
        "/v3/p1/groups/detail?list_volume=true",
        None,
    )
    .await;
    assert_eq!(r.body["groups"][0]["volumes"], json!([v]));
    // 3.38.
    let r = at(&c, "3.37", "GET", &format!("/v3/p1/groups/{g}"), None).await;
    assert!(r.body["group"].get("replication_status").is_none());
    let r = at(&c, "3.38", "GET", &format!("/v3/p1/groups/{g}"), None).await;
    assert_eq!(r.body["group"]["replication_status"], "disabled");
    let act = format!("/v3/p1/groups/{g}/action");
    let r = at(
        &c,
        "3.37",
        "POST",
        &act,
        Some(json!({"enable_replication": {}})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    for a in [
        "enable_replication",
        "disable_replication",
        "failover_replication",
        "list_replication_targets",
    ] {
        let r = at(&c, "3.38", "POST", &act, Some(json!({a: {}}))).await;
        assert_eq!(r.status, 400, "{a}: {}", r.body);
        assert!(
            r.body
                .to_string()
                .contains("is not a replication group type"),
            "{}",
            r.body
        );
    }
    // 3.58: admin sees project_id; a member does not; 3.57 nobody.
    let ap = format!("/v3/padmin/groups/{g}");
    let r = at(&admin, "3.57", "GET", &ap, None).await;
    assert!(r.body["group"].get("project_id").is_none());
    let r = at(&admin, "3.58", "GET", &ap, None).await;
    assert_eq!(r.body["group"]["project_id"], "p1");
    let r = at(&c, "3.58", "GET", &format!("/v3/p1/groups/{g}"), None).await;
    assert!(r.body["group"].get("project_id").is_none());
    // Three group snapshots, named b, a, c.
    let mut made = Vec::new();
    for name in ["b", "a", "c"] {
        let r = at(
            &c,
            "3.14",
            "POST",
            "/v3/p1/group_snapshots",
            Some(json!({"group_snapshot": {"group_id": g, "name": name}})),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["group_snapshot"]["id"].as_str().unwrap().to_string();
        wait_at(&c, "3.14", &format!("/v3/p1/group_snapshots/{id}"), |r| {
            r.body["group_snapshot"]["status"] == "available"
        })
        .await;
        made.push(id);
    }
    let r = at(
        &admin,
        "3.58",
        "GET",
        &format!("/v3/padmin/group_snapshots/{}", made[0]),
        None,
    )
    .await;
    assert_eq!(r.body["group_snapshot"]["project_id"], "p1");
    let r = at(
        &admin,
        "3.57",
        "GET",
        &format!("/v3/padmin/group_snapshots/{}", made[0]),
        None,
    )
    .await;
    assert!(r.body["group_snapshot"].get("project_id").is_none());
    let names = |r: &Reply| -> Vec<String> {
        r.body["group_snapshots"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let q = "/v3/p1/group_snapshots/detail?sort=name:asc&limit=2";
    // 3.28: no order, no page, no filter (newest first, all three).
    let r = at(&c, "3.28", "GET", q, None).await;
    assert_eq!(names(&r), ["c", "a", "b"]);
    let r = at(&c, "3.29", "GET", q, None).await;
    assert_eq!(names(&r), ["a", "b"]);
    // A full page links to the next, from its last row.
    let next = r.body["group_snapshot_links"][0]["href"].as_str().unwrap();
    assert!(next.contains(&format!("marker={}", made[0])), "{next}");
    assert_eq!(r.body["group_snapshot_links"][0]["rel"], "next");
    let r = at(&c, "3.29", "GET", &format!("{q}&marker={}", made[0]), None).await;
    assert_eq!(names(&r), ["c"]);
    let r = at(
        &c,
        "3.29",
        "GET",
        "/v3/p1/group_snapshots/detail?name=c",
        None,
    )
    .await;
    assert_eq!(names(&r), ["c"]);
    let r = at(
        &c,
        "3.28",
        "GET",
        "/v3/p1/group_snapshots/detail?name=c",
        None,
    )
    .await;
    assert_eq!(names(&r).len(), 3);
    let r = at(&c, "3.29", "GET", "/v3/p1/group_snapshots?sort=bogus", None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    drop(srv);
    verified(&tmp);
}
