//! Every map of the datapath, in one place. Maps are BTF-defined
//! (`#[btf_map]`), so `bpftool map dump` prints their keys and values with
//! field names. Names are at most 15 characters (the kernel's limit) and are
//! the names the agent pins them under.

use aya_ebpf::{
    btf_maps::{
        Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf,
    },
    macros::btf_map,
};
use weir_common::{
    config::{Config, MAX_SOCK_RNAT, SockRnat6Value, SockRnat66Key, SockRnatKey, SockRnatValue},
    ct::{CtEntry, CtKey, MAX_CT_ENTRIES},
    ct6::{CtEntry6, CtKey6, MAX_CT6_ENTRIES, Scratch6},
    drop::DropReason,
    endpoint::{EndpointInfo, EndpointRef, MAX_ENDPOINTS},
    event::{DropEvent, EVENTS_BYTES},
    frag::{FragEntry, FragKey, MAX_FRAGMENTED},
    network::{MAX_CLUSTER_CIDRS, MAX_NETWORKS, MAX_UPLINKS, NetInfo, NetInfo6},
    publish::{
        AllowKey, MAX_ALLOWED, MAX_HOST_ADDRS, MAX_OPEN_PORTS, MAX_PUBLISHED, PublishKey,
        PublishKey6, PublishTarget, PublishTarget6,
    },
    stats::{Counter, Hook, MAX_TAIL_CALLS, NatCounters, PortCounters},
};

/// The programs the hooks hand packets to (`bpf_tail_call`), by index
/// (`weir_common::stats::TAIL_FROM_CONTAINER6`): filled by the agent when
/// it loads them.
#[btf_map]
pub static TAIL_CALLS: ProgramArray<{ MAX_TAIL_CALLS as usize }> = ProgramArray::new();

/// Packets and bytes seen by each hook, indexed by [`Hook`].
#[btf_map]
pub static HOOK_STATS: PerCpuArray<Counter, { Hook::MAP_SIZE as usize }> = PerCpuArray::new();

/// Packets and bytes dropped, indexed by the stable [`DropReason`] number.
#[btf_map]
pub static DROP_STATS: PerCpuArray<Counter, { DropReason::MAP_SIZE as usize }> = PerCpuArray::new();

/// Host-side ifindex of a container veth -> the endpoint behind it.
#[btf_map]
pub static ENDPOINTS: HashMap<u32, EndpointInfo, { MAX_ENDPOINTS as usize }> = HashMap::new();

/// Container address (network order) -> its veth and MAC.
#[btf_map]
pub static EP_BY_IP4: HashMap<[u8; 4], EndpointRef, { MAX_ENDPOINTS as usize }> = HashMap::new();

/// Published ports: (host address or 0.0.0.0, port, protocol) -> container.
#[btf_map]
pub static PUBLISH4: HashMap<PublishKey, PublishTarget, { MAX_PUBLISHED as usize }> =
    HashMap::new();

/// The node's own IPv4 addresses -> ifindex (kept current by the agent).
#[btf_map]
pub static HOST_ADDRS4: HashMap<[u8; 4], u32, { MAX_HOST_ADDRS as usize }> = HashMap::new();

/// Conntrack: a flow's tuple in one direction -> how to rewrite it.
#[btf_map]
pub static CT4: LruHashMap<CtKey, CtEntry, { MAX_CT_ENTRIES as usize }> = LruHashMap::new();

/// Fragmented datagrams of translated flows: the datagram as it arrived
/// -> the addresses its first fragment left with (`crate::frag`).
#[btf_map]
pub static FRAG4: LruHashMap<FragKey, FragEntry, { MAX_FRAGMENTED as usize }> = LruHashMap::new();

/// What the agent tells the programs (one slot).
#[btf_map]
pub static CONFIG: Array<Config, 1> = Array::new();

/// Sockets the cgroup hooks redirected: (cookie, container address) -> the
/// published address the socket asked for.
#[btf_map]
pub static SOCK_RNAT4: LruHashMap<SockRnatKey, SockRnatValue, { MAX_SOCK_RNAT as usize }> =
    LruHashMap::new();

/// The same for the node's IPv6 sockets (`[::1]:H`), which are pointed at
/// the container's IPv4 address as `::ffff:a.b.c.d`.
#[btf_map]
pub static SOCK_RNAT6: LruHashMap<SockRnatKey, SockRnat6Value, { MAX_SOCK_RNAT as usize }> =
    LruHashMap::new();

/// The same for the node's IPv6 sockets pointed at a container's IPv6
/// address (a publication over IPv6 only).
#[btf_map]
pub static SOCK_RNAT66: LruHashMap<SockRnat66Key, SockRnat6Value, { MAX_SOCK_RNAT as usize }> =
    LruHashMap::new();

/// The publications that let in only a list of sources (`weir allow`).
#[btf_map]
pub static ALLOW_PORTS4: HashMap<PublishKey, u32, { MAX_PUBLISHED as usize }> = HashMap::new();

