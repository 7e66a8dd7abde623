//! Microversion negotiation (CLIENTS.md, Microversions), one negotiation
//! parameterized by service: Cinder's `volume` on `/v3` and Nova's
//! `compute` on the `/v2.1` os-volumes proxy.
//!
//! - `volume`: 3.0 up to `VOLUME.max`, each version with Cinder's exact
//!   semantics (api/openstack/rest_api_version_history.rst); the maximum
//!   is raised only once every version up to it is implemented (issue 17).
//!   Anything outside the range is 406. The negotiated version reaches the
//!   handlers as `Ctx::microversion` (a `Version` in the extensions).
//! - `compute`: the proxy behaves as microversion 2.35 (DECISIONS.md, Nova
//!   proxy): 2.1–2.35 are served (default 2.1, as Nova); from 2.36 on
//!   (`latest` included) the proxy APIs are gone, 404 as Nova answers; a
//!   version Nova never had (1.x, 3.x) is 406.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, DialectRef, Problem, Reason};

/// One service's microversions.
#[derive(Debug)]
pub struct Service {
    /// The word in `OpenStack-API-Version: <name> X.Y`.
    pub name: &'static str,
    /// The service's legacy header, asked and answered.
    pub legacy_header: &'static str,
    pub min: (u32, u32),
    pub max: (u32, u32),
    /// Served when the client asks for none.
    pub default: (u32, u32),
    /// Versions past `max` with the same major exist but no longer serve
    /// these routes: 404 instead of 406 (Nova's removed proxy APIs).
    pub gone_after_max: bool,
    /// Whose error body a refusal takes.
    pub dialect: DialectRef,
}

pub static VOLUME: Service = Service {
    name: "volume",
    legacy_header: "x-openstack-volume-api-version",
    min: (3, 0),
    // 3.1: upload-to-image takes `visibility` and `protected`;
    // 3.2: the `bootable` volume-list filter is strict.
    // a17 (issue 17): 3.3 user messages and what a17 builds above it.
    max: (3, 71),
    default: (3, 0),
    gone_after_max: false,
    dialect: DialectRef(&crate::dialects::cinder::CINDER),
};

pub static COMPUTE: Service = Service {
    name: "compute",
    legacy_header: "x-openstack-nova-api-version",
    min: (2, 1),
    max: (2, 35),
    default: (2, 1),
    gone_after_max: true,
    dialect: DialectRef(&crate::dialects::nova::NOVA),
};

pub const MIN: (u32, u32) = VOLUME.min;
pub const MAX: (u32, u32) = VOLUME.max;

/// The version a request was served at, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub (u32, u32));

/// Cinder's named versions this server implements.
pub const UPLOAD_IMAGE_PARAMS: (u32, u32) = (3, 1);
pub const VOLUME_LIST_BOOTABLE: (u32, u32) = (3, 2);

