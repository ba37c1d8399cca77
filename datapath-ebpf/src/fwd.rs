//! The fast paths out of tc ingress, past the node's input path, routing
//! and bridge:
//!
//! - [`redirect`]: route with the kernel's FIB and send to the next hop's
//!   device: addressed to the next hop's MAC when the lookup knows it
//!   (`bpf_redirect`), else through the neighbour layer, which resolves it
//!   (`bpf_redirect_neigh`). Translated packets from containers
//!   take it (a reply whose source became a node address would be a
//!   "martian" to the input path), and so does anything a container sends
//!   out through an uplink ([`out_via_uplink`]); the uplink's egress hook
//!   still sees it (masquerade).
//! - [`to_container`]: a packet for a container of this node goes straight
//!   into the container's namespace (`bpf_redirect_peer` to the far end of
//!   its veth).

use core::mem;

use aya_ebpf::helpers::{bpf_redirect, bpf_redirect_peer};
use aya_ebpf::{
    EbpfContext,
    bindings::{bpf_fib_lookup, bpf_redir_neigh},
    helpers::{bpf_fib_lookup as fib_lookup, bpf_redirect_neigh},
    programs::TcContext,
};
use weir_common::{
    ct::{CT_STACK, CtEntry},
    drop::DropReason,
    network::{CLUSTER_SERVICES, MARK_VIA_STACK},
};

use crate::{
    head::Head,
    maps::{EP_BY_IP4, UPLINKS},
    policy,
    verdict::TC_PASS,
};

const AF_INET: u8 = 2;
pub(crate) const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;

/// Redirects a packet that now carries `to`'s tuple (`head` holding its
/// new addresses) to its next hop, or hands it to the stack (`TC_PASS`)
/// when the FIB has no forwarding answer (local destination, no route,
/// TTL spent). Writes `head` either way.
#[inline(always)]
pub fn redirect(ctx: &TcContext, head: Head, to: &CtEntry, proto: u8) -> Result<i32, DropReason> {
    route(ctx, head, to, proto, false)
}

/// A packet that now carries `to`'s tuple (`head` holding it) sent to its
/// next hop when the FIB routes it out of an uplink, else handed to the
/// stack; whatever its destination (the caller decided the stack need not
/// see it: a connection between pods of the cluster).
#[inline(always)]
pub fn via_uplink(ctx: &TcContext, head: Head, to: &CtEntry, proto: u8) -> Result<i32, DropReason> {
    route(ctx, head, to, proto, true)
}

/// A packet a container sends beyond the node, untranslated here: sent
/// to its next hop when the FIB routes it out of an uplink, else handed to
/// the stack (the node itself, another bridge, no route). One to its
/// cluster is the stack's whatever the route: a Service address, which
/// kube-proxy's netfilter rules translate (marked [`MARK_VIA_STACK`] for
/// `tc_to_uplink`), and a pod or node, whose answers come in through the
/// stack (it may owe them a Service's reverse translation): a flow whose
/// packets went past netfilter one way would be `INVALID` to its
/// conntrack the other way, which kube-proxy's `KUBE-FORWARD` drops.
#[inline(always)]
pub fn out_via_uplink(ctx: &TcContext, to: &CtEntry, proto: u8) -> Result<i32, DropReason> {
    let cluster = policy::cluster(to.nat_daddr);
    if cluster != 0 {
        if cluster & CLUSTER_SERVICES != 0 {
            mark_via_stack(ctx);
        }
        return Ok(TC_PASS);
    }
    route(ctx, Head::read(ctx)?, to, proto, true)
}

/// Marks a container's packet to a Service, which the stack's netfilter
/// (kube-proxy's rules) translates: [`MARK_VIA_STACK`], for the uplink's
/// egress ([`stack_flag`]). Both families.
#[inline(always)]
pub(crate) fn mark_via_stack(ctx: &TcContext) {
    // SAFETY: the skb pointer is the program's context.
    let mark = unsafe { (*ctx.skb.skb).mark };
    ctx.set_mark(mark | MARK_VIA_STACK);
}

/// `CT_STACK` for a packet [`mark_via_stack`] marked (its flow's answers
/// owe the stack's conntrack their way back), else 0: the flags a flow
/// the uplink's egress starts tracking takes. Both families.
#[inline(always)]
pub(crate) fn stack_flag(ctx: &TcContext) -> u8 {
    // SAFETY: the skb pointer is the program's context.
    if unsafe { (*ctx.skb.skb).mark } & MARK_VIA_STACK != 0 {
        CT_STACK
    } else {
        0
    }
}

