//! IPv6 masquerade (NAT66) in the programs, `CT6`: a dual-stack network's
//! container's TCP, UDP or ICMPv6 echo flow leaving by an uplink that has
//! an IPv6 masquerade address (`UPLINKS6`) leaves with that address and a
//! port of the masquerade range ([`egress`], `tc_to_uplink`); its answers
//! get the container's address and port back ([`ingress`],
//! `tc_from_uplink`) and go on to the node's stack, which routes them to
//! the bridge. Both directions are tracked as `CT4`'s masqueraded flows
//! are, the port claimed by inserting the answers' entry first.
//!
//! The checksums: TCP's, UDP's and ICMPv6's all cover the pseudo-header,
//! so an address change is a 16-byte `bpf_csum_diff` handed to
//! `bpf_l4_csum_replace` as a pseudo-header change; IPv6 has no header
//! checksum. Extension headers are not parsed: such a packet is left as it
//! is, and the agent fills `UPLINKS6` only where that is understood.
//!
//! A network without masquerade (`--masquerade=false`, `--mode routed`)
//! has its flows tracked the same way untranslated (`KIND_ROUTED`), for
//! their answers, and nothing unsolicited, to get in. A masquerading
//! network's packet on an uplink with no `UPLINKS6` address (no global
//! IPv6 address) is dropped (`no-uplink-address`), never sent with its
//! private source.

#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "keys and entries go to the map helpers by reference: a copy would take stack a call chain shares"
)]

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, BPF_NOEXIST},
    helpers::{bpf_csum_diff, bpf_ktime_get_coarse_ns},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use network_types::ip::Ipv6Hdr;
use weir_common::{
    ct::{CT_INNER, DIR_ORIGINAL, DIR_REPLY, KIND_ROUTED, KIND_SNAT, TCP_ACK, TCP_SYN},
    ct6::{CtEntry6, CtKey6},
    drop::DropReason,
    network::NET_MASQUERADE,
    publish::{PROTO_TCP, PROTO_UDP},
};

use crate::{
    ct::{SNAT_TRIES, snat_port},
    maps::{CONFIG, CT6, NETWORKS6, SCRATCH6, UPLINKS6},
    parse::{IP_OFF, ptr_at},
    v6,
    verdict::TC_PASS,
};

const PROTO_ICMPV6: u8 = 58;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const L4_OFF: usize = IP_OFF + Ipv6Hdr::LEN;
const SRC_OFF: usize = IP_OFF + 8;
const DST_OFF: usize = IP_OFF + 24;

/// An IPv6 TCP, UDP or ICMPv6 echo packet without extension headers:
/// laid out as `Scratch6`'s first fields, which hold `egress`'s.
#[derive(Default)]
#[repr(C)]
struct Flow6 {
    key: CtKey6,
    tcp_flags: u8,
}

impl Flow6 {
    fn csum_off(&self) -> usize {
        L4_OFF
            + match self.key.proto {
                PROTO_TCP => 16,
                PROTO_UDP => 6,
                _ => 2,
            }
    }

    fn is_tcp_open(&self) -> bool {
        self.key.proto == PROTO_TCP && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }
}