// coordinator (issue 17): the fields and filters of 3.45-3.69.
/// `with_count=true` adds `count` to volume and snapshot lists.
pub const SUPPORT_COUNT_INFO: (u32, u32) = (3, 45);
/// `shared_targets` and `service_uuid` in volume details.
pub const VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS: (u32, u32) = (3, 48);
/// `backend_state` in the os-services list.
pub const BACKEND_STATE_REPORT: (u32, u32) = (3, 49);
/// `extra_specs` filter on the volume type list.
pub const SUPPORT_VOLUME_TYPE_FILTER: (u32, u32) = (3, 52);
/// Create and update bodies validated strictly (unknown keys are 400).
pub const SUPPORT_VOLUME_SCHEMA_CHANGES: (u32, u32) = (3, 53);
/// `created_at` / `updated_at` comparison filters on volume lists.
pub const VOLUME_TIME_COMPARISON_FILTER: (u32, u32) = (3, 60);
/// `cluster_name` in an admin's volume details.
pub const VOLUME_CLUSTER_NAME: (u32, u32) = (3, 61);
/// `/default-types`: a project's own default volume type.
pub const DEFAULT_TYPE_OVERRIDES: (u32, u32) = (3, 62);
/// `volume_type_id` in volume details.
pub const VOLUME_TYPE_ID_IN_VOLUME_DETAIL: (u32, u32) = (3, 63);
/// `encryption_key_id` in the details of an encrypted volume.
pub const ENCRYPTION_KEY_ID_IN_DETAILS: (u32, u32) = (3, 64);
/// `consumes_quota` in volume and snapshot details, and as a list filter.
pub const USE_QUOTA: (u32, u32) = (3, 65);
/// Routes without the project id in the URL.
pub const SUPPORT_PROJECT_ID_OPTIONAL: (u32, u32) = (3, 67);
/// `shared_targets` may be null (tri-state).
pub const SHARED_TARGETS_TRISTATE: (u32, u32) = (3, 69);
// a17: messages and the admin/misc versions (contract17.md).
pub const MESSAGES: (u32, u32) = (3, 3);
pub const VOLUME_LIST_GLANCE_METADATA: (u32, u32) = (3, 4);
pub const MESSAGES_PAGINATION: (u32, u32) = (3, 5);
pub const CLUSTER_SUPPORT: (u32, u32) = (3, 7);
pub const VOLUME_SUMMARY: (u32, u32) = (3, 12);
pub const ETAGS: (u32, u32) = (3, 15);
pub const VOLUME_DETAIL_PROVIDER_ID: (u32, u32) = (3, 21);
pub const SNAPSHOT_LIST_METADATA_FILTER: (u32, u32) = (3, 22);
pub const VOLUME_DELETE_FORCE: (u32, u32) = (3, 23);
pub const WORKERS_CLEANUP: (u32, u32) = (3, 24);
pub const REPLICATION_CLUSTER: (u32, u32) = (3, 26);
pub const POOL_FILTER: (u32, u32) = (3, 28);
pub const SNAPSHOT_SORT: (u32, u32) = (3, 30);
pub const RESOURCE_FILTER: (u32, u32) = (3, 31);
pub const LOG_LEVEL: (u32, u32) = (3, 32);
pub const RESOURCE_FILTER_CONFIG: (u32, u32) = (3, 33);
pub const LIKE_FILTER: (u32, u32) = (3, 34);
// g17: generic volume groups (Cinder's api_version_request names).
pub const GROUP_VOLUME_FILTER: (u32, u32) = (3, 10);
pub const GROUP_TYPE: (u32, u32) = (3, 11);
pub const GROUP_VOLUME: (u32, u32) = (3, 13);
pub const GROUP_SNAPSHOTS: (u32, u32) = (3, 14);
pub const GROUP_SNAPSHOT_RESET_STATUS: (u32, u32) = (3, 19);
pub const GROUP_VOLUME_RESET_STATUS: (u32, u32) = (3, 20);
pub const GROUP_VOLUME_LIST: (u32, u32) = (3, 25);
pub const GROUP_SNAPSHOT_PAGINATION: (u32, u32) = (3, 29);
pub const GROUP_REPLICATION: (u32, u32) = (3, 38);
pub const GROUP_GROUPSNAPSHOT_PROJECT_ID: (u32, u32) = (3, 58);
// t17: attachments, revert, extend, transfers.
/// `/attachments` (create, show, list, detail, update, delete).
pub const ATTACHMENTS: (u32, u32) = (3, 27);
/// Revert a volume to its latest snapshot (`revert` action).
pub const VOLUME_REVERT: (u32, u32) = (3, 40);
/// The `os-reimage` volume action (r17 builds it for t17).
pub const REIMAGE: (u32, u32) = (3, 68);
/// Extend an `in-use` volume.
pub const EXTEND_IN_USE: (u32, u32) = (3, 42);
/// The attachment `os-complete` action.
pub const ATTACHMENT_COMPLETE: (u32, u32) = (3, 44);
/// Attachment-create takes `mode`.
pub const ATTACHMENT_MODE: (u32, u32) = (3, 54);
/// `/volume-transfers` with `no_snapshots`.
pub const TRANSFER_SNAPSHOTS: (u32, u32) = (3, 55);
/// Transfer bodies show source/destination project and `accepted`.
pub const TRANSFER_PROJECTS: (u32, u32) = (3, 57);
/// Transfer lists take pagination and sort.
pub const TRANSFER_PAGINATION: (u32, u32) = (3, 59);
/// A snapshot of an `in-use` volume needs no `force`.
pub const SNAPSHOT_IN_USE: (u32, u32) = (3, 66);
pub const POOL_TYPE_FILTER: (u32, u32) = (3, 35);
pub const VOLUME_SUMMARY_METADATA: (u32, u32) = (3, 36);
pub const LIMITS_ADMIN_FILTER: (u32, u32) = (3, 39);
pub const SNAPSHOT_LIST_USER_ID: (u32, u32) = (3, 41);

