//! The weir datapath. This file holds only the entry points, one per attach
//! point; each names the hook it runs at and hands over to its module.
#![no_std]
#![no_main]
#![expect(
    clippy::inline_always,
    reason = "the BPF verifier: a call chain's frames share 512 bytes of stack, and each \
              BPF-to-BPF call is a frame and a subprogram of its own; helpers are inlined \
              into their program, the few calls are `#[inline(never)]`, placed by hand"
)]

mod ct;
mod dnat;
mod drop;
mod frag;
mod from_bridge;
mod from_container;
mod from_container6;
mod from_uplink;
mod fwd;
mod fwd6;
mod head;
mod maps;
mod nat;
mod nat6;
mod parse;
mod pod_flow;
mod policy;
mod sock;
mod stats;
mod to_uplink;
mod trace;
mod v6;
mod verdict;
mod xdp;

use aya_ebpf::{
    macros::{cgroup_sock_addr, classifier, xdp},
    programs::{SockAddrContext, TcContext, XdpContext},
};
use weir_common::stats::Hook;

/// tcx ingress on the host side of every container veth: every packet a
/// container sends passes here first (anti-spoofing, isolation, icc,
/// internal networks, hairpin, answers of published services).
#[classifier]
pub fn tc_from_container(mut ctx: TcContext) -> i32 {
    trace::tc_in(&mut ctx, Hook::FromContainer);
    let verdict = match from_container::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, Hook::FromContainer, reason),
    };
    trace::tc_out(&mut ctx, verdict)
}

/// `tc_from_container`'s IPv6 half, entered by tail call
/// (`TAIL_CALLS`): a program of its own, so its stack is its own.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn tc_from_container6(ctx: TcContext) -> i32 {
    match from_container6::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, Hook::FromContainer, reason),
    }
}

/// A connection's SYN from a pod to a pod on another node, entered by tail
/// call (`TAIL_CALLS`) from `tc_from_container` once its rules let it go:
/// a program of its own, so its stack is its own.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn tc_pod_flow(ctx: TcContext) -> i32 {
    match pod_flow::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, Hook::FromContainer, reason),
    }
}

/// The record of a packet `weir agent --trace` follows, entered by tail
/// call (`TAIL_CALLS`) as a tc hook lets it go: it returns that hook's
/// verdict.
#[classifier]
pub fn tc_trace(mut ctx: TcContext) -> i32 {
    trace::tail(&mut ctx)
}

/// tcx ingress on each uplink: bogons, published ports (DNAT), answers to
/// masqueraded and routed flows; nothing unsolicited to a container.
#[classifier]
pub fn tc_from_uplink(mut ctx: TcContext) -> i32 {
    trace::tc_in(&mut ctx, Hook::FromUplink);
    let verdict = match from_uplink::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, Hook::FromUplink, reason),
    };
    trace::tc_out(&mut ctx, verdict)
}

/// tcx egress on each uplink: masquerade (SNAT) of container egress.
#[classifier]
pub fn tc_to_uplink(mut ctx: TcContext) -> i32 {
    trace::tc_in(&mut ctx, Hook::ToUplink);
    let verdict = match to_uplink::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, Hook::ToUplink, reason),
    };
    trace::tc_out(&mut ctx, verdict)
}

/// XDP on each uplink (`frags`: multi-buffer frames too): what must never
/// enter is dropped before an skb exists; the rest goes on to tc.
#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn xdp_from_uplink(ctx: XdpContext) -> u32 {
    let frame = parse::XdpFrame::new(&ctx);
    trace::xdp(&frame, || match xdp::handle(&frame) {
        Ok(verdict) => verdict,
        Err(reason) => drop::xdp(&frame, Hook::XdpFromUplink, reason),
    })
}

/// tcx ingress on each bridge an engine made (Docker's): what a container
/// sends before the agent entered its endpoint goes no further than its
/// bridge.
#[classifier]
pub fn tc_from_bridge(mut ctx: TcContext) -> i32 {
    trace::tc_in(&mut ctx, Hook::FromBridge);
    let verdict = match from_bridge::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, Hook::FromBridge, reason),
    };
    trace::tc_out(&mut ctx, verdict)
}

/// cgroup `connect4`: the node's TCP and UDP sockets connecting to a
/// published port.
#[cgroup_sock_addr(connect4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_connect4(ctx: SockAddrContext) -> i32 {
    sock::to_published(&ctx)
}

/// cgroup `sendmsg4`: unconnected UDP sends to a published port.
#[cgroup_sock_addr(sendmsg4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock::to_published(&ctx)
}

/// cgroup `recvmsg4`: UDP answers from a published port's container.
#[cgroup_sock_addr(recvmsg4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    sock::from_published(&ctx)
}

/// cgroup `getpeername4`: the peer of a socket the hooks redirected.
#[cgroup_sock_addr(getpeername4)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_peername4(ctx: SockAddrContext) -> i32 {
    sock::from_published(&ctx)
}

/// cgroup `connect6`: the node's IPv6 sockets connecting to a published
/// port (`[::1]:H`, a v4-mapped node address).
#[cgroup_sock_addr(connect6)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_connect6(ctx: SockAddrContext) -> i32 {
    sock::to_published6(&ctx, true)
}

/// cgroup `sendmsg6`: unconnected UDP sends to a port published over
/// IPv6.
#[cgroup_sock_addr(sendmsg6)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_sendmsg6(ctx: SockAddrContext) -> i32 {
    sock::to_published6(&ctx, false)
}

/// cgroup `recvmsg6`: UDP answers from a published port's container (to
/// a socket `connect6` pointed there).
#[cgroup_sock_addr(recvmsg6)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_recvmsg6(ctx: SockAddrContext) -> i32 {
    sock::from_published6(&ctx)
}

/// cgroup `getpeername6`: the peer of an IPv6 socket the hooks redirected.
#[cgroup_sock_addr(getpeername6)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya's attach macro passes the context it makes by value"
)]
pub fn sock_peername6(ctx: SockAddrContext) -> i32 {
    sock::from_published6(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
