//! Real-process test harness: a cluster of `tribune` agents, each managing its own PostgreSQL
//! (or openGauss, [`Database`]), run as the database's OS user (both refuse root) in a
//! temporary directory that user owns. Every wait has an explicit deadline. Dropping a cluster
//! ends every process it started, by PID.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use serde_json::Value;

pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "super-secret";

/// The database the agents manage.
#[derive(Clone, Debug, Default)]
pub enum Database {
    /// PostgreSQL, run as `postgres`: the programs in `TRIBUNE_PG_BIN` when it is set
    /// ([`postgres_bin_dir`]: `scripts/test.sh` runs the core cases again on PostgreSQL 18 that
    /// way), else the distribution's newest, as the agent finds it.
    #[default]
    Postgres,
    /// openGauss's programs in `bin_dir`, run as the OS user `user` (openGauss's own scripts
    /// use `omm`). The agent logs in as the initial user over the Unix socket, and so do the
    /// tests: tokio-postgres cannot do openGauss's sha256 password login.
    OpenGauss { bin_dir: PathBuf, user: String },
}

impl Database {
    /// How the tests log in at `host:port` (a member, or a proxy in front of one), over TCP as
    /// clients do. On openGauss that is the replication administrator the agent creates: its
    /// password is stored for md5, the one password method both openGauss and tokio-postgres
    /// know (openGauss's own sha256 login is beyond tokio-postgres, and the initial user is
    /// trusted only over the Unix socket and only from its own OS user).
    pub fn conninfo(&self, host: &str, port: u16) -> String {
        let (user, password) = match self {
            Database::Postgres => (SUPERUSER, SUPERUSER_PASSWORD),
            Database::OpenGauss { .. } => (OPENGAUSS_ADMIN, OPENGAUSS_ADMIN_PASSWORD),
        };
        format!(
            "host={host} port={port} user={user} password={password} dbname=postgres connect_timeout=2"
        )
    }

    fn os_user(&self) -> &str {
        match self {
            Database::Postgres => "postgres",
            Database::OpenGauss { user, .. } => user,
        }
    }
}

/// The PostgreSQL programs the tests run (`postgresql.bin_dir`): `TRIBUNE_PG_BIN` when it is set
/// (a missing program fails the test, naming it), else `None`: the agent's default, the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TRIBUNE_PG_BIN").filter(|v| !v.is_empty())?);
    let missing: Vec<&str> = [
        "postgres",
        "pg_ctl",
        "initdb",
        "pg_controldata",
        "pg_basebackup",
        "pg_rewind",
        "psql",
    ]
    .into_iter()
    .filter(|p| !dir.join(p).is_file())
    .collect();
    assert!(
        missing.is_empty(),
        "TRIBUNE_PG_BIN={} lacks {}",
        dir.display(),
        missing.join(", ")
    );
    Some(dir)
}

/// The OS user agents run as: the database's when the tests run as root, else the current
/// user.
fn run_as(database: &Database) -> Option<User> {
    if nix::unistd::geteuid().is_root() {
        let name = database.os_user();
        Some(
            User::from_name(name)
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("the {name} OS user must exist")),
        )
    } else {
        None
    }
}

/// Ports for servers: below Linux's ephemeral range (32768+), so no outgoing connection of
/// this machine can take one between our check and the server's bind, and held open until the
/// caller has all it needs, so no two are the same.
pub struct PortPool {
    next: u16,
    held: Vec<std::net::TcpListener>,
}

/// Each node has a loopback address of its own (127.0.0.11, .12, ... from `first`), so that a
/// partition can cut one node off with nftables rules on its address, and two clusters of one
/// test (`Options::first_ip`) share no address. `TRIBUNE_TEST_NET=N` moves every address to
/// 127.N.0.x, so that test runs of two checkouts on one machine never cut each other's members
/// off (all of 127.0.0.0/8 is loopback).
fn node_ip(first: u8, i: usize) -> String {
    format!("127.{}.0.{}", test_net(), usize::from(first) + i)
}

/// openGauss members' addresses: 198.18.N.x (RFC 2544's benchmarking range; N is
/// `TRIBUNE_TEST_NET`), added to the loopback interface for the cluster's life
/// ([`LocalAddresses`]). openGauss demands a password from every login that comes from
/// 127.0.0.1, the one its own `gs_ctl build -b incremental` makes included, and a connection
/// from this host to any 127.x address comes from 127.0.0.1; to one of these it comes from the
/// address itself, as between the hosts of a real cluster. Nothing leaves the machine.
fn opengauss_ip(first: u8, i: usize) -> String {
    format!("198.18.{}.{}", test_net(), usize::from(first) + i)
}

/// Addresses added to the loopback interface, removed on drop. Connections between them stay
/// on this machine, each coming from the address it was made to.
pub struct LocalAddresses {
    added: std::cell::RefCell<Vec<String>>,
}

