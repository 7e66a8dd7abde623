//! The volume aggregate: one stream per volume (`volume-<uuid>`).
//!
//! Client commands (create, update, extend, delete) move a volume into a
//! transitional status and record what was asked; the executor's outcome
//! commands (start, complete, fail) record what the disk work did. Outcome
//! commands are idempotent: a stale or repeated delivery decides no events,
//! which is what makes the executor's at-least-once delivery safe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{limits, Aggregate, DomainError};

pub mod attach;
pub mod completion;
pub mod reimage;
pub mod revert;

/// Volume statuses of Huawei A.3 plus the ones DECISIONS.md adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VolumeStatus {
    #[serde(rename = "creating")]
    Creating,
    #[serde(rename = "available")]
    Available,
    #[serde(rename = "in-use")]
    InUse,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "extending")]
    Extending,
    #[serde(rename = "error_extending")]
    ErrorExtending,
    #[serde(rename = "deleting")]
    Deleting,
    #[serde(rename = "error_deleting")]
    ErrorDeleting,
    #[serde(rename = "error_restoring")]
    ErrorRestoring,
    #[serde(rename = "error_rollbacking")]
    ErrorRollbacking,
    #[serde(rename = "rollingback")]
    Rollingback,
    #[serde(rename = "attaching")]
    Attaching,
    #[serde(rename = "awaiting-transfer")]
    AwaitingTransfer,
    #[serde(rename = "uploading")]
    Uploading,
    /// Cinder 3.27: an attachment record holds the volume, not yet connected.
    #[serde(rename = "reserved")]
    Reserved,
    /// Cinder 3.68: an image's bytes are being written over the volume.
    #[serde(rename = "downloading")]
    Downloading,
}

impl VolumeStatus {
    pub const ALL: [VolumeStatus; 16] = [
        VolumeStatus::Creating,
        VolumeStatus::Available,
        VolumeStatus::InUse,
        VolumeStatus::Error,
        VolumeStatus::Extending,
        VolumeStatus::ErrorExtending,
        VolumeStatus::Deleting,
        VolumeStatus::ErrorDeleting,
        VolumeStatus::ErrorRestoring,
        VolumeStatus::ErrorRollbacking,
        VolumeStatus::Rollingback,
        VolumeStatus::Attaching,
        VolumeStatus::AwaitingTransfer,
        VolumeStatus::Uploading,
        VolumeStatus::Reserved,
        VolumeStatus::Downloading,
    ];

    pub fn as_str(self) -> &'static str {
        use VolumeStatus::*;
        match self {
            Creating => "creating",
            Available => "available",
            InUse => "in-use",
            Error => "error",
            Extending => "extending",
            ErrorExtending => "error_extending",
            Deleting => "deleting",
            ErrorDeleting => "error_deleting",
            ErrorRestoring => "error_restoring",
            ErrorRollbacking => "error_rollbacking",
            Rollingback => "rollingback",
            Attaching => "attaching",
            AwaitingTransfer => "awaiting-transfer",
            Uploading => "uploading",
            Reserved => "reserved",
            Downloading => "downloading",
        }
    }

    /// Parses a status as documented; also the A.3 names this service does
    /// not produce yet, so a status filter on them is valid (and empty).
    pub fn is_documented(s: &str) -> bool {
        Self::ALL.iter().any(|k| k.as_str() == s)
            || matches!(
                s,
                "detaching"
                    | "restoring-backup"
                    | "backing-up"
                    | "error_rollback"
                    | "error_detaching"
            )
    }
}

/// Which piece of disk work an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    Create,
    Extend,
    Delete,
    Rollback,
    /// Cinder 3.68 os-reimage: the image's bytes replace the volume's.
    Reimage,
}

