//! IPv6's rules of who may speak, the IPv6 side of `policy`; what leaves
//! and comes back translated is `nat6`'s:
//!
//! - from a container ([`source`], [`destination`]): its source is its own address
//!   (`ENDPOINTS6`), a link-local one, or the unspecified one (duplicate
//!   address detection); a neighbour advertisement speaks only for its own
//!   address or a link-local one; the destination is link-local,
//!   multicast, its own network (the gateway too; with `--icc=false` the
//!   gateway alone, `icc`) or another network's gateway (the node);
//!   another network's container is `isolation`;
//!   anything beyond is `internal-network` for an `--internal` network,
//!   and otherwise leaves by the node's routes (masqueraded or tracked on
//!   the uplink's egress, `nat6::to_uplink`).
//! - from outside ([`bogon`], [`unsolicited`], tc and XDP on an uplink):
//!   loopback as source or destination and a container prefix as source
//!   are bogons; anything to a container address that is no answer of a
//!   tracked flow is unsolicited (a gateway address is the node's), unless
//!   it comes from a pod or node of the cluster the node is in
//!   ([`in_cluster`], `CLUSTER6`), which the stack takes. XDP leaves a
//!   non-masquerading network's addresses to tc, which knows its tracked
//!   flows (`CT6`).

use aya_ebpf::maps::lpm_trie::Key;
use network_types::ip::Ipv6Hdr;
use weir_common::{
    drop::DropReason,
    endpoint::EndpointInfo,
    network::{CLUSTER_NODES, CLUSTER_PODS, NET_ICC, NET_INTERNAL, NET_MASQUERADE, NetInfo6},
    publish::PROTO_ICMPV6,
};

use crate::{
    maps::{CLUSTER6, ENDPOINTS6, NETWORKS6},
    parse::{IP_OFF, Packet, ptr_at},
};

/// `ICMPv6` neighbour advertisement.
const NDP_NA: u8 = 136;
/// `ICMPv6` router and neighbour solicitations, MLD's reports and done.
const NDP_RS: u8 = 133;
const NDP_NS: u8 = 135;
const MLD_REPORT: u8 = 131;
const MLD_DONE: u8 = 132;
const MLD2_REPORT: u8 = 143;
const LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The IPv6 header of a frame whose ethertype said IPv6.
#[inline(always)]
fn header(pkt: &impl Packet) -> Result<Ipv6Hdr, DropReason> {
    let ip: *const Ipv6Hdr = ptr_at(pkt, IP_OFF).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the whole header is in the packet.
    let ip = unsafe { *ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(DropReason::Malformed);
    }
    Ok(ip)
}

#[inline(always)]
fn link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
}

#[inline(always)]
fn multicast(a: &[u8; 16]) -> bool {
    a[0] == 0xff
}

/// The dual-stack network an IPv6 address is in.
#[inline(always)]
fn network_of(a: [u8; 16]) -> Option<NetInfo6> {
    NETWORKS6.get(&Key::new(128, a)).copied()
}

/// A pod or a node of the cluster the node is in (`CLUSTER6`; never off
/// a cluster): Kubernetes' model lets it reach every pod by its address,
/// unmasqueraded.
#[inline(always)]
pub fn in_cluster(a: &[u8; 16]) -> bool {
    CLUSTER6
        .get(&Key::new(128, *a))
        .is_some_and(|flags| flags & (CLUSTER_PODS | CLUSTER_NODES) != 0)
}

/// An IPv6 frame from the container behind host-side veth `ifindex`: its
/// source is the container's own address, a link-local one or `::`, and a
/// neighbour advertisement speaks for its own address or a link-local
/// one. Every frame meets these; a tracked flow's packet meets nothing
/// more ([`destination`] is for the rest, as IPv4's rules are).
#[inline(always)]
pub fn source(pkt: &impl Packet, ifindex: u32) -> Result<(), DropReason> {
    let ip: *const Ipv6Hdr = ptr_at(pkt, IP_OFF).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the whole header is in the packet; the
    // map value pointer stays valid for this program run.
    unsafe {
        if (*ip).vcf[0] >> 4 != 6 {
            return Err(DropReason::Malformed);
        }
        let own = ENDPOINTS6.get_ptr(ifindex);
        let is_own = |a: &[u8; 16]| own.is_some_and(|o| *a == *o);
        let src = &(*ip).src_addr;
        if !(link_local(src) || *src == [0; 16] || is_own(src)) {
            return Err(DropReason::SpoofedIp);
        }
        if (*ip).next_hdr == PROTO_ICMPV6
            && let Some(icmp) = ptr_at::<u8>(pkt, IP_OFF + Ipv6Hdr::LEN)
            && *icmp == NDP_NA
        {
            // An advertisement too short to name its target is no NDP.
            let target: *const [u8; 16] =
                ptr_at(pkt, IP_OFF + Ipv6Hdr::LEN + 8).ok_or(DropReason::Malformed)?;
            if !link_local(&*target) && !is_own(&*target) {
                return Err(DropReason::SpoofedIp);
            }
        }
    }
    Ok(())
}

