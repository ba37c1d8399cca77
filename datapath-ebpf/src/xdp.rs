//! `xdp_from_uplink`: XDP on an uplink, before any socket buffer exists.
//! It drops what must never enter, at the cheapest point: bogons (a
//! loopback address, a local container subnet as source) and anything to a
//! container address that is not an answer to one of its flows (no `CT4`
//! entry), nor, in routed mode, an open port or a ping; counted under the
//! same stable reasons and seen by `weir monitor` like tc's drops.
//! Everything else passes untouched to `tc_from_uplink`, which stays the
//! complete path (DNAT, conntrack, fragments): with XDP off, the verdicts
//! are the same, only later.

use aya_ebpf::bindings::xdp_action;
use weir_common::{drop::DropReason, stats::Hook};

use crate::{
    maps::CT4,
    parse::{self, XdpFrame},
    policy, stats, v6,
    xdp_fwd::{self, Forwarded},
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
    // A published port's flow, or the answers of a container's own.
    let tracked = match xdp_fwd::forward(ctx, ip, &flow, container)? {
        Forwarded::Sent(verdict) => return Ok(verdict),
        Forwarded::Tracked => true,
        Forwarded::Untracked => false,
        Forwarded::Unseen => !container || CT4.get_ptr(flow.key).is_some(),
    };
    // Routed mode lets open ports and pings in: tc tracks them. The
    // node's own addresses (and what XDP left) are tc's too.
    if container && !tracked {
        policy::unsolicited(flow.key.saddr, daddr, Some(&flow))?;
    }
    Ok(xdp_action::XDP_PASS)
}
