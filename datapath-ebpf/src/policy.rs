//! Who may talk to whom. On a container's veth: anti-spoofing, isolation
//! between networks, `--icc=false` and `--internal`. On an uplink: bogons,
//! and nothing unsolicited to a container address. Each verdict is a
//! stable [`DropReason`]; conntrack and publications are asked first by the
//! hooks, so these rules only ever judge traffic no flow already covers.

use aya_ebpf::{maps::lpm_trie::Key, programs::TcContext};
use network_types::ip::Ipv4Hdr;
use weir_common::{
    ct::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    drop::DropReason,
    endpoint::EndpointInfo,
    network::{CLUSTER_NODES, CLUSTER_PODS, NET_ICC, NET_INTERNAL, NET_ROUTED, NetInfo},
    publish::{ALLOW_PREFIX, AllowKey, PROTO_ICMP, PROTO_TCP, PublishKey, PublishTarget},
};

use crate::{
    maps::{ALLOW_PORTS4, ALLOW4, CLUSTER4, ENDPOINTS, NETWORKS4, OPEN_PORTS4},
    parse::{self, Flow},
};

/// The container behind the veth a frame came in on, and its network.
pub struct Sender {
    pub ep: EndpointInfo,
    pub net: NetInfo,
}

impl Sender {
    #[inline(always)]
    fn icc(&self) -> bool {
        self.net.flags & NET_ICC != 0
    }

    #[inline(always)]
    fn internal(&self) -> bool {
        self.net.flags & NET_INTERNAL != 0
    }

    /// A publication reached through the node from this container is
    /// answered to the node's address, not to the container itself, when
    /// the backend could not answer it directly: itself, or a neighbour
    /// when `--icc=false` keeps them apart (even ARP between them).
    #[inline(always)]
    pub fn hairpin_via_node(&self, target: &PublishTarget) -> bool {
        target.ip == self.ep.ip || (target.network_id == self.net.id && !self.icc())
    }
}

/// The network an address is in, if it is a container subnet's.
#[inline(always)]
pub fn network_of(addr: [u8; 4]) -> Option<NetInfo> {
    NETWORKS4.get(&Key::new(32, addr)).copied()
}

/// What `addr` is to the cluster the node is in (`CLUSTER_*` flags; 0
/// off a cluster or outside it).
#[inline(always)]
pub fn cluster(addr: [u8; 4]) -> u32 {
    CLUSTER4.get(&Key::new(32, addr)).copied().unwrap_or(0)
}

/// A TCP connection's opening SYN between two pods of the cluster, which
/// the fast paths take both ways on this node, tracked (`KIND_ROUTED`),
/// past the stack: netfilter then sees none of the flow's packets, so it
/// never holds half of it. Only a SYN without ACK opens one, because only
/// it cannot be the answer to a Service's translation, which the stack's
/// conntrack alone can undo (a SYN-ACK can be, and so can any UDP
/// datagram); a pod's packet of no tracked flow goes to the stack as ever.
#[inline(always)]
pub fn pod_to_pod(flow: &Flow) -> bool {
    let k = &flow.key;
    k.proto == PROTO_TCP
        && flow.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
        && cluster(k.saddr) & CLUSTER_PODS != 0
        && cluster(k.daddr) & CLUSTER_PODS != 0
}

/// A pod or a node of the cluster: Kubernetes' model lets it reach every
/// pod by its address, unmasqueraded.
#[inline(always)]
pub fn in_cluster(addr: [u8; 4]) -> bool {
    cluster(addr) & (CLUSTER_PODS | CLUSTER_NODES) != 0
}

/// The endpoint behind the veth a frame comes in on. A veth with the
/// program but no entry (being made or torn down) is shut.
#[inline(always)]
pub fn endpoint(ctx: &TcContext) -> Result<EndpointInfo, DropReason> {
    // SAFETY: the skb pointer is the program's context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let ep = ENDPOINTS
        .get_ptr(ifindex)
        .ok_or(DropReason::UnknownEndpoint)?;
    // SAFETY: a pointer into a map value, valid for this program run.
    Ok(unsafe { *ep })
}

impl Sender {
    /// Endpoint `ep` with its network: looked up only for the frames
    /// whose rules need it, not for those of a tracked flow.
    #[inline(always)]
    pub fn of(ep: EndpointInfo) -> Result<Self, DropReason> {
        let net = network_of(ep.ip).ok_or(DropReason::UnknownEndpoint)?;
        Ok(Self { ep, net })
    }

