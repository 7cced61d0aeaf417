//! The unsafe endpoints: switchover, failover, restart, reload, reinitialize and writes of the
//! dynamic configuration. Each checks its request the way Patroni does (same status codes and
//! one-line messages), then proposes a command to the replicated state; the member that must
//! act reads it in its HA loop. Immediate requests wait for the outcome there, so the answer
//! says what happened, whichever member received the call.
//!
//! Must not: act on the database itself (that is the HA loop's job), or change anything when a
//! request is refused.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{ApiState, Inner, json};
use crate::config::{DynamicConfig, merge_patch};
use crate::state::{
    ClusterState, Command, Outcome, ReinitRequest, Rejection, RestartRequest, RestartResult,
    RestartRole, StoredConfig, SwitchoverRequest,
};
use crate::timestamp::{self, TimestampError};
use crate::types::{MemberName, UnixMillis};

/// A refusal or an outcome: status code and Patroni's one-line message.
pub(super) struct Reply(StatusCode, String);

impl Reply {
    pub(super) fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self(code, message.into())
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

pub(super) fn bad_request(message: impl Into<String>) -> Reply {
    Reply::new(StatusCode::BAD_REQUEST, message)
}

/// A JSON object body. `required`: an empty object or no body at all is refused (400 / 411),
/// as Patroni refuses them.
pub(super) fn body_object(
    headers: &HeaderMap,
    body: &Bytes,
    required: bool,
) -> Result<Map<String, Value>, Reply> {
    if body.is_empty() {
        if !required {
            return Ok(Map::new());
        }
        return Err(if headers.contains_key(header::CONTENT_LENGTH) {
            bad_request("the request body is empty")
        } else {
            Reply::new(StatusCode::LENGTH_REQUIRED, "Content-Length is required")
        });
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) if !(required && map.is_empty()) => Ok(map),
        Ok(Value::Object(_)) => Err(bad_request("the request body is an empty object")),
        Ok(_) => Err(bad_request("the request body must be a JSON object")),
        Err(err) => Err(bad_request(format!(
            "the request body is not valid JSON: {err}"
        ))),
    }
}

/// An optional string field; any other type is refused.
pub(super) fn string_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, Reply> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_request(format!("{key} must be a string, got {other}"))),
    }
}

fn timestamp_reply(err: TimestampError) -> Reply {
    match err {
        TimestampError::NoTimezone(_) => bad_request(err.to_string()),
        TimestampError::Unparsable => Reply::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
    }
}

pub(super) async fn propose(inner: &Inner, command: Command) -> Result<Outcome, Reply> {
    let kind = command.kind();
    inner.raft.propose(command).await.map_err(|err| {
        Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("failed to write {kind} into the cluster state: {err}"),
        )
    })
}

/// A change of leader, a restart or a reinitialisation would cut across an upgrade in progress
/// (the cluster is paused for it; its primary stops and starts the database itself).
fn during_upgrade(cluster: &ClusterState, action: &str) -> Option<Reply> {
    let upgrade = cluster.upgrade.as_ref().filter(|u| u.pauses())?;
    Some(Reply::new(
        StatusCode::PRECONDITION_FAILED,
        format!(
            "{action} is not possible: an upgrade to {} is in progress ({})",
            upgrade.bin_dir.display(),
            upgrade.phase.name()
        ),
    ))
}

fn loop_wait(inner: &Inner, cluster: &ClusterState) -> Duration {
    super::documents::dynamic(inner, cluster).loop_wait
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Switchover,
    Failover,
}

impl Change {
    fn noun(self) -> &'static str {
        match self {
            Change::Switchover => "Switchover",
            Change::Failover => "Failover",
        }
    }
    fn verb(self) -> &'static str {
        match self {
            Change::Switchover => "switched over",
            Change::Failover => "failed over",
        }
    }
}

pub async fn post_switchover(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_leader(&s.inner, Change::Switchover, &headers, &body)
        .await
        .into_response()
}

pub async fn post_failover(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    change_leader(&s.inner, Change::Failover, &headers, &body)
        .await
        .into_response()
}

