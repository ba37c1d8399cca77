//! What the inspection verbs answer: counters (`weir stats`), every map
//! named (`weir maps`), tracked flows (`weir conntrack`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use super::NatStats;

/// Every counter, summed over the CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub ports: Vec<PortStats>,
    pub networks: Vec<NetworkStats>,
    /// Every drop reason, zero or not, by number.
    pub drops: Vec<DropStats>,
    pub hooks: Vec<HookStats>,
    /// Entries in `CT4` (two per flow).
    pub conntrack_entries: usize,
    /// Drop events lost because the `EVENTS` ring was full (the drops are
    /// counted all the same).
    #[serde(default)]
    pub events_lost: u64,
}

/// A publication's counters. "In": towards the container (the direction
/// that opened the flow); "out": the answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    pub endpoint: String,
    pub network: String,
    pub proto: String,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_ip: Option<IpAddr>,
    pub container_port: u16,
    pub flows: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    pub network: String,
    pub masquerade: NatStats,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropStats {
    pub number: u32,
    pub reason: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookStats {
    pub program: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Every map's entries, named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapsView {
    /// `ENDPOINTS` (and whether `EP_BY_IP4` agrees).
    pub endpoints: Vec<EndpointEntry>,
    /// `PUBLISH4`, then `PUBLISH6`.
    pub published: Vec<PublishedEntry>,
    /// `OPEN_PORTS4`: container ports open at the container's address
    /// (routed mode).
    pub open_ports: Vec<OpenPortEntry>,
    /// `NETWORKS4`.
    pub networks: Vec<NetworkEntry>,
    /// `HOST_ADDRS4`: the node's addresses, with their interfaces.
    pub host_addrs: Vec<AddrEntry>,
    /// `UPLINKS`: each uplink's masquerade address.
    pub uplinks: Vec<AddrEntry>,
    /// `CONFIG`.
    pub netns_cookie: u64,
    pub snat_ports: String,
    /// `CT4`, both directions of each flow in one line (masquerade
    /// entries are the flows of kind `snat`).
    pub conntrack: Vec<FlowView>,
    /// `SOCK_RNAT4`: sockets of the node the socket hooks redirected.
    pub sock_rnat_entries: usize,
    /// `ALLOW4`: each listed port's allowed sources (`weir allow`).
    pub allowed: Vec<AllowedEntry>,
    /// The pinned links (`links/`) and what runs in them.
    pub links: Vec<LinkView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedEntry {
    /// `[HOST_IP:]PORT/PROTO`.
    pub port: String,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointEntry {
    pub ifindex: u32,
    pub interface: String,
    /// The endpoint the state has on that veth ("?" if none).
    pub endpoint: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub network: String,
    /// `EP_BY_IP4` has the address, pointing back to this veth.
    pub indexed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedEntry {
    pub proto: String,
    pub host: SocketAddr,
    pub container: SocketAddr,
    pub endpoint: String,
    pub network: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPortEntry {
    pub proto: String,
    pub container: SocketAddrV4,
    pub network: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEntry {
    pub subnet: String,
    pub network: String,
    pub id: u32,
    pub gateway: Ipv4Addr,
    pub gateway_mac: String,
    /// `0.0.0.0`: the uplink's address.
    pub snat_ip: Ipv4Addr,
    pub flags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrEntry {
    pub ip: Ipv4Addr,
    pub ifindex: u32,
    pub interface: String,
}

/// One tracked flow, both directions (`weir conntrack ls`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    pub proto: String,
    /// `dnat` (from outside) or `hairpin` (from a container).
    pub kind: String,
    /// The tuple as the client sent it (either family).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Where it was translated to.
    pub to_src: SocketAddr,
    pub to_dst: SocketAddr,
    pub state: String,
    /// Seconds since the flow began, and since its last packet.
    pub age_s: u64,
    pub idle_s: u64,
    /// Seconds left before the sweep ends it.
    pub expires_s: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_back: u64,
    pub bytes_back: u64,
}

/// What a sweep or a flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub flows: usize,
    pub entries: usize,
}

/// An attachment as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkView {
    /// Its pin name under `links/`, or the program it runs when unpinned.
    pub name: String,
    pub link_id: u32,
    pub prog_id: u32,
    /// The device of a tcx link (0: gone); 0 for a cgroup link.
    pub ifindex: u32,
    pub pinned: bool,
}
