//! Typed refusals. Each carries the Huawei A.1 code and HTTP status the seed
//! documents; the API renders them in the caller's dialect (Cinder fault
//! bodies or EVS `{"error": {...}}`), so the rule and the code live here once.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("Volume {0} could not be found.")]
    VolumeNotFound(String),
    #[error("Volume {0} already exists.")]
    VolumeAlreadyExists(String),
    #[error("invalid volume size! Size must be an integer between {min} and {max} GB, got {got}.", min = crate::limits::MIN_VOLUME_GB, max = crate::limits::MAX_VOLUME_GB)]
    InvalidSize { got: i64 },
    #[error("new volume Size must be greater than old Size! (old {old}, new {new})")]
    NewSizeNotGreater { old: i64, new: i64 },
    #[error("volume status must be available or in-use when extending! (status {0})")]
    ExtendWrongStatus(String),
    #[error("multiattach volume status must be available when extending!")]
    ExtendMultiattachInUse,
    #[error("volume is error_extending!")]
    ExtendErrorExtending,
    #[error("volume status must be available, error, error_extending, error_restoring, error_rollbacking when delete volume! (status {0})")]
    DeleteWrongStatus(String),
    #[error("invalid volume name! {0}")]
    InvalidName(String),
    #[error("invalid volume description! {0}")]
    InvalidDescription(String),
    #[error("volume name and description can not both be empty!")]
    NameAndDescriptionEmpty,
    #[error("invalid availability zone! Availability zone '{0}' is invalid.")]
    InvalidAvailabilityZone(String),
    #[error("invalid volume type! Volume type '{0}' does not exist.")]
    InvalidVolumeType(String),
    #[error("{0}")]
    InvalidMetadata(String),
    #[error("size of metadata is too large!")]
    MetadataTooLarge,
    #[error("Metadata key {0} could not be found.")]
    MetadataKeyNotFound(String),
    #[error("Snapshot {0} could not be found.")]
    SnapshotNotFound(String),
    #[error("snapshot status must be available or error when delete snapshot! (status {0})")]
    SnapshotDeleteWrongStatus(String),
    #[error("The status of snapshot is not available or backing-up. (status {0})")]
    SnapshotNotAvailable(String),
    #[error("Volume status must be available or in-use to take a snapshot, and in-use needs force=true (status {0}).")]
    SnapshotVolumeWrongStatus(String),
    #[error("Volume still has {0} dependent snapshots; delete them first or pass cascade=true.")]
    VolumeHasSnapshots(usize),
    #[error("Invalid volume: a snapshot can only be rolled back to its source volume {0}.")]
    RollbackWrongVolume(String),
    #[error("Volume status must be available or error_rollbacking to roll back (status {0}).")]
    RollbackWrongStatus(String),
    #[error("the size param is less than snapshot size! (size {size}, snapshot {snapshot})")]
    SmallerThanSnapshot { size: i64, snapshot: i64 },
    #[error("Target volumeType[{wanted}] is not matched with snapshot[{snapshot}] !")]
    SnapshotTypeMismatch { wanted: String, snapshot: String },
    #[error("Cannot create volume from snapshot as the az is invalid! (snapshot zone {0})")]
    SnapshotZoneMismatch(String),
    #[error("Invalid volume: volume status must be available (or in-use for a multiattach volume) to attach (status {0}).")]
    AttachWrongStatus(String),
    #[error("Invalid volume: volume must be in-use with an attachment to detach (status {0}).")]
    DetachWrongStatus(String),
    #[error(
        "Invalid volume: the source volume must be available or in-use to clone (status {0})."
    )]
    SourceVolumeNotAvailable(String),
    #[error("the size param is less than source volume size! (size {size}, source volume {source_size})")]
    SmallerThanSourceVolume { size: i64, source_size: i64 },
    #[error("Cannot clone a volume into another availability zone! (source volume zone {0})")]
    SourceVolumeZoneMismatch(String),
    #[error("Attachment {0} could not be found.")]
    AttachmentNotFound(String),
    #[error("Invalid volume: status must be available to transfer (status {0}).")]
    TransferWrongStatus(String),
    #[error("Transfer {0} could not be found.")]
    TransferNotFound(String),
    #[error("Image {0} could not be found.")]
    ImageNotFound(String),
    #[error("Invalid volume: volume status must be available, or in-use with force=true, to upload an image (status {0}).")]
    UploadWrongStatus(String),
    #[error("Image {0} is not active.")]
    ImageNotActive(String),
    #[error("Volume size {size} GB is smaller than the image needs ({needed} GB).")]
    SmallerThanImage { size: i64, needed: i64 },
    #[error("Invalid auth key: the transfer could not be accepted.")]
    TransferBadAuthKey,
    #[error("volume count exceeded volume count quota! ({resource}: limit {limit}, in use {in_use}, requested {requested})")]
    VolumeCountQuota {
        resource: String,
        limit: i64,
        in_use: i64,
        requested: i64,
    },
    #[error("volume gigabytes exceeded volume gigabytes quota! ({resource}: limit {limit}, in use {in_use}, requested {requested})")]
    GigabytesQuota {
        resource: String,
        limit: i64,
        in_use: i64,
        requested: i64,
    },
    #[error("snapshot count exceeded snapshot count quota! ({resource}: limit {limit}, in use {in_use}, requested {requested})")]
    SnapshotCountQuota {
        resource: String,
        limit: i64,
        in_use: i64,
        requested: i64,
    },
    /// Request-level validation (malformed body, bad query parameter): not a
    /// business rule, but refused through the same renderer.
    #[error("{message}")]
    InvalidInput { code: &'static str, message: String },
}

/// The family of an error, which each dialect maps onto its own fault name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    BadRequest,
    NotFound,
    Conflict,
    OverLimit,
    Internal,
}

impl DomainError {
    pub fn malformed_body() -> Self {
        DomainError::InvalidInput {
            code: "EVS.5400",
            message: "Malformed request body.".into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::InvalidInput {
            code,
            message: message.into(),
        }
    }

    /// The Huawei A.1 error code.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
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
            ImageNotFound(_) => "EVS.5404",
            UploadWrongStatus(_) => "EVS.5400",
            ImageNotActive(_) => "EVS.5400",
            SmallerThanImage { .. } => "EVS.1010",
            TransferBadAuthKey => "EVS.5400",
            VolumeCountQuota { .. } | SnapshotCountQuota { .. } => "EVS.1034",
            GigabytesQuota { .. } => "EVS.1042",
            InvalidInput { code, .. } => code,
        }
    }

    pub fn fault(&self) -> Fault {
        use DomainError::*;
        match self {
            VolumeNotFound(_)
            | SnapshotNotFound(_)
            | MetadataKeyNotFound(_)
            | AttachmentNotFound(_)
            | TransferNotFound(_)
            | ImageNotFound(_) => Fault::NotFound,
            VolumeCountQuota { .. } | GigabytesQuota { .. } | SnapshotCountQuota { .. } => {
                Fault::OverLimit
            }
            VolumeAlreadyExists(_) => Fault::Conflict,
            _ => Fault::BadRequest,
        }
    }

    /// HTTP status as documented by A.1 (EVS.2026 is a 500 there; we answer
    /// 400 because a refused state transition is the client's to fix and the
    /// house rule is never a 5xx for bad input).
    pub fn http_status(&self) -> u16 {
        match self.fault() {
            Fault::BadRequest => 400,
            Fault::NotFound => 404,
            Fault::Conflict => 409,
            Fault::OverLimit => 413,
            Fault::Internal => 500,
        }
    }
}
