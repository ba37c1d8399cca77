//! `tc_pod_flow`: a TCP connection between two pods of the cluster, its
//! SYN leaving a pod of this node for a pod on another
//! ([`crate::policy::pod_to_pod`]), entered by tail call from
//! `tc_from_container` once the pod's rules let the SYN go. The flow is
//! tracked untranslated (`KIND_ROUTED`, both directions in `CT4`) and the
//! SYN sent to its next hop when the FIB routes it out of an uplink
//! ([`fwd::via_uplink`], else to the stack); the flow's later packets
//! find their entry on the veth and take the same way, and its answers
//! find theirs on the uplink (`tc_from_uplink`) and go straight into the
//! pod. On the other node `tc_from_uplink` tracks the SYN the same way.
//! Netfilter sees none of the flow, on either node.

use aya_ebpf::programs::TcContext;
use weir_common::drop::DropReason;

use crate::{
    ct::{self, Sides},
    fwd, nat, parse,
    policy::{self, Sender},
    verdict::TC_PASS,
};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    let ep = policy::endpoint(ctx)?;
    let Some(ip) = parse::ipv4(ctx)? else {
        return Ok(TC_PASS);
    };
    let Some(flow) = parse::flow(ctx, ip)? else {
        return Ok(TC_PASS);
    };
    let sender = Sender::of(ep)?;
    let entry = ct::create_routed(&flow, ctx.len(), sender.net.id, Sides::OUT)?;
    let head = nat::rewrite(ctx, &flow, &entry)?;
    fwd::via_uplink(ctx, head, &entry, flow.key.proto)
}
