//! `POST /upgrade` (Tribune's own; `tribunectl upgrade`): a major-version upgrade of the whole
//! cluster to the PostgreSQL whose programs are in `bin_dir` (the same path on every member).
//! Authenticated like the other unsafe endpoints (`security` checks it before routing).
//!
//! The request is refused at once when the replicated state shows a reason (`ha::upgrade::
//! refusal`: no leader, paused, a standby not streaming, ...); otherwise it is written to the
//! replicated state and every member checks its own host (`pg_upgrade --check` on the primary).
//! The answer waits for that verdict: 200 when the upgrade started, 412 with every reason when
//! it was refused (nothing was changed), 202 when the checks are still running at the time
//! limit. The upgrade then goes on in the members' HA loops; `GET /cluster` shows it.
//!
//! Must not: touch a database (the HA loops do).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::control::{Reply, bad_request, body_object, propose, string_field};
use super::{ApiState, Inner};
use crate::ha::upgrade::{CHECK_DEADLINE, refusal};
use crate::state::{Command, Outcome, UpgradePhase, UpgradeResult};
use crate::types::UnixMillis;

pub async fn post_upgrade(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    upgrade(&s.inner, &headers, &body).await.into_response()
}

async fn upgrade(inner: &Inner, headers: &HeaderMap, body: &Bytes) -> Reply {
    let map = match body_object(headers, body, true) {
        Ok(map) => map,
        Err(reply) => return reply,
    };
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "bin_dir") {
        return bad_request(format!("unknown field {unknown}: only bin_dir is accepted"));
    }
    let bin_dir = match string_field(&map, "bin_dir") {
        Ok(Some(dir)) => std::path::PathBuf::from(dir),
        Ok(None) => return bad_request("bin_dir is required: the new PostgreSQL's programs"),
        Err(reply) => return reply,
    };
    if !bin_dir.is_absolute() {
        return bad_request(format!(
            "bin_dir must be an absolute path, not {}",
            bin_dir.display()
        ));
    }
    let cluster = inner.raft.state();
    let dynamic = super::documents::dynamic(inner, &cluster);
    if let Some(why) = refusal(&cluster, dynamic, UnixMillis::now()) {
        return Reply::new(
            StatusCode::PRECONDITION_FAILED,
            format!("Upgrade is not possible: {why}"),
        );
    }
    let id = UnixMillis::now();
    match propose(inner, Command::RequestUpgrade { bin_dir, id }).await {
        Err(reply) => return reply,
        Ok(Outcome::Rejected(r)) => {
            return Reply::new(
                StatusCode::PRECONDITION_FAILED,
                format!("Upgrade is not possible: {r}"),
            );
        }
        Ok(Outcome::Applied) => {}
    }
    // Wait for the members' checks, as seen here (this member may apply the request a moment
    // after the Raft leader did).
    let limit = CHECK_DEADLINE + std::time::Duration::from_secs(10);
    let deadline = tokio::time::Instant::now() + limit;
    let mut states = inner.raft.subscribe();
    loop {
        let state = states.borrow_and_update().clone();
        if let Some(outcome) = state.last_upgrade.as_ref().filter(|o| o.id == id) {
            return match &outcome.result {
                UpgradeResult::Refused { reason } => Reply::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!("Upgrade refused, nothing was changed: {reason}"),
                ),
                UpgradeResult::RolledBack { reason } => Reply::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Upgrade rolled back: {reason}"),
                ),
                UpgradeResult::Upgraded { version } => {
                    Reply::new(StatusCode::OK, format!("Upgraded to PostgreSQL {version}"))
                }
            };
        }
        if let Some(upgrade) = state.upgrade.as_ref().filter(|u| u.id == id)
            && upgrade.phase != UpgradePhase::Checking
        {
            let version = upgrade.target().map_or("?", |(_, v)| v);
            return Reply::new(
                StatusCode::OK,
                format!(
                    "Upgrade to PostgreSQL {version} started: every member passed its checks; \
                     the cluster is paused until it ends (tribunectl list shows its progress)"
                ),
            );
        }
        if tokio::time::timeout_at(deadline, states.changed())
            .await
            .is_err()
        {
            return Reply::new(
                StatusCode::ACCEPTED,
                format!(
                    "Upgrade requested; the members' checks had not all ended after {} \
                     seconds (tribunectl list shows its progress)",
                    limit.as_secs()
                ),
            );
        }
    }
}
