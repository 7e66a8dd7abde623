//! Reading client input without trusting it: every body and query value is
//! checked here and refused with a documented error, never a panic.

use std::collections::BTreeMap;

use axum::body::Bytes;
use domain::{DomainError, FieldReason};
use serde_json::{Map, Value};

/// Parses a JSON object body; anything else is EVS.5400 "Malformed request body".
pub fn json_object(body: &Bytes) -> Result<Map<String, Value>, DomainError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(DomainError::malformed_body()),
    }
}

/// The object under `key` (`{"volume": {...}}`).
pub fn member<'a>(
    obj: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a Map<String, Value>, DomainError> {
    match obj.get(key) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(DomainError::invalid(
            key,
            FieldReason::Missing,
            format!("Malformed request body: '{key}' object is required."),
        )),
    }
}

/// An optional string; null counts as absent.
pub fn opt_str(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, DomainError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DomainError::invalid(
            key,
            FieldReason::WrongType,
            format!("Type conversion error: '{key}' must be a string."),
        )),
    }
}

/// `/v3` takes a size as Cinder's schema does (DECISIONS.md, `/v2` and
/// `/v3`: "400 for a size that is not a whole number"): a JSON integer or a
/// string of decimal digits; a fraction, an exponent or padding is refused
/// before anything is decided. Absent is fine (the caller decides).
pub fn check_whole_size(v: Option<&Value>, key: &'static str) -> Result<(), DomainError> {
    let whole = match v {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.is_i64() || n.is_u64(),
        Some(Value::String(s)) => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        Some(_) => false,
    };
    if whole {
        Ok(())
    } else {
        Err(DomainError::invalid(
            key,
            FieldReason::WrongType,
            format!("Invalid input for field/attribute {key}: must be a whole number."),
        ))
    }
}

/// An integer size in GiB. Decimals are truncated as documented [5.1 #39];
/// numeric strings are accepted as Cinder does; anything out of i64 range
/// saturates so the domain can refuse it with EVS.1010.
pub fn size(v: Option<&Value>, key: &'static str) -> Result<Option<i64>, DomainError> {
    let bad = || DomainError::InvalidSize { got: 0 };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                let f = n.as_f64().ok_or_else(bad)?;
                Ok(Some(
                    f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64
                ))
            }
        }
        Some(Value::String(s)) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                Ok(Some(i))
            } else if let Ok(f) = t.parse::<f64>() {
                if f.is_finite() {
                    Ok(Some(
                        f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64
                    ))
                } else {
                    Err(bad())
                }
            } else {
                Err(DomainError::invalid(
                    key,
                    FieldReason::WrongType,
                    format!("invalid volume size! '{key}' must be an integer."),
                ))
            }
        }
        Some(_) => Err(DomainError::invalid(
            key,
            FieldReason::WrongType,
            format!("invalid volume size! '{key}' must be an integer."),
        )),
    }
}

/// A boolean that clients send as true/false or "true"/"false".
pub fn opt_bool(obj: &Map<String, Value>, key: &'static str) -> Result<Option<bool>, DomainError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(DomainError::invalid(
            key,
            FieldReason::WrongType,
            format!("Type conversion error: '{key}' must be a boolean."),
        )),
    }
}

/// A metadata object of string values; null values are refused [5.1 #20].
pub fn metadata(v: Option<&Value>) -> Result<BTreeMap<String, String>, DomainError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Null => Err(DomainError::InvalidMetadata(format!(
                    "metadata value of '{k}' can not be null"
                ))),
                other => Ok((k.clone(), other.to_string())),
            })
            .collect(),
        Some(_) => Err(DomainError::InvalidMetadata(
            "metadata must be an object".into(),
        )),
    }
}

/// Query-string `limit`: 1..=1000, default 1000 (EVS.1023/EVS.2142/EVS.5400).
pub fn limit(raw: Option<&str>) -> Result<usize, DomainError> {
    let Some(raw) = raw else {
        return Ok(domain::limits::MAX_PAGE_LIMIT as usize);
    };
    let n: i64 = raw.trim().parse().map_err(|_| {
        DomainError::invalid(
            "limit",
            FieldReason::WrongType,
            "limit param must be an integer.",
        )
    })?;
    if n <= 0 {
        return Err(DomainError::invalid(
            "limit",
            FieldReason::Invalid,
            "limit param must be positive.",
        ));
    }
    if n > domain::limits::MAX_PAGE_LIMIT {
        return Err(DomainError::invalid(
            "limit",
            FieldReason::OutOfRange,
            "invalid filter limit, can not greater than 1000.",
        ));
    }
    Ok(n as usize)
}

/// Query-string `offset`: a 0-based skip after the marker; negative is 400.
pub fn offset(raw: Option<&str>) -> Result<usize, DomainError> {
    match raw {
        None => Ok(0),
        Some(r) => match r.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n.min(u32::MAX as i64) as usize),
            Ok(_) => Err(DomainError::invalid(
                "offset",
                FieldReason::Invalid,
                "offset param must be positive.",
            )),
            Err(_) => Err(DomainError::invalid(
                "offset",
                FieldReason::WrongType,
                "offset param must be an integer.",
            )),
        },
    }
}

/// `all_tenants=1|true|True`: admin asks to see every project (as Cinder).
pub fn all_tenants(q: &std::collections::HashMap<String, String>) -> bool {
    matches!(
        q.get("all_tenants").map(String::as_str),
        Some("1" | "true" | "True")
    )
}

/// A path id that must be a UUID; anything else cannot exist.
pub fn uuid(raw: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_truncate_and_saturate() {
        assert_eq!(size(Some(&json!(10)), "size").unwrap(), Some(10));
        assert_eq!(size(Some(&json!(10.9)), "size").unwrap(), Some(10));
        assert_eq!(size(Some(&json!("12")), "size").unwrap(), Some(12));
        assert_eq!(size(Some(&json!(1e300)), "size").unwrap(), Some(i64::MAX));
        assert_eq!(
            size(Some(&json!(u64::MAX)), "size").unwrap(),
            Some(i64::MAX)
        );
        assert_eq!(size(Some(&json!(-3)), "size").unwrap(), Some(-3));
        assert!(size(Some(&json!("ten")), "size").is_err());
        assert!(size(Some(&json!([1])), "size").is_err());
    }

    #[test]
    fn limits_follow_the_documented_ranges() {
        assert_eq!(limit(None).unwrap(), 1000);
        let code = |e: DomainError| crate::dialects::evs::code(&crate::Reason::Domain(e));
        assert_eq!(code(limit(Some("0")).unwrap_err()), "EVS.1023");
        assert_eq!(code(limit(Some("1001")).unwrap_err()), "EVS.2142");
        assert_eq!(code(limit(Some("x")).unwrap_err()), "EVS.5400");
        assert_eq!(code(offset(Some("-1")).unwrap_err()), "EVS.5400");
    }

    #[test]
    fn bodies_that_are_not_objects_are_malformed() {
        for b in ["", "[]", "{", "null", "3"] {
            let err = json_object(&Bytes::from(b)).unwrap_err();
            assert_eq!(err.field(), Some("body"));
        }
    }
}
