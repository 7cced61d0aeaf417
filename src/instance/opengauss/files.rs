//! The configuration the adapter owns, rendered as text: its block of `postgresql.conf`,
//! `pg_hba.conf`, and the marker of a data directory configured as a standby.
//!
//! `postgresql.conf` stays one flat file: `gs_ctl build` refuses a file with `include`, and
//! openGauss's tools (`gs_ctl build` reading `replconninfoN` and `application_name`, `gs_ctl
//! start` reading `port`, `ALTER SYSTEM`) read the first uncommented line of a name, while the
//! server takes the last. So the agent keeps gs_initdb's file and any operator edits, puts its
//! settings in one delimited block at the end, and comments out every other line that sets a
//! name of the block: each name is set exactly once. `ALTER SYSTEM` (the fence of `fence.rs`)
//! edits that one line; the next write of the block undoes it.
//!
//! Pure functions; `mod.rs` writes the results atomically.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::instance::conf::{guc_line, guc_text, hba_file, hba_token};
use crate::instance::postgres::gucs::{lookup, parse_bool};

use super::replconninfo::{SLOTS, Slots, slot_name};
use super::settings::OpenGaussSettings;

pub const CONF: &str = "postgresql.conf";
pub const HBA: &str = "pg_hba.conf";
/// Present while the data directory is configured as a standby: openGauss has no
/// `standby.signal` (the role is `gs_ctl start -M`), and the agent must know after a crash
/// whether the server it finds was a primary (then it rejoins through a build, never by
/// starting as it is).
pub const STANDBY_MARKER: &str = "tribune.standby";
/// Written by `gs_ctl build` when it starts and removed when it succeeds; the server refuses
/// to start while it is there.
pub const BUILD_TAG: &str = "build_completed.start";

const BEGIN: &str = "# BEGIN tribune";
const END: &str = "# END tribune";
/// Prefixed to a line the block overrides.
const OVERRIDDEN: &str = "#(set in the tribune block) ";

/// Names the agent sets itself; a user's value for one is ignored. `data_directory` and the
/// file locations would move the cluster from under the agent; `replication_type` has one valid
/// value in a primary/standby cluster; `enable_dcf` is refused by `settings.rs`.
const FIXED: &[&str] = &[
    "listen_addresses",
    "port",
    "application_name",
    "synchronous_standby_names",
    "most_available_sync",
    "sync_config_strategy",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "replication_type",
    "enable_dcf",
];

/// Parameters the agent needs a value of, with its default; a user's valid value wins.
const DEFAULTED: &[(&str, &str)] = &[
    // HA needs at least `hot_standby` (openGauss has no `replica`).
    ("wal_level", "hot_standby"),
    ("hot_standby", "on"),
    ("max_wal_senders", "16"),
    // 1 stores passwords for md5 and sha256: the agent's own remote login (the fence) can only
    // do md5. 2, openGauss's default, makes that login impossible.
    ("password_encryption_type", "1"),
    // The default, `authentication`, needs certificates between the members.
    ("remote_read_mode", "off"),
];

/// A user's value for a [`DEFAULTED`] parameter, or `None` when openGauss or HA cannot use it.
fn checked(name: &str, text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    match name {
        "wal_level" => matches!(t.as_str(), "hot_standby" | "logical").then_some(t),
        "hot_standby" => (parse_bool(&t) == Some(true)).then(|| "on".to_owned()),
        "max_wal_senders" => t
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 2)
            .map(|n| n.to_string()),
        "password_encryption_type" => t
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 3)
            .map(|n| n.to_string()),
        "remote_read_mode" => {
            matches!(t.as_str(), "off" | "non_authentication" | "authentication").then_some(t)
        }
        _ => None,
    }
}

fn is_fixed(lower: &str) -> bool {
    FIXED.contains(&lower) || lower.starts_with("replconninfo")
}

/// `name = value`: whole numbers bare (`gs_ctl` reads `port` with `atoi`), anything else
/// quoted (`gs_ctl build` strips one character off each end of `application_name` and
/// `replconninfoN`).
fn conf_line(name: &str, value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        format!("{name} = {value}\n")
    } else {
        guc_line(name, value)
    }
}