/// The IPv6 side of publications on every address with a list: its
/// sources are IPv4, so no IPv6 source is on it.
#[btf_map]
pub static ALLOW_PORTS6: HashMap<PublishKey6, u32, { MAX_PUBLISHED as usize }> = HashMap::new();

/// Those lists: a publication's key and a source CIDR (longest prefix).
#[btf_map]
pub static ALLOW4: LpmTrie<AllowKey, u32, { MAX_ALLOWED as usize }> = LpmTrie::new();

/// Container subnets -> their network (longest prefix wins).
#[btf_map]
pub static NETWORKS4: LpmTrie<[u8; 4], NetInfo, { MAX_NETWORKS as usize }> = LpmTrie::new();

/// The cluster's address ranges (`--cluster-cidr`, `--node-cidr`,
/// `--service-cidr`) -> what they are (`CLUSTER_*` flags); empty off a
/// cluster.
#[btf_map]
pub static CLUSTER4: LpmTrie<[u8; 4], u32, { MAX_CLUSTER_CIDRS as usize }> = LpmTrie::new();

/// `CLUSTER4`'s IPv6 twin: the cluster's IPv6 ranges -> their
/// `CLUSTER_*` flags.
#[btf_map]
pub static CLUSTER6: LpmTrie<[u8; 16], u32, { MAX_CLUSTER_CIDRS as usize }> = LpmTrie::new();

/// IPv6 container subnets -> their network (longest prefix wins).
#[btf_map]
pub static NETWORKS6: LpmTrie<[u8; 16], NetInfo6, { MAX_NETWORKS as usize }> = LpmTrie::new();

/// The node's own IPv6 addresses -> their ifindex (the `*6` socket hooks'
/// publications on every address).
#[btf_map]
pub static HOST_ADDRS6: HashMap<[u8; 16], u32, { MAX_HOST_ADDRS as usize }> = HashMap::new();

/// IPv6 flows (NAT66), both directions (`weir_common::ct6`).
#[btf_map]
pub static CT6: LruHashMap<CtKey6, CtEntry6, { MAX_CT6_ENTRIES as usize }> = LruHashMap::new();

/// Where a new IPv6 flow's entries are built (per CPU, one slot): off
/// the stack, which a BPF call chain shares.
#[btf_map]
pub static SCRATCH6: PerCpuArray<Scratch6, 1> = PerCpuArray::new();

/// Ports published over IPv6: (`::` or a node address, port, protocol)
/// -> the container's IPv6 address and port.
#[btf_map]
pub static PUBLISH6: HashMap<PublishKey6, PublishTarget6, { MAX_PUBLISHED as usize }> =
    HashMap::new();

/// Routed mode over IPv6: (container IPv6 address, port, protocol) -> its
/// network id, the container ports outsiders may reach at its address.
#[btf_map]
pub static OPEN_PORTS6: HashMap<PublishKey6, u32, { MAX_OPEN_PORTS as usize }> = HashMap::new();

/// Uplink ifindex -> the IPv6 address masquerade uses on it.
#[btf_map]
pub static UPLINKS6: HashMap<u32, [u8; 16], { MAX_UPLINKS as usize }> = HashMap::new();

/// Container IPv6 address -> its veth and MAC (`EP_BY_IP4`'s IPv6 half:
/// the translated packets of a tracked flow go straight into it).
#[btf_map]
pub static EP_BY_IP6: HashMap<[u8; 16], EndpointRef, { MAX_ENDPOINTS as usize }> = HashMap::new();

/// Host-side ifindex -> the endpoint's IPv6 address (dual-stack networks).
#[btf_map]
pub static ENDPOINTS6: HashMap<u32, [u8; 16], { MAX_ENDPOINTS as usize }> = HashMap::new();

/// Uplink ifindex -> the address masquerade uses on it.
#[btf_map]
pub static UPLINKS: HashMap<u32, [u8; 4], { MAX_UPLINKS as usize }> = HashMap::new();

/// Masquerade counters per network id.
#[btf_map]
pub static SNAT_STATS: PerCpuArray<NatCounters, { MAX_NETWORKS as usize }> = PerCpuArray::new();

/// Routed mode: (container address, container port, protocol) -> network
/// id, for the ports outsiders may reach at the container's own address.
#[btf_map]
pub static OPEN_PORTS4: HashMap<PublishKey, u32, { MAX_OPEN_PORTS as usize }> = HashMap::new();

/// Counters per publication (same key as `PUBLISH4`); the agent makes the
/// entry when it publishes, the programs only add to it.
#[btf_map]
pub static PORT_STATS: PerCpuHashMap<PublishKey, PortCounters, { MAX_PUBLISHED as usize }> =
    PerCpuHashMap::new();

/// The same for the flows that come in by `PUBLISH6` (same key).
#[btf_map]
pub static PORT_STATS6: PerCpuHashMap<PublishKey6, PortCounters, { MAX_PUBLISHED as usize }> =
    PerCpuHashMap::new();

/// Drop events for `weir monitor`, read by the agent.
#[btf_map]
pub static EVENTS: RingBuf<DropEvent, { EVENTS_BYTES as usize }> = RingBuf::new();
