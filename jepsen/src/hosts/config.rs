//! Each agent's `tribune.yml`: the settings a production cluster would have (Tribune's default
//! timing, rewind and slots on, the replication mode under test), with addresses on the suite's
//! network and data on the host's volume. Pure text rendering; the caller writes the file.

use std::path::Path;

use crate::options::{Engine, Mode};

pub const SCOPE: &str = "chaos";
pub const API_PORT: u16 = 8008;
pub const PG_PORT: u16 = 5432;

pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "chaos-super";
/// openGauss's initial user logs in only over the Unix socket; clients come in as the
/// replication user, which the agent creates as a SYSADMIN with an md5 password (a login
/// tokio-postgres can do).
pub const OPENGAUSS_SUPERUSER: &str = "omm";
pub const OPENGAUSS_SUPERUSER_PASSWORD: &str = "Tribune@2024";
pub const OPENGAUSS_ADMIN: &str = "tribune_admin";
pub const OPENGAUSS_ADMIN_PASSWORD: &str = "Admin#2024x";

/// What differs between two agents' files.
#[derive(Clone, Debug)]
pub struct AgentFile<'a> {
    pub name: &'a str,
    pub ip: &'a str,
    pub raft_port: u16,
    pub partners: &'a [String],
    /// `None` for a witness (no `postgresql` section).
    pub database: Option<Engine>,
    pub dir: &'a Path,
    pub data_dir: &'a Path,
    /// `tags.site`, in a multi-site shape.
    pub site: Option<&'a str>,
}

/// What every agent of the cluster shares.
#[derive(Clone, Debug)]
pub struct ClusterFile<'a> {
    pub mode: Mode,
    pub ttl: f64,
    /// Standbys in the synchronous set (`synchronous_node_count`).
    pub sync_count: usize,
    /// `synchronous_site_survival`: every acknowledged commit also outside the primary's site.
    pub site_survival: bool,
    pub subnet: &'a str,
    pub opengauss_bin: &'a Path,
    /// PostgreSQL's programs; `None`: the agent's default (the newest /usr/lib/postgresql).
    pub pg_bin: Option<&'a Path>,
}

/// `synchronous_mode`, `synchronous_mode_strict` for a mode.
fn sync_settings(mode: Mode) -> (&'static str, bool) {
    match mode {
        Mode::Synchronous => ("true", false),
        Mode::Quorum => ("quorum", false),
        Mode::Strict => ("true", true),
        Mode::Async => ("false", false),
    }
}

pub fn render(agent: &AgentFile, cluster: &ClusterFile) -> String {
    let (sync, strict) = sync_settings(cluster.mode);
    let partners: Vec<String> = agent.partners.iter().map(|a| format!("'{a}'")).collect();
    let database = match agent.database {
        None => String::new(),
        Some(Engine::Postgres) => postgres_section(agent, cluster),
        Some(Engine::Opengauss) => opengauss_section(agent, cluster),
    };
    let dcs_parameters = match agent.database {
        Some(Engine::Opengauss) => "      parameters:\n        wal_keep_segments: 16\n",
        // Bounded WAL: the volume is small, and a slot of a member that stays down must not
        // fill it (max_slot_wal_keep_size) before the wal-full nemesis does.
        _ => {
            "      parameters:\n        wal_keep_size: 16MB\n        max_wal_size: 64MB\n        min_wal_size: 8MB\n        max_slot_wal_keep_size: 128MB\n"
        }
    };
    format!(
        r#"scope: {SCOPE}
name: {name}
restapi:
  listen: {ip}:{API_PORT}
  connect_address: {ip}:{API_PORT}
raft:
  self_addr: {ip}:{raft}
  partner_addrs: [{partners}]
  data_dir: {dir}/raft
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: 1
    retry_timeout: 0.5
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    synchronous_mode_strict: {strict}
    synchronous_node_count: {sync_count}
{site_survival}    postgresql:
      use_pg_rewind: true
      use_slots: true
{dcs_parameters}{database}{tags}watchdog:
  mode: off
log:
  level: INFO
"#,
        name = agent.name,
        ip = agent.ip,
        raft = agent.raft_port,
        partners = partners.join(", "),
        dir = agent.dir.display(),
        ttl = cluster.ttl,
        sync_count = cluster.sync_count,
        site_survival = if cluster.site_survival {
            "    synchronous_site_survival: true\n"
        } else {
            ""
        },
        tags = agent
            .site
            .map(|site| format!("tags:\n  site: {site}\n"))
            .unwrap_or_default(),
    )
}

/// 1 MB WAL segments: every promotion starts a new timeline whose first segment is a new file,
/// and PostgreSQL keeps the segments of every timeline until the WAL position has moved past
/// them (it ignores the timeline when it recycles). A run makes hundreds of timelines with
/// little WAL between them: with 16 MB segments a host's volume filled with copies of the same
/// few positions (found by the suite's first 500-fault runs).
fn postgres_section(agent: &AgentFile, cluster: &ClusterFile) -> String {
    format!(
        r#"  initdb:
    - encoding: UTF8
    - data-checksums
    - wal-segsize: 1
postgresql:
  listen: {ip}:{PG_PORT}
  connect_address: {ip}:{PG_PORT}
  data_dir: {data}
{bin_dir}  pgpass: {dir}/pgpass
  pg_ctl_timeout: 30
  # Every member must heal without an operator after the faults (the convergence checker):
  # a member whose pg_rewind failed is cloned afresh, as production clusters run unattended.
  remove_data_directory_on_rewind_failure: true
  authentication:
    superuser:
      username: {SUPERUSER}
      password: {SUPERUSER_PASSWORD}
    replication:
      username: replicator
      password: chaos-rep
    rewind:
      username: rewinder
      password: chaos-rewind
  pg_hba:
    - local all all trust
    - host all all {subnet} scram-sha-256
    - host replication replicator {subnet} scram-sha-256
  parameters:
    max_connections: 60
    shared_buffers: 16MB
"#,
        ip = agent.ip,
        data = agent.data_dir.display(),
        dir = agent.dir.display(),
        subnet = cluster.subnet,
        bin_dir = cluster
            .pg_bin
            .map(|b| format!("  bin_dir: {}\n", b.display()))
            .unwrap_or_default(),
    )
}

