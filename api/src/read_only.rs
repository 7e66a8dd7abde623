//! `serve --read-only` (issue 14): the log as of an instant (a copy made by
//! `blockledger replay --as-of`) served through every dialect's read
//! routes, every write refused with 403 in the dialect's own error body.
//!
//! One layer around the whole router rather than a check per route: a new
//! write route is refused without anyone remembering to. It runs before
//! routing, so the dialect cannot come from the matched route (`serve`
//! tags it there); it comes from the path's prefix instead, as for a path
//! no route matches (`dialects::for_unrouted`), plus the prefixes of the
//! dialects whose paths are not ambiguous with Cinder's (images,
//! identity, the Chinese cloud's zones).
//!
//! A write is any method but GET, HEAD and OPTIONS, except for the token
//! routes of the built-in identity (people must log in to read, and a
//! token lives beside the log, never in it), and, on the small provider's
//! action URL (`/api/volume/{action}`, GET and POST alike), any action but
//! its reads. The store itself refuses appends too (`eventstore::asof::
//! freeze`): this layer is what callers see, the trigger what holds.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::dialects::{self, DialectRef};
use crate::Problem;

/// The small provider's actions that only read.
const LUNA_READS: &[&str] = &["list", "info"];

/// The position the served copy ends at (its head when serving began).
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly {
    pub position: u64,
}

impl ReadOnly {
    /// `router` with every write refused.
    pub fn apply(self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| guard(self, req, next),
        ))
    }

    pub fn message(&self) -> String {
        format!(
            "this server is read-only: it serves the log as of position {}; \
             writes go to the live server",
            self.position
        )
    }
}

async fn guard(ro: ReadOnly, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !is_write(req.method(), path) {
        return next.run(req).await;
    }
    let dialect = dialect_of(path);
    dialect.0.render_error(&Problem::forbidden(ro.message()))
}

/// Whether a request would change anything (see the module's comment).
pub fn is_write(method: &Method, path: &str) -> bool {
    if path.starts_with("/identity/v3/auth/tokens") {
        return false;
    }
    if let Some(action) = path.strip_prefix("/api/volume/") {
        return !LUNA_READS.contains(&action.trim_end_matches('/'));
    }
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The dialect whose error body a caller of `path` expects.
pub fn dialect_of(path: &str) -> DialectRef {
    if path == "/identity" || path.starts_with("/identity/") {
        DialectRef(&crate::identity::keystone::KEYSTONE)
    } else if path == "/image" || path.starts_with("/image/") {
        DialectRef(&dialects::glance::GLANCE)
    } else if path.starts_with("/v2/zone/") {
        DialectRef(&dialects::idc::IDC)
    } else {
        dialects::for_unrouted(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::Dialect;

    #[test]
    fn writes_are_told_by_method_and_by_the_small_providers_action() {
        let w = |m: Method, p: &str| is_write(&m, p);
        assert!(!w(Method::GET, "/v3/p/volumes/detail"));
        assert!(!w(Method::HEAD, "/v3/p/volumes"));
        assert!(w(Method::POST, "/v3/p/volumes"));
        assert!(w(Method::PUT, "/v3/p/volumes/x"));
        assert!(w(Method::DELETE, "/v2/p/snapshots/x"));
        assert!(w(Method::PATCH, "/image/v2/images/x"));
        assert!(!w(Method::POST, "/identity/v3/auth/tokens"));
        assert!(!w(Method::POST, "/api/volume/list"));
        assert!(!w(Method::GET, "/api/volume/info"));
        assert!(w(Method::GET, "/api/volume/delete"));
        assert!(w(Method::GET, "/api/volume/whatever"));
    }

    #[test]
    fn the_dialect_comes_from_the_path() {
        let name = |p: &str| dialect_of(p).name();
        assert_eq!(
            name("/v3/p/volumes"),
            crate::dialects::cinder::CINDER.name()
        );
        assert_eq!(
            name("/zstack/v1/volumes"),
            crate::dialects::zstack::ZSTACK.name()
        );
        assert_eq!(name("/v2/p/cloudvolumes"), crate::dialects::evs::EVS.name());
        assert_eq!(
            name("/v2.1/p/os-volumes"),
            crate::dialects::nova::NOVA.name()
        );
        assert_eq!(
            name("/api/volume/create"),
            crate::dialects::luna::LUNA.name()
        );
        assert_eq!(
            name("/image/v2/images"),
            crate::dialects::glance::GLANCE.name()
        );
        assert_eq!(
            name("/v2/zone/z1/volumes"),
            crate::dialects::idc::IDC.name()
        );
        assert_eq!(
            name("/identity/v3/auth/tokens"),
            crate::identity::keystone::KEYSTONE.name()
        );
    }
}