impl WorkKind {
    /// The transitional status in which this work is pending.
    fn pending_status(self) -> VolumeStatus {
        match self {
            WorkKind::Create => VolumeStatus::Creating,
            WorkKind::Extend => VolumeStatus::Extending,
            WorkKind::Delete => VolumeStatus::Deleting,
            WorkKind::Rollback => VolumeStatus::Rollingback,
            WorkKind::Reimage => VolumeStatus::Downloading,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVolume {
    pub volume_id: Uuid,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    /// Already resolved against the catalog (see `Catalog::resolve_zone`).
    pub availability_zone: String,
    pub volume_type: String,
    pub metadata: BTreeMap<String, String>,
    pub multiattach: bool,
    pub job_id: Option<String>,
    /// The batch job (EVS `count` > 1) this volume's job belongs to.
    pub batch_job_id: Option<String>,
    /// Where the first bytes come from; None for an empty volume.
    pub source: Option<CreateSource>,
    /// The backend the scheduler placed a new volume on (the type's
    /// `volume_backend_name`); None: the type's old rule (`catalog::
    /// backend_of`). A clone ignores it: it lives on its source's backend.
    pub backend: Option<String>,
    /// The project's limits and usage, read in the same transaction.
    pub quota: crate::quota::Headroom,
}

/// A snapshot to create a volume from, as read in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSource {
    pub snapshot_id: Uuid,
    pub status: crate::SnapshotStatus,
    pub size: i64,
    pub volume_type: String,
    pub availability_zone: String,
    /// `metadata.full_clone == "0"`: an O(1) overlay on the snapshot.
    pub linked: bool,
    /// The snapshot's backend: the clone is made there.
    pub backend: String,
}

/// An image to create a volume from, as read in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSourceFacts {
    pub image_id: Uuid,
    pub status: crate::image::ImageStatus,
    pub min_disk: i64,
    pub virtual_size: u64,
    /// What `volume_image_metadata` shows (image_id, image_name, …).
    pub metadata: BTreeMap<String, String>,
}

/// A volume to clone (`source_volid`), as read in the same transaction.
/// The service makes the clone as an internal snapshot plus a linked clone
/// (DECISIONS.md); the source keeps its status throughout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSourceFacts {
    pub volume_id: Uuid,
    pub status: VolumeStatus,
    pub size: i64,
    pub volume_type: String,
    pub availability_zone: String,
    /// The source's backend: the clone is made there.
    pub backend: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateSource {
    Snapshot(SnapshotSource),
    Image(ImageSourceFacts),
    Volume(VolumeSourceFacts),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeCommand {
    Create(Box<CreateVolume>),
    Update {
        name: Option<String>,
        description: Option<String>,
        metadata: Option<BTreeMap<String, String>>,
    },
    Extend {
        new_size: i64,
        job_id: Option<String>,
        quota: crate::quota::Headroom,
        /// Which statuses the dialect's document lets an extend start from.
        policy: ExtendPolicy,
    },
    Delete {
        job_id: Option<String>,
        /// Snapshots of this volume not already being deleted.
        dependent_snapshots: usize,
    },
    /// Cinder 3.23 `DELETE /volumes/{id}?force=true` (an admin's): any
    /// status, but not while attached, waiting for a transfer or with
    /// snapshots (Cinder's `delete(force=True)` keeps those conditions).
    ForceDelete {
        job_id: Option<String>,
        dependent_snapshots: usize,
    },
    EditMetadata(crate::metadata::MetadataEdit),
    /// Restore the volume to `snapshot_id` (EVS-6.2.1), optionally renaming it.
    Rollback {
        snapshot_id: Uuid,
        snapshot_volume_id: Uuid,
        name: Option<String>,
    },
    /// CINDER-7.2.5 `os-attach`: record an attachment (no VM here).
    Attach {
        attachment_id: Uuid,
        server_id: String,
        host_name: Option<String>,
        device: String,
        mode: AttachMode,
    },
    /// CINDER-7.2.6 `os-detach`; the id may be omitted with one attachment.
    Detach {
        attachment_id: Option<Uuid>,
    },
    /// Cinder 3.27 attachment-create (3.54: `mode`); with a connector the
    /// record is connected at once (`volume::attach`).
    ReserveAttachment {
        attachment_id: Uuid,
        instance_uuid: Option<String>,
        mode: Option<AttachMode>,
        connector: Option<attach::Connector>,
    },
    /// Cinder 3.27 attachment-update with a connector.
    ConnectAttachment {
        attachment_id: Uuid,
        connector: attach::Connector,
    },
    /// Cinder 3.44 `os-complete`.
    CompleteAttachment {
        attachment_id: Uuid,
    },
    /// Cinder 3.27 attachment-delete.
    DeleteAttachment {
        attachment_id: Uuid,
    },
    /// CINDER-7.2.7 / 7.2.8.
    Reserve,
    Unreserve,
    /// CINDER-7.2.2.
    SetBootable {
        bootable: bool,
    },
    /// CINDER-7.2.3.
    SetReadonly {
        readonly: bool,
    },
    /// Cinder `os-retype` without migration: the volume stays on its
    /// backend. `new_type` is already resolved (its name);
    /// `migration_needed` says why the volume would have to move (another
    /// backend, other encryption), which this service cannot do.
    Retype {
        new_type: String,
        migration_needed: Option<String>,
        quota: crate::quota::Headroom,
    },
    /// An administrator renamed the volume's type (`PUT /types/{id}` with a
    /// new name): the volume records its type by name, so it follows.
    /// A volume of another type, or a deleted one, is left as it is.
    FollowTypeRename {
        from: String,
        to: String,
    },
    /// CINDER-7.4.1: the volume waits for its transfer to be accepted.
    StartTransfer {
        transfer_id: Uuid,
        dependent_snapshots: usize,
        /// What happens to those snapshots (Cinder 3.55).
        snapshots: crate::transfer::SnapshotRule,
    },
    /// CINDER-7.4.3: the transfer was deleted before acceptance.
    CancelTransfer {
        transfer_id: Uuid,
    },
    /// CINDER-7.4.2: ownership moves to the accepting project.
    CompleteTransfer {
        transfer_id: Uuid,
        to_project: String,
        to_user: String,
        quota: crate::quota::Headroom,
        /// Sizes of the snapshots that move with the volume (Cinder 3.55):
        /// the accepting project's quota takes them too.
        moving_snapshots: Vec<i64>,
    },
    /// CINDER-7.2.4: the volume is `uploading` while its bytes are exported.
    StartUpload {
        image_id: Uuid,
        force: bool,
    },
    /// Executor: the export ended (either way); back to the previous status.
    EndUpload {
        image_id: Uuid,
    },
    /// Cinder 3.68 os-reimage (`reimage::check` decides).
    Reimage(Box<reimage::Reimage>),
    /// Executor: the disk work for `kind` has begun.
    StartWork {
        kind: WorkKind,
    },
    /// Executor: the disk work for `kind` succeeded.
    CompleteWork {
        kind: WorkKind,
    },
    /// Executor: the disk work for `kind` failed for `reason`.
    FailWork {
        kind: WorkKind,
        reason: String,
    },
}

// Events are decoded, folded and dropped; the variant size does not matter
// and a box would only complicate the serde shape.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum VolumeEvent {
    VolumeCreateRequested {
        volume_id: Uuid,
        project_id: String,
        user_id: String,
        name: Option<String>,
        description: Option<String>,
        size: i64,
        availability_zone: String,
        volume_type: String,
        metadata: BTreeMap<String, String>,
        multiattach: bool,
        job_id: Option<String>,
        // The fields below came after the first shape; a v1 event without
        // them gets them from `upcast` (v2 writes every field).
        snapshot_id: Option<Uuid>,
        linked_clone: bool,
        batch_job_id: Option<String>,
        image_id: Option<Uuid>,
        /// `volume_image_metadata`; a volume made from an image boots.
        image_metadata: Option<BTreeMap<String, String>>,
        /// `source_volid`: the volume whose bytes the new one starts with.
        source_volume_id: Option<Uuid>,
        /// The backend the volume was placed on (issue 16). Events written
        /// before placement was recorded have none: their volume lives
        /// where the old rule put it, `catalog::backend_of(volume_type)`,
        /// which is what the fold resolves them to, so they decode (and
        /// replay) unchanged without an upcast step.
        #[serde(default)]
        backend: Option<String>,
    },
    VolumeWorkStarted {
        kind: WorkKind,
    },
    VolumeAllocated {
        size: i64,
    },
    VolumeCreateFailed {
        reason: String,
    },
    VolumeUpdated {
        name: Option<String>,
        description: Option<String>,
        /// Replaces all metadata when present.
        #[serde(default)]
        metadata: Option<BTreeMap<String, String>>,
    },
    VolumeExtendRequested {
        old_size: i64,
        new_size: i64,
        job_id: Option<String>,
    },
    VolumeExtended {
        new_size: i64,
    },
    VolumeExtendFailed {
        reason: String,
    },
    VolumeDeleteRequested {
        job_id: Option<String>,
    },
    VolumeDeleted {},
    VolumeDeleteFailed {
        reason: String,
    },
    VolumeMetadataSet {
        metadata: BTreeMap<String, String>,
    },
    VolumeRollbackRequested {
        snapshot_id: Uuid,
        name: Option<String>,
    },
    VolumeRolledBack {
        snapshot_id: Uuid,
        name: Option<String>,
    },
    VolumeRollbackFailed {
        reason: String,
    },
    VolumeAttached {
        attachment: Attachment,
    },
    VolumeDetached {
        attachment_id: Uuid,
    },
    VolumeReserved {},
    VolumeUnreserved {},
    /// Cinder 3.27: an attachment record reserves the volume; completion
    /// is a `VolumeAttached` of the same id, deletion a `VolumeDetached`.
    AttachmentReserved {
        attachment_id: Uuid,
        instance_uuid: Option<String>,
        /// None is Cinder's `"null"` (no mode asked).
        attach_mode: Option<AttachMode>,
    },
    /// A connector was given: the record is `attaching`.
    AttachmentConnected {
        attachment_id: Uuid,
        connection: attach::Connection,
    },
    VolumeBootableSet {
        bootable: bool,
    },
    VolumeReadonlySet {
        readonly: bool,
    },
    VolumeRetyped {
        from: String,
        to: String,
    },
    /// The volume's type was renamed (no status change, no disk work).
    VolumeTypeRenamed {
        from: String,
        to: String,
    },
    VolumeTransferStarted {
        transfer_id: Uuid,
    },
    VolumeTransferCancelled {
        transfer_id: Uuid,
    },
    /// Stored as `*_id` since v2 (`upcast`).
    VolumeTransferred {
        transfer_id: Uuid,
        #[serde(rename = "from_project_id")]
        from_project: String,
        #[serde(rename = "to_project_id")]
        to_project: String,
        #[serde(rename = "to_user_id")]
        to_user: String,
    },
    VolumeUploadStarted {
        image_id: Uuid,
        previous: VolumeStatus,
    },
    VolumeUploadEnded {
        image_id: Uuid,
        previous: VolumeStatus,
    },
    /// Cinder 3.68: the volume is `downloading` until `image_id`'s bytes
    /// replace its own; `previous` is the status it returns to.
    VolumeReimageRequested {
        image_id: Uuid,
        /// The new `volume_image_metadata` (the image's, as at create).
        image_metadata: BTreeMap<String, String>,
        previous: VolumeStatus,
        job_id: Option<String>,
    },
    /// The bytes are written: back to `previous`, bootable, with the
    /// image's `volume_image_metadata` (Cinder refreshes it on success).
    VolumeReimaged {
        image_id: Uuid,
        image_metadata: BTreeMap<String, String>,
    },
    /// The copy failed: the volume is `error` (Cinder's manager).
    VolumeReimageFailed {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    Rw,
    Ro,
}

/// One attachment record (API.md 2.1.9 `Attachment`). The time it was made
/// is the event's recorded time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub attachment_id: Uuid,
    pub server_id: String,
    pub host_name: Option<String>,
    pub device: String,
    pub mode: AttachMode,
}

/// What the decider needs to know about a volume (not the view: the view is
/// a projection with every documented field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub id: Uuid,
    pub project_id: String,
    pub size: i64,
    pub status: VolumeStatus,
    pub multiattach: bool,
    /// Status to return to when an extend ends (available or in-use).
    pub status_before_extend: VolumeStatus,
    pub pending_size: Option<i64>,
    /// The work of the current transitional status has been started.
    pub work_started: bool,
    pub metadata: BTreeMap<String, String>,
    pub volume_type: String,
    pub availability_zone: String,
    pub attachments: Vec<Attachment>,
    pub transfer_id: Option<Uuid>,
    /// The image being exported while `uploading`, and the status to return to.
    pub upload: Option<Uuid>,
    pub status_before_upload: VolumeStatus,
    /// The snapshot a pending rollback restores, and the new name it sets.
    pub pending_rollback: Option<(Uuid, Option<String>)>,
    /// Attachment records not yet attached (Cinder 3.27).
    #[serde(default)]
    pub pending: Vec<attach::PendingAttachment>,
    /// A pending reimage's image and the status it returns to (Cinder's
    /// previous_status).
    #[serde(default)]
    pub pending_reimage: Option<reimage::Pending>,
    /// The backend the volume lives on (`VolumeCreateRequested.backend`,
    /// resolved). It never changes: a retype that would move the volume
    /// is refused (no migration).
    pub backend: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeState {
    pub volume: Option<Volume>,
    pub deleted: bool,
}

impl VolumeState {
    /// The live volume, or 404 if it never existed or is deleted.
    fn live(&self, id_hint: &str) -> Result<&Volume, DomainError> {
        match (&self.volume, self.deleted) {
            (Some(v), false) => Ok(v),
            _ => Err(DomainError::VolumeNotFound(id_hint.to_string())),
        }
    }
}

pub struct VolumeAggregate;

/// How the read-only flag shows in metadata (CLIENTS.md: `readonly == "True"`).
pub fn readonly_flag(readonly: bool) -> &'static str {
    if readonly {
        "True"
    } else {
        "False"
    }
}

