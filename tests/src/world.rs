//! The test-bed topology.
//!
//! ```text
//!   ext (203.0.113.2/24, eth0) ── veth ── (uplink0, 203.0.113.1/24) node
//!                                           default route via ext
//!                                           │  veth per container (host side
//!                                           │  in node, `eth0` inside)
//!                                        containers
//! ```
//!
//! `ext` routes everything through the node. Addresses come from the
//! documentation ranges, and live only inside the world's own namespaces.

use std::{io, net::Ipv4Addr};

use crate::netns::{self, Netns};

/// The node's address on its uplink.
pub const NODE_UPLINK_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The external host's address.
pub const EXT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The node's uplink IPv6 address, once [`World::add_ipv6`] gave it.
pub const NODE_UPLINK_IP6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The external host's IPv6 address, on the uplink's /64.
pub const EXT_IP6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// The node's uplink interface name (inside `node`).
pub const UPLINK: &str = "uplink0";

/// One test's world. Dropping it deletes every namespace it made (and with
/// them every veth and every tc/tcx attachment inside), even in a panic.
pub struct World {
    stem: String,
    // Containers first: they are dropped before the node they hang off.
    containers: Vec<Netns>,
    pub node: Netns,
    pub ext: Netns,
}

impl World {
    /// Builds `node` and `ext` joined by the uplink veth, forwarding on.
    pub fn new() -> io::Result<Self> {
        Self::with_uplink_queues(1)
    }

    /// [`World::new`] with an uplink of `queues` queues each way, `ext`
    /// sending each CPU's frames on a queue of its own (XPS), as a NIC with
    /// a queue per CPU receives them: with XDP on a veth, one queue would
    /// make every sender's frames wait in one NAPI behind the others'.
    pub fn with_uplink_queues(queues: usize) -> io::Result<Self> {
        let stem = netns::unique_stem();
        let node = Netns::create(&format!("{stem}-node"))?;
        let ext = Netns::create(&format!("{stem}-ext"))?;
        veth_into_with_queues(&node, UPLINK, &ext, queues)?;
        // One queue takes every CPU's frames (the kernel refuses a map).
        for i in (0..queues).filter(|_| queues > 1) {
            // sysfs as `ext` sees it: `ip netns exec` mounts its own.
            let script = format!(
                "echo {:x} > /sys/class/net/eth0/queues/tx-{i}/xps_cpus",
                1u64 << i
            );
            let out = ext.exec("sh", &["-c", &script])?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "XPS for queue {i}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        node.ip(&[
            "addr",
            "add",
            &format!("{NODE_UPLINK_IP}/24"),
            "dev",
            UPLINK,
        ])?;
        node.ip(&["link", "set", UPLINK, "up"])?;
        ext.ip(&["addr", "add", &format!("{EXT_IP}/24"), "dev", "eth0"])?;
        ext.ip(&["link", "set", "eth0", "up"])?;
        ext.ip(&[
            "route",
            "add",
            "default",
            "via",
            &NODE_UPLINK_IP.to_string(),
        ])?;
        // ext stands for the rest of the world: the node's default route.
        node.ip(&["route", "add", "default", "via", &EXT_IP.to_string()])?;
        node.sysctl("net.ipv4.ip_forward", "1")?;
        Ok(Self {
            stem,
            containers: Vec::new(),
            node,
            ext,
        })
    }

    /// Makes `ext` send like a host behind a wire: its `eth0` finishes
    /// every checksum itself (transmit checksum offload off), as frames
    /// off a NIC carry them, instead of leaving them to a device, as a
    /// local stack does over a veth.
    pub fn ext_as_wire(&self) -> io::Result<()> {
        self.ext.run(|| {
            weir::netlink::ethtool::set("eth0", weir::netlink::ethtool::Feature::TxChecksum, false)
        })
    }

    /// Gives `ext` a route to the default network's container addresses
    /// through the node, as a neighbour on the uplink's link could have:
    /// only weir then stops what it sends them.
    pub fn ext_routes_to_containers(&self) -> io::Result<()> {
        self.ext
            .ip(&[
                "route",
                "add",
                "10.203.0.0/16",
                "via",
                &NODE_UPLINK_IP.to_string(),
            ])
            .map(drop)
    }

    /// Adds a new, empty container namespace (only `lo`, up), to be
    /// attached by the agent; [`World::c`] finds it by `name`.
    pub fn add_container(&mut self, name: &str) -> io::Result<()> {
        self.containers
            .push(Netns::create(&format!("{}-{name}", self.stem))?);
        Ok(())
    }

    /// Deletes the container namespace added as `name` (its veths go with
    /// it), as a runtime does when a container ends.
    pub fn remove_container(&mut self, name: &str) {
        let full = format!("{}-{name}", self.stem);
        self.containers.retain(|c| c.name() != full);
    }

    /// The container added as `name`. Panics when there is none.
    #[must_use]
    pub fn c(&self, name: &str) -> &Netns {
        let full = format!("{}-{name}", self.stem);
        self.containers
            .iter()
            .find(|c| c.name() == full)
            .unwrap_or_else(|| panic!("no container {name} in this world"))
    }

    /// Wires a container to the node with a plain routed veth, without any
    /// agent: `node_if` in the node with `gateway/prefix`, `eth0` in the
    /// container with `addr/prefix` and a default route via `gateway`. This is
    /// for testing the datapath on its own; the agent makes real endpoints.
    pub fn add_plain_container(
        &mut self,
        name: &str,
        node_if: &str,
        gateway: Ipv4Addr,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> io::Result<()> {
        let node = &self.node;
        let ns = Netns::create(&format!("{}-{name}", self.stem))?;
        veth_into(node, node_if, &ns)?;
        node.ip(&[
            "addr",
            "add",
            &format!("{gateway}/{prefix}"),
            "dev",
            node_if,
        ])?;
        node.ip(&["link", "set", node_if, "up"])?;
        ns.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&["route", "add", "default", "via", &gateway.to_string()])?;
        self.containers.push(ns);
        Ok(())
    }

    /// The world's unique stem (`weirt-<pid>-<n>`), for naming files and
    /// directories that belong to it.
    #[must_use]
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// The uplink and ext speak IPv6 too: [`NODE_UPLINK_IP6`] and
    /// [`EXT_IP6`] on one /64, without duplicate address detection.
    pub fn add_ipv6(&self) -> io::Result<()> {
        for (ns, addr, dev) in [
            (&self.node, NODE_UPLINK_IP6, UPLINK),
            (&self.ext, EXT_IP6, "eth0"),
        ] {
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
        }
        Ok(())
    }

    /// The names of every namespace of this world.
    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        let mut names = vec![self.node.name().to_owned(), self.ext.name().to_owned()];
        names.extend(self.containers.iter().map(|c| c.name().to_owned()));
        names
    }
}

