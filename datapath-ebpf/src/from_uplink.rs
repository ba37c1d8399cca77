//! `tc_from_uplink`: tcx ingress on an uplink. Bogons are dropped first:
//! a packet of a tracked flow whose entry is keyed from a container's side
//! ([`ct::lookup`]), any other by [`policy::from_outside`]. A packet to a
//! node address on a published port is translated (DNAT) to its container
//! and the flow tracked, with the client's address kept. Answers to
//! masqueraded and routed flows are found in `CT4`. Either way the packet
//! then goes straight into the container's namespace
//! ([`fwd::to_container`]). Nothing else reaches a container address
//! ([`policy::unsolicited`]).

use aya_ebpf::programs::TcContext;
use weir_common::{
    ct::{CT_STACK, KIND_DNAT, KIND_SNAT},
    drop::DropReason,
    stats::Hook,
};

use crate::{
    ct::{self, Sides},
    dnat, frag, fwd, nat, nat6, parse, policy, stats, to_uplink,
    verdict::TC_PASS,
};

#[inline(always)]
#[expect(
    clippy::single_match_else,
    reason = "the match on `ct::lookup`: as `if let`, LLVM emits one instruction more"
)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::FromUplink, ctx.len());
    parse::linearize(ctx);
    let Some(ip) = parse::ipv4(ctx)? else {
        if parse::is_ipv6(ctx) {
            return nat6::from_uplink(ctx);
        }
        return Ok(TC_PASS);
    };
    if let Some(key) = parse::later_fragment(ip) {
        policy::from_outside(ip)?;
        // Where its first fragment went (a container), it goes too.
        return match frag::lookup(&key) {
            Some(entry) => {
                let head = frag::rewrite(ctx, &entry)?;
                fwd::to_container(ctx, head, entry.nat_daddr)
            }
            None if policy::is_container(key.daddr) => Err(DropReason::FragmentUntracked),
            // The node's own: its stack reassembles it.
            None => Ok(TC_PASS),
        };
    }
    let Some(flow) = parse::flow(ctx, ip)? else {
        policy::from_outside(ip)?;
        // An ICMP error about a tracked flow goes to its container.
        if let Some(err) = parse::icmp_error(ctx, ip)
            && let Some(entry) = ct::lookup_quoted(&err.reply_key())
        {
            nat::rewrite_icmp_error(ctx, &err, &entry)?;
            return Ok(TC_PASS);
        }
        // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
        policy::unsolicited(unsafe { (*ip).src_addr }, unsafe { (*ip).dst_addr }, None)?;
        return Ok(TC_PASS);
    };
    let entry = match ct::lookup(&flow, ctx.len(), true, true)? {
        Some(entry) => {
            if entry.kind == KIND_SNAT {
                stats::nat(entry.network_id, to_uplink::traffic(ctx.len()));
            }
            entry
        }
        None => {
            policy::from_outside(ip)?;
            let k = &flow.key;
            if let Some((key, target)) = dnat::lookup(k.daddr, k.dport, k.proto, false) {
                policy::outsider_to_publication(&target)?;
                ct::create(
                    &flow,
                    ctx.len(),
                    (KIND_DNAT, Sides::IN),
                    (key, &target),
                    false,
                )?
            } else if policy::pod_to_pod(&flow)
                && let Some(net) = policy::container_network(k.daddr)
            {
                // From a pod on another node to one here: both ways past
                // the stack (`policy::pod_to_pod`).
                ct::create_routed(&flow, ctx.len(), net.id, Sides::IN)?
            } else if let Some(net) = policy::unsolicited(k.saddr, k.daddr, Some(&flow))? {
                // Routed mode: tracked, so the answers go out and the
                // flow's next packets are known.
                ct::create_routed(&flow, ctx.len(), net.id, Sides::IN)?
            } else {
                return Ok(TC_PASS);
            }
        }
    };
    let head = nat::rewrite(ctx, &flow, &entry)?;
    if entry.flags & CT_STACK != 0 {
        // Netfilter translated the flow's first packet (a Service's): its
        // conntrack undoes that on the answers too.
        head.write(ctx)?;
        return Ok(TC_PASS);
    }
    fwd::to_container(ctx, head, entry.nat_daddr)
}
