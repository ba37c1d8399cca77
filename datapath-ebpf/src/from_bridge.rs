//! `tc_from_bridge`: tcx ingress of a bridge an engine made (Docker's).
//!
//! The engine wires a container (its veth, a port of the bridge) and
//! starts it before weir hears of it and enters its endpoint. Until then
//! the container's veth has no program, and what it sends to the node
//! (out through the uplink, to another network's bridge) comes up through
//! the bridge device: here. An IPv4 packet whose source is no endpoint of
//! this node stops here (`pending-endpoint`), so nothing leaves
//! unmasqueraded and nothing crosses networks in that window. An entered
//! endpoint's packets met `tc_from_container` on its veth already and
//! pass. Other frames (ARP, which the container needs to find its gateway)
//! pass: they are not forwarded beyond the bridge.

use aya_ebpf::programs::TcContext;
use weir_common::{drop::DropReason, stats::Hook};

use crate::{maps::EP_BY_IP4, parse, stats, verdict::TC_PASS};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::FromBridge, ctx.len());
    parse::linearize(ctx);
    let Some(ip) = parse::ipv4(ctx)? else {
        return Ok(TC_PASS);
    };
    // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
    let saddr = unsafe { (*ip).src_addr };
    if EP_BY_IP4.get_ptr(saddr).is_some() {
        Ok(TC_PASS)
    } else {
        Err(DropReason::PendingEndpoint)
    }
}