/// `POST /switchover` and `POST /failover`, in Patroni's order of checks.
async fn change_leader(inner: &Inner, change: Change, headers: &HeaderMap, body: &Bytes) -> Reply {
    let map = match body_object(headers, body, true) {
        Ok(map) => map,
        Err(reply) => return reply,
    };
    let fields = (|| {
        Ok::<_, Reply>((
            string_field(&map, "leader")?,
            match string_field(&map, "candidate")? {
                Some(c) => Some(c),
                None => string_field(&map, "member")?,
            },
            string_field(&map, "scheduled_at")?,
        ))
    })();
    let (leader, candidate, scheduled_at) = match fields {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let cluster = inner.raft.state();
    let dynamic = super::documents::dynamic(inner, &cluster);
    if let Some(reply) = during_upgrade(&cluster, change.noun()) {
        return reply;
    }
    if change == Change::Failover && candidate.is_none() {
        return bad_request("Failover could be performed only to a specific candidate");
    }
    if change == Change::Switchover && leader.is_none() {
        return bad_request("Switchover could be performed only from a specific leader");
    }
    let scheduled_at = match scheduled_at {
        None => None,
        Some(_) if change == Change::Failover => {
            return bad_request("Failover can't be scheduled");
        }
        Some(_) if dynamic.pause => {
            return bad_request("Can't schedule switchover in the paused state");
        }
        Some(text) => match timestamp::parse_zoned(&text, "switchover") {
            Err(err) => return timestamp_reply(err),
            Ok(at) if at <= UnixMillis::now() => {
                return Reply::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Cannot schedule switchover in the past",
                );
            }
            Ok(at) => Some(at),
        },
    };
    if dynamic.pause && candidate.is_none() {
        return bad_request(
            "Switchover is possible only to a specific candidate in a paused state",
        );
    }
    if leader.is_some() && leader == candidate {
        return bad_request("Switchover target and source are the same");
    }
    let leader = leader.map(|l| MemberName::from(l.as_str()));
    let candidate = candidate.map(|c| MemberName::from(c.as_str()));
    let action = change.noun();

    // Failover of a cluster without a leader: the named candidate is promoted as it is.
    let Some(current) = cluster.leader_name().cloned() else {
        let Some(candidate) = candidate else {
            return Reply::new(
                StatusCode::PRECONDITION_FAILED,
                format!("{action} is not possible: the cluster has no leader"),
            );
        };
        if !cluster.members.contains_key(&candidate) {
            return Reply::new(StatusCode::PRECONDITION_FAILED, "candidate does not exists");
        }
        let command = Command::Promote {
            member: candidate.clone(),
            ended: cluster.generation,
        };
        return match propose(inner, command).await {
            Err(reply) => reply,
            Ok(Outcome::Rejected(r)) => Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{action} failed: {r}"),
            ),
            Ok(Outcome::Applied) => Reply::new(
                StatusCode::OK,
                format!("Successfully {} to \"{candidate}\"", change.verb()),
            ),
        };
    };
    if leader.as_ref().is_some_and(|l| *l != current) {
        return Reply::new(
            StatusCode::PRECONDITION_FAILED,
            "leader name does not match",
        );
    }
    let requested_at = UnixMillis::now();
    let request = SwitchoverRequest {
        leader: current.clone(),
        candidate: candidate.clone(),
        scheduled_at,
        requested_at,
    };
    if scheduled_at.is_none() {
        if let Some(c) = &candidate
            && !cluster.members.contains_key(c)
        {
            return Reply::new(StatusCode::PRECONDITION_FAILED, "candidate does not exists");
        }
        if cluster.members.keys().all(|m| *m == current) {
            return Reply::new(
                StatusCode::PRECONDITION_FAILED,
                format!("{action} is not possible: cluster does not have members except leader"),
            );
        }
        let ttl = dynamic.ttl;
        if let Err(why) = crate::ha::operator::switchover_target(
            &cluster,
            &current,
            &request,
            UnixMillis::now(),
            ttl,
            cluster
                .members
                .get(&current)
                .and_then(|m| m.status.timeline),
        ) {
            return Reply::new(
                StatusCode::PRECONDITION_FAILED,
                format!("{action} is not possible: {why}"),
            );
        }
    }
    match propose(inner, Command::RequestSwitchover { request }).await {
        Err(reply) => return reply,
        Ok(Outcome::Rejected(Rejection::LeaderMismatch | Rejection::NoLeader)) => {
            return Reply::new(
                StatusCode::PRECONDITION_FAILED,
                "leader name does not match",
            );
        }
        Ok(Outcome::Rejected(r)) => {
            return Reply::new(StatusCode::PRECONDITION_FAILED, r.to_string());
        }
        Ok(Outcome::Applied) => {}
    }
    if scheduled_at.is_some() {
        return Reply::new(StatusCode::ACCEPTED, "Switchover scheduled");
    }
    // Wait for the primary to carry it out, as Patroni's handler does.
    let limit = (loop_wait(inner, &cluster) * 2).max(Duration::from_secs(20));
    let deadline = tokio::time::Instant::now() + limit;
    let mut states = inner.raft.subscribe();
    // This member may apply the request a moment after the Raft leader did: its withdrawal
    // counts only once the request was seen here.
    let mut seen = false;
    loop {
        let state = states.borrow_and_update().clone();
        let pending = state
            .switchover
            .as_ref()
            .is_some_and(|r| r.requested_at == requested_at);
        seen |= pending;
        match state.leader_name() {
            Some(new) if *new != current => {
                return match &candidate {
                    Some(c) if c != new => Reply::new(
                        StatusCode::OK,
                        format!(
                            "{} to \"{new}\" instead of \"{c}\"",
                            capitalised(change.verb())
                        ),
                    ),
                    _ => Reply::new(
                        StatusCode::OK,
                        format!("Successfully {} to \"{new}\"", change.verb()),
                    ),
                };
            }
            _ if seen && !pending => {
                return Reply::new(StatusCode::SERVICE_UNAVAILABLE, format!("{action} failed"));
            }
            _ => {}
        }
        if tokio::time::timeout_at(deadline, states.changed())
            .await
            .is_err()
        {
            return Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{action} status unknown after {} seconds; operation may still be in progress",
                    limit.as_secs()
                ),
            );
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `DELETE /switchover`: withdraw a scheduled switchover.
pub async fn delete_switchover(State(s): State<ApiState>) -> Response {
    match propose(&s.inner, Command::CancelSwitchover).await {
        Err(reply) => reply,
        Ok(Outcome::Applied) => Reply::new(StatusCode::OK, "scheduled switchover deleted"),
        Ok(Outcome::Rejected(_)) => Reply::new(StatusCode::NOT_FOUND, "no switchover is scheduled"),
    }
    .into_response()
}

