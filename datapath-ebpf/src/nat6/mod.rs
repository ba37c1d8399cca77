//! IPv6 masquerade (NAT66) in the programs, `CT6`: a dual-stack network's
//! container's TCP, UDP or `ICMPv6` echo flow leaving by an uplink that has
//! an IPv6 masquerade address (`UPLINKS6`) leaves with that address and a
//! port of the masquerade range ([`egress`], `tc_to_uplink`); its answers
//! get the container's address and port back ([`ingress`],
//! `tc_from_uplink`) and go straight into the container
//! (`fwd6::to_container`). Both directions are tracked as `CT4`'s masqueraded flows
//! are, the port claimed by inserting the answers' entry first.
//!
//! The checksums: TCP's, UDP's and `ICMPv6`'s all cover the pseudo-header,
//! so the addresses' change is summed in the program, word by word, and
//! handed to `bpf_l4_csum_replace` as a pseudo-header change, the ports'
//! as another (`rewrite`); IPv6 has no header checksum. Extension headers
//! are not parsed: a masquerading network's container's packet with them
//! cannot be translated and never leaves (`untranslatable`), as no packet
//! masquerade cannot translate does.
//!
//! A port published on every address of the node is published on its
//! IPv6 addresses too (`PUBLISH6`): a client's flow to it is tracked
//! (`KIND_DNAT`) and translated to the container's IPv6 address in
//! `tc_from_uplink` ([`from_uplink`]), the client's address kept; the
//! container's answers find their entry in `tc_to_uplink` ([`egress`])
//! and leave as the node's address and port.
//!
//! A container calling such a port at one of the node's IPv6 addresses
//! (hairpin) is tracked and translated on its veth (`tc_from_container6`,
//! [`from_container`]), its backend's answers there too.
//!
//! A network without masquerade (`--masquerade=false`, `--mode routed`)
//! has its flows tracked the same way untranslated (`KIND_ROUTED`), for
//! their answers, and nothing unsolicited, to get in. A masquerading
//! network's packet on an uplink with no `UPLINKS6` address (no global
//! IPv6 address) is dropped (`no-uplink-address`), never sent with its
//! private source.
//!
//! On a node of a Kubernetes cluster (`CLUSTER6`, as `CLUSTER4` for
//! IPv4), a container's packets to a pod or node of the cluster leave
//! untranslated and untracked ([`egress`], [`untranslated`]), and theirs
//! come in ([`v6::unsolicited`]) to the stack. The fast paths
//! (`fwd6`) leave the cluster to the stack: a container's packets to a
//! Service meet kube-proxy's ip6tables rules, marked `MARK_VIA_STACK` so
//! that a flow `tc_to_uplink` then masquerades is `CT_STACK`, and its
//! answers go back through the stack's conntrack, as IPv4's do.
//!
//! [`icmp`] translates `ICMPv6` errors about tracked flows; [`publish`]
//! tracks the flows to ports published over IPv6 (from outside, and
//! hairpin from containers).

#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "keys and entries go to the map helpers by reference: a copy would take stack a call chain shares"
)]

use core::mem;

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::{bpf_csum_diff, bpf_ktime_get_coarse_ns},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use network_types::ip::Ipv6Hdr;
use weir_common::{
    ct::{CT_INNER, CT_STACK, KIND_ROUTED, KIND_SNAT, is_tcp_open},
    ct6::{CtEntry6, CtKey6, Scratch6},
    drop::DropReason,
    network::{NET_INTERNAL, NET_MASQUERADE},
    publish::{PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
};

use crate::{
    fwd, fwd6,
    head::{ports_diff, word_diff},
    maps::{CONFIG, CT6, NETWORKS6, SCRATCH6, UPLINKS6},
    parse::{IP_OFF, ptr_at},
    stats, to_uplink, v6,
    verdict::TC_PASS,
};

mod icmp;
mod publish;
mod reopen;
mod track;

pub use publish::{TRACKED, UNTRACKED, hairpin_on_veth, on_veth};
pub use track::create;
use track::pair;

const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const L4_OFF: usize = IP_OFF + Ipv6Hdr::LEN;
const SRC_OFF: usize = IP_OFF + 8;
const DST_OFF: usize = IP_OFF + 24;

/// An IPv6 TCP, UDP or `ICMPv6` echo packet without extension headers:
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
/// together with the program's), and a masqueraded flow's network's
/// (`SNAT_STATS`, shared with IPv4).
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
        touch(e, flow, len);
    }
    Ok(Some(e))
}

