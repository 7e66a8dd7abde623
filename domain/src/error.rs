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
    /// The executor reported an outcome the volume's state does not expect
    /// (a stale or duplicated delivery); the caller treats it as a no-op.
    #[error("volume {id} is {status}; cannot apply {what}")]
    UnexpectedOutcome {
        id: String,
        status: String,
        what: &'static str,
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
            UnexpectedOutcome { .. } => "EVS.5400",
            InvalidInput { code, .. } => code,
        }
    }

    pub fn fault(&self) -> Fault {
        use DomainError::*;
        match self {
            VolumeNotFound(_) => Fault::NotFound,
            VolumeAlreadyExists(_) | UnexpectedOutcome { .. } => Fault::Conflict,
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
