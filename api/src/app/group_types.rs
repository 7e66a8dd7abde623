//! Group type management (Cinder's `group_types.py` and `group_specs.py`,
//! microversion 3.11): one use case per operation, each one transaction.
//! Changes are an administrator's (Cinder's policy: `group:group_types_manage`
//! and `group:group_types_specs`), refused here as other admin-only
//! operations are. Reads go through the groups view.

use std::collections::BTreeMap;

use domain::group_type::{GroupTypeAggregate, GroupTypeCommand as C};
use domain::{Aggregate, DomainError};
use projections::groups::{self as view, GroupTypeRow};
use uuid::Uuid;

use super::{App, AppError, Caller, RequestMeta, Tx};

fn not_found(raw: &str) -> AppError {
    AppError::refused(
        GroupTypeAggregate::stream_id(raw),
        DomainError::GroupTypeNotFound(raw.to_string()),
    )
}

fn admin_only(caller: &Caller, raw: &str) -> Result<(), AppError> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(AppError::refused(
            GroupTypeAggregate::stream_id(raw),
            DomainError::NotPermitted("Policy doesn't allow group type management.".into()),
        ))
    }
}

/// Cinder: a private group type is visible to admin only (there is no
/// group type access API to share it).
fn visible(t: &GroupTypeRow, caller: &Caller) -> bool {
    t.is_public || caller.is_admin
}

/// The live group type `raw` names, if `caller` may see it.
pub fn lookup(
    conn: &eventstore::rusqlite::Connection,
    caller: &Caller,
    raw: &str,
) -> eventstore::rusqlite::Result<Option<GroupTypeRow>> {
    Ok(view::group_type(conn, raw)?.filter(|t| visible(t, caller)))
}

/// The live group type `raw` names, for a change by admin.
fn target(tx: &Tx<'_, '_>, raw: &str) -> Result<GroupTypeRow, AppError> {
    admin_only(tx.caller, raw)?;
    view::group_type(tx.conn(), raw)?.ok_or_else(|| not_found(raw))
}

pub struct CreateGroupTypeRequest {
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub group_specs: BTreeMap<String, String>,
}

/// `POST /group_types`: the new type.
pub async fn create(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    r: CreateGroupTypeRequest,
) -> Result<GroupTypeRow, AppError> {
    let id = Uuid::new_v4();
    app.run(caller, meta, None, move |tx| {
        admin_only(tx.caller, &id.to_string())?;
        let name_taken = view::group_type_by_name(tx.conn(), &r.name)?.is_some();
        tx.execute::<GroupTypeAggregate>(
            &id.to_string(),
            C::Create {
                id,
                name: r.name,
                description: r.description,
                is_public: r.is_public,
                group_specs: r.group_specs,
                name_taken,
            },
        )?;
        view::group_type(tx.conn(), &id.to_string())?.ok_or_else(|| not_found(&id.to_string()))
    })
    .await
}

/// `PUT /group_types/{id}`: the type as changed.
pub async fn update(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    name: Option<String>,
    description: Option<String>,
    is_public: Option<bool>,
) -> Result<GroupTypeRow, AppError> {
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        let name_taken = match &name {
            Some(n) => view::group_type_by_name(tx.conn(), n)?.is_some_and(|o| o.id != t.id),
            None => false,
        };
        tx.execute::<GroupTypeAggregate>(
            &t.id,
            C::Update {
                name,
                description,
                is_public,
                name_taken,
            },
        )?;
        view::group_type(tx.conn(), &t.id)?.ok_or_else(|| not_found(&raw))
    })
    .await
}

/// `DELETE /group_types/{id}`: refused while a group is of this type.
pub async fn delete(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        let in_use = view::group_type_in_use(tx.conn(), &t.id)?;
        tx.execute::<GroupTypeAggregate>(&t.id, C::Delete { in_use })?;
        Ok(())
    })
    .await
}

/// `POST /group_types/{id}/group_specs` (merge) and `PUT …/group_specs/{key}`.
pub async fn set_specs(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    specs: BTreeMap<String, String>,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        tx.execute::<GroupTypeAggregate>(&t.id, C::SetSpecs(specs))?;
        Ok(())
    })
    .await
}

/// `DELETE /group_types/{id}/group_specs/{key}`.
pub async fn delete_spec(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    key: String,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let t = target(tx, &raw)?;
        tx.execute::<GroupTypeAggregate>(&t.id, C::DeleteSpec(key))?;
        Ok(())
    })
    .await
}

// Reads: not recorded when refused.

/// `GET /group_types`: the types the caller may see, in creation order
/// (the dialect filters, sorts and pages).
pub async fn list(app: &App, caller: &Caller) -> Result<Vec<GroupTypeRow>, AppError> {
    let caller = caller.clone();
    Ok(app
        .read(view::group_types)
        .await?
        .into_iter()
        .filter(|t| visible(t, &caller))
        .collect())
}

/// `GET /group_types/{id}`.
pub async fn show(app: &App, caller: &Caller, raw: String) -> Result<GroupTypeRow, AppError> {
    let caller = caller.clone();
    let key = raw.clone();
    app.read(move |c| lookup(c, &caller, &key))
        .await?
        .ok_or_else(|| not_found(&raw))
}

/// The specs of a type, for the spec reads: Cinder's policy
/// (`group:group_types_specs`) makes them an administrator's.
pub async fn specs(app: &App, caller: &Caller, raw: String) -> Result<GroupTypeRow, AppError> {
    admin_only(caller, &raw)?;
    show(app, caller, raw).await
}

