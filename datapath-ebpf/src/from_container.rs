//! `tc_from_container`: tcx ingress on the host side of a container veth.

use aya_ebpf::programs::TcContext;
use weir_common::{drop::DropReason, stats::Hook};

use crate::{parse, stats, verdict::TC_PASS};

/// Counts the packet, checks its headers, and lets the stack forward it.
#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::FromContainer, ctx.len());
    let Some(_ip) = parse::ipv4(ctx)? else {
        return Ok(TC_PASS);
    };
    Ok(TC_PASS)
}
