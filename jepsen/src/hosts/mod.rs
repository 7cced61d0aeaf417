//! The hosts of a run: one network namespace per node with the real `tribune` agent (and, on a
//! database node, the PostgreSQL or openGauss it manages) running as the database's OS user,
//! and a real HAProxy in the hub configured by `tribunectl haproxy-config`, as production
//! traffic reaches a cluster.
//!
//! Owns the processes it starts (by PID: never by name), the namespaces and volumes, and the
//! primitive faults on them (kill, stop/continue, partition, fill, clock offset). It must not
//! decide which fault to inject or when: that is the nemesis. Every host's agent log, its
//! database's log and HAProxy's log end up in the run directory.
//!
//! Hazard: the process primitives are synchronous (kill, reap, wait until a crashed host's
//! processes are gone: milliseconds, at most 10 s); the runtime has a second worker for the
//! workload meanwhile.

pub mod command;
pub mod config;
pub mod net;
pub mod volume;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::options::{Engine, Mode, Shape};
pub use net::{Cut, Net};
use volume::Volume;

/// Debian's libfaketime (multi-threaded variant), preloaded into the agents when the
/// clock-jump nemesis is scheduled: each host's wall clock follows the offset in its own file.
fn libfaketime() -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketimeMT.so.1",
        std::env::consts::ARCH
    ))
}

/// HAProxy's listeners, in the hub.
pub const PRIMARY_PORT: u16 = 5000;
pub const REPLICA_PORT: u16 = 5001;

/// The first Raft port; the spare host takes a new one each time it is added (node ids are
/// derived from addresses and never reused).
const RAFT_PORT: u16 = 2222;

pub struct Host {
    pub name: String,
    pub ip: String,
    pub ns: String,
    pub dir: PathBuf,
    pub database: bool,
    /// `tags.site`, in a multi-site shape.
    pub site: Option<&'static str>,
    pub raft_port: u16,
    volume: Option<Volume>,
    agent: Option<Child>,
}

impl Host {
    pub fn api(&self) -> String {
        format!("http://{}:{}", self.ip, config::API_PORT)
    }

    pub fn raft_addr(&self) -> String {
        format!("{}:{}", self.ip, self.raft_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("vol").join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("tribune.yml")
    }

    fn clock_file(&self) -> PathBuf {
        self.dir.join("faketime")
    }

    pub fn agent_pid(&self) -> Option<i32> {
        self.agent.as_ref().map(|c| c.id() as i32)
    }

    /// The postmaster's PID from `postmaster.pid`, if one is recorded and alive.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        kill(Pid::from_raw(pid), None).is_ok().then_some(pid)
    }

    pub fn agent_running(&mut self) -> bool {
        match &mut self.agent {
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                _ => {
                    self.agent = None;
                    false
                }
            },
            None => false,
        }
    }
}

/// The OS user the agents run as.
#[derive(Clone, Debug)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    pub fn find(name: &str) -> anyhow::Result<OsUser> {
        let user = nix::unistd::User::from_name(name)
            .with_context(|| format!("look up the OS user {name}"))?
            .with_context(|| {
                format!("the OS user {name} does not exist (scripts/setup.sh creates it)")
            })?;
        Ok(OsUser {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }
}

/// What the hosts are built from.
pub struct Plan {
    pub shape: Shape,
    pub engine: Engine,
    pub mode: Mode,
    pub ttl: f64,
    /// The built `tribune` and `tribunectl` binaries.
    pub agent_bin: PathBuf,
    pub ctl_bin: PathBuf,
    pub opengauss_bin: PathBuf,
    /// PostgreSQL's programs (`postgresql.bin_dir`); `None`: the agent's default.
    pub pg_bin: Option<PathBuf>,
    /// Preload libfaketime into every host (the clock-jump nemesis needs it).
    pub faketime: bool,
}

pub struct Hosts {
    pub net: Net,
    pub root: PathBuf,
    pub hosts: Vec<Host>,
    /// The spare database host the membership nemesis adds and removes (not a member at start).
    pub spare: usize,
    /// Whether the spare is a member now.
    pub spare_joined: bool,
    /// How many times the spare was added (its Raft port moves each time).
    spare_adds: u16,
    plan: Plan,
    user: OsUser,
    agent_bin: PathBuf,
    proxy: Option<Child>,
    torn_down: bool,
}