impl LocalAddresses {
    /// Adds each of `addresses` (a leftover of an earlier run is replaced). Needs root.
    pub fn add_all(addresses: &[String]) -> LocalAddresses {
        assert!(
            nix::unistd::geteuid().is_root(),
            "openGauss members need addresses other than 127.0.0.1, which only root can add to \
             the loopback interface (CI runs as root)"
        );
        let local = LocalAddresses {
            added: Default::default(),
        };
        for address in addresses {
            local.add(address);
        }
        local
    }

    pub fn add(&self, address: &str) {
        let cidr = format!("{address}/32");
        let _ = ip(&["addr", "del", &cidr, "dev", "lo"]);
        assert!(
            ip(&["addr", "add", &cidr, "dev", "lo"]),
            "ip addr add {cidr} dev lo"
        );
        self.added.borrow_mut().push(cidr);
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run ip (iproute2)")
        .success()
}

impl Drop for LocalAddresses {
    fn drop(&mut self) {
        for cidr in self.added.borrow().iter() {
            let _ = ip(&["addr", "del", cidr, "dev", "lo"]);
        }
    }
}

/// The second octet of every member's loopback address (`TRIBUNE_TEST_NET`, default 0).
pub fn test_net() -> u8 {
    match std::env::var("TRIBUNE_TEST_NET") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("TRIBUNE_TEST_NET={v:?} is not a number from 0 to 255")),
        Err(_) => 0,
    }
}

impl PortPool {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU16, Ordering};
        // Spread test processes (and successive clusters of one process) over the range.
        static CURSOR: AtomicU16 = AtomicU16::new(0);
        let offset = CURSOR.fetch_add(97, Ordering::Relaxed);
        let seed = (std::process::id() as u16)
            .wrapping_mul(31)
            .wrapping_add(offset);
        Self {
            next: 20000 + seed % 12000,
            held: Vec::new(),
        }
    }

    pub fn take(&mut self, ip: &str) -> u16 {
        loop {
            let port = self.next;
            self.next = if self.next >= 32000 {
                20000
            } else {
                self.next + 1
            };
            if let Ok(listener) = std::net::TcpListener::bind((ip, port)) {
                self.held.push(listener);
                return port;
            }
        }
    }

    /// A port `p` with `p..p + len` all free (openGauss also listens on port + 1 and + 5).
    fn take_range(&mut self, ip: &str, len: u16) -> u16 {
        loop {
            let first = self.take(ip);
            let rest: Option<Vec<std::net::TcpListener>> = (1..len)
                .map(|i| std::net::TcpListener::bind((ip, first + i)).ok())
                .collect();
            if let Some(rest) = rest {
                self.held.extend(rest);
                self.next = first + len;
                return first;
            }
        }
    }
}

/// The built agent binary. It belongs to another package of the workspace, so Cargo does not
/// name it for this test: it lies beside it (target/debug/deps/integration-* ->
/// target/debug/tribune).
pub fn built_agent() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("tribune"))
        .filter(|p| p.is_file())
        .expect("the tribune agent binary is not built: run `cargo build --workspace` first (scripts/test.sh does)")
}

/// The agent binary, copied where the `postgres` user can execute it.
fn agent_binary(dir: &Path) -> PathBuf {
    let target = dir.join("tribune");
    fs::copy(built_agent(), &target).expect("copy the agent binary");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
    target
}

pub struct Node {
    pub name: String,
    pub ip: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub api_port: u16,
    pub pg_port: u16,
    pub raft_port: u16,
    pub child: Option<Child>,
    /// How the tests connect to this node's database.
    conninfo: String,
}

