//! The OpenStack dialect's refusals (DECISIONS.md, Errors [5.1 #4]): the
//! upstream Cinder fault body `{"badRequest": {"message", "code": 400}}`,
//! named by status as python-cinderclient and openstacksdk read it
//! (CLIENTS.md, Errors). Also used by the Glance-style image routes and the
//! operations routes, whose clients are the same OpenStack libraries.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::Dialect;
use crate::Problem;

pub mod admin;
pub mod attachments;
pub mod catalog;
pub mod clusters;
pub mod default_types;
pub mod groups;
pub mod limits;
pub mod list_filters;
pub mod messages;
pub mod metadata;
pub mod pools;
pub mod qos;
pub mod reimage;
pub mod resource_filters;
pub mod revert;
pub mod schema;
pub mod snapshots;
pub mod summary;
pub mod transfers;
pub mod types;
pub mod upload;
pub mod volumes;
pub mod workers;

#[derive(Debug)]
pub struct Cinder;

pub static CINDER: Cinder = Cinder;

/// The Cinder fault name for a status.
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        _ => "computeFault",
    }
}

impl Dialect for Cinder {
    fn name(&self) -> &'static str {
        "cinder"
    }

    fn render_error(&self, p: &Problem) -> Response {
        let body = json!({
            fault_name(p.status): { "message": p.message, "code": p.status.as_u16() }
        });
        (p.status, Json(body)).into_response()
    }
}
