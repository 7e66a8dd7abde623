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

/// A backend as the scheduler sees it (the backends view's row): its name,
/// how it is reached and, once it reported, its free bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offer<'a> {
    pub name: &'a str,
    pub storage_protocol: &'a str,
    /// None until the backend's first capacity report.
    pub free_bytes: Option<u64>,
    /// Cinder's `max_over_subscription_ratio` (volumes are thin); None:
    /// no bound but a full backend.
    pub over_subscription: Option<f64>,
}

impl Offer<'_> {
    /// What get_pools reports for it and the specs are judged against.
    pub fn capabilities(&self) -> BTreeMap<&'static str, String> {
        let mut caps = capabilities(self.name);
        caps.insert("storage_protocol", self.storage_protocol.to_string());
        caps
    }

    /// Cinder's `CapacityFilter` for thin volumes: with a ratio, room when
    /// the free bytes times it hold `size_gib` (a ratio below 1 counts as
    /// 1: thick); without one, room while anything is free (a sparse file
    /// costs what is written, so only a full backend is refused). A
    /// backend that has not reported yet passes, as Cinder passes
    /// `unknown` free capacity.
    pub fn has_room(&self, size_gib: i64) -> bool {
        let want = size_gib.max(0) as f64 * (1u64 << 30) as f64;
        self.free_bytes
            .is_none_or(|free| match self.over_subscription {
                Some(ratio) => free as f64 * ratio.max(1.0) >= want,
                None => free > 0,
            })
    }
}

/// Whether `extra_specs` name a backend (`volume_backend_name`, scoped or
/// not): then any backend whose name matches is a candidate, as Cinder's
/// `CapabilitiesFilter` picks it.
fn names_backend(extra_specs: &BTreeMap<String, String>) -> bool {
    extra_specs
        .keys()
        .any(|k| k == "volume_backend_name" || k == "capabilities:volume_backend_name")
}

/// The scheduler rule (issue 16): the backend a new volume of size
/// `size_gib` goes to, among the registered `offers`. A type whose specs
/// name a backend (`volume_backend_name`) may go to any backend they
/// match; a type that names none stays on `default_backend` (the old rule,
/// `catalog::backend_of`). The backend must meet the specs (capabilities
/// match) AND have room for the size. Otherwise the no-valid-backend
/// reason: the create stands and fails with it, as Cinder's does.
pub fn choose<'a>(
    extra_specs: &BTreeMap<String, String>,
    default_backend: &str,
    offers: &[Offer<'a>],
    size_gib: i64,
) -> Result<&'a str, &'static str> {
    let named = names_backend(extra_specs);
    offers
        .iter()
        .filter(|o| named || o.name == default_backend)
        .find(|o| satisfies(extra_specs, &o.capabilities()) && o.has_room(size_gib))
        .map(|o| o.name)
        .ok_or(NO_VALID_BACKEND)
}

/// A clone's placement: its source's backend `backend`, which must be
/// registered and have room for the clone's size (its bytes start as the
/// source's; a full copy needs the whole size there).
pub fn admit_clone(backend: &str, offers: &[Offer<'_>], size_gib: i64) -> Result<(), &'static str> {
    offers
        .iter()
        .find(|o| o.name == backend)
        .filter(|o| o.has_room(size_gib))
        .map(|_| ())
        .ok_or(NO_VALID_BACKEND)
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

    const GIB: u64 = 1 << 30;

    fn offer(name: &'static str, protocol: &'static str, free: Option<u64>) -> Offer<'static> {
        Offer {
            name,
            storage_protocol: protocol,
            free_bytes: free,
            over_subscription: Some(1.0),
        }
    }

    fn offers() -> Vec<Offer<'static>> {
        vec![
            offer("SSD", "file", Some(100 * GIB)),
            offer("SATA", "file", None),
            offer("fast", "file", Some(10 * GIB)),
            offer("ceph", "ceph", Some(1000 * GIB)),
        ]
    }

    #[test]
    fn thin_volumes_over_subscribe_by_the_ratio() {
        let mut o = offer("fast", "file", Some(10 * GIB));
        assert!(!o.has_room(11));
        o.over_subscription = Some(20.0);
        assert!(o.has_room(200));
        assert!(!o.has_room(201));
        // Below 1 is thick, not less than the free space.
        o.over_subscription = Some(0.5);
        assert!(o.has_room(10));
        assert!(!o.has_room(11));
        // No ratio: unbounded, but a full backend has no room.
        o.over_subscription = None;
        assert!(o.has_room(32_768));
        o.free_bytes = Some(0);
        assert!(!o.has_room(1));
    }

    #[test]
    fn a_type_naming_a_backend_goes_there_if_it_has_room() {
        let named = specs(&[("volume_backend_name", "fast")]);
        assert_eq!(choose(&named, "SATA", &offers(), 10), Ok("fast"));
        // 11 GiB do not fit in 10 free.
        assert_eq!(choose(&named, "SATA", &offers(), 11), Err(NO_VALID_BACKEND));
        // An unregistered backend serves nothing.
        let ghost = specs(&[("volume_backend_name", "ghost")]);
        assert_eq!(choose(&ghost, "SATA", &offers(), 1), Err(NO_VALID_BACKEND));
        // Scoped, and with an operator, as Cinder's filter reads it.
        let scoped = specs(&[("capabilities:volume_backend_name", "<or> ceph <or> nfs")]);
        assert_eq!(choose(&scoped, "SATA", &offers(), 500), Ok("ceph"));
        // The capabilities still count: ceph is not a file backend.
        let mismatch = specs(&[
            ("volume_backend_name", "ceph"),
            ("storage_protocol", "file"),
        ]);
        assert_eq!(
            choose(&mismatch, "SATA", &offers(), 1),
            Err(NO_VALID_BACKEND)
        );
    }

    #[test]
    fn a_type_naming_no_backend_keeps_the_old_rule() {
        let none = BTreeMap::new();
        assert_eq!(choose(&none, "SSD", &offers(), 100), Ok("SSD"));
        assert_eq!(choose(&none, "SSD", &offers(), 101), Err(NO_VALID_BACKEND));
        // Not yet reported: no capacity to refuse with.
        assert_eq!(choose(&none, "SATA", &offers(), 1_000_000), Ok("SATA"));
        // The default backend is not registered (no executor serves it).
        assert_eq!(choose(&none, "SAS", &offers(), 1), Err(NO_VALID_BACKEND));
        let bogus = specs(&[("vendor_name", "other")]);
        assert_eq!(choose(&bogus, "SSD", &offers(), 1), Err(NO_VALID_BACKEND));
        let proto = specs(&[("storage_protocol", "ceph")]);
        assert_eq!(choose(&proto, "SSD", &offers(), 1), Err(NO_VALID_BACKEND));
    }

    #[test]
    fn a_clone_needs_its_sources_backend_with_room() {
        assert_eq!(admit_clone("fast", &offers(), 10), Ok(()));
        assert_eq!(admit_clone("fast", &offers(), 11), Err(NO_VALID_BACKEND));
        assert_eq!(admit_clone("ghost", &offers(), 1), Err(NO_VALID_BACKEND));
        assert_eq!(admit_clone("SATA", &offers(), 1 << 20), Ok(()));
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
