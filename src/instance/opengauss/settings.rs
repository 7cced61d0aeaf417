//! What the openGauss adapter is told at construction, the paths and ports derived from it, and
//! the checks openGauss adds to the configuration (its names, passwords, addresses and the
//! characters its tools refuse).
//!
//! The caller resolves the configuration (local and dynamic `parameters` merged, `bin_dir`
//! found); nothing here reads files or the environment. Every check names the configuration key
//! to fix.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ConfigError;
use crate::instance::conf::guc_text;
use crate::instance::datadir::parent_dir;
use crate::instance::postgres::gucs::lookup;
use crate::types::MemberName;

/// The replication (HA) port is the SQL port plus one: the convention of openGauss's own
/// tooling, and the kernel's pooler port (`port + 1`) is the same socket.
pub const HA_PORT_OFFSET: u16 = 1;
/// The heartbeat port is the SQL port plus five, as openGauss's installer lays ports out.
pub const HEARTBEAT_PORT_OFFSET: u16 = 5;

/// Characters `gs_ctl` refuses in any argument (it exits with "token invalid symbol").
const GS_CTL_UNSAFE: &[char] = &['|', ';', '&', '$', '<', '>', '`', '\\', '!'];

/// No `Debug`: it holds the initial user's and the replication administrator's passwords, which
/// must never reach a log line.
#[derive(Clone)]
pub struct OpenGaussSettings {
    /// `application_name` (so the name in `synchronous_standby_names`) and, as openGauss's
    /// standbys name it, the replication slot on the primary.
    pub name: MemberName,
    pub data_dir: PathBuf,
    /// Where `gs_ctl`, `gs_initdb`, `gaussdb` and `pg_controldata` live.
    pub bin_dir: PathBuf,
    /// Added to the environment of every tool (`GAUSSHOME`, `LD_LIBRARY_PATH`), as openGauss's
    /// own scripts set them; empty when the agent's environment already has them.
    pub tool_env: Vec<(String, String)>,
    /// `listen_addresses` (comma-separated) and `port`.
    pub listen_host: String,
    pub listen_port: u16,
    /// How other members reach this server: an IP address (replication channels and
    /// `disable_conn` take addresses only).
    pub connect_host: String,
    pub connect_port: u16,
    /// The initial user (`gs_initdb -U`) and its password. The agent logs in as this user over
    /// the Unix socket only: openGauss refuses it from other hosts.
    pub superuser: (String, String),
    /// A separate administrator for SQL from other members (the fence of a former primary):
    /// created at bootstrap with a password stored for md5, which tokio-postgres can do.
    pub replication: (String, Option<String>),
    /// User GUCs, local and dynamic merged by the caller.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// `pg_hba.conf` lines; empty means [`super::files::default_pg_hba`].
    pub pg_hba: Vec<String>,
    /// Extra `gs_initdb` arguments, already rendered (`--encoding=UTF8`, `--locale=C`).
    pub initdb_args: Vec<String>,
    /// Drop replication slots of members that left (standbys create their own).
    pub use_slots: bool,
    /// Rejoin a former primary with `gs_ctl build -b incremental` (Patroni's `use_pg_rewind`).
    pub use_incremental_build: bool,
    /// For `gs_ctl start/stop/notify -t` and the confirmations that follow them.
    pub gs_ctl_timeout: Duration,
}

impl OpenGaussSettings {
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// openGauss's `postgresql.conf.sample`, from which gs_initdb writes a new file: in the
    /// installation `bin_dir` belongs to (`$GAUSSHOME/share/postgresql`).
    pub fn conf_sample(&self) -> PathBuf {
        parent_dir(&self.bin_dir).join("share/postgresql/postgresql.conf.sample")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// The directory of the server's Unix socket: the user's `unix_socket_directory` (openGauss
    /// keeps PostgreSQL 9.2's singular name), else the data directory's parent.
    pub fn socket_dir(&self) -> PathBuf {
        self.user_socket_dir()
            .unwrap_or_else(|| parent_dir(&self.data_dir))
    }

    pub(super) fn user_socket_dir(&self) -> Option<PathBuf> {
        lookup(&self.parameters, "unix_socket_directory")
            .and_then(guc_text)
            .map(|d| d.trim().to_owned())
            .filter(|d| d.starts_with('/'))
            .map(PathBuf::from)
    }

    /// `gs_ctl -l`: the server's output, beside the data directory so that builds do not copy
    /// it between members.
    pub fn log_file(&self) -> PathBuf {
        let name = self
            .data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "opengauss".to_owned());
        parent_dir(&self.data_dir).join(format!("{name}.log"))
    }

