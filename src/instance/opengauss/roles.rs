//! The role bootstrap creates: the replication administrator, a `SYSADMIN` with a password
//! that other members' agents log in with (md5: the one method tokio-postgres and openGauss
//! share) to fence a former primary. The initial user, which `gs_initdb` creates with its
//! password, cannot log in from another host at all.
//!
//! Pure: the SQL is built here from the settings and the roles that exist, so that a repeated
//! bootstrap alters rather than fails. The password is an SQL literal, so the batch first turns
//! statement logging off for the session. It is stored for md5 because the block of
//! `postgresql.conf` sets `password_encryption_type = 1` before the first start.

use std::collections::BTreeSet;

use crate::instance::conf::{sql_ident, sql_literal};

use super::settings::OpenGaussSettings;

/// Lists existing roles; one column, `rolname`.
pub const LIST_SQL: &str = "SELECT rolname FROM pg_catalog.pg_roles";

const QUIET: &str = "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; \
                     SET log_min_error_statement TO 'log';";

/// One batch that brings the replication administrator to what the settings say; `None` when
/// there is nothing to do (no password given: nobody can log in as it remotely anyway, or it is
/// the initial user).
pub fn bootstrap_sql(s: &OpenGaussSettings, existing: &BTreeSet<String>) -> Option<String> {
    let (user, password) = &s.replication;
    let password = password.as_deref()?;
    if *user == s.superuser.0 {
        return None;
    }
    let verb = if existing.contains(user) {
        "ALTER"
    } else {
        "CREATE"
    };
    Some(format!(
        "{QUIET}\n{verb} USER {} WITH SYSADMIN REPLICATION LOGIN PASSWORD {};",
        sql_ident(user),
        sql_literal(password)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::opengauss::settings::sample;

    #[test]
    fn creates_the_administrator_once() {
        let s = sample();
        let existing = BTreeSet::from(["omm".to_owned()]);
        assert_eq!(
            bootstrap_sql(&s, &existing).unwrap(),
            "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; \
             SET log_min_error_statement TO 'log';\n\
             CREATE USER \"tribune_admin\" WITH SYSADMIN REPLICATION LOGIN PASSWORD 'Admin#2024';"
        );
        let again = BTreeSet::from(["omm".to_owned(), "tribune_admin".to_owned()]);
        assert!(
            bootstrap_sql(&s, &again)
                .unwrap()
                .contains("\nALTER USER \"tribune_admin\"")
        );
    }

    #[test]
    fn nothing_without_a_password_or_for_the_initial_user() {
        let mut s = sample();
        s.replication.1 = None;
        assert_eq!(bootstrap_sql(&s, &BTreeSet::new()), None);
        s.replication = ("omm".into(), Some("Gauss@123".into()));
        assert_eq!(bootstrap_sql(&s, &BTreeSet::new()), None);
    }
}
