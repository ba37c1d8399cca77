//! `tc_to_uplink`: tcx egress on an uplink. Masquerade: a packet whose
//! source is a container of a network with masquerade on leaves with the
//! network's `--snat-ip` or the uplink's address, and a port of the
//! configured range; both directions are tracked in `CT4`, and the answers
//! are translated back by `tc_from_uplink`'s conntrack lookup.

use aya_ebpf::{maps::lpm_trie::Key, programs::TcContext};
use weir_common::{drop::DropReason, network::NET_MASQUERADE, stats::Hook};

use crate::{
    ct,
    maps::{CONFIG, NETWORKS4, UPLINKS},
    nat, parse, stats,
    verdict::TC_PASS,
};

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::ToUplink, ctx.len());
    parse::linearize(ctx);
    let Some(ip) = parse::ipv4(ctx)? else {
        return Ok(TC_PASS);
    };
    let Some(flow) = parse::flow(ctx, ip)? else {
        return Ok(TC_PASS);
    };
    let entry = match ct::lookup(&flow, ctx.len(), false) {
        Some(entry) => entry,
        None => {
            let k = &flow.key;
            let Some(net) = NETWORKS4.get(&Key::new(32, k.saddr)) else {
                return Ok(TC_PASS);
            };
            // Never between local networks, never multicast or broadcast.
            if net.flags & NET_MASQUERADE == 0
                || k.daddr[0] >= 224
                || NETWORKS4.get(&Key::new(32, k.daddr)).is_some()
            {
                return Ok(TC_PASS);
            }
            let nat_ip = if net.snat_ip == [0; 4] {
                // SAFETY: the skb pointer is the program's context.
                let ifindex = unsafe { (*ctx.skb.skb).ifindex };
                match UPLINKS.get_ptr(ifindex) {
                    // SAFETY: a pointer into a map value.
                    Some(ip) => unsafe { *ip },
                    None => return Ok(TC_PASS),
                }
            } else {
                net.snat_ip
            };
            let Some(config) = CONFIG.get(0) else {
                return Ok(TC_PASS);
            };
            let (entry, _collisions) = ct::create_snat(
                &flow,
                ctx.len(),
                nat_ip,
                config.snat_port_min,
                config.snat_port_max,
            )?;
            entry
        }
    };
    nat::rewrite(ctx, &flow, &entry)?;
    Ok(TC_PASS)
}
