//! The suite's own network: a *hub* namespace holding a bridge, and one namespace per host
//! joined to it by a veth pair. The harness itself (workload, HAProxy, observers) lives in the
//! hub, so the root namespace of the machine is never touched and nothing outside this machine
//! is ever addressed: hosts have no route but their own /24.
//!
//! Names carry the suite's prefix and a *slot*, so that two runs can coexist: namespaces
//! `trc<slot>-hub`, `trc<slot>-n1`, ...; the bridge `trc<slot>br`; addresses
//! `10.212.<slot>.1` (hub) and `10.212.<slot>.11`, `.12`, ... (hosts). Partitions are nftables
//! rules in the table `inet trc_part` *inside* a host's namespace.
//!
//! Hazard: [`Net::enter_hub`] moves the calling thread into the hub, so it must run before any
//! other thread exists (before the async runtime is built); every thread spawned later
//! inherits the hub.

use std::os::fd::AsFd as _;

use anyhow::{Context as _, bail};

use super::command::{run, run_input_async, run_with_input};

/// The table every partition rule lives in, inside a host's namespace.
const PARTITION_TABLE: &str = "trc_part";

/// Held for a whole run: no other run takes the same slot.
pub struct SlotLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

#[derive(Clone, Debug)]
pub struct Net {
    pub slot: u8,
}

/// What a host's namespace drops: traffic to and from `peers`, or from them only (one-way), or
/// everything but loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Drop packets from and to these addresses.
    Both(Vec<String>),
    /// Drop packets arriving from these addresses; what this host sends still leaves.
    Incoming(Vec<String>),
    /// Drop every packet that is not on loopback: peers and clients alike.
    Everything,
}

impl Net {
    pub fn hub(&self) -> String {
        format!("trc{}-hub", self.slot)
    }

    pub fn host_ns(&self, i: usize) -> String {
        format!("trc{}-n{}", self.slot, i + 1)
    }

    fn bridge(&self) -> String {
        format!("trc{}br", self.slot)
    }

    /// The hub's address on the bridge: where clients and HAProxy come from.
    pub fn hub_ip(&self) -> String {
        format!("10.212.{}.1", self.slot)
    }

    pub fn host_ip(&self, i: usize) -> String {
        format!("10.212.{}.{}", self.slot, 11 + i)
    }

    /// The network pg_hba trusts for the suite's clients and peers.
    pub fn subnet(&self) -> String {
        format!("10.212.{}.0/24", self.slot)
    }