/// A veth pair: `node_if` in `node`, its peer `eth0` in `ns` (both down).
pub fn veth_into(node: &Netns, node_if: &str, ns: &Netns) -> io::Result<()> {
    veth_into_with_queues(node, node_if, ns, 1)
}

/// [`veth_into`] with `queues` queues each way on both ends.
pub fn veth_into_with_queues(
    node: &Netns,
    node_if: &str,
    ns: &Netns,
    queues: usize,
) -> io::Result<()> {
    let q = queues.to_string();
    node.ip(&[
        "link",
        "add",
        node_if,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        ns.name(),
    ])
    .map(drop)
}

/// True when `ping -c 1` from `from` to `to` gets an answer within 3 s.
#[must_use]
pub fn ping(from: &Netns, to: Ipv4Addr) -> bool {
    // A first contact waits for ARP, which on a loaded machine has taken
    // over a second; an answer returns at once.
    from.exec("ping", &["-c", "1", "-W", "3", "-q", &to.to_string()])
        .is_ok()
}

/// One echo from `from` to `to`, not answered within a second: for
/// asserting that something does not get through.
#[must_use]
pub fn no_ping(from: &Netns, to: Ipv4Addr) -> bool {
    from.exec("ping", &["-c", "1", "-W", "1", "-q", &to.to_string()])
        .is_err()
}

/// Every iptables rule (or DNAT/MASQUERADE mention) and every nftables
/// line in `ns`: weir must make none.
#[must_use]
pub fn netfilter_rules(ns: &Netns) -> Vec<String> {
    let mut rules = Vec::new();
    for save in ["iptables-save", "ip6tables-save"] {
        let out = ns.exec(save, &[]).expect(save);
        rules.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("-A") || l.contains("DNAT") || l.contains("MASQUERADE"))
                .map(|l| format!("{save}: {l}")),
        );
    }
    let nft = ns.exec("nft", &["list", "ruleset"]).expect("nft");
    rules.extend(
        String::from_utf8_lossy(&nft.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("nft: {l}")),
    );
    rules
}

/// The names of all namespaces on the machine.
#[must_use]
pub fn all_namespaces() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}
