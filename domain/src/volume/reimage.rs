//! Cinder 3.68 `os-reimage`: an image's bytes replace the volume's
//! (cinder/api/contrib/volume_actions.py `_reimage`, cinder/volume/api.py
//! `reimage`, volume_utils.check_image_metadata). The volume is
//! `downloading` meanwhile and returns to the status it had.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Volume, VolumeStatus};
use crate::image::ImageStatus;
use crate::DomainError;

const GIB: i64 = 1 << 30;

/// The image, as read in the same transaction as the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReimageImage {
    pub image_id: Uuid,
    pub status: ImageStatus,
    /// Bytes of the stored image (Glance `size`), None while not uploaded.
    pub size: Option<i64>,
    pub min_disk: i64,
    /// Bytes the image unpacks to (Glance `virtual_size`), if known.
    pub virtual_size: Option<i64>,
    /// What `volume_image_metadata` becomes (as a volume made from it shows).
    pub metadata: BTreeMap<String, String>,
}

/// A reimage under way, as the fold holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub image_id: Uuid,
    /// The status to return to (Cinder's previous_status).
    pub previous: VolumeStatus,
    pub image_metadata: BTreeMap<String, String>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            image_id: Uuid::nil(),
            previous: VolumeStatus::Available,
            image_metadata: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reimage {
    pub image: ReimageImage,
    /// `reimage_reserved`: a `reserved` volume may be reimaged too.
    pub reserved: bool,
    pub job_id: Option<String>,
}