impl Hosts {
    /// Creates the namespaces, volumes and configuration files; starts nothing.
    pub fn build(net: Net, root: &Path, plan: Plan) -> anyhow::Result<Hosts> {
        let user = OsUser::find(match plan.engine {
            Engine::Postgres => "postgres",
            Engine::Opengauss => "omm",
        })?;
        if plan.faketime && !libfaketime().exists() {
            bail!(
                "{} is missing: the clock-jump nemesis needs libfaketime \
                 (apt-get install libfaketime; scripts/setup.sh does)",
                libfaketime().display()
            );
        }
        if let Some(bin) = plan
            .pg_bin
            .as_ref()
            .filter(|_| plan.engine == Engine::Postgres)
            && !bin.join("postgres").exists()
        {
            bail!(
                "no PostgreSQL at {} (postgres missing): set --pg-bin",
                bin.display()
            );
        }
        if plan.engine == Engine::Opengauss && !plan.opengauss_bin.join("gaussdb").exists() {
            bail!(
                "no openGauss at {} (gaussdb missing): set --opengauss-bin",
                plan.opengauss_bin.display()
            );
        }
        let bin_dir = root.join("bin");
        fs::create_dir_all(&bin_dir).with_context(|| format!("create {}", bin_dir.display()))?;
        // The agent's user must be able to execute it, wherever the checkout is: a hard link
        // when the run directory is on the same filesystem (a debug build is 240 MB), else a
        // copy.
        let agent_bin = bin_dir.join("tribune");
        if fs::hard_link(&plan.agent_bin, &agent_bin).is_err() {
            fs::copy(&plan.agent_bin, &agent_bin)
                .with_context(|| format!("copy {}", plan.agent_bin.display()))?;
        }
        for dir in [root, bin_dir.as_path()] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", dir.display()))?;
        }
        fs::set_permissions(&agent_bin, fs::Permissions::from_mode(0o755))?;
        let nodes_dir = root.join("nodes");
        fs::create_dir_all(&nodes_dir)?;
        fs::set_permissions(&nodes_dir, fs::Permissions::from_mode(0o755))?;