impl Node {
    pub fn api(&self) -> String {
        format!("http://{}:{}", self.ip, self.api_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    /// The postmaster's PID from `postmaster.pid`, if one is recorded.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn conninfo(&self) -> String {
        self.conninfo.clone()
    }
}

/// How the tests log in to PostgreSQL at `host:port` (a member, or a proxy in front of one).
pub fn conninfo(host: &str, port: u16) -> String {
    Database::Postgres.conninfo(host, port)
}

pub struct Cluster {
    pub root: tempfile::TempDir,
    pub binary: PathBuf,
    pub nodes: Vec<Node>,
    pub scope: String,
    /// What every node's configuration was written with.
    pub options: Options,
    /// openGauss members' addresses (removed after the processes, with the cluster).
    addresses: Option<LocalAddresses>,
    /// The CA of [`AgentAuth::Certificates`].
    pub pki: Option<Pki>,
}

pub struct Options {
    pub ttl: f64,
    pub loop_wait: f64,
    pub retry_timeout: f64,
    /// `synchronous_mode` as written in the config: `false`, `true` or `quorum`.
    pub synchronous_mode: &'static str,
    pub synchronous_mode_strict: bool,
    pub synchronous_node_count: u32,
    /// `watchdog: {mode: required, driver: testing}` (Patroni's in-memory stand-in, shown by
    /// `/metrics`), never a real device.
    pub testing_watchdog: bool,
    pub database: Database,
    /// The last octet of the first node's loopback address (the next nodes count up).
    pub first_ip: u8,
    /// `scope`, and the prefix of the member names (`node0`, `node1`, ...).
    pub scope: &'static str,
    pub name_prefix: &'static str,
    /// Written under `bootstrap.dcs`, indented by the caller (e.g. a `standby_cluster`).
    pub extra_dcs: String,
    /// How the agents authenticate each other on the Raft port.
    pub agent_auth: AgentAuth,
}

/// How the agents of a test cluster authenticate each other on the Raft port.
#[derive(Clone, Debug, Default)]
pub enum AgentAuth {
    /// Nothing (the agents warn).
    #[default]
    Open,
    /// `raft.password`.
    Password(&'static str),
    /// Mutual TLS: a CA of the cluster's own ([`Cluster::pki`]), a certificate per member for
    /// its loopback address in `<node>/raft.pem`, its key encrypted with
    /// [`AGENT_KEY_PASSWORD`] in `<node>/raft.key`, the CA bundle in `<node>/raft-ca.pem`.
    Certificates,
}

/// The password of the members' encrypted Raft keys (`raft.keyfile_password`).
pub const AGENT_KEY_PASSWORD: &str = "agent-key-pass-7f3e";

/// A certificate authority for tests (rcgen), and member certificates it signs.
pub struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        Pki {
            ca: rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A member's certificate for `host` (server and client use) and its key, PEM; the key
    /// encrypted with `password` when given.
    pub fn member(&self, host: &str, password: Option<&str>) -> (String, String) {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let key = match password {
            None => key.serialize_pem(),
            Some(password) => encrypted_key(&key.serialize_pem(), password),
        };
        (cert.pem(), key)
    }
}

/// A PKCS#8 key PEM encrypted as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
pub fn encrypted_key(key_pem: &str, password: &str) -> String {
    use pkcs8::der::Decode;
    let (_, der) = pkcs8::der::Document::from_pem(key_pem).unwrap();
    let info = pkcs8::PrivateKeyInfo::from_der(der.as_bytes()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"salt5678", &[9; 16])
            .unwrap();
    info.encrypt_with_params(params, password)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ttl: 3.0,
            loop_wait: 1.0,
            retry_timeout: 0.5,
            synchronous_mode: "false",
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            testing_watchdog: false,
            database: Database::Postgres,
            first_ip: 11,
            scope: "itest",
            name_prefix: "node",
            extra_dcs: String::new(),
            agent_auth: AgentAuth::Open,
        }
    }
}

