//! IPv6's fast paths, as [`crate::fwd`]'s are IPv4's, each a BPF call of
//! its own (a frame beside the translation's, not below it):
//!
//! - [`to_container`]: a tracked flow's packet from outside, translated
//!   on the uplink, goes straight into its container's namespace
//!   (`EP_BY_IP6`, `bpf_redirect_peer`), past the node's routing and
//!   bridge.
//! - [`out_via_uplink`]: what a container sends beyond the node, once its
//!   veth's rules let it go, is routed by the kernel's FIB (`AF_INET6`)
//!   and, when that leads out of an uplink, sent to the next hop
//!   (`bpf_redirect` with the MACs the lookup found, else
//!   `bpf_redirect_neigh`); the uplink's egress hook still sees it
//!   (NAT66, a published port's answers). A pod, node or Service of the
//!   cluster is the stack's: a Service's packets meet kube-proxy's
//!   ip6tables rules there, marked [`MARK_VIA_STACK`] so that the uplink
//!   tracks the flow for the stack's return (`CT_STACK`).
//!
//! The hop limit is lowered as forwarding would (no checksum covers it);
//! a packet whose hop limit is spent goes to the stack, which answers it.

use core::mem;

use aya_ebpf::{
    EbpfContext,
    bindings::{bpf_fib_lookup, bpf_redir_neigh, bpf_redir_neigh__bindgen_ty_1},
    helpers::{bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_peer},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use weir_common::{
    drop::DropReason,
    network::{CLUSTER_SERVICES, MARK_VIA_STACK},
};

use crate::{
    fwd::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, Fib, via_neighbour, zeroed_fib},
    maps::{CLUSTER6, EP_BY_IP6, NETWORKS6, UPLINKS, UPLINKS6},
    parse::IP_OFF,
    verdict::TC_PASS,
};

const AF_INET6: u8 = 10;
const NEXT_OFF: usize = IP_OFF + 6;
const HOP_OFF: usize = IP_OFF + 7;
const SRC_OFF: usize = IP_OFF + 8;
const DST_OFF: usize = IP_OFF + 24;

/// A translated packet from outside, now addressed to a container of this
/// node: hop limit - 1, the frame addressed to the container's MAC from
/// the MAC it was sent to, then `bpf_redirect_peer`. Else (no container
/// here, the hop limit spent) `TC_PASS`.
#[inline(never)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`bpf_redirect_peer` returns an i64 by its ABI, here a tc verdict"
)]
pub fn to_container(ctx: &TcContext) -> Result<i32, DropReason> {
    let daddr: [u8; 16] = ctx.load(DST_OFF).map_err(|_| DropReason::Malformed)?;
    let Some(ep) = EP_BY_IP6.get_ptr(daddr) else {
        return Ok(TC_PASS);
    };
    // SAFETY: a value pointer from a map lookup, read at once.
    let ep = unsafe { *ep };
    if !hop(ctx)? {
        return Ok(TC_PASS);
    }
    let was: [u8; 6] = ctx.load(0).map_err(|_| DropReason::Malformed)?;
    macs(ctx, ep.mac, was)?;
    // SAFETY: a helper taking plain values.
    Ok(unsafe { bpf_redirect_peer(ep.ifindex, 0) } as i32)
}

/// A container's packet that its veth's rules let go, untranslated or
/// translated there: sent to its next hop when the FIB routes it out of an
/// uplink; else (multicast, link-local, a local network, the node itself,
/// the cluster, no route, hop limit spent) `TC_PASS`, as before.
#[inline(never)]
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "the helpers take an i32 size and return an i64 by their ABI: \
              the sizes are a struct's bytes, the returns tc verdicts"
)]
pub fn out_via_uplink(ctx: &TcContext) -> Result<i32, DropReason> {
    let dst: [u8; 16] = ctx.load(DST_OFF).map_err(|_| DropReason::Malformed)?;
    let link_local = dst[0] == 0xfe && dst[1] & 0xc0 == 0x80;
    if dst[0] == 0xff || link_local || NETWORKS6.get(&Key::new(128, dst)).is_some() {
        return Ok(TC_PASS);
    }
    if let Some(flags) = CLUSTER6.get(&Key::new(128, dst)) {
        if flags & CLUSTER_SERVICES != 0 {
            // SAFETY: the skb pointer is the program's context.
            let mark = unsafe { (*ctx.skb.skb).mark };
            ctx.set_mark(mark | MARK_VIA_STACK);
        }
        return Ok(TC_PASS);
    }
    let src: [u8; 16] = ctx.load(SRC_OFF).map_err(|_| DropReason::Malformed)?;
    let next: u8 = ctx.load(NEXT_OFF).map_err(|_| DropReason::Malformed)?;
    let mut fib = mem::MaybeUninit::<Fib>::uninit();
    let p = zeroed_fib(&mut fib);
    p.family = AF_INET6;
    p.l4_protocol = next;
    // SAFETY: the skb pointer is the program's context.
    p.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: 16 bytes each, as the lookup's words take them (network order).
    unsafe {
        p.__bindgen_anon_3.ipv6_src = mem::transmute::<[u8; 16], [u32; 4]>(src);
        p.__bindgen_anon_4.ipv6_dst = mem::transmute::<[u8; 16], [u32; 4]>(dst);
    }
    // SAFETY: `p` is a valid, writable lookup of the size we pass.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &raw mut *p,
            mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    let routed = rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH;
    let uplink = UPLINKS6.get_ptr(p.ifindex).is_some() || UPLINKS.get_ptr(p.ifindex).is_some();
    if !routed || !uplink || !hop(ctx)? {
        return Ok(TC_PASS);
    }
    if rc == BPF_FIB_LKUP_RET_SUCCESS {
        // The lookup found the next hop's MAC: straight to the device.
        macs(ctx, p.dmac, p.smac)?;
        // SAFETY: a helper taking plain values.
        return Ok(unsafe { bpf_redirect(p.ifindex, 0) } as i32);
    }
    let nh = bpf_redir_neigh {
        nh_family: u32::from(AF_INET6),
        __bindgen_anon_1: bpf_redir_neigh__bindgen_ty_1 {
            // SAFETY: the lookup wrote the next hop's address here.
            ipv6_nh: unsafe { p.__bindgen_anon_4.ipv6_dst },
        },
    };
    Ok(via_neighbour(p.ifindex, nh))
}

/// Lowers the hop limit by one, as forwarding does; `false` (nothing
/// written) when it is spent: the stack answers that packet.
#[inline(always)]
fn hop(ctx: &TcContext) -> Result<bool, DropReason> {
    let limit: u8 = ctx.load(HOP_OFF).map_err(|_| DropReason::Malformed)?;
    if limit <= 1 {
        return Ok(false);
    }
    ctx.store(HOP_OFF, &(limit - 1), 0)
        .map_err(|_| DropReason::RewriteFailed)
        .map(|()| true)
}

/// The frame's destination and source MACs, in one store.
#[inline(always)]
fn macs(ctx: &TcContext, dst: [u8; 6], src: [u8; 6]) -> Result<(), DropReason> {
    let mut both = [0u8; 12];
    both[..6].copy_from_slice(&dst);
    both[6..].copy_from_slice(&src);
    ctx.store(0, &both, 0)
        .map_err(|_| DropReason::RewriteFailed)
}
