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
//!   ip6tables rules there, marked `MARK_VIA_STACK` so that the uplink
//!   tracks the flow for the stack's return (`CT_STACK`).
//!
//! The hop limit is lowered as forwarding would (no checksum covers it);
//! a packet whose hop limit is spent goes to the stack, which answers it.
//! The header is read in place and the frame's changed bytes (MACs, hop
//! limit) written in one `bpf_skb_store_bytes`: a helper call is among
//! the dearest things a program does on a packet (see `head`).

use core::mem;

use aya_ebpf::{
    bindings::{bpf_redir_neigh, bpf_redir_neigh__bindgen_ty_1},
    helpers::{bpf_redirect, bpf_redirect_peer},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use network_types::ip::Ipv6Hdr;
use weir_common::{drop::DropReason, network::CLUSTER_SERVICES};

use crate::{
    fwd::{self, BPF_FIB_LKUP_RET_SUCCESS, Fib, via_neighbour, zeroed_fib},
    maps::{CLUSTER6, EP_BY_IP6, UPLINKS, UPLINKS6},
    parse::{IP_OFF, ptr_at},
    verdict::TC_PASS,
};

const AF_INET6: u8 = 10;
/// The bytes a forwarded frame changes, written back in one store: the
/// MACs, the ethertype and the IPv6 header's first 8 bytes, the hop limit
/// last.
const HEAD: usize = IP_OFF + 8;
const HOP: usize = HEAD - 1;

/// A translated packet from outside, now addressed to a container of this
/// node: hop limit - 1, the frame addressed to the container's MAC from
/// the MAC it was sent to, then `bpf_redirect_peer`. Else (no container
/// here, the hop limit spent, a header not in the linear data) `TC_PASS`.
/// The header is read in place and written with one helper call.
#[inline(never)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`bpf_redirect_peer` returns an i64 by its ABI, here a tc verdict"
)]
pub fn to_container(ctx: &TcContext) -> Result<i32, DropReason> {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, IP_OFF) else {
        return Ok(TC_PASS);
    };
    // SAFETY: `ptr_at` checked the header is in the packet.
    let daddr = unsafe { (*ip).dst_addr };
    let Some(ep) = EP_BY_IP6.get_ptr(daddr) else {
        return Ok(TC_PASS);
    };
    // SAFETY: a value pointer from a map lookup, read at once.
    let ep = unsafe { *ep };
    let Some(mut head) = head(ctx) else {
        return Ok(TC_PASS);
    };
    let was = [head[0], head[1], head[2], head[3], head[4], head[5]];
    if !forwarded(ctx, &mut head, ep.mac, was)? {
        return Ok(TC_PASS);
    }
    // SAFETY: a helper taking plain values.
    Ok(unsafe { bpf_redirect_peer(ep.ifindex, 0) } as i32)
}

/// A container's packet that its veth's rules let go, untranslated or
/// translated there: sent to its next hop when the FIB routes it out of an
/// uplink. `beyond`: the rules found its destination beyond every network
/// of the node (not multicast, link-local, a network or a gateway); else,
/// and for the cluster, no route, a route that is no uplink's, a spent hop
/// limit, `TC_PASS`, as before.
#[inline(never)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`bpf_redirect` returns an i64 by its ABI, here a tc verdict"
)]
pub fn out_via_uplink(ctx: &TcContext, beyond: bool) -> Result<i32, DropReason> {
    if !beyond {
        return Ok(TC_PASS);
    }
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, IP_OFF) else {
        return Ok(TC_PASS);
    };
    // SAFETY: `ptr_at` checked the header is in the packet.
    let (src, dst, next) = unsafe { ((*ip).src_addr, (*ip).dst_addr, (*ip).next_hdr) };
    if let Some(flags) = CLUSTER6.get(&Key::new(128, dst)) {
        if flags & CLUSTER_SERVICES != 0 {
            fwd::mark_via_stack(ctx);
        }
        return Ok(TC_PASS);
    }
    let mut fib = mem::MaybeUninit::<Fib>::uninit();
    let p = zeroed_fib(&mut fib);
    p.family = AF_INET6;
    p.l4_protocol = next;
    // SAFETY: 16 bytes each, as the lookup's words take them (network order).
    unsafe {
        p.__bindgen_anon_3.ipv6_src = mem::transmute::<[u8; 16], [u32; 4]>(src);
        p.__bindgen_anon_4.ipv6_dst = mem::transmute::<[u8; 16], [u32; 4]>(dst);
    }
    let rc = fwd::lookup(ctx, p);
    if !fwd::routed(rc)
        || (UPLINKS6.get_ptr(p.ifindex).is_none() && UPLINKS.get_ptr(p.ifindex).is_none())
    {
        return Ok(TC_PASS);
    }
    // The packet pointers do not outlive the lookup: read the head again.
    let Some(mut head) = head(ctx) else {
        return Ok(TC_PASS);
    };
    let known = rc == BPF_FIB_LKUP_RET_SUCCESS;
    // Unknown, the neighbour layer addresses the frame: the MACs stay.
    let (dmac, smac) = if known {
        (p.dmac, p.smac)
    } else {
        (
            [head[0], head[1], head[2], head[3], head[4], head[5]],
            [head[6], head[7], head[8], head[9], head[10], head[11]],
        )
    };
    if !forwarded(ctx, &mut head, dmac, smac)? {
        return Ok(TC_PASS);
    }
    if known {
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

/// The frame's first [`HEAD`] bytes, read in place (`None`: not in the
/// linear data).
#[inline(always)]
fn head(ctx: &TcContext) -> Option<[u8; HEAD]> {
    let p = ptr_at::<[u8; HEAD]>(ctx, 0)?;
    // SAFETY: `ptr_at` checked the bytes are in the packet.
    Some(unsafe { *p })
}

/// Readies `head` to be forwarded, as forwarding would: the hop limit
/// lowered by one, the MACs `dst` and `src`, written back in one store.
/// `false` (nothing written) when the hop limit is spent: the stack
/// answers that packet.
#[inline(always)]
fn forwarded(
    ctx: &TcContext,
    head: &mut [u8; HEAD],
    dst: [u8; 6],
    src: [u8; 6],
) -> Result<bool, DropReason> {
    if head[HOP] <= 1 {
        return Ok(false);
    }
    head[HOP] -= 1;
    head[..6].copy_from_slice(&dst);
    head[6..12].copy_from_slice(&src);
    ctx.store(0, head, 0)
        .map_err(|_| DropReason::RewriteFailed)
        .map(|()| true)
}
