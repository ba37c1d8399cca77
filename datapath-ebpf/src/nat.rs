//! Rewriting a packet's tuple at a tc hook, with the IP and L4 checksums
//! fixed incrementally by the kernel's helpers (they also handle
//! `CHECKSUM_PARTIAL` packets from local stacks and containers). A UDP
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

use crate::parse::{Flow, IP_CSUM_OFF, IP_DST_OFF, IP_SRC_OFF, IP_TTL_OFF, IcmpError};

/// Rewrites `flow`'s packet to leave with `to`'s tuple.
#[inline(always)]
pub fn rewrite(ctx: &TcContext, flow: &Flow, to: &CtEntry) -> Result<(), DropReason> {
    let from = &flow.key;
    let l4_flags = if from.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    if from.saddr != to.nat_saddr {
        addr(ctx, flow, IP_SRC_OFF, from.saddr, to.nat_saddr, l4_flags)?;
    }
    if from.daddr != to.nat_daddr {
        addr(ctx, flow, IP_DST_OFF, from.daddr, to.nat_daddr, l4_flags)?;
    }
    let (sport_off, dport_off) = flow.port_offs();
    if from.sport != to.nat_sport {
        port(ctx, flow, sport_off, from.sport, to.nat_sport, l4_flags)?;
    }
    if from.dport != to.nat_dport {
        port(ctx, flow, dport_off, from.dport, to.nat_dport, l4_flags)?;
    }
    Ok(())
}

#[inline(always)]
fn addr(
    ctx: &TcContext,
    flow: &Flow,
    off: usize,
    old: [u8; 4],
    new: [u8; 4],
    l4_flags: u64,
) -> Result<(), DropReason> {
    let (o, n) = (
        u64::from(u32::from_ne_bytes(old)),
        u64::from(u32::from_ne_bytes(new)),
    );
    // ICMP's checksum has no pseudo-header: addresses are not in it.
    if flow.key.proto != PROTO_ICMP {
        ctx.l4_csum_replace(
            flow.csum_off(),
            o,
            n,
            u64::from(BPF_F_PSEUDO_HDR) | 4 | l4_flags,
        )
        .map_err(|_| DropReason::RewriteFailed)?;
    }
    ctx.l3_csum_replace(IP_CSUM_OFF, o, n, 4)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(off, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)
}

#[inline(always)]
fn port(
    ctx: &TcContext,
    flow: &Flow,
    off: usize,
    old: [u8; 2],
    new: [u8; 2],
    l4_flags: u64,
) -> Result<(), DropReason> {
    let (o, n) = (
        u64::from(u16::from_ne_bytes(old)),
        u64::from(u16::from_ne_bytes(new)),
    );
    ctx.l4_csum_replace(flow.csum_off(), o, n, 2 | l4_flags)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(off, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)
}

/// Decrements the TTL of a packet the datapath forwards itself. `false`
/// when the TTL is spent: the stack must have it, to answer with ICMP.
#[inline(always)]
pub fn decrement_ttl(ctx: &TcContext) -> Result<bool, DropReason> {
    let word: [u8; 2] = ctx.load(IP_TTL_OFF).map_err(|_| DropReason::Malformed)?;
    if word[0] <= 1 {
        return Ok(false);
    }
    let new = [word[0] - 1, word[1]];
    ctx.l3_csum_replace(
        IP_CSUM_OFF,
        u64::from(u16::from_ne_bytes(word)),
        u64::from(u16::from_ne_bytes(new)),
        2,
    )
    .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(IP_TTL_OFF, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    Ok(true)
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
