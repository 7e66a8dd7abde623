//! The scheduler's one rule (issue 17, microversion 3.3's user messages):
//! a volume type's extra specs must be met by a backend's capabilities,
//! as Cinder's `CapabilitiesFilter` with its `extra_specs_ops` decides.
//! A create whose type no backend can serve is accepted and ends in
//! `error` with "No valid backend" (Cinder schedules after the 202), which
//! the user messages then report.
//!
//! The capabilities are the ones `/scheduler-stats/get_pools` reports for
//! every backend (`blockledger@<seed type>`), so what an admin reads there
//! is what the rule judges. Only the keys a backend reports are judged: a
//! spec naming anything else (`multiattach`, `thin_provisioning`, a free
//! word) is a property this service serves itself on every backend, where
//! Cinder's filter would refuse a key its driver does not report.

use std::collections::BTreeMap;

/// `vendor_name` of every backend.
pub const VENDOR_NAME: &str = "blockledger";
/// `storage_protocol`: volumes are files a consumer opens by path
/// (os-brick's local connector).
pub const STORAGE_PROTOCOL: &str = "file";

/// The reason a create no backend can serve ends with (Cinder's
/// `NoValidBackend` text, which the volume's failure and the user
/// message carry).
pub const NO_VALID_BACKEND: &str = "No valid backend was found. No weighed backends available";

/// The static capabilities of backend `volume_backend_name` (capacity is
/// the file system's and not a scheduling key here).
pub fn capabilities(volume_backend_name: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("volume_backend_name", volume_backend_name.to_string()),
        ("vendor_name", VENDOR_NAME.to_string()),
        ("storage_protocol", STORAGE_PROTOCOL.to_string()),
        ("QoS_support", "False".to_string()),
        ("reserved_percentage", "0".to_string()),
    ])
}

/// oslo's `bool_from_string` (non-strict): the true words, else false.
fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

/// Cinder's `extra_specs_ops.match(value, req)`.
pub fn spec_matches(value: &str, req: &str) -> bool {
    let mut words = req.split_whitespace();
    let Some(op) = words.next() else {
        return value == req;
    };
    let num = |s: &str| s.parse::<f64>().ok();
    let arg = words.clone().next();
    let numeric = |f: fn(f64, f64) -> bool| match (num(value), arg.and_then(num)) {
        (Some(x), Some(y)) => f(x, y),
        // Python's float() raises ValueError: no match.
        _ => false,
    };
    let string = |f: fn(&str, &str) -> bool| arg.is_some_and(|y| f(value, y));
    match op {
        "<or>" => {
            // `<or> v1 <or> v2 …`: every other word is a candidate.
            let rest: Vec<&str> = words.collect();
            rest.iter().step_by(2).any(|w| *w == value)
        }
        "=" | ">=" => numeric(|x, y| x >= y),
        "==" => numeric(|x, y| x == y),
        "!=" => numeric(|x, y| x != y),
        "<=" => numeric(|x, y| x <= y),
        "<in>" => string(|x, y| x.contains(y)),
        "<is>" => arg.is_some_and(|y| truthy(value) == truthy(y)),
        "s==" => string(|x, y| x == y),
        "s!=" => string(|x, y| x != y),
        "s<" => string(|x, y| x < y),
        "s<=" => string(|x, y| x <= y),
        "s>" => string(|x, y| x > y),
        "s>=" => string(|x, y| x >= y),
        _ => value == req,
    }
}

/// Whether a backend with `caps` satisfies `extra_specs`. A scoped key is
/// judged only in the `capabilities:` scope (`qos:`, vendor scopes are
/// someone else's).
pub fn satisfies(extra_specs: &BTreeMap<String, String>, caps: &BTreeMap<&str, String>) -> bool {
    extra_specs.iter().all(|(key, req)| {
        let key = match key.split_once(':') {
            Some(("capabilities", rest)) => rest,
            Some(_) => return true,
            None => key.as_str(),
        };
        match caps.get(key) {
            Some(value) => spec_matches(value, req),
            None => true,
        }
    })
}

/// The first of `backends` whose capabilities meet `extra_specs`, or the
/// no-valid-backend reason.
pub fn place<'a>(
    extra_specs: &BTreeMap<String, String>,
    backends: impl IntoIterator<Item = &'a str>,
) -> Result<&'a str, &'static str> {
    backends
        .into_iter()
        .find(|b| satisfies(extra_specs, &capabilities(b)))
        .ok_or(NO_VALID_BACKEND)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_type_no_backend_offers_has_no_valid_backend() {
        // tempest's test_user_messages: random protocol and vendor.
        let bogus = specs(&[
            ("storage_protocol", "tempest-storage_protocol-1"),
            ("vendor_name", "tempest-vendor_name-2"),
        ]);
        assert_eq!(place(&bogus, ["SSD", "SATA"]), Err(NO_VALID_BACKEND));
        let ok = specs(&[("storage_protocol", "file"), ("vendor_name", "blockledger")]);
        assert_eq!(place(&ok, ["SSD", "SATA"]), Ok("SSD"));
        let named = specs(&[("volume_backend_name", "SATA")]);
        assert_eq!(place(&named, ["SSD", "SATA"]), Ok("SATA"));
        let missing = specs(&[("volume_backend_name", "qcow2")]);
        assert_eq!(place(&missing, ["SSD", "SATA"]), Err(NO_VALID_BACKEND));
        assert_eq!(place(&BTreeMap::new(), ["SSD"]), Ok("SSD"));
    }

    #[test]
    fn scopes_and_unreported_keys() {
        let caps = capabilities("SSD");
        assert!(!satisfies(
            &specs(&[("capabilities:vendor_name", "other")]),
            &caps
        ));
        assert!(satisfies(&specs(&[("qos:vendor_name", "other")]), &caps));
        assert!(satisfies(&specs(&[("multiattach", "<is> True")]), &caps));
    }

    #[test]
    fn cinder_operators() {
        assert!(spec_matches("file", "<or> iSCSI <or> file"));
        assert!(!spec_matches("nfs", "<or> iSCSI <or> file"));
        assert!(spec_matches("False", "<is> False"));
        assert!(!spec_matches("False", "<is> True"));
        assert!(spec_matches("0", "<= 10"));
        assert!(!spec_matches("0", ">= 10"));
        assert!(!spec_matches("file", ">= 10"));
        assert!(spec_matches("blockledger", "<in> block"));
        assert!(spec_matches("abc", "s< abd"));
        assert!(spec_matches("file", "file"));
        assert!(!spec_matches("file", "nfs"));
    }
}
