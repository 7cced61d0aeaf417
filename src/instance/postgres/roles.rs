//! The roles bootstrap creates (Patroni's `post_bootstrap`): the replication user, the rewind
//! user with the function grants pg_rewind needs, and the superuser's password.
//!
//! Pure: the SQL is built here from the settings and the roles that already exist, so that a
//! repeated bootstrap alters rather than fails. Passwords are SQL literals in these statements, so
//! the batch first turns statement logging off for the session.

use std::collections::BTreeSet;

use crate::instance::conf::{sql_ident, sql_literal};

use super::settings::PostgresSettings;

/// Lists existing roles; one column, `rolname`.
pub const LIST_SQL: &str = "SELECT rolname FROM pg_catalog.pg_roles";

const QUIET: &str = "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; \
                     SET log_min_error_statement TO 'log';";

/// Functions pg_rewind calls on the source, granted to a non-superuser rewind user.
const REWIND_FUNCTIONS: &[&str] = &[
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
];

fn password(p: Option<&str>) -> String {
    match p {
        Some(p) => format!("PASSWORD {}", sql_literal(p)),
        None => "PASSWORD NULL".to_owned(),
    }
}

fn create_or_alter(existing: &BTreeSet<String>, user: &str, options: &str) -> String {
    let verb = if existing.contains(user) {
        "ALTER"
    } else {
        "CREATE"
    };
    format!("{verb} ROLE {} WITH {options};", sql_ident(user))
}

/// One batch of statements that brings the roles to what the settings say.
pub fn bootstrap_sql(s: &PostgresSettings, existing: &BTreeSet<String>) -> String {
    let mut out = vec![QUIET.to_owned()];
    let (su, su_pw) = &s.superuser;
    if su_pw.is_some() {
        out.push(format!(
            "ALTER ROLE {} WITH {};",
            sql_ident(su),
            password(su_pw.as_deref())
        ));
    }
    let (repl, repl_pw) = &s.replication;
    if repl != su {
        out.push(create_or_alter(
            existing,
            repl,
            &format!("LOGIN REPLICATION {}", password(repl_pw.as_deref())),
        ));
    }
    if let Some((rewind, rewind_pw)) = &s.rewind
        && rewind != su
    {
        let mut known = existing.clone();
        known.insert(repl.clone());
        out.push(create_or_alter(
            &known,
            rewind,
            &format!("LOGIN {}", password(rewind_pw.as_deref())),
        ));
        for f in REWIND_FUNCTIONS {
            out.push(format!(
                "GRANT EXECUTE ON FUNCTION {f} TO {};",
                sql_ident(rewind)
            ));
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::postgres::settings::sample;

    #[test]
    fn fresh_cluster() {
        let existing = BTreeSet::from(["postgres".to_owned()]);
        assert_eq!(
            bootstrap_sql(&sample(), &existing),
            "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; \
             SET log_min_error_statement TO 'log';\n\
             ALTER ROLE \"postgres\" WITH PASSWORD 'su-pw';\n\
             CREATE ROLE \"replicator\" WITH LOGIN REPLICATION PASSWORD 'rep''pw';\n\
             CREATE ROLE \"rewind_user\" WITH LOGIN PASSWORD 'rw-pw';\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO \"rewind_user\";\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO \"rewind_user\";\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO \"rewind_user\";\n\
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO \"rewind_user\";"
        );
    }

    #[test]
    fn repeated_bootstrap_alters() {
        let existing: BTreeSet<String> = ["postgres", "replicator", "rewind_user"]
            .map(String::from)
            .into();
        let sql = bootstrap_sql(&sample(), &existing);
        assert!(!sql.contains("CREATE ROLE"), "{sql}");
        assert!(sql.contains("ALTER ROLE \"replicator\" WITH LOGIN REPLICATION"));
    }

    #[test]
    fn shared_users_are_not_created_twice() {
        let mut s = sample();
        s.rewind = Some(("replicator".into(), Some("rep'pw".into())));
        s.superuser.1 = None;
        let sql = bootstrap_sql(&s, &BTreeSet::new());
        assert!(!sql.contains("ALTER ROLE \"postgres\""));
        assert!(sql.contains("CREATE ROLE \"replicator\" WITH LOGIN REPLICATION"));
        assert!(sql.contains("ALTER ROLE \"replicator\" WITH LOGIN PASSWORD"));
        s.rewind = Some(("postgres".into(), None));
        assert!(!bootstrap_sql(&s, &BTreeSet::new()).contains("GRANT"));
    }
}
