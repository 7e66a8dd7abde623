//! Cinder 3.71 `os-extend_volume_completion` (cinder/volume/api.py
//! `extend_volume_completion`): Nova reports the end of an extend Cinder
//! left waiting for it. Cinder accepts it only for a volume `extending`
//! whose admin metadata holds the awaited size and quota reservations;
//! this service's executor finishes every extend itself and never waits
//! on a consumer, so no volume ever holds that metadata: the answer is
//! Cinder's refusal for the state the volume is in.

use super::{Volume, VolumeStatus};
use crate::DomainError;

pub fn check(v: &Volume) -> Result<(), DomainError> {
    if v.status != VolumeStatus::Extending {
        return Err(DomainError::InvalidVolume(
            "Volume is not being extended.".into(),
        ));
    }
    Err(DomainError::InvalidVolume(
        "Required volume admin metadata is malformed or missing.".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{VolumeAggregate, VolumeEvent};
    use crate::Aggregate;

    #[test]
    fn only_an_extend_awaiting_its_consumer_completes() {
        let created = VolumeEvent::VolumeCreateRequested {
            volume_id: uuid::Uuid::from_u128(1),
            project_id: "p".into(),
            user_id: "u".into(),
            name: None,
            description: None,
            size: 1,
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
        };
        let ev = [created, VolumeEvent::VolumeAllocated { size: 1 }];
        let mut v = VolumeAggregate::fold(ev.iter()).volume.unwrap();
        assert_eq!(
            check(&v).unwrap_err().to_string(),
            "Invalid volume: Volume is not being extended."
        );
        v.status = VolumeStatus::Extending;
        assert_eq!(
            check(&v).unwrap_err().to_string(),
            "Invalid volume: Required volume admin metadata is malformed or missing."
        );
    }
}
