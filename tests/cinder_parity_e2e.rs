//! `/v3` as upstream Cinder answers it (issue 12; DECISIONS.md, Everywhere):
//! bodies with exactly Cinder's fields, `sort=key:dir`, Cinder's paging and
//! not-found statuses, `/limits`, quota classes and quota reset, and the
//! admin information routes (`/os-services`, `/os-hosts`,
//! `/scheduler-stats/get_pools`, `/capabilities`) describing this service.
//! `/v2` keeps the Huawei seed's shapes, checked beside each change.

mod support;

use serde_json::{json, Value};
use support::*;

async fn volume(c: &Client, p: &str, body: Value) -> String {
    let r = c.post(&format!("/v3/{p}/volumes"), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v3/{p}/volumes/{id}"), "available")
        .await;
    id
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

/// `host@backend#pool`, the pattern tempest's volume schema checks.
fn is_cinder_host(h: &str) -> bool {
    matches!(h.split_once('@'), Some((a, rest)) if !a.is_empty()
        && matches!(rest.split_once('#'), Some((b, c)) if !b.is_empty() && !c.is_empty()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_bodies_carry_cinders_fields_and_v2_the_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let id = volume(&c, "p1", json!({"volume": {"size": 1, "name": "a"}})).await;

    let v3 = c.get(&format!("/v3/p1/volumes/{id}")).await.body["volume"].clone();
    assert!(v3.get("os-volume-replication:extended_status").is_none());
    assert!(is_cinder_host(
        v3["os-vol-host-attr:host"].as_str().unwrap()
    ));
    // No image: Cinder prints no `volume_image_metadata`, in show and list
    // alike, so the detail list's item equals the show body.
    assert!(v3.get("volume_image_metadata").is_none());
    let list = c.get("/v3/p1/volumes/detail").await.body;
    assert_eq!(list["volumes"][0], v3);

    let v2 = c.get(&format!("/v2/p1/volumes/{id}")).await.body["volume"].clone();
    assert!(v2.get("os-volume-replication:extended_status").is_some());
    assert_eq!(v2["os-vol-host-attr:host"], "az-dc-1#SATA", "{v2}");

    // A clone names its source.
    let clone = volume(&c, "p1", json!({"volume": {"source_volid": id}})).await;
    let cl = c.get(&format!("/v3/p1/volumes/{clone}")).await.body;
    assert_eq!(cl["volume"]["source_volid"], id.as_str());

    // Snapshot create and update bodies carry no extended attributes on
    // `/v3`; show does.
    let r = c
        .post(
            "/v3/p1/snapshots",
            &json!({"snapshot": {"volume_id": id, "name": "s"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body["snapshot"]
        .get("os-extended-snapshot-attributes:progress")
        .is_none());
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    let shown = c
        .wait_until(&format!("/v3/p1/snapshots/{snap}"), "available", |r| {
            r.body["snapshot"]["status"] == "available"
        })
        .await;
    assert!(shown.body["snapshot"]
        .get("os-extended-snapshot-attributes:project_id")
        .is_some());
    let r = c
        .put(
            &format!("/v3/p1/snapshots/{snap}"),
            &json!({"snapshot": {"name": "t"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["snapshot"]
        .get("os-extended-snapshot-attributes:progress")
        .is_none());
    // Cinder looks a missing volume_id up as `None`: 404 on /v3. Its
    // errors carry the request id under both names python-cinderclient
    // and openstacksdk read.
    let r = c.post("/v3/p1/snapshots", &json!({"snapshot": {}})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let id = r.headers["x-openstack-request-id"].to_str().unwrap();
    assert!(id.starts_with("req-"), "{id}");
    assert_eq!(r.headers["x-compute-request-id"].to_str().unwrap(), id);
    let r = c.post("/v2/p1/snapshots", &json!({"snapshot": {}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sort_page_and_filter_as_cinder() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let mut made = Vec::new();
    for name in ["b", "c", "a"] {
        let md = json!({"Type": if name == "c" { "home" } else { "work" }});
        made.push(
            volume(
                &c,
                "p1",
                json!({"volume": {"size": 1, "name": name, "metadata": md}}),
            )
            .await,
        );
    }
    let names = |v: &Value| -> Vec<String> {
        v["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = c.get("/v3/p1/volumes?sort=name:asc").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r.body), ["a", "b", "c"]);
    let r = c.get("/v3/p1/volumes?sort=name:desc,id:asc").await;
    assert_eq!(names(&r.body), ["c", "b", "a"]);
    // Keyset paging in name order.
    let r = c.get("/v3/p1/volumes?sort=name:asc&limit=2").await;
    assert_eq!(names(&r.body), ["a", "b"]);
    let next = r.body["volumes_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let path = next.split_once("/v3/").unwrap().1;
    let r = c.get(&format!("/v3/{path}")).await;
    assert_eq!(names(&r.body), ["c"]);
    for bad in ["sort=nope:asc", "sort=name:sideways", "sort_key=invalid"] {
        let r = c.get(&format!("/v3/p1/volumes?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let r = c.get(&format!("/v3/p1/snapshots?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // A full page on /v3 links to the next one, even when it is empty.
    let r = c.get("/v3/p1/volumes?limit=3").await;
    assert_eq!(ids(&r.body, "volumes").len(), 3);
    assert!(r.body["volumes_links"][0]["href"].is_string(), "{}", r.body);
    let r = c.get("/v2/p1/volumes?limit=3").await;
    assert!(r.body.get("volumes_links").is_none(), "{}", r.body);
    // limit 0 is an empty page and a huge limit is capped, on /v3; the
    // seed's /v2 refuses both.
    let r = c.get("/v3/p1/snapshots?limit=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["snapshots"], json!([]));
    assert_eq!(c.get("/v3/p1/volumes?limit=1000000").await.status, 200);
    assert_eq!(c.get("/v2/p1/volumes?limit=0").await.status, 400);
    // An unknown marker: 404 on /v3, 400 on /v2.
    let unknown = "5c6e9c34-0c5e-4b3a-9d8a-1c2f3e4d5a6b";
    let r = c.get(&format!("/v3/p1/snapshots?marker={unknown}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.get("itemNotFound").is_some());
    let r = c.get(&format!("/v3/p1/volumes?marker={unknown}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = c.get(&format!("/v2/p1/volumes?marker={unknown}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // The metadata filter as JSON and as the Python literal tempest sends.
    for f in [r#"{"Type":"work"}"#, "{'Type': 'work'}"] {
        let q: String = f
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let r = c.get(&format!("/v3/p1/volumes/detail?metadata={q}")).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        let mut got = ids(&r.body, "volumes");
        got.sort();
        let mut want = vec![made[0].clone(), made[2].clone()];
        want.sort();
        assert_eq!(got, want, "{f}");
    }
    let r = c.get("/v3/p1/volumes?metadata=%7B'Type'").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Admin narrows an all-projects list to one project.
    let bob = srv.client("bob", "p2");
    volume(&bob, "p2", json!({"volume": {"size": 1}})).await;
    let admin = srv.client("admin", "adm");
    let r = admin
        .get("/v3/adm/volumes/detail?all_tenants=1&project_id=p1")
        .await;
    let mut got = ids(&r.body, "volumes");
    got.sort();
    made.sort();
    assert_eq!(got, made);
    let r = admin.get("/v3/adm/volumes?all_tenants=1").await;
    assert_eq!(ids(&r.body, "volumes").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_quota_reset_and_quota_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "adm");
    volume(&c, "p1", json!({"volume": {"size": 2}})).await;

    let r = c.get("/v3/p1/limits").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let abs = &r.body["limits"]["absolute"];
    assert_eq!(abs["totalVolumesUsed"], 1);
    assert_eq!(abs["totalGigabytesUsed"], 2);
    assert_eq!(abs["maxTotalVolumes"], 10);
    assert_eq!(abs["maxTotalVolumeGigabytes"], 1000);
    assert_eq!(r.body["limits"]["rate"], json!([]));

    // `groups` is Cinder's; the seed's /v2 quota body has no such key.
    let q3 = c.get("/v3/p1/os-quota-sets/p1").await.body;
    assert_eq!(q3["quota_set"]["groups"], 10);
    let q2 = c.get("/v2/p1/os-quota-sets/p1").await.body;
    assert!(q2["quota_set"].get("groups").is_none());

    // The project's own limit, then DELETE: back to the defaults.
    let r = admin
        .put(
            "/v3/adm/os-quota-sets/p1",
            &json!({"quota_set": {"volumes": 3}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        c.get("/v3/p1/limits").await.body["limits"]["absolute"]["maxTotalVolumes"],
        3
    );
    assert_eq!(c.delete("/v3/p1/os-quota-sets/p1").await.status, 403);
    let r = admin.delete("/v3/adm/os-quota-sets/p1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        c.get("/v3/p1/limits").await.body["limits"]["absolute"]["maxTotalVolumes"],
        10
    );

    // The default class sets every project's defaults; a project's own
    // limit still wins.
    let r = admin.get("/v3/adm/os-quota-class-sets/default").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quota_class_set"]["id"], "default");
    assert_eq!(r.body["quota_class_set"]["volumes"], 10);
    let r = admin
        .put(
            "/v3/adm/os-quota-class-sets/default",
            &json!({"quota_class_set": {"volumes": 1, "snapshots": 7}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["quota_class_set"]["volumes"], 1);
    assert!(r.body["quota_class_set"].get("id").is_none());
    let d = c.get("/v3/p1/os-quota-sets/p1/defaults").await.body;
    assert_eq!(d["quota_set"]["volumes"], 1);
    let r = c
        .post("/v3/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    assert_eq!(r.status, 413, "the class limit binds: {}", r.body);
    let bob = srv.client("bob", "p2");
    admin
        .put(
            "/v3/adm/os-quota-sets/p2",
            &json!({"quota_set": {"volumes": 5}}),
        )
        .await;
    volume(&bob, "p2", json!({"volume": {"size": 1}})).await;
    volume(&bob, "p2", json!({"volume": {"size": 1}})).await;
    // Refusals and non-admins change nothing.
    let r = admin
        .put(
            "/v3/adm/os-quota-class-sets/default",
            &json!({"quota_class_set": {"nope": 1}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c
        .put(
            "/v3/p1/os-quota-class-sets/default",
            &json!({"quota_class_set": {"volumes": 100}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        c.get("/v3/p1/os-quota-class-sets/default").await.status,
        403
    );
    let r = admin.get("/v3/adm/os-quota-class-sets/default").await;
    assert_eq!(r.body["quota_class_set"]["volumes"], 1);
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_describe_this_service() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "adm");
    let id = volume(
        &c,
        "p1",
        json!({"volume": {"size": 3, "volume_type": "SSD"}}),
    )
    .await;
    for path in [
        "/v3/p1/os-services",
        "/v3/p1/os-hosts",
        "/v3/p1/scheduler-stats/get_pools",
    ] {
        assert_eq!(c.get(path).await.status, 403, "{path}");
    }

    let r = admin.get("/v3/adm/os-services").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let services = r.body["services"].as_array().unwrap().clone();
    assert!(services
        .iter()
        .all(|s| s["state"] == "up" && s["status"] == "enabled"));
    assert!(services.iter().any(|s| s["binary"] == "cinder-scheduler"));
    // The volume's host names a cinder-volume service.
    let host = c.get(&format!("/v3/p1/volumes/{id}")).await.body["volume"]["os-vol-host-attr:host"]
        .as_str()
        .unwrap()
        .to_string();
    let backend = host.split('#').next().unwrap();
    let short = backend.split('@').next().unwrap();
    let r = admin
        .get(&format!(
            "/v3/adm/os-services?host={short}&binary=cinder-volume"
        ))
        .await;
    let found = r.body["services"].as_array().unwrap();
    assert!(found.iter().any(|s| s["host"] == backend), "{}", r.body);
    assert!(found.iter().all(|s| s["binary"] == "cinder-volume"));
    let r = admin
        .put(
            "/v3/adm/os-services/enable",
            &json!({"host": "invalid_host", "binary": "cinder-volume"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    let r = admin.get("/v3/adm/os-hosts").await;
    assert!(r.body["hosts"].as_array().unwrap().len() >= 2, "{}", r.body);
    let r = admin.get(&format!("/v3/adm/os-hosts/{backend}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let total = &r.body["host"][0]["resource"];
    assert_eq!(total["project"], "(total)");
    assert_eq!(total["volume_count"], "1");
    assert_eq!(total["total_volume_gb"], "3");
    assert_eq!(r.body["host"][1]["resource"]["project"], "p1");
    assert_eq!(admin.get("/v3/adm/os-hosts/nowhere").await.status, 404);

    let r = admin
        .get("/v3/adm/scheduler-stats/get_pools?detail=true")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pools = r.body["pools"].as_array().unwrap();
    let pool = pools
        .iter()
        .find(|p| p["name"] == host.as_str())
        .expect("volume's pool listed");
    let caps = &pool["capabilities"];
    assert_eq!(caps["vendor_name"], "blockledger");
    assert!(caps["total_capacity_gb"].as_f64().unwrap() > 0.0, "{caps}");
    assert!(
        caps["free_capacity_gb"].as_f64().unwrap() <= caps["total_capacity_gb"].as_f64().unwrap()
    );
    let r = admin.get("/v3/adm/scheduler-stats/get_pools").await;
    assert!(r.body["pools"][0].get("capabilities").is_none());

    let r = admin.get(&format!("/v3/adm/capabilities/{backend}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume_backend_name"], caps["volume_backend_name"]);
    assert_eq!(r.body["storage_protocol"], caps["storage_protocol"]);
    assert!(r.body["namespace"]
        .as_str()
        .unwrap()
        .starts_with("OS::Storage::Capabilities::"));

    let ext = c.get("/v3/p1/extensions").await.body;
    assert!(ext["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "Hosts"));
}

/// The snapshot actions (`POST /snapshots/{id}/action`): an admin resets a
/// status and forces a delete from any status; the owner reports progress
/// from `creating` only, as Cinder allows; refusals change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_actions_reset_update_and_force_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "p1");
    let vol = volume(&c, "p1", json!({"volume": {"size": 1}})).await;
    let snap = |name: &'static str| {
        let c = &c;
        let vol = vol.clone();
        async move {
            let r = c
                .post(
                    "/v3/p1/snapshots",
                    &json!({"snapshot": {"volume_id": vol, "name": name}}),
                )
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
            let id = r.body["snapshot"]["id"].as_str().unwrap().to_string();
            c.wait_until(&format!("/v3/p1/snapshots/{id}"), "available", |r| {
                r.body["snapshot"]["status"] == "available"
            })
            .await;
            id
        }
    };
    let s = snap("s").await;
    let act = |who: &Client, id: &str, body: Value| {
        let path = format!("/v3/p1/snapshots/{id}/action");
        let who = Client {
            http: who.http.clone(),
            base: who.base.clone(),
            token: who.token.clone(),
        };
        async move { who.post(&path, &body).await }
    };
    let show = |id: &str| {
        let path = format!("/v3/p1/snapshots/{id}");
        let c = &c;
        async move { c.get(&path).await.body["snapshot"].clone() }
    };
    // Members may not reset or force; unknown actions and statuses are 400.
    let r = act(&c, &s, json!({"os-reset_status": {"status": "creating"}})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = act(&c, &s, json!({"os-force_delete": {}})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = act(&admin, &s, json!({"os-reset_status": {"status": "frozen"}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = act(&admin, &s, json!({"os-nothing": {}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Progress only from creating.
    let upd = json!({"os-update_snapshot_status": {"status": "error", "progress": "80%"}});
    let r = act(&c, &s, upd.clone()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(show(&s).await["status"], "available");
    let r = act(
        &admin,
        &s,
        json!({"os-reset_status": {"status": "creating"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(show(&s).await["status"], "creating");
    let r = act(&c, &s, upd).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let shown = show(&s).await;
    assert_eq!(shown["status"], "error");
    assert_eq!(shown["os-extended-snapshot-attributes:progress"], "80%");
    // Force delete from a status a plain delete refuses.
    let t = snap("t").await;
    act(
        &admin,
        &t,
        json!({"os-reset_status": {"status": "deleting"}}),
    )
    .await;
    assert_eq!(c.delete(&format!("/v3/p1/snapshots/{t}")).await.status, 400);
    for id in [&s, &t] {
        let r = act(&admin, id, json!({"os-force_delete": {}})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        c.wait_until(&format!("/v3/p1/snapshots/{id}"), "gone", |r| {
            r.status == 404
        })
        .await;
    }
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect()
}

/// Volume type management as events (issue 12): admin-only changes (403
/// otherwise), a private type visible and usable only to its projects, an
/// admin-created type usable in another dialect, Cinder's 404/409/400, and
/// the types surviving a restart with the log verifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_types_are_managed_by_admin_as_events() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "adm");
    let gold = json!({"volume_type": {"name": "gold", "description": "fast",
        "extra_specs": {"vendor_name": "blockledger"},
        "os-volume-type-access:is_public": false}});

    // Only admin manages types.
    let r = c.post("/v3/p1/types", &gold).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = admin.post("/v3/adm/types", &gold).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.body["volume_type"].clone();
    let gid = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["is_public"], false);
    assert_eq!(t["os-volume-type-access:is_public"], false);
    assert_eq!(t["extra_specs"], json!({"vendor_name": "blockledger"}));
    assert!(t.get("qos_specs_id").is_none(), "types_manage view: {t}");
    // The same name again is a conflict; an empty name a bad request.
    assert_eq!(admin.post("/v3/adm/types", &gold).await.status, 409);
    let empty = json!({"volume_type": {"name": ""}});
    assert_eq!(admin.post("/v3/adm/types", &empty).await.status, 400);

    // Private: alice neither sees nor uses it (404 on /v3, the seed's 400 on /v2).
    assert!(!names(&c.get("/v3/p1/types").await.body, "volume_types").contains(&"gold".into()));
    assert_eq!(c.get(&format!("/v3/p1/types/{gid}")).await.status, 404);
    let mk = json!({"volume": {"size": 1, "volume_type": gid}});
    assert_eq!(c.post("/v3/p1/volumes", &mk).await.status, 404);
    assert_eq!(c.post("/v2/p1/volumes", &mk).await.status, 400);
    // Shared with p1, it is.
    let add = json!({"addProjectAccess": {"project": "p1"}});
    let r = admin
        .post(&format!("/v3/adm/types/{gid}/action"), &add)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        admin
            .post(&format!("/v3/adm/types/{gid}/action"), &add)
            .await
            .status,
        409
    );
    let r = admin
        .get(&format!("/v3/adm/types/{gid}/os-volume-type-access"))
        .await;
    assert_eq!(
        r.body,
        json!({"volume_type_access": [{"volume_type_id": gid, "project_id": "p1"}]})
    );
    assert!(names(&c.get("/v3/p1/types").await.body, "volume_types").contains(&"gold".into()));
    let vol = volume(&c, "p1", mk.clone()).await;
    let shown = c.get(&format!("/v3/p1/volumes/{vol}")).await.body;
    assert_eq!(shown["volume"]["volume_type"], "gold");

    // In use: not deleted (a rename is: see
    // `renaming_a_type_in_use_renames_it_everywhere`).
    let r = admin.delete(&format!("/v3/adm/types/{gid}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Description and visibility change; the update view has no access flag.
    let r = admin
        .put(
            &format!("/v3/adm/types/{gid}"),
            &json!({"volume_type": {"description": "faster", "is_public": true}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume_type"]["description"], "faster");
    assert!(r.body["volume_type"]
        .get("os-volume-type-access:is_public")
        .is_none());

    // Extra specs: merge, show one, update exactly one, delete, 404s.
    let specs = format!("/v3/adm/types/{gid}/extra_specs");
    let r = admin
        .post(&specs, &json!({"extra_specs": {"a": "1", "b": "2"}}))
        .await;
    assert_eq!(r.body, json!({"extra_specs": {"a": "1", "b": "2"}}));
    let r = admin.put(&format!("{specs}/a"), &json!({"a": "3"})).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"a": "3"})));
    assert_eq!(
        admin
            .put(&format!("{specs}/a"), &json!({"b": "3"}))
            .await
            .status,
        400
    );
    assert_eq!(
        admin
            .post(&specs, &json!({"extra_specs": ["x"]}))
            .await
            .status,
        400
    );
    assert_eq!(
        admin.get(&format!("{specs}/a")).await.body,
        json!({"a": "3"})
    );
    assert_eq!(admin.delete(&format!("{specs}/a")).await.status, 202);
    assert_eq!(admin.get(&format!("{specs}/a")).await.status, 404);
    assert_eq!(
        admin.get(&specs).await.body,
        json!({"extra_specs": {"vendor_name": "blockledger", "b": "2"}})
    );
    assert_eq!(admin.delete(&format!("{specs}/a")).await.status, 404);
    let nobody = "/v3/adm/types/00000000-0000-4000-8000-000000000000";
    assert_eq!(
        admin.get(&format!("{nobody}/extra_specs")).await.status,
        404
    );
    assert_eq!(admin.delete(nobody).await.status, 404);
    assert_eq!(
        c.post(
            &specs.replace("adm", "p1"),
            &json!({"extra_specs": {"z": "1"}})
        )
        .await
        .status,
        403
    );

    // The default type: shown, and not deletable.
    let r = c.get("/v3/p1/types/default").await;
    assert_eq!(r.body["volume_type"]["name"], "SATA");
    let sata = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin.delete(&format!("/v3/adm/types/{sata}")).await.status,
        400
    );

    // A type an admin created is usable in another dialect (EVS).
    let silver = admin
        .post("/v3/adm/types", &json!({"volume_type": {"name": "silver"}}))
        .await;
    assert_eq!(silver.status, 200, "{}", silver.body);
    let r = c
        .post(
            "/v2/p1/cloudvolumes",
            &json!({"volume": {"size": 1, "name": "evs-silver",
                "availability_zone": "az-dc-1", "volume_type": "silver"}}),
        )
        .await;
    assert_eq!(r.status, 200, "EVS-6.1.1 answers a job: {}", r.body);
    let listed = c
        .wait_until(
            "/v3/p1/volumes/detail?name=evs-silver",
            "the EVS volume",
            |r| r.body["volumes"][0]["status"] == "available",
        )
        .await;
    assert_eq!(listed.body["volumes"][0]["volume_type"], "silver");
    // A deleted type is gone, and a create naming it is refused.
    let unused = admin
        .post("/v3/adm/types", &json!({"volume_type": {"name": "brief"}}))
        .await
        .body["volume_type"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        admin
            .delete(&format!("/v3/adm/types/{unused}"))
            .await
            .status,
        202
    );
    assert_eq!(
        admin.get(&format!("/v3/adm/types/{unused}")).await.status,
        404
    );
    let r = c
        .post(
            "/v3/p1/volumes",
            &json!({"volume": {"size": 1, "volume_type": "brief"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // A seed type changes like any other (its stream begins then).
    let ssd = "/v3/adm/types/6f2dee9e-82f0-4be3-ad89-bae605a3d24f";
    let r = admin
        .post(
            &format!("{ssd}/extra_specs"),
            &json!({"extra_specs": {"tier": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // After a restart: the same types, the seed's change kept, and the
    // views rebuilt from the log equal the live ones.
    let before = names(
        &admin.get("/v3/adm/types?is_public=none").await.body,
        "volume_types",
    );
    assert_eq!(before, ["SSD", "SAS", "SATA", "gold", "silver"]);
    srv.restart();
    let admin = srv.client("admin", "adm");
    let after = names(
        &admin.get("/v3/adm/types?is_public=none").await.body,
        "volume_types",
    );
    assert_eq!(before, after);
    assert_eq!(
        admin.get(&format!("{ssd}/extra_specs/tier")).await.body,
        json!({"tier": "1"})
    );
    srv.stop();
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// `os-retype` without migration (issue 12): the type changes, the host
/// (backend) does not; a type on another backend is refused; the per-type
/// quota usage moves with the volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retype_without_migration_keeps_the_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "adm");
    for n in ["t1", "t2"] {
        let r = admin
            .post("/v3/adm/types", &json!({"volume_type": {"name": n}}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let v = volume(
        &c,
        "p1",
        json!({"volume": {"size": 2, "volume_type": "t1"}}),
    )
    .await;
    let path = format!("/v3/p1/volumes/{v}");
    let before = c.get(&path).await.body["volume"].clone();
    let act = format!("{path}/action");
    let retype = |t: &str| json!({"os-retype": {"new_type": t, "migration_policy": "never"}});
    let r = c.post(&act, &retype("t2")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let after = c.get(&path).await.body["volume"].clone();
    assert_eq!(after["volume_type"], "t2");
    assert_eq!(after["status"], "available");
    assert_eq!(
        after["os-vol-host-attr:host"],
        before["os-vol-host-attr:host"]
    );
    // Admin sees Cinder's `migration_status`: none, nothing migrated.
    assert!(
        after.get("migration_status").is_none(),
        "admin only: {after}"
    );
    let as_admin = admin.get(&format!("/v3/adm/volumes/{v}")).await.body["volume"].clone();
    assert_eq!(
        as_admin.get("migration_status"),
        Some(&Value::Null),
        "{as_admin}"
    );
    // The same type again, a type on another backend, an unknown type.
    assert_eq!(c.post(&act, &retype("t2")).await.status, 400);
    let r = c.post(&act, &retype("SSD")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(c.post(&act, &retype("nope")).await.status, 404);
    // Per-type usage followed the volume.
    let q = admin.get("/v3/adm/os-quota-sets/p1?usage=true").await.body;
    assert_eq!(q["quota_set"]["volumes_t2"]["in_use"], 1, "{q}");
    assert_eq!(q["quota_set"]["gigabytes_t2"]["in_use"], 2, "{q}");
    assert_eq!(q["quota_set"]["volumes_t1"]["in_use"], 0, "{q}");

    // A snapshot keeps the type it was taken under: the volume goes back to
    // t1, yet t2 stays in use until the snapshot is gone (Cinder counts
    // snapshots too).
    let r = c
        .post("/v3/p1/snapshots", &json!({"snapshot": {"volume_id": v}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "available", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    assert_eq!(c.post(&act, &retype("t1")).await.status, 202);
    let t2 = admin.get("/v3/adm/types/t2").await.body["volume_type"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin.delete(&format!("/v3/adm/types/{t2}")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        c.delete(&format!("/v3/p1/snapshots/{snap}")).await.status,
        202
    );
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "gone", |r| {
        r.status == 404
    })
    .await;
    assert_eq!(
        admin.delete(&format!("/v3/adm/types/{t2}")).await.status,
        202
    );
}

/// Issue 12: Cinder renames a type that volumes use (they hold its id) and
/// moves its per-type quotas (`update_quota_resource`). Here volumes,
/// snapshots and quotas record the type by name, so each follows the
/// rename with an event of its own in the rename's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_type_in_use_renames_it_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "adm");
    let r = admin
        .post("/v3/adm/types", &json!({"volume_type": {"name": "t1"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tid = r.body["volume_type"]["id"].as_str().unwrap().to_string();
    let r = admin
        .put(
            "/v3/adm/os-quota-sets/p1",
            &json!({"quota_set": {"volumes_t1": 5, "gigabytes_t1": 50}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin
        .put(
            "/v3/adm/os-quota-class-sets/default",
            &json!({"quota_class_set": {"snapshots_t1": 7}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = volume(
        &c,
        "p1",
        json!({"volume": {"size": 2, "volume_type": "t1"}}),
    )
    .await;
    let r = c
        .post("/v3/p1/snapshots", &json!({"snapshot": {"volume_id": v}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait_until(&format!("/v3/p1/snapshots/{snap}"), "available", |r| {
        r.body["snapshot"]["status"] == "available"
    })
    .await;
    let before = c.get(&format!("/v3/p1/volumes/{v}")).await.body["volume"].clone();

    let r = admin
        .put(
            &format!("/v3/adm/types/{tid}"),
            &json!({"volume_type": {"name": "t9"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["volume_type"]["name"], "t9");

    // The volume shows the new name in both API versions; nothing else of
    // it changed, `updated_at` included.
    let after = c.get(&format!("/v3/p1/volumes/{v}")).await.body["volume"].clone();
    assert_eq!(after["volume_type"], "t9");
    let mut expect = before.clone();
    expect["volume_type"] = json!("t9");
    assert_eq!(after, expect);
    let v2 = c.get(&format!("/v2/p1/volumes/{v}")).await.body;
    assert_eq!(v2["volume"]["volume_type"], "t9", "{v2}");
    // Usage and limits moved to the new name's keys, for the project and
    // for the default class.
    let q = admin.get("/v3/adm/os-quota-sets/p1?usage=true").await.body;
    let qs = &q["quota_set"];
    assert_eq!(qs["volumes_t9"]["limit"], 5, "{q}");
    assert_eq!(qs["volumes_t9"]["in_use"], 1, "{q}");
    assert_eq!(qs["gigabytes_t9"]["limit"], 50, "{q}");
    assert_eq!(qs["gigabytes_t9"]["in_use"], 4, "{q}");
    assert_eq!(qs["snapshots_t9"]["limit"], 7, "{q}");
    assert_eq!(qs["snapshots_t9"]["in_use"], 1, "{q}");
    assert!(qs.get("volumes_t1").is_none(), "{q}");
    let qc = admin.get("/v3/adm/os-quota-class-sets/default").await.body;
    assert_eq!(qc["quota_class_set"]["snapshots_t9"], 7, "{qc}");
    assert!(qc["quota_class_set"].get("snapshots_t1").is_none(), "{qc}");
    // The old name is gone; the new one is the volume's own type.
    let act = format!("/v3/p1/volumes/{v}/action");
    let retype = |t: &str| json!({"os-retype": {"new_type": t, "migration_policy": "never"}});
    assert_eq!(c.post(&act, &retype("t1")).await.status, 404);
    assert_eq!(c.post(&act, &retype("t9")).await.status, 400);
    volume(
        &c,
        "p1",
        json!({"volume": {"size": 1, "volume_type": "t9"}}),
    )
    .await;
    // A rename to a taken name is refused and changes nothing.
    let r = admin
        .put(
            &format!("/v3/adm/types/{tid}"),
            &json!({"volume_type": {"name": "SSD"}}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        c.get(&format!("/v3/p1/volumes/{v}")).await.body["volume"]["volume_type"],
        "t9"
    );
    // Every view rebuilt from the log equals the live one.
    srv.stop();
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// QoS specs (issue 12): create, list, show, set and unset keys, associate
/// with types, delete refused while associated unless forced; admin only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_specs_are_managed_by_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let admin = srv.client("admin", "adm");
    let body =
        json!({"qos_specs": {"name": "fast", "consumer": "front-end", "read_iops_sec": "2000"}});
    assert_eq!(c.post("/v3/p1/qos-specs", &body).await.status, 403);
    assert_eq!(c.get("/v3/p1/qos-specs").await.status, 403);
    let r = admin.post("/v3/adm/qos-specs", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let q = r.body["qos_specs"].clone();
    let id = q["id"].as_str().unwrap().to_string();
    assert_eq!(
        q,
        json!({"id": id, "name": "fast", "consumer": "front-end", "specs": {"read_iops_sec": "2000"}})
    );
    assert_eq!(admin.post("/v3/adm/qos-specs", &body).await.status, 409);
    let bad = json!({"qos_specs": {"name": "x", "consumer": "middle"}});
    assert_eq!(admin.post("/v3/adm/qos-specs", &bad).await.status, 400);
    assert_eq!(
        admin.get("/v3/adm/qos-specs").await.body["qos_specs"],
        json!([q])
    );
    let one = format!("/v3/adm/qos-specs/{id}");
    let r = admin
        .put(&one, &json!({"qos_specs": {"iops_bytes": "500"}}))
        .await;
    assert_eq!(r.body, json!({"qos_specs": {"iops_bytes": "500"}}));
    assert_eq!(
        admin.get(&one).await.body["qos_specs"]["specs"]["iops_bytes"],
        "500"
    );
    let r = admin
        .put(
            &format!("{one}/delete_keys"),
            &json!({"keys": ["iops_bytes"]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(admin.get(&one).await.body["qos_specs"]["specs"]
        .get("iops_bytes")
        .is_none());
    // Associate with a type; the type shows it.
    let t = admin
        .post("/v3/adm/types", &json!({"volume_type": {"name": "q"}}))
        .await
        .body["volume_type"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin.get(&format!("{one}/associate?vol_type_id={t}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        admin.get(&format!("{one}/associations")).await.body,
        json!({"qos_associations": [{"association_type": "volume_type", "id": t, "name": "q"}]})
    );
    assert_eq!(
        admin.get(&format!("/v3/adm/types/{t}")).await.body["volume_type"]["qos_specs_id"],
        id.as_str()
    );
    assert_eq!(
        admin.delete(&format!("{one}?force=False")).await.status,
        400
    );
    assert_eq!(admin.delete(&format!("{one}?force=True")).await.status, 202);
    assert_eq!(admin.get(&one).await.status, 404);
    assert_eq!(
        admin.get(&format!("/v3/adm/types/{t}")).await.body["volume_type"]["qos_specs_id"],
        Value::Null
    );
}

/// Encryption types (tempest's test_volume_type_encryption_create_get_update_delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_types_create_get_update_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let admin = srv.client("admin", "adm");
    let t = admin
        .post("/v3/adm/types", &json!({"volume_type": {"name": "enc"}}))
        .await
        .body["volume_type"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let enc = format!("/v3/adm/types/{t}/encryption");
    assert_eq!(admin.get(&enc).await.body, json!({}));
    let r = admin
        .post(
            &enc,
            &json!({"encryption": {"provider": "LuksEncryptor", "key_size": 256,
                "cipher": "aes-xts-plain64", "control_location": "front-end"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let eid = r.body["encryption"]["encryption_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.body["encryption"]["volume_type_id"], t.as_str());
    let r = admin
        .put(
            &format!("{enc}/{eid}"),
            &json!({"encryption": {"key_size": 128, "control_location": "back-end"}}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"encryption": {"key_size": 128, "control_location": "back-end"}})
    );
    let shown = admin.get(&enc).await.body;
    assert_eq!(shown["provider"], "LuksEncryptor");
    assert_eq!(shown["key_size"], 128);
    assert_eq!(shown["deleted"], false);
    assert_eq!(
        admin.get(&format!("{enc}/cipher")).await.body,
        json!({"cipher": "aes-xts-plain64"})
    );
    assert_eq!(
        srv.client("alice", "p1")
            .get(&enc.replace("adm", "p1"))
            .await
            .status,
        403
    );
    assert_eq!(admin.delete(&format!("{enc}/{eid}")).await.status, 202);
    assert_eq!(admin.get(&enc).await.body, json!({}));
    let nobody = "/v3/adm/types/00000000-0000-4000-8000-000000000000/encryption";
    let r = admin
        .post(
            nobody,
            &json!({"encryption": {"provider": "p", "control_location": "front-end"}}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}
