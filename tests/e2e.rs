//! End to end: the real binary on a random port with a temporary data dir.
//! Row ids refer to ../shared/API.md.

mod support;

use serde_json::{json, Value};
use support::*;

const GIB: u64 = 1 << 30;

fn vol_path(s: &Server, id: &str) -> std::path::PathBuf {
    s.data_dir.join("volumes").join(id)
}

/// Issue 2's walk: create (v2 and v3) → available → file with the right
/// virtual size → extend → bigger file → other project 404 → restart →
/// still there → delete → 404 and the file gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_lifecycle_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let alice = srv.client("alice", "p1");

    let mut ids = Vec::new();
    for ver in ["v2", "v3"] {
        // CINDER-7.1.1: no zone or type (real clients omit them).
        let r = alice
            .post(
                &format!("/{ver}/p1/volumes"),
                &json!({"volume": {"size": 1, "name": format!("vol-{ver}")}}),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["volume"]["status"], "creating");
        assert_eq!(r.body["volume"]["availability_zone"], "az-dc-1");
        let id = r.body["volume"]["id"].as_str().unwrap().to_string();
        // Read-your-writes: the next GET already sees it.
        let show = alice.get(&format!("/{ver}/p1/volumes/{id}")).await;
        assert_eq!(show.status, 200);
        ids.push((ver, id));
    }
    for (ver, id) in &ids {
        alice
            .wait_status(&format!("/{ver}/p1/volumes/{id}"), "available")
            .await;
        assert_eq!(virtual_size(&vol_path(&srv, id)), GIB);
    }

    // CINDER-7.2.1: extend → extending → available, bigger file.
    let (ver, id) = ids[0].clone();
    let r = alice
        .post(
            &format!("/{ver}/p1/volumes/{id}/action"),
            &json!({"os-extend": {"new_size": 3}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = alice
        .wait_until(&format!("/{ver}/p1/volumes/{id}"), "extended", |r| {
            r.body["volume"]["status"] == "available" && r.body["volume"]["size"] == 3
        })
        .await;
    assert_eq!(r.body["volume"]["size"], 3);
    assert_eq!(virtual_size(&vol_path(&srv, &id)), 3 * GIB);

    // Another project: 404 on its own URL, 400 on ours.
    let bob = srv.client("bob", "p2");
    let r = bob.get(&format!("/v2/p2/volumes/{id}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["itemNotFound"]["code"], 404);
    assert_eq!(
        bob.delete(&format!("/v2/p2/volumes/{id}")).await.status,
        404
    );
    assert_eq!(bob.get("/v2/p1/volumes").await.status, 400);
    assert_eq!(
        bob.get("/v2/p2/volumes/detail").await.body["volumes"],
        json!([])
    );

    // Restart: everything still there.
    srv.restart();
    let alice = srv.client("alice", "p1");
    let r = alice.get(&format!("/v3/p1/volumes/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["volume"]["size"], 3);
    assert_eq!(
        alice.get("/v2/p1/volumes").await.body["volumes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // CINDER-7.1.2: delete → 404 and the file gone.
    for (ver, id) in &ids {
        let r = alice.delete(&format!("/{ver}/p1/volumes/{id}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
        alice
            .wait_until(&format!("/{ver}/p1/volumes/{id}"), "deleted", |r| {
                r.status == 404
            })
            .await;
        assert!(!vol_path(&srv, id).exists());
    }
    srv.stop();
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// EVS-6.1.1 + JOB-8.1.1: the cloudvolumes job reaches SUCCESS; extend and
/// delete jobs too (EVS-6.1.7, EVS-6.1.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudvolumes_jobs_reach_success() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v2/p1/cloudvolumes", &example("EVS-6.1.1.request.2.json"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_same_shape(&example("EVS-6.1.1.response.2.json"), &r.body, "EVS-6.1.1");
    let job_id = r.body["job_id"].as_str().unwrap().to_string();
    assert_eq!(job_id.len(), 32);
    assert!(job_id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    let job = c
        .wait_until(&format!("/v1/p1/jobs/{job_id}"), "job SUCCESS", |r| {
            r.body["status"] == "SUCCESS"
        })
        .await;
    assert_eq!(job.body["job_type"], "createVolume");
    let vid = job.body["entities"]["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = c.get(&format!("/v2/p1/volumes/{vid}")).await;
    assert_eq!(v.body["volume"]["size"], 120);
    assert_eq!(v.body["volume"]["volume_type"], "SSD");
    assert_eq!(v.body["volume"]["name"], "test_volume_1");

    let r = c
        .post(
            &format!("/v2/p1/cloudvolumes/{vid}/action"),
            &example("EVS-6.1.7.request.json"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ext = r.body["job_id"].as_str().unwrap().to_string();
    let job = c
        .wait_until(&format!("/v1/p1/jobs/{ext}"), "extend job", |r| {
            r.body["status"] != "INIT" && r.body["status"] != "RUNNING"
        })
        .await;
    assert_eq!(job.body["job_type"], "extendVolume");
    assert_eq!(job.body["status"], "SUCCESS", "{}", job.body);

    let r = c.delete(&format!("/v2/p1/cloudvolumes/{vid}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let del = r.body["job_id"].as_str().unwrap().to_string();
    let job = c
        .wait_until(&format!("/v1/p1/jobs/{del}"), "delete job", |r| {
            r.body["status"] == "SUCCESS"
        })
        .await;
    assert_eq!(job.body["job_type"], "deleteVolume");
    assert_ne!(job.body["end_time"], "");
    assert_eq!(c.get(&format!("/v2/p1/volumes/{vid}")).await.status, 404);

    // Another project cannot read the job.
    let r = srv
        .client("bob", "p2")
        .get(&format!("/v1/p2/jobs/{job_id}"))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "Common.0011");
}

/// Bad input gets the documented error, never a 500, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v2/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v2/p1/volumes/{id}"), "available")
        .await;
    let before = c.get("/v2/p1/volumes/detail").await.body;

    let unknown = "00000000-0000-4000-8000-000000000000";
    let long_name = format!(r#"{{"volume": {{"name": "{}"}}}}"#, "n".repeat(256));
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        // (method, path, body, status, cinder fault or EVS code)
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some("{not json"),
            400,
            "badRequest",
        ),
        ("POST", "/v2/p1/volumes".into(), None, 400, "badRequest"),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some("[]"),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": -1}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": 0}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": 99999999999999999999999}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": "big"}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": 1, "availability_zone": "mars"}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": 1, "volume_type": "GOLD"}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/v2/p1/volumes".into(),
            Some(r#"{"volume": {"size": 1, "metadata": {"k": null}}}"#),
            400,
            "badRequest",
        ),
        (
            "GET",
            format!("/v2/p1/volumes/{unknown}"),
            None,
            404,
            "itemNotFound",
        ),
        (
            "GET",
            "/v2/p1/volumes/not-a-uuid".into(),
            None,
            404,
            "itemNotFound",
        ),
        (
            "DELETE",
            format!("/v2/p1/volumes/{unknown}"),
            None,
            404,
            "itemNotFound",
        ),
        (
            "PUT",
            format!("/v2/p1/volumes/{unknown}"),
            Some(r#"{"volume": {"name": "x"}}"#),
            404,
            "itemNotFound",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{unknown}/action"),
            Some(r#"{"os-extend": {"new_size": 5}}"#),
            404,
            "itemNotFound",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{id}/action"),
            Some(r#"{"os-extend": {"new_size": 1}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{id}/action"),
            Some(r#"{"os-extend": {"new_size": -7}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{id}/action"),
            Some(r#"{"os-extend": {"new_size": 40000}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{id}/action"),
            Some(r#"{"os-extend": {}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{id}/action"),
            Some(r#"{"os-bogus": {}}"#),
            400,
            "badRequest",
        ),
        (
            "POST",
            format!("/v2/p1/volumes/{id}/action"),
            None,
            400,
            "badRequest",
        ),
        (
            "PUT",
            format!("/v2/p1/volumes/{id}"),
            Some(r#"{"volume": {}}"#),
            400,
            "badRequest",
        ),
        (
            "PUT",
            format!("/v2/p1/volumes/{id}"),
            Some(long_name.as_str()),
            400,
            "badRequest",
        ),
        (
            "GET",
            "/v2/p1/volumes?limit=0".into(),
            None,
            400,
            "badRequest",
        ),
        (
            "GET",
            "/v2/p1/volumes?limit=1001".into(),
            None,
            400,
            "badRequest",
        ),
        (
            "GET",
            "/v2/p1/volumes?marker=zzz".into(),
            None,
            400,
            "badRequest",
        ),
        (
            "GET",
            "/v2/p1/volumes?sort_key=colour".into(),
            None,
            400,
            "badRequest",
        ),
        (
            "GET",
            "/v2/p1/volumes?sort_dir=up".into(),
            None,
            400,
            "badRequest",
        ),
        (
            "GET",
            "/v2/p1/volumes?status=sleeping".into(),
            None,
            400,
            "badRequest",
        ),
        ("GET", "/v2/p2/volumes".into(), None, 400, "badRequest"),
        // EVS custom routes: {"error": {"message", "code"}} with A.1 codes.
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some("{"),
            400,
            "EVS.5400",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(r#"{"volume": {"size": 10}}"#),
            400,
            "EVS.2083",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": -1, "availability_zone": "az-dc-1", "volume_type": "SSD"}}"#,
            ),
            400,
            "EVS.1010",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": 10, "availability_zone": "nowhere", "volume_type": "SSD"}}"#,
            ),
            400,
            "EVS.1036",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": 10, "availability_zone": "az-dc-1", "volume_type": "SSD", "imageRef": "a", "snapshot_id": "b"}}"#,
            ),
            400,
            "EVS.1016",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": 10, "availability_zone": "az-dc-1", "volume_type": "SSD", "backup_id": "b"}}"#,
            ),
            400,
            "EVS.1006",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": 10, "availability_zone": "az-dc-1", "volume_type": "SSD", "metadata": {"color": "red"}}}"#,
            ),
            400,
            "EVS.5400",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": 10, "availability_zone": "az-dc-1", "volume_type": "SSD", "metadata": {"hw:passthrough": "maybe"}}}"#,
            ),
            400,
            "EVS.1057",
        ),
        (
            "POST",
            "/v2/p1/cloudvolumes".into(),
            Some(
                r#"{"volume": {"size": 10, "availability_zone": "az-dc-1", "volume_type": "SSD", "metadata": {"full_clone": "2"}}}"#,
            ),
            400,
            "EVS.1063",
        ),
        (
            "POST",
            format!("/v2/p1/cloudvolumes/{id}/action"),
            Some(r#"{"os-extend": {"new_size": 1}}"#),
            400,
            "EVS.1015",
        ),
        (
            "POST",
            format!("/v2/p1/cloudvolumes/{unknown}/action"),
            Some(r#"{"os-extend": {"new_size": 5}}"#),
            404,
            "EVS.5404",
        ),
        (
            "DELETE",
            format!("/v2/p1/cloudvolumes/{unknown}"),
            None,
            404,
            "EVS.5404",
        ),
        (
            "PUT",
            format!("/v2/p1/cloudvolumes/{id}"),
            Some(r#"{"volume": {}}"#),
            400,
            "EVS.1007",
        ),
        (
            "GET",
            "/v1/p1/jobs/ffffffffffffffffffffffffffffffff".into(),
            None,
            400,
            "Common.0011",
        ),
    ];
    for (method, path, body, status, code) in &cases {
        let r = c.send(method, path, *body).await;
        assert_eq!(r.status, *status, "{method} {path} {body:?}: {}", r.body);
        let got = if code.contains('.') {
            r.body["error"]["code"].clone()
        } else {
            assert_eq!(
                r.body[*code]["code"], *status as u64,
                "{method} {path}: {}",
                r.body
            );
            Value::String(code.to_string())
        };
        assert_eq!(got, *code, "{method} {path} {body:?}: {}", r.body);
        let msg = if code.contains('.') {
            &r.body["error"]["message"]
        } else {
            &r.body[*code]["message"]
        };
        assert!(
            msg.as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: no message"
        );
    }
    // Refusals axum makes itself also get a fault body.
    let r = c.send("PATCH", "/v2/p1/volumes", Some("{}")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["badMethod"]["code"], 405);
    let huge = format!(
        r#"{{"volume": {{"size": 1, "description": "{}"}}}}"#,
        "x".repeat(3 << 20)
    );
    // Its own client: the server closes a connection whose body it did not
    // read, and a pooled connection must not be reused after that.
    let once = srv.client("alice", "p1");
    let r = once.send("POST", "/v2/p1/volumes", Some(&huge)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["overLimit"]["code"], 413);
    // Nothing changed: same volumes, same fields.
    assert_eq!(c.get("/v2/p1/volumes/detail").await.body, before);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// Version discovery (VER-5.1, VER-5.2; CLIENTS.md) and microversions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_microversions() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon.get(srv.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 300);
    let root: Value = r.json().await.unwrap();
    let ids: Vec<&str> = root["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v2.0", "v3.0"]);
    let doc = example("VER-5.1.response.json");
    assert_same_shape(&doc["versions"][2], &root["versions"][1], "VER-5.1 v3.0");
    assert_eq!(root["versions"][1]["status"], "CURRENT");
    assert_eq!(root["versions"][1]["min_version"], "3.0");

    let r = anon.get(srv.url("/v3")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(loc, srv.url("/v3/"), "absolute, as keystoneauth needs");
    let r = anon.get(srv.url("/v3/p1")).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "a token-less probe gets 401, never 404"
    );
    let r = anon.get(srv.url("/v3/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v3: Value = r.json().await.unwrap();
    assert_eq!(v3["versions"].as_array().unwrap().len(), 1);
    let v2: Value = anon
        .get(srv.url("/v2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_same_shape(&example("VER-5.2.response.json"), &v2, "VER-5.2");
    insta_settings().bind(|| insta::assert_json_snapshot!("VER-5.2", v2));

    // A token-less call under /v3/{project} is a 401, never an empty 200.
    let r = anon.get(srv.url("/v3/p1/volumes")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let c = srv.client("alice", "p1");
    let r = c.get("/v3/p1/volumes").await;
    assert_eq!(r.headers["openstack-api-version"], "volume 3.0");
    assert!(r.headers["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));
    for (hdr, status) in [
        ("volume 3.0", 200),
        ("volume latest", 200),
        // Past any version Cinder has (its maximum is 3.71).
        ("volume 3.99", 406),
        ("volume 2.0", 406),
        ("volume x.y", 400),
    ] {
        let r = c
            .http
            .get(srv.url("/v3/p1/volumes"))
            .header("X-Auth-Token", "alice:p1")
            .header("OpenStack-API-Version", hdr)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{hdr}");
        if status == 406 {
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["computeFault"]["code"], 406);
        }
    }
}

/// insta snapshots of real responses against the documented examples:
/// CINDER-7.1.1 (create), 7.1.3 (update), 7.1.4 (list), 7.1.5 (detail
/// list), 7.1.6 (show), JOB-8.1.1 (job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_documented_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "5dd0b0056f3d47b6ab4121667d35621a");
    let p = "/v2/5dd0b0056f3d47b6ab4121667d35621a";
    let settings = insta_settings();

    // The documented request minus imageRef (no images yet): zone, type,
    // metadata, description as printed.
    let mut req = example("CINDER-7.1.1.request.json");
    req["volume"].as_object_mut().unwrap().remove("imageRef");
    let r = c.post(&format!("{p}/volumes"), &req).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_same_shape(
        &example("CINDER-7.1.1.response.json"),
        &r.body,
        "CINDER-7.1.1",
    );
    settings.bind(|| insta::assert_json_snapshot!("CINDER-7.1.1", r.body));
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();

    let show = c
        .wait_status(&format!("{p}/volumes/{id}"), "available")
        .await;
    assert_same_shape(
        &example("CINDER-7.1.6.response.json"),
        &show.body,
        "CINDER-7.1.6",
    );
    settings.bind(|| insta::assert_json_snapshot!("CINDER-7.1.6", show.body));

    let r = c
        .put(
            &format!("{p}/volumes/{id}"),
            &example("CINDER-7.1.3.request.json"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_same_shape(
        &example("CINDER-7.1.3.response.json"),
        &r.body,
        "CINDER-7.1.3",
    );
    assert_eq!(r.body["volume"]["name"], "test_volume");
    settings.bind(|| insta::assert_json_snapshot!("CINDER-7.1.3", r.body));

    // A second volume so that limit=1 pages and shows volumes_links.
    let r2 = c
        .post(
            &format!("{p}/volumes"),
            &json!({"volume": {"size": 1, "name": "second"}}),
        )
        .await;
    let id2 = r2.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("{p}/volumes/{id2}"), "available")
        .await;

    let list = c.get(&format!("{p}/volumes?limit=1")).await;
    assert_same_shape(
        &example("CINDER-7.1.4.response.json"),
        &list.body,
        "CINDER-7.1.4",
    );
    settings.bind(|| insta::assert_json_snapshot!("CINDER-7.1.4", list.body));
    // Newest first; the next link pages on.
    assert_eq!(list.body["volumes"][0]["id"], id2.as_str());
    let next = list.body["volumes_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let next_path = &next[next.find("/v2/").unwrap()..];
    let page2 = c.get(next_path).await;
    assert_eq!(page2.body["volumes"][0]["id"], id.as_str());
    assert!(page2.body.get("volumes_links").is_none());

    let detail = c
        .get(&format!("{p}/volumes/detail?limit=1&sort_dir=asc"))
        .await;
    assert_same_shape(
        &example("CINDER-7.1.5.response.json"),
        &detail.body,
        "CINDER-7.1.5",
    );
    assert_eq!(detail.body["volumes"][0]["id"], id.as_str());
    settings.bind(|| insta::assert_json_snapshot!("CINDER-7.1.5", detail.body));

    // JOB-8.1.1, from a cloudvolumes create.
    let j = c
        .post(
            &format!("{p}/cloudvolumes"),
            &json!({"volume": {"size": 1, "availability_zone": "az-dc-1", "volume_type": "SSD"}}),
        )
        .await;
    let job_id = j.body["job_id"].as_str().unwrap().to_string();
    let job = c
        .wait_until(
            &format!("/v1/5dd0b0056f3d47b6ab4121667d35621a/jobs/{job_id}"),
            "job",
            |r| r.body["status"] == "SUCCESS",
        )
        .await;
    assert_same_shape(
        &example("JOB-8.1.1.response.1.json"),
        &job.body,
        "JOB-8.1.1",
    );
    settings.bind(|| insta::assert_json_snapshot!("JOB-8.1.1", job.body));
}

/// Crash convergence: SIGKILL the server with creates still pending; after
/// a restart the executor resumes from its checkpoint and finishes them,
/// and `blockledger verify` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_converges_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    // Twenty volumes: more than the default quota of ten.
    let r = srv
        .client("admin", "p1")
        .put(
            "/v2/p1/os-quota-sets/p1",
            &json!({"quota_set": {"volumes": 20}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = c
            .post(
                "/v2/p1/volumes",
                &json!({"volume": {"size": 1, "name": format!("c{i}")}}),
            )
            .await;
        assert_eq!(r.status, 202);
        ids.push(r.body["volume"]["id"].as_str().unwrap().to_string());
    }
    srv.kill();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    for id in &ids {
        c.wait_status(&format!("/v2/p1/volumes/{id}"), "available")
            .await;
        assert_eq!(virtual_size(&vol_path(&srv, id)), GIB);
    }
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// `blockledger verify` names the first bad position of a tampered log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_a_changed_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post(
            "/v2/p1/volumes",
            &json!({"volume": {"size": 1, "name": "honest"}}),
        )
        .await;
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v2/p1/volumes/{id}"), "available")
        .await;
    srv.stop();
    assert!(verify(tmp.path()).0);
    let db = tmp.path().join("blockledger.db");
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute('DROP TRIGGER events_no_update'); \
             p=c.execute(\"SELECT MIN(position) FROM events WHERE data LIKE '%honest%'\").fetchone()[0]; \
             c.execute(\"UPDATE events SET data=replace(data,'honest','forged') WHERE position=?\", (p,)); \
             c.commit(); print(p)",
        )
        .arg(&db)
        .output()
        .unwrap();
    assert!(status.status.success());
    // The volume's first event (after the backends' registrations).
    let position = String::from_utf8_lossy(&status.stdout).trim().to_string();
    let (ok, out) = verify(tmp.path());
    assert!(!ok);
    assert!(out.contains(&format!("position {position}")), "{out}");
}

/// Operations: the admin audit trail shows accepted and refused requests
/// with their envelope; /metrics shows the head and the views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path());
    let c = srv.client("alice", "p1");
    let r = c
        .post("/v2/p1/volumes", &json!({"volume": {"size": 1}}))
        .await;
    let id = r.body["volume"]["id"].as_str().unwrap().to_string();
    c.wait_status(&format!("/v2/p1/volumes/{id}"), "available")
        .await;
    let r = c
        .post(
            &format!("/v2/p1/volumes/{id}/action"),
            &json!({"os-extend": {"new_size": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    // Issue 14: a member reads its own project's events, not all of them.
    assert_eq!(c.get("/v2/p1/events").await.status, 200);
    assert_eq!(c.get("/v2/p1/events?all_projects=true").await.status, 403);
    let admin = srv.client("admin", "p1");
    let all = admin.get("/v2/p1/events?limit=1000").await.body;
    let events = all["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"VolumeCreateRequested") && types.contains(&"VolumeAllocated"),
        "{types:?}"
    );
    let refused = events
        .iter()
        .find(|e| e["event_type"] == "CommandRejected")
        .expect("refusal recorded");
    assert_eq!(refused["data"]["reason"], "new_size_not_greater");
    assert_eq!(refused["metadata"]["user_id"], "alice");
    assert!(refused["metadata"]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req-"));
    assert_eq!(refused["hash"].as_str().unwrap().len(), 64);
    // The log starts with the served backends' registrations (issue 16):
    // the volume's first event is not at position 1.
    let first = admin
        .get(&format!("/v2/p1/events?stream=volume-{id}&limit=1"))
        .await
        .body["events"][0]["position"]
        .as_u64()
        .unwrap();
    let one = admin
        .get(&format!(
            "/v2/p1/events?stream=volume-{id}&after={first}&limit=1"
        ))
        .await
        .body;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["events"][0]["stream_version"], 2);
    let m = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("blockledger_volumes{status=\"available\"} 1"),
        "{m}"
    );
    assert!(m.contains("blockledger_log_head_position"));
    // Recorded by the process: each family has a sample with a non-zero
    // count, requests labelled by route template (never the raw path).
    let sample = |family: &str, labels: &[&str]| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(family) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, f64::max)
    };
    let created = sample(
        "blockledger_http_request_duration_seconds_count",
        &[
            "route=\"/v2/{project_id}/volumes\"",
            "method=\"POST\"",
            "status=\"202\"",
        ],
    );
    assert!(created >= 1.0, "{m}");
    let refused = sample(
        "blockledger_http_request_duration_seconds_count",
        &[
            "route=\"/v2/{project_id}/volumes/{volume_id}/action\"",
            "status=\"400\"",
        ],
    );
    assert!(refused >= 1.0, "{m}");
    assert!(
        !m.contains(&format!("/v2/p1/volumes/{id}")),
        "raw paths never label a series"
    );
    let steps = sample(
        "blockledger_executor_step_seconds_count",
        &["kind=\"Volume(Create)\"", "outcome=\"handled\""],
    );
    assert!(steps >= 1.0, "{m}");
    assert!(
        sample("blockledger_eventstore_batch_jobs_count", &[]) >= 1.0,
        "{m}"
    );
    assert!(
        sample("blockledger_eventstore_batch_jobs_bucket", &["le=\"1\""]) >= 1.0,
        "{m}"
    );
    assert!(m.contains("blockledger_executor_queue_depth"), "{m}");
    assert!(
        m.contains("blockledger_checkpoint_lag_events{name=\"executor\"}"),
        "{m}"
    );
    assert!(
        m.contains("blockledger_checkpoint_lag_events{name=\"projections\"} 0"),
        "{m}"
    );
}

/// A keyed POST with `Idempotency-Key`, for the idempotency test.
async fn keyed_post(srv: &Server, path: &str, key: &str, body: &Value) -> (u16, String, bool) {
    let resp = reqwest::Client::new()
        .post(srv.url(path))
        .header("X-Auth-Token", "alice:p1")
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    (status, resp.text().await.unwrap(), replayed)
}

async fn volume_count(c: &Client) -> usize {
    let r = c.get("/v3/p1/volumes").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["volumes"].as_array().unwrap().len()
}

/// A retried create with the same `Idempotency-Key` makes one volume and
/// gets the first answer back, also after a restart; the same key on a
/// different request is a 409 in the route's dialect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_makes_retries_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path());
    let alice = srv.client("alice", "p1");
    let body = json!({"volume": {"size": 1, "name": "once"}});

    let (s1, b1, r1) = keyed_post(&srv, "/v3/p1/volumes", "k-1", &body).await;
    assert_eq!(s1, 202, "{b1}");
    assert!(!r1);
    let (s2, b2, r2) = keyed_post(&srv, "/v3/p1/volumes", "k-1", &body).await;
    assert_eq!((s2, &b2), (s1, &b1));
    assert!(r2, "the second answer is a replay");
    assert_eq!(volume_count(&alice).await, 1);
    let id = serde_json::from_str::<Value>(&b1).unwrap()["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice
        .wait_status(&format!("/v3/p1/volumes/{id}"), "available")
        .await;

    // A refusal is an outcome too: replayed, not retried.
    let bad = json!({"volume": {"size": 0}});
    let (s, b, _) = keyed_post(&srv, "/v3/p1/volumes", "k-bad", &bad).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(keyed_post(&srv, "/v3/p1/volumes", "k-bad", &bad).await.1, b);

    srv.restart();
    let alice = srv.client("alice", "p1");
    let (s3, b3, r3) = keyed_post(&srv, "/v3/p1/volumes", "k-1", &body).await;
    assert_eq!((s3, &b3), (s1, &b1), "the log remembers across a restart");
    assert!(r3);
    assert_eq!(volume_count(&alice).await, 1);

    // Same key, another body: 409 with the route's fault body.
    let other = json!({"volume": {"size": 2, "name": "once"}});
    let (s4, b4, _) = keyed_post(&srv, "/v3/p1/volumes", "k-1", &other).await;
    assert_eq!(s4, 409, "{b4}");
    let b4: Value = serde_json::from_str(&b4).unwrap();
    assert_eq!(b4["conflictingRequest"]["code"], 409, "{b4}");
    let evs = json!({"volume": {"size": 1, "availability_zone": "az-dc-1", "volume_type": "SSD"}});
    let (s5, b5, _) = keyed_post(&srv, "/v2/p1/cloudvolumes", "k-1", &evs).await;
    assert_eq!(s5, 409, "{b5}");
    let b5: Value = serde_json::from_str(&b5).unwrap();
    assert_eq!(b5["error"]["code"], "EVS.5409", "{b5}");
    assert_eq!(volume_count(&alice).await, 1);

    // Keys are per project: another project's same key acts anew.
    let resp = reqwest::Client::new()
        .post(srv.url("/v3/p2/volumes"))
        .header("X-Auth-Token", "bob:p2")
        .header("Idempotency-Key", "k-1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert!(!resp.headers().contains_key("idempotent-replayed"));

    // Concurrent duplicates: one acts, the others are replays or 409s.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = srv.url("/v3/p1/volumes");
        let body = json!({"volume": {"size": 1, "name": "race"}}).to_string();
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("X-Auth-Token", "alice:p1")
                .header("Idempotency-Key", "k-race")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert!(codes.iter().all(|c| *c == 202 || *c == 409), "{codes:?}");
    assert!(codes.contains(&202), "{codes:?}");
    assert_eq!(volume_count(&alice).await, 2);
    drop(srv);
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

/// `blockledger bench --quick` (a smoke run of the bench): it starts its
/// own server, prints every row of issue 11's table beside its target, and
/// the log it leaves verifies.
#[test]
fn bench_smoke_run_prints_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blockledger"))
        .args(["bench", "--quick", "--dir"])
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "create→available→delete→gone, 1 clients",
        "create→available→delete→gone, 64 clients",
        "RSS with",
        "GET /volumes/detail?limit=1000",
        "durable POST …/metadata over",
        "paced at",
        "on one volume, 64 clients",
        "fresh vs after",
        "snapshot → available, 1 GiB",
        "snapshot → available, 1 TiB",
        "blockledger replay of",
        "cold start with",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with("| ") && l.contains(row))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{text}"));
        assert!(!line.contains("| 0.0 cycles/s"), "{line}");
    }
    assert!(
        text.contains("| blockledger verify after the bench | ok:"),
        "{text}"
    );
    assert!(
        text.contains("64 clients (64 cycles) | ") && text.contains(", 0 errors |"),
        "{text}"
    );
    // Nothing left behind in the bench's own directory.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