/// One more packet of `len` bytes on entry `e`, which `flow`'s packet
/// found: its counters, its TCP flags, its clock, and its masquerade's
/// or its publication's.
///
/// # Safety
///
/// `e` points into a `CT6` value, valid for this program run.
#[inline(always)]
unsafe fn touch(e: *mut CtEntry6, flow: &Flow6, len: u32) {
    // SAFETY: the caller's pointer.
    unsafe {
        (*e).last_seen_ns = bpf_ktime_get_coarse_ns();
        if is_tcp_open(flow.key.proto, flow.tcp_flags) {
            reopen::start_over(e, flow.key.proto, flow.tcp_flags);
        } else {
            (*e).tcp_flags |= flow.tcp_flags;
        }
        (*e).packets += 1;
        (*e).bytes += u64::from(len);
        if (*e).kind == KIND_SNAT {
            stats::nat((*e).network_id, to_uplink::traffic(len));
        } else {
            stats::port6(&(*e).publication, (*e).dir, len, false);
        }
    }
}

/// The slot of this program run and the packet's flow read into it (in
/// place: every copy of a 16-byte tuple costs stack these calls share
/// with the program); `None` for a packet that is no TCP, UDP or echo.
/// The flow borrows the per-CPU slot, not `ctx`: it lives as long as the
/// program run, which is as long as anything of a program lives.
#[inline(always)]
fn read_flow(ctx: &TcContext) -> Result<Option<(*mut Scratch6, &'static mut Flow6)>, DropReason> {
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: a per-CPU array slot of ours for this program run, the
    // flow's part of it laid out as a `Flow6`.
    let flow = unsafe { &mut *(&raw mut (*s).flow).cast::<Flow6>() };
    Ok(self::flow(ctx, flow)?.then_some((s, flow)))
}

/// Rewrites `flow`'s packet to leave with `to`'s tuple (a call of its
/// own, so that no frame of the chain holds it and the lookup at once).
/// As IPv4's (`nat::rewrite`): the checksum's differences are summed here,
/// one for the addresses (the pseudo-header's) and one for the ports, each
/// handed to the kernel in one call, which also knows a `CHECKSUM_PARTIAL`
/// packet's field; then the addresses and ports are written in one store.
#[inline(never)]
fn rewrite(ctx: &TcContext, flow: &Flow6, to: &CtEntry6) -> Result<(), DropReason> {
    let k = &flow.key;
    let csum = flow.csum_off();
    let mangled_0 = if k.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    let mut addrs = 0;
    if k.saddr != to.nat_saddr {
        addrs = addr6_diff(addrs, &k.saddr, &to.nat_saddr);
    }
    if k.daddr != to.nat_daddr {
        addrs = addr6_diff(addrs, &k.daddr, &to.nat_daddr);
    }
    if addrs != 0 {
        l4_csum(ctx, csum, addrs, u64::from(BPF_F_PSEUDO_HDR) | mangled_0)?;
    }
    let ports = ports_diff((k.sport, k.dport), (to.nat_sport, to.nat_dport));
    if ports != 0 {
        l4_csum(ctx, csum, ports, mangled_0)?;
    }
    // SAFETY: `CtEntry6` begins with the tuple as the packet holds it
    // (asserted below): the addresses, then the ports.
    let tuple = unsafe { &*core::ptr::from_ref(to).cast::<[u8; TUPLE]>() };
    if k.proto == PROTO_ICMPV6 {
        // The addresses, then the echo's identifier (one of the two
        // "ports"; only one of them changes), after them.
        if addrs != 0 {
            // SAFETY: the addresses are the tuple's first 32 bytes.
            store(ctx, SRC_OFF, unsafe { &*tuple.as_ptr().cast::<[u8; 32]>() })?;
        }
        if ports != 0 {
            let id = if k.sport == to.nat_sport {
                to.nat_dport
            } else {
                to.nat_sport
            };
            store(ctx, L4_OFF + 4, &id)?;
        }
    } else if addrs != 0 || ports != 0 {
        // TCP and UDP: the ports right after the addresses, all in one
        // store, from the entry itself (a copy would take the stack a
        // call chain shares).
        store(ctx, SRC_OFF, tuple)?;
    }
    Ok(())
}

/// The bytes of the packet's addresses and ports, from the source address
/// on, as `CtEntry6` begins with them.
const TUPLE: usize = 36;
const _: () = assert!(
    mem::offset_of!(CtEntry6, nat_saddr) == 0
        && mem::offset_of!(CtEntry6, nat_daddr) == 16
        && mem::offset_of!(CtEntry6, nat_sport) == 32
        && mem::offset_of!(CtEntry6, nat_dport) == TUPLE - 2
        && DST_OFF == SRC_OFF + 16
);