impl Cluster {
    pub fn new(size: usize, options: Options) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("tribune-it-")
            .tempdir_in(std::env::var("TRIBUNE_TEST_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let binary = agent_binary(root.path());
        let addresses = match options.database {
            Database::Postgres => None,
            Database::OpenGauss { .. } => Some(LocalAddresses::add_all(
                &(0..size)
                    .map(|i| opengauss_ip(options.first_ip, i))
                    .collect::<Vec<_>>(),
            )),
        };
        let mut cluster = Cluster {
            root,
            binary,
            nodes: Vec::new(),
            scope: options.scope.to_owned(),
            pki: matches!(options.agent_auth, AgentAuth::Certificates).then(|| Pki::new("cluster")),
            options,
            addresses,
        };
        let mut ports = PortPool::new();
        for i in 0..size {
            let node = cluster.new_node(i, &mut ports);
            cluster.nodes.push(node);
        }
        for i in 0..size {
            let partners: Vec<String> = (0..size)
                .filter(|j| *j != i)
                .map(|j| cluster.raft_addr(j))
                .collect();
            cluster.write_config(i, &partners, false);
        }
        if let Some(user) = run_as(&cluster.options.database) {
            chown_tree(cluster.root.path(), &user);
        }
        drop(ports);
        cluster
    }

    /// A node beside the existing ones, on the next loopback address, whose `partner_addrs` are
    /// their Raft addresses: a database node, or a witness (no `postgresql` section). Written,
    /// not started (`start`); it joins the Raft cluster once a member adds it.
    pub fn add_node(&mut self, witness: bool) -> usize {
        let i = self.nodes.len();
        if let Some(addresses) = &self.addresses {
            addresses.add(&opengauss_ip(self.options.first_ip, i));
        }
        let mut ports = PortPool::new();
        let node = self.new_node(i, &mut ports);
        let partners: Vec<String> = (0..i).map(|j| self.raft_addr(j)).collect();
        self.nodes.push(node);
        self.write_config(i, &partners, witness);
        if let Some(user) = run_as(&self.options.database) {
            chown_tree(&self.nodes[i].dir, &user);
        }
        drop(ports);
        i
    }

    /// Node `i`'s `raft.self_addr`.
    pub fn raft_addr(&self, i: usize) -> String {
        format!("{}:{}", self.nodes[i].ip, self.nodes[i].raft_port)
    }

    fn new_node(&self, i: usize, ports: &mut PortPool) -> Node {
        let name = format!("{}{i}", self.options.name_prefix);
        let dir = self.root.path().join(&name);
        fs::create_dir_all(&dir).unwrap();
        let ip = match &self.options.database {
            Database::Postgres => node_ip(self.options.first_ip, i),
            Database::OpenGauss { .. } => opengauss_ip(self.options.first_ip, i),
        };
        let api_port = ports.take(&ip);
        let pg_port = match &self.options.database {
            Database::Postgres => ports.take(&ip),
            Database::OpenGauss { .. } => ports.take_range(&ip, 6),
        };
        let conninfo = self.options.database.conninfo(&ip, pg_port);
        Node {
            config: dir.join("tribune.yml"),
            name,
            dir,
            api_port,
            pg_port,
            raft_port: ports.take(&ip),
            ip,
            child: None,
            conninfo,
        }
    }

    /// Write member `i`'s Raft certificate, key (encrypted with [`AGENT_KEY_PASSWORD`]) and CA
    /// bundle where its configuration names them, owned by the agent's user; the agent reads
    /// them at its next start or reload.
    pub fn install_agent_credentials(&self, i: usize, cert: &str, key: &str, ca_bundle: &str) {
        let dir = &self.nodes[i].dir;
        for (file, text) in [
            ("raft.pem", cert),
            ("raft.key", key),
            ("raft-ca.pem", ca_bundle),
        ] {
            let path = dir.join(file);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            if let Some(user) = run_as(&self.options.database) {
                chown_tree(&path, &user);
            }
        }
    }

    /// The `raft` keys of member `i` for the cluster's [`AgentAuth`].
    fn agent_auth_yaml(&self, i: usize) -> String {
        let dir = self.nodes[i].dir.display();
        match &self.options.agent_auth {
            AgentAuth::Open => String::new(),
            AgentAuth::Password(password) => format!("  password: {password}\n"),
            AgentAuth::Certificates => {
                let pki = self.pki.as_ref().expect("the cluster's CA");
                let (cert, key) = pki.member(&self.nodes[i].ip, Some(AGENT_KEY_PASSWORD));
                self.install_agent_credentials(i, &cert, &key, &pki.ca_pem());
                format!(
                    "  certfile: {dir}/raft.pem\n  keyfile: {dir}/raft.key\n  \
                     keyfile_password: {AGENT_KEY_PASSWORD}\n  cafile: {dir}/raft-ca.pem\n"
                )
            }
        }
    }

    fn write_config(&self, i: usize, partners: &[String], witness: bool) {
        let node = &self.nodes[i];
        let options = &self.options;
        let partners: Vec<String> = partners.iter().map(|a| format!("'{a}'")).collect();
        // A witness has no database: no `postgresql` section.
        let database = if witness {
            String::new()
        } else {
            database_yaml(&options.database, node)
        };
        let yaml = format!(
            r#"scope: {scope}
name: {name}
restapi:
  listen: {ip}:{api}
  connect_address: {ip}:{api}
raft:
  self_addr: {ip}:{raft}
  partner_addrs: [{partners}]
  data_dir: {dir}/raft
{agent_auth}bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry}
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    synchronous_mode_strict: {strict}
    synchronous_node_count: {sync_count}
{extra_dcs}    postgresql:
      use_pg_rewind: true
      use_slots: true
{database}{watchdog}
log:
  level: INFO
"#,
            scope = self.scope,
            name = node.name,
            ip = node.ip,
            api = node.api_port,
            raft = node.raft_port,
            partners = partners.join(", "),
            dir = node.dir.display(),
            ttl = options.ttl,
            loop_wait = options.loop_wait,
            retry = options.retry_timeout,
            sync = options.synchronous_mode,
            strict = options.synchronous_mode_strict,
            sync_count = options.synchronous_node_count,
            extra_dcs = options.extra_dcs,
            agent_auth = self.agent_auth_yaml(i),
            watchdog = if options.testing_watchdog && !witness {
                "watchdog:\n  mode: required\n  driver: testing\n  safety_margin: 1".to_owned()
            } else {
                // Never arm a real /dev/watchdog from a test: kill -9 would reset the host.
                "watchdog:\n  mode: off".to_owned()
            },
        );
        fs::write(&node.config, yaml).unwrap();
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    pub fn start(&mut self, i: usize) {
        self.start_with_env(i, &[]);
    }

    /// [`Cluster::start`] with `env` added to the agent's environment.
    pub fn start_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "{} is already running", node.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log())
            .unwrap();
        let mut cmd = Command::new(&self.binary);
        cmd.arg(&node.config)
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env(
                "RUST_LOG",
                "info,openraft=error,sled=warn,h2=warn,hyper=warn,tower=warn",
            )
            .env_remove("PGPASSWORD")
            .envs(env.iter().copied());
        if let Some(user) = run_as(&self.options.database) {
            cmd.uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", &node.dir)
                .env("USER", &user.name);
        }
        node.child = Some(cmd.spawn().expect("start the agent"));
    }

    /// Send `signal` to the agent process (SIGSTOP/SIGCONT to freeze and thaw it).
    pub fn signal_agent(&self, i: usize, signal: Signal) {
        let child = self.nodes[i].child.as_ref().expect("the agent is running");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal the agent");
    }

    /// kill -9 the postmaster only: the agent lives on.
    pub fn crash_postmaster(&self, i: usize) {
        let pid = self.nodes[i]
            .postmaster_pid()
            .expect("a running postmaster");
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the postmaster");
    }

    /// SIGTERM the agent and wait for it to exit (it stops its PostgreSQL first).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// SIGTERM the agent, as an operator or systemd stops it, and return how it exited.
    pub fn stop_with_status(&mut self, i: usize) -> std::process::ExitStatus {
        let mut child = self.nodes[i].child.take().expect("the agent is running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("signal the agent");
        child.wait().expect("wait for the agent")
    }

    /// kill -9 the agent and its postmaster: a host crash as far as the cluster can tell.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let pm = node.postmaster_pid();
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = pm {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Backends die with their postmaster; wait until the port is free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && pm.is_some_and(process_alive) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops member `i`'s standby from replicating, its host and agent running (PostgreSQL:
    /// `primary_conninfo` emptied with `ALTER SYSTEM`, which wins over the agent's file;
    /// openGauss: its WAL receiver pinned to a channel that does not exist, its own address).
    /// The agent leaves it so, since it already follows the primary.
    pub async fn break_replication(&self, i: usize) {
        let node = &self.nodes[i];
        let pin_nowhere = format!(
            "SELECT pg_catalog.disable_conn('specify_connection', '{}', {})",
            node.ip,
            node.pg_port + 1
        );
        let statements: Vec<&str> = match self.options.database {
            Database::Postgres => vec![
                "ALTER SYSTEM SET primary_conninfo = ''",
                "SELECT pg_reload_conf()",
            ],
            Database::OpenGauss { .. } => vec![&pin_nowhere],
        };
        self.run_sql(i, &statements).await;
    }

    /// Undoes [`Cluster::break_replication`].
    pub async fn repair_replication(&self, i: usize) {
        let statements: &[&str] = match self.options.database {
            Database::Postgres => &[
                "ALTER SYSTEM RESET primary_conninfo",
                "SELECT pg_reload_conf()",
            ],
            Database::OpenGauss { .. } => {
                &["SELECT pg_catalog.disable_conn('polling_connection', '', 0)"]
            }
        };
        self.run_sql(i, statements).await;
    }

    async fn run_sql(&self, i: usize, statements: &[&str]) {
        let client = connect(&self.nodes[i])
            .await
            .unwrap_or_else(|| panic!("connect to {}", self.nodes[i].name));
        for statement in statements {
            client.batch_execute(statement).await.unwrap_or_else(|e| {
                let why = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                panic!("{statement} on {}: {why}", self.nodes[i].name)
            });
        }
    }

    /// Writes `text` to `path` with `mode`, owned by the user the agents run as (a script or
    /// a file for a test's configuration).
    pub fn write_owned(&self, path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        if let Some(user) = run_as(&self.options.database) {
            chown_tree(path, &user);
        }
    }

    /// Runs `program` with `args` as the user the agents run as (a tool working on their
    /// files, such as pgbackrest), to its end.
    pub fn run_as_database_user(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(self.root.path());
        if let Some(user) = run_as(&self.options.database) {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Rewrites member `i`'s configuration file with `edit` (before it starts).
    pub fn edit_config(&self, i: usize, edit: impl FnOnce(String) -> String) {
        let path = &self.nodes[i].config;
        let text = edit(fs::read_to_string(path).unwrap());
        fs::write(path, text).unwrap();
    }

    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(self.nodes[i].log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn dump_logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("==== {} ====\n{}", self.nodes[i].name, self.log_tail(i, 60)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// openGauss's initial user in the tests (its password meets openGauss's policy).
pub const OPENGAUSS_SUPERUSER: &str = "omm";
pub const OPENGAUSS_SUPERUSER_PASSWORD: &str = "Tribune@2024";
/// The replication administrator (`postgresql.authentication.replication`): a SYSADMIN the
/// agent creates with an md5-compatible password, which the tests log in as.
pub const OPENGAUSS_ADMIN: &str = "tribune_admin";
pub const OPENGAUSS_ADMIN_PASSWORD: &str = "Admin#2024x";

/// The database's part of a node's configuration: its dynamic parameters, `initdb` options and
/// the `postgresql` section.
fn database_yaml(database: &Database, node: &Node) -> String {
    let (ip, pg, dir) = (&node.ip, node.pg_port, node.dir.display());
    match database {
        Database::Postgres => format!(
            r#"      parameters:
        wal_keep_size: 64MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: {ip}:{pg}
  connect_address: {ip}:{pg}
  data_dir: {dir}/data
{bin_dir}  pgpass: {dir}/pgpass
  pg_ctl_timeout: 30
  authentication:
    superuser:
      username: {SUPERUSER}
      password: {SUPERUSER_PASSWORD}
    replication:
      username: replicator
      password: rep-secret
    rewind:
      username: rewinder
      password: rewind-secret
  pg_hba:
    - local all all trust
    - host all all 127.0.0.0/8 scram-sha-256
    - host replication replicator 127.0.0.0/8 scram-sha-256
  parameters:
    max_connections: 40
    shared_buffers: 16MB
"#,
            bin_dir = postgres_bin_dir()
                .map(|b| format!("  bin_dir: {}\n", b.display()))
                .unwrap_or_default(),
        ),
        // Small memory settings: openGauss's defaults assume a dedicated server.
        Database::OpenGauss { bin_dir, .. } => format!(
            r#"      parameters:
        wal_keep_segments: 16
  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  engine: opengauss
  listen: {ip}:{pg}
  connect_address: {ip}:{pg}
  data_dir: {dir}/data
  bin_dir: {bin}
  pg_ctl_timeout: 60
  # An incremental build (gs_ctl build -b incremental, openGauss's pg_rewind) of a crashed
  # former primary often fails ("find max lsn fail"); a full build then heals it, which
  # Patroni's default (false) would leave to an operator.
  remove_data_directory_on_rewind_failure: true
  authentication:
    superuser:
      username: {OPENGAUSS_SUPERUSER}
      password: "{OPENGAUSS_SUPERUSER_PASSWORD}"
    replication:
      username: {OPENGAUSS_ADMIN}
      password: "{OPENGAUSS_ADMIN_PASSWORD}"
  parameters:
    max_connections: 40
    shared_buffers: 64MB
    max_process_memory: 2GB
    cstore_buffers: 16MB
    work_mem: 4MB
    maintenance_work_mem: 16MB
"#,
            bin = bin_dir.display(),
        ),
    }
}

fn process_alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

impl Cluster {
    /// A cluster of `size` witnesses (agents without a database, voters of a Raft group of
    /// their own), written, not started.
    pub fn witnesses(size: usize, options: Options) -> Cluster {
        let mut cluster = Cluster::new(0, options);
        for _ in 0..size {
            cluster.add_node(true);
        }
        for i in 0..size {
            let partners: Vec<String> = (0..size)
                .filter(|j| *j != i)
                .map(|j| cluster.raft_addr(j))
                .collect();
            cluster.write_config(i, &partners, true);
        }
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            // A frozen agent cannot die of SIGKILL until it is thawed.
            if let Some(child) = &node.child {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            }
            let pm = node.postmaster_pid();
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Some(pid) = pm {
                // SIGQUIT: immediate shutdown, the postmaster takes its backends with it.
                let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && process_alive(pid) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if std::env::var_os("TRIBUNE_KEEP_TEST_DIR").is_some() {
            let path = self.root.path().to_owned();
            eprintln!("keeping test directory {}", path.display());
            std::mem::forget(std::mem::replace(
                &mut self.root,
                tempfile::tempdir().unwrap(),
            ));
        }
    }
}

fn chown_tree(path: &Path, user: &User) {
    let _ = nix::unistd::chown(path, Some(user.uid), Some(user.gid));
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), user);
        }
    }
}

// ---- HTTP and SQL helpers -------------------------------------------------------------------

pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

pub async fn status_code(client: &reqwest::Client, url: &str) -> Option<u16> {
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

pub async fn get_text(client: &reqwest::Client, url: &str) -> Option<String> {
    client.get(url).send().await.ok()?.text().await.ok()
}

/// The value of `metric` for this member in a `/metrics` text.
pub fn metric(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// Poll `check` every 100 ms until it returns `Some`, or panic with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, cluster: &Cluster, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                cluster.dump_logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three members with Tribune's default settings (ttl 3, loop_wait 1, synchronous_mode on),
/// started; returns them with the index of the primary once bootstrap is done (90 s).
pub async fn default_cluster(client: &reqwest::Client) -> (Cluster, usize) {
    default_cluster_on(client, Database::Postgres).await
}

/// [`default_cluster`] on `database`.
pub async fn default_cluster_on(client: &reqwest::Client, database: Database) -> (Cluster, usize) {
    let options = Options {
        synchronous_mode: "true",
        database,
        ..Options::default()
    };
    started_cluster(client, options).await
}

/// Three members written with `options`, started; returns them with the index of the primary
/// once bootstrap is done (90 s).
pub async fn started_cluster(client: &reqwest::Client, options: Options) -> (Cluster, usize) {
    let mut cluster = Cluster::new(3, options);
    cluster.start_all();
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(client, &cluster).await
    })
    .await;
    (cluster, p)
}

/// The index of the node whose `/primary` answers 200, if exactly one does.
pub async fn primary(client: &reqwest::Client, cluster: &Cluster) -> Option<usize> {
    let mut found = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        if status_code(client, &format!("{}/primary", node.api())).await == Some(200) {
            found.push(i);
        }
    }
    assert!(found.len() <= 1, "two members answer /primary: {found:?}");
    found.first().copied()
}

pub async fn connect(node: &Node) -> Option<tokio_postgres::Client> {
    connect_to(&node.conninfo()).await
}

pub async fn connect_to(conninfo: &str) -> Option<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(client)
}

/// Insert one row; `true` only when the commit was acknowledged.
pub async fn insert(node: &Node, id: i64) -> bool {
    insert_at(&node.conninfo(), id).await
}

/// Insert one row over a new connection to `conninfo`; `true` only when the commit was
/// acknowledged.
pub async fn insert_at(conninfo: &str, id: i64) -> bool {
    let Some(client) = connect_to(conninfo).await else {
        return false;
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
    let fut = client.execute("INSERT INTO acked(id) VALUES ($1)", &params);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), fut).await,
        Ok(Ok(1))
    )
}

