//! `tc_from_container6`: `tc_from_container`'s IPv6 half, entered by
//! tail call once the frame's MAC has met the endpoint's rules. A program
//! of its own, so that IPv6's 16-byte tuples have a stack of their own
//! and not what the IPv4 path leaves of 512 bytes.
//!
//! The source rules ([`v6::source`]), then a tracked flow's packet is
//! translated here, on the veth (a published port's answers, a
//! masqueraded flow's packets after the first, a hairpin:
//! [`nat6::on_veth`]); any other meets the rules of whom it may reach
//! ([`v6::destination`]), and a container calling a port published on
//! the node's IPv6 addresses is translated (DNAT) to its backend
//! ([`nat6::hairpin_on_veth`]). What then leaves by an
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
    v6::source(ctx, ifindex)?;
    let seen = nat6::on_veth(ctx)?;
    if seen == nat6::TRACKED {
        // Its rules were met by the flow's first packet (or the flow came
        // in from outside, to this container): as IPv4's, a tracked
        // flow's packet meets none of them again. The FIB says whether
        // it leaves by an uplink.
        return fwd6::out_via_uplink(ctx, true);
    }
    let beyond = v6::destination(ctx, ifindex, &ep)?;
    if seen == nat6::UNTRACKED {
        nat6::hairpin_on_veth(ctx, ifindex)?;
    }
    fwd6::out_via_uplink(ctx, beyond)
}