/// `POST /restart`: restart this member's database now or at `schedule`, if its conditions
/// hold then.
pub async fn post_restart(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    restart(&s.inner, &headers, &body).await.into_response()
}

fn restart_request(map: &Map<String, Value>) -> Result<RestartRequest, Reply> {
    const KNOWN: [&str; 5] = [
        "schedule",
        "role",
        "postgres_version",
        "timeout",
        "restart_pending",
    ];
    if let Some(unknown) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad_request(format!(
            "Unknown filter for the scheduled restart: {unknown}"
        )));
    }
    let role = match string_field(map, "role")?.as_deref() {
        None => None,
        Some("primary" | "master") => Some(RestartRole::Primary),
        Some("replica") => Some(RestartRole::Replica),
        Some("standby_leader") => Some(RestartRole::StandbyLeader),
        Some(_) => {
            return Err(bad_request(
                "PostgreSQL role should be either primary, standby_leader, or replica",
            ));
        }
    };
    let postgres_version = match map.get("postgres_version") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            Some(server_version_number(&text).ok_or_else(|| {
                bad_request(format!(
                    "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {text}"
                ))
            })?)
        }
    };
    let timeout_secs = match map.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let secs = v
                .as_f64()
                .or_else(|| {
                    v.as_str()
                        .and_then(|t| t.trim_end_matches('s').parse().ok())
                })
                .filter(|s| *s > 0.0)
                .ok_or_else(|| bad_request("Timeout should be a positive number of seconds"))?;
            Some(secs.ceil() as u64)
        }
    };
    let restart_pending = match map.get("restart_pending") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad_request(format!(
                "restart_pending must be true or false, got {other}"
            )));
        }
    };
    Ok(RestartRequest {
        schedule: None,
        role,
        postgres_version,
        restart_pending,
        timeout_secs,
        requested_at: UnixMillis::now(),
    })
}

