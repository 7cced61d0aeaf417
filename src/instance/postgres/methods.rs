//! The command lines of the operator's own methods, as Patroni runs them: a replica method of
//! `postgresql.create_replica_methods` (`--scope --role=replica --datadir --connstring` unless
//! `no_params`, then the section's other keys as `--key=value`), and a `bootstrap.method`
//! (`--scope --datadir` unless `no_params`, then the section's other keys). Also which keys of
//! `postgresql.auto.conf` a restore may leave behind that would override the agent's recovery
//! settings. Pure: the adapter (`super`) runs them.

use crate::config::{CustomBootstrap, CustomReplicaMethod};
use crate::instance::WalSource;
use crate::instance::process::CommandLine;

use super::files;
use super::settings::PostgresSettings;

/// The command of a custom replica method that copies `source` into the data directory.
/// `PGPASSFILE` names the password file, which holds the replication user's password.
pub fn replica_command(
    s: &PostgresSettings,
    method: &CustomReplicaMethod,
    source: &WalSource,
) -> CommandLine {
    let mut args: Vec<String> = method.command.argv[1..].to_vec();
    if !method.no_params {
        args.extend([
            format!("--scope={}", s.scope),
            "--role=replica".to_owned(),
            format!("--datadir={}", s.data_dir.display()),
            format!("--connstring={}", files::source_conninfo(s, source)),
        ]);
    }
    args.extend(method.options.iter().map(|(k, v)| format!("--{k}={v}")));
    CommandLine::new(&method.command.argv[0])
        .args(args)
        .env("PGPASSFILE", s.pgpass.to_string_lossy())
}

/// The command of a custom bootstrap method that restores a cluster into the data directory.
pub fn bootstrap_command(s: &PostgresSettings, method: &CustomBootstrap) -> CommandLine {
    let mut args: Vec<String> = method.command.argv[1..].to_vec();
    if !method.no_params {
        args.extend([
            format!("--scope={}", s.scope),
            format!("--datadir={}", s.data_dir.display()),
        ]);
    }
    args.extend(method.options.iter().map(|(k, v)| format!("--{k}={v}")));
    CommandLine::new(&method.command.argv[0])
        .args(args)
        .env("PGPASSFILE", s.pgpass.to_string_lossy())
}

/// Recovery settings a restore tool writes into `postgresql.auto.conf` (pgBackRest writes its
/// `restore_command` there; a restore of a standby copies its `primary_conninfo`). The file is
/// read after `postgresql.conf`, so such a line would override the agent's own recovery
/// settings for good.
const RECOVERY_SETTINGS: &[&str] = &[
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
    "recovery_min_apply_delay",
    "primary_conninfo",
    "primary_slot_name",
    "standby_mode",
];

/// `postgresql.auto.conf` without the recovery settings a restore left there, and whether
/// anything was removed.
pub fn without_recovery_settings(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    for line in text.lines() {
        let name = line
            .trim_start()
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if RECOVERY_SETTINGS.contains(&name.as_str()) {
            removed = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScriptCommand;
    use crate::instance::Upstream;

    fn command(text: &str) -> ScriptCommand {
        ScriptCommand {
            text: text.into(),
            argv: shlex::split(text).unwrap(),
        }
    }

    fn member() -> WalSource {
        WalSource::Member(Upstream {
            member: "node-2".into(),
            host: "10.0.0.2".into(),
            port: 5433,
        })
    }

    #[test]
    fn replica_method_arguments() {
        let s = super::super::settings::sample();
        let method = |no_params: bool, options: &[(&str, &str)]| CustomReplicaMethod {
            name: "pgbackrest".into(),
            command: command("/usr/bin/pgbackrest --stanza=main --delta restore"),
            keep_data: true,
            no_leader: true,
            no_params,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let base = ["--stanza=main", "--delta", "restore"];
        let params = [
            "--scope=batman".to_owned(),
            "--role=replica".to_owned(),
            format!("--datadir={}", s.data_dir.display()),
            format!("--connstring={}", files::source_conninfo(&s, &member())),
        ];
        /// (no_params, the section's other keys, the arguments after the command's own)
        type Row = (bool, &'static [(&'static str, &'static str)], Vec<String>);
        let rows: [Row; 3] = [
            (false, &[], params.to_vec()),
            (true, &[], vec![]),
            (
                true,
                &[("type", "standby"), ("pg1-path", "/d")],
                vec!["--type=standby".into(), "--pg1-path=/d".into()],
            ),
        ];
        for (no_params, options, tail) in rows {
            let cmd = replica_command(&s, &method(no_params, options), &member());
            assert_eq!(cmd.program.to_str(), Some("/usr/bin/pgbackrest"));
            let mut want: Vec<String> = base.iter().map(|a| a.to_string()).collect();
            want.extend(tail);
            assert_eq!(cmd.args, want, "no_params {no_params}");
            assert!(
                cmd.env
                    .contains(&("PGPASSFILE".into(), s.pgpass.display().to_string()))
            );
        }
        assert!(params[3].contains("host=10.0.0.2 port=5433"), "{params:?}");
    }

    #[test]
    fn bootstrap_method_arguments() {
        let s = super::super::settings::sample();
        let mut method = CustomBootstrap {
            name: "restore".into(),
            command: command("restore.sh 'two words'"),
            no_params: false,
            keep_existing_recovery_conf: false,
            recovery_conf: Default::default(),
            options: vec![("set".into(), "20261207".into())],
        };
        let cmd = bootstrap_command(&s, &method);
        assert_eq!(cmd.program.to_str(), Some("restore.sh"));
        assert_eq!(
            cmd.args,
            [
                "two words".to_owned(),
                "--scope=batman".to_owned(),
                format!("--datadir={}", s.data_dir.display()),
                "--set=20261207".to_owned()
            ]
        );
        method.no_params = true;
        assert_eq!(
            bootstrap_command(&s, &method).args,
            ["two words", "--set=20261207"]
        );
    }

    #[test]
    fn a_restores_recovery_settings_leave_auto_conf() {
        let text = "# Do not edit this file manually!\n\
                    work_mem = '8MB'\n\
                    restore_command = 'pgbackrest --stanza=main archive-get %f \"%p\"'\n\
                    Primary_Conninfo='host=old'\n\
                    recovery_target_time = '2026-12-07'\n";
        let (cleaned, removed) = without_recovery_settings(text);
        assert!(removed);
        assert_eq!(
            cleaned,
            "# Do not edit this file manually!\nwork_mem = '8MB'\n"
        );
        assert_eq!(
            without_recovery_settings(&cleaned),
            (cleaned.clone(), false)
        );
    }
}
