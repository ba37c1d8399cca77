//! Connection tracking in `CT4`: one lookup per packet of a known flow, two
//! inserts when a flow starts (both directions at once).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns},
};
use weir_common::{
    ct::{CT_INNER, CtEntry, CtKey, DIR_ORIGINAL, DIR_REPLY, KIND_ROUTED, KIND_SNAT},
    drop::DropReason,
    publish::{PublishKey, PublishTarget},
};

use crate::{
    maps::{CT4, PUBLISH4},
    parse::Flow,
    stats,
};

/// How many ports masquerade tries for a new flow before it gives up.
pub const SNAT_TRIES: u32 = 16;

/// The entry of a known flow, its counters and flags brought up to date.
/// With `syn_starts_over`, a TCP segment that opens a flow (SYN without
/// ACK) is never "known": it starts the flow again from the publications
/// as they are now. Masquerade keeps its mapping for a retransmitted SYN.
/// A packet `from_outside` that finds an entry keyed from a container's
/// side ([`CT_INNER`]) is a [`DropReason::Bogon`], and counts nothing.
#[inline(always)]
pub fn lookup(
    flow: &Flow,
    len: u32,
    syn_starts_over: bool,
    from_outside: bool,
) -> Result<Option<CtEntry>, DropReason> {
    if syn_starts_over && flow.is_tcp_open() {
        return Ok(None);
    }
    let Some(entry) = CT4.get_ptr_mut(flow.key) else {
        return Ok(None);
    };
    // SAFETY: a pointer into a map value, valid for this program run.
    // Plain stores: one flow direction is almost always handled by one CPU
    // at a time; a lost race costs a count, never a translation.
    unsafe {
        if from_outside && (*entry).flags & CT_INNER != 0 {
            return Err(DropReason::Bogon);
        }
        (*entry).last_seen_ns = bpf_ktime_get_coarse_ns();
        (*entry).tcp_flags |= flow.tcp_flags;
        (*entry).packets += 1;
        (*entry).bytes += u64::from(len);
        let entry = *entry;
        stats::port(&entry.publication, entry.dir, len, false);
        Ok(Some(entry))
    }
}

/// Starts tracking a translated flow: `flow` leaves as `original`'s
/// tuple, and the answers, which come back as the reverse of that tuple,
/// leave as the reverse of `flow`'s. `publication` is the key the flow
/// came in by (its counters), zero when none. `sides` are the
/// [`CtEntry::flags`] of the original direction and of the answers.
/// Returns the original direction's entry.
#[inline(always)]
pub fn create(
    flow: &Flow,
    len: u32,
    (kind, sides): (u8, Sides),
    (publication, target): (PublishKey, &PublishTarget),
    snat_to_host: bool,
) -> Result<CtEntry, DropReason> {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let k = &flow.key;
    let original = CtEntry {
        nat_saddr: if snat_to_host { k.daddr } else { k.saddr },
        nat_daddr: target.ip,
        nat_sport: k.sport,
        nat_dport: target.port,
        dir: DIR_ORIGINAL,
        kind,
        tcp_flags: flow.tcp_flags,
        flags: sides.original,
        backend_ifindex: target.ifindex,
        network_id: target.network_id,
        created_ns: now,
        last_seen_ns: now,
        packets: 1,
        bytes: u64::from(len),
        publication,
    };
    let reply = reply_entry(k, &original, sides.reply);
    CT4.insert(CtKey::reply_of(&original, k.proto), reply, 0)
        .map_err(|_| DropReason::CtInsertFailed)?;
    CT4.insert(*k, original, 0)
        .map_err(|_| DropReason::CtInsertFailed)?;
    stats::port(&publication, DIR_ORIGINAL, len, true);
    Ok(original)
}

/// Which side of the node each direction of a flow is keyed from, as
/// [`CtEntry::flags`].
#[derive(Clone, Copy)]
pub struct Sides {
    pub original: u8,
    pub reply: u8,
}

impl Sides {
    /// A flow from outside to a container: its answers come from inside.
    pub const IN: Self = Self {
        original: 0,
        reply: CT_INNER,
    };
    /// A flow from a container to the outside.
    pub const OUT: Self = Self {
        original: CT_INNER,
        reply: 0,
    };
    /// A flow between containers of this node (through a node address).
    pub const LOCAL: Self = Self {
        original: CT_INNER,
        reply: CT_INNER,
    };
}

