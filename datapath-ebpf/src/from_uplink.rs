//! `tc_from_uplink`: tcx ingress on an uplink. Published ports: a packet to
//! a node address on a published port is DNATed to its container, and the
//! flow tracked; the stack then routes it to the container's bridge. The
//! client's address is kept, so the container sees who called.

use aya_ebpf::programs::TcContext;
use weir_common::{
    ct::{KIND_DNAT, KIND_SNAT},
    drop::DropReason,
    stats::Hook,
};

use crate::{ct, dnat, nat, parse, stats, to_uplink, verdict::TC_PASS};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::FromUplink, ctx.len());
    parse::linearize(ctx);
    let Some(ip) = parse::ipv4(ctx)? else {
        return Ok(TC_PASS);
    };
    let Some(flow) = parse::flow(ctx, ip)? else {
        // An ICMP error about a translated flow goes to its container.
        if let Some(err) = parse::icmp_error(ctx, ip)
            && let Some(entry) = ct::lookup_quoted(&err.reply_key())
        {
            nat::rewrite_icmp_error(ctx, &err, &entry)?;
        }
        return Ok(TC_PASS);
    };
    let entry = match ct::lookup(&flow, ctx.len(), true) {
        Some(entry) => {
            if entry.kind == KIND_SNAT {
                stats::nat(entry.network_id, to_uplink::traffic(ctx.len()));
            }
            entry
        }
        None => {
            let k = &flow.key;
            let Some(target) = dnat::lookup(k.daddr, k.dport, k.proto, false) else {
                return Ok(TC_PASS);
            };
            ct::create(&flow, ctx.len(), KIND_DNAT, &target, false)?
        }
    };
    nat::rewrite(ctx, &flow, &entry)?;
    Ok(TC_PASS)
}
