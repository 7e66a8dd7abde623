//! What a client-supplied string may contain, and the one spelling of an id
//! (issue 15, item 4). Shared by every dialect: a name refused on one route
//! is refused on all of them.
//!
//! Control characters are refused in names, metadata keys and values and in
//! anything that names a server or a device: C0 (U+0000–U+001F), DEL
//! (U+007F) and C1 (U+0080–U+009F). They are never part of a name a person
//! types, they truncate strings in C tools (NUL) and forge lines in logs and
//! terminals (CR, LF, ESC). Descriptions are the one exception for tab, LF
//! and CR: they are free text (Horizon edits them in a multi-line box, and
//! upstream Cinder stores them as given), so a line break is content there;
//! every other control character is refused in a description too.

use uuid::Uuid;

use crate::error::FieldReason;
use crate::DomainError;

/// A character no client string may carry (see the module note).
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Whether `s` carries a control character; descriptions may carry tab, LF
/// and CR (`multiline`).
pub fn has_control(s: &str, multiline: bool) -> bool {
    s.chars()
        .any(|c| is_control(c) && !(multiline && matches!(c, '\t' | '\n' | '\r')))
}

/// A single-line client string (a name, a key, a server id).
pub fn check_line(field: &'static str, s: &str) -> Result<(), DomainError> {
    if has_control(s, false) {
        Err(DomainError::invalid(
            field,
            FieldReason::Invalid,
            format!(
                "Invalid input for field/attribute {field}: control characters are not allowed."
            ),
        ))
    } else {
        Ok(())
    }
}

/// The one spelling of an id a URL or a reference may use: 36 characters,
/// lowercase hex, hyphens at 8-4-4-4-12, as every response writes it.
/// Uppercase, braces, `urn:uuid:`, a missing hyphen or padding name
/// nothing, so one resource is never reachable by several URLs.
pub fn canonical_uuid(raw: &str) -> Option<Uuid> {
    let b = raw.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let ok = b.iter().enumerate().all(|(i, &c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
    });
    if ok {
        Uuid::parse_str(raw).ok()
    } else {
        None
    }
}

/// ZStack's spelling: the same id as 32 lowercase hex digits, no hyphens.
pub fn canonical_simple_uuid(raw: &str) -> Option<Uuid> {
    let b = raw.as_bytes();
    if b.len() == 32
        && b.iter()
            .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        Uuid::parse_str(raw).ok()
    } else {
        None
    }
}

/// A UUID a client names something outside this service by (Cinder's
/// `instance_uuid`): hyphenated 8-4-4-4-12 hex in either case (the Huawei
/// seed's own example is uppercase, 001:L4652), nothing else.
pub fn is_hyphenated_uuid(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A device path as the seeds write them (`/dev/vdb`, `/dev/sdf`,
/// `/dev/hda`): `/dev/` and then lowercase letters and digits only, so a
/// mount point can never climb out of `/dev` or carry a format string.
pub fn check_device(field: &'static str, d: &str) -> Result<(), DomainError> {
    let ok = d.strip_prefix("/dev/").is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            FieldReason::Invalid,
            format!("Invalid input for field/attribute {field}: must be a device path such as /dev/vdb."),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters() {
        for s in ["a\u{0}b", "\u{1b}[31m", "x\u{7f}", "\u{85}", "a\nb", "\t"] {
            assert!(has_control(s, false), "{s:?}");
        }
        assert!(has_control("a\u{0}", true));
        assert!(!has_control("line 1\nline 2\tx\r", true));
        assert!(!has_control("名前 é ü \u{a0}", false));
    }

    #[test]
    fn one_spelling_per_id() {
        let u = Uuid::new_v4();
        let s = u.to_string();
        assert_eq!(canonical_uuid(&s), Some(u));
        for bad in [
            s.to_uppercase(),
            format!("{{{s}}}"),
            format!("urn:uuid:{s}"),
            u.simple().to_string(),
            format!(" {s}"),
            format!("{s}\n"),
        ] {
            assert_eq!(canonical_uuid(&bad), None, "{bad}");
        }
        assert_eq!(canonical_simple_uuid(&u.simple().to_string()), Some(u));
        assert_eq!(
            canonical_simple_uuid(&u.simple().to_string().to_uppercase()),
            None
        );
        assert!(is_hyphenated_uuid("95D9EF50-507D-11E5-B970-0800200C9A66"));
        assert!(!is_hyphenated_uuid("not-a-uuid\u{0}"));
    }

    #[test]
    fn device_paths() {
        for ok in [
            "/dev/vdb",
            "/dev/sdf",
            "/dev/hda",
            "/dev/nvme0n1",
            "/dev/xvdba",
        ] {
            assert!(check_device("mountpoint", ok).is_ok(), "{ok}");
        }
        for bad in [
            "%s%n../../x",
            "/dev/",
            "/dev/../etc",
            "/dev/VDB",
            "vdb",
            "/dev/vdb\u{0}",
            "/dev/sd b",
        ] {
            assert!(check_device("mountpoint", bad).is_err(), "{bad}");
        }
    }
}