/// `X.Y` (10 and later) or `X.Y.Z` (9.x) as PostgreSQL's `server_version_num`.
fn server_version_number(text: &str) -> Option<u32> {
    let parts: Vec<u32> = text
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [major, minor] if *major >= 10 => Some(major * 10_000 + minor),
        [major, minor, patch] if *minor < 100 && *patch < 100 => {
            Some(major * 10_000 + minor * 100 + patch)
        }
        _ => None,
    }
}

async fn restart(inner: &Inner, headers: &HeaderMap, body: &Bytes) -> Reply {
    let map = match body_object(headers, body, false) {
        Ok(map) => map,
        Err(reply) => return reply,
    };
    let mut request = match restart_request(&map) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let cluster = inner.raft.state();
    let dynamic = super::documents::dynamic(inner, &cluster);
    if let Some(reply) = during_upgrade(&cluster, "Restart") {
        return reply;
    }
    match string_field(&map, "schedule") {
        Err(reply) => return reply,
        Ok(None) => {}
        Ok(Some(_)) if dynamic.pause => {
            return Reply::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Can't schedule restart in the paused state",
            );
        }
        Ok(Some(text)) => match timestamp::parse_zoned(&text, "restart") {
            Err(err) => return timestamp_reply(err),
            Ok(at) if at <= UnixMillis::now() => {
                return Reply::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Cannot schedule restart in the past",
                );
            }
            Ok(at) => request.schedule = Some(at),
        },
    }
    let me = inner.config.name.clone();
    let scheduled = request.schedule.is_some();
    let requested_at = request.requested_at;
    let wait = request
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(dynamic.primary_start_timeout)
        + Duration::from_secs(30);
    let command = Command::RequestRestart {
        member: me.clone(),
        request,
    };
    match propose(inner, command).await {
        Err(reply) => return reply,
        Ok(Outcome::Rejected(Rejection::RestartPending { .. })) if scheduled => {
            return Reply::new(StatusCode::CONFLICT, "Another restart is already scheduled");
        }
        Ok(Outcome::Rejected(Rejection::RestartPending { .. })) => {
            return Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "restart already in progress",
            );
        }
        Ok(Outcome::Rejected(r)) => {
            return Reply::new(StatusCode::SERVICE_UNAVAILABLE, r.to_string());
        }
        Ok(Outcome::Applied) => {}
    }
    if scheduled {
        return Reply::new(StatusCode::ACCEPTED, "Restart scheduled");
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut states = inner.raft.subscribe();
    loop {
        let outcome = states
            .borrow_and_update()
            .restart_outcomes
            .get(&me)
            .filter(|o| o.requested_at == requested_at)
            .map(|o| o.result.clone());
        match outcome {
            Some(RestartResult::Restarted) => {
                return Reply::new(StatusCode::OK, "restarted successfully");
            }
            Some(RestartResult::ConditionsNotMet) => {
                return Reply::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "restart conditions are not satisfied",
                );
            }
            Some(RestartResult::Failed { .. }) => {
                return Reply::new(StatusCode::SERVICE_UNAVAILABLE, "restart failed");
            }
            None => {}
        }
        if tokio::time::timeout_at(deadline, states.changed())
            .await
            .is_err()
        {
            return Reply::new(StatusCode::SERVICE_UNAVAILABLE, "restart status unknown");
        }
    }
}

