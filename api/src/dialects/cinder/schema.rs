//! Microversion 3.53: Cinder validates the volume create and update bodies
//! against a JSON schema (cinder/api/schemas/volumes.py). From 3.53 a
//! create's `volume` takes only the documented keys, and an update must
//! name at least one thing to change. Before 3.53 both are as v2.
//!
//! Cinder's refusal text is jsonschema's, which clients show as is:
//! `Invalid input for field/attribute volume. … Additional properties are
//! not allowed ('x' was unexpected)`.

use domain::{DomainError, FieldReason};
use serde_json::{Map, Value};

use crate::microversion::SUPPORT_VOLUME_SCHEMA_CHANGES;
use crate::Ctx;

/// The keys of `create_volume_v353`'s `volume` (with 3.13's `group_id`
/// and 3.47's `backup_id`).
const CREATE_KEYS: &[&str] = &[
    "availability_zone",
    "backup_id",
    "consistencygroup_id",
    "description",
    "display_description",
    "display_name",
    "group_id",
    "imageRef",
    "image_id",
    "metadata",
    "multiattach",
    "name",
    "size",
    "snapshot_id",
    "source_volid",
    "volume_type",
];

/// The keys of `update_v353`'s `volume`, at least one of them required.
const UPDATE_KEYS: &[&str] = &[
    "description",
    "display_description",
    "display_name",
    "metadata",
    "name",
];

fn refuse(volume: &Map<String, Value>, why: String) -> DomainError {
    DomainError::invalid(
        "volume",
        FieldReason::Invalid,
        format!(
            "Invalid input for field/attribute volume. Value: {}. {why}",
            Value::Object(volume.clone())
        ),
    )
}

fn unexpected(volume: &Map<String, Value>, allowed: &[&str]) -> Result<(), DomainError> {
    let extra: Vec<String> = volume
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    let verb = if extra.len() == 1 { "was" } else { "were" };
    Err(refuse(
        volume,
        format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            extra.join(", ")
        ),
    ))
}

/// A create's `volume` at 3.53 or later: documented keys only.
pub fn check_create(ctx: &Ctx, volume: &Map<String, Value>) -> Result<(), DomainError> {
    if !ctx.is_v3() || !ctx.at_least(SUPPORT_VOLUME_SCHEMA_CHANGES) {
        return Ok(());
    }
    unexpected(volume, CREATE_KEYS)
}

/// An update's `volume` at 3.53 or later: documented keys only (as
/// before), and at least one of them.
pub fn check_update(ctx: &Ctx, volume: &Map<String, Value>) -> Result<(), DomainError> {
    if !ctx.is_v3() || !ctx.at_least(SUPPORT_VOLUME_SCHEMA_CHANGES) {
        return Ok(());
    }
    unexpected(volume, UPDATE_KEYS)?;
    if UPDATE_KEYS.iter().any(|k| volume.contains_key(*k)) {
        Ok(())
    } else {
        Err(refuse(
            volume,
            format!(
                "{} is not valid under any of the given schemas",
                Value::Object(volume.clone())
            ),
        ))
    }
}