    /// This server's replication port (`localport` of every channel).
    pub fn ha_port(&self) -> u16 {
        self.listen_port + HA_PORT_OFFSET
    }

    pub fn heartbeat_port(&self) -> u16 {
        self.listen_port + HEARTBEAT_PORT_OFFSET
    }

    /// `gs_initdb --nodename`: the member name in the characters it allows (lower-case letters,
    /// digits, `_`, starting with a letter or `_`, at most 64).
    pub fn node_name(&self) -> String {
        let mut out: String = self
            .name
            .as_str()
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '_' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .collect();
        if !out.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            out.insert(0, '_');
        }
        out.truncate(64);
        out
    }

    /// Checks what openGauss needs beyond the engine-neutral configuration; the error names the
    /// key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        valid_member_name(self.name.as_str())
            .map_err(|why| ConfigError::at("name", format!("{why}, for openGauss")))?;
        if self.connect_host.parse::<IpAddr>().is_err() {
            return Err(ConfigError::at(
                "postgresql.connect_address",
                format!(
                    "openGauss replication channels need an IP address, got {:?}",
                    self.connect_host
                ),
            ));
        }
        if self.listen_port > u16::MAX - HEARTBEAT_PORT_OFFSET {
            return Err(ConfigError::at(
                "postgresql.listen",
                format!(
                    "openGauss also listens on port + {HA_PORT_OFFSET} (replication) and port + \
                     {HEARTBEAT_PORT_OFFSET} (heartbeat): port {} leaves no room",
                    self.listen_port
                ),
            ));
        }
        check_password(&self.superuser.0, Some(&self.superuser.1))
            .map_err(|why| ConfigError::at("postgresql.authentication.superuser.password", why))?;
        if self.replication.1.is_some() {
            check_password(&self.replication.0, self.replication.1.as_deref()).map_err(|why| {
                ConfigError::at("postgresql.authentication.replication.password", why)
            })?;
        }
        for (key, path) in [
            ("postgresql.data_dir", self.data_dir.as_path()),
            ("postgresql.bin_dir", self.bin_dir.as_path()),
        ] {
            gs_ctl_safe(path).map_err(|why| ConfigError::at(key, why))?;
        }
        if let Some(dcf) = lookup(&self.parameters, "enable_dcf").and_then(guc_text)
            && matches!(
                dcf.trim().to_ascii_lowercase().as_str(),
                "on" | "true" | "1"
            )
        {
            return Err(ConfigError::at(
                "postgresql.parameters.enable_dcf",
                "a DCF cluster elects its own primary (Paxos); Tribune cannot manage one",
            ));
        }
        Ok(())
    }
}

/// openGauss's standbys create a replication slot named after their `application_name`, and
/// slot names allow lower-case letters, digits, `_`, `.`, `-` (and `?`), fewer than 64 bytes.
pub fn valid_member_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if name.is_empty() || name.len() > 63 || name == "." || name == ".." {
        return Err(format!(
            "{name:?} cannot name a replication slot: 1 to 63 characters"
        ));
    }
    if !name.chars().all(allowed) {
        return Err(format!(
            "{name:?} cannot name a replication slot: use lower-case letters, digits, '_', '.' \
             and '-'"
        ));
    }
    Ok(())
}

/// openGauss's password rules (gs_initdb's for the initial user, the server's default policy
/// for others): 8 to 32 ASCII characters of at least three kinds (upper case, lower case,
/// digits, punctuation), not the user name forwards or backwards.
pub fn check_password(user: &str, password: Option<&str>) -> Result<(), String> {
    let Some(pw) = password else {
        return Err("openGauss needs a password for this user".into());
    };
    if !pw.is_ascii() || pw.len() < 8 || pw.len() > 32 {
        return Err("openGauss passwords are 8 to 32 ASCII characters".into());
    }
    if pw
        .chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err("openGauss passwords have no spaces or control characters".into());
    }
    let kinds = [
        pw.chars().any(|c| c.is_ascii_uppercase()),
        pw.chars().any(|c| c.is_ascii_lowercase()),
        pw.chars().any(|c| c.is_ascii_digit()),
        pw.chars().any(|c| c.is_ascii_punctuation()),
    ];
    if kinds.iter().filter(|k| **k).count() < 3 {
        return Err(
            "openGauss passwords mix at least three of: upper case, lower case, digits, \
             punctuation"
                .into(),
        );
    }
    let reversed: String = user.chars().rev().collect();
    if pw.eq_ignore_ascii_case(user) || pw.eq_ignore_ascii_case(&reversed) {
        return Err("openGauss refuses a password equal to the user name".into());
    }
    Ok(())
}