pub async fn ids(node: &Node) -> Option<Vec<i64>> {
    let client = connect(node).await?;
    let rows = client
        .query("SELECT id FROM acked ORDER BY id", &[])
        .await
        .ok()?;
    Some(rows.iter().map(|r| r.get(0)).collect())
}

// ---- write workload -------------------------------------------------------------------------

/// Acknowledged ids with the time of their acknowledgement and the member that acknowledged.
pub type Acks = Arc<Mutex<Vec<(i64, Instant, usize)>>>;

/// Insert increasing ids into whichever member accepts them until `stop`.
pub async fn writer(nodes: Vec<String>, acks: Acks, stop: tokio_util::sync::CancellationToken) {
    let mut id: i64 = 1_000_000;
    let mut current = 0usize;
    let mut client: Option<tokio_postgres::Client> = None;
    while !stop.is_cancelled() {
        id += 1;
        if client.is_none() {
            for k in 0..nodes.len() {
                let i = (current + k) % nodes.len();
                if let Ok((c, conn)) =
                    tokio_postgres::connect(&nodes[i], tokio_postgres::NoTls).await
                {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    // Only a writable member keeps the connection.
                    let writable = c
                        .query_one("SELECT NOT pg_is_in_recovery()", &[])
                        .await
                        .map(|r| r.get::<_, bool>(0))
                        .unwrap_or(false);
                    if writable {
                        current = i;
                        client = Some(c);
                        break;
                    }
                }
            }
        }
        let Some(c) = &client else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
        let fut = c.execute("INSERT INTO acked(id) VALUES ($1)", &params);
        match tokio::time::timeout(Duration::from_secs(2), fut).await {
            Ok(Ok(1)) => acks.lock().unwrap().push((id, Instant::now(), current)),
            _ => {
                client = None;
                current += 1;
            }
        }
    }
}

