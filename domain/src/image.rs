//! The image aggregate: `image-<uuid>`. An image is exported from a
//! volume's current bytes or from a snapshot (the same command serves the
//! Chinese cloud's `capture_instance` and the small provider's
//! `snapshot-replicate` later), or registered empty and uploaded through
//! the Glance-style API. Status: queued → saving → active, or killed with a
//! reason; deleted leaves the catalog.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Aggregate, DomainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    Queued,
    Saving,
    Active,
    Killed,
}

impl ImageStatus {
    /// The status a view shows, read back; `None` for an unknown word.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ImageStatus::Queued,
            ImageStatus::Saving,
            ImageStatus::Active,
            ImageStatus::Killed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Active => "active",
            ImageStatus::Killed => "killed",
        }
    }
}

/// Formats an export may produce (DECISIONS.md, Export format [5.1 #7]).
/// An export without `disk_format` writes vhd (DECISIONS.md, Export format
/// [5.1 #7, #8]).
pub const DEFAULT_EXPORT_FORMAT: &str = "vhd";
/// An image without `container_format` is `bare`.
pub const DEFAULT_CONTAINER_FORMAT: &str = "bare";

/// A snapshot can be exported only once its bytes exist and while nothing
/// is rewriting them.
pub fn check_snapshot_source(status: crate::SnapshotStatus) -> Result<(), DomainError> {
    if status != crate::SnapshotStatus::Available {
        return Err(DomainError::SnapshotNotAvailable(
            status.as_str().to_string(),
        ));
    }
    Ok(())
}

/// Only an administrator may publish an image to every project.
pub fn may_publish(visibility: &str, is_admin: bool) -> Result<(), DomainError> {
    if visibility == "public" && !is_admin {
        return Err(DomainError::NotPermitted(
            "only admin may publish public images.".into(),
        ));
    }
    Ok(())
}

pub fn check_disk_format(f: &str) -> Result<(), DomainError> {
    match f {
        "raw" | "qcow2" | "vhd" => Ok(()),
        "zvhd" | "zvhd2" => Err(DomainError::invalid("disk_format", crate::error::FieldReason::Unsupported,
            format!("disk_format {f} is a vendor format this service cannot write; use vhd, qcow2 or raw."),
        )),
        other => Err(DomainError::invalid("disk_format", crate::error::FieldReason::Invalid, format!("Invalid disk_format '{other}': vhd, qcow2 or raw."))),
    }
}

pub fn check_container_format(f: &str) -> Result<(), DomainError> {
    match f {
        "bare" | "ovf" | "ami" | "ari" | "aki" => Ok(()),
        other => Err(DomainError::invalid(
            "container_format",
            crate::error::FieldReason::Invalid,
            format!("Invalid container_format '{other}'."),
        )),
    }
}

