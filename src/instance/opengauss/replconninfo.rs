//! `replconninfo1` … `replconninfo8`: openGauss's replication channels, one per other member.
//! There is no `primary_conninfo`: a standby tries its channels for a primary (the agent pins
//! it to one with `disable_conn`, see `mod.rs`), and a primary admits walsenders and listens on
//! its HA port only for the channels it lists. So every member lists every other member.
//!
//! A channel, as openGauss's installer writes it for a node with SQL port P and a peer with SQL
//! port Q: `localhost=<my ip> localport=<P+1> localheartbeatport=<P+5> remotehost=<peer ip>
//! remoteport=<Q+1> remoteheartbeatport=<Q+5>` (the `localservice`/`remoteservice` keys its
//! scripts also write are read by no kernel code; they are accepted and not written).
//!
//! Hazards: changing the value of a slot in use ends the walsender or WAL receiver on that
//! channel, so a member keeps its slot for as long as its address does ([`assign`]). Eight
//! slots is the kernel's limit. Pure; `mod.rs` writes and reloads.

use crate::instance::Upstream;

use super::settings::{HA_PORT_OFFSET, HEARTBEAT_PORT_OFFSET, OpenGaussSettings};

/// `replconninfo1..8`.
pub const SLOTS: usize = 8;

/// The GUC of slot `index` (0-based).
pub fn slot_name(index: usize) -> String {
    format!("replconninfo{}", index + 1)
}

/// One channel (the first, when a value lists several separated by `,`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub local_host: String,
    pub local_port: u16,
    pub local_heartbeat_port: Option<u16>,
    pub remote_host: String,
    pub remote_port: u16,
    pub remote_heartbeat_port: Option<u16>,
    /// `iscascade=true`: the peer is a cascade standby.
    pub cascade: bool,
}

impl Channel {
    /// The channel from this member to `peer`, whose SQL port is `peer.port` (its
    /// `connect_address`): the port conventions hold on both ends.
    pub fn to_peer(s: &OpenGaussSettings, peer: &Upstream) -> Channel {
        Channel {
            local_host: s.connect_host.clone(),
            local_port: s.ha_port(),
            local_heartbeat_port: Some(s.heartbeat_port()),
            remote_host: peer.host.clone(),
            remote_port: peer.port.saturating_add(HA_PORT_OFFSET),
            remote_heartbeat_port: Some(peer.port.saturating_add(HEARTBEAT_PORT_OFFSET)),
            cascade: false,
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "localhost={} localport={}",
            self.local_host, self.local_port
        );
        if let Some(p) = self.local_heartbeat_port {
            out.push_str(&format!(" localheartbeatport={p}"));
        }
        out.push_str(&format!(
            " remotehost={} remoteport={}",
            self.remote_host, self.remote_port
        ));
        if let Some(p) = self.remote_heartbeat_port {
            out.push_str(&format!(" remoteheartbeatport={p}"));
        }
        if self.cascade {
            out.push_str(" iscascade=true");
        }
        out
    }

    /// Parses a `replconninfoN` value; `None` when empty or when a mandatory key (`localhost`,
    /// `localport`, `remotehost`, `remoteport`) is missing or malformed.
    pub fn parse(value: &str) -> Option<Channel> {
        let first = value.split(',').next()?.trim();
        let get = |key: &str| {
            first
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        let port = |key: &str| get(key).and_then(|v| v.parse::<u16>().ok());
        Some(Channel {
            local_host: get("localhost").filter(|h| !h.is_empty())?.to_owned(),
            local_port: port("localport")?,
            local_heartbeat_port: port("localheartbeatport"),
            remote_host: get("remotehost").filter(|h| !h.is_empty())?.to_owned(),
            remote_port: port("remoteport")?,
            remote_heartbeat_port: port("remoteheartbeatport"),
            cascade: get("iscascade") == Some("true"),
        })
    }

    fn same_remote(&self, other: &Channel) -> bool {
        self.remote_host == other.remote_host && self.remote_port == other.remote_port
    }
}

/// The channel of each slot; index 0 is `replconninfo1`.
pub type Slots = [Option<Channel>; SLOTS];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "openGauss has {SLOTS} replication channels (replconninfo1..{SLOTS}); {0} other members \
     have a database"
)]
pub struct TooManyPeers(pub usize);

