//! The Huawei EVS custom routes' refusals (DECISIONS.md, Errors [5.1 #4]):
//! `{"error": {"message", "code": "EVS.xxxx"}}` with the appendix A.1 code.
//! The A.1 table lives here, in the one dialect that speaks it: the domain
//! refuses with typed reasons and fields, and this maps them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{DomainError, ErrorKind, FieldReason};
use serde_json::json;

use super::Dialect;
use crate::{Problem, Reason};

pub mod rollback;
pub mod volumes;

#[derive(Debug)]
pub struct Evs;

pub static EVS: Evs = Evs;

impl Dialect for Evs {
    fn name(&self) -> &'static str {
        "evs"
    }

    fn render_error(&self, p: &Problem) -> Response {
        let status = match &p.reason {
            // A.1 documents the quota codes as 400 on the EVS routes; Cinder
            // answers 413 overLimit (DECISIONS.md, Quotas).
            Reason::Domain(e) if e.kind() == ErrorKind::OverLimit => StatusCode::BAD_REQUEST,
            Reason::JobNotFound => StatusCode::BAD_REQUEST,
            _ => p.status,
        };
        let body = json!({ "error": { "message": p.message, "code": code(&p.reason) } });
        (status, Json(body)).into_response()
    }
}

/// The A.1 code of a refusal.
pub fn code(r: &Reason) -> &'static str {
    match r {
        Reason::Domain(e) => domain_code(e),
        Reason::Vendor(c) => c,
        Reason::Unauthorized => "EVS.5401",
        Reason::Forbidden => "EVS.5403",
        Reason::MalformedUrl | Reason::MethodNotAllowed => "EVS.5400",
        Reason::NotFound => "EVS.5404",
        Reason::BodyTooLarge => "EVS.5413",
        Reason::Conflict => "EVS.5409",
        Reason::JobNotFound => "Common.0011",
        Reason::VolumeTypeNotFound => "EVS.2070",
        Reason::Internal => "EVS.5500",
    }
}

fn domain_code(e: &DomainError) -> &'static str {
    use DomainError::*;
    match e {
        VolumeNotFound(_) => "EVS.5404",
        VolumeAlreadyExists(_) => "EVS.5400",
        InvalidSize { .. } => "EVS.1010",
        NewSizeNotGreater { .. } => "EVS.1015",
        ExtendWrongStatus(_) => "EVS.1064",
        ExtendMultiattachInUse => "EVS.1065",
        ExtendErrorExtending => "EVS.2026",
        DeleteWrongStatus(_) => "EVS.1046",
        InvalidName(_) => "EVS.1003",
        InvalidDescription(_) => "EVS.1004",
        NameAndDescriptionEmpty => "EVS.1007",
        InvalidAvailabilityZone(_) => "EVS.1036",
        InvalidVolumeType(_) => "EVS.1020",
        InvalidMetadata(_) => "EVS.5400",
        MetadataTooLarge => "EVS.1005",
        MetadataKeyNotFound(_) => "EVS.5404",
        SnapshotNotFound(_) => "EVS.5404",
        SnapshotDeleteWrongStatus(_) => "EVS.1047",
        SnapshotNotAvailable(_) => "EVS.2043",
        SnapshotVolumeWrongStatus(_) => "EVS.5400",
        VolumeHasSnapshots(_) => "EVS.5400",
        RollbackWrongVolume(_) => "EVS.5400",
        RollbackWrongStatus(_) => "EVS.5400",
        SmallerThanSnapshot { .. } => "EVS.1010",
        SnapshotTypeMismatch { .. } => "EVS.2096",
        SnapshotZoneMismatch(_) => "EVS.2054",
        SourceVolumeNotAvailable(_) => "EVS.5400",
        SmallerThanSourceVolume { .. } => "EVS.1010",
        SourceVolumeZoneMismatch(_) => "EVS.2054",
        AttachWrongStatus(_) | DetachWrongStatus(_) => "EVS.5400",
        AttachmentNotFound(_) => "EVS.5404",
        TransferWrongStatus(_) => "EVS.5400",
        TransferNotFound(_) => "EVS.5404",
        MessageNotFound(_) => "EVS.5404",
        ImageNotFound(_) => "EVS.5404",
        UploadWrongStatus(_) => "EVS.5400",
        ImageNotActive(_) => "EVS.5400",
        SmallerThanImage { .. } => "EVS.1010",
        TransferBadAuthKey => "EVS.5400",
        VolumeCountQuota { .. } | SnapshotCountQuota { .. } => "EVS.1034",
        GigabytesQuota { .. } => "EVS.1042",
        NotPermitted(_) | ImageProtected(_) => "EVS.5403",
        ImageNotUploadable(_) => "EVS.5409",
        InvalidField { field, reason, .. } => field_code(field, *reason),
        // Not an EVS rule (EVS extends in-use volumes); the nearest code.
        ExtendAttached(_) => "EVS.1064",
        // Type and QoS management is Cinder's; on EVS routes the nearest codes.
        VolumeTypeNotFound(_) => "EVS.2070",
        ExtraSpecNotFound { .. }
        | TypeAccessNotFound { .. }
        | EncryptionNotFound(_)
        | QosSpecsNotFound(_)
        | QosSpecsKeyNotFound { .. } => "EVS.5404",
        VolumeTypeExists(_) | TypeAccessExists { .. } | QosSpecsExists(_) => "EVS.5409",
        VolumeTypeInUse(_) | VolumeTypeRefused(_) | EncryptionExists(_) | QosSpecsInUse(_)
        | RetypeRefused(_) => "EVS.5400",
        // Generic groups are Cinder's (g17); on EVS routes the nearest codes.
        GroupTypeNotFound(_)
        | GroupSpecNotFound { .. }
        | GroupNotFound(_)
        | GroupSnapshotNotFound(_) => "EVS.5404",
        GroupTypeExists(_) => "EVS.5409",
        GroupTypeInUse(_) | GroupTypeRefused(_) | GroupRefused(_) | GroupSnapshotRefused(_) => {
            "EVS.5400"
        }
        GroupCountQuota { .. } => "EVS.1034",
        InvalidVolume(_)
        | AttachmentConflict(_)
        | RevertRefused(_)
        | ReimageRefused(_)
        | ReimageMultiAttached
        | RevertConflict(_)
        | ExtendNeedsAvailable { .. } => "EVS.5400",
    }
}