/// `DELETE /restart`: withdraw this member's scheduled restart.
pub async fn delete_restart(State(s): State<ApiState>) -> Response {
    let member = s.inner.config.name.clone();
    match propose(&s.inner, Command::CancelRestart { member }).await {
        Err(reply) => reply,
        Ok(Outcome::Applied) => Reply::new(StatusCode::OK, "scheduled restart deleted"),
        Ok(Outcome::Rejected(_)) => Reply::new(StatusCode::NOT_FOUND, "no restarts are scheduled"),
    }
    .into_response()
}

/// `POST /reinitialize`: set this standby's data aside and clone it again from the leader.
pub async fn post_reinitialize(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reinitialize(&s.inner, &headers, &body)
        .await
        .into_response()
}

async fn reinitialize(inner: &Inner, headers: &HeaderMap, body: &Bytes) -> Reply {
    let map = match body_object(headers, body, false) {
        Ok(map) => map,
        Err(reply) => return reply,
    };
    let flag = |key: &str| match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad_request(format!(
            "{key} must be true or false, got {other}"
        ))),
    };
    let (force, from_leader) = match (flag("force"), flag("from_leader"), flag("from-leader")) {
        (Ok(force), Ok(a), Ok(b)) => (force, a || b),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    if let Some(reply) = during_upgrade(&inner.raft.state(), "Reinitialize") {
        return reply;
    }
    let me = inner.config.name.clone();
    let command = Command::RequestReinit {
        member: me,
        request: ReinitRequest {
            from_leader,
            requested_at: UnixMillis::now(),
        },
        force,
    };
    match propose(inner, command).await {
        Err(reply) => reply,
        Ok(Outcome::Applied) => Reply::new(StatusCode::OK, "reinitialize started"),
        Ok(Outcome::Rejected(Rejection::NoLeader)) => Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cluster has no leader, can not reinitialize",
        ),
        Ok(Outcome::Rejected(Rejection::LeaderPresent { .. })) => Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "I am the leader, can not reinitialize",
        ),
        Ok(Outcome::Rejected(Rejection::ReinitPending { .. })) => Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reinitialize already in progress",
        ),
        Ok(Outcome::Rejected(r)) => Reply::new(StatusCode::SERVICE_UNAVAILABLE, r.to_string()),
    }
}

/// `PATCH /config`: merge the body into the dynamic configuration (`null` deletes a key).
/// The result is validated first; an invalid one is refused with the reason, nothing stored.
pub async fn patch_config(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let patch = match body_object(&headers, &body, true) {
        Ok(map) => map,
        Err(reply) => return reply.into_response(),
    };
    let current = s.inner.raft.state().written_config().clone();
    let mut merged = if current.is_object() {
        current.clone()
    } else {
        Value::Object(Map::new())
    };
    merge_patch(&mut merged, &Value::Object(patch));
    store_config(&s.inner, merged, Some(current)).await
}

/// `PUT /config`: replace the dynamic configuration with the (validated) body.
pub async fn put_config(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    match body_object(&headers, &body, true) {
        Ok(map) => store_config(&s.inner, Value::Object(map), None).await,
        Err(reply) => reply.into_response(),
    }
}

async fn store_config(inner: &Inner, config: Value, expected: Option<Value>) -> Response {
    let wanted = match StoredConfig::parse(config.clone()) {
        Ok(wanted) => wanted,
        Err(err) => {
            return bad_request(format!("invalid configuration: {err}")).into_response();
        }
    };
    let cluster = inner.raft.state();
    let current = super::documents::dynamic(inner, &cluster);
    if let Err(why) = standby_cluster_change(&cluster, current, wanted.typed()) {
        return bad_request(why).into_response();
    }
    let command = Command::SetConfig {
        config: config.clone(),
        expected,
    };
    match propose(inner, command).await {
        Err(reply) => reply.into_response(),
        Ok(Outcome::Applied) => {
            // Read your writes: a GET /config to this member right after sees the new value.
            let mut states = inner.raft.subscribe();
            let applied_here = states.wait_for(|state| state.written_config() == &config);
            let _ = tokio::time::timeout(Duration::from_secs(2), applied_here).await;
            json(StatusCode::OK, &config)
        }
        Ok(Outcome::Rejected(_)) => Reply::new(
            StatusCode::CONFLICT,
            "the configuration was changed concurrently; try again",
        )
        .into_response(),
    }
}