/// Reads the packet's flow into `out` (in place: every copy of a 16-byte
/// tuple costs stack these calls share with the program); `false` for
/// other packets.
#[inline(always)]
fn flow(ctx: &TcContext, out: &mut Flow6) -> Result<bool, DropReason> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, IP_OFF).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the header is in the packet.
    let next = unsafe { (*ip).next_hdr };
    let (ports, tcp_flags) = match next {
        PROTO_TCP => {
            let t: *const [u8; 14] = ptr_at(ctx, L4_OFF).ok_or(DropReason::Malformed)?;
            // SAFETY: `ptr_at` checked the bytes.
            let t = unsafe { *t };
            ([t[0], t[1], t[2], t[3]], t[13])
        }
        PROTO_UDP => {
            let u: *const [u8; 4] = ptr_at(ctx, L4_OFF).ok_or(DropReason::Malformed)?;
            // SAFETY: `ptr_at` checked the bytes.
            (unsafe { *u }, 0)
        }
        PROTO_ICMPV6 => {
            let i: *const [u8; 8] = ptr_at(ctx, L4_OFF).ok_or(DropReason::Malformed)?;
            // SAFETY: `ptr_at` checked the bytes.
            let i = unsafe { *i };
            match i[0] {
                ICMPV6_ECHO_REQUEST => ([i[4], i[5], 0, 0], 0),
                ICMPV6_ECHO_REPLY => ([0, 0, i[4], i[5]], 0),
                _ => return Ok(false),
            }
        }
        _ => return Ok(false),
    };
    // SAFETY: as above.
    unsafe {
        out.key.saddr = (*ip).src_addr;
        out.key.daddr = (*ip).dst_addr;
    }
    out.key.sport = [ports[0], ports[1]];
    out.key.dport = [ports[2], ports[3]];
    out.key.proto = next;
    out.tcp_flags = tcp_flags;
    Ok(true)
}

/// A known flow's entry, its counters brought up to date in place (a
/// pointer, not a copy: the stack frames of these calls are counted
/// together with the program's).
#[inline(always)]
fn lookup(flow: &Flow6, len: u32, from_outside: bool) -> Result<Option<*mut CtEntry6>, DropReason> {
    let Some(e) = CT6.get_ptr_mut(&flow.key) else {
        return Ok(None);
    };
    // SAFETY: a pointer into a map value, valid for this program run.
    unsafe {
        if from_outside && (*e).flags & CT_INNER != 0 {
            return Err(DropReason::Bogon);
        }
        (*e).last_seen_ns = bpf_ktime_get_coarse_ns();
        (*e).tcp_flags |= flow.tcp_flags;
        (*e).packets += 1;
        (*e).bytes += u64::from(len);
    }
    Ok(Some(e))
}

