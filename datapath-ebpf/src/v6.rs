//! IPv6, as far as it goes today: a dual-stack network's containers reach
//! each other and their gateway over IPv6, and nothing more. IPv6
//! masquerade and routing are not built yet, so the rules keep every
//! container IPv6 address inside its network:
//!
//! - from a container ([`from_container`]): its source is its own address
//!   (`ENDPOINTS6`), a link-local one, or the unspecified one (duplicate
//!   address detection); a neighbour advertisement speaks only for its own
//!   address or a link-local one; the destination is link-local,
//!   multicast, or in its own network (the gateway too); another
//!   network's is `isolation`, anything else `ipv6-beyond-network`.
//! - from outside ([`from_outside`], tc and XDP on an uplink): loopback as
//!   source or destination and a container prefix as source are bogons;
//!   anything to a container address is unsolicited (a gateway address is
//!   the node's).

use aya_ebpf::maps::lpm_trie::Key;
use network_types::ip::Ipv6Hdr;
use weir_common::{drop::DropReason, endpoint::EndpointInfo, network::NetInfo6};

use crate::{
    maps::{ENDPOINTS6, NETWORKS6},
    parse::{IP_OFF, Packet, ptr_at},
};

/// ICMPv6, as IPv6's next header.
const NEXT_ICMPV6: u8 = 58;
/// ICMPv6 neighbour advertisement.
const NDP_NA: u8 = 136;
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

/// An IPv6 frame from the container `ep` behind host-side veth `ifindex`.
#[inline(always)]
pub fn from_container(
    pkt: &impl Packet,
    ifindex: u32,
    ep: &EndpointInfo,
) -> Result<(), DropReason> {
    let ip = header(pkt)?;
    // Plain values, no `Option<[u8; 16]>`: the compiler would compare a
    // `None`'s bytes, which are never written, and the verifier refuses
    // reads of uninitialised stack.
    let (has_own, own) = match ENDPOINTS6.get_ptr(ifindex) {
        // SAFETY: a value pointer from a map lookup, read at once.
        Some(a) => (true, unsafe { *a }),
        None => (false, [0u8; 16]),
    };
    let is_own = |a: &[u8; 16]| has_own && *a == own;
    let src = ip.src_addr;
    if !(link_local(&src) || src == [0; 16] || is_own(&src)) {
        return Err(DropReason::SpoofedIp);
    }
    if ip.next_hdr == NEXT_ICMPV6
        && let Some(icmp) = ptr_at::<u8>(pkt, IP_OFF + Ipv6Hdr::LEN)
        // SAFETY: `ptr_at` checked the byte is in the packet.
        && unsafe { *icmp } == NDP_NA
    {
        // An advertisement too short to name its target is no NDP.
        let na: *const [u8; 24] =
            ptr_at(pkt, IP_OFF + Ipv6Hdr::LEN).ok_or(DropReason::Malformed)?;
        // SAFETY: `ptr_at` checked the bytes are in the packet.
        let na = unsafe { *na };
        {
            let mut target = [0u8; 16];
            target.copy_from_slice(&na[8..24]);
            if !link_local(&target) && !is_own(&target) {
                return Err(DropReason::SpoofedIp);
            }
        }
    }
    let dst = ip.dst_addr;
    if link_local(&dst) || multicast(&dst) {
        return Ok(());
    }
    match network_of(dst) {
        Some(net) if net.id == ep.network_id => Ok(()),
        Some(_) => Err(DropReason::Isolation),
        None => Err(DropReason::Ipv6Beyond),
    }
}

/// An IPv6 frame from outside, on an uplink.
#[inline(always)]
pub fn from_outside(pkt: &impl Packet) -> Result<(), DropReason> {
    let ip = header(pkt)?;
    let (src, dst) = (ip.src_addr, ip.dst_addr);
    if src == LOOPBACK || dst == LOOPBACK || network_of(src).is_some() {
        return Err(DropReason::Bogon);
    }
    match network_of(dst) {
        Some(net) if net.gateway != dst => Err(DropReason::Unsolicited),
        _ => Ok(()),
    }
}