/// Whether the change of `standby_cluster` from `current` to `wanted` may be stored: set at
/// bootstrap, changed (another remote) or removed (`promote-cluster`) on a standby cluster; never
/// added to a cluster that was initialised as a normal one (`demote-cluster`).
///
/// Why demotion is refused: the primary would have to stop and restart as a standby of the
/// remote, which works only if the remote's WAL history contains everything this primary
/// wrote; nothing here can check that before the primary is stopped, and a primary that cannot
/// follow the remote would leave the cluster with no writable member and no way back but an
/// operator. Patroni's own demotion releases the lock in that case; Tribune refuses up front.
fn standby_cluster_change(
    cluster: &ClusterState,
    current: &DynamicConfig,
    wanted: &DynamicConfig,
) -> Result<(), String> {
    if wanted.standby_cluster.is_none()
        || current.standby_cluster.is_some()
        || cluster.initialize.is_none()
    {
        return Ok(());
    }
    Err(
        "standby_cluster refused: demoting a running cluster to a standby cluster \
         (demote-cluster) is not supported, because Tribune cannot verify before stopping the \
         primary that the remote's WAL history contains everything this primary wrote; set \
         standby_cluster in bootstrap.dcs of a new cluster instead"
            .to_owned(),
    )
}

/// `POST /reload`: read the local configuration file again and apply what can change while
/// the agent runs (Patroni answers 202 and reloads in the background, as here).
pub async fn post_reload(State(s): State<ApiState>) -> Response {
    s.inner.views.reload.notify_one();
    Reply::new(StatusCode::ACCEPTED, "reload scheduled").into_response()
}

/// `DELETE /cluster` (Tribune's own, for `tribunectl remove`): wipe the cluster's state and
/// leave a tombstone, so that no agent manages or bootstraps a database of this cluster any
/// more. The body must name the cluster (`{"scope": ...}`), and its leader when it has one
/// (`{"leader": ...}`), as `patronictl remove` makes the operator type them.
pub async fn delete_cluster(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    remove_cluster(&s.inner, &headers, &body)
        .await
        .into_response()
}