/// Every 100 ms, a test write to every member (table `probe`), each on its own connection:
/// records which member acknowledged a write when. A fenced or read-only member acknowledges
/// nothing; two members whose acknowledgements interleave were writable primaries at once.
pub async fn prober(nodes: Vec<String>, acks: Acks, stop: tokio_util::sync::CancellationToken) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(1);
    let tasks: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, conninfo)| {
            let acks = acks.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                while !stop.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if client.is_none() {
                        let connect = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls);
                        if let Ok(Ok((c, conn))) =
                            tokio::time::timeout(Duration::from_secs(1), connect).await
                        {
                            tokio::spawn(async move {
                                let _ = conn.await;
                            });
                            client = Some(c);
                        }
                    }
                    let Some(c) = &client else { continue };
                    let id = NEXT.fetch_add(1, Ordering::Relaxed);
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                    let insert = c.execute("INSERT INTO probe(id) VALUES ($1)", &params);
                    match tokio::time::timeout(Duration::from_secs(1), insert).await {
                        Ok(Ok(1)) => acks.lock().unwrap().push((id, Instant::now(), i)),
                        Ok(Ok(_)) | Ok(Err(_)) => {
                            if c.is_closed() {
                                client = None;
                            }
                        }
                        // A commit that hangs (a fenced primary) is never acknowledged.
                        Err(_) => client = None,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Wait until the workload has a write acknowledged after `after`.
pub async fn wait_for_writes_after(
    acks: &Acks,
    after: Instant,
    limit: Duration,
    what: &str,
    cluster: &Cluster,
) {
    wait_for(limit, what, cluster, || async {
        acks.lock()
            .unwrap()
            .iter()
            .any(|(_, t, _)| *t > after)
            .then_some(())
    })
    .await
}

/// Wait until member `i` reports itself a replica streaming from the primary.
/// Wait until every member's `/patroni` reports the pause (each answers from its own copy of
/// the replicated configuration).
pub async fn wait_every_member_paused(
    client: &reqwest::Client,
    cluster: &Cluster,
    limit: Duration,
) {
    for node in &cluster.nodes {
        wait_for(
            limit,
            "every member to report the pause",
            cluster,
            || async {
                let doc = get_json(client, &format!("{}/patroni", node.api())).await?;
                (doc["pause"] == true).then_some(())
            },
        )
        .await;
    }
}

pub async fn wait_streaming_replica(
    client: &reqwest::Client,
    cluster: &Cluster,
    i: usize,
    what: &str,
) {
    wait_for(Duration::from_secs(60), what, cluster, || async {
        let doc = get_json(client, &format!("{}/patroni", cluster.nodes[i].api())).await?;
        let streaming = doc["role"] == "replica" && doc["replication_state"] == "streaming";
        (streaming && reported_streaming(client, cluster, i).await).then_some(())
    })
    .await
}

/// Whether member `i`'s own report in the replicated state (`GET /cluster`, what `tribunectl
/// list` and the control endpoints' preconditions read) says it streams. It follows the local
/// view (`/patroni`) by a report and a Raft commit: a test that goes on to `list`, a failover or
/// a switchover waits for this too (ctl tests failed under load, the report still `starting`
/// or `in archive recovery` while `/patroni` said `streaming`).
pub async fn reported_streaming(client: &reqwest::Client, cluster: &Cluster, i: usize) -> bool {
    let node = &cluster.nodes[i];
    let Some(doc) = get_json(client, &format!("{}/cluster", node.api())).await else {
        return false;
    };
    doc["members"].as_array().is_some_and(|members| {
        members
            .iter()
            .any(|m| m["name"] == node.name.as_str() && m["state"] == "streaming")
    })
}

/// Waits (60 s) until member `i`'s `GET /cluster` names a synchronous standby.
pub async fn wait_sync_standby(client: &reqwest::Client, cluster: &Cluster, i: usize) {
    wait_for(
        Duration::from_secs(60),
        "a synchronous standby",
        cluster,
        || async {
            let doc = get_json(client, &format!("{}/cluster", cluster.nodes[i].api())).await?;
            let members = doc["members"].as_array()?;
            members
                .iter()
                .any(|m| m["role"] == "sync_standby")
                .then_some(())
        },
    )
    .await
}

/// The first write acknowledged after `after` by a member other than `excluded`: when and by
/// which member.
pub fn first_ack_elsewhere(
    acks: &Acks,
    after: Instant,
    excluded: usize,
) -> Option<(Instant, usize)> {
    acks.lock()
        .unwrap()
        .iter()
        .find(|(_, t, node)| *t > after && *node != excluded)
        .map(|(_, t, node)| (*t, *node))
}

/// The members in the order they acknowledged writes, one entry per uninterrupted period;
/// panics when a member acknowledges again after another one did (overlapping primaries).
pub fn assert_no_overlap(what: &str, acks: &[(i64, Instant, usize)]) {
    let mut sorted = acks.to_vec();
    sorted.sort_by_key(|(_, t, _)| *t);
    let mut order: Vec<usize> = Vec::new();
    for (_, _, node) in &sorted {
        if order.last() != Some(node) {
            order.push(*node);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for node in &order {
        assert!(
            seen.insert(*node),
            "{what}: members acknowledged writes in interleaved periods: {order:?}"
        );
    }
}

/// Tests built with `TRIBUNE_ROOT_TESTS` (cfg `tribune_root_tests`) need root; run otherwise they
/// fail saying so, rather than pass having checked nothing.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (nftables, or the agent's refusal to run as root): it was built \
         with TRIBUNE_ROOT_TESTS; run it as root or build without that variable"
    );
}

/// An nftables table that drops every packet to or from one member's loopback address, except
/// its own traffic to itself: a member cut off from its peers and its clients. Removed on drop,
/// also when the test fails.
pub struct Partition {
    table: String,
}

impl Partition {
    pub fn isolate(ip: &str) -> Partition {
        Partition::load(
            format!("tribune_test_{}", std::process::id()),
            &format!("ip saddr {ip} ip daddr != {ip} drop\nip daddr {ip} ip saddr != {ip} drop"),
        )
    }

    /// A table `table` whose input chain holds `rules`, loaded with `nft -f -`.
    pub fn load(table: String, rules: &str) -> Partition {
        let script = format!(
            "table inet {table} {{\n\
               chain input {{\n\
                 type filter hook input priority 0; policy accept;\n\
                 {rules}\n\
               }}\n\
             }}\n"
        );
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run nft (scripts/setup.sh installs nftables)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "nft refused the rules:\n{script}"
        );
        Partition { table }
    }

    /// Drops every packet between the addresses `a` and the addresses `b`, both ways: two
    /// sites that cannot reach each other, while each member still reaches itself and clients
    /// on its own address (a client of a member on loopback comes from the member's address).
    pub fn between(a: &[&str], b: &[&str]) -> Partition {
        let (a, b) = (a.join(", "), b.join(", "));
        Partition::load(
            format!("tribune_test_sites_{}", std::process::id()),
            &format!(
                "ip saddr {{ {a} }} ip daddr {{ {b} }} drop\nip saddr {{ {b} }} ip daddr {{ {a} }} drop"
            ),
        )
    }

    /// Drops the packets the server at `from:port` sends to the client port `to_port` (the other
    /// direction passes). Needs root.
    pub fn drop_stream(from: &str, port: u16, to_port: i32) -> Partition {
        Partition::load(
            format!("tribune_test_oneway_{}", std::process::id()),
            &format!("ip saddr {from} tcp sport {port} tcp dport {to_port} drop"),
        )
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}
