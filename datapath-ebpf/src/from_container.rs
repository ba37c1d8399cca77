//! `tc_from_container`: tcx ingress on the host side of a container veth.
//!
//! Every frame first meets the rules of who may speak
//! ([`policy::endpoint`], [`policy::frame`], [`policy::source`]); the
//! sender's network is looked up only when a rule needs it, not for a
//! tracked flow's packets. Translated
//! flows are then handled in both directions: answers of a published
//! service get their original address back (reverse DNAT), and a container
//! reaching a published port through a node address is translated (DNAT)
//! to the backend (hairpin). A translated packet is routed and sent on by
//! [`fwd::redirect`]. Anything else meets [`policy::destination`]
//! (isolation, icc, internal); what then leaves through an uplink is sent
//! to its next hop ([`fwd::out_via_uplink`], masquerade happens on the
//! uplink's egress), the rest goes to the bridge as it came. IPv6 frames
//! go on to `tc_from_container6` (a tail call, [`crate::from_container6`]).

use aya_ebpf::programs::TcContext;
use weir_common::{
    ct::{CtEntry, KIND_HAIRPIN},
    drop::DropReason,
    publish::PROTO_ICMP,
    stats::{Hook, TAIL_FROM_CONTAINER6, TAIL_POD_FLOW},
};

use crate::{
    ct::{self, Sides},
    dnat, frag, fwd,
    head::Head,
    maps::TAIL_CALLS,
    nat, parse,
    policy::{self, Sender},
    stats,
    verdict::TC_PASS,
};

#[inline(always)]
#[expect(
    clippy::single_match_else,
    reason = "the match on `ct::lookup`: as `if let`, LLVM emits one instruction more"
)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::FromContainer, ctx.len());
    parse::linearize(ctx);
    let ep = policy::endpoint(ctx)?;
    let dst_mac = policy::frame(ctx, &ep)?;
    let Some(ip) = parse::ipv4(ctx)? else {
        if parse::is_ipv6(ctx) {
            // SAFETY: a tail call with the program's own context; it
            // returns only when it failed.
            unsafe { TAIL_CALLS.tail_call(ctx, TAIL_FROM_CONTAINER6) };
            return Err(DropReason::TailCallFailed);
        }
        return Ok(TC_PASS);
    };
    policy::source(&ep, ip)?;
    // A later fragment of a datagram whose first was translated (here or
    // on the uplink's egress) is translated and forwarded the same way;
    // one with no record meets the rules below like any untracked packet.
    if let Some(key) = parse::later_fragment(ip)
        && let Some(entry) = frag::lookup(&key)
    {
        let head = frag::rewrite(ctx, &entry)?;
        let to = CtEntry {
            nat_saddr: entry.nat_saddr,
            nat_daddr: entry.nat_daddr,
            ..CtEntry::default()
        };
        return fwd::redirect(ctx, head, &to, key.proto);
    }
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
            return fwd::redirect(ctx, Head::read(ctx)?, &to, PROTO_ICMP);
        }
        let sender = Sender::of(ep)?;
        // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
        policy::destination(&sender, unsafe { (*ip).dst_addr }, &dst_mac)?;
        return Ok(TC_PASS);
    };
    let entry = match ct::lookup(&flow, ctx.len(), true, false)? {
        Some(entry) => entry,
        None => {
            let k = &flow.key;
            let sender = Sender::of(ep)?;
            let Some((key, target)) = dnat::lookup(k.daddr, k.dport, k.proto, false) else {
                policy::destination(&sender, k.daddr, &dst_mac)?;
                if policy::pod_to_pod(&flow) && !policy::is_container(k.daddr) {
                    // To a pod on another node: both ways past the stack.
                    // SAFETY: a tail call with the program's own context;
                    // it returns only when it failed, and then the SYN
                    // goes on as any.
                    unsafe { TAIL_CALLS.tail_call(ctx, TAIL_POD_FLOW) };
                }
                let to = CtEntry {
                    nat_saddr: k.saddr,
                    nat_daddr: k.daddr,
                    nat_sport: k.sport,
                    nat_dport: k.dport,
                    ..CtEntry::default()
                };
                return fwd::out_via_uplink(ctx, &to, k.proto);
            };
            policy::hairpin(&sender, k.daddr, &target)?;
            // A container calling its own published port (or, with
            // `--icc=false`, a neighbour's) gets the node address it
            // called as the source: Docker masquerades here.
            let via_node = sender.hairpin_via_node(&target);
            ct::create(
                &flow,
                ctx.len(),
                (KIND_HAIRPIN, Sides::LOCAL),
                (key, &target),
                via_node,
            )?
        }
    };
    let head = nat::rewrite(ctx, &flow, &entry)?;
    fwd::redirect(ctx, head, &entry, flow.key.proto)
}