pub fn validate_size(size: i64) -> Result<(), DomainError> {
    if (limits::MIN_VOLUME_GB..=limits::MAX_VOLUME_GB).contains(&size) {
        Ok(())
    } else {
        Err(DomainError::InvalidSize { got: size })
    }
}

pub fn validate_name(name: Option<&str>) -> Result<(), DomainError> {
    match name {
        Some(n) if n.len() > limits::MAX_NAME_BYTES => Err(DomainError::InvalidName(format!(
            "name must be at most {} bytes",
            limits::MAX_NAME_BYTES
        ))),
        Some(n) if crate::text::has_control(n, false) => Err(DomainError::InvalidName(
            "name must not contain control characters".into(),
        )),
        _ => Ok(()),
    }
}

pub fn validate_description(desc: Option<&str>) -> Result<(), DomainError> {
    match desc {
        Some(d) if d.len() > limits::MAX_DESCRIPTION_BYTES => {
            Err(DomainError::InvalidDescription(format!(
                "description must be at most {} bytes",
                limits::MAX_DESCRIPTION_BYTES
            )))
        }
        // Line breaks are content in free text (see `text`).
        Some(d) if crate::text::has_control(d, true) => Err(DomainError::InvalidDescription(
            "description must not contain control characters other than tab and line breaks".into(),
        )),
        _ => Ok(()),
    }
}

/// The metadata keys that steer a create, shared by both create routes:
/// `hw:passthrough` is `true` (SCSI) or `false` (VBD) and not allowed with a
/// snapshot or image source (EVS.1057, EVS.1043); `full_clone` `"0"` asks
/// for a linked clone of the snapshot, `"1"` or absent for a full copy
/// (EVS.1063). Returns whether a linked clone is asked for.
pub fn creation_metadata(
    md: &BTreeMap<String, String>,
    has_source: bool,
) -> Result<bool, DomainError> {
    if let Some(p) = md.get("hw:passthrough") {
        if p != "true" && p != "false" {
            return Err(DomainError::invalid(
                "metadata.hw:passthrough",
                crate::error::FieldReason::Invalid,
                "invalid hw:passthrough in metadata!",
            ));
        }
        if has_source {
            return Err(DomainError::invalid("metadata.hw:passthrough", crate::error::FieldReason::Unsupported,
                "encrypt and cmk and passthrough in metadata is not support when create volume from snapshot or image!",
            ));
        }
    }
    match md.get("full_clone").map(String::as_str) {
        None | Some("1") => Ok(false),
        Some("0") => Ok(true),
        Some(_) => Err(DomainError::invalid(
            "metadata.full_clone",
            crate::error::FieldReason::Invalid,
            "invalid full_clone in metadata!",
        )),
    }
}

