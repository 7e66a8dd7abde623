//! The field rules a volume type and a group type share (Cinder's schemas
//! for both: a name of 1–255 characters, a description of at most 255,
//! specs with keys of 1–255 characters and values of at most 255). Each
//! kind keeps its own words and its own refusal.

use std::collections::BTreeMap;

use crate::DomainError;

/// What the shared rules call a kind, and how it refuses.
pub(crate) struct TypeKind {
    /// "Volume type", "Group type".
    pub noun: &'static str,
    /// "Extra spec", "Group spec".
    pub spec: &'static str,
    pub refused: fn(String) -> DomainError,
    pub max_name: usize,
    pub max_description: usize,
    pub max_spec: usize,
}

impl TypeKind {
    pub(crate) fn name(&self, name: &str) -> Result<(), DomainError> {
        if name.trim().is_empty() {
            return Err((self.refused)(format!(
                "{} name can not be empty.",
                self.noun
            )));
        }
        if name.chars().count() > self.max_name {
            return Err((self.refused)(format!(
                "{} name must be at most {} characters.",
                self.noun, self.max_name
            )));
        }
        Ok(())
    }

    pub(crate) fn description(&self, d: Option<&str>) -> Result<(), DomainError> {
        match d {
            Some(d) if d.chars().count() > self.max_description => Err((self.refused)(format!(
                "{} description must be at most {} characters.",
                self.noun, self.max_description
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn specs(&self, specs: &BTreeMap<String, String>) -> Result<(), DomainError> {
        let max = self.max_spec;
        for (k, v) in specs {
            if k.trim().is_empty() || k.chars().count() > max {
                return Err((self.refused)(format!(
                    "{} key '{k}' must be 1 to {max} characters.",
                    self.spec
                )));
            }
            if v.chars().count() > max {
                return Err((self.refused)(format!(
                    "{} value of '{k}' must be at most {max} characters.",
                    self.spec
                )));
            }
        }
        Ok(())
    }
}
