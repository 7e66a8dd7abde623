//! Limits on everything a client controls (TigerBeetle's rule: a bound on
//! every input), in one place so every dialect enforces the same ones.

/// Smallest and largest volume size in GiB on every route (DECISIONS.md: Sizes).
pub const MIN_VOLUME_GB: i64 = 1;
pub const MAX_VOLUME_GB: i64 = 32_768;
/// Names, descriptions, metadata keys and values, counted in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_DESCRIPTION_BYTES: usize = 255;
pub const MAX_METADATA_KEY_BYTES: usize = 255;
pub const MAX_METADATA_VALUE_BYTES: usize = 255;
/// EVS.1005: the whole metadata object must stay below 1 MiB.
pub const MAX_METADATA_TOTAL_BYTES: usize = 1_048_576;
/// Most metadata items one volume may carry (keeps one row bounded).
pub const MAX_METADATA_ITEMS: usize = 128;
/// Page size bounds for list calls (DECISIONS.md: Pagination).
pub const MAX_PAGE_LIMIT: i64 = 1000;