/// The agent's settings, in the order written. `sync_names` is written on a standby too (as
/// empty): openGauss's default is `*`, which would make a primary started from this file wait
/// for any standby.
pub fn agent_settings(
    s: &OpenGaussSettings,
    slots: &Slots,
    sync_names: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        ("listen_addresses".into(), s.listen_host.clone()),
        ("port".into(), s.listen_port.to_string()),
        (
            "unix_socket_directory".into(),
            s.socket_dir().to_string_lossy().into_owned(),
        ),
        ("application_name".into(), s.name.as_str().to_owned()),
    ];
    for (name, default) in DEFAULTED {
        let value = match lookup(&s.parameters, name).and_then(guc_text) {
            None => (*default).to_owned(),
            Some(text) => checked(name, &text).unwrap_or_else(|| {
                tracing::warn!(
                    parameter = name,
                    value = %text,
                    default,
                    "ignoring a value openGauss replication cannot work with"
                );
                (*default).to_owned()
            }),
        };
        out.push(((*name).to_owned(), value));
    }
    out.push(("sync_config_strategy".into(), "none_node".into()));
    out.push(("most_available_sync".into(), "off".into()));
    out.push(("synchronous_standby_names".into(), sync_names.to_owned()));
    for (i, slot) in slots.iter().enumerate().take(SLOTS) {
        let value = slot.as_ref().map(|c| c.render()).unwrap_or_default();
        out.push((slot_name(i), value));
    }
    out
}

/// The block: the agent's settings, then the user's other parameters.
pub fn block(s: &OpenGaussSettings, slots: &Slots, sync_names: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{BEGIN}: written by the tribune agent for member {}; edits up to the END line are \
         overwritten.",
        s.name
    );
    for (name, value) in agent_settings(s, slots, sync_names) {
        out.push_str(&conf_line(&name, &value));
    }
    let owned: BTreeSet<&str> = DEFAULTED.iter().map(|(n, _)| *n).collect();
    for (name, value) in &s.parameters {
        let lower = name.to_ascii_lowercase();
        if lower == "unix_socket_directory" || owned.contains(lower.as_str()) {
            continue;
        }
        if is_fixed(&lower) {
            tracing::warn!(parameter = %name, "ignoring a parameter the agent sets itself");
            continue;
        }
        if let Some(text) = guc_text(value) {
            out.push_str(&conf_line(name, &text));
        }
    }
    let _ = writeln!(out, "{END}");
    out
}

/// The name an uncommented line sets (`name = value` or `name value`), or `include` /
/// `include_if_exists` for those directives.
fn setting_name(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(t.len());
    let (name, rest) = t.split_at(end);
    let rest = rest.trim_start();
    (!name.is_empty() && (rest.starts_with('=') || !rest.is_empty())).then_some(name)
}

/// `existing` with the block replaced: the old block removed, every other uncommented line
/// that sets a name of the block (or includes another file) commented out, the block at the
/// end.
pub fn merge(existing: &str, block: &str) -> String {
    let names: BTreeSet<String> = block
        .lines()
        .filter_map(setting_name)
        .map(str::to_ascii_lowercase)
        .collect();
    let mut out = String::new();
    let mut in_block = false;
    for line in existing.lines() {
        if line.starts_with(BEGIN) {
            in_block = true;
            continue;
        }
        if in_block {
            in_block = !line.starts_with(END);
            continue;
        }
        let overridden = setting_name(line).is_some_and(|name| {
            let lower = name.to_ascii_lowercase();
            names.contains(&lower) || lower == "include" || lower == "include_if_exists"
        });
        if overridden {
            out.push_str(OVERRIDDEN);
        }
        out.push_str(line);
        out.push('\n');
    }
    let trimmed = out.trim_end_matches('\n');
    let mut merged = String::with_capacity(trimmed.len() + block.len() + 2);
    merged.push_str(trimmed);
    if !trimmed.is_empty() {
        merged.push_str("\n\n");
    }
    merged.push_str(block);
    merged
}