/// Starts tracking the flow `egress` found new (its tuple, address,
/// network, range and kind in `SCRATCH6`). Masquerade: a port of the
/// range (the container's own when it lies there and is free), claimed
/// by inserting the answers' entry with `BPF_NOEXIST`. Routed: the
/// tuple as it is (a stale entry on it is replaced, as `CT4`'s routed
/// flows do). Its entries are built in the slot too, off the stack; the
/// flow's own packet is counted when `egress` finds the entry.
#[inline(never)]
pub fn create() -> Result<(), DropReason> {
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: a per-CPU array slot of ours for this program run.
    let (flow, nat_ip, network_id, ports, kind) = unsafe {
        (
            &*(&raw const (*s).flow).cast::<Flow6>(),
            &(*s).nat_ip,
            (*s).network_id,
            (*s).ports,
            (*s).kind,
        )
    };
    let claim = if kind == KIND_ROUTED {
        0
    } else {
        u64::from(BPF_NOEXIST)
    };
    let (min, max) = ((ports >> 16) as u16, ports as u16);
    if min == 0 || max < min {
        return Err(DropReason::SnatExhausted);
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let k = &flow.key;
    // SAFETY: a per-CPU array slot of ours for this program run; every
    // field is written before the entries are inserted.
    unsafe {
        // The answers leave as the reverse of the tuple the flow came
        // with, whichever port it gets.
        let r = &raw mut (*s).reply;
        (*r).nat_saddr = k.daddr;
        (*r).nat_daddr = k.saddr;
        (*r).nat_sport = k.dport;
        (*r).nat_dport = k.sport;
        (*r).dir = DIR_REPLY;
        (*r).kind = kind;
        (*r).tcp_flags = 0;
        (*r).flags = 0;
        (*r).network_id = network_id;
        (*r).pad = 0;
        (*r).created_ns = now;
        (*r).last_seen_ns = now;
        (*r).packets = 0;
        (*r).bytes = 0;
        let o = &raw mut (*s).original;
        (*o).nat_saddr = *nat_ip;
        (*o).nat_daddr = k.daddr;
        (*o).nat_dport = k.dport;
        (*o).dir = DIR_ORIGINAL;
        (*o).kind = kind;
        (*o).tcp_flags = flow.tcp_flags;
        (*o).flags = CT_INNER;
        (*o).network_id = network_id;
        (*o).pad = 0;
        (*o).created_ns = now;
        (*o).last_seen_ns = now;
        (*o).packets = 0;
        (*o).bytes = 0;
        let rk = &raw mut (*s).reply_key;
        (*rk).saddr = k.daddr;
        (*rk).daddr = *nat_ip;
        (*rk).sport = k.dport;
        (*rk).proto = k.proto;
        (*rk).pad = [0; 3];
    }
    for i in 0..SNAT_TRIES {
        let port = snat_port(i, k.sport, min, max);
        // SAFETY: as above; the map helpers read the slot's bytes.
        unsafe {
            (*s).reply_key.dport = port.to_be_bytes();
            if CT6.insert(&(*s).reply_key, &(*s).reply, claim).is_ok() {
                (*s).original.nat_sport = port.to_be_bytes();
                return CT6
                    .insert(k, &(*s).original, 0)
                    .map_err(|_| DropReason::CtInsertFailed);
            }
        }
    }
    Err(DropReason::SnatExhausted)
}

/// Rewrites `flow`'s packet to leave with `to`'s tuple (a call of its
/// own, so that no frame of the chain holds it and the lookup at once).
#[inline(never)]
fn rewrite(ctx: &TcContext, flow: &Flow6, to: &CtEntry6) -> Result<(), DropReason> {
    let k = &flow.key;
    let csum = flow.csum_off();
    let mangled_0 = if k.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    if k.saddr != to.nat_saddr {
        address(ctx, csum, mangled_0, SRC_OFF, &k.saddr, &to.nat_saddr)?;
    }
    if k.daddr != to.nat_daddr {
        address(ctx, csum, mangled_0, DST_OFF, &k.daddr, &to.nat_daddr)?;
    }
    // The ports, or an echo's identifier (one of the two "ports").
    let (old, new, off) = if k.proto == PROTO_ICMPV6 {
        if k.sport != to.nat_sport {
            (k.sport, to.nat_sport, L4_OFF + 4)
        } else {
            (k.dport, to.nat_dport, L4_OFF + 4)
        }
    } else if k.sport != to.nat_sport {
        (k.sport, to.nat_sport, L4_OFF)
    } else {
        (k.dport, to.nat_dport, L4_OFF + 2)
    };
    if old != new {
        ctx.l4_csum_replace(
            csum,
            u64::from(u16::from_ne_bytes(old)),
            u64::from(u16::from_ne_bytes(new)),
            2 | mangled_0,
        )
        .map_err(|_| DropReason::RewriteFailed)?;
        ctx.store(off, &new, 0)
            .map_err(|_| DropReason::RewriteFailed)?;
    }
    Ok(())
}

/// One address of the packet changed from `old` to `new`: the L4
/// checksum by the pseudo-header's difference, then the bytes.
#[inline(always)]
fn address(
    ctx: &TcContext,
    csum: usize,
    mangled_0: u64,
    off: usize,
    old: &[u8; 16],
    new: &[u8; 16],
) -> Result<(), DropReason> {
    // SAFETY: two 16-byte buffers, the sizes given; the helper only reads.
    let diff = unsafe {
        bpf_csum_diff(
            old.as_ptr().cast_mut().cast(),
            16,
            new.as_ptr().cast_mut().cast(),
            16,
            0,
        )
    };
    if diff < 0 {
        return Err(DropReason::RewriteFailed);
    }
    ctx.l4_csum_replace(
        csum,
        0,
        diff as u64,
        u64::from(BPF_F_PSEUDO_HDR) | mangled_0,
    )
    .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(off, new, 0)
        .map_err(|_| DropReason::RewriteFailed)
}

/// `egress`'s answer: the flow is new, `create` it (then call again).
pub const EGRESS_NEW: u32 = u32::MAX;

/// `tc_to_uplink`, IPv6: a masquerading network's container's packet
/// leaves with the uplink's IPv6 masquerade address. [`egress`] and
/// [`create`] are calls of their own, one after the other, never one
/// inside the other: a call chain's stack frames share 512 bytes with the
/// program's, which its IPv4 path fills most of.
#[inline(always)]
pub fn to_uplink(ctx: &TcContext) -> Result<i32, DropReason> {
    if egress(ctx)? == EGRESS_NEW {
        create()?;
        // Found now: translated and counted like any packet of the flow.
        egress(ctx)?;
    }
    Ok(TC_PASS)
}

/// A tracked flow's packet is translated; a new one of a masquerading
/// network leaves its masquerade in `SCRATCH6` and returns
/// [`EGRESS_NEW`]; anything else passes (0). Its flow is read into the
/// slot, not the stack.
#[inline(never)]
fn egress(ctx: &TcContext) -> Result<u32, DropReason> {
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: a per-CPU array slot of ours for this program run, the
    // flow's part of it laid out as a `Flow6`.
    let flow = unsafe { &mut *(&raw mut (*s).flow).cast::<Flow6>() };
    if !self::flow(ctx, flow)? {
        return Ok(0);
    }
    let k = &flow.key;
    let Some(net) = NETWORKS6.get(&Key::new(128, k.saddr)) else {
        return Ok(0);
    };
    if let Some(entry) = lookup(flow, ctx.len(), false)? {
        // SAFETY: a pointer into a map value, valid for this program run.
        rewrite(ctx, flow, unsafe { &*entry })?;
        return Ok(0);
    }
    if k.daddr[0] == 0xff || NETWORKS6.get(&Key::new(128, k.daddr)).is_some() {
        return Ok(0);
    }
    if net.flags & NET_MASQUERADE == 0 {
        // Leaves with its own tuple, tracked.
        let port = u32::from(u16::from_be_bytes(k.sport));
        // SAFETY: the slot as above.
        unsafe {
            (*s).nat_ip = k.saddr;
            (*s).network_id = net.id;
            (*s).ports = port << 16 | port;
            (*s).kind = KIND_ROUTED;
        }
        return Ok(EGRESS_NEW);
    }
    // SAFETY: the skb pointer is the program's context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let nat_ip = UPLINKS6
        .get_ptr(ifindex)
        .ok_or(DropReason::NoUplinkAddress)?;
    let config = CONFIG.get(0).ok_or(DropReason::NoUplinkAddress)?;
    // SAFETY: the slot as above; `nat_ip` a map value pointer.
    unsafe {
        (*s).nat_ip = *nat_ip;
        (*s).network_id = net.id;
        (*s).ports = u32::from(config.snat_port_min) << 16 | u32::from(config.snat_port_max);
        (*s).kind = KIND_SNAT;
    }
    Ok(EGRESS_NEW)
}

/// `tc_from_uplink`, IPv6: the answers of a tracked flow (a masqueraded
/// one's get the container's address and port back) go on to the stack;
/// what is no answer meets [`v6::unsolicited`]. A call of its own:
/// inlined, its tuple and the IPv4 path's would not fit one 512-byte
/// frame.
#[inline(never)]
pub fn ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    let dst = v6::bogon(ctx)?;
    let mut flow = Flow6::default();
    if self::flow(ctx, &mut flow)?
        && !flow.is_tcp_open()
        && let Some(entry) = lookup(&flow, ctx.len(), true)?
    {
        // SAFETY: a pointer into a map value, valid for this program run.
        rewrite(ctx, &flow, unsafe { &*entry })?;
        return Ok(TC_PASS);
    }
    v6::unsolicited(&dst, false)?;
    Ok(TC_PASS)
}
