//! `tc_from_container`: tcx ingress on the host side of a container veth.
//!
//! Translated flows are handled here in both directions: answers of a
//! published service get their original address back (reverse DNAT), and a
//! container reaching a published port through a node address is DNATed
//! to the backend (hairpin). A translated packet is routed and sent on by
//! [`fwd::redirect`]; everything else goes to the bridge as it came.

use aya_ebpf::programs::TcContext;
use weir_common::{
    ct::{CtEntry, KIND_HAIRPIN},
    drop::DropReason,
    publish::PROTO_ICMP,
    stats::Hook,
};

use crate::{ct, dnat, fwd, nat, parse, stats, verdict::TC_PASS};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::FromContainer, ctx.len());
    parse::linearize(ctx);
    let Some(ip) = parse::ipv4(ctx)? else {
        return Ok(TC_PASS);
    };
    let Some(flow) = parse::flow(ctx, ip)? else {
        // An ICMP error a container sends about a published flow leaves
        // with the node's address, like the flow's own answers.
        if let Some(err) = parse::icmp_error(ctx, ip)
            && let Some(entry) = ct::lookup_quoted(&err.reply_key())
        {
            let (saddr, daddr) = nat::rewrite_icmp_error(ctx, &err, &entry)?;
            let to = CtEntry {
                nat_saddr: saddr,
                nat_daddr: daddr,
                ..CtEntry::default()
            };
            return fwd::redirect(ctx, &to, PROTO_ICMP);
        }
        return Ok(TC_PASS);
    };
    let entry = match ct::lookup(&flow, ctx.len(), true) {
        Some(entry) => entry,
        None => {
            let k = &flow.key;
            let Some(target) = dnat::lookup(k.daddr, k.dport, k.proto, false) else {
                return Ok(TC_PASS);
            };
            // A container calling its own published port would see a
            // packet from itself; it gets the node address it called as
            // the source instead (Docker masquerades here).
            let to_itself = target.ip == k.saddr;
            ct::create(&flow, ctx.len(), KIND_HAIRPIN, &target, to_itself)?
        }
    };
    nat::rewrite(ctx, &flow, &entry)?;
    fwd::redirect(ctx, &entry, flow.key.proto)
}