/// The value a file sets for `name` (the first uncommented line, as openGauss's tools read
/// it), unquoted.
pub fn conf_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let set = setting_name(line)?;
        if !set.eq_ignore_ascii_case(name) {
            return None;
        }
        let rest = line.trim_start()[set.len()..].trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
        Some(match rest.strip_prefix('\'') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        '\'' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
                value
            }
            None => rest
                .split(|c: char| c.is_whitespace() || c == '#')
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
    })
}

/// The value the agent's block in `text` sets for `name`; `None` without a block (a file
/// gs_initdb just wrote) or without that name in it.
pub fn block_value(text: &str, name: &str) -> Option<String> {
    let start = text.find(BEGIN)?;
    let block = &text[start..];
    let end = block.find(END).unwrap_or(block.len());
    conf_value(&block[..end], name)
}

/// The `pg_hba.conf` used when the configuration gives none:
///
/// ```text
/// local  all          all                       trust
/// host   all          <replication>  0.0.0.0/0  md5
/// host   replication  <replication>  0.0.0.0/0  md5
/// host   all          all            0.0.0.0/0  sha256
/// host   all          all            ::/0       sha256
/// ```
///
/// The agent logs in over the Unix socket (trusted; the socket is in a directory only the
/// database's OS user enters). Its logins from other members (the fence) use the replication
/// administrator with md5, the one password method both tokio-postgres and openGauss have.
/// Standbys' WAL receivers and `gs_ctl build` need no line: openGauss admits a replication
/// connection from any host of its `replconninfo` channels. Clients use sha256.
pub fn default_pg_hba(s: &OpenGaussSettings) -> Vec<String> {
    let repl = hba_token(&s.replication.0);
    vec![
        "local all all trust".to_owned(),
        format!("host all {repl} 0.0.0.0/0 md5"),
        format!("host replication {repl} 0.0.0.0/0 md5"),
        "host all all 0.0.0.0/0 sha256".to_owned(),
        "host all all ::/0 sha256".to_owned(),
    ]
}

/// `pg_hba.conf`: the configured lines (else [`default_pg_hba`]), after one line per member
/// (`members`: the database addresses of the cluster's members, this one's included) that trusts
/// the initial user from that member's address, when the former primary rejoins with
/// `gs_ctl build -b incremental`.
///
/// That build's rewind logs in to the source as the OS user, which is the initial user, with no
/// password: it takes none on its command line, and openGauss's client library reads neither
/// `PGPASSWORD` nor a password file. openGauss's own cluster tools trust the cluster's hosts the
/// same way. The price: a process on a member's host that reaches another member's database
/// port over TCP logs in there as the initial user. `use_pg_rewind: false` drops these lines
/// (a former primary is then always copied afresh).
pub fn pg_hba(s: &OpenGaussSettings, members: &[String]) -> String {
    let mut lines = member_trust(s, members);
    lines.extend(if s.pg_hba.is_empty() {
        default_pg_hba(s)
    } else {
        s.pg_hba.clone()
    });
    hba_file(s.name.as_str(), &lines, Vec::new)
}