    /// Whether a frame to `dst_mac` is addressed to the gateway.
    #[inline(always)]
    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "by value, LLVM lays out `tc_from_container`'s stack spills otherwise"
    )]
    pub fn to_gateway(&self, dst_mac: &[u8; 6]) -> bool {
        same_mac(dst_mac, &self.net.gateway_mac)
    }
}

/// Whether two MACs are the same (byte by byte: no `memcmp` in BPF).
#[inline(always)]
fn same_mac(a: &[u8; 6], b: &[u8; 6]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5]
}

/// The rules every frame from a container meets, IPv4 or not: its source
/// MAC is the endpoint's; an ARP speaks for the endpoint's own address and,
/// with `--icc=false`, asks only for the gateway; any other non-IPv4 frame
/// goes nowhere but the gateway with `--icc=false` (IPv6 multicast is
/// IPv6's rules' to judge). Returns the MAC the
/// frame is addressed to (for [`destination`], through
/// [`Sender::to_gateway`]).
#[inline(always)]
pub fn frame(ctx: &TcContext, ep: &EndpointInfo) -> Result<[u8; 6], DropReason> {
    let eth: *const [u8; 14] = parse::ptr_at(ctx, 0).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the 14 bytes.
    let eth = unsafe { *eth };
    let dst = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
    let src = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
    if !same_mac(&src, &ep.mac) {
        return Err(DropReason::SpoofedMac);
    }
    let ethertype = [eth[12], eth[13]];
    if ethertype == parse::ETH_P_IP {
        return Ok(dst);
    }
    // IPv6 multicast (neighbour discovery, MLD): IPv6's rules judge it
    // (`v6::from_container`), which know what it asks for.
    if ethertype == parse::ETH_P_IPV6 && dst[0] & 1 == 1 {
        return Ok(dst);
    }
    let s = Sender::of(*ep)?;
    if ethertype == parse::ETH_P_ARP {
        let arp: *const [u8; 28] =
            parse::ptr_at(ctx, parse::IP_OFF).ok_or(DropReason::Malformed)?;
        // SAFETY: `ptr_at` checked the 28 bytes.
        let arp = unsafe { *arp };
        let sha = [arp[8], arp[9], arp[10], arp[11], arp[12], arp[13]];
        let spa = [arp[14], arp[15], arp[16], arp[17]];
        let tpa = [arp[24], arp[25], arp[26], arp[27]];
        if !same_mac(&sha, &ep.mac) {
            return Err(DropReason::SpoofedMac);
        }
        // 0.0.0.0: an address probe (RFC 5227) speaks for no address.
        if spa != ep.ip && spa != [0; 4] {
            return Err(DropReason::SpoofedIp);
        }
        if !s.icc() && tpa != s.net.gateway {
            return Err(DropReason::Icc);
        }
    } else if !s.icc() && !s.to_gateway(&dst) {
        return Err(DropReason::Icc);
    }
    Ok(dst)
}

/// An IPv4 packet from a container carries the endpoint's address.
#[inline(always)]
pub fn source(ep: &EndpointInfo, ip: *const Ipv4Hdr) -> Result<(), DropReason> {
    // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
    if unsafe { (*ip).src_addr } != ep.ip {
        return Err(DropReason::SpoofedIp);
    }
    Ok(())
}

/// Where a container may send an IPv4 packet that no tracked flow and no
/// publication covers. Its own network (not its neighbours with
/// `--icc=false`, where only the gateway's MAC is a destination); another
/// network's gateway, which is a node address; anything beyond the local
/// networks, unless its network is `--internal`. Multicast and broadcast
/// stay on the link.
#[inline(always)]
pub fn destination(s: &Sender, daddr: [u8; 4], dst_mac: &[u8; 6]) -> Result<(), DropReason> {
    if !s.icc() && !s.to_gateway(dst_mac) {
        return Err(DropReason::Icc);
    }
    if daddr == s.net.gateway || daddr[0] >= 224 {
        return Ok(());
    }
    match network_of(daddr) {
        Some(net) if net.id == s.net.id => {
            if s.icc() {
                Ok(())
            } else {
                Err(DropReason::Icc)
            }
        }
        _ if s.internal() => Err(DropReason::Internal),
        Some(net) if daddr == net.gateway => Ok(()),
        Some(_) => Err(DropReason::Isolation),
        None => Ok(()),
    }
}

