//! Typed refusals: a kind (bad request, not found, conflict, over limit), a
//! stable reason and, for request fields, the field. No dialect's codes or
//! HTTP statuses live here: each dialect adapter maps these onto its own
//! (the Huawei A.1 table is in the EVS adapter).

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
    #[error("Message {0} could not be found.")]
    MessageNotFound(String),
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
    #[error("Policy check failed: {0}")]
    NotPermitted(String),
    /// Glance's answer to deleting a protected image (403).
    #[error("Image {0} is protected and cannot be deleted.")]
    ImageProtected(String),
    #[error("Image status {0} does not accept an upload.")]
    ImageNotUploadable(String),
    /// A request field that is missing, of the wrong type, or not one of
    /// its allowed values. `field` is the name the client sent (`size`,
    /// `metadata.full_clone`, `marker`); each dialect maps (field, reason)
    /// onto its own error code.
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        reason: FieldReason,
        message: String,
    },
    /// The dialect extends only unattached volumes (the small provider).
    #[error("volume is attached (status {0}): detach it before extending.")]
    ExtendAttached(String),
    #[error("Volume type {0} could not be found.")]
    VolumeTypeNotFound(String),
    #[error("Volume Type {0} already exists.")]
    VolumeTypeExists(String),
    /// Cinder's 400 "Target volume type is still in use." (delete, and a
    /// rename here: volumes record their type by name).
    #[error("Target volume type {0} is still in use.")]
    VolumeTypeInUse(String),
    #[error("Invalid volume type: {0}")]
    VolumeTypeRefused(String),
    #[error("Volume Type {type_id} has no extra specs with key {key}.")]
    ExtraSpecNotFound { type_id: String, key: String },
    #[error("Volume type access for {type_id}/{project} combination already exists.")]
    TypeAccessExists { type_id: String, project: String },
    #[error("Volume type access not found for {type_id}/{project} combination.")]
    TypeAccessNotFound { type_id: String, project: String },
    #[error("Volume type encryption for type {0} already exists.")]
    EncryptionExists(String),
    #[error("Volume type encryption for type {0} does not exist.")]
    EncryptionNotFound(String),
    #[error("QoS Specs {0} could not be found.")]
    QosSpecsNotFound(String),
    #[error("QoS Specs {0} already exists.")]
    QosSpecsExists(String),
    #[error("QoS Specs {0} is still associated with entities.")]
    QosSpecsInUse(String),
    #[error("QoS Specs {id} has no specs with key {key}.")]
    QosSpecsKeyNotFound { id: String, key: String },
    #[error("Invalid volume: {0}")]
    RetypeRefused(String),
    // g17: generic volume groups (Cinder's messages).
    #[error("Group type {0} could not be found.")]
    GroupTypeNotFound(String),
    #[error("Group Type {0} already exists.")]
    GroupTypeExists(String),
    /// Cinder's 400 "Target group type is still in use.".
    #[error("Target group type {0} is still in use.")]
    GroupTypeInUse(String),
    #[error("Invalid group type: {0}")]
    GroupTypeRefused(String),
    #[error("Group Type {type_id} has no specs with key {key}.")]
    GroupSpecNotFound { type_id: String, key: String },
    #[error("Group {0} could not be found.")]
    GroupNotFound(String),
    #[error("Invalid Group: {0}")]
    GroupRefused(String),
    #[error("GroupSnapshot {0} could not be found.")]
    GroupSnapshotNotFound(String),
    #[error("Invalid GroupSnapshot: {0}")]
    GroupSnapshotRefused(String),
    #[error("Maximum number of groups allowed ({limit}) exceeded for quota 'groups'.")]
    GroupCountQuota { limit: i64, in_use: i64 },
    /// Cinder's InvalidVolume (400): the attachment rules, extend completion.
    #[error("Invalid volume: {0}")]
    InvalidVolume(String),
    /// Cinder's ResourceConflict from attachment-update (409).
    #[error("{0}")]
    AttachmentConflict(String),
    /// Cinder's refusals of 3.40 revert-to-snapshot (400).
    #[error("{0}")]
    RevertRefused(String),
    /// Cinder's 409 of a revert whose volume or snapshot is not available.
    #[error("{0}")]
    RevertConflict(String),
    /// Cinder's 400s of 3.68 os-reimage: the volume's status
    /// (InvalidVolume) and the image's fit (InvalidInput,
    /// ImageUnacceptable), each message as Cinder words it.
    #[error("{0}")]
    ReimageRefused(String),
    /// Cinder's 409 of os-reimage: more than one attachment.
    #[error("Cannot re-image a volume which is attached to more than one server.")]
    ReimageMultiAttached,
    /// Cinder before 3.42 (its message prints the expected dict).
    #[error("Invalid volume: Volume {id} status must be '{{'status': 'available'}}' to extend, currently {status}.")]
    ExtendNeedsAvailable { id: String, status: String },
}

