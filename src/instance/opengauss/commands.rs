//! The command lines of openGauss's tools, built from the settings as data so that tests can
//! assert them exactly. No password appears here: `gs_initdb` reads the initial user's from a
//! file, and nothing else takes one (standbys and `gs_ctl build` replicate without a password;
//! the agent's SQL goes over the Unix socket).
//!
//! What differs from PostgreSQL's tools: `gs_ctl start -M primary|standby` decides the role
//! (there is no `standby.signal`); `gs_ctl failover -T <term>` promotes (there is no
//! `promote`); `gs_ctl notify -M primary -T <term>` turns a single instance (`Normal`) into a
//! primary; `gs_ctl build` copies from the primary in place of `pg_basebackup`/`pg_rewind`;
//! `stop` knows `fast` and `immediate` only. Every argument must be free of the characters
//! `gs_ctl` refuses (checked on the paths in `settings.rs`).

use std::path::Path;
use std::time::Duration;

use crate::instance::StopMode;
use crate::instance::process::CommandLine;

use super::settings::OpenGaussSettings;
use super::term::Term;

/// `gs_ctl build -r`: how long the build waits for the source's answers. It copies data: the
/// default 120 s is too short under load; openGauss's cluster manager uses two hours.
pub const BUILD_RECEIVE_TIMEOUT: Duration = Duration::from_secs(7200);

/// The role `gs_ctl start -M` gives the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMode {
    Primary,
    Standby,
}

impl ServerMode {
    fn as_arg(self) -> &'static str {
        match self {
            ServerMode::Primary => "primary",
            ServerMode::Standby => "standby",
        }
    }
}

/// How `gs_ctl build` copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildMode {
    /// Only what differs from the source (openGauss's `pg_rewind`): rejoins a former primary.
    Incremental,
    /// Everything; the data directory is emptied first (except `postgresql.conf`).
    Full,
}

impl BuildMode {
    fn as_arg(self) -> &'static str {
        match self {
            BuildMode::Incremental => "incremental",
            BuildMode::Full => "full",
        }
    }
}

