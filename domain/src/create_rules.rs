//! The rules of DECISIONS.md about *making* a volume that are not the volume
//! decider's own state machine: which fields a dialect's create requires,
//! which metadata keys it takes, batches, where a volume made from a
//! snapshot lands, and what `volume_image_metadata` shows. Pure functions;
//! the application layer calls them with facts read in its transaction.

use std::collections::BTreeMap;

use crate::error::FieldReason;
use crate::{Catalog, DomainError};

/// What a dialect's create request must carry (DECISIONS.md, Required
/// fields [5.1 #2] and Metadata [5.1 #20]). Data, not code: a dialect picks
/// one of the constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatePolicy {
    /// EVS custom create requires `availability_zone` and `volume_type`.
    pub zone_and_type_required: bool,
    /// The metadata keys a create may carry; `None` is any key.
    pub metadata_keys: Option<&'static [&'static str]>,
}

impl CreatePolicy {
    /// Cinder: only `size` is required; zone and type default; any keys.
    pub const OPEN: CreatePolicy = CreatePolicy {
        zone_and_type_required: false,
        metadata_keys: None,
    };
    /// Huawei EVS custom create (`/cloudvolumes`).
    pub const EVS_CUSTOM: CreatePolicy = CreatePolicy {
        zone_and_type_required: true,
        metadata_keys: Some(&["hw:passthrough", "full_clone"]),
    };

    pub fn check(
        &self,
        zone: Option<&str>,
        volume_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), DomainError> {
        if self.zone_and_type_required {
            for (field, v) in [("availability_zone", zone), ("volume_type", volume_type)] {
                if v.is_none() {
                    return Err(DomainError::invalid(
                        field,
                        FieldReason::Missing,
                        "AZ and volume type must not be empty or null!",
                    ));
                }
            }
        }
        if let Some(allowed) = self.metadata_keys {
            if let Some(k) = metadata.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(DomainError::InvalidMetadata(format!(
                    "metadata key '{k}' is not allowed; only {}",
                    allowed.join(" and ")
                )));
            }
        }
        Ok(())
    }
}

/// Backups are out of scope (DECISIONS.md): any `backup_id` is invalid.
pub fn refuse_backup(backup_id: Option<&str>, batch: bool) -> Result<(), DomainError> {
    match (backup_id, batch) {
        (None, _) => Ok(()),
        (Some(_), false) => Err(DomainError::invalid(
            "backup_id",
            FieldReason::Unsupported,
            "invalid backup id!",
        )),
        (Some(_), true) => Err(DomainError::invalid(
            "backup_id",
            FieldReason::Conflict,
            "can not batch create volume from backup!",
        )),
    }
}

/// Most volumes one create may ask for (EVS `count`, EVS-6.1.1).
pub const MAX_BATCH_COUNT: i64 = 100;
/// A batch's base name leaves room for the `-0001` suffix (API.md 3.16).
pub const MAX_BATCH_BASE_NAME_BYTES: usize = 250;

/// The names of a batch (DECISIONS.md, Batch naming [5.1 #9]): `count` = 1
/// keeps the name as given; more name them `name-0001`, `name-0002`, ….
pub fn batch_names(base: Option<&str>, count: i64) -> Result<Vec<Option<String>>, DomainError> {
    if !(1..=MAX_BATCH_COUNT).contains(&count) {
        return Err(DomainError::invalid(
            "count",
            FieldReason::OutOfRange,
            format!("the quantity of volume is invalid! count must be 1 to {MAX_BATCH_COUNT}."),
        ));
    }
    if count == 1 {
        return Ok(vec![base.map(str::to_string)]);
    }
    if base.is_some_and(|n| n.len() > MAX_BATCH_BASE_NAME_BYTES) {
        return Err(DomainError::InvalidName(format!(
            "name must be at most {MAX_BATCH_BASE_NAME_BYTES} bytes when count > 1"
        )));
    }
    Ok((1..=count)
        .map(|i| base.map(|b| format!("{b}-{i:04}")))
        .collect())
}

