//! The invariants every run of a program must keep, judged from the
//! frame in, the frame out, the verdict and the maps.

use std::net::{IpAddr, Ipv4Addr};

use aya::maps::PerCpuArray;
use weir_common::{
    ct::{CtEntry, CtKey},
    ct6::{CtEntry6, CtKey6},
    drop::DropReason,
    frag::{FragEntry, FragKey},
    network::{NET_INTERNAL, NET_MASQUERADE},
    publish::PROTO_TCP,
    stats::Counter,
};

use super::{
    frame::{self, Outline},
    world::{
        ALLOW_LISTED, ENDPOINTS, NETS, NODE, NODE6, PUBLICATIONS, PUBLISHED6, ROUTED, ROUTED_OPEN,
        World,
    },
};

/// tc verdicts a program may give.
pub const TC_OK: i32 = 0;
pub const TC_SHOT: i32 = 2;
pub const TC_REDIRECT: i32 = 7;
/// XDP verdicts (XDP forwards nothing: it drops or passes to tc).
pub const XDP_DROP: i32 = 1;
pub const XDP_PASS: i32 = 2;

/// Whether `verdict` is one `program` may give; whether it drops.
#[must_use]
pub fn verdict_kind(program: &str, verdict: i32) -> Option<bool> {
    if program.starts_with("xdp") {
        match verdict {
            XDP_DROP => Some(true),
            XDP_PASS => Some(false),
            _ => None,
        }
    } else {
        match verdict {
            TC_SHOT => Some(true),
            TC_OK | TC_REDIRECT => Some(false),
            _ => None,
        }
    }
}

/// Packets counted under each of `DROP_STATS`'s numbers, summed over the
/// CPUs.
#[must_use]
pub fn drop_counts(w: &mut World) -> Vec<u64> {
    let map =
        w.h.datapath
            .ebpf_mut()
            .map("DROP_STATS")
            .expect("DROP_STATS");
    let stats: PerCpuArray<_, Counter> = PerCpuArray::try_from(map).expect("a per-CPU array");
    (0..DropReason::MAP_SIZE)
        .map(|i| {
            stats
                .get(&i, 0)
                .map_or(0, |v| v.iter().map(|c| c.packets).sum())
        })
        .collect()
}

/// The one reason a drop was counted under, from the counts before and
/// after; `Err` when not exactly one packet was counted.
pub fn counted(before: &[u64], after: &[u64]) -> Result<Option<u32>, String> {
    let grown: Vec<(u32, u64)> = before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| a != b)
        .map(|(i, (b, a))| (u32::try_from(i).unwrap(), a - b))
        .collect();
    match grown[..] {
        [] => Ok(None),
        [(reason, 1)] if DropReason::from_number(reason).is_some() => Ok(Some(reason)),
        _ => Err(format!("drop counters grew by {grown:?}")),
    }
}

/// Whether a packet of this source may never leave by an uplink: a
/// masquerading or internal network's container address.
#[must_use]
pub fn private(src: IpAddr) -> bool {
    World::net_of(src).is_some_and(|n| NETS[n].flags & (NET_MASQUERADE | NET_INTERNAL) != 0)
}

/// Whether a destination is one a router sends on: not multicast, not
/// the limited broadcast, not a local network's.
#[must_use]
pub fn beyond(dst: IpAddr) -> bool {
    !dst.is_multicast() && dst != IpAddr::V4(Ipv4Addr::BROADCAST) && World::net_of(dst).is_none()
}

/// What the conntrack tables said of an outside frame before it ran:
/// whether it belongs to a flow (or a fragmented datagram) already there.
#[must_use]
pub fn known_flow(w: &mut World, input: &[u8]) -> bool {
    let Some(o) = frame::outline(input) else {
        return false;
    };
    if o.later_fragment {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (o.src, o.dst) else {
            return false;
        };
        let id = [input[o.ip_offset + 4], input[o.ip_offset + 5]];
        let key = FragKey {
            saddr: s.octets(),
            daddr: d.octets(),
            id,
            proto: o.proto,
            pad: 0,
        };
        return w.table::<FragKey, FragEntry>("FRAG4").get(&key, 0).is_ok();
    }
    let tuples = match o.quoted_src {
        Some(_) => quoted_reply(input, &o).into_iter().collect(),
        None => tuples(&o),
    };
    tuples
        .into_iter()
        .any(|(s, d, sp, dp, proto)| lookup(w, s, d, sp, dp, proto))
}

type Tuple = (IpAddr, IpAddr, u16, u16, u8);

/// The keys a packet of this outline may have in conntrack: TCP and UDP
/// by their ports, an echo request or reply by its identifier.
fn tuples(o: &Outline) -> Vec<Tuple> {
    let t = |sp, dp| (o.src, o.dst, sp, dp, o.proto);
    match o.proto {
        1 | 58 => vec![t(o.sport, 0), t(0, o.sport)],
        _ => vec![t(o.sport, o.dport)],
    }
}