async fn remove_cluster(inner: &Inner, headers: &HeaderMap, body: &Bytes) -> Reply {
    let map = match body_object(headers, body, true) {
        Ok(map) => map,
        Err(reply) => return reply,
    };
    let (scope, leader) = match (string_field(&map, "scope"), string_field(&map, "leader")) {
        (Ok(scope), Ok(leader)) => (scope, leader),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    if scope.as_deref() != Some(inner.config.scope.as_str()) {
        return bad_request("Cluster names specified do not match");
    }
    let cluster = inner.raft.state();
    if let Some(current) = cluster.leader_name()
        && leader.as_deref() != Some(current.as_str())
    {
        return bad_request("You did not specify the current leader of the cluster");
    }
    match propose(inner, Command::RemoveCluster).await {
        Err(reply) => reply,
        Ok(Outcome::Applied) => Reply::new(StatusCode::OK, "cluster removed"),
        Ok(Outcome::Rejected(Rejection::ClusterRemoved)) => {
            Reply::new(StatusCode::CONFLICT, "the cluster was removed already")
        }
        Ok(Outcome::Rejected(r)) => Reply::new(StatusCode::SERVICE_UNAVAILABLE, r.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merging_a_patch() {
        let mut config = json!({"ttl": 30, "postgresql": {"parameters": {"a": 1, "b": 2}}});
        merge_patch(
            &mut config,
            &json!({"ttl": 20, "pause": true, "postgresql": {"parameters": {"a": null, "c": 3}}}),
        );
        assert_eq!(
            config,
            json!({"ttl": 20, "postgresql": {"parameters": {"b": 2, "c": 3}}, "pause": true})
        );
        merge_patch(&mut config, &json!({"pause": null}));
        assert!(config.get("pause").is_none());
    }

    #[test]
    fn standby_cluster_may_be_set_at_bootstrap_changed_or_removed_but_not_added_later() {
        let config = |v: Value| DynamicConfig::from_json(&v).unwrap();
        let normal = config(json!({}));
        let standby = config(json!({"standby_cluster": {"host": "10.0.0.1", "port": 5432}}));
        let moved = config(json!({"standby_cluster": {"host": "10.0.0.2", "port": 5432}}));
        let fresh = ClusterState::default();
        let initialised = ClusterState {
            initialize: Some(crate::state::Initialize {
                by: MemberName::from("node0"),
                sysid: Some("42".into()),
                at: UnixMillis(0),
            }),
            ..ClusterState::default()
        };
        assert_eq!(standby_cluster_change(&fresh, &normal, &standby), Ok(()));
        assert_eq!(
            standby_cluster_change(&initialised, &standby, &moved),
            Ok(())
        );
        assert_eq!(
            standby_cluster_change(&initialised, &standby, &normal),
            Ok(()),
            "promote-cluster"
        );
        assert_eq!(
            standby_cluster_change(&initialised, &normal, &normal),
            Ok(())
        );
        let refused = standby_cluster_change(&initialised, &normal, &standby).unwrap_err();
        assert!(
            refused.contains("demote-cluster) is not supported"),
            "{refused}"
        );
        assert!(!refused.contains('\n'));
    }

    #[test]
    fn restart_filters() {
        let parse = |v: Value| restart_request(v.as_object().unwrap()).map_err(|r| (r.0, r.1));
        let ok = parse(
            json!({"role": "replica", "postgres_version": "15.4", "timeout": 30,
                              "restart_pending": true}),
        )
        .unwrap();
        assert_eq!(ok.role, Some(RestartRole::Replica));
        assert_eq!(ok.postgres_version, Some(150_004));
        assert_eq!(ok.timeout_secs, Some(30));
        assert!(ok.restart_pending);
        for (body, message) in [
            (
                json!({"when": 1}),
                "Unknown filter for the scheduled restart: when",
            ),
            (
                json!({"role": "boss"}),
                "PostgreSQL role should be either primary, standby_leader, or replica",
            ),
            (
                json!({"postgres_version": "10"}),
                "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10",
            ),
            (
                json!({"timeout": -1}),
                "Timeout should be a positive number of seconds",
            ),
            (
                json!({"timeout": "soon"}),
                "Timeout should be a positive number of seconds",
            ),
            (
                json!({"restart_pending": "yes"}),
                "restart_pending must be true or false",
            ),
        ] {
            let (code, text) = parse(body.clone()).unwrap_err();
            assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
            assert!(text.starts_with(message), "{body}: {text}");
        }
        assert_eq!(server_version_number("9.6.24"), Some(90_624));
        assert_eq!(server_version_number("16.1"), Some(160_001));
        assert_eq!(server_version_number("x.1"), None);
    }

    #[test]
    fn bodies() {
        let h = HeaderMap::new();
        let mut with_length = HeaderMap::new();
        with_length.insert(header::CONTENT_LENGTH, "0".parse().unwrap());
        let code = |r: Result<Map<String, Value>, Reply>| r.map(|_| ()).map_err(|r| r.0);
        assert_eq!(
            code(body_object(&h, &Bytes::new(), true)),
            Err(StatusCode::LENGTH_REQUIRED)
        );
        assert_eq!(
            code(body_object(&with_length, &Bytes::new(), true)),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(code(body_object(&h, &Bytes::new(), false)), Ok(()));
        for bad in ["{", "[1]", "{}", "\"x\""] {
            assert_eq!(
                code(body_object(&h, &Bytes::from(bad), true)),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        assert_eq!(
            code(body_object(&h, &Bytes::from("{\"a\":1}"), true)),
            Ok(())
        );
    }
}
