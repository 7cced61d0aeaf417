//! Fencing another member's openGauss over SQL, for a former primary whose own agent cannot
//! (frozen, cut off): before a failover, every standby that can still reach it runs
//! [`FENCE_STATEMENTS`] there, logged in as the replication administrator (the initial user
//! cannot log in from another host).
//!
//! openGauss's `ALTER SYSTEM` takes only reload- and restart-level parameters, so
//! `default_transaction_read_only` (PostgreSQL's first step) is out of reach. What remains is
//! what matters for RPO 0: commits wait for a standby that does not exist, with
//! `most_available_sync` off so that the primary does not stop waiting, and every client
//! session is ended. A commit is then never acknowledged (sessions that lowered their own
//! `synchronous_commit` below `remote_write` are outside any synchronous guarantee, as on
//! PostgreSQL). `ALTER SYSTEM` writes `postgresql.conf` and signals a reload itself; the line it
//! edits is the agent's, so the agent's next write of its block removes the fence.
//!
//! Sessions are those with a client port: openGauss's background threads have none. Not run
//! against a real openGauss here (none can be installed on the machines this was written on).

/// The `synchronous_standby_names` of a fenced primary: no standby has this name.
pub const FENCED_STANDBY: &str = "tribune fenced: no standby has this name";

/// Answers `t` on a standby: the fence is for primaries only.
pub const IN_RECOVERY_SQL: &str = "SELECT pg_catalog.pg_is_in_recovery()";

/// The fence, one statement at a time (`ALTER SYSTEM` cannot run in a transaction block):
/// settings first, then sessions.
pub const FENCE_STATEMENTS: [&str; 3] = [
    "ALTER SYSTEM SET most_available_sync = off",
    "ALTER SYSTEM SET synchronous_standby_names = '\"tribune fenced: no standby has this name\"'",
    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
     WHERE pid <> pg_catalog.pg_backend_pid() AND client_port IS NOT NULL",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::opengauss::syncnames;

    #[test]
    fn settings_then_sessions_one_statement_each() {
        assert!(FENCE_STATEMENTS[0].contains("most_available_sync = off"));
        assert!(FENCE_STATEMENTS[1].contains(FENCED_STANDBY));
        assert!(FENCE_STATEMENTS[2].contains("pg_terminate_backend"));
        assert!(FENCE_STATEMENTS.iter().all(|s| !s.contains(';')));
    }

    #[test]
    fn opengauss_accepts_the_fenced_name() {
        assert_eq!(syncnames::check(&format!("\"{FENCED_STANDBY}\"")), Ok(()));
    }
}