/// CINDER-7.2.4 `image_name`: 1–128 characters, no leading or trailing
/// space; letters (any script), digits, `-`, `.`, `_`, space.
pub fn check_image_name(name: &str) -> Result<(), DomainError> {
    let n = name.chars().count();
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ' '));
    if n == 0 || n > 128 || name.starts_with(' ') || name.ends_with(' ') || !ok_chars {
        return Err(DomainError::invalid("image_name", crate::error::FieldReason::Invalid,
            "Invalid image_name: 1 to 128 letters, digits, '-', '.', '_' or spaces, not starting or ending with a space.",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// The volume's current bytes, its whole backing chain flattened.
    Volume {
        volume_id: Uuid,
    },
    Snapshot {
        snapshot_id: Uuid,
    },
    /// Bytes uploaded through `PUT /image/v2/images/{id}/file`.
    Upload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    pub image_id: Uuid,
    pub project_id: String,
    pub name: String,
    pub disk_format: String,
    pub container_format: String,
    pub visibility: String,
    /// Glance's `protected`: such an image cannot be deleted (Cinder's
    /// upload-to-image takes it from microversion 3.1).
    pub protected: bool,
    pub min_disk: i64,
    pub source: ImageSource,
    pub os_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCommand {
    Create(NewImage),
    StartWork,
    /// A client uploads the bytes (Glance `PUT …/file`): only into an
    /// image registered for upload and still `queued`.
    BeginUpload,
    Complete {
        size: u64,
        virtual_size: u64,
        checksum_sha256: String,
    },
    Fail {
        reason: String,
    },
    /// Glance's `PATCH … replace /protected`: how the owner lifts the
    /// protection before deleting.
    SetProtected {
        protected: bool,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ImageEvent {
    ImageCreateRequested {
        image_id: Uuid,
        project_id: String,
        name: String,
        disk_format: String,
        container_format: String,
        visibility: String,
        /// Since v2 (microversion 3.1's upload-to-image `protected`); a v1
        /// event is upcast with `false` (domain::upcast).
        protected: bool,
        min_disk: i64,
        source: ImageSource,
        os_type: Option<String>,
    },
    ImageSaving {},
    ImageActive {
        size: u64,
        virtual_size: u64,
        checksum_sha256: String,
        /// GiB the image needs: at least its virtual size, rounded up.
        min_disk: i64,
    },
    ImageKilled {
        reason: String,
    },
    ImageProtectedSet {
        protected: bool,
    },
    ImageDeleted {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: Uuid,
    pub project_id: String,
    pub status: ImageStatus,
    pub source: ImageSource,
    pub visibility: String,
    #[serde(default)]
    pub protected: bool,
    pub disk_format: String,
    pub min_disk: i64,
    pub virtual_size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageState {
    pub image: Option<Image>,
    pub deleted: bool,
}

impl ImageState {
    pub fn live(&self) -> Result<&Image, DomainError> {
        match (&self.image, self.deleted) {
            (Some(i), false) => Ok(i),
            _ => Err(DomainError::ImageNotFound(String::new())),
        }
    }
}

pub struct ImageAggregate;

const GIB: u64 = 1 << 30;

impl Aggregate for ImageAggregate {
    type State = ImageState;
    type Command = ImageCommand;
    type Event = ImageEvent;

    fn stream_id(id: &str) -> String {
        format!("image-{id}")
    }

    fn event_type(e: &ImageEvent) -> &'static str {
        match e {
            ImageEvent::ImageCreateRequested { .. } => "ImageCreateRequested",
            ImageEvent::ImageSaving {} => "ImageSaving",
            ImageEvent::ImageActive { .. } => "ImageActive",
            ImageEvent::ImageKilled { .. } => "ImageKilled",
            ImageEvent::ImageProtectedSet { .. } => "ImageProtectedSet",
            ImageEvent::ImageDeleted {} => "ImageDeleted",
        }
    }

    fn decide(state: &ImageState, cmd: ImageCommand) -> Result<Vec<ImageEvent>, DomainError> {
        match cmd {
            ImageCommand::Create(n) => {
                if state.image.is_some() {
                    return Err(DomainError::invalid(
                        "id",
                        crate::error::FieldReason::Conflict,
                        "image already exists",
                    ));
                }
                check_image_name(&n.name)?;
                check_disk_format(&n.disk_format)?;
                check_container_format(&n.container_format)?;
                if !matches!(n.visibility.as_str(), "private" | "public") {
                    return Err(DomainError::invalid(
                        "visibility",
                        crate::error::FieldReason::Invalid,
                        "visibility must be private or public",
                    ));
                }
                if !(0..=crate::limits::MAX_VOLUME_GB).contains(&n.min_disk) {
                    return Err(DomainError::invalid(
                        "min_disk",
                        crate::error::FieldReason::OutOfRange,
                        "min_disk out of range",
                    ));
                }
                if let Some(os) = &n.os_type {
                    if os != "linux" && os != "windows" {
                        return Err(DomainError::invalid(
                            "__os_type",
                            crate::error::FieldReason::Invalid,
                            "__os_type must be linux or windows",
                        ));
                    }
                }
                Ok(vec![ImageEvent::ImageCreateRequested {
                    image_id: n.image_id,
                    project_id: n.project_id,
                    name: n.name,
                    disk_format: n.disk_format,
                    container_format: n.container_format,
                    visibility: n.visibility,
                    protected: n.protected,
                    min_disk: n.min_disk,
                    source: n.source,
                    os_type: n.os_type,
                }])
            }
            ImageCommand::BeginUpload => {
                let i = state.live()?;
                if i.status != ImageStatus::Queued || i.source != ImageSource::Upload {
                    return Err(DomainError::ImageNotUploadable(
                        i.status.as_str().to_string(),
                    ));
                }
                Ok(vec![ImageEvent::ImageSaving {}])
            }
            ImageCommand::StartWork => {
                let i = state.live()?;
                if i.status != ImageStatus::Queued {
                    return Ok(vec![]);
                }
                Ok(vec![ImageEvent::ImageSaving {}])
            }
            ImageCommand::Complete {
                size,
                virtual_size,
                checksum_sha256,
            } => {
                let i = match state.live() {
                    Ok(i) => i,
                    Err(_) => return Ok(vec![]),
                };
                if !matches!(i.status, ImageStatus::Queued | ImageStatus::Saving) {
                    return Ok(vec![]);
                }
                let min_disk = i.min_disk.max(virtual_size.div_ceil(GIB) as i64);
                Ok(vec![ImageEvent::ImageActive {
                    size,
                    virtual_size,
                    checksum_sha256,
                    min_disk,
                }])
            }
            ImageCommand::Fail { reason } => match state.live() {
                Ok(i) if matches!(i.status, ImageStatus::Queued | ImageStatus::Saving) => {
                    Ok(vec![ImageEvent::ImageKilled { reason }])
                }
                _ => Ok(vec![]),
            },
            ImageCommand::SetProtected { protected } => {
                let i = state.live()?;
                if i.protected == protected {
                    return Ok(vec![]);
                }
                Ok(vec![ImageEvent::ImageProtectedSet { protected }])
            }
            ImageCommand::Delete => {
                let i = state.live()?;
                if i.protected {
                    return Err(DomainError::ImageProtected(i.id.to_string()));
                }
                if i.status == ImageStatus::Saving {
                    return Err(DomainError::invalid(
                        "status",
                        crate::error::FieldReason::Conflict,
                        "Image is being saved; delete it once it is active or killed.",
                    ));
                }
                Ok(vec![ImageEvent::ImageDeleted {}])
            }
        }
    }

    fn evolve(mut state: ImageState, e: &ImageEvent) -> ImageState {
        match e {
            ImageEvent::ImageCreateRequested {
                image_id,
                project_id,
                source,
                visibility,
                protected,
                disk_format,
                min_disk,
                ..
            } => {
                state.image = Some(Image {
                    id: *image_id,
                    project_id: project_id.clone(),
                    status: ImageStatus::Queued,
                    source: source.clone(),
                    visibility: visibility.clone(),
                    protected: *protected,
                    disk_format: disk_format.clone(),
                    min_disk: *min_disk,
                    virtual_size: 0,
                })
            }
            ImageEvent::ImageSaving {} => {
                if let Some(i) = state.image.as_mut() {
                    i.status = ImageStatus::Saving;
                }
            }
            ImageEvent::ImageActive {
                virtual_size,
                min_disk,
                ..
            } => {
                if let Some(i) = state.image.as_mut() {
                    i.status = ImageStatus::Active;
                    i.virtual_size = *virtual_size;
                    i.min_disk = *min_disk;
                }
            }
            ImageEvent::ImageKilled { .. } => {
                if let Some(i) = state.image.as_mut() {
                    i.status = ImageStatus::Killed;
                }
            }
            ImageEvent::ImageProtectedSet { protected } => {
                if let Some(i) = state.image.as_mut() {
                    i.protected = *protected;
                }
            }
            ImageEvent::ImageDeleted {} => state.deleted = true,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(format: &str) -> ImageCommand {
        ImageCommand::Create(NewImage {
            image_id: Uuid::from_u128(1),
            project_id: "p".into(),
            name: "img 1".into(),
            disk_format: format.into(),
            container_format: "bare".into(),
            visibility: "private".into(),
            protected: false,
            min_disk: 0,
            source: ImageSource::Volume {
                volume_id: Uuid::from_u128(2),
            },
            os_type: None,
        })
    }

    #[test]
    fn vendor_formats_and_bad_names_are_refused() {
        let s = ImageState::default();
        for f in ["raw", "qcow2", "vhd"] {
            assert!(ImageAggregate::decide(&s, new(f)).is_ok(), "{f}");
        }
        for f in ["zvhd", "zvhd2", "iso"] {
            assert!(ImageAggregate::decide(&s, new(f)).is_err(), "{f}");
        }
        for n in ["", " lead", "trail ", "bad/char", &"x".repeat(129)] {
            assert!(check_image_name(n).is_err(), "{n:?}");
        }
        assert!(check_image_name("镜像-1.0_a b").is_ok());
    }

    #[test]
    fn queued_saving_active_with_min_disk_from_virtual_size() {
        let mut ev = ImageAggregate::decide(&ImageState::default(), new("qcow2")).unwrap();
        ev.extend(
            ImageAggregate::decide(&ImageAggregate::fold(&ev), ImageCommand::StartWork).unwrap(),
        );
        let done = ImageCommand::Complete {
            size: 10,
            virtual_size: (3 << 30) + 1,
            checksum_sha256: "x".into(),
        };
        ev.extend(ImageAggregate::decide(&ImageAggregate::fold(&ev), done.clone()).unwrap());
        let s = ImageAggregate::fold(&ev);
        assert_eq!(s.image.as_ref().unwrap().status, ImageStatus::Active);
        assert_eq!(s.image.as_ref().unwrap().min_disk, 4);
        assert!(
            ImageAggregate::decide(&s, done).unwrap().is_empty(),
            "idempotent"
        );
        let fail = ImageCommand::Fail {
            reason: "late".into(),
        };
        assert!(ImageAggregate::decide(&s, fail).unwrap().is_empty());
    }

    #[test]
    fn a_protected_image_is_kept_until_unprotected() {
        let ImageCommand::Create(mut n) = new("raw") else {
            unreachable!()
        };
        n.protected = true;
        let mut ev =
            ImageAggregate::decide(&ImageState::default(), ImageCommand::Create(n)).unwrap();
        let s = ImageAggregate::fold(&ev);
        assert!(matches!(
            ImageAggregate::decide(&s, ImageCommand::Delete),
            Err(DomainError::ImageProtected(_))
        ));
        let off = ImageCommand::SetProtected { protected: false };
        ev.extend(ImageAggregate::decide(&s, off.clone()).unwrap());
        let s = ImageAggregate::fold(&ev);
        assert!(ImageAggregate::decide(&s, off).unwrap().is_empty());
        assert!(ImageAggregate::decide(&s, ImageCommand::Delete).is_ok());
    }
}