/// `gs_ctl` exits on any argument holding one of `| ; & $ < > ` \ !`.
pub fn gs_ctl_safe(path: &Path) -> Result<(), String> {
    let text = path.to_string_lossy();
    match text.chars().find(|c| GS_CTL_UNSAFE.contains(c)) {
        Some(c) => Err(format!(
            "gs_ctl refuses paths containing {c:?}: {}",
            path.display()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) fn sample() -> OpenGaussSettings {
    use serde_json::json;
    OpenGaussSettings {
        name: MemberName::from("og-1"),
        data_dir: PathBuf::from("/var/lib/opengauss/data"),
        bin_dir: PathBuf::from("/usr/local/opengauss/bin"),
        tool_env: vec![("GAUSSHOME".into(), "/usr/local/opengauss".into())],
        listen_host: "0.0.0.0".into(),
        listen_port: 26000,
        connect_host: "10.0.0.1".into(),
        connect_port: 26000,
        superuser: ("omm".into(), "Gauss@123".into()),
        replication: ("tribune_admin".into(), Some("Admin#2024".into())),
        parameters: serde_json::from_value(json!({
            "max_connections": 200,
            "shared_buffers": "256MB",
            "application_name": "evil",
            "replconninfo3": "localhost=evil",
            "most_available_sync": "on",
        }))
        .unwrap(),
        pg_hba: Vec::new(),
        initdb_args: vec!["--encoding=UTF8".into(), "--locale=C".into()],
        use_slots: true,
        use_incremental_build: true,
        gs_ctl_timeout: Duration::from_secs(60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_paths_and_ports() {
        let mut s = sample();
        assert_eq!(
            s.program("gs_ctl"),
            Path::new("/usr/local/opengauss/bin/gs_ctl")
        );
        assert_eq!(s.socket_dir(), Path::new("/var/lib/opengauss"));
        assert_eq!(s.log_file(), Path::new("/var/lib/opengauss/data.log"));
        assert_eq!((s.ha_port(), s.heartbeat_port()), (26001, 26005));
        s.parameters
            .insert("unix_socket_directory".into(), json!("/run/og"));
        assert_eq!(s.socket_dir(), Path::new("/run/og"));
    }

    #[test]
    fn node_names_follow_gs_initdb_rules() {
        let mut s = sample();
        assert_eq!(s.node_name(), "og_1");
        s.name = MemberName::from("1.db");
        assert_eq!(s.node_name(), "_1_db");
    }

    #[test]
    fn the_sample_is_valid() {
        sample().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let key = |f: &dyn Fn(&mut OpenGaussSettings)| {
            let mut s = sample();
            f(&mut s);
            s.validate().unwrap_err().key.unwrap()
        };
        assert_eq!(key(&|s| s.name = MemberName::from("Node1")), "name");
        assert_eq!(
            key(&|s| s.connect_host = "db1.example".into()),
            "postgresql.connect_address"
        );
        assert_eq!(key(&|s| s.listen_port = 65533), "postgresql.listen");
        assert_eq!(
            key(&|s| s.superuser.1 = "short".into()),
            "postgresql.authentication.superuser.password"
        );
        assert_eq!(
            key(&|s| s.replication.1 = Some("alllowercase".into())),
            "postgresql.authentication.replication.password"
        );
        assert_eq!(
            key(&|s| s.data_dir = "/data/$HOME".into()),
            "postgresql.data_dir"
        );
        assert_eq!(
            key(&|s| {
                s.parameters.insert("enable_dcf".into(), json!(true));
            }),
            "postgresql.parameters.enable_dcf"
        );
    }

    #[test]
    fn password_rules() {
        assert!(check_password("omm", Some("Gauss@123")).is_ok());
        assert!(
            check_password("omm", Some("gauss123")).is_err(),
            "two kinds"
        );
        assert!(check_password("omm", Some("Ga@1")).is_err(), "too short");
        assert!(check_password("Admin#2024", Some("Admin#2024")).is_err());
        assert!(check_password("4202#nimdA", Some("Admin#2024")).is_err());
        assert!(check_password("omm", Some("Gauss 123")).is_err());
        assert!(check_password("omm", None).is_err());
    }

    #[test]
    fn member_names_must_name_slots() {
        assert!(valid_member_name("node-1.a_b").is_ok());
        for bad in ["", ".", "Node", "a b", "é", &"x".repeat(64)] {
            assert!(valid_member_name(bad).is_err(), "{bad:?}");
        }
    }
}
