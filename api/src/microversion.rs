//! Microversion negotiation on `/v3` (CLIENTS.md, Microversions). This
//! server serves 3.0 only (min = max = 3.0), which is correct until higher
//! versions are implemented with their exact semantics.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, DialectRef, Problem, Reason};

pub const MIN: (u32, u32) = (3, 0);
pub const MAX: (u32, u32) = (3, 0);

#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Version(u32, u32),
    Latest,
}

/// Reads the requested volume microversion; None when the client sent none.
pub fn requested(req_headers: &axum::http::HeaderMap) -> Result<Option<Asked>, String> {
    let raw = if let Some(v) = req_headers.get("openstack-api-version") {
        let s = v.to_str().map_err(|_| "unreadable OpenStack-API-Version")?;
        // "volume 3.0" or several services: "compute 2.1, volume 3.0".
        match s
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("volume "))
        {
            Some(v) => v.trim().to_string(),
            None => return Ok(None),
        }
    } else if let Some(v) = req_headers.get("x-openstack-volume-api-version") {
        v.to_str()
            .map_err(|_| "unreadable X-OpenStack-Volume-API-Version")?
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

pub async fn negotiate(req: Request, next: Next) -> Response {
    let served = match requested(req.headers()) {
        Err(msg) => {
            return ApiError {
                dialect: DialectRef(&crate::dialects::cinder::CINDER),
                problem: Problem::new(StatusCode::BAD_REQUEST, Reason::MalformedUrl, msg),
            }
            .into_response()
        }
        Ok(None) | Ok(Some(Asked::Latest)) => MAX,
        Ok(Some(Asked::Version(a, b))) if (a, b) >= MIN && (a, b) <= MAX => (a, b),
        Ok(Some(Asked::Version(a, b))) => {
            let mut resp = ApiError {
                dialect: DialectRef(&crate::dialects::cinder::CINDER),
                problem: Problem::new(
                    StatusCode::NOT_ACCEPTABLE,
                    Reason::Internal,
                    format!(
                        "Version {a}.{b} is not supported by the API. Minimum is {}.{} and maximum is {}.{}.",
                        MIN.0, MIN.1, MAX.0, MAX.1
                    ),
                ),
            }
            .into_response();
            stamp(&mut resp, MAX);
            return resp;
        }
    };
    let mut resp = next.run(req).await;
    stamp(&mut resp, served);
    resp
}

fn stamp(resp: &mut Response, v: (u32, u32)) {
    if let Ok(h) = HeaderValue::from_str(&format!("volume {}.{}", v.0, v.1)) {
        resp.headers_mut().insert("openstack-api-version", h);
    }
    resp.headers_mut()
        .insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
}
