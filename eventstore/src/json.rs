//! An event's `data` and `metadata` as stored: the JSON text of the
//! column, parsed on first use.
//!
//! Most readers of a replayed event never look at its metadata (the views
//! read one or two keys of a few kinds of events: a job's request or
//! outcome, a refusal), and the views decode its data into a typed event
//! straight from the text (`RecordedEvent::decode`). Building a
//! `serde_json::Value` of each column for every event read, and dropping
//! it again, was more than half of a replay's instructions (callgrind,
//! issue 11). So the text is kept and parsed once, when something
//! dereferences it; it then reads like the `Value` it used to be
//! (`ev.metadata["request_id"]`, `ev.data.get(k)`).

use serde_json::Value;
use std::sync::OnceLock;

#[derive(Clone, Default)]
pub struct StoredJson {
    /// The stored JSON text (what the hash chain covers, through its parse).
    raw: Box<str>,
    parsed: OnceLock<Value>,
}

impl StoredJson {
    /// JSON the writer just serialized to `raw` and parsed back to
    /// `value` (it hashes the parse): both are kept, nothing is re-parsed.
    pub(crate) fn written(raw: String, value: Value) -> Self {
        StoredJson {
            raw: raw.into_boxed_str(),
            parsed: OnceLock::from(value),
        }
    }

    /// The text of a stored row, parsed when first read. Not checked here:
    /// the writer stored it by serializing a `Value`, and a row changed
    /// since is `verify_chain`'s to find (it re-parses and re-hashes every
    /// row); such text reads as `null` (no keys; a typed decode of it fails).
    pub(crate) fn stored(raw: &str) -> Self {
        StoredJson {
            raw: raw.into(),
            parsed: OnceLock::new(),
        }
    }

    /// The JSON text as stored.
    pub fn as_raw(&self) -> &str {
        &self.raw
    }

    /// The parsed value if something parsed it already (or the writer
    /// kept it): a reader of a few keys then need not scan the text.
    pub fn parsed(&self) -> Option<&Value> {
        self.parsed.get()
    }

    /// The parsed value (once; later calls return the same value).
    pub fn value(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_str(&self.raw).unwrap_or(Value::Null))
    }
}

impl From<Value> for StoredJson {
    fn from(value: Value) -> Self {
        // Serializing a Value cannot fail (its keys are strings).
        let raw = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        StoredJson::written(raw, value)
    }
}

impl std::ops::Deref for StoredJson {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value()
    }
}

impl PartialEq for StoredJson {
    /// The same stored text. Both sides of every comparison come from the
    /// store's own serialization of a `Value`, which is deterministic.
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl std::fmt::Debug for StoredJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.value(), f)
    }
}

impl serde::Serialize for StoredJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for StoredJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(StoredJson::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_reads_like_the_value_it_was_written_from() {
        let v = serde_json::json!({"request_id": "req-1", "n": 3, "nested": {"a": [1, 2]}});
        let written = StoredJson::from(v.clone());
        let stored = StoredJson::stored(written.as_raw());
        assert_eq!(*stored, v);
        assert_eq!(stored["request_id"], "req-1");
        assert_eq!(stored.get("missing"), None);
        assert_eq!(stored, written);
        assert_eq!(serde_json::to_value(&stored).unwrap(), v);
        let back: StoredJson = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, stored);
    }

    #[test]
    fn text_that_does_not_parse_reads_as_null() {
        let m = StoredJson::stored("{\"cut");
        assert_eq!(*m, Value::Null);
        assert_eq!(m["request_id"], Value::Null);
        assert_eq!(m.as_raw(), "{\"cut");
    }
}