/// A publication a container reaches through node address `daddr`: any
/// network's but an `--internal` one's (which answers only its own network
/// and the node). A container of an `--internal` network reaches only its
/// own network's, and only through its gateway.
#[inline(always)]
pub fn hairpin(s: &Sender, daddr: [u8; 4], target: &PublishTarget) -> Result<(), DropReason> {
    if s.internal() {
        return if target.network_id == s.net.id && daddr == s.net.gateway {
            Ok(())
        } else {
            Err(DropReason::Internal)
        };
    }
    if target.network_id == s.net.id {
        return Ok(());
    }
    outsider_to_publication(target)
}

/// User rules (`weir allow`, Docker's `DOCKER-USER`): a publication with
/// a list of sources lets a new flow in only from one of them
/// (`not-allowed`); one without a list costs one hash lookup.
#[inline(always)]
pub fn allowed(publication: &PublishKey, saddr: [u8; 4]) -> Result<(), DropReason> {
    if ALLOW_PORTS4.get_ptr(publication).is_none() {
        return Ok(());
    }
    let key = Key::new(
        ALLOW_PREFIX + 32,
        AllowKey {
            publication: *publication,
            saddr,
        },
    );
    if ALLOW4.get(&key).is_some() {
        Ok(())
    } else {
        Err(DropReason::NotAllowed)
    }
}

/// A publication reached from outside the network it lives in: refused
/// for `--internal` networks.
#[inline(always)]
pub fn outsider_to_publication(target: &PublishTarget) -> Result<(), DropReason> {
    match network_of(target.ip) {
        Some(net) if net.flags & NET_INTERNAL != 0 => Err(DropReason::Internal),
        _ => Ok(()),
    }
}

/// Bogons from outside: loopback as source or destination (no route
/// makes them real), or a source in a local container subnet (spoofed:
/// those addresses live behind this node).
#[inline(always)]
pub fn from_outside(ip: *const Ipv4Hdr) -> Result<(), DropReason> {
    // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
    let (saddr, daddr) = unsafe { ((*ip).src_addr, (*ip).dst_addr) };
    if saddr[0] == 127 || daddr[0] == 127 || network_of(saddr).is_some() {
        return Err(DropReason::Bogon);
    }
    Ok(())
}

/// Whether `daddr` is a container address of a local network (not its
/// gateway, which is the node's).
#[inline(always)]
pub fn is_container(daddr: [u8; 4]) -> bool {
    container_network(daddr).is_some()
}

/// The local network whose container address `daddr` is (`None` for its
/// gateway, which is the node's, and for any other address).
#[inline(always)]
pub fn container_network(daddr: [u8; 4]) -> Option<NetInfo> {
    network_of(daddr).filter(|net| daddr != net.gateway)
}

/// What may reach `daddr` from outside when no flow and no publication
/// covers it. A node address (a gateway, anything not a container's) is
/// the stack's business; a container address is shut, except in routed
/// mode for its open ports and for ping (as Docker's routed mode). Returns
/// the network of an allowed container address, to track the new flow.
#[inline(always)]
pub fn unsolicited(
    saddr: [u8; 4],
    daddr: [u8; 4],
    flow: Option<&Flow>,
) -> Result<Option<NetInfo>, DropReason> {
    let Some(net) = container_network(daddr) else {
        return Ok(None);
    };
    let routed = net.flags & NET_ROUTED != 0 && net.flags & NET_INTERNAL == 0;
    if let Some(flow) = flow
        && routed
    {
        let k = &flow.key;
        // An echo request's key has the identifier as its source port.
        let ping = k.proto == PROTO_ICMP && k.dport == [0; 2];
        let open = OPEN_PORTS4
            .get_ptr(PublishKey {
                host_ip: daddr,
                port: k.dport,
                proto: k.proto,
                pad: 0,
            })
            .is_some();
        if ping || open {
            return Ok(Some(net));
        }
    }
    // A pod or node of the cluster reaches every pod, on every port; the
    // stack takes it (its conntrack may owe the packet a translation:
    // the answer to a Service's, which kube-proxy made).
    if in_cluster(saddr) {
        return Ok(None);
    }
    Err(DropReason::Unsolicited)
}