#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Version(u32, u32),
    Latest,
}

/// Reads the requested volume microversion; None when the client sent none.
pub fn requested(req_headers: &HeaderMap) -> Result<Option<Asked>, String> {
    requested_of(&VOLUME, req_headers)
}

/// Reads the microversion the client asks of `svc`; None when it sent none.
pub fn requested_of(svc: &Service, req_headers: &HeaderMap) -> Result<Option<Asked>, String> {
    let prefix = format!("{} ", svc.name);
    let raw = if let Some(v) = req_headers.get("openstack-api-version") {
        let s = v.to_str().map_err(|_| "unreadable OpenStack-API-Version")?;
        // "volume 3.0" or several services: "compute 2.1, volume 3.0".
        match s
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix(prefix.as_str()))
        {
            Some(v) => v.trim().to_string(),
            None => return Ok(None),
        }
    } else if let Some(v) = req_headers.get(svc.legacy_header) {
        v.to_str()
            .map_err(|_| format!("unreadable {}", svc.legacy_header))?
            .trim()
            .to_string()
    } else {
        return Ok(None);
    };
    if raw == "latest" {
        return Ok(Some(Asked::Latest));
    }
    let (maj, min) = raw
        .split_once('.')
        .ok_or_else(|| format!("Invalid API version format: {raw}"))?;
    let parse = |s: &str| {
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            Err(format!("Invalid API version format: {raw}"))
        } else {
            s.parse::<u32>().map_err(|e| e.to_string())
        }
    };
    Ok(Some(Asked::Version(parse(maj)?, parse(min)?)))
}

/// What to do with a request to `svc`.
#[derive(Debug, PartialEq, Eq)]
pub enum Negotiated {
    Serve((u32, u32)),
    /// The routes are gone at this version (404).
    Gone((u32, u32)),
    /// No such version (406), or an unreadable header (400).
    NotAcceptable(String),
    Malformed(String),
}

pub fn negotiate_of(svc: &Service, headers: &HeaderMap) -> Negotiated {
    match requested_of(svc, headers) {
        Err(msg) => Negotiated::Malformed(msg),
        Ok(None) => Negotiated::Serve(svc.default),
        Ok(Some(Asked::Latest)) if svc.gone_after_max => Negotiated::Gone(svc.max),
        Ok(Some(Asked::Latest)) => Negotiated::Serve(svc.max),
        Ok(Some(Asked::Version(a, b))) if (a, b) >= svc.min && (a, b) <= svc.max => {
            Negotiated::Serve((a, b))
        }
        Ok(Some(Asked::Version(a, b))) if svc.gone_after_max && a == svc.max.0 && b > svc.max.1 => {
            Negotiated::Gone((a, b))
        }
        Ok(Some(Asked::Version(a, b))) => Negotiated::NotAcceptable(format!(
            "Version {a}.{b} is not supported by the API. Minimum is {}.{} and maximum is {}.{}.",
            svc.min.0, svc.min.1, svc.max.0, svc.max.1
        )),
    }
}

/// The `/v3` (volume) negotiation.
pub async fn negotiate(req: Request, next: Next) -> Response {
    negotiate_service(&VOLUME, req, next).await
}

/// The `/v2.1` (compute) negotiation.
pub async fn negotiate_compute(req: Request, next: Next) -> Response {
    negotiate_service(&COMPUTE, req, next).await
}