        let mut layout = plan.shape.hosts();
        layout.push(true); // the spare
        let spare = layout.len() - 1;
        let mut hosts = Vec::new();
        for (i, database) in layout.into_iter().enumerate() {
            net.add_host(i)?;
            let name = format!("n{}", i + 1);
            let dir = nodes_dir.join(&name);
            fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let volume = if database {
                Some(Volume::mount(
                    &dir.join("vol"),
                    &net.host_ns(i),
                    volume::size(plan.engine),
                    user.uid,
                    user.gid,
                )?)
            } else {
                None
            };
            fs::write(dir.join("faketime"), "+0\n")?;
            hosts.push(Host {
                name,
                ip: net.host_ip(i),
                ns: net.host_ns(i),
                dir,
                database,
                site: plan.shape.site(i),
                raft_port: RAFT_PORT,
                volume,
                agent: None,
            });
        }
        let built = Hosts {
            net,
            root: root.to_owned(),
            hosts,
            spare,
            spare_joined: false,
            spare_adds: 0,
            plan,
            user,
            agent_bin,
            proxy: None,
            torn_down: false,
        };
        for i in 0..built.hosts.len() {
            built.write_config(i)?;
            chown_tree(&built.hosts[i].dir, &built.user);
        }
        Ok(built)
    }

    /// The hosts that are members of the cluster now (the spare only while it is joined).
    pub fn members(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|i| *i != self.spare || self.spare_joined)
            .collect()
    }

    pub fn database_members(&self) -> Vec<usize> {
        self.members()
            .into_iter()
            .filter(|i| self.hosts[*i].database)
            .collect()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    fn write_config(&self, i: usize) -> anyhow::Result<()> {
        let host = &self.hosts[i];
        // The founders know each other; the spare starts from the founders.
        let partners: Vec<String> = (0..self.spare)
            .filter(|j| *j != i)
            .map(|j| self.hosts[j].raft_addr())
            .collect();
        let databases = self.plan.shape.hosts().iter().filter(|d| **d).count();
        let sync_count = match self.plan.mode {
            Mode::Quorum if databases >= 5 => 2,
            _ => 1,
        };
        let text = config::render(
            &config::AgentFile {
                name: &host.name,
                ip: &host.ip,
                raft_port: host.raft_port,
                partners: &partners,
                database: host.database.then_some(self.plan.engine),
                dir: &host.dir,
                data_dir: &host.data_dir(),
                site: host.site,
            },
            &config::ClusterFile {
                mode: self.plan.mode,
                ttl: self.plan.ttl,
                sync_count,
                site_survival: self.plan.shape.has_sites() && self.plan.mode.promises_no_loss(),
                subnet: &self.net.subnet(),
                opengauss_bin: &self.plan.opengauss_bin,
                pg_bin: self.plan.pg_bin.as_deref(),
            },
        );
        fs::write(host.config_path(), text)
            .with_context(|| format!("write {}", host.config_path().display()))
    }

    /// Starts host `i`'s agent in its namespace, as the database's OS user.
    pub fn start_agent(&mut self, i: usize) -> anyhow::Result<()> {
        if self.hosts[i].agent_running() {
            return Ok(());
        }
        let host = &self.hosts[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(host.dir.join("agent.log"))
            .with_context(|| format!("open {}/agent.log", host.dir.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns, "setpriv"])
            .arg(format!("--reuid={}", self.user.uid))
            .arg(format!("--regid={}", self.user.gid))
            .args(["--init-groups", "--"]);
        if self.plan.faketime {
            // The wall clock follows the offset in the host's file (re-read every second);
            // monotonic clocks are left alone, as a real clock step would leave them. Preloaded
            // only from the agent on (through env, after the change of user): libfaketime
            // keeps shared memory named after the first process it loads into, which the
            // agent's children open, so that process must be the agent, as its user.
            cmd.arg("/usr/bin/env")
                .arg(format!("LD_PRELOAD={}", libfaketime().display()))
                .arg(format!(
                    "FAKETIME_TIMESTAMP_FILE={}",
                    host.clock_file().display()
                ))
                .arg("FAKETIME_CACHE_DURATION=1")
                .arg("FAKETIME_DONT_FAKE_MONOTONIC=1")
                .arg("DONT_FAKE_MONOTONIC=1");
        }
        cmd.arg(&self.agent_bin)
            .arg(host.config_path())
            .current_dir(&host.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("HOME", &host.dir)
            .env("USER", &self.user.name)
            .env(
                "RUST_LOG",
                "info,openraft=error,sled=warn,h2=warn,hyper=warn,tower=warn",
            )
            .env_remove("PGPASSWORD");
        let child = cmd
            .spawn()
            .with_context(|| format!("start the agent of {}", host.name))?;
        self.hosts[i].agent = Some(child);
        Ok(())
    }

    /// SIGKILL host `i`'s agent (its database lives on).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut child) = self.hosts[i].agent.take() {
            let pid = child.id();
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
            // What libfaketime's creator removes on a clean exit, and a SIGKILL leaves.
            let _ = fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
            let _ = fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
        }
    }

    /// SIGKILL host `i`'s postmaster (the agent lives on).
    pub fn kill_postmaster(&self, i: usize) -> Option<i32> {
        let pid = self.hosts[i].postmaster_pid()?;
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        kill(Pid::from_raw(pid), Signal::SIGKILL).ok()?;
        Some(pid)
    }

    /// A host crash: every process in the namespace, agent and database alike, SIGKILLed.
    pub fn crash(&mut self, i: usize) {
        let pm = self.hosts[i].postmaster_pid();
        self.kill_agent(i);
        self.net.kill_everything_in(i);
        if let Some(pid) = pm {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // The port is free again once the last backend is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline && !Net::pids_in(&self.hosts[i].ns).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP or SIGCONT the agent and/or the postmaster of host `i`.
    pub fn signal(&self, i: usize, agent: bool, postmaster: bool, signal: Signal) {
        if agent && let Some(pid) = self.hosts[i].agent_pid() {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        if postmaster && let Some(pid) = self.hosts[i].postmaster_pid() {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Sets host `i`'s wall-clock offset (seconds; 0 puts it back).
    pub fn set_clock_offset(&self, i: usize, seconds: i64) -> anyhow::Result<()> {
        let path = self.hosts[i].clock_file();
        fs::write(&path, format!("{seconds:+}\n"))
            .with_context(|| format!("write {}", path.display()))
    }

    pub fn fill_volume(&self, i: usize) -> anyhow::Result<u64> {
        self.hosts[i]
            .volume
            .as_ref()
            .context("the host has no volume (a witness)")?
            .fill()
    }

    pub fn free_volume(&self, i: usize) -> anyhow::Result<()> {
        match &self.hosts[i].volume {
            Some(v) => v.free(),
            None => Ok(()),
        }
    }

    /// Prepares the spare for its next addition: an empty data directory and Raft log, a Raft
    /// address never used before. Returns its new Raft address.
    pub fn renew_spare(&mut self) -> anyhow::Result<String> {
        let s = self.spare;
        self.kill_agent(s);
        self.crash(s);
        let host = &self.hosts[s];
        for dir in [host.data_dir(), host.dir.join("raft")] {
            if dir.exists() {
                fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
            }
        }
        self.spare_adds += 1;
        self.hosts[s].raft_port = RAFT_PORT + self.spare_adds;
        self.write_config(s)?;
        chown_tree(&self.hosts[s].dir, &self.user);
        Ok(self.hosts[s].raft_addr())
    }

    pub fn set_spare_joined(&mut self, joined: bool) {
        self.spare_joined = joined;
    }

    /// Writes HAProxy's configuration with `tribunectl haproxy-config` from the cluster as it
    /// is now, and starts HAProxy (or replaces the running one without dropping its
    /// listeners).
    pub fn start_proxy(&mut self) -> anyhow::Result<()> {
        let urls: Vec<String> = self
            .members()
            .iter()
            .map(|i| self.hosts[*i].api())
            .collect();
        let ctl = self.plan.ctl_bin.to_string_lossy().into_owned();
        let text = command::run(
            &ctl,
            &[
                "--url",
                &urls.join(","),
                "haproxy-config",
                "--bind",
                "127.0.0.1",
                "--primary-port",
                &PRIMARY_PORT.to_string(),
                "--replica-port",
                &REPLICA_PORT.to_string(),
            ],
        )
        .context("generate HAProxy's configuration with tribunectl haproxy-config")?;
        let path = self.root.join("haproxy.cfg");
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("haproxy.log"))?;
        let haproxy = if Path::new("/usr/sbin/haproxy").exists() {
            "/usr/sbin/haproxy"
        } else {
            "haproxy"
        };
        let mut cmd = Command::new(haproxy);
        cmd.arg("-db").arg("-f").arg(&path);
        let old = self.proxy.take();
        if let Some(old) = &old {
            cmd.arg("-sf").arg(old.id().to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start haproxy (scripts/setup.sh installs it)")?;
        self.proxy = Some(child);
        if let Some(mut old) = old {
            // The old process finishes its sessions and exits; do not wait for long ones.
            std::thread::sleep(Duration::from_millis(200));
            let _ = old.kill();
            let _ = old.wait();
        }
        Ok(())
    }

    /// Every process the hosts started, ended; logs copied out of the volumes; volumes and
    /// namespaces removed.
    pub fn teardown(&mut self) {
        if std::mem::replace(&mut self.torn_down, true) {
            return;
        }
        if let Some(mut p) = self.proxy.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        for i in 0..self.hosts.len() {
            self.crash(i);
        }
        for host in &self.hosts {
            if let Some(v) = &host.volume {
                // pg_ctl's log is beside the data directory, on the volume.
                let log = v.path.join("data.log");
                if log.exists() {
                    let _ = fs::copy(&log, host.dir.join("postgresql.log"));
                }
                v.unmount();
            }
        }
        self.net.teardown(self.hosts.len());
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn chown_tree(path: &Path, user: &OsUser) {
    let _ = nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    );
    if path.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            chown_tree(&entry.path(), user);
        }
    }
}
