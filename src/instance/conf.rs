//! The text formats PostgreSQL and openGauss share: `postgresql.conf` values, libpq connection
//! strings, `.pgpass` lines, SQL literals and identifiers, `pg_hba.conf` tokens.
//!
//! Pure functions only; the adapters decide what to write and where. Every function here escapes
//! for exactly one format, so a value that passes through two (a conninfo inside a GUC) is escaped
//! twice, innermost first.

/// A `postgresql.conf` value: single-quoted, with `'` doubled and `\` escaped (the file's scanner
/// processes backslash escapes inside quotes).
pub fn guc_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', "''"))
}

/// The text of a GUC given as JSON in the configuration: strings as they are, booleans as
/// `on`/`off`, numbers as written, lists joined with `,` (`shared_preload_libraries`). `None`
/// for `null`, which means "leave it to the server's default".
pub fn guc_text(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Null => None,
        Value::Bool(true) => Some("on".to_owned()),
        Value::Bool(false) => Some("off".to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(guc_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(_) => Some(value.to_string()),
    }
}

/// One `name = 'value'` line.
pub fn guc_line(name: &str, value: &str) -> String {
    format!("{name} = {}\n", guc_quote(value))
}

/// A libpq connection-string value: bare when it is a plain word, else single-quoted with `\` and
/// `'` backslash-escaped.
pub fn conninfo_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\' || c == '=');
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
    }
}

/// `key=value key2=value2`, in the given order.
pub fn conninfo(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", conninfo_quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `.pgpass` field: `:` and `\` are backslash-escaped.
fn pgpass_field(value: &str) -> String {
    value.replace('\\', r"\\").replace(':', r"\:")
}

/// `.pgpass` lines matching any host, port and database for each `(user, password)` with a
/// password. libpq uses the first line that matches, so a user listed twice keeps its first
/// password.
pub fn pgpass(credentials: &[(&str, Option<&str>)]) -> String {
    let mut out = String::new();
    for (user, password) in credentials {
        if let Some(password) = password {
            out.push_str(&format!(
                "*:*:*:{}:{}\n",
                pgpass_field(user),
                pgpass_field(password)
            ));
        }
    }
    out
}

/// An SQL string literal (standard_conforming_strings on: only `'` is special).
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An SQL identifier, always double-quoted.
pub fn sql_ident(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// A `pg_hba.conf` user or database token: bare when it is a plain lower-case word and not a
/// keyword, else double-quoted.
pub fn hba_token(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(
            value,
            "all" | "sameuser" | "samerole" | "samegroup" | "replication"
        );
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    }
}

/// `pg_hba.conf`: a header naming the member, then `lines` (the configured ones, or the
/// adapter's default when none are configured).
pub fn hba_file(
    member: &str,
    configured: &[String],
    default: impl FnOnce() -> Vec<String>,
) -> String {
    let lines = if configured.is_empty() {
        default()
    } else {
        configured.to_vec()
    };
    let mut out =
        format!("# Written by the tribune agent for member {member}; edits are overwritten.\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A row of a status query for the parsers' tests: column name to text (absent is NULL).
#[cfg(test)]
pub(crate) fn test_row(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guc_values_are_quoted_for_the_conf_file() {
        assert_eq!(guc_quote("on"), "'on'");
        assert_eq!(guc_quote("it's"), "'it''s'");
        assert_eq!(guc_quote(r"C:\x"), r"'C:\\x'");
        assert_eq!(guc_line("work_mem", "4MB"), "work_mem = '4MB'\n");
    }

    #[test]
    fn guc_text_from_json() {
        assert_eq!(guc_text(&json!(true)).as_deref(), Some("on"));
        assert_eq!(guc_text(&json!(false)).as_deref(), Some("off"));
        assert_eq!(guc_text(&json!(100)).as_deref(), Some("100"));
        assert_eq!(guc_text(&json!(0.5)).as_deref(), Some("0.5"));
        assert_eq!(guc_text(&json!("64MB")).as_deref(), Some("64MB"));
        assert_eq!(
            guc_text(&json!(["pg_stat_statements", "auto_explain"])).as_deref(),
            Some("pg_stat_statements,auto_explain")
        );
        assert_eq!(guc_text(&json!(null)), None);
    }

    #[test]
    fn conninfo_quotes_only_what_needs_it() {
        assert_eq!(
            conninfo(&[
                ("host", "10.0.0.1"),
                ("user", "rep user"),
                ("passfile", r"/tmp/it's\x"),
                ("application_name", ""),
            ]),
            r"host=10.0.0.1 user='rep user' passfile='/tmp/it\'s\\x' application_name=''"
        );
    }

    #[test]
    fn pgpass_escapes_and_skips_missing_passwords() {
        assert_eq!(
            pgpass(&[
                ("repl", Some("p:w\\d")),
                ("nopw", None),
                ("postgres", Some("x"))
            ]),
            "*:*:*:repl:p\\:w\\\\d\n*:*:*:postgres:x\n"
        );
    }

    #[test]
    fn sql_quoting() {
        assert_eq!(sql_literal("a'b"), "'a''b'");
        assert_eq!(sql_ident("Rep\"l"), "\"Rep\"\"l\"");
    }

    #[test]
    fn hba_tokens() {
        assert_eq!(hba_token("replicator"), "replicator");
        assert_eq!(hba_token("Admin"), "\"Admin\"");
        assert_eq!(hba_token("all"), "\"all\"");
        assert_eq!(hba_token("a b"), "\"a b\"");
    }
}
