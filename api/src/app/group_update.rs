//! Update a generic group (Cinder 3.13 `PUT /groups/{id}`): name,
//! description, `add_volumes` and `remove_volumes` (comma-separated ids).
//! The candidates' facts are read in the same transaction as the decision.

use domain::group::{Candidate, CandidateVolume, GroupAggregate, GroupCommand};
use domain::VolumeAggregate;
use uuid::Uuid;

use super::group_queries::group;
use super::{App, AppError, Caller, RequestMeta, Tx};

pub struct UpdateGroupRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub add_volumes: Vec<String>,
    pub remove_volumes: Vec<String>,
}

/// A volume named in `add_volumes`, as the caller may see it.
fn candidate(tx: &Tx<'_, '_>, raw: &str) -> Result<Candidate, AppError> {
    let Some(id) = crate::input::uuid(raw) else {
        return Ok(Candidate {
            id: raw.to_string(),
            volume: None,
        });
    };
    let (st, _) = tx.w.load::<VolumeAggregate>(&id.to_string())?;
    let volume = match st.volume {
        Some(v) if !st.deleted && tx.caller.owns(&v.project_id) => {
            let volume_type_id = projections::volume_types::by_name(tx.conn(), &v.volume_type)?
                .and_then(|t| Uuid::parse_str(&t.id).ok());
            let group_id = projections::groups::group_of_volume(tx.conn(), &id.to_string())?
                .and_then(|g| Uuid::parse_str(&g).ok());
            Some(CandidateVolume {
                id,
                project_id: v.project_id,
                status: v.status.as_str().to_string(),
                volume_type_id,
                group_id,
            })
        }
        _ => None,
    };
    Ok(Candidate {
        id: raw.to_string(),
        volume,
    })
}

pub async fn update(
    app: &App,
    caller: &Caller,
    meta: &RequestMeta,
    raw: String,
    r: UpdateGroupRequest,
) -> Result<(), AppError> {
    app.run(caller, meta, None, move |tx| {
        let g = group(tx, &raw)?;
        let add = r
            .add_volumes
            .iter()
            .map(|v| candidate(tx, v))
            .collect::<Result<Vec<_>, _>>()?;
        let mut member_statuses = Vec::new();
        for m in &g.volumes {
            let Ok(id) = Uuid::parse_str(m) else { continue };
            let (st, _) = tx.w.load::<VolumeAggregate>(m)?;
            if let Some(v) = st.volume.filter(|_| !st.deleted) {
                member_statuses.push((id, v.status.as_str().to_string()));
            }
        }
        tx.execute::<GroupAggregate>(
            &g.id,
            GroupCommand::Update {
                name: r.name,
                description: r.description,
                add,
                remove: r.remove_volumes,
                member_statuses,
            },
        )?;
        Ok(())
    })
    .await
}