/// Why a field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldReason {
    /// Required and absent (or null).
    Missing,
    /// Not the JSON type the field takes.
    WrongType,
    /// The right type, but not an allowed value.
    Invalid,
    /// Outside the documented range (a `limit` over 1000).
    OutOfRange,
    /// Names something that does not exist (a `marker`).
    NotFound,
    /// Allowed by the wire format, not by this service (backups).
    Unsupported,
    /// Contradicts another field or the resource's state.
    Conflict,
    /// Reserved for the service (`_system_` metadata keys).
    Reserved,
}

impl FieldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldReason::Missing => "missing",
            FieldReason::WrongType => "wrong_type",
            FieldReason::Invalid => "invalid",
            FieldReason::OutOfRange => "out_of_range",
            FieldReason::NotFound => "not_found",
            FieldReason::Unsupported => "unsupported",
            FieldReason::Conflict => "conflict",
            FieldReason::Reserved => "reserved",
        }
    }
}

/// The family of an error, which each dialect maps onto its own fault
/// name and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    NotFound,
    Conflict,
    OverLimit,
    Forbidden,
}

impl DomainError {
    /// The request body is not the JSON object the operation takes.
    pub fn malformed_body() -> Self {
        DomainError::invalid("body", FieldReason::Invalid, "Malformed request body.")
    }

    pub fn invalid(field: &'static str, reason: FieldReason, message: impl Into<String>) -> Self {
        DomainError::InvalidField {
            field,
            reason,
            message: message.into(),
        }
    }