/// What a dialect's extend may start from. Data, not code: a dialect picks
/// one of the constants (as `CreatePolicy` for create).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtendPolicy {
    /// Cinder and EVS extend an attached volume (DECISIONS.md, Extend
    /// [5.1 #6]); the small provider documents "Extend the size of an
    /// unattached volume" and refuses it (DECISIONS.md [5.3 #8]).
    pub attached_refused: bool,
    /// Cinder's `/v3` below microversion 3.42 extends only an `available`
    /// volume (cinder/volume/api.py `extend`, not `extend_attached_volume`).
    pub available_only: bool,
}

impl ExtendPolicy {
    /// From `available` or `in-use` (Cinder, EVS).
    pub const OPEN: ExtendPolicy = ExtendPolicy {
        attached_refused: false,
        available_only: false,
    };
    /// Cinder `/v3` before 3.42.
    pub const AVAILABLE_ONLY: ExtendPolicy = ExtendPolicy {
        attached_refused: false,
        available_only: true,
    };
    /// Only an unattached volume (the small provider's `volume/extend`).
    pub const UNATTACHED_ONLY: ExtendPolicy = ExtendPolicy {
        attached_refused: true,
        available_only: false,
    };

    pub fn check(&self, id: Uuid, status: VolumeStatus) -> Result<(), DomainError> {
        if self.available_only && status == VolumeStatus::InUse {
            return Err(DomainError::ExtendNeedsAvailable {
                id: id.to_string(),
                status: status.as_str().into(),
            });
        }
        if self.attached_refused && matches!(status, VolumeStatus::InUse | VolumeStatus::Attaching)
        {
            return Err(DomainError::ExtendAttached(status.as_str().into()));
        }
        Ok(())
    }
}

/// The first `/dev/vdX` not in `taken` (`/dev/vda` is the server's root
/// disk, so data volumes start at `/dev/vdb`); past `/dev/vdz` the names go
/// on as `/dev/vdaa`, … as Linux names them.
pub fn next_free_device(taken: &[String]) -> String {
    (1u32..)
        .map(|n| {
            let mut name = String::new();
            let mut i = n;
            loop {
                name.insert(0, (b'a' + (i % 26) as u8) as char);
                if i < 26 {
                    break;
                }
                i = i / 26 - 1;
            }
            format!("/dev/vd{name}")
        })
        .find(|d| !taken.iter().any(|t| t == d))
        .unwrap_or_else(|| "/dev/vdb".to_string())
}

/// At most one data source per create (EVS.1016, API.md 3.17).
pub fn check_single_source(sources: &[bool]) -> Result<(), DomainError> {
    if sources.iter().filter(|s| **s).count() > 1 {
        Err(DomainError::invalid(
            "source",
            crate::error::FieldReason::Conflict,
            "Invalid input received: May specify only one of imageRef, snapshot_id, backup_id!",
        ))
    } else {
        Ok(())
    }
}

/// Metadata rules shared by every dialect (API.md 3.12): non-empty keys,
/// 255-byte keys and values, bounded count and total size.
pub fn validate_metadata(md: &BTreeMap<String, String>) -> Result<(), DomainError> {
    if md.len() > limits::MAX_METADATA_ITEMS {
        return Err(DomainError::InvalidMetadata(format!(
            "at most {} metadata items are allowed",
            limits::MAX_METADATA_ITEMS
        )));
    }
    let mut total = 0usize;
    for (k, v) in md {
        if k.is_empty() || k.len() > limits::MAX_METADATA_KEY_BYTES {
            return Err(DomainError::InvalidMetadata(format!(
                "metadata key must be 1 to {} bytes",
                limits::MAX_METADATA_KEY_BYTES
            )));
        }
        if v.len() > limits::MAX_METADATA_VALUE_BYTES {
            return Err(DomainError::InvalidMetadata(format!(
                "metadata value of '{k}' must be at most {} bytes",
                limits::MAX_METADATA_VALUE_BYTES
            )));
        }
        if crate::text::has_control(k, false) || crate::text::has_control(v, false) {
            return Err(DomainError::InvalidMetadata(
                "metadata keys and values must not contain control characters".into(),
            ));
        }
        total += k.len() + v.len();
    }
    if total >= limits::MAX_METADATA_TOTAL_BYTES {
        return Err(DomainError::MetadataTooLarge);
    }
    Ok(())
}

impl Aggregate for VolumeAggregate {
    type State = VolumeState;
    type Command = VolumeCommand;
    type Event = VolumeEvent;

    fn stream_id(id: &str) -> String {
        format!("volume-{id}")
    }

    // 2: `Volume.backend` (issue 16).
    const STATE_VERSION: u32 = 2;

