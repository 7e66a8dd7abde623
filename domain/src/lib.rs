//! The pure model of blockledger: ids, commands, events, deciders.
//!
//! Nothing in this crate does IO, async work, SQL or HTTP. Every rule that two
//! dialects share lives here, so that the Cinder routes and the EVS custom
//! routes can never disagree about what a volume may do.

pub mod aggregate;
pub mod backend;
pub mod catalog;
pub mod create_rules;
pub mod default_type;
pub mod error;
pub mod group;
pub mod group_snapshot;
pub mod group_type;
pub mod identity;
pub mod image;
pub mod lease;
pub mod limits;
pub mod message;
pub mod metadata;
pub mod qos;
pub mod quota;
pub mod scheduler;
pub mod snapshot;
pub mod text;
pub mod transfer;
mod type_rules;
pub mod upcast;
pub mod volume;
pub mod volume_type;

pub use aggregate::Aggregate;
pub use catalog::Catalog;
pub use error::{DomainError, ErrorKind, FieldReason};
pub use snapshot::{
    SnapshotAggregate, SnapshotCommand, SnapshotEvent, SnapshotState, SnapshotStatus, SnapshotWork,
    VolumeFacts,
};
pub use volume::{
    CreateVolume, VolumeAggregate, VolumeCommand, VolumeEvent, VolumeState, VolumeStatus, WorkKind,
};