/// The key of the direction a quoted packet's answers take.
fn quoted_reply(input: &[u8], o: &Outline) -> Option<Tuple> {
    let ip = &input[o.ip_offset..];
    let at = if o.src.is_ipv4() {
        usize::from(ip[0] & 0x0f) * 4 + 8
    } else {
        48
    };
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(if o.src.is_ipv4() {
        &[0x08, 0x00]
    } else {
        &[0x86, 0xdd]
    });
    eth.extend_from_slice(ip.get(at..)?);
    // The quote's ports are read whatever its fragment field says, as the
    // programs read them.
    if o.src.is_ipv4() && eth.len() >= 22 {
        eth[20..22].fill(0);
    }
    let qo = frame::outline(&eth)?;
    let (sp, dp) = if matches!(qo.proto, 1 | 58) {
        (0, qo.sport)
    } else {
        (qo.dport, qo.sport)
    };
    Some((qo.dst, qo.src, sp, dp, qo.proto))
}

fn lookup(w: &mut World, s: IpAddr, d: IpAddr, sp: u16, dp: u16, proto: u8) -> bool {
    let (sp, dp) = (sp.to_be_bytes(), dp.to_be_bytes());
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let key = CtKey::new(s.octets(), d.octets(), sp, dp, proto);
            w.table::<CtKey, CtEntry>("CT4").get(&key, 0).is_ok()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let key = CtKey6 {
                saddr: s.octets(),
                daddr: d.octets(),
                sport: sp,
                dport: dp,
                proto,
                pad: [0; 3],
            };
            w.table::<CtKey6, CtEntry6>("CT6").get(&key, 0).is_ok()
        }
        _ => false,
    }
}

/// Judges an outside frame `input` that left the uplink's hooks as
/// `output` towards a container: a new flow to a publication its policy
/// lets in (or a routed container's open port), with the client kept;
/// else it must have been part of a flow already there (`known`).
///
/// A tagged frame is not judged at an uplink: the stack hands it to the
/// VLAN's own device (weir's uplink when it is declared one, and judged
/// there) or drops it, and sends out tagged only what such a device sent.
pub fn inbound(input: &[u8], output: &[u8], known: bool) -> Result<(), String> {
    if frame::tagged(output) {
        return Ok(());
    }
    let Some(out) = frame::outline(output) else {
        return Ok(());
    };
    let Some(e) =
        World::endpoint_at(out.dst).or_else(|| World::net_of(out.dst).map(|_| usize::MAX))
    else {
        return Ok(());
    };
    if known || World::is_gateway(out.dst) {
        // A flow's own, or the node's address on a bridge (the node's).
        return Ok(());
    }
    let Some(i) = frame::outline(input) else {
        return Err("a frame without an outline reached a container".into());
    };
    if i.later_fragment || i.quoted_src.is_some() {
        return Err("a fragment or ICMP error of no known flow reached a container".into());
    }
    if out.src != i.src {
        return Err(format!("the client {} became {}", i.src, out.src));
    }
    if e == usize::MAX {
        return Err(format!("reached {}, no container's address", out.dst));
    }
    let target = ENDPOINTS[e].ip;
    let published = PUBLICATIONS.iter().any(|p| {
        i.dst == IpAddr::V4(NODE)
            && (p.host_ip == Ipv4Addr::UNSPECIFIED || IpAddr::V4(p.host_ip) == i.dst)
            && (p.port, p.proto) == (i.dport, i.proto)
            && p.to == e
            && IpAddr::V4(target) == out.dst
            && p.to_port == out.dport
            && NETS[ENDPOINTS[e].net].flags & NET_INTERNAL == 0
            && (p.port != ALLOW_LISTED || is_friend(i.src))
    });
    let published6 = i.dst == IpAddr::V6(NODE6)
        && (i.dport, i.proto) == (PUBLISHED6, PROTO_TCP)
        && ENDPOINTS[e].ip6.map(IpAddr::V6) == Some(out.dst)
        && out.dport == 80;
    // A routed container takes pings too (an echo reply of identifier 0
    // has the key of an echo request of identifier 0).
    let ping = i.proto == 1 && (i.icmp_type == Some(8) || i.sport == 0);
    let routed = e == ROUTED
        && i.dst == out.dst
        && (ping || (i.dport, i.proto) == (ROUTED_OPEN, PROTO_TCP) && out.dport == ROUTED_OPEN);
    if published || published6 || routed {
        Ok(())
    } else {
        Err(format!(
            "{}:{} -> {}:{} proto {} reached {}:{} unsolicited",
            i.src, i.sport, i.dst, i.dport, i.proto, out.dst, out.dport
        ))
    }
}

fn is_friend(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(a) if a.octets()[..3] == [198, 51, 100])
}

/// Judges a frame that `tc_to_uplink` let out: never with a private
/// source (a tagged frame aside, as in [`inbound`]).
pub fn outbound(output: &[u8]) -> Result<(), String> {
    if frame::tagged(output) {
        return Ok(());
    }
    match frame::outline(output) {
        Some(o) if private(o.src) && beyond(o.dst) => {
            Err(format!("{} left the uplink as itself", o.src))
        }
        _ => Ok(()),
    }
}

/// A frame out that differs from a frame in whose checksums were right
/// must have right checksums too.
pub fn translated(input: &[u8], output: &[u8]) -> Result<(), String> {
    if input == output || frame::checksums(input).is_err() {
        return Ok(());
    }
    frame::checksums(output).map_err(|e| format!("translated with {e}"))
}
