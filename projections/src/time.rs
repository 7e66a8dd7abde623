//! The time formats DECISIONS.md fixes [5.1 #17].

use chrono::{DateTime, Utc};

/// Resources: `YYYY-MM-DDTHH:MM:SS.ffffff`, UTC, no zone suffix (as Cinder).
pub fn resource(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Jobs: `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn job(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