    fn event_type(event: &VolumeEvent) -> &'static str {
        use VolumeEvent::*;
        match event {
            VolumeCreateRequested { .. } => "VolumeCreateRequested",
            VolumeWorkStarted { .. } => "VolumeWorkStarted",
            VolumeAllocated { .. } => "VolumeAllocated",
            VolumeCreateFailed { .. } => "VolumeCreateFailed",
            VolumeUpdated { .. } => "VolumeUpdated",
            VolumeExtendRequested { .. } => "VolumeExtendRequested",
            VolumeExtended { .. } => "VolumeExtended",
            VolumeExtendFailed { .. } => "VolumeExtendFailed",
            VolumeDeleteRequested { .. } => "VolumeDeleteRequested",
            VolumeDeleted {} => "VolumeDeleted",
            VolumeDeleteFailed { .. } => "VolumeDeleteFailed",
            VolumeMetadataSet { .. } => "VolumeMetadataSet",
            VolumeRollbackRequested { .. } => "VolumeRollbackRequested",
            VolumeRolledBack { .. } => "VolumeRolledBack",
            VolumeRollbackFailed { .. } => "VolumeRollbackFailed",
            VolumeAttached { .. } => "VolumeAttached",
            VolumeDetached { .. } => "VolumeDetached",
            VolumeReserved {} => "VolumeReserved",
            VolumeUnreserved {} => "VolumeUnreserved",
            AttachmentReserved { .. } => "AttachmentReserved",
            AttachmentConnected { .. } => "AttachmentConnected",
            VolumeBootableSet { .. } => "VolumeBootableSet",
            VolumeReadonlySet { .. } => "VolumeReadonlySet",
            VolumeRetyped { .. } => "VolumeRetyped",
            VolumeTypeRenamed { .. } => "VolumeTypeRenamed",
            VolumeTransferStarted { .. } => "VolumeTransferStarted",
            VolumeTransferCancelled { .. } => "VolumeTransferCancelled",
            VolumeTransferred { .. } => "VolumeTransferred",
            VolumeUploadStarted { .. } => "VolumeUploadStarted",
            VolumeUploadEnded { .. } => "VolumeUploadEnded",
            VolumeReimageRequested { .. } => "VolumeReimageRequested",
            VolumeReimaged { .. } => "VolumeReimaged",
            VolumeReimageFailed { .. } => "VolumeReimageFailed",
        }
    }

    fn decide(state: &VolumeState, cmd: VolumeCommand) -> Result<Vec<VolumeEvent>, DomainError> {
        use VolumeCommand as C;
        use VolumeEvent as E;
        use VolumeStatus as S;
        match cmd {
            C::Create(c) => {
                let c = *c;
                if state.volume.is_some() {
                    return Err(DomainError::VolumeAlreadyExists(c.volume_id.to_string()));
                }
                validate_size(c.size)?;
                validate_name(c.name.as_deref())?;
                validate_description(c.description.as_deref())?;
                validate_metadata(&c.metadata)?;
                c.quota
                    .admit(&crate::quota::Delta::volume(&c.volume_type, c.size))?;
                let mut image = None;
                let mut source_volume_id = None;
                // A clone lives on its source's backend (its bytes start
                // as the source's: linked clones share them); any other
                // volume where the scheduler placed it, or by the old rule.
                let backend = match &c.source {
                    Some(CreateSource::Volume(v)) => v.backend.clone(),
                    Some(CreateSource::Snapshot(s)) => s.backend.clone(),
                    _ => c
                        .backend
                        .clone()
                        .unwrap_or_else(|| crate::catalog::backend_of(&c.volume_type).to_string()),
                };
                let (snapshot_id, linked_clone) = match &c.source {
                    None => (None, false),
                    Some(CreateSource::Volume(v)) => {
                        if !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse) {
                            return Err(DomainError::SourceVolumeNotAvailable(
                                v.status.as_str().into(),
                            ));
                        }
                        if c.size < v.size {
                            return Err(DomainError::SmallerThanSourceVolume {
                                size: c.size,
                                source_size: v.size,
                            });
                        }
                        // Type may differ (the quota counts the new one);
                        // the zone may not: the clone shares the source's
                        // storage.
                        if c.availability_zone != v.availability_zone {
                            return Err(DomainError::SourceVolumeZoneMismatch(
                                v.availability_zone.clone(),
                            ));
                        }
                        source_volume_id = Some(v.volume_id);
                        (None, false)
                    }
                    Some(CreateSource::Image(i)) => {
                        if i.status != crate::image::ImageStatus::Active {
                            return Err(DomainError::ImageNotActive(i.image_id.to_string()));
                        }
                        let needed = i.min_disk.max(i.virtual_size.div_ceil(1 << 30) as i64);
                        if c.size < needed {
                            return Err(DomainError::SmallerThanImage {
                                size: c.size,
                                needed,
                            });
                        }
                        image = Some((i.image_id, i.metadata.clone()));
                        (None, false)
                    }
                    Some(CreateSource::Snapshot(s)) => {
                        if s.status != crate::SnapshotStatus::Available {
                            return Err(DomainError::SnapshotNotAvailable(
                                s.status.as_str().into(),
                            ));
                        }
                        if c.size < s.size {
                            return Err(DomainError::SmallerThanSnapshot {
                                size: c.size,
                                snapshot: s.size,
                            });
                        }
                        if c.volume_type != s.volume_type {
                            return Err(DomainError::SnapshotTypeMismatch {
                                wanted: c.volume_type.clone(),
                                snapshot: s.volume_type.clone(),
                            });
                        }
                        if c.availability_zone != s.availability_zone {
                            return Err(DomainError::SnapshotZoneMismatch(
                                s.availability_zone.clone(),
                            ));
                        }
                        (Some(s.snapshot_id), s.linked)
                    }
                };
                Ok(vec![E::VolumeCreateRequested {
                    volume_id: c.volume_id,
                    project_id: c.project_id,
                    user_id: c.user_id,
                    name: c.name,
                    description: c.description,
                    size: c.size,
                    availability_zone: c.availability_zone,
                    volume_type: c.volume_type,
                    metadata: c.metadata,
                    multiattach: c.multiattach,
                    job_id: c.job_id,
                    snapshot_id,
                    linked_clone,
                    batch_job_id: c.batch_job_id,
                    image_id: image.as_ref().map(|i| i.0),
                    image_metadata: image.map(|i| i.1),
                    source_volume_id,
                    backend: Some(backend),
                }])
            }
            C::Update {
                name,
                description,
                metadata,
            } => {
                state.live("")?;
                if name.is_none() && description.is_none() && metadata.is_none() {
                    return Err(DomainError::NameAndDescriptionEmpty);
                }
                validate_name(name.as_deref())?;
                validate_description(description.as_deref())?;
                if let Some(md) = &metadata {
                    validate_metadata(md)?;
                }
                Ok(vec![E::VolumeUpdated {
                    name,
                    description,
                    metadata,
                }])
            }
            C::Extend {
                new_size,
                job_id,
                quota,
                policy,
            } => {
                let v = state.live("")?;
                policy.check(v.id, v.status)?;
                match v.status {
                    S::Available => {}
                    S::InUse if v.multiattach => return Err(DomainError::ExtendMultiattachInUse),
                    S::InUse => {}
                    S::ErrorExtending => return Err(DomainError::ExtendErrorExtending),
                    other => return Err(DomainError::ExtendWrongStatus(other.as_str().into())),
                }
                if new_size <= v.size {
                    return Err(DomainError::NewSizeNotGreater {
                        old: v.size,
                        new: new_size,
                    });
                }
                validate_size(new_size)?;
                quota.admit(&crate::quota::Delta::grow(
                    &v.volume_type,
                    new_size - v.size,
                    new_size,
                ))?;
                Ok(vec![E::VolumeExtendRequested {
                    old_size: v.size,
                    new_size,
                    job_id,
                }])
            }
            C::Delete {
                job_id,
                dependent_snapshots,
            } => {
                let v = state.live("")?;
                if dependent_snapshots > 0 {
                    // DECISIONS.md, Cascade [5.1 #37].
                    return Err(DomainError::VolumeHasSnapshots(dependent_snapshots));
                }
                match v.status {
                    S::Available
                    | S::Error
                    | S::ErrorExtending
                    | S::ErrorRestoring
                    | S::ErrorRollbacking
                    // A failed delete may be retried (Cinder allows it too).
                    | S::ErrorDeleting => Ok(vec![E::VolumeDeleteRequested { job_id }]),
                    other => Err(DomainError::DeleteWrongStatus(other.as_str().into())),
                }
            }
            C::ForceDelete {
                job_id,
                dependent_snapshots,
            } => {
                let v = state.live("")?;
                if dependent_snapshots > 0 {
                    return Err(DomainError::VolumeHasSnapshots(dependent_snapshots));
                }
                match v.status {
                    // `attaching` (reserved) is not attached: Cinder's
                    // force deletes it.
                    S::InUse | S::AwaitingTransfer | S::Deleting => {
                        Err(DomainError::DeleteWrongStatus(v.status.as_str().into()))
                    }
                    _ if !v.attachments.is_empty() => {
                        Err(DomainError::DeleteWrongStatus(v.status.as_str().into()))
                    }
                    _ => Ok(vec![E::VolumeDeleteRequested { job_id }]),
                }
            }
            C::EditMetadata(edit) => {
                let v = state.live("")?;
                let metadata = crate::metadata::apply(&v.metadata, &edit)?;
                Ok(vec![E::VolumeMetadataSet { metadata }])
            }
            C::Rollback {
                snapshot_id,
                snapshot_volume_id,
                name,
            } => {
                let v = state.live("")?;
                if snapshot_volume_id != v.id {
                    return Err(DomainError::RollbackWrongVolume(
                        snapshot_volume_id.to_string(),
                    ));
                }
                if !matches!(v.status, S::Available | S::ErrorRollbacking) {
                    return Err(DomainError::RollbackWrongStatus(v.status.as_str().into()));
                }
                validate_name(name.as_deref())?;
                Ok(vec![E::VolumeRollbackRequested { snapshot_id, name }])
            }
            C::Attach {
                attachment_id,
                server_id,
                host_name,
                device,
                mode,
            } => {
                // What a client wrote is checked before any state is read:
                // the same refusal whatever the volume's status.
                crate::text::check_line("instance_uuid", &server_id)?;
                crate::text::check_device("mountpoint", &device)?;
                if let Some(h) = &host_name {
                    crate::text::check_line("host_name", h)?;
                }
                let v = state.live("")?;
                match v.status {
                    S::Available | S::Attaching => {}
                    S::InUse if v.multiattach => {}
                    other => return Err(DomainError::AttachWrongStatus(other.as_str().into())),
                }
                if server_id.is_empty() || server_id.len() > 255 {
                    return Err(DomainError::invalid(
                        "instance_uuid",
                        crate::error::FieldReason::Missing,
                        "instance_uuid is required.",
                    ));
                }
                if device.is_empty() || device.len() > 255 {
                    return Err(DomainError::invalid(
                        "mountpoint",
                        crate::error::FieldReason::Missing,
                        "mountpoint is required.",
                    ));
                }
                if host_name.as_ref().is_some_and(|h| h.len() > 255) {
                    return Err(DomainError::invalid(
                        "host_name",
                        crate::error::FieldReason::OutOfRange,
                        "host_name must be at most 255 bytes.",
                    ));
                }
                if v.attachments.iter().any(|a| a.server_id == server_id) {
                    return Err(DomainError::invalid(
                        "instance_uuid",
                        crate::error::FieldReason::Conflict,
                        format!(
                            "call ecs api - attach volume fail. Already attached to {server_id}."
                        ),
                    ));
                }
                Ok(vec![E::VolumeAttached {
                    attachment: Attachment {
                        attachment_id,
                        server_id,
                        host_name,
                        device,
                        mode,
                    },
                }])
            }
            C::Detach { attachment_id } => {
                let v = state.live("")?;
                if v.status != S::InUse || v.attachments.is_empty() {
                    return Err(DomainError::DetachWrongStatus(v.status.as_str().into()));
                }
                let id = match (attachment_id, v.attachments.as_slice()) {
                    (Some(id), atts) if atts.iter().any(|a| a.attachment_id == id) => id,
                    (Some(id), _) => return Err(DomainError::AttachmentNotFound(id.to_string())),
                    (None, [only]) => only.attachment_id,
                    // DECISIONS.md [5.1 #21]: required with several attachments.
                    (None, _) => return Err(DomainError::invalid(
                        "attachment_id",
                        crate::error::FieldReason::Missing,
                        "attachment_id is required to detach a volume with several attachments.",
                    )),
                };
                Ok(vec![E::VolumeDetached { attachment_id: id }])
            }
            C::ReserveAttachment {
                attachment_id,
                instance_uuid,
                mode,
                connector,
            } => {
                if let Some(i) = &instance_uuid {
                    crate::text::check_line("instance_uuid", i)?;
                }
                let v = state.live("")?;
                attach::check_reserve(v, instance_uuid.as_deref())?;
                // The deprecated read-only flag overrides the asked mode,
                // as Cinder's admin metadata does.
                let attach_mode = if v.metadata.get("readonly").map(String::as_str) == Some("True")
                {
                    Some(AttachMode::Ro)
                } else {
                    mode
                };
                let reserved = E::AttachmentReserved {
                    attachment_id,
                    instance_uuid,
                    attach_mode,
                };
                let Some(connector) = connector else {
                    return Ok(vec![reserved]);
                };
                let after = Self::evolve(state.clone(), &reserved);
                let connection = attach::connect(after.live("")?, attachment_id, &connector)?;
                Ok(vec![
                    reserved,
                    E::AttachmentConnected {
                        attachment_id,
                        connection,
                    },
                ])
            }
            C::ConnectAttachment {
                attachment_id,
                connector,
            } => {
                let v = state.live("")?;
                let connection = attach::connect(v, attachment_id, &connector)?;
                Ok(vec![E::AttachmentConnected {
                    attachment_id,
                    connection,
                }])
            }
            C::CompleteAttachment { attachment_id } => {
                let v = state.live("")?;
                if v.attachments
                    .iter()
                    .any(|a| a.attachment_id == attachment_id)
                {
                    return Ok(vec![]); // already attached
                }
                let p = attach::pending(v, attachment_id)?;
                let c = p.connection.as_ref();
                Ok(vec![E::VolumeAttached {
                    attachment: Attachment {
                        attachment_id,
                        server_id: p.instance_uuid.clone().unwrap_or_default(),
                        host_name: c.and_then(|c| c.host.clone()),
                        device: c.map(|c| c.mountpoint.clone()).unwrap_or_default(),
                        mode: c
                            .map(|c| c.mode)
                            .or(p.attach_mode)
                            .unwrap_or(AttachMode::Rw),
                    },
                }])
            }
            C::DeleteAttachment { attachment_id } => {
                let v = state.live("")?;
                let known = v
                    .attachments
                    .iter()
                    .any(|a| a.attachment_id == attachment_id)
                    || v.pending.iter().any(|p| p.attachment_id == attachment_id);
                if !known {
                    return Err(DomainError::AttachmentNotFound(attachment_id.to_string()));
                }
                Ok(vec![E::VolumeDetached { attachment_id }])
            }
            C::Reserve => {
                let v = state.live("")?;
                match v.status {
                    S::Available => Ok(vec![E::VolumeReserved {}]),
                    S::InUse if v.multiattach => Ok(vec![E::VolumeReserved {}]),
                    other => Err(DomainError::AttachWrongStatus(other.as_str().into())),
                }
            }
            C::Unreserve => {
                let v = state.live("")?;
                match v.status {
                    S::Attaching => Ok(vec![E::VolumeUnreserved {}]),
                    // Idempotent: nothing reserved, nothing to undo.
                    S::Available | S::InUse => Ok(vec![]),
                    other => Err(DomainError::AttachWrongStatus(other.as_str().into())),
                }
            }
            C::SetBootable { bootable } => {
                state.live("")?;
                Ok(vec![E::VolumeBootableSet { bootable }])
            }
            C::Retype {
                new_type,
                migration_needed,
                quota,
            } => {
                let v = state.live("")?;
                if !matches!(v.status, S::Available | S::InUse) {
                    return Err(DomainError::RetypeRefused(format!(
                        "volume status must be available or in-use to retype (status {}).",
                        v.status.as_str()
                    )));
                }
                if new_type == v.volume_type {
                    return Err(DomainError::RetypeRefused(
                        "New volume type must be different from the original.".into(),
                    ));
                }
                if let Some(why) = migration_needed {
                    return Err(DomainError::RetypeRefused(format!(
                        "Retype needs a migration, which this service does not do: {why}."
                    )));
                }
                // Cinder reserves the volume under the new type's
                // per-type quota keys; the project totals do not change.
                quota.admit_type_change(&new_type, v.size)?;
                Ok(vec![E::VolumeRetyped {
                    from: v.volume_type.clone(),
                    to: new_type,
                }])
            }
            C::FollowTypeRename { from, to } => Ok(match (&state.volume, state.deleted) {
                (Some(v), false) if v.volume_type == from && from != to => {
                    vec![E::VolumeTypeRenamed { from, to }]
                }
                _ => vec![],
            }),
            C::SetReadonly { readonly } => {
                let v = state.live("")?;
                if !matches!(v.status, S::Available | S::InUse) {
                    return Err(DomainError::invalid("status", crate::error::FieldReason::Conflict,
                        format!("Volume status must be available or in-use to change read-only (status {}).", v.status.as_str()),
                    ));
                }
                Ok(vec![E::VolumeReadonlySet { readonly }])
            }
            C::StartTransfer {
                transfer_id,
                dependent_snapshots,
                snapshots,
            } => {
                let v = state.live("")?;
                if v.status != S::Available {
                    return Err(DomainError::TransferWrongStatus(v.status.as_str().into()));
                }
                snapshots.check()?;
                if dependent_snapshots > 0 && snapshots == crate::transfer::SnapshotRule::Refuse {
                    // DECISIONS.md, Transfers [5.1 #26].
                    return Err(DomainError::invalid(
                        "volume_id",
                        crate::error::FieldReason::Conflict,
                        "Invalid volume: a volume with snapshots cannot be transferred.",
                    ));
                }
                Ok(vec![E::VolumeTransferStarted { transfer_id }])
            }
            C::CancelTransfer { transfer_id } => {
                let v = state.live("")?;
                if v.status == S::AwaitingTransfer && v.transfer_id == Some(transfer_id) {
                    Ok(vec![E::VolumeTransferCancelled { transfer_id }])
                } else {
                    Ok(vec![])
                }
            }
            C::CompleteTransfer {
                transfer_id,
                to_project,
                to_user,
                quota,
                moving_snapshots,
            } => {
                let v = state.live("")?;
                if v.status != S::AwaitingTransfer || v.transfer_id != Some(transfer_id) {
                    return Err(DomainError::TransferWrongStatus(v.status.as_str().into()));
                }
                if to_project == v.project_id {
                    return Err(DomainError::invalid(
                        "project_id",
                        crate::error::FieldReason::Conflict,
                        "Invalid transfer: a project cannot accept its own transfer.",
                    ));
                }
                let mut delta = crate::quota::Delta::volume(&v.volume_type, v.size);
                delta.snapshots = moving_snapshots.len() as i64;
                delta.gigabytes += moving_snapshots.iter().sum::<i64>();
                quota.admit(&delta)?;
                Ok(vec![E::VolumeTransferred {
                    transfer_id,
                    from_project: v.project_id.clone(),
                    to_project,
                    to_user,
                }])
            }
            C::StartUpload { image_id, force } => {
                let v = state.live("")?;
                match v.status {
                    S::Available => {}
                    S::InUse if force => {}
                    other => return Err(DomainError::UploadWrongStatus(other.as_str().into())),
                }
                Ok(vec![E::VolumeUploadStarted {
                    image_id,
                    previous: v.status,
                }])
            }
            C::EndUpload { image_id } => match state.live("") {
                Ok(v) if v.status == S::Uploading && v.upload == Some(image_id) => {
                    Ok(vec![E::VolumeUploadEnded {
                        image_id,
                        previous: v.status_before_upload,
                    }])
                }
                _ => Ok(vec![]),
            },
            C::Reimage(r) => {
                let v = state.live("")?;
                reimage::check(v, &r)?;
                Ok(vec![E::VolumeReimageRequested {
                    image_id: r.image.image_id,
                    image_metadata: r.image.metadata,
                    previous: v.status,
                    job_id: r.job_id,
                }])
            }
            C::StartWork { kind } => {
                let v = state.live("")?;
                if v.status != kind.pending_status() || v.work_started {
                    return Ok(vec![]); // stale or repeated delivery
                }
                Ok(vec![E::VolumeWorkStarted { kind }])
            }
            C::CompleteWork { kind } => {
                let v = match state.live("") {
                    Ok(v) => v,
                    Err(_) => return Ok(vec![]),
                };
                if v.status != kind.pending_status() {
                    return Ok(vec![]);
                }
                Ok(vec![match kind {
                    WorkKind::Create => E::VolumeAllocated { size: v.size },
                    WorkKind::Extend => E::VolumeExtended {
                        new_size: v.pending_size.unwrap_or(v.size),
                    },
                    WorkKind::Delete => E::VolumeDeleted {},
                    WorkKind::Rollback => {
                        let (snapshot_id, name) = v.pending_rollback.clone().unwrap_or_default();
                        E::VolumeRolledBack { snapshot_id, name }
                    }
                    WorkKind::Reimage => {
                        let p = v.pending_reimage.clone().unwrap_or_default();
                        E::VolumeReimaged {
                            image_id: p.image_id,
                            image_metadata: p.image_metadata,
                        }
                    }
                }])
            }
            C::FailWork { kind, reason } => {
                let v = match state.live("") {
                    Ok(v) => v,
                    Err(_) => return Ok(vec![]),
                };
                if v.status != kind.pending_status() {
                    return Ok(vec![]);
                }
                Ok(vec![match kind {
                    WorkKind::Create => E::VolumeCreateFailed { reason },
                    WorkKind::Extend => E::VolumeExtendFailed { reason },
                    WorkKind::Delete => E::VolumeDeleteFailed { reason },
                    WorkKind::Rollback => E::VolumeRollbackFailed { reason },
                    WorkKind::Reimage => E::VolumeReimageFailed { reason },
                }])
            }
        }
    }

    fn evolve(mut state: VolumeState, event: &VolumeEvent) -> VolumeState {
        use VolumeEvent as E;
        use VolumeStatus as S;
        if let E::VolumeCreateRequested {
            volume_id,
            project_id,
            size,
            multiattach,
            metadata,
            volume_type,
            availability_zone,
            backend,
            ..
        } = event
        {
            let backend = backend
                .clone()
                .unwrap_or_else(|| crate::catalog::backend_of(volume_type).to_string());
            state.volume = Some(Volume {
                id: *volume_id,
                project_id: project_id.clone(),
                size: *size,
                status: S::Creating,
                multiattach: *multiattach,
                status_before_extend: S::Available,
                pending_size: None,
                work_started: false,
                metadata: metadata.clone(),
                volume_type: volume_type.clone(),
                availability_zone: availability_zone.clone(),
                attachments: Vec::new(),
                transfer_id: None,
                upload: None,
                status_before_upload: S::Available,
                pending_rollback: None,
                pending: Vec::new(),
                pending_reimage: None,
                backend,
            });
            return state;
        }
        let Some(v) = state.volume.as_mut() else {
            return state;
        };
        if let E::VolumeAttached { attachment } = event {
            v.pending
                .retain(|p| p.attachment_id != attachment.attachment_id);
            v.attachments.push(attachment.clone());
            v.status = S::InUse;
            return state;
        }
        match event {
            E::VolumeCreateRequested { .. } => {}
            E::VolumeWorkStarted { .. } => v.work_started = true,
            E::VolumeAllocated { .. } => {
                v.status = S::Available;
                v.work_started = false;
            }
            E::VolumeCreateFailed { .. } => {
                v.status = S::Error;
                v.work_started = false;
            }
            E::VolumeUpdated {
                metadata: Some(m), ..
            } => v.metadata = m.clone(),
            E::VolumeUpdated { .. } => {}
            E::VolumeExtendRequested { new_size, .. } => {
                v.status_before_extend = v.status;
                v.status = S::Extending;
                v.pending_size = Some(*new_size);
                v.work_started = false;
            }
            E::VolumeExtended { new_size } => {
                v.size = *new_size;
                v.status = v.status_before_extend;
                v.pending_size = None;
                v.work_started = false;
            }
            E::VolumeExtendFailed { .. } => {
                v.status = S::ErrorExtending;
                v.pending_size = None;
                v.work_started = false;
            }
            E::VolumeDeleteRequested { .. } => {
                v.status = S::Deleting;
                v.work_started = false;
            }
            E::VolumeDeleted {} => state.deleted = true,
            E::VolumeDeleteFailed { .. } => {
                v.status = S::ErrorDeleting;
                v.work_started = false;
            }
            E::VolumeMetadataSet { metadata } => v.metadata = metadata.clone(),
            E::VolumeRollbackRequested { snapshot_id, name } => {
                v.status = S::Rollingback;
                v.pending_rollback = Some((*snapshot_id, name.clone()));
                v.work_started = false;
            }
            E::VolumeRolledBack { .. } => {
                v.status = S::Available;
                v.pending_rollback = None;
                v.work_started = false;
            }
            E::VolumeRollbackFailed { .. } => {
                v.status = S::ErrorRollbacking;
                v.pending_rollback = None;
                v.work_started = false;
            }
            E::VolumeAttached { .. } => {}
            E::VolumeDetached { attachment_id } => {
                v.attachments.retain(|a| a.attachment_id != *attachment_id);
                v.pending.retain(|p| p.attachment_id != *attachment_id);
                if let Some(s) = attach::status_from_attachments(v) {
                    v.status = s;
                }
            }
            E::AttachmentReserved {
                attachment_id,
                instance_uuid,
                attach_mode,
            } => {
                v.pending.push(attach::PendingAttachment {
                    attachment_id: *attachment_id,
                    instance_uuid: instance_uuid.clone(),
                    attach_mode: *attach_mode,
                    status: attach::PendingStatus::Reserved,
                    connection: None,
                });
                if let Some(s) = attach::status_from_attachments(v) {
                    v.status = s;
                }
            }
            E::AttachmentConnected {
                attachment_id,
                connection,
            } => {
                if let Some(p) = v
                    .pending
                    .iter_mut()
                    .find(|p| p.attachment_id == *attachment_id)
                {
                    p.status = attach::PendingStatus::Attaching;
                    p.connection = Some(connection.clone());
                }
                if let Some(s) = attach::status_from_attachments(v) {
                    v.status = s;
                }
            }
            E::VolumeReserved {} => {
                if v.status == S::Available {
                    v.status = S::Attaching;
                }
            }
            E::VolumeUnreserved {} => v.status = S::Available,
            E::VolumeBootableSet { .. } => {}
            E::VolumeRetyped { to, .. } | E::VolumeTypeRenamed { to, .. } => {
                v.volume_type = to.clone()
            }
            E::VolumeReadonlySet { readonly } => {
                v.metadata
                    .insert("readonly".into(), readonly_flag(*readonly).into());
            }
            E::VolumeTransferStarted { transfer_id } => {
                v.status = S::AwaitingTransfer;
                v.transfer_id = Some(*transfer_id);
            }
            E::VolumeTransferCancelled { .. } => {
                v.status = S::Available;
                v.transfer_id = None;
            }
            E::VolumeTransferred { to_project, .. } => {
                v.status = S::Available;
                v.transfer_id = None;
                v.project_id = to_project.clone();
            }
            E::VolumeUploadStarted { image_id, previous } => {
                v.status = S::Uploading;
                v.upload = Some(*image_id);
                v.status_before_upload = *previous;
            }
            E::VolumeUploadEnded { previous, .. } => {
                v.status = *previous;
                v.upload = None;
            }
            E::VolumeReimageRequested {
                image_id,
                previous,
                image_metadata,
                ..
            } => {
                v.status = S::Downloading;
                v.pending_reimage = Some(reimage::Pending {
                    image_id: *image_id,
                    previous: *previous,
                    image_metadata: image_metadata.clone(),
                });
                v.work_started = false;
            }
            E::VolumeReimaged { .. } => {
                v.status = v
                    .pending_reimage
                    .take()
                    .map_or(S::Available, |p| p.previous);
                v.work_started = false;
            }
            E::VolumeReimageFailed { .. } => {
                v.status = S::Error;
                v.pending_reimage = None;
                v.work_started = false;
            }
        }
        state
    }
}

#[cfg(test)]
mod tests;