/// Cinder's order: more than one attachment record (409), the volume's
/// status (its conditional update), then check_image_metadata: active,
/// size, min_disk, virtual size (400).
pub fn check(v: &Volume, r: &Reimage) -> Result<(), DomainError> {
    // Cinder counts every attachment record, reserved ones too.
    if v.attachments.len() + v.pending.len() > 1 {
        return Err(DomainError::ReimageMultiAttached);
    }
    let allowed: &[VolumeStatus] = if r.reserved {
        &[
            VolumeStatus::Available,
            VolumeStatus::Error,
            VolumeStatus::Reserved,
        ]
    } else {
        &[VolumeStatus::Available, VolumeStatus::Error]
    };
    if !allowed.contains(&v.status) {
        // utils.build_or_str joins the expected statuses with " or ".
        let expected: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(DomainError::ReimageRefused(format!(
            "Invalid volume: Volume {} status must be {}, but current status is {}.",
            v.id,
            expected.join(" or "),
            v.status.as_str()
        )));
    }
    let i = &r.image;
    if i.status != ImageStatus::Active {
        return Err(DomainError::ReimageRefused(format!(
            "Invalid input received: Image {} is not active.",
            i.image_id
        )));
    }
    // Cinder rounds the stored size up to whole GiB.
    let size_gb = (i.size.unwrap_or(0).max(0) as u64).div_ceil(GIB as u64) as i64;
    if size_gb > v.size {
        return Err(DomainError::ReimageRefused(format!(
            "Invalid input received: Size of specified image {size_gb}GB is larger than volume \
             size {}GB.",
            v.size
        )));
    }
    if v.size < i.min_disk {
        return Err(DomainError::ReimageRefused(format!(
            "Invalid input received: Volume size {}GB cannot be smaller than the image minDisk \
             size {}GB.",
            v.size, i.min_disk
        )));
    }
    if let Some(vs) = i.virtual_size.filter(|s| *s > 0) {
        let vs_gb = (vs as u64).div_ceil(GIB as u64) as i64;
        if vs_gb > v.size {
            return Err(DomainError::ReimageRefused(format!(
                "Image {} is unacceptable: Image virtual size is {vs_gb}GB and doesn't fit in a \
                 volume of size {}GB.",
                i.image_id, v.size
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{VolumeAggregate, VolumeCommand, VolumeEvent, WorkKind};
    use crate::Aggregate;

    fn created(size: i64) -> Vec<VolumeEvent> {
        vec![
            VolumeEvent::VolumeCreateRequested {
                volume_id: Uuid::from_u128(1),
                project_id: "p".into(),
                user_id: "u".into(),
                name: None,
                description: None,
                size,
                availability_zone: "nova".into(),
                volume_type: "t".into(),
                metadata: Default::default(),
                multiattach: false,
                job_id: None,
                snapshot_id: None,
                linked_clone: false,
                batch_job_id: None,
                image_id: None,
                image_metadata: None,
                source_volume_id: None,
                backend: None,
            },
            VolumeEvent::VolumeAllocated { size },
        ]
    }

    fn image(size: i64, virtual_size: i64, min_disk: i64) -> ReimageImage {
        ReimageImage {
            image_id: Uuid::from_u128(7),
            status: ImageStatus::Active,
            size: Some(size),
            min_disk,
            virtual_size: Some(virtual_size),
            metadata: [("image_id".to_string(), Uuid::from_u128(7).to_string())].into(),
        }
    }

    fn cmd(i: ReimageImage, reserved: bool) -> VolumeCommand {
        VolumeCommand::Reimage(Box::new(Reimage {
            image: i,
            reserved,
            job_id: None,
        }))
    }

    fn refusal(r: Result<Vec<VolumeEvent>, DomainError>) -> String {
        match r {
            Err(DomainError::ReimageRefused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reimage_goes_downloading_and_back_to_the_previous_status() {
        let mut ev = created(1);
        let s = VolumeAggregate::fold(ev.iter());
        let out = VolumeAggregate::decide(&s, cmd(image(1024, 1 << 20, 0), false)).unwrap();
        assert!(matches!(
            &out[..],
            [VolumeEvent::VolumeReimageRequested {
                previous: VolumeStatus::Available,
                ..
            }]
        ));
        ev.extend(out);
        let s = VolumeAggregate::fold(ev.iter());
        assert_eq!(s.volume.as_ref().unwrap().status, VolumeStatus::Downloading);
        // A second reimage while downloading is refused with Cinder's words.
        let m = refusal(VolumeAggregate::decide(
            &s,
            cmd(image(1024, 1 << 20, 0), false),
        ));
        assert_eq!(
            m,
            format!(
                "Invalid volume: Volume {} status must be available or error, but current \
                 status is downloading.",
                Uuid::from_u128(1)
            )
        );
        let done = VolumeAggregate::decide(
            &s,
            VolumeCommand::CompleteWork {
                kind: WorkKind::Reimage,
            },
        )
        .unwrap();
        assert_eq!(
            done,
            vec![VolumeEvent::VolumeReimaged {
                image_id: Uuid::from_u128(7),
                image_metadata: image(1024, 1 << 20, 0).metadata,
            }]
        );
        let mut after = ev.clone();
        after.extend(done);
        let v = VolumeAggregate::fold(after.iter()).volume.unwrap();
        assert_eq!(
            (v.status, v.pending_reimage),
            (VolumeStatus::Available, None)
        );
        // A failed copy leaves the volume in error, which may be reimaged.
        let failed = VolumeAggregate::decide(
            &s,
            VolumeCommand::FailWork {
                kind: WorkKind::Reimage,
                reason: "boom".into(),
            },
        )
        .unwrap();
        ev.extend(failed);
        let s = VolumeAggregate::fold(ev.iter());
        assert_eq!(s.volume.as_ref().unwrap().status, VolumeStatus::Error);
        assert!(VolumeAggregate::decide(&s, cmd(image(1024, 1 << 20, 0), false)).is_ok());
    }

    #[test]
    fn refusals_in_cinders_order_and_words() {
        let s = VolumeAggregate::fold(created(1).iter());
        let mut v = s.volume.clone().unwrap();
        let id = v.id;
        v.status = VolumeStatus::InUse;
        let used = crate::volume::VolumeState {
            volume: Some(v.clone()),
            deleted: false,
        };
        assert_eq!(
            refusal(VolumeAggregate::decide(&used, cmd(image(1, 1, 0), true))),
            format!(
                "Invalid volume: Volume {id} status must be available or error or reserved, \
                 but current status is in-use."
            )
        );
        v.status = VolumeStatus::Reserved;
        let reserved = crate::volume::VolumeState {
            volume: Some(v.clone()),
            deleted: false,
        };
        // Two attachments: 409 before the status is looked at.
        let one = crate::volume::Attachment {
            attachment_id: Uuid::from_u128(20),
            server_id: "s1".into(),
            host_name: None,
            device: "/dev/vdb".into(),
            mode: crate::volume::AttachMode::Rw,
        };
        let mut two = v.clone();
        two.status = VolumeStatus::InUse;
        two.attachments = vec![
            one.clone(),
            crate::volume::Attachment {
                attachment_id: Uuid::from_u128(21),
                ..one
            },
        ];
        let two = crate::volume::VolumeState {
            volume: Some(two),
            deleted: false,
        };
        assert_eq!(
            VolumeAggregate::decide(&two, cmd(image(1, 1, 0), true)),
            Err(DomainError::ReimageMultiAttached)
        );
        assert!(VolumeAggregate::decide(&reserved, cmd(image(1, 1, 0), false)).is_err());
        assert!(VolumeAggregate::decide(&reserved, cmd(image(1, 1, 0), true)).is_ok());
        let mut queued = image(1, 1, 0);
        queued.status = ImageStatus::Queued;
        assert_eq!(
            refusal(VolumeAggregate::decide(&s, cmd(queued, false))),
            "Invalid input received: Image 00000000-0000-0000-0000-000000000007 is not active."
        );
        assert_eq!(
            refusal(VolumeAggregate::decide(
                &s,
                cmd(image(GIB + 1, 1, 0), false)
            )),
            "Invalid input received: Size of specified image 2GB is larger than volume size 1GB."
        );
        assert_eq!(
            refusal(VolumeAggregate::decide(&s, cmd(image(1, 1, 3), false))),
            "Invalid input received: Volume size 1GB cannot be smaller than the image minDisk \
             size 3GB."
        );
        assert_eq!(
            refusal(VolumeAggregate::decide(
                &s,
                cmd(image(1, 2 * GIB, 0), false)
            )),
            "Image 00000000-0000-0000-0000-000000000007 is unacceptable: Image virtual size is \
             2GB and doesn't fit in a volume of size 1GB."
        );
    }
}