/// A list's order and page, as Cinder's `get_sort_params` and
/// `get_pagination_params` read them (default `created_at:desc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    /// (key, ascending), first key first.
    pub sort: Vec<(String, bool)>,
    pub marker: Option<String>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// A value to order rows by; `None` sorts first ascending, as SQL's NULL.
pub type SortValue = Option<String>;

/// Orders and pages `rows` in memory (groups and group types are few per
/// project): a key not in `keys` is a 400 (Cinder's "Invalid sort key"),
/// `value(row, key)` is the row's value of a key, and the creation order
/// breaks ties so the order is total and a marker resumes exactly after
/// its row.
pub fn paged<T>(
    mut rows: Vec<T>,
    p: &Paging,
    keys: &[&str],
    value: impl Fn(&T, &str) -> Option<SortValue>,
    id: impl Fn(&T) -> &str,
    seq: impl Fn(&T) -> i64,
) -> Result<Vec<T>, DomainError> {
    let sort: Vec<(String, bool)> = if p.sort.is_empty() {
        vec![("created_at".into(), false)]
    } else {
        p.sort.clone()
    };
    for (k, _) in &sort {
        if !keys.contains(&k.as_str()) {
            return Err(DomainError::invalid(
                "sort_key",
                domain::FieldReason::Invalid,
                format!("Invalid sort key: {k}"),
            ));
        }
    }
    let last_asc = sort.last().is_none_or(|(_, asc)| *asc);
    rows.sort_by(|a, b| {
        for (k, asc) in &sort {
            let o = value(a, k).cmp(&value(b, k));
            let o = if *asc { o } else { o.reverse() };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        let o = seq(a).cmp(&seq(b));
        if last_asc {
            o
        } else {
            o.reverse()
        }
    });
    let start = match &p.marker {
        None => 0,
        Some(m) => match rows.iter().position(|r| id(r) == m) {
            Some(i) => i + 1,
            None => {
                return Err(DomainError::invalid(
                    "marker",
                    domain::FieldReason::NotFound,
                    format!("Marker {m} could not be found."),
                ))
            }
        },
    };
    let limit = p.limit.unwrap_or(usize::MAX);
    Ok(rows
        .into_iter()
        .skip(start.saturating_add(p.offset))
        .take(limit)
        .collect())
}

/// `GET /group_types` as Cinder pages it: `is_public` (admin; None all),
/// sorted and paged.
pub async fn page(
    app: &App,
    caller: &Caller,
    is_public: Option<bool>,
    p: Paging,
) -> Result<Vec<GroupTypeRow>, AppError> {
    let rows: Vec<GroupTypeRow> = list(app, caller)
        .await?
        .into_iter()
        .filter(|t| is_public.is_none_or(|want| t.is_public == want))
        .collect();
    paged(rows, &p, &TYPE_KEYS, type_value, |t| &t.id, |t| t.seq)
        .map_err(|e| AppError::refused(GroupTypeAggregate::stream_id(""), e))
}

const TYPE_KEYS: [&str; 5] = ["id", "name", "description", "is_public", "created_at"];

fn type_value(t: &GroupTypeRow, key: &str) -> Option<SortValue> {
    Some(match key {
        "id" => Some(t.id.clone()),
        "name" => Some(t.name.clone()),
        "description" => t.description.clone(),
        "is_public" => Some(t.is_public.to_string()),
        "created_at" => Some(format!("{:020}", t.seq)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (id, name, seq)
    type Row = (String, Option<String>, i64);

    fn rows() -> Vec<Row> {
        vec![
            ("a".into(), Some("x".into()), 1),
            ("b".into(), Some("y".into()), 2),
            ("c".into(), Some("x".into()), 3),
            ("d".into(), None, 4),
        ]
    }

    fn page(p: Paging) -> Result<Vec<String>, DomainError> {
        let value = |r: &Row, k: &str| match k {
            "name" => Some(r.1.clone()),
            "created_at" => Some(Some(format!("{:020}", r.2))),
            _ => None,
        };
        paged(
            rows(),
            &p,
            &["name", "created_at"],
            value,
            |r| &r.0,
            |r| r.2,
        )
        .map(|v| v.into_iter().map(|r| r.0).collect())
    }

    fn sorted(k: &str, asc: bool) -> Paging {
        Paging {
            sort: vec![(k.into(), asc)],
            ..Default::default()
        }
    }

    #[test]
    fn newest_first_by_default_and_creation_order_breaks_ties() {
        assert_eq!(page(Paging::default()).unwrap(), ["d", "c", "b", "a"]);
        assert_eq!(page(sorted("name", true)).unwrap(), ["d", "a", "c", "b"]);
        assert_eq!(page(sorted("name", false)).unwrap(), ["b", "c", "a", "d"]);
    }

    #[test]
    fn a_marker_resumes_after_its_row_and_limit_offset_page() {
        let mut p = sorted("name", true);
        p.marker = Some("a".into());
        p.limit = Some(1);
        assert_eq!(page(p.clone()).unwrap(), ["c"]);
        p.offset = 1;
        assert_eq!(page(p).unwrap(), ["b"]);
        let missing = Paging {
            marker: Some("zz".into()),
            ..Default::default()
        };
        assert_eq!(page(missing).unwrap_err().field(), Some("marker"));
        assert_eq!(
            page(sorted("bogus", true)).unwrap_err().field(),
            Some("sort_key")
        );
        // An unknown key is refused even when there is nothing to sort.
        let none: Vec<Row> = Vec::new();
        assert!(paged(
            none,
            &sorted("bogus", true),
            &["name"],
            |_, _| None,
            |r| &r.0,
            |r| r.2
        )
        .is_err());
    }
}