fn opengauss_section(agent: &AgentFile, cluster: &ClusterFile) -> String {
    format!(
        r#"  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  engine: opengauss
  listen: {ip}:{PG_PORT}
  connect_address: {ip}:{PG_PORT}
  data_dir: {data}
  bin_dir: {bin}
  pg_ctl_timeout: 60
  # gs_ctl build -b incremental (openGauss's pg_rewind) of a crashed former primary often
  # fails; a full build heals it without an operator (the convergence checker).
  remove_data_directory_on_rewind_failure: true
  authentication:
    superuser:
      username: {OPENGAUSS_SUPERUSER}
      password: "{OPENGAUSS_SUPERUSER_PASSWORD}"
    replication:
      username: {OPENGAUSS_ADMIN}
      password: "{OPENGAUSS_ADMIN_PASSWORD}"
  parameters:
    max_connections: 60
    shared_buffers: 64MB
    max_process_memory: 2GB
    cstore_buffers: 16MB
    work_mem: 4MB
    maintenance_work_mem: 16MB
"#,
        ip = agent.ip,
        data = agent.data_dir.display(),
        bin = cluster.opengauss_bin.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(mode: Mode) -> ClusterFile<'static> {
        ClusterFile {
            mode,
            ttl: 3.0,
            sync_count: 1,
            site_survival: false,
            subnet: "10.212.0.0/24",
            opengauss_bin: Path::new("/opt/tribune/opengauss/6.0.2/bin"),
            pg_bin: None,
        }
    }

    fn agent(database: Option<Engine>) -> AgentFile<'static> {
        AgentFile {
            name: "n1",
            ip: "10.212.0.11",
            raft_port: 2222,
            partners: &[],
            database,
            dir: Path::new("/runs/x/nodes/n1"),
            data_dir: Path::new("/runs/x/nodes/n1/vol/data"),
            site: None,
        }
    }

    #[test]
    fn every_file_is_a_valid_tribune_configuration() {
        for mode in [Mode::Synchronous, Mode::Quorum, Mode::Strict, Mode::Async] {
            for database in [Some(Engine::Postgres), Some(Engine::Opengauss), None] {
                let text = render(&agent(database), &cluster(mode));
                tribune::config::Config::from_yaml_str(&text, &|_| None)
                    .unwrap_or_else(|e| panic!("{mode:?} {database:?}: {e}\n{text}"));
            }
        }
    }

    #[test]
    fn a_postgresql_bin_dir_is_written_only_when_chosen() {
        let default = render(&agent(Some(Engine::Postgres)), &cluster(Mode::Synchronous));
        assert!(!default.contains("bin_dir"), "{default}");
        let chosen = ClusterFile {
            pg_bin: Some(Path::new("/opt/tribune/postgresql-18/bin")),
            ..cluster(Mode::Synchronous)
        };
        let text = render(&agent(Some(Engine::Postgres)), &chosen);
        let config = tribune::config::Config::from_yaml_str(&text, &|_| None).unwrap();
        assert_eq!(
            config.postgresql.unwrap().bin_dir.as_deref(),
            Some(Path::new("/opt/tribune/postgresql-18/bin"))
        );
    }

    #[test]
    fn a_site_and_the_site_policy_are_written_only_in_a_multi_site_shape() {
        let plain = render(&agent(Some(Engine::Postgres)), &cluster(Mode::Synchronous));
        assert!(!plain.contains("site"), "{plain}");
        for database in [Some(Engine::Postgres), None] {
            let text = render(
                &AgentFile {
                    site: Some("b"),
                    ..agent(database)
                },
                &ClusterFile {
                    site_survival: true,
                    ..cluster(Mode::Strict)
                },
            );
            let config = tribune::config::Config::from_yaml_str(&text, &|_| None)
                .unwrap_or_else(|e| panic!("{database:?}: {e}\n{text}"));
            assert_eq!(config.tags.site(), Some("b"), "{text}");
            assert_eq!(
                config.bootstrap.dcs["synchronous_site_survival"],
                serde_json::json!(true),
                "{text}"
            );
        }
    }

    #[test]
    fn strict_mode_is_synchronous_and_strict() {
        let text = render(&agent(Some(Engine::Postgres)), &cluster(Mode::Strict));
        assert!(text.contains("synchronous_mode: true\n"));
        assert!(text.contains("synchronous_mode_strict: true\n"));
        let text = render(&agent(None), &cluster(Mode::Quorum));
        assert!(text.contains("synchronous_mode: quorum\n"));
        assert!(
            !text.contains("postgresql:\n  listen"),
            "a witness has no database"
        );
    }
}
