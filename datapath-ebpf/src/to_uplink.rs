//! `tc_to_uplink`: tcx egress on an uplink. Masquerade: a packet whose
//! source is a container of a network with masquerade on leaves with the
//! network's `--snat-ip` or the uplink's address, and a port of the
//! configured range; both directions are tracked in `CT4`, and the answers
//! are translated back by `tc_from_uplink`'s conntrack lookup. A network
//! without masquerade (routed mode, `--masquerade=false`) has its flows
//! tracked untranslated, for the same lookup to let their answers in.

use aya_ebpf::{maps::lpm_trie::Key, programs::TcContext};
use weir_common::{
    ct::{CT_STACK, CtEntry, KIND_ROUTED, KIND_SNAT},
    drop::DropReason,
    network::{NET_INTERNAL, NET_MASQUERADE},
    publish::PROTO_ICMP,
    stats::{Hook, NatCounters},
};

use crate::{
    ct, frag, fwd,
    maps::{CONFIG, NETWORKS4, UPLINKS},
    nat, nat6, parse, policy, stats,
    verdict::TC_PASS,
};

#[inline(always)]
#[expect(
    clippy::single_match_else,
    reason = "the match on `ct::lookup`: as `if let`, LLVM emits one instruction more"
)]
pub fn handle(ctx: &TcContext) -> Result<i32, DropReason> {
    stats::hook(Hook::ToUplink, ctx.len());
    parse::linearize(ctx);
    let Some(ip) = parse::ipv4(ctx)? else {
        if parse::is_ipv6(ctx) {
            return nat6::to_uplink(ctx);
        }
        return Ok(TC_PASS);
    };
    // Only a container's packets are masqueraded or tracked here. Those
    // translated on their veth already (the answers of published ports,
    // a masqueraded flow's packets after the first, the ICMP errors about
    // them) and the node's own have a node address as source: they pass
    // without a `CT4` lookup.
    // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
    let (saddr, daddr) = unsafe { ((*ip).src_addr, (*ip).dst_addr) };
    let Some(net) = NETWORKS4.get(&Key::new(32, saddr)) else {
        return Ok(TC_PASS);
    };
    // [`beyond`] is asked only where it matters (an internal network's
    // packet, one masquerade cannot translate, a new flow), not for a
    // tracked flow's.
    if net.flags & NET_INTERNAL != 0 && beyond(daddr) {
        // Stopped on its veth already; never out of an uplink either.
        return Err(DropReason::Internal);
    }
    if let Some(key) = parse::later_fragment(ip) {
        // A container's fragment leaves with the addresses its first
        // fragment left with; one with none is never let out with a
        // masquerading network's private address.
        return match frag::lookup(&key) {
            Some(entry) => {
                frag::rewrite(ctx, &entry)?.write(ctx)?;
                Ok(TC_PASS)
            }
            None if net.flags & NET_MASQUERADE != 0 => Err(DropReason::FragmentUntracked),
            None => Ok(TC_PASS),
        };
    }
    let Some(flow) = parse::flow(ctx, ip)? else {
        // An ICMP error about no tracked flow, a protocol without ports:
        // masquerade cannot translate it, so it never leaves as itself;
        // to a pod or node of the cluster it leaves as it is, as the
        // flows between them do.
        if net.flags & NET_MASQUERADE != 0 && beyond(daddr) && !policy::in_cluster(daddr) {
            return Err(DropReason::Untranslatable);
        }
        return Ok(TC_PASS);
    };
    let k = &flow.key;
    let entry = match ct::lookup(&flow, ctx.len(), false, false)? {
        Some(entry) => {
            if taken_by_the_stack(ctx, &entry, daddr) {
                ct::forget(&flow.key, &entry);
                return Ok(TC_PASS);
            }
            if entry.kind == KIND_SNAT {
                stats::nat(entry.network_id, traffic(ctx.len()));
            }
            entry
        }
        None => {
            // A pod or node of the cluster is reached by the container's
            // own address (Kubernetes' model): untranslated, untracked.
            if !beyond(daddr) || policy::in_cluster(daddr) {
                return Ok(TC_PASS);
            }
            if net.flags & NET_MASQUERADE == 0 {
                // Leaves with the container's address: tracked, so that
                // its answers, and nothing unsolicited, get back in.
                ct::create_routed(&flow, ctx.len(), net.id, ct::Sides::OUT)?;
                return Ok(TC_PASS);
            }
            if k.proto == PROTO_ICMP && k.dport != [0; 2] {
                // An echo reply of no request: no flow a port could
                // stand for (its identifier is the key's other half).
                return Err(DropReason::Untranslatable);
            }
            let nat_ip = if net.snat_ip == [0; 4] {
                // SAFETY: the skb pointer is the program's context.
                let ifindex = unsafe { (*ctx.skb.skb).ifindex };
                match UPLINKS.get_ptr(ifindex) {
                    // SAFETY: a pointer into a map value.
                    Some(ip) => unsafe { *ip },
                    None => return Err(DropReason::NoUplinkAddress),
                }
            } else {
                net.snat_ip
            };
            let Some(config) = CONFIG.get(0) else {
                return Ok(TC_PASS);
            };
            counted(
                net.id,
                ctx.len(),
                ct::create_snat(
                    &flow,
                    ctx.len(),
                    (net.id, fwd::stack_flag(ctx)),
                    nat_ip,
                    config.snat_port_min,
                    config.snat_port_max,
                ),
            )?
        }
    };
    nat::rewrite(ctx, &flow, &entry)?.write(ctx)?;
    Ok(TC_PASS)
}

