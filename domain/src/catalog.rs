//! Availability zones and volume types: the configured catalog every dialect
//! names its zone/region/type against.

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
}

impl Default for Catalog {
    fn default() -> Self {
        // DECISIONS.md: Zones and Volume types.
        let zones = ["az-dc-1", "ac1", "toronto", "montreal", "roubaix"];
        // The ids CINDER-7.1.7 documents, so they are stable across
        // restarts and match the examples.
        let types = [
            ("SSD", "6f2dee9e-82f0-4be3-ad89-bae605a3d24f"),
            ("SAS", "6c81c680-df58-4512-81e7-ecf66d160638"),
            ("SATA", "ea6e3c13-aac5-46e0-b280-745ed272e662"),
        ];
        Catalog {
            zones: zones.iter().map(|z| z.to_string()).collect(),
            types: types
                .iter()
                .map(|(name, id)| VolumeType {
                    name: name.to_string(),
                    id: id.to_string(),
                })
                .collect(),
            default_type: "SATA".to_string(),
        }
    }
}

impl Catalog {
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
