//! Metadata edits shared by volumes and snapshots (API.md 3.12; DECISIONS.md,
//! Metadata [5.1 #20, #27]): POST merges, PUT on the collection replaces all,
//! PUT on `/{key}` sets exactly that one key, DELETE removes one key. Each
//! edit yields the whole new map, which the event records, so a replay never
//! has to re-run the merge rules.

use std::collections::BTreeMap;

use crate::volume::validate_metadata;
use crate::DomainError;

pub type Metadata = BTreeMap<String, String>;

/// Keys starting `_system_` are the service's own; clients cannot set them.
pub const RESERVED_PREFIX: &str = "_system_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataEdit {
    Merge(Metadata),
    Replace(Metadata),
    SetItem { key: String, value: String },
    DeleteItem { key: String },
}

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Result<(), DomainError> {
    for k in keys {
        if k.starts_with(RESERVED_PREFIX) {
            return Err(DomainError::invalid(
                "metadata",
                crate::error::FieldReason::Reserved,
                format!("the metadata Param is not allowed to be updated! ('{k}' is reserved)"),
            ));
        }
    }
    Ok(())
}

/// The map after `edit`, or why it is refused.
pub fn apply(current: &Metadata, edit: &MetadataEdit) -> Result<Metadata, DomainError> {
    let next = match edit {
        MetadataEdit::Merge(m) => {
            check_keys(m.keys())?;
            let mut next = current.clone();
            next.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            next
        }
        MetadataEdit::Replace(m) => {
            check_keys(m.keys())?;
            // Reserved keys survive a replace: the client never owned them.
            let mut next: Metadata = current
                .iter()
                .filter(|(k, _)| k.starts_with(RESERVED_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            next.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
            next
        }
        MetadataEdit::SetItem { key, value } => {
            check_keys(std::iter::once(key))?;
            let mut next = current.clone();
            next.insert(key.clone(), value.clone());
            next
        }
        MetadataEdit::DeleteItem { key } => {
            if !current.contains_key(key) {
                return Err(DomainError::MetadataKeyNotFound(key.clone()));
            }
            check_keys(std::iter::once(key))?;
            let mut next = current.clone();
            next.remove(key);
            next
        }
    };
    validate_metadata(&next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_replace_set_delete() {
        let cur = md(&[("a", "1"), ("_system_x", "s")]);
        assert_eq!(
            apply(&cur, &MetadataEdit::Merge(md(&[("b", "2")]))).unwrap(),
            md(&[("a", "1"), ("b", "2"), ("_system_x", "s")])
        );
        assert_eq!(
            apply(&cur, &MetadataEdit::Replace(md(&[("c", "3")]))).unwrap(),
            md(&[("c", "3"), ("_system_x", "s")])
        );
        let set = MetadataEdit::SetItem {
            key: "a".into(),
            value: "9".into(),
        };
        assert_eq!(apply(&cur, &set).unwrap()["a"], "9");
        let del = MetadataEdit::DeleteItem { key: "zz".into() };
        assert!(matches!(
            apply(&cur, &del),
            Err(DomainError::MetadataKeyNotFound(_))
        ));
        let res = MetadataEdit::Merge(md(&[("_system_y", "1")]));
        assert_eq!(apply(&cur, &res).unwrap_err().field(), Some("metadata"));
        let long = MetadataEdit::Merge(md(&[("k", &"v".repeat(256))]));
        assert!(apply(&cur, &long).is_err());
    }
}