/// Places `wanted` into slots: a channel whose remote end (host and HA port) is in a slot
/// already stays there, the others take the free slots in order; slots of members that left
/// are emptied.
pub fn assign(current: &Slots, wanted: &[Channel]) -> Result<Slots, TooManyPeers> {
    if wanted.len() > SLOTS {
        return Err(TooManyPeers(wanted.len()));
    }
    let mut slots: Slots = Default::default();
    let mut unplaced = Vec::new();
    for channel in wanted {
        let kept = current
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.same_remote(channel)))
            .filter(|i| slots[*i].is_none());
        match kept {
            Some(i) => slots[i] = Some(channel.clone()),
            None => unplaced.push(channel),
        }
    }
    for channel in unplaced {
        // Prefer a slot nobody used, so a member that left is not replaced in place while a
        // receiver may still be on its channel.
        let free = (0..SLOTS)
            .find(|i| slots[*i].is_none() && current[*i].is_none())
            .or_else(|| (0..SLOTS).find(|i| slots[*i].is_none()));
        if let Some(i) = free {
            slots[i] = Some(channel.clone());
        }
    }
    Ok(slots)
}

/// The slots as a configuration file sets them, read through `value_of` (a GUC lookup).
pub fn read_slots(value_of: impl Fn(&str) -> Option<String>) -> Slots {
    std::array::from_fn(|i| value_of(&slot_name(i)).and_then(|v| Channel::parse(&v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::opengauss::settings::sample;
    use crate::types::MemberName;

    /// The canonical channel of the reference (openGauss's installer, SQL ports 27000 on both
    /// nodes of the sample), with the `localservice`/`remoteservice` keys it also writes.
    const INSTALLER_FORM: &str = "localhost=10.244.44.52 localport=27001 \
        localheartbeatport=27005 localservice=27004 remotehost=10.244.44.53 remoteport=27001 \
        remoteheartbeatport=27005 remoteservice=27004";

    fn peer(host: &str, port: u16) -> Upstream {
        Upstream {
            member: MemberName::from("peer"),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_installer_form_parses() {
        assert_eq!(
            Channel::parse(INSTALLER_FORM),
            Some(Channel {
                local_host: "10.244.44.52".into(),
                local_port: 27001,
                local_heartbeat_port: Some(27005),
                remote_host: "10.244.44.53".into(),
                remote_port: 27001,
                remote_heartbeat_port: Some(27005),
                cascade: false,
            })
        );
        let two = format!("{INSTALLER_FORM} iscascade=true,localhost=10.0.0.9 localport=1");
        assert!(Channel::parse(&two).unwrap().cascade);
        assert_eq!(Channel::parse(""), None);
        assert_eq!(
            Channel::parse("localhost=a localport=x remotehost=b remoteport=1"),
            None
        );
    }

    #[test]
    fn a_channel_follows_the_port_conventions_on_both_ends() {
        let s = sample();
        let channel = Channel::to_peer(&s, &peer("10.0.0.2", 26100));
        assert_eq!(
            channel.render(),
            "localhost=10.0.0.1 localport=26001 localheartbeatport=26005 \
             remotehost=10.0.0.2 remoteport=26101 remoteheartbeatport=26105"
        );
        assert_eq!(Channel::parse(&channel.render()), Some(channel));
    }

    #[test]
    fn members_keep_their_slots_and_newcomers_take_free_ones() {
        let s = sample();
        let ch = |host: &str| Channel::to_peer(&s, &peer(host, 26000));
        let mut current: Slots = Default::default();
        current[0] = Some(ch("10.0.0.3"));
        current[2] = Some(ch("10.0.0.9"));
        // 10.0.0.9 left; 10.0.0.2 and 10.0.0.4 joined.
        let slots = assign(&current, &[ch("10.0.0.2"), ch("10.0.0.3"), ch("10.0.0.4")]).unwrap();
        let hosts: Vec<Option<&str>> = slots
            .iter()
            .map(|c| c.as_ref().map(|c| c.remote_host.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                Some("10.0.0.3"),
                Some("10.0.0.2"),
                None,
                Some("10.0.0.4"),
                None,
                None,
                None,
                None
            ]
        );
        // Assigning again changes nothing.
        assert_eq!(
            assign(&slots, &[ch("10.0.0.2"), ch("10.0.0.3"), ch("10.0.0.4")]).unwrap(),
            slots
        );
    }

    #[test]
    fn at_most_eight_peers() {
        let s = sample();
        let nine: Vec<Channel> = (0..9)
            .map(|i| Channel::to_peer(&s, &peer(&format!("10.0.1.{i}"), 26000)))
            .collect();
        assert_eq!(assign(&Default::default(), &nine), Err(TooManyPeers(9)));
        assert!(
            assign(&Default::default(), &nine[..8])
                .unwrap()
                .iter()
                .all(Option::is_some)
        );
    }

    #[test]
    fn slots_are_read_back_by_name() {
        let slots = read_slots(|name| (name == "replconninfo2").then(|| INSTALLER_FORM.to_owned()));
        assert!(slots[0].is_none() && slots[1].is_some());
        assert_eq!(slot_name(7), "replconninfo8");
    }
}