    /// A stable snake_case name of the rule that refused, as recorded in the
    /// log's `CommandRejected` (dialect-neutral: no vendor codes there).
    pub fn reason(&self) -> &'static str {
        use DomainError::*;
        match self {
            VolumeNotFound(_) => "volume_not_found",
            VolumeAlreadyExists(_) => "volume_already_exists",
            InvalidSize { .. } => "invalid_size",
            NewSizeNotGreater { .. } => "new_size_not_greater",
            ExtendWrongStatus(_) => "extend_wrong_status",
            ExtendMultiattachInUse => "extend_multiattach_in_use",
            ExtendErrorExtending => "extend_error_extending",
            DeleteWrongStatus(_) => "delete_wrong_status",
            InvalidName(_) => "invalid_name",
            InvalidDescription(_) => "invalid_description",
            NameAndDescriptionEmpty => "name_and_description_empty",
            InvalidAvailabilityZone(_) => "invalid_availability_zone",
            InvalidVolumeType(_) => "invalid_volume_type",
            InvalidMetadata(_) => "invalid_metadata",
            MetadataTooLarge => "metadata_too_large",
            MetadataKeyNotFound(_) => "metadata_key_not_found",
            SnapshotNotFound(_) => "snapshot_not_found",
            SnapshotDeleteWrongStatus(_) => "snapshot_delete_wrong_status",
            SnapshotNotAvailable(_) => "snapshot_not_available",
            SnapshotVolumeWrongStatus(_) => "snapshot_volume_wrong_status",
            VolumeHasSnapshots(_) => "volume_has_snapshots",
            RollbackWrongVolume(_) => "rollback_wrong_volume",
            RollbackWrongStatus(_) => "rollback_wrong_status",
            SmallerThanSnapshot { .. } => "smaller_than_snapshot",
            SnapshotTypeMismatch { .. } => "snapshot_type_mismatch",
            SnapshotZoneMismatch(_) => "snapshot_zone_mismatch",
            SourceVolumeNotAvailable(_) => "source_volume_not_available",
            SmallerThanSourceVolume { .. } => "smaller_than_source_volume",
            SourceVolumeZoneMismatch(_) => "source_volume_zone_mismatch",
            AttachWrongStatus(_) => "attach_wrong_status",
            DetachWrongStatus(_) => "detach_wrong_status",
            AttachmentNotFound(_) => "attachment_not_found",
            TransferWrongStatus(_) => "transfer_wrong_status",
            TransferNotFound(_) => "transfer_not_found",
            MessageNotFound(_) => "message_not_found",
            ImageNotFound(_) => "image_not_found",
            UploadWrongStatus(_) => "upload_wrong_status",
            ImageNotActive(_) => "image_not_active",
            SmallerThanImage { .. } => "smaller_than_image",
            TransferBadAuthKey => "transfer_bad_auth_key",
            VolumeCountQuota { .. } => "volume_count_quota",
            GigabytesQuota { .. } => "gigabytes_quota",
            SnapshotCountQuota { .. } => "snapshot_count_quota",
            NotPermitted(_) => "not_permitted",
            ImageProtected(_) => "image_protected",
            ImageNotUploadable(_) => "image_not_uploadable",
            InvalidField { .. } => "invalid_field",
            ExtendAttached(_) => "extend_attached",
            VolumeTypeNotFound(_) => "volume_type_not_found",
            VolumeTypeExists(_) => "volume_type_exists",
            VolumeTypeInUse(_) => "volume_type_in_use",
            VolumeTypeRefused(_) => "volume_type_refused",
            ExtraSpecNotFound { .. } => "extra_spec_not_found",
            TypeAccessExists { .. } => "type_access_exists",
            TypeAccessNotFound { .. } => "type_access_not_found",
            EncryptionExists(_) => "encryption_exists",
            EncryptionNotFound(_) => "encryption_not_found",
            QosSpecsNotFound(_) => "qos_specs_not_found",
            QosSpecsExists(_) => "qos_specs_exists",
            QosSpecsInUse(_) => "qos_specs_in_use",
            QosSpecsKeyNotFound { .. } => "qos_specs_key_not_found",
            RetypeRefused(_) => "retype_refused",
            GroupTypeNotFound(_) => "group_type_not_found",
            GroupTypeExists(_) => "group_type_exists",
            GroupTypeInUse(_) => "group_type_in_use",
            GroupTypeRefused(_) => "group_type_refused",
            GroupSpecNotFound { .. } => "group_spec_not_found",
            GroupNotFound(_) => "group_not_found",
            GroupRefused(_) => "group_refused",
            GroupSnapshotNotFound(_) => "group_snapshot_not_found",
            GroupSnapshotRefused(_) => "group_snapshot_refused",
            GroupCountQuota { .. } => "group_count_quota",
            InvalidVolume(_) => "invalid_volume",
            AttachmentConflict(_) => "attachment_conflict",
            RevertRefused(_) => "revert_refused",
            RevertConflict(_) => "revert_conflict",
            ReimageRefused(_) => "reimage_refused",
            ReimageMultiAttached => "reimage_multi_attached",
            ExtendNeedsAvailable { .. } => "extend_needs_available",
        }
    }

    /// The field a refusal names, if it names one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DomainError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        use DomainError::*;
        match self {
            VolumeNotFound(_)
            | SnapshotNotFound(_)
            | MetadataKeyNotFound(_)
            | AttachmentNotFound(_)
            | TransferNotFound(_)
            | MessageNotFound(_)
            | ImageNotFound(_)
            | VolumeTypeNotFound(_)
            | ExtraSpecNotFound { .. }
            | TypeAccessNotFound { .. }
            | EncryptionNotFound(_)
            | QosSpecsNotFound(_)
            | QosSpecsKeyNotFound { .. }
            | GroupTypeNotFound(_)
            | GroupSpecNotFound { .. }
            | GroupNotFound(_)
            | GroupSnapshotNotFound(_) => ErrorKind::NotFound,
            VolumeCountQuota { .. }
            | GigabytesQuota { .. }
            | SnapshotCountQuota { .. }
            | GroupCountQuota { .. } => ErrorKind::OverLimit,
            VolumeAlreadyExists(_)
            | ImageNotUploadable(_)
            | VolumeTypeExists(_)
            | TypeAccessExists { .. }
            | QosSpecsExists(_)
            | GroupTypeExists(_)
            | AttachmentConflict(_)
            | RevertConflict(_)
            | ReimageMultiAttached => ErrorKind::Conflict,
            NotPermitted(_) | ImageProtected(_) => ErrorKind::Forbidden,
            _ => ErrorKind::BadRequest,
        }
    }
}