/// A batch copies no data: one snapshot cannot seed many volumes here.
pub fn refuse_batch_source(has_source: bool, count: i64) -> Result<(), DomainError> {
    if has_source && count > 1 {
        return Err(DomainError::invalid(
            "count",
            FieldReason::Conflict,
            "batch creation from a snapshot is not supported; create one volume per snapshot",
        ));
    }
    Ok(())
}

/// Where a volume lands: the zone and type asked for, else the source's
/// (a volume made from a snapshot or volume inherits them), else the
/// catalog's defaults; an unknown zone or type is refused.
pub fn placement(
    catalog: &Catalog,
    zone: Option<&str>,
    volume_type: Option<&str>,
    inherited: Option<(&str, &str)>,
) -> Result<(String, String), DomainError> {
    let zone = catalog.resolve_zone(zone.or(inherited.map(|i| i.0)))?;
    let volume_type = catalog.resolve_type(volume_type.or(inherited.map(|i| i.1)))?;
    Ok((zone, volume_type))
}

/// What an image says about itself, as read in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    pub id: String,
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub min_disk: i64,
    pub size: Option<i64>,
    pub checksum_sha256: Option<String>,
    pub os_type: Option<String>,
}

/// `volume_image_metadata` of a volume made from an image (CINDER-7.1.6).
pub fn volume_image_metadata(i: &ImageFacts) -> BTreeMap<String, String> {
    let mut md = BTreeMap::new();
    md.insert("image_id".to_string(), i.id.clone());
    md.insert("image_name".to_string(), i.name.clone());
    md.insert("disk_format".to_string(), i.disk_format.clone());
    md.insert("container_format".to_string(), i.container_format.clone());
    md.insert("min_disk".to_string(), i.min_disk.to_string());
    if let Some(size) = i.size {
        md.insert("size".to_string(), size.to_string());
    }
    if let Some(sum) = &i.checksum_sha256 {
        md.insert("checksum".to_string(), sum.clone());
    }
    if let Some(os) = &i.os_type {
        md.insert("__os_type".to_string(), os.clone());
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_named_and_bounded() {
        assert_eq!(batch_names(Some("d"), 1).unwrap(), vec![Some("d".into())]);
        assert_eq!(
            batch_names(Some("d"), 2).unwrap(),
            vec![Some("d-0001".into()), Some("d-0002".into())]
        );
        assert_eq!(batch_names(None, 0).unwrap_err().field(), Some("count"));
        assert_eq!(batch_names(None, 101).unwrap_err().field(), Some("count"));
        let long = "x".repeat(251);
        assert_eq!(
            batch_names(Some(&long), 2).unwrap_err().reason(),
            "invalid_name"
        );
        assert!(batch_names(Some(&long), 1).is_ok());
    }

    #[test]
    fn evs_create_requires_zone_type_and_whitelisted_metadata() {
        let mut md = BTreeMap::new();
        assert!(CreatePolicy::OPEN.check(None, None, &md).is_ok());
        let e = CreatePolicy::EVS_CUSTOM
            .check(Some("az-dc-1"), None, &md)
            .unwrap_err();
        assert_eq!(e.field(), Some("volume_type"));
        md.insert("full_clone".into(), "0".into());
        assert!(CreatePolicy::EVS_CUSTOM
            .check(Some("a"), Some("b"), &md)
            .is_ok());
        md.insert("owner".into(), "x".into());
        assert!(CreatePolicy::EVS_CUSTOM
            .check(Some("a"), Some("b"), &md)
            .is_err());
        assert!(CreatePolicy::OPEN.check(None, None, &md).is_ok());
    }

    #[test]
    fn a_source_lends_its_zone_and_type_unless_asked_otherwise() {
        let c = Catalog::default();
        assert_eq!(
            placement(&c, None, None, Some(("toronto", "SSD"))).unwrap(),
            ("toronto".to_string(), "SSD".to_string())
        );
        assert_eq!(
            placement(&c, Some("ac1"), None, None).unwrap(),
            ("ac1".to_string(), "SATA".to_string())
        );
        assert!(placement(&c, Some("mars"), None, None).is_err());
    }
}