/// `acc` plus the change of an IPv6 address, word by word (RFC 1624).
#[inline(always)]
fn addr6_diff(mut acc: u32, old: &[u8; 16], new: &[u8; 16]) -> u32 {
    for i in 0..8 {
        acc = word_diff(
            acc,
            [old[2 * i], old[2 * i + 1]],
            [new[2 * i], new[2 * i + 1]],
        );
    }
    acc
}

/// The L4 checksum at `csum` changed by `diff` (`flags` as
/// `bpf_l4_csum_replace` takes them).
#[inline(always)]
fn l4_csum(ctx: &TcContext, csum: usize, diff: u32, flags: u64) -> Result<(), DropReason> {
    ctx.l4_csum_replace(csum, 0, u64::from(diff), flags)
        .map_err(|_| DropReason::RewriteFailed)
}

#[inline(always)]
fn store<T>(ctx: &TcContext, off: usize, v: &T) -> Result<(), DropReason> {
    ctx.store(off, v, 0).map_err(|_| DropReason::RewriteFailed)
}

/// 16 bytes of the packet changed from `old` to `new`: the L4 checksum by
/// their difference (`flags`: `BPF_F_PSEUDO_HDR` for an address the
/// pseudo-header holds), then the bytes.
#[inline(always)]
#[expect(
    clippy::cast_sign_loss,
    reason = "`diff` is not negative, checked first"
)]
fn address(
    ctx: &TcContext,
    csum: usize,
    flags: u64,
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
    ctx.l4_csum_replace(csum, 0, diff as u64, flags)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(off, new, 0)
        .map_err(|_| DropReason::RewriteFailed)
}

/// `egress`'s answer: the flow is new, `create` it (then call again).
pub const EGRESS_NEW: u32 = u32::MAX;
/// `egress`'s and `ingress`'s answer: no TCP, UDP or echo packet (an
/// `ICMPv6` error, say).
const NOT_A_FLOW: u32 = u32::MAX - 1;

/// `tc_to_uplink`, IPv6: a masquerading network's container's packet
/// leaves with the uplink's IPv6 masquerade address. [`egress`] and
/// [`create`] are calls of their own, one after the other, never one
/// inside the other: a call chain's stack frames share 512 bytes with the
/// program's, which its IPv4 path fills most of.
#[inline(always)]
pub fn to_uplink(ctx: &TcContext) -> Result<i32, DropReason> {
    match egress(ctx)? {
        EGRESS_NEW => {
            create()?;
            // Found now: translated and counted like any packet of the flow.
            egress(ctx)?;
        }
        NOT_A_FLOW => {
            icmp::error(ctx, false)?;
            untranslated(ctx)?;
        }
        _ => {}
    }
    Ok(TC_PASS)
}

/// After [`icmp::error`]: a packet of a masquerading (or internal)
/// network's container that nothing translated (an `ICMPv6` error about no
/// tracked flow, one with extension headers, a protocol without ports)
/// never leaves the node as itself.
#[inline(never)]
fn untranslated(ctx: &TcContext) -> Result<(), DropReason> {
    // Loaded by the helper, not read through packet pointers: a call of
    // its own would get those as arguments, which the verifier refuses.
    let src: [u8; 16] = ctx.load(SRC_OFF).map_err(|_| DropReason::Malformed)?;
    let dst: [u8; 16] = ctx.load(DST_OFF).map_err(|_| DropReason::Malformed)?;
    let Some(net) = NETWORKS6.get(&Key::new(128, src)) else {
        return Ok(());
    };
    if !beyond(&dst) {
        return Ok(());
    }
    if net.flags & NET_INTERNAL != 0 {
        return Err(DropReason::Internal);
    }
    // To a pod or node of the cluster it leaves as it is, as the flows
    // between them do (an `ICMPv6` error about one, say).
    if v6::in_cluster(&dst) {
        return Ok(());
    }
    if net.flags & NET_MASQUERADE != 0 {
        return Err(DropReason::Untranslatable);
    }
    Ok(())
}

/// Whether a container's packet to `daddr` is one routed beyond the
/// node: not multicast, not to a local network.
#[inline(always)]
fn beyond(daddr: &[u8; 16]) -> bool {
    daddr[0] != 0xff && NETWORKS6.get(&Key::new(128, *daddr)).is_none()
}

