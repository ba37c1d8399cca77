//! `tc_from_container6`: `tc_from_container`'s IPv6 half, entered by
//! tail call once the frame's MAC has met the endpoint's rules. A program
//! of its own, so that IPv6's 16-byte tuples have a stack of their own
//! and not what the IPv4 path leaves of 512 bytes.
//!
//! The rules of who may speak ([`v6::from_container`]), then the
//! translations ([`nat6::from_container`]): a tracked flow's packet is
//! translated here, on the veth (a published port's answers, a
//! masqueraded flow's packets after the first, a hairpin), and a
//! container calling a port published on the node's IPv6 addresses is
//! translated (DNAT) to its backend (hairpin). What then leaves by an
//! uplink is sent to its next hop ([`fwd6::out_via_uplink`]); the rest
//! goes to the bridge.

use aya_ebpf::programs::TcContext;
use weir_common::drop::DropReason;

use crate::{fwd6, nat6, policy, v6};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    let ep = policy::endpoint(ctx)?;
    // SAFETY: the skb pointer is the program's context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let beyond = v6::from_container(ctx, ifindex, &ep)?;
    nat6::from_container(ctx, ifindex)?;
    fwd6::out_via_uplink(ctx, beyond)
}