/// `gs_ctl stop -m`: `smart` is refused by openGauss, so it stops fast.
fn stop_mode(mode: StopMode) -> &'static str {
    match mode {
        StopMode::Smart | StopMode::Fast => "fast",
        StopMode::Immediate => "immediate",
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `-t` takes whole seconds.
fn seconds(d: Duration) -> String {
    d.as_secs_f64().ceil().max(1.0).to_string()
}

fn tool(s: &OpenGaussSettings, name: &str) -> CommandLine {
    s.tool_env
        .iter()
        .fold(CommandLine::new(s.program(name)), |cmd, (k, v)| {
            cmd.env(k, v)
        })
}

fn gs_ctl(s: &OpenGaussSettings, verb: &str) -> CommandLine {
    tool(s, "gs_ctl").arg(verb).arg("-D").arg(path(&s.data_dir))
}

/// `gs_initdb` of a new data directory: the node name, the initial user with its password from
/// `pwfile`, local logins trusted (the agent's), the user's extra arguments. `--nosync`: it
/// would fsync each of the directory's files in turn (a quarter of its run, 2.7 s of 11.6 here);
/// the caller flushes the whole file system once instead (`syncfs`) before using it.
pub fn gs_initdb(s: &OpenGaussSettings, pwfile: &Path) -> CommandLine {
    tool(s, "gs_initdb")
        .arg("--nosync")
        .arg("-D")
        .arg(path(&s.data_dir))
        .arg(format!("--nodename={}", s.node_name()))
        .arg("-U")
        .arg(&s.superuser.0)
        .arg(format!("--pwfile={}", path(pwfile)))
        .arg("--auth-local=trust")
        .arg("--auth-host=sha256")
        .args(s.initdb_args.iter().cloned())
}

/// `gs_ctl start -M <mode>`, waiting. `-l` sends the server's output to the log file: without
/// it the server would hold our captured stderr open. Everything else the server needs is in
/// `postgresql.conf` (gs_ctl passes `-o` through a shell command of limited length).
pub fn start(s: &OpenGaussSettings, mode: ServerMode) -> CommandLine {
    gs_ctl(s, "start")
        .arg("-M")
        .arg(mode.as_arg())
        .arg("-w")
        .arg("-t")
        .arg(seconds(s.gs_ctl_timeout))
        .arg("-l")
        .arg(path(&s.log_file()))
}

/// `gs_ctl stop -W`: it signals the server and returns; the adapter waits for the exit itself
/// (gs_ctl's `-w` looks once a second).
pub fn stop(s: &OpenGaussSettings, mode: StopMode) -> CommandLine {
    gs_ctl(s, "stop").arg("-m").arg(stop_mode(mode)).arg("-W")
}

/// `gs_ctl failover -T <term>` without waiting (`-W`): it writes the term file, creates the
/// `failover` signal file and signals the postmaster once. gs_ctl's own wait repeats that and
/// checks once a second; the adapter repeats it and confirms by SQL sooner.
pub fn failover(s: &OpenGaussSettings, term: Term) -> CommandLine {
    gs_ctl(s, "failover")
        .arg("-T")
        .arg(term.to_string())
        .arg("-W")
}

/// `gs_ctl notify -M primary -T <term>`, waiting: a single instance (`Normal`, started as
/// primary before it had a replication channel) becomes a primary with that term.
pub fn notify_primary(s: &OpenGaussSettings, term: Term) -> CommandLine {
    gs_ctl(s, "notify")
        .arg("-M")
        .arg("primary")
        .arg("-T")
        .arg(term.to_string())
        .arg("-w")
        .arg("-t")
        .arg(seconds(s.gs_ctl_timeout))
}

/// `gs_ctl build -b <mode> -q`: copy from the primary among the `replconninfo` channels (the
/// adapter lists only the source while it builds) and leave the server stopped (`-q`).
pub fn build(s: &OpenGaussSettings, mode: BuildMode) -> CommandLine {
    gs_ctl(s, "build")
        .arg("-b")
        .arg(mode.as_arg())
        .arg("-r")
        .arg(seconds(BUILD_RECEIVE_TIMEOUT))
        .arg("-q")
}

/// `gs_ctl query`: the HA state, read from the binary state file when SQL does not answer.
pub fn query(s: &OpenGaussSettings) -> CommandLine {
    gs_ctl(s, "query")
}

/// `gs_ctl reload`: SIGHUP, for a server that does not answer SQL.
pub fn reload(s: &OpenGaussSettings) -> CommandLine {
    gs_ctl(s, "reload")
}

/// `pg_controldata` in the C locale, whose labels the parser knows (openGauss kept
/// PostgreSQL 9.2's).
pub fn pg_controldata(s: &OpenGaussSettings) -> CommandLine {
    tool(s, "pg_controldata")
        .arg(path(&s.data_dir))
        .env("LC_ALL", "C")
}

/// The statement that pins a standby's WAL receiver to the channel of `host` and `ha_port`
/// (openGauss's `disable_conn` in `specify_connection` mode): it streams from there only.
pub fn pin_sql(host: &str, ha_port: u16) -> String {
    format!(
        "SELECT pg_catalog.disable_conn('specify_connection', {}, {ha_port})",
        crate::instance::conf::sql_literal(host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::opengauss::settings::sample;
    use crate::types::Generation;

    const GS_CTL: &str = "GAUSSHOME=/usr/local/opengauss /usr/local/opengauss/bin/gs_ctl";

    fn term(n: u64) -> Term {
        Term::try_from(Generation(n)).unwrap()
    }

    #[test]
    fn gs_initdb_line() {
        let s = sample();
        assert_eq!(
            gs_initdb(&s, Path::new("/var/lib/opengauss/.pw")).to_string(),
            "GAUSSHOME=/usr/local/opengauss /usr/local/opengauss/bin/gs_initdb --nosync \
             -D /var/lib/opengauss/data --nodename=og_1 -U omm \
             --pwfile=/var/lib/opengauss/.pw --auth-local=trust --auth-host=sha256 \
             --encoding=UTF8 --locale=C"
        );
    }

    #[test]
    fn start_and_stop_lines() {
        let mut s = sample();
        assert_eq!(
            start(&s, ServerMode::Standby).to_string(),
            format!(
                "{GS_CTL} start -D /var/lib/opengauss/data -M standby -w -t 60 \
                 -l /var/lib/opengauss/data.log"
            )
        );
        assert_eq!(start(&s, ServerMode::Primary).args[3..5], ["-M", "primary"]);
        s.gs_ctl_timeout = Duration::from_millis(1500);
        assert_eq!(
            stop(&s, StopMode::Immediate).to_string(),
            format!("{GS_CTL} stop -D /var/lib/opengauss/data -m immediate -W")
        );
        assert_eq!(stop(&s, StopMode::Fast).args[4], "fast");
        assert_eq!(
            stop(&s, StopMode::Smart).args[4],
            "fast",
            "openGauss has no smart"
        );
    }

    #[test]
    fn role_change_lines_carry_the_term() {
        let s = sample();
        assert_eq!(
            failover(&s, term(7)).to_string(),
            format!("{GS_CTL} failover -D /var/lib/opengauss/data -T 7 -W")
        );
        assert_eq!(
            notify_primary(&s, term(3)).to_string(),
            format!("{GS_CTL} notify -D /var/lib/opengauss/data -M primary -T 3 -w -t 60")
        );
    }

    #[test]
    fn build_lines() {
        let s = sample();
        assert_eq!(
            build(&s, BuildMode::Incremental).to_string(),
            format!("{GS_CTL} build -D /var/lib/opengauss/data -b incremental -r 7200 -q")
        );
        assert_eq!(build(&s, BuildMode::Full).args[4], "full");
    }

    #[test]
    fn query_reload_and_controldata_lines() {
        let s = sample();
        assert_eq!(
            query(&s).to_string(),
            format!("{GS_CTL} query -D /var/lib/opengauss/data")
        );
        assert_eq!(
            reload(&s).to_string(),
            format!("{GS_CTL} reload -D /var/lib/opengauss/data")
        );
        assert_eq!(
            pg_controldata(&s).to_string(),
            "GAUSSHOME=/usr/local/opengauss LC_ALL=C /usr/local/opengauss/bin/pg_controldata \
             /var/lib/opengauss/data"
        );
    }

    #[test]
    fn the_pin_names_the_channel_by_address_and_replication_port() {
        assert_eq!(
            pin_sql("10.0.0.2", 26001),
            "SELECT pg_catalog.disable_conn('specify_connection', '10.0.0.2', 26001)"
        );
    }
}
