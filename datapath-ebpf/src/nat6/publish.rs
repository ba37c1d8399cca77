//! Flows to ports published over IPv6: from outside (`PUBLISH6`, and
//! routed mode's open ports, `OPEN_PORTS6`) and from containers
//! (hairpin), each tracked in `CT6` with both entries built in
//! `SCRATCH6`.

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, maps::lpm_trie::Key, programs::TcContext};
use weir_common::{
    ct::{CT_INNER, CT_STACK, KIND_DNAT, KIND_HAIRPIN, KIND_ROUTED},
    ct6::{CtKey6, Scratch6},
    drop::DropReason,
    network::{NET_ICC, NET_INTERNAL, NET_ROUTED},
    publish::{PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, PublishKey6, PublishTarget6},
};

use super::{INGRESS_DONE, INGRESS_UNTRACKED, NOT_A_FLOW, pair, read_flow, rewrite, touch};
use crate::{
    maps::{
        ALLOW_PORTS6, CT6, ENDPOINTS6, HOST_ADDRS6, NETWORKS6, OPEN_PORTS6, PUBLISH6, SCRATCH6,
    },
    stats, v6,
};

/// A flow from outside that `CT6` does not know (its tuple in
/// `SCRATCH6`): to a port published over IPv6 (`PUBLISH6`: the address
/// it came to, or `::` when that is one of the node's, `HOST_ADDRS6`), or
/// in routed mode to a container's open port or a ping, it is tracked, both entries built in the slot, and `true` returned; to
/// an `--internal` network's publication it is `internal-network`; to a
/// container address it is `unsolicited`; anything else passes (`false`).
#[inline(never)]
pub(super) fn publish() -> Result<bool, DropReason> {
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: a per-CPU array slot of ours for this program run.
    let k = unsafe { &(*s).flow };
    if let Some(id) = open_in_routed(k) {
        // Tracked as it is, like a routed flow out, opened from outside.
        let itself = PublishTarget6 {
            ip: k.daddr,
            port: k.dport,
            pad: [0; 2],
            network_id: id,
        };
        // SAFETY: the slot as above.
        unsafe { track(s, &itself, KIND_ROUTED, 0, false)? };
        return Ok(true);
    }
    let target = if k.proto == PROTO_TCP || k.proto == PROTO_UDP {
        // SAFETY: the slot as above.
        unsafe { published(s) }
    } else {
        None
    };
    let Some(t) = target else {
        v6::unsolicited(&k.saddr, &k.daddr, false)?;
        return Ok(false);
    };
    // SAFETY: a pointer into a map value, valid for this program run.
    let t = unsafe { &*t };
    if NETWORKS6
        .get(&Key::new(128, t.ip))
        .is_some_and(|net| net.flags & NET_INTERNAL != 0)
    {
        return Err(DropReason::Internal);
    }
    // SAFETY: the slot as above.
    unsafe { track(s, t, KIND_DNAT, 0, false)? };
    Ok(true)
}

/// Tracks the slot's flow to publication `t`: the original entry leads
/// to the container (from the node's address it was called at when
/// `via_node`, else from the caller's own), the answers' entry back to
/// the address and port the caller called, both built in the slot.
/// `kind` and the original's `flags` say who called (from outside:
/// `KIND_DNAT`, 0; a container: `KIND_HAIRPIN`, `CT_INNER`; a routed
/// open port: `KIND_ROUTED`, no publication). Both entries name the
/// publication [`published`] wrote in the slot, whose counters get the
/// flow.
///
/// # Safety
///
/// `s` is this program run's `SCRATCH6` slot, its flow read.
#[inline(always)]
unsafe fn track(
    s: *mut Scratch6,
    t: &PublishTarget6,
    kind: u8,
    flags: u8,
    via_node: bool,
) -> Result<(), DropReason> {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: the caller's slot; every field is written before the
    // entries are inserted.
    unsafe {
        let k = &(*s).flow;
        let o = &raw mut (*s).original;
        (*o).nat_saddr = if via_node { k.daddr } else { k.saddr };
        (*o).nat_daddr = t.ip;
        (*o).nat_sport = k.sport;
        (*o).nat_dport = t.port;
        // The container's answers leave as the caller's flow came in.
        if kind == KIND_ROUTED {
            (*o).publication = PublishKey6::default();
        } else if ALLOW_PORTS6.get_ptr(&(*o).publication).is_some() {
            // `weir allow`'s lists hold IPv4 sources alone.
            return Err(DropReason::NotAllowed);
        }
        pair(s, kind, (flags, CT_INNER), t.network_id, now);
        if kind != KIND_ROUTED {
            stats::port_flow6(&(*o).publication);
        }
        (*s).reply.publication = (*o).publication;
        CT6.insert(&(*s).reply_key, &(*s).reply, 0)
            .map_err(|_| DropReason::CtInsertFailed)?;
        CT6.insert(k, &(*s).original, 0)
            .map_err(|_| DropReason::CtInsertFailed)?;
    }
    Ok(())
}

