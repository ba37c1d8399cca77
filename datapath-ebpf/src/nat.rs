//! Rewriting a packet's tuple at a tc hook. The L4 checksum is fixed
//! incrementally by the kernel's helper (which also handles
//! `CHECKSUM_PARTIAL` packets from local stacks and containers), in two
//! calls at most: the addresses, then the ports. The IP header goes
//! through a [`Head`], written once by whoever forwards the packet. A UDP
//! checksum of 0 ("none") stays 0.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use weir_common::{
    ct::CtEntry,
    drop::DropReason,
    publish::{PROTO_ICMP, PROTO_UDP},
};

use crate::{
    frag,
    head::{self, Head, addr_diff, ports_diff},
    parse::{Flow, IP_CSUM_OFF, IP_DST_OFF, IP_SRC_OFF, IcmpError},
};

/// Rewrites `flow`'s packet to leave with `to`'s tuple: the L4 checksum
/// and ports in the packet at once, the addresses in the returned
/// [`Head`], for the caller to finish (forwarding) and write.
#[inline(always)]
pub fn rewrite(ctx: &TcContext, flow: &Flow, to: &CtEntry) -> Result<Head, DropReason> {
    // A first fragment: the datagram's later fragments get its addresses.
    frag::record(flow, to);
    let from = &flow.key;
    let mangled_0 = if from.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    // One diff for the addresses (in the pseudo-header; ICMP has none)
    // and one for the ports, each handed to the kernel in one call.
    let mut addrs = 0;
    if from.saddr != to.nat_saddr {
        addrs = addr_diff(addrs, from.saddr, to.nat_saddr);
    }
    if from.daddr != to.nat_daddr {
        addrs = addr_diff(addrs, from.daddr, to.nat_daddr);
    }
    if addrs != 0 && from.proto != PROTO_ICMP {
        l4_csum(ctx, flow, addrs, u64::from(BPF_F_PSEUDO_HDR) | mangled_0)?;
    }
    let ports = ports_diff((from.sport, from.dport), (to.nat_sport, to.nat_dport));
    // Ports right after a 20-byte IP header go in the head's one write.
    let ports_in_head = from.proto != PROTO_ICMP && flow.l4_off == head::PORTS_OFF;
    if ports != 0 {
        l4_csum(ctx, flow, ports, mangled_0)?;
        let (sport_off, _) = flow.port_offs();
        if from.proto == PROTO_ICMP {
            // The identifier: the source "port" of a request, the
            // destination "port" of a reply; only one of them changes.
            let id = if from.sport == to.nat_sport {
                to.nat_dport
            } else {
                to.nat_sport
            };
            ctx.store(sport_off, &id, 0)
                .map_err(|_| DropReason::RewriteFailed)?;
        } else if !ports_in_head {
            // TCP and UDP: the two ports side by side.
            let both = [
                to.nat_sport[0],
                to.nat_sport[1],
                to.nat_dport[0],
                to.nat_dport[1],
            ];
            ctx.store(sport_off, &both, 0)
                .map_err(|_| DropReason::RewriteFailed)?;
        }
    }
    // Read after the helpers, which may have moved the packet's data.
    let mut head = Head::read(ctx)?;
    if ports != 0 && ports_in_head {
        head.set_ports(to.nat_sport, to.nat_dport);
    }
    head.set_addr(IP_SRC_OFF, to.nat_saddr);
    head.set_addr(IP_DST_OFF, to.nat_daddr);
    Ok(head)
}

/// Adds `diff` to the L4 checksum (`bpf_l4_csum_replace` in diff mode:
/// size 0, from 0).
#[inline(always)]
fn l4_csum(ctx: &TcContext, flow: &Flow, diff: u32, flags: u64) -> Result<(), DropReason> {
    ctx.l4_csum_replace(flow.csum_off(), 0, u64::from(diff), flags)
        .map_err(|_| DropReason::RewriteFailed)
}

/// Translates an ICMP error about a tracked flow: the quoted packet gets
/// the tuple it had before translation (the reverse of `entry`'s rewrite),
/// and the outer address that named the translated end names the real
/// one. Returns the outer (source, destination) as they now are.
///
/// Checksums: a quoted address change is balanced by its quoted IP
/// checksum, so the ICMP checksum only follows the quoted ports; the outer
/// addresses are not in the ICMP checksum. The quoted L4 checksum is left
/// as it was (receivers do not check it).
#[inline(always)]
#[expect(
    clippy::similar_names,
    reason = "sources and destinations, named as the IP header's fields (`saddr`, `daddr`)"
)]
pub fn rewrite_icmp_error(
    ctx: &TcContext,
    err: &IcmpError,
    entry: &CtEntry,
) -> Result<([u8; 4], [u8; 4]), DropReason> {
    let i = &err.inner;
    let (new_saddr, new_daddr) = (entry.nat_daddr, entry.nat_saddr);
    let inner_csum = err.inner_ip_off + 10;
    let icmp_csum = err.icmp_off + 2;
    for (off, old, new) in [
        (err.inner_ip_off + 12, i.saddr, new_saddr),
        (err.inner_ip_off + 16, i.daddr, new_daddr),
    ] {
        if old != new {
            let (o, n) = (
                u64::from(u32::from_ne_bytes(old)),
                u64::from(u32::from_ne_bytes(new)),
            );
            ctx.l3_csum_replace(inner_csum, o, n, 4)
                .map_err(|_| DropReason::RewriteFailed)?;
            ctx.store(off, &new, 0)
                .map_err(|_| DropReason::RewriteFailed)?;
        }
    }
    // The quoted ports: for an echo request only the identifier.
    let ports = if i.proto == PROTO_ICMP {
        [
            (err.inner_l4_off + 4, i.sport, entry.nat_dport),
            (0, [0; 2], [0; 2]),
        ]
    } else {
        [
            (err.inner_l4_off, i.sport, entry.nat_dport),
            (err.inner_l4_off + 2, i.dport, entry.nat_sport),
        ]
    };
    for (off, old, new) in ports {
        if old != new {
            ctx.l4_csum_replace(
                icmp_csum,
                u64::from(u16::from_ne_bytes(old)),
                u64::from(u16::from_ne_bytes(new)),
                2,
            )
            .map_err(|_| DropReason::RewriteFailed)?;
            ctx.store(off, &new, 0)
                .map_err(|_| DropReason::RewriteFailed)?;
        }
    }
    let mut outer = (err.outer_saddr, err.outer_daddr);
    if err.outer_daddr == i.saddr && new_saddr != i.saddr {
        outer_addr(ctx, IP_DST_OFF, i.saddr, new_saddr)?;
        outer.1 = new_saddr;
    }
    if err.outer_saddr == i.daddr && new_daddr != i.daddr {
        outer_addr(ctx, IP_SRC_OFF, i.daddr, new_daddr)?;
        outer.0 = new_daddr;
    }
    Ok(outer)
}

#[inline(always)]
fn outer_addr(ctx: &TcContext, off: usize, old: [u8; 4], new: [u8; 4]) -> Result<(), DropReason> {
    ctx.l3_csum_replace(
        IP_CSUM_OFF,
        u64::from(u32::from_ne_bytes(old)),
        u64::from(u32::from_ne_bytes(new)),
        4,
    )
    .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(off, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)
}