/// Request fields: A.1 names a code per field; the rest are EVS.5400.
fn field_code(field: &str, reason: FieldReason) -> &'static str {
    use FieldReason::*;
    match (field, reason) {
        ("metadata", Reserved) => "EVS.2047",
        ("metadata", Invalid) => "EVS.1058", // the list filter
        ("metadata.hw:passthrough", Unsupported) => "EVS.1043",
        ("metadata.hw:passthrough", _) => "EVS.1057",
        ("metadata.full_clone", _) => "EVS.1063",
        ("source", Conflict) => "EVS.1016",
        ("instance_uuid", Conflict) => "EVS.2134",
        ("backup_id", Conflict) => "EVS.1051", // batch create from a backup
        ("backup_id", _) => "EVS.1006",
        ("snapshot_id", _) => "EVS.2045",
        ("imageRef", _) => "EVS.2046",
        ("size" | "new_size", _) => "EVS.1010",
        ("shareable", _) => "EVS.1054",
        ("availability_zone" | "volume_type", Missing) => "EVS.2083",
        ("availability_zone", Invalid) => "EVS.1041", // the list filter
        ("sort_key", _) => "EVS.1039",
        ("sort_dir", _) => "EVS.1040",
        ("marker", _) => "EVS.1024",
        ("limit", OutOfRange) => "EVS.2142",
        ("limit", Invalid) => "EVS.1023",
        ("limit" | "offset", _) => "EVS.5400",
        ("count", _) => "EVS.1021",
        ("os-extend", _) => "EVS.1011",
        (_, WrongType) => "EVS.1018",
        _ => "EVS.5400",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_map_to_their_documented_codes() {
        let f = |field, reason| code(&Reason::Domain(DomainError::invalid(field, reason, "x")));
        assert_eq!(f("size", FieldReason::WrongType), "EVS.1010");
        assert_eq!(f("name", FieldReason::WrongType), "EVS.1018");
        assert_eq!(f("backup_id", FieldReason::Unsupported), "EVS.1006");
        assert_eq!(f("limit", FieldReason::OutOfRange), "EVS.2142");
        assert_eq!(f("volume_type", FieldReason::Missing), "EVS.2083");
        assert_eq!(
            code(&Reason::Domain(DomainError::GigabytesQuota {
                resource: "gigabytes".into(),
                limit: 1,
                in_use: 1,
                requested: 1
            })),
            "EVS.1042"
        );
    }
}