/// An IPv6 frame of no tracked flow from the container `ep` behind
/// host-side veth `ifindex`, its [`source`] checked: whom it may reach, and
/// whether its destination lies beyond every network of the node (no
/// multicast, link-local, network or gateway address), which only the
/// node's routes reach (`fwd6::out_via_uplink`). Lean on stack (addresses
/// compared where they lie, in the packet and the maps, not copied).
#[inline(always)]
pub fn destination(pkt: &impl Packet, ifindex: u32, ep: &EndpointInfo) -> Result<bool, DropReason> {
    let ip: *const Ipv6Hdr = ptr_at(pkt, IP_OFF).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the whole header is in the packet; the
    // map value pointer stays valid for this program run.
    unsafe {
        let own = ENDPOINTS6.get_ptr(ifindex);
        let own_net = match own {
            Some(o) => NETWORKS6.get(&Key::new(128, *o)),
            None => None,
        };
        let dst = &(*ip).dst_addr;
        if multicast(dst) {
            // `--icc=false`: only what the gateway must hear gets to the
            // bridge's every port.
            let icc = crate::policy::network_of(ep.ip).is_some_and(|n| n.flags & NET_ICC != 0);
            if !icc && !for_the_gateway(pkt, own_net.map(|n| &n.gateway), own)? {
                return Err(DropReason::Icc);
            }
            return Ok(false);
        }
        if link_local(dst) {
            return Ok(false);
        }
        // Beyond its network: only a container's own address gets out
        // (the kernel routes no link-local or unspecified source), and
        // never an `--internal` network's.
        let internal = own_net.is_none_or(|net| net.flags & NET_INTERNAL != 0);
        match NETWORKS6.get(&Key::new(128, *dst)) {
            // `--icc=false`: a neighbour is not reached through the node
            // either (L2 lets only the bridge's MAC be a destination).
            Some(net) if net.id == ep.network_id => {
                if net.flags & NET_ICC == 0 && net.gateway != *dst {
                    return Err(DropReason::Icc);
                }
                Ok(false)
            }
            // Another network's gateway is the node.
            Some(net) if net.gateway == *dst && !internal => Ok(false),
            #[expect(
                clippy::match_same_arms,
                reason = "kept apart: merged, LLVM makes `tc_from_container6` longer"
            )]
            Some(_) if internal => Err(DropReason::Internal),
            Some(_) => Err(DropReason::Isolation),
            None if internal => Err(DropReason::Internal),
            None => Ok(true),
        }
    }
}

/// Whether a multicast `ICMPv6` packet is one a container sends the
/// gateway: a router solicitation, an MLD report, its own advertisement
/// (checked to be its own by then), or a neighbour solicitation for the
/// gateway's address or, detecting duplicates, its own.
///
/// # Safety
///
/// `gateway` and `own` point into map values valid for this program run.
#[inline(always)]
unsafe fn for_the_gateway(
    pkt: &impl Packet,
    gateway: Option<&[u8; 16]>,
    own: Option<*const [u8; 16]>,
) -> Result<bool, DropReason> {
    let ip: *const Ipv6Hdr = ptr_at(pkt, IP_OFF).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the header; the pointers are the caller's.
    unsafe {
        if (*ip).next_hdr != PROTO_ICMPV6 {
            return Ok(false);
        }
        let Some(kind) = ptr_at::<u8>(pkt, IP_OFF + Ipv6Hdr::LEN) else {
            return Ok(false);
        };
        Ok(match *kind {
            NDP_RS | MLD_REPORT | MLD_DONE | MLD2_REPORT | NDP_NA => true,
            NDP_NS => {
                let target: *const [u8; 16] =
                    ptr_at(pkt, IP_OFF + Ipv6Hdr::LEN + 8).ok_or(DropReason::Malformed)?;
                gateway.is_some_and(|g| *target == *g) || own.is_some_and(|o| *target == *o)
            }
            _ => false,
        })
    }
}

#[inline(always)]
fn bogon_of(ip: &Ipv6Hdr) -> Result<(), DropReason> {
    bogon_addrs(&ip.src_addr, &ip.dst_addr)
}

/// The bogons of a packet from outside from `src` to `dst`: loopback
/// either way, or a container prefix as the source.
#[inline(always)]
pub fn bogon_addrs(src: &[u8; 16], dst: &[u8; 16]) -> Result<(), DropReason> {
    if *src == LOOPBACK || *dst == LOOPBACK || network_of(*src).is_some() {
        return Err(DropReason::Bogon);
    }
    Ok(())
}

/// XDP's verdict on an IPv6 frame from outside: its bogons, then
/// nothing unsolicited ([`unsolicited`], a non-masquerading network's
/// addresses left to tc, which looks flows up).
#[inline(always)]
pub fn from_outside(pkt: &impl Packet) -> Result<(), DropReason> {
    let ip = header(pkt)?;
    bogon_of(&ip)?;
    unsolicited(&ip.src_addr, &ip.dst_addr, true)
}

/// From outside, no answer of a tracked flow, from `src` to `dst`: never
/// a container's address, unless `src` is a pod or node of the cluster
/// (on every port, as in Kubernetes' model; the stack takes it, whose
/// conntrack may owe it a translation: the answer to a Service's that
/// kube-proxy made). With `tc_decides` (XDP, which does not look flows
/// up), a non-masquerading network's addresses pass on to tc. The
/// cluster is looked up only for a packet that would be dropped.
#[inline(always)]
pub fn unsolicited(src: &[u8; 16], dst: &[u8; 16], tc_decides: bool) -> Result<(), DropReason> {
    match network_of(*dst) {
        Some(net) if net.gateway == *dst => Ok(()),
        Some(net) if tc_decides && net.flags & NET_MASQUERADE == 0 => Ok(()),
        Some(_) if in_cluster(src) => Ok(()),
        Some(_) => Err(DropReason::Unsolicited),
        None => Ok(()),
    }
}