    /// Takes the slot (a run already using it is an error: removing its "leftovers" would end
    /// it), removes what an earlier run of this slot left (its processes, mounts and
    /// namespaces), creates the hub and moves this process into it. Call before any thread is
    /// started; keep the returned lock for the whole run.
    pub fn enter_hub(&self) -> anyhow::Result<SlotLock> {
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "the chaos suite must run as root: it creates network namespaces, nftables rules and \
                 mounts (the agents and databases still run as their own users)"
            );
        }
        let path = format!("/run/lock/trc-chaos-slot-{}.lock", self.slot);
        let file = std::fs::File::create(&path).with_context(|| format!("create {path}"))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| {
                anyhow::anyhow!(
                    "slot {} is in use by another chaos run ({path} is locked): choose another --slot",
                    self.slot
                )
            })?;
        self.remove_leftovers()?;
        run("ip", &["netns", "add", &self.hub()])?;
        let path = format!("/run/netns/{}", self.hub());
        let file =
            std::fs::File::open(&path).with_context(|| format!("open the hub namespace {path}"))?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .context("enter the hub namespace")?;
        let bridge = self.bridge();
        run("ip", &["link", "set", "lo", "up"])?;
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.hub_ip()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        Ok(SlotLock { _lock: lock })
    }

    /// The namespace of host `i`, joined to the hub's bridge, with its address.
    pub fn add_host(&self, i: usize) -> anyhow::Result<()> {
        let ns = self.host_ns(i);
        let veth = ns.clone();
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run(
            "ip",
            &["link", "set", &veth, "master", &self.bridge(), "up"],
        )?;
        let addr = format!("{}/24", self.host_ip(i));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Replaces host `i`'s partition rules with `cut`.
    pub async fn cut(&self, i: usize, cut: &Cut) -> anyhow::Result<()> {
        self.nft_in(i, nft_rules(cut))
            .await
            .with_context(|| format!("load partition rules in {}", self.host_ns(i)))
    }

    /// Removes host `i`'s partition rules (none is fine).
    pub async fn mend(&self, i: usize) -> anyhow::Result<()> {
        self.nft_in(
            i,
            format!("table inet {PARTITION_TABLE}\ndelete table inet {PARTITION_TABLE}\n"),
        )
        .await
        .with_context(|| format!("remove partition rules in {}", self.host_ns(i)))
    }

    /// Runs the nftables `script` inside host `i`'s namespace.
    async fn nft_in(&self, i: usize, script: String) -> anyhow::Result<()> {
        let args = ["netns", "exec", &self.host_ns(i), "nft", "-f", "-"];
        run_input_async("ip", args.map(str::to_owned).to_vec(), script).await?;
        Ok(())
    }

    /// Every process in namespace `ns`.
    pub fn pids_in(ns: &str) -> Vec<i32> {
        run("ip", &["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// SIGKILL every process of host `i`'s namespace: a host crash.
    pub fn kill_everything_in(&self, i: usize) {
        for pid in Self::pids_in(&self.host_ns(i)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// This slot's namespaces, processes and mounts from a run that did not clean up.
    fn remove_leftovers(&self) -> anyhow::Result<()> {
        let prefix = format!("trc{}-", self.slot);
        let me = std::process::id() as i32;
        let names: Vec<String> = run("ip", &["netns", "list"])?
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        for ns in &names {
            for pid in Self::pids_in(ns).into_iter().filter(|p| *p != me) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        super::volume::unmount_leftovers(&prefix);
        for ns in &names {
            eprintln!("chaos: removing namespace {ns} left by an earlier run");
            let _ = run("ip", &["netns", "del", ns]);
        }
        Ok(())
    }

    /// Deletes the hosts' namespaces and the hub (this process stays in the hub until it exits).
    pub fn teardown(&self, hosts: usize) {
        for i in 0..hosts {
            let _ = run("ip", &["netns", "del", &self.host_ns(i)]);
        }
        let _ = run("ip", &["netns", "del", &self.hub()]);
    }
}

/// The nftables script that replaces the partition table with `cut`'s rules.
pub fn nft_rules(cut: &Cut) -> String {
    let set = |addrs: &[String]| format!("{{ {} }}", addrs.join(", "));
    let (input, output) = match cut {
        Cut::Both(peers) if !peers.is_empty() => (
            format!("ip saddr {} drop", set(peers)),
            format!("ip daddr {} drop", set(peers)),
        ),
        Cut::Incoming(peers) if !peers.is_empty() => {
            (format!("ip saddr {} drop", set(peers)), String::new())
        }
        Cut::Both(_) | Cut::Incoming(_) => (String::new(), String::new()),
        Cut::Everything => (
            "iifname != \"lo\" drop".to_owned(),
            "oifname != \"lo\" drop".to_owned(),
        ),
    };
    format!(
        "table inet {PARTITION_TABLE}\n\
         delete table inet {PARTITION_TABLE}\n\
         table inet {PARTITION_TABLE} {{\n\
         \tchain input {{\n\t\ttype filter hook input priority 0; policy accept;\n\t\t{input}\n\t}}\n\
         \tchain output {{\n\t\ttype filter hook output priority 0; policy accept;\n\t\t{output}\n\t}}\n\
         }}\n"
    )
}

/// Loads `rules` with `nft -f -` in the current namespace (used by the tests of the rules).
#[allow(dead_code)]
pub fn load_here(rules: &str) -> anyhow::Result<()> {
    run_with_input("nft", &["-c", "-f", "-"], Some(rules)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_way_cut_drops_both_directions_for_the_peers_only() {
        let text = nft_rules(&Cut::Both(vec!["10.212.0.12".into(), "10.212.0.13".into()]));
        assert!(text.contains("ip saddr { 10.212.0.12, 10.212.0.13 } drop"));
        assert!(text.contains("ip daddr { 10.212.0.12, 10.212.0.13 } drop"));
        assert!(!text.contains("10.212.0.1 "), "the hub stays reachable");
    }

    #[test]
    fn a_one_way_cut_drops_only_what_arrives() {
        let text = nft_rules(&Cut::Incoming(vec!["10.212.0.12".into()]));
        assert!(text.contains("ip saddr { 10.212.0.12 } drop"));
        assert!(!text.contains("daddr"));
    }

    #[test]
    fn the_rules_are_valid_nftables_where_nft_can_check_them() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: nft -c needs root");
            return;
        }
        for cut in [
            Cut::Both(vec!["10.212.0.12".into()]),
            Cut::Incoming(vec!["10.212.0.12".into()]),
            Cut::Everything,
            Cut::Both(vec![]),
        ] {
            load_here(&nft_rules(&cut)).unwrap_or_else(|e| panic!("{cut:?}: {e:#}"));
        }
    }
}