/// Sends a packet whose destination (after any rewrite, in `head`) is
/// `daddr` into that container's namespace, when `daddr` is a container
/// of this node: TTL - 1, the frame addressed to the container's MAC from
/// the MAC it was sent to, then `bpf_redirect_peer`. Else (not a container
/// here, or the TTL spent: the stack answers that) `TC_PASS`. Writes
/// `head` either way.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`bpf_redirect_peer` returns an i64 by its ABI, here a tc verdict"
)]
pub fn to_container(ctx: &TcContext, mut head: Head, daddr: [u8; 4]) -> Result<i32, DropReason> {
    let mut verdict = TC_PASS;
    if let Some(ep) = EP_BY_IP4.get_ptr(daddr) {
        // SAFETY: a value pointer from a map lookup, read at once.
        let ep = unsafe { *ep };
        if head.decrement_ttl() {
            head.set_macs(ep.mac, head.dst_mac());
            // SAFETY: a helper taking plain values.
            verdict = unsafe { bpf_redirect_peer(ep.ifindex, 0) } as i32;
        }
    }
    head.write(ctx)?;
    Ok(verdict)
}

#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`bpf_redirect` returns an i64 by its ABI, here a tc verdict"
)]
fn route(
    ctx: &TcContext,
    mut head: Head,
    to: &CtEntry,
    proto: u8,
    only_uplinks: bool,
) -> Result<i32, DropReason> {
    let mut fib = mem::MaybeUninit::<Fib>::uninit();
    let p = zeroed_fib(&mut fib);
    p.family = AF_INET;
    p.l4_protocol = proto;
    p.sport = u16::from_ne_bytes(to.nat_sport);
    p.dport = u16::from_ne_bytes(to.nat_dport);
    p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(to.nat_saddr);
    p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(to.nat_daddr);
    let rc = lookup(ctx, p);
    let forward = routed(rc)
        && (!only_uplinks || UPLINKS.get_ptr(p.ifindex).is_some())
        && head.decrement_ttl();
    // The lookup found the next hop's MAC: the frame gets it in the head's
    // one write and goes straight to the device, without the neighbour
    // lookup and header copy `bpf_redirect_neigh` would do once more.
    let known = forward && rc == BPF_FIB_LKUP_RET_SUCCESS;
    if known {
        head.set_macs(p.dmac, p.smac);
    }
    head.write(ctx)?;
    if !forward {
        return Ok(TC_PASS);
    }
    if known {
        // SAFETY: a helper taking plain values.
        return Ok(unsafe { bpf_redirect(p.ifindex, 0) } as i32);
    }
    let nh = bpf_redir_neigh {
        nh_family: u32::from(AF_INET),
        // SAFETY: the lookup wrote the next hop's address here.
        __bindgen_anon_1: aya_ebpf::bindings::bpf_redir_neigh__bindgen_ty_1 {
            ipv4_nh: unsafe { p.__bindgen_anon_4.ipv4_dst },
        },
    };
    Ok(via_neighbour(p.ifindex, nh))
}

/// Asks the kernel's FIB about `p` (family, protocol and addresses the
/// caller's; the device the packet came in on set here); the return code.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "the helper takes an i32 size by its ABI: a struct's bytes"
)]
pub(crate) fn lookup(ctx: &TcContext, p: &mut bpf_fib_lookup) -> i64 {
    // SAFETY: the skb pointer is the program's context.
    p.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: `p` is a valid, writable lookup of the size we pass.
    unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &raw mut *p,
            mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    }
}

/// Whether a lookup's return code is a route to forward by: a next hop,
/// its MAC known or not yet.
#[inline(always)]
pub(crate) fn routed(rc: i64) -> bool {
    rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH
}

/// Sends the packet out of `ifindex` through the neighbour layer, which
/// resolves `nh` (the next hop a FIB lookup named, when it had no MAC for
/// it) and addresses the frame itself.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "the helper takes an i32 size and returns an i64 by its ABI: \
              the size is a struct's bytes, the return a tc verdict"
)]
pub(crate) fn via_neighbour(ifindex: u32, mut nh: bpf_redir_neigh) -> i32 {
    // SAFETY: `nh` is a valid next hop of the size we pass.
    let verdict = unsafe {
        bpf_redirect_neigh(
            ifindex,
            &raw mut nh,
            mem::size_of::<bpf_redir_neigh>() as i32,
            0,
        )
    };
    verdict as i32
}

/// A FIB lookup's parameters, aligned for word stores.
#[repr(C, align(8))]
pub(crate) struct Fib(bpf_fib_lookup);

const FIB_WORDS: usize = mem::size_of::<Fib>() / 8;
const _: () = assert!(mem::size_of::<Fib>() == mem::size_of::<bpf_fib_lookup>());

/// All-zero lookup parameters, cleared in place a word at a time:
/// `mem::zeroed` becomes a call to a `memset` that stores one byte per
/// instruction.
#[inline(always)]
pub(crate) fn zeroed_fib(fib: &mut mem::MaybeUninit<Fib>) -> &mut bpf_fib_lookup {
    let words = fib.as_mut_ptr().cast::<u64>();
    for i in 0..FIB_WORDS {
        // SAFETY: `i` words stay inside the 8-aligned `Fib`; volatile so
        // that the stores stay stores and are not folded back into a
        // `memset` call.
        unsafe { words.add(i).write_volatile(0) };
    }
    // SAFETY: every byte was written (zero is a valid `bpf_fib_lookup`).
    unsafe { &mut fib.assume_init_mut().0 }
}