/// A new masqueraded flow of network `network_id` (`created`, its first
/// packet `len` bytes) in the network's counters: the flow, the probes
/// its port took, or the range exhausted.
#[inline(always)]
fn counted(
    network_id: u32,
    len: u32,
    created: Result<(CtEntry, u32), DropReason>,
) -> Result<CtEntry, DropReason> {
    match created {
        Ok((entry, retries)) => {
            stats::nat(
                network_id,
                NatCounters {
                    flows: 1,
                    retries: u64::from(retries),
                    ..traffic(len)
                },
            );
            Ok(entry)
        }
        Err(reason) => {
            if reason == DropReason::SnatExhausted {
                stats::nat(
                    network_id,
                    NatCounters {
                        retries: u64::from(ct::SNAT_TRIES),
                        exhausted: 1,
                        ..NatCounters::default()
                    },
                );
            }
            Err(reason)
        }
    }
}

/// Whether a container's packet that found `entry`, a fast flow's between
/// pods (`KIND_ROUTED`, not `CT_STACK`), is of a connection netfilter
/// translated (a Service's, marked on its veth) that took the tuple the
/// fast flow had left: its answers are then the stack's (its conntrack
/// translates them back), and the fast flow's entries must go.
#[inline(always)]
fn taken_by_the_stack(ctx: &TcContext, entry: &CtEntry, daddr: [u8; 4]) -> bool {
    entry.kind == KIND_ROUTED
        && entry.flags & CT_STACK == 0
        && fwd::stack_flag(ctx) != 0
        && policy::in_cluster(daddr)
}

/// Whether a container's packet to `daddr` is one routed beyond the
/// node: never between local networks, never multicast or the limited
/// broadcast (which no router forwards); class E is unicast.
#[inline(always)]
fn beyond(daddr: [u8; 4]) -> bool {
    daddr[0] & 0xf0 != 0xe0 && daddr != [0xff; 4] && NETWORKS4.get(&Key::new(32, daddr)).is_none()
}

/// One packet of `len` bytes, as masquerade counters.
#[inline(always)]
pub fn traffic(len: u32) -> NatCounters {
    NatCounters {
        packets: 1,
        bytes: u64::from(len),
        ..NatCounters::default()
    }
}