/// A tracked flow's packet is translated; a new one of a masquerading
/// network leaves its masquerade in `SCRATCH6` and returns
/// [`EGRESS_NEW`]; anything else passes (0). Its flow is read into the
/// slot, not the stack.
#[inline(never)]
fn egress(ctx: &TcContext) -> Result<u32, DropReason> {
    let Some((s, flow)) = read_flow(ctx)? else {
        return Ok(NOT_A_FLOW);
    };
    let k = &flow.key;
    let Some(net) = NETWORKS6.get(&Key::new(128, k.saddr)) else {
        return Ok(0);
    };
    if let Some(entry) = lookup(flow, ctx.len(), false)? {
        // SAFETY: a pointer into a map value, valid for this program run.
        rewrite(ctx, flow, unsafe { &*entry })?;
        return Ok(0);
    }
    if !beyond(&k.daddr) {
        return Ok(0);
    }
    if net.flags & NET_INTERNAL != 0 {
        // Stopped on its veth already; never out of an uplink either.
        return Err(DropReason::Internal);
    }
    // A pod or node of the cluster is reached by the container's own
    // address (Kubernetes' model): untranslated, untracked.
    if v6::in_cluster(&k.daddr) {
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
            (*s).stack = fwd::stack_flag(ctx);
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
        (*s).stack = fwd::stack_flag(ctx);
    }
    Ok(EGRESS_NEW)
}

/// The bogons ([`v6::bogon_addrs`]) of a packet from outside that no
/// tracked flow knows: a call of its own, off the program's frame. Loaded
/// by the helper, not read through packet pointers, which a call of its
/// own would get as arguments, and the verifier refuses.
#[inline(never)]
fn bogon(ctx: &TcContext) -> Result<(), DropReason> {
    let version: u8 = ctx.load(IP_OFF).map_err(|_| DropReason::Malformed)?;
    if version >> 4 != 6 {
        return Err(DropReason::Malformed);
    }
    let src: [u8; 16] = ctx.load(SRC_OFF).map_err(|_| DropReason::Malformed)?;
    let dst: [u8; 16] = ctx.load(DST_OFF).map_err(|_| DropReason::Malformed)?;
    v6::bogon_addrs(&src, &dst)
}

/// `ingress`'s answers: the packet is dealt with, or it is a flow `CT6`
/// does not know (its tuple in `SCRATCH6`).
const INGRESS_DONE: u32 = 0;
const INGRESS_UNTRACKED: u32 = 1;
/// `ingress`'s answer: translated, and the flow's answers are the stack's
/// to carry on (`CT_STACK`: a Service's, which netfilter translated too).
const INGRESS_VIA_STACK: u32 = 2;

/// `tc_from_uplink`, IPv6: the packets of a tracked flow are translated
/// (a masqueraded one's answers get the container's address and port
/// back; a published port's get the container's) and go straight into
/// the container ([`fwd6::to_container`]), or on to the stack for a flow
/// netfilter translated too (`CT_STACK`); a new flow to a port published
/// over IPv6 is tracked first ([`publish`]); anything else meets
/// [`v6::unsolicited`]. [`ingress`], [`publish`] and the redirect are
/// calls of their own, side by side, each with its own frame below the
/// program's.
#[inline(always)]
pub fn from_uplink(ctx: &TcContext) -> Result<i32, DropReason> {
    let mut done = ingress(ctx)?;
    match done {
        INGRESS_UNTRACKED => {
            bogon(ctx)?;
            if publish::publish()? {
                // Tracked now: translated and counted like any packet of
                // the flow.
                done = ingress(ctx)?;
            }
        }
        NOT_A_FLOW => {
            bogon(ctx)?;
            icmp::error(ctx, true)?;
        }
        _ => {}
    }
    if done == INGRESS_DONE {
        return fwd6::to_container(ctx);
    }
    Ok(TC_PASS)
}

/// The packet's flow looked up in `CT6` (read into `SCRATCH6`, not the
/// stack) and translated if tracked. A tracked flow's packet meets no
/// bogon rule, as IPv4's does not: an entry keyed from a container's side
/// (`CT_INNER`) is the one a bogon could match, and [`lookup`] drops
/// that.
#[inline(never)]
fn ingress(ctx: &TcContext) -> Result<u32, DropReason> {
    let Some((_, flow)) = read_flow(ctx)? else {
        return Ok(NOT_A_FLOW);
    };
    if let Some(entry) = lookup(flow, ctx.len(), true)? {
        // SAFETY: a pointer into a map value, valid for this program run.
        let entry = unsafe { &*entry };
        rewrite(ctx, flow, entry)?;
        if entry.flags & CT_STACK != 0 {
            return Ok(INGRESS_VIA_STACK);
        }
        return Ok(INGRESS_DONE);
    }
    Ok(INGRESS_UNTRACKED)
}
