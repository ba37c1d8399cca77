//! The one path every drop goes through: it counts the packet under its
//! stable reason and returns the hook's drop verdict.

use aya_ebpf::programs::TcContext;
use weir_common::drop::DropReason;

use crate::{maps::DROP_STATS, stats, verdict::TC_DROP};

/// Drops a packet at a tc hook.
#[inline(always)]
pub fn tc(ctx: &TcContext, reason: DropReason) -> i32 {
    stats::add(&DROP_STATS, reason.number(), ctx.len());
    TC_DROP
}