/// `tc_from_container6`: a tracked flow's packet is translated on the
/// veth, as IPv4's are (a hairpin's both ways, a published port's
/// answers, a masqueraded flow's packets after its first), so the
/// uplink's egress passes it with one lookup of its source; [`TRACKED`]
/// for one (a flow whose answers are the stack's, `CT_STACK`, found but
/// left as it is), [`UNTRACKED`] for a TCP or UDP packet `CT6` does not
/// know, [`NOT_A_FLOW`] for the rest. A new flow out is the uplink's
/// egress's to track and translate ([`super::egress`]).
#[inline(never)]
pub fn on_veth(ctx: &TcContext) -> Result<u32, DropReason> {
    let Some((_, flow)) = read_flow(ctx)? else {
        return Ok(NOT_A_FLOW);
    };
    match CT6.get_ptr_mut(&flow.key) {
        // SAFETY: a pointer into a map value, valid for this program run.
        Some(e) if unsafe { (*e).flags } & CT_STACK == 0 => {
            // SAFETY: as above.
            unsafe {
                touch(e, flow, ctx.len());
                rewrite(ctx, flow, &*e)?;
            }
            Ok(INGRESS_DONE)
        }
        Some(_) => Ok(INGRESS_DONE),
        None => Ok(INGRESS_UNTRACKED),
    }
}

/// [`on_veth`]'s answers.
pub const TRACKED: u32 = INGRESS_DONE;
pub const UNTRACKED: u32 = INGRESS_UNTRACKED;

/// A container's packet of no tracked flow, its rules met: a new flow to a
/// port published on one of the node's IPv6 addresses is tracked as a
/// hairpin ([`hairpin`]) and translated on the veth.
#[inline(always)]
pub fn hairpin_on_veth(ctx: &TcContext, ifindex: u32) -> Result<(), DropReason> {
    if hairpin(ifindex)? {
        on_veth(ctx)?;
    }
    Ok(())
}

/// A container's new flow (in `SCRATCH6`) to a port published on one of
/// the node's IPv6 addresses: tracked as a hairpin (`true`). The caller
/// gets the node's address as the source when the backend could not
/// answer it straight (itself, or a neighbour with `--icc=false`). An
/// `--internal` network's container reaches only its own network's
/// publications (through its gateway), and no other network reaches an
/// `--internal` one's: `internal-network`.
#[inline(never)]
fn hairpin(ifindex: u32) -> Result<bool, DropReason> {
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: a per-CPU array slot of ours for this program run.
    let k = unsafe { &(*s).flow };
    if k.proto != PROTO_TCP && k.proto != PROTO_UDP {
        return Ok(false);
    }
    // SAFETY: the slot as above.
    let Some(t) = (unsafe { published(s) }) else {
        return Ok(false);
    };
    // SAFETY: a pointer into a map value, valid for this program run.
    let t = unsafe { &*t };
    let Some(own) = ENDPOINTS6.get_ptr(ifindex) else {
        return Ok(false);
    };
    // SAFETY: as above.
    let Some(net) = NETWORKS6.get(&Key::new(128, unsafe { *own })) else {
        return Ok(false);
    };
    let internal = |flags: u32| flags & NET_INTERNAL != 0;
    if t.network_id != net.id
        && (internal(net.flags)
            || NETWORKS6
                .get(&Key::new(128, t.ip))
                .is_some_and(|n| internal(n.flags)))
    {
        return Err(DropReason::Internal);
    }
    let via_node = t.ip == k.saddr || (t.network_id == net.id && net.flags & NET_ICC == 0);
    // SAFETY: the slot as above.
    unsafe { track(s, t, KIND_HAIRPIN, CT_INNER, via_node)? };
    Ok(true)
}

/// Routed mode (`--mode routed`, not `--internal`): a flow from outside
/// to a container's own address and a published container port of it
/// (`OPEN_PORTS6`), or a ping, is let in; its network's id.
#[inline(always)]
fn open_in_routed(k: &CtKey6) -> Option<u32> {
    let net = NETWORKS6.get(&Key::new(128, k.daddr))?;
    if net.flags & NET_ROUTED == 0 || net.flags & NET_INTERNAL != 0 || net.gateway == k.daddr {
        return None;
    }
    // An echo request's "ports" are its identifier and 0.
    let ping = k.proto == PROTO_ICMPV6 && k.dport == [0; 2];
    let key = PublishKey6 {
        host_ip: k.daddr,
        port: k.dport,
        proto: k.proto,
        pad: 0,
    };
    (ping || OPEN_PORTS6.get_ptr(key).is_some()).then_some(net.id)
}

/// The publication the slot's flow reaches, if any, its key written in
/// the slot's original entry (`publication`, which [`track`] keeps).
///
/// # Safety
///
/// `s` is this program run's `SCRATCH6` slot, its flow read.
#[inline(always)]
unsafe fn published(s: *mut Scratch6) -> Option<*const PublishTarget6> {
    // SAFETY: the caller's slot; the key is looked up where it lies.
    unsafe {
        let k = &(*s).flow;
        let key = &raw mut (*s).original.publication;
        (*key).host_ip = k.daddr;
        (*key).port = k.dport;
        (*key).proto = k.proto;
        (*key).pad = 0;
        if let Some(t) = PUBLISH6.get_ptr(&*key) {
            return Some(t);
        }
        HOST_ADDRS6.get_ptr(k.daddr)?;
        (*key).host_ip = [0; 16];
        PUBLISH6.get_ptr(&*key)
    }
}
