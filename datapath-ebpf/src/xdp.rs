//! `xdp_from_uplink`: XDP on an uplink, before any socket buffer exists.
//! It drops what must never enter, at the cheapest point: bogons (a
//! loopback address, a local container subnet as source) and anything to a
//! container address that is not an answer to one of its flows (no `CT4`
//! entry), nor, in routed mode, an open port or a ping; counted under the
//! same stable reasons and seen by `weir monitor` like tc's drops.
//! Everything else passes untouched to `tc_from_uplink`, which does all
//! the forwarding (DNAT, conntrack, fragments, the redirect into a
//! container): with XDP off, the verdicts are the same, only later.
//!
//! XDP forwards nothing itself. It did, for a while (a published port's
//! flows translated in the frame and redirected into the container's
//! veth), and lost to tc on every row of the bench: a frame XDP redirects
//! into a veth waits in that veth's queue for its NAPI to build an skb,
//! where tc's `bpf_redirect_peer` hands the skb it already has to the
//! container's stack in the same pass. ARCHITECTURE.md has the figures.

use aya_ebpf::bindings::xdp_action;
use weir_common::{drop::DropReason, stats::Hook};

use crate::{
    maps::CT4,
    parse::{self, XdpFrame},
    policy, stats, v6,
};

#[inline(always)]
pub fn handle(ctx: &XdpFrame) -> Result<u32, DropReason> {
    stats::hook(Hook::XdpFromUplink, ctx.len());
    let Some(ip) = parse::ipv4(ctx)? else {
        if parse::is_ipv6(ctx) {
            v6::from_outside(ctx)?;
        }
        return Ok(xdp_action::XDP_PASS);
    };
    policy::from_outside(ip)?;
    // A later fragment's verdict needs its first's record: tc's.
    if parse::later_fragment(ip).is_some() {
        return Ok(xdp_action::XDP_PASS);
    }
    // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
    let daddr = unsafe { (*ip).dst_addr };
    let container = policy::is_container(daddr);
    let Some(flow) = parse::flow(ctx, ip)? else {
        // An ICMP error passes to tc, which lets it in only when it quotes
        // a tracked flow; anything else to a container is shut.
        if container && !parse::is_icmp(ip) {
            // SAFETY: as above.
            policy::unsolicited(unsafe { (*ip).src_addr }, daddr, None)?;
        }
        return Ok(xdp_action::XDP_PASS);
    };
    // Only the answers of a container's own flows (a `CT4` entry), and in
    // routed mode its open ports and pings, come in to its address. The
    // node's own addresses (published ports among them) are tc's.
    if container && CT4.get_ptr(flow.key).is_none() {
        policy::unsolicited(flow.key.saddr, daddr, Some(&flow))?;
    }
    Ok(xdp_action::XDP_PASS)
}