pub async fn negotiate_service(svc: &'static Service, mut req: Request, next: Next) -> Response {
    let refuse = |status, reason, msg: String, v: (u32, u32)| {
        let mut resp = ApiError {
            dialect: svc.dialect,
            problem: Problem::new(status, reason, msg),
        }
        .into_response();
        stamp(svc, &mut resp, v);
        resp
    };
    match negotiate_of(svc, req.headers()) {
        Negotiated::Serve(v) => {
            req.extensions_mut().insert(Version(v));
            let mut resp = next.run(req).await;
            stamp(svc, &mut resp, v);
            resp
        }
        Negotiated::Malformed(msg) => {
            let mut resp = ApiError {
                dialect: svc.dialect,
                problem: Problem::new(StatusCode::BAD_REQUEST, Reason::MalformedUrl, msg),
            }
            .into_response();
            if svc.gone_after_max {
                stamp(svc, &mut resp, svc.default);
            }
            resp
        }
        Negotiated::Gone(v) => refuse(
            StatusCode::NOT_FOUND,
            Reason::NotFound,
            "The resource could not be found.".into(),
            v,
        ),
        Negotiated::NotAcceptable(msg) => {
            refuse(StatusCode::NOT_ACCEPTABLE, Reason::Internal, msg, svc.max)
        }
    }
}

fn stamp(svc: &Service, resp: &mut Response, v: (u32, u32)) {
    if let Ok(h) = HeaderValue::from_str(&format!("{} {}.{}", svc.name, v.0, v.1)) {
        resp.headers_mut().insert("openstack-api-version", h);
    }
    if svc.gone_after_max {
        // Nova answers its legacy header too.
        if let Ok(h) = HeaderValue::from_str(&format!("{}.{}", v.0, v.1)) {
            resp.headers_mut().insert(svc.legacy_header, h);
        }
        resp.headers_mut().insert(
            "vary",
            HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
        );
    } else {
        resp.headers_mut()
            .insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, v: &'static str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_static(v));
        m
    }

    #[test]
    fn compute_serves_up_to_2_35() {
        let n = |name, v| negotiate_of(&COMPUTE, &h(name, v));
        assert_eq!(
            negotiate_of(&COMPUTE, &HeaderMap::new()),
            Negotiated::Serve((2, 1))
        );
        assert_eq!(
            n("openstack-api-version", "compute 2.35"),
            Negotiated::Serve((2, 35))
        );
        assert_eq!(
            n("x-openstack-nova-api-version", "2.10"),
            Negotiated::Serve((2, 10))
        );
        assert_eq!(
            n("openstack-api-version", "compute 2.36"),
            Negotiated::Gone((2, 36))
        );
        assert_eq!(
            n("x-openstack-nova-api-version", "latest"),
            Negotiated::Gone((2, 35))
        );
        assert!(matches!(
            n("openstack-api-version", "compute 3.0"),
            Negotiated::NotAcceptable(_)
        ));
        assert!(matches!(
            n("openstack-api-version", "compute 2.x"),
            Negotiated::Malformed(_)
        ));
        // Another service's version is not ours.
        assert_eq!(
            n("openstack-api-version", "volume 3.70"),
            Negotiated::Serve((2, 1))
        );
    }

    #[test]
    fn volume_serves_3_0_to_max() {
        let n = |v| negotiate_of(&VOLUME, &h("openstack-api-version", v));
        assert_eq!(n("volume 3.0"), Negotiated::Serve((3, 0)));
        assert_eq!(n("volume 3.1"), Negotiated::Serve((3, 1)));
        assert_eq!(n("volume latest"), Negotiated::Serve(VOLUME.max));
        let past = format!("volume {}.{}", VOLUME.max.0, VOLUME.max.1 + 1);
        let past = negotiate_of(
            &VOLUME,
            &HeaderMap::from_iter([(
                axum::http::HeaderName::from_static("openstack-api-version"),
                HeaderValue::from_str(&past).unwrap(),
            )]),
        );
        assert!(matches!(past, Negotiated::NotAcceptable(_)));
        assert!(matches!(n("volume 2.0"), Negotiated::NotAcceptable(_)));
    }
}
