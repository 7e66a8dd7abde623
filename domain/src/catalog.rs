//! Availability zones and volume types: the catalog every dialect names its
//! zone/region/type against. Zones are configured; the configured types are
//! the seed of the volume type aggregates (`volume_type`), which an admin
//! then creates, changes and deletes as events. The types a use case
//! resolves against are the volume-types view of those events, visible to
//! the caller (`Catalog::with_types`).

use crate::DomainError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeType {
    pub name: String,
    /// Stable across restarts: derived from the name, never random.
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    /// The first zone is the default one.
    pub zones: Vec<String>,
    pub types: Vec<VolumeType>,
    pub default_type: String,
    /// Cinder's `max_over_subscription_ratio` (issue 16, `serve
    /// --max-over-subscription-ratio`): when set, a backend has room for a
    /// volume while its free bytes times this hold the volume's size; when
    /// not, volumes are thin without a bound, as before backends reported
    /// capacity, and only a full backend has no room
    /// (`scheduler::Offer::has_room`).
    pub max_over_subscription_ratio: Option<f64>,
}

/// The seed types (DECISIONS.md: Volume types), with the ids CINDER-7.1.7
/// documents, so they are stable across restarts and match the examples.
/// Each is also a storage backend of this service (`blockledger@<name>`).
pub const SEED_TYPES: [(&str, &str); 3] = [
    ("SSD", "6f2dee9e-82f0-4be3-ad89-bae605a3d24f"),
    ("SAS", "6c81c680-df58-4512-81e7-ecf66d160638"),
    ("SATA", "ea6e3c13-aac5-46e0-b280-745ed272e662"),
];

/// The default type's name (the one a create without a type gets).
pub const DEFAULT_TYPE: &str = "SATA";

/// The backend a volume of type `volume_type` lives on: a seed type is its
/// own backend; any type an admin created is scheduled to the default
/// type's backend, as Cinder schedules a type that names no
/// `volume_backend_name` to the default backend. Hence a retype between
/// two such types stays on its backend (no migration) and a volume's host
/// does not change.
pub fn backend_of(volume_type: &str) -> &str {
    SEED_TYPES
        .iter()
        .find(|(n, _)| *n == volume_type)
        .map(|(n, _)| *n)
        .unwrap_or(DEFAULT_TYPE)
}

impl Default for Catalog {
    fn default() -> Self {
        // DECISIONS.md: Zones and Volume types.
        let zones = ["az-dc-1", "ac1", "toronto", "montreal", "roubaix"];
        Catalog {
            zones: zones.iter().map(|z| z.to_string()).collect(),
            types: SEED_TYPES
                .iter()
                .map(|(name, id)| VolumeType {
                    name: name.to_string(),
                    id: id.to_string(),
                })
                .collect(),
            default_type: DEFAULT_TYPE.to_string(),
            max_over_subscription_ratio: None,
        }
    }
}

impl Catalog {
    /// This catalog's zones with `types` (the view's, as one caller sees
    /// them, in creation order) and `default_type` (the default type's
    /// current name).
    pub fn with_types(&self, types: Vec<VolumeType>, default_type: String) -> Catalog {
        Catalog {
            zones: self.zones.clone(),
            types,
            default_type,
            max_over_subscription_ratio: self.max_over_subscription_ratio,
        }
    }

    /// The id of the configured default type (it cannot be deleted).
    pub fn default_type_id(&self) -> Option<&str> {
        SEED_TYPES
            .iter()
            .find(|(n, _)| *n == self.default_type)
            .map(|(_, id)| *id)
    }

    pub fn default_zone(&self) -> &str {
        self.zones.first().map(String::as_str).unwrap_or("az-dc-1")
    }

    /// Resolves an optional zone: absent means the default zone (Cinder
    /// clients omit it); an unknown one is EVS.1036.
    pub fn resolve_zone(&self, zone: Option<&str>) -> Result<String, DomainError> {
        match zone {
            None => Ok(self.default_zone().to_string()),
            Some(z) if self.zones.iter().any(|k| k == z) => Ok(z.to_string()),
            Some(z) => Err(DomainError::InvalidAvailabilityZone(z.to_string())),
        }
    }

    /// Resolves an optional type by name (or id); absent means the default.
    pub fn resolve_type(&self, ty: Option<&str>) -> Result<String, DomainError> {
        match ty {
            None => Ok(self.default_type.clone()),
            Some(t) => self
                .types
                .iter()
                .find(|k| k.name == t || k.id == t)
                .map(|k| k.name.clone())
                .ok_or_else(|| DomainError::InvalidVolumeType(t.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_are_stable_and_distinct() {
        let a = Catalog::default();
        let b = Catalog::default();
        assert_eq!(a.types, b.types);
        assert_ne!(a.types[0].id, a.types[1].id);
        assert_eq!(a.resolve_type(Some(&a.types[2].id)).unwrap(), "SATA");
        assert_eq!(a.default_type_id(), Some(a.types[2].id.as_str()));
    }

    #[test]
    fn created_types_live_on_the_default_backend() {
        assert_eq!(backend_of("SSD"), "SSD");
        assert_eq!(backend_of("gold"), DEFAULT_TYPE);
    }

    #[test]
    fn resolution_uses_the_types_given() {
        let c = Catalog::default().with_types(
            vec![VolumeType {
                name: "gold".into(),
                id: "11111111-1111-4111-8111-111111111111".into(),
            }],
            "gold".into(),
        );
        assert_eq!(c.resolve_type(None).unwrap(), "gold");
        assert_eq!(
            c.resolve_type(Some("SSD")).unwrap_err().reason(),
            "invalid_volume_type"
        );
        assert_eq!(c.zones, Catalog::default().zones);
    }

    #[test]
    fn zone_defaults_and_rejects_unknown() {
        let c = Catalog::default();
        assert_eq!(c.resolve_zone(None).unwrap(), "az-dc-1");
        assert_eq!(c.resolve_zone(Some("toronto")).unwrap(), "toronto");
        assert_eq!(
            c.resolve_zone(Some("mars")).unwrap_err().reason(),
            "invalid_availability_zone"
        );
    }
}