/// Starts tracking a flow forwarded untranslated between a container of
/// network `network_id` and the outside (routed mode, `--masquerade=false`),
/// opened from `sides`' original end: both entries rewrite to the tuple
/// they already carry.
#[inline(always)]
pub fn create_routed(
    flow: &Flow,
    len: u32,
    network_id: u32,
    sides: Sides,
) -> Result<CtEntry, DropReason> {
    let k = &flow.key;
    let itself = PublishTarget {
        ip: k.daddr,
        port: k.dport,
        pad: [0; 2],
        ifindex: 0,
        network_id,
    };
    create(
        flow,
        len,
        (KIND_ROUTED, sides),
        (PublishKey::default(), &itself),
        false,
    )
}

/// Starts masquerading `flow` behind `nat_ip`: the source port is kept if
/// it lies in `min..=max`, else (and on a collision) up to [`SNAT_TRIES`]
/// random ports of the range are tried, each claimed by inserting the
/// reply direction with `BPF_NOEXIST`, so two flows never share a tuple.
/// Ports published on the node are skipped. Returns the original
/// direction's entry and how many probes collided before it.
#[inline(always)]
pub fn create_snat(
    flow: &Flow,
    len: u32,
    network_id: u32,
    nat_ip: [u8; 4],
    min: u16,
    max: u16,
) -> Result<(CtEntry, u32), DropReason> {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let k = &flow.key;
    let mut original = CtEntry {
        nat_saddr: nat_ip,
        nat_daddr: k.daddr,
        nat_sport: k.sport,
        nat_dport: k.dport,
        dir: DIR_ORIGINAL,
        kind: KIND_SNAT,
        tcp_flags: flow.tcp_flags,
        flags: Sides::OUT.original,
        backend_ifindex: 0,
        network_id,
        created_ns: now,
        last_seen_ns: now,
        packets: 1,
        bytes: u64::from(len),
        publication: PublishKey::default(),
    };
    let reply = reply_entry(k, &original, Sides::OUT.reply);
    if min == 0 || max < min {
        return Err(DropReason::SnatExhausted);
    }
    let span = u32::from(max - min) + 1;
    let own = u16::from_be_bytes(k.sport);
    for i in 0..SNAT_TRIES {
        let port = if i == 0 && own >= min && own <= max {
            own
        } else {
            // SAFETY: a helper without arguments.
            let r = unsafe { bpf_get_prandom_u32() } % span;
            min + r as u16
        };
        original.nat_sport = port.to_be_bytes();
        let published = PUBLISH4
            .get_ptr(PublishKey::new([0; 4], port, k.proto))
            .is_some()
            || PUBLISH4
                .get_ptr(PublishKey::new(nat_ip, port, k.proto))
                .is_some();
        if !published
            && CT4
                .insert(
                    CtKey::reply_of(&original, k.proto),
                    reply,
                    u64::from(BPF_NOEXIST),
                )
                .is_ok()
        {
            CT4.insert(*k, original, 0)
                .map_err(|_| DropReason::CtInsertFailed)?;
            return Ok((original, i));
        }
    }
    Err(DropReason::SnatExhausted)
}

/// The entry of the flow an ICMP error is about (no counters touched: an
/// error is not traffic of the flow).
#[inline(always)]
pub fn lookup_quoted(key: &CtKey) -> Option<CtEntry> {
    // SAFETY: a pointer into a map value, valid for this program run.
    CT4.get_ptr(*key).map(|e| unsafe { *e })
}

/// The answers' entry of a flow whose original direction is `original`:
/// they leave as the reverse of the tuple the flow arrived with (`k`).
/// `flags` are the answers' own ([`Sides::reply`]).
#[inline(always)]
fn reply_entry(k: &CtKey, original: &CtEntry, flags: u8) -> CtEntry {
    CtEntry {
        flags,
        nat_saddr: k.daddr,
        nat_daddr: k.saddr,
        nat_sport: k.dport,
        nat_dport: k.sport,
        dir: DIR_REPLY,
        tcp_flags: 0,
        packets: 0,
        bytes: 0,
        ..*original
    }
}