/// The lines of [`pg_hba`] that trust the initial user from each member's address.
fn member_trust(s: &OpenGaussSettings, members: &[String]) -> Vec<String> {
    if !s.use_incremental_build {
        return Vec::new();
    }
    let user = hba_token(&s.superuser.0);
    let hosts: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    hosts
        .into_iter()
        .filter_map(|host| {
            let prefix = match host.parse::<std::net::IpAddr>().ok()? {
                std::net::IpAddr::V4(_) => 32,
                std::net::IpAddr::V6(_) => 128,
            };
            Some(format!("host all {user} {host}/{prefix} trust"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Upstream;
    use crate::instance::opengauss::replconninfo::Channel;
    use crate::instance::opengauss::settings::sample;
    use crate::types::MemberName;

    /// The start of the `postgresql.conf` gs_initdb writes (from openGauss's
    /// `postgresql_single.conf.sample`: active lines among commented ones).
    const INITDB_CONF: &str = "\
# PostgreSQL configuration file
#listen_addresses = 'localhost'\t\t# what IP address(es) to listen on;
#port = 5432\t\t\t\t# (change requires restart)
max_connections = 200\t\t\t# (change requires restart)
wal_level = hot_standby\t\t\t# minimal, archive, hot_standby or logical
max_wal_senders = 4\t\t# max number of walsender processes
synchronous_standby_names = '*'\t# standby servers that provide sync rep
hot_standby = on\t\t\t# \"on\" allows queries during recovery
pgxc_node_name = 'og_1'
";

    fn slots() -> Slots {
        let s = sample();
        let mut slots: Slots = Default::default();
        slots[0] = Some(Channel::to_peer(
            &s,
            &Upstream {
                member: MemberName::from("og-2"),
                host: "10.0.0.2".into(),
                port: 26000,
            },
        ));
        slots
    }

    #[test]
    fn the_block_sets_every_agent_setting_once() {
        let text = block(&sample(), &slots(), "ANY 1 (\"og-2\")");
        let expected_start = "\
listen_addresses = '0.0.0.0'
port = 26000
unix_socket_directory = '/var/lib/opengauss'
application_name = 'og-1'
wal_level = 'hot_standby'
hot_standby = 'on'
max_wal_senders = 16
password_encryption_type = 1
remote_read_mode = 'off'
sync_config_strategy = 'none_node'
most_available_sync = 'off'
synchronous_standby_names = 'ANY 1 (\"og-2\")'
replconninfo1 = 'localhost=10.0.0.1 localport=26001 localheartbeatport=26005 remotehost=10.0.0.2 remoteport=26001 remoteheartbeatport=26005'
replconninfo2 = ''
";
        let body = text.split_once('\n').unwrap().1;
        assert!(body.starts_with(expected_start), "{text}");
        assert!(text.contains("replconninfo8 = ''\n"), "{text}");
        // The user's parameters follow; those the agent sets are dropped.
        assert!(text.contains("max_connections = 200\n"), "{text}");
        assert!(text.contains("shared_buffers = '256MB'\n"), "{text}");
        assert!(!text.contains("evil"), "{text}");
        assert_eq!(text.matches("most_available_sync").count(), 1, "{text}");
        assert!(text.ends_with("# END tribune\n"));
    }

    #[test]
    fn a_standby_block_names_no_synchronous_standby() {
        let text = block(&sample(), &Default::default(), "");
        assert!(
            text.contains("\nsynchronous_standby_names = ''\n"),
            "{text}"
        );
    }

    #[test]
    fn invalid_user_values_give_way_to_the_defaults() {
        let mut s = sample();
        for (k, v) in [
            ("wal_level", "minimal"),
            ("hot_standby", "off"),
            ("max_wal_senders", "1"),
            ("password_encryption_type", "9"),
            ("remote_read_mode", "sometimes"),
        ] {
            s.parameters.insert(k.into(), serde_json::json!(v));
        }
        let settings: std::collections::BTreeMap<String, String> =
            agent_settings(&s, &Default::default(), "")
                .into_iter()
                .collect();
        assert_eq!(settings["wal_level"], "hot_standby");
        assert_eq!(settings["hot_standby"], "on");
        assert_eq!(settings["max_wal_senders"], "16");
        assert_eq!(settings["password_encryption_type"], "1");
        assert_eq!(settings["remote_read_mode"], "off");
        s.parameters
            .insert("wal_level".into(), serde_json::json!("LOGICAL"));
        s.parameters
            .insert("password_encryption_type".into(), serde_json::json!(2));
        let settings: std::collections::BTreeMap<String, String> =
            agent_settings(&s, &Default::default(), "")
                .into_iter()
                .collect();
        assert_eq!(settings["wal_level"], "logical");
        assert_eq!(settings["password_encryption_type"], "2");
    }

    #[test]
    fn merging_comments_out_what_the_block_sets_and_keeps_the_rest() {
        let b = block(&sample(), &slots(), "");
        let merged = merge(INITDB_CONF, &b);
        assert!(merged.contains("\n#(set in the tribune block) max_connections = 200\t"));
        assert!(merged.contains("\n#(set in the tribune block) synchronous_standby_names = '*'"));
        assert!(merged.contains("\n#(set in the tribune block) wal_level = hot_standby"));
        assert!(
            merged.contains("\npgxc_node_name = 'og_1'\n"),
            "kept: {merged}"
        );
        assert!(
            merged.contains("\n#port = 5432"),
            "comments stay as they are"
        );
        assert!(merged.ends_with(&b));
        // The first uncommented line of each name is the block's, as gs_ctl reads it.
        assert_eq!(
            conf_value(&merged, "max_connections").as_deref(),
            Some("200")
        );
        assert_eq!(
            conf_value(&merged, "synchronous_standby_names").as_deref(),
            Some("")
        );
        assert_eq!(
            conf_value(&merged, "application_name").as_deref(),
            Some("og-1")
        );
        assert_eq!(conf_value(&merged, "port").as_deref(), Some("26000"));
        assert_eq!(
            block_value(&merged, "wal_level").as_deref(),
            Some("hot_standby")
        );
        assert_eq!(block_value(INITDB_CONF, "synchronous_standby_names"), None);
        // Merging again replaces the block and changes nothing else.
        assert_eq!(merge(&merged, &b), merged);
        let other = block(&sample(), &Default::default(), "*");
        let again = merge(&merged, &other);
        assert!(again.ends_with(&other));
        assert_eq!(again.matches("# BEGIN tribune").count(), 1);
    }

    #[test]
    fn merging_undoes_alter_system_and_include() {
        let b = block(&sample(), &slots(), "");
        let fenced = format!(
            "{}\nsynchronous_standby_names = '\"tribune fenced: no standby has this name\"'\ninclude 'extra.conf'\n",
            merge(INITDB_CONF, &b)
        );
        let merged = merge(&fenced, &b);
        assert_eq!(
            conf_value(&merged, "synchronous_standby_names").as_deref(),
            Some("")
        );
        assert!(merged.contains("#(set in the tribune block) include 'extra.conf'"));
        assert_eq!(conf_value(&merged, "include"), None);
    }

    #[test]
    fn values_are_read_back_as_written() {
        let text = "a = 'it''s'\nb 42 # comment\n#c = 1\nd='x\\\\y'\n";
        assert_eq!(conf_value(text, "a").as_deref(), Some("it's"));
        assert_eq!(conf_value(text, "B").as_deref(), Some("42"));
        assert_eq!(conf_value(text, "c"), None);
        assert_eq!(conf_value(text, "d").as_deref(), Some("x\\y"));
    }

    #[test]
    fn hba_default_and_given() {
        let mut s = sample();
        s.use_incremental_build = false;
        assert_eq!(
            pg_hba(&s, &["10.0.0.1".into(), "10.0.0.2".into()]),
            "# Written by the tribune agent for member og-1; edits are overwritten.\n\
             local all all trust\n\
             host all tribune_admin 0.0.0.0/0 md5\n\
             host replication tribune_admin 0.0.0.0/0 md5\n\
             host all all 0.0.0.0/0 sha256\n\
             host all all ::/0 sha256\n"
        );
        s.pg_hba = vec!["host all all 10.0.0.0/8 sha256".into()];
        assert!(pg_hba(&s, &[]).ends_with("\nhost all all 10.0.0.0/8 sha256\n"));
    }

    #[test]
    fn the_rewind_login_is_trusted_from_every_member_before_any_configured_line() {
        let mut s = sample();
        s.use_incremental_build = true;
        s.pg_hba = vec!["host all all 0.0.0.0/0 sha256".into()];
        let members = [
            "10.0.0.2".into(),
            "10.0.0.1".into(),
            "fd00::3".into(),
            "10.0.0.2".into(),
        ];
        assert_eq!(
            pg_hba(&s, &members),
            "# Written by the tribune agent for member og-1; edits are overwritten.\n\
             host all omm 10.0.0.1/32 trust\n\
             host all omm 10.0.0.2/32 trust\n\
             host all omm fd00::3/128 trust\n\
             host all all 0.0.0.0/0 sha256\n",
            "one line per address, sorted, first: pg_hba.conf takes the first line that matches"
        );
    }
}
