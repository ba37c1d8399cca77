//! Connection tracking in `CT4`: one lookup per packet of a known flow, two
//! inserts when a flow starts (both directions at once).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns},
};
use weir_common::{
    ct::{
        CT_INNER, CtEntry, CtKey, DIR_ORIGINAL, DIR_REPLY, KIND_ROUTED, KIND_SNAT, claim_is_free,
    },
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
/// as they are now. Masquerade keeps its mapping for a retransmitted SYN,
/// and for a SYN that opens the same tuple again after the flow ended: the
/// flags of both directions start over, so the new flow is not taken for
/// the ended one (and swept as closing while it lives).
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
        if flow.is_tcp_open() {
            (*entry).tcp_flags = flow.tcp_flags;
            let answers = CtKey::reply_of(&*entry, flow.key.proto);
            if let Some(reply) = CT4.get_ptr_mut(answers) {
                (*reply).tcp_flags = 0;
            }
        } else {
            (*entry).tcp_flags |= flow.tcp_flags;
        }
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
    let k = &flow.key;
    // Every new flow to a publication starts here (from outside and
    // hairpin): its port's list of sources, if it has one.
    crate::policy::allowed(&publication, k.saddr)?;
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
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
    put(&CtKey::reply_of(&original, k.proto), &reply)?;
    put(k, &original)?;
    stats::port(&publication, DIR_ORIGINAL, len, true);
    Ok(original)
}

/// Writes `entry` under `key`: over the entry there is, if any (a tuple
/// opened again, as a busy client's ports come round while their last
/// flows are still closing; as Linux's conntrack reopens them), so
/// that no element is allocated and none freed; else as a new entry.
#[inline(always)]
fn put(key: &CtKey, entry: &CtEntry) -> Result<(), DropReason> {
    if let Some(old) = CT4.get_ptr_mut(*key) {
        // SAFETY: a pointer into a map value, valid for this program run.
        unsafe { *old = *entry };
        return Ok(());
    }
    insert(key, entry)
}

/// Writes `entry` under `key` as a new element (or over the one there is,
/// freeing it), evicting the least recently used when `CT4` is full.
#[inline(always)]
fn insert(key: &CtKey, entry: &CtEntry) -> Result<(), DropReason> {
    CT4.insert(*key, *entry, 0)
        .map_err(|_| DropReason::CtInsertFailed)
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

/// Starts masquerading `flow`, which the caller found no entry of, behind
/// `nat_ip`: the source port is kept if it lies in `min..=max`, else (and
/// on a collision) up to [`SNAT_TRIES`] random ports of the range are
/// tried, each claimed by inserting the reply direction with
/// `BPF_NOEXIST`, so two flows never share a tuple.
/// Ports published on the node are skipped. Both entries carry `flags`
/// (`CT_STACK` for a flow netfilter translated first). Returns the
/// original direction's entry and how many probes collided before it.
#[inline(always)]
pub fn create_snat(
    flow: &Flow,
    len: u32,
    (network_id, flags): (u32, u8),
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
        flags: Sides::OUT.original | flags,
        backend_ifindex: 0,
        network_id,
        created_ns: now,
        last_seen_ns: now,
        packets: 1,
        bytes: u64::from(len),
        publication: PublishKey::default(),
    };
    let reply = reply_entry(k, &original, Sides::OUT.reply | flags);
    if min == 0 || max < min {
        return Err(DropReason::SnatExhausted);
    }
    for i in 0..SNAT_TRIES {
        let port = snat_port(i, k.sport, min, max);
        original.nat_sport = port.to_be_bytes();
        let published = PUBLISH4
            .get_ptr(PublishKey::new([0; 4], port, k.proto))
            .is_some()
            || PUBLISH4
                .get_ptr(PublishKey::new(nat_ip, port, k.proto))
                .is_some();
        if published {
            continue;
        }
        let reply_key = CtKey::reply_of(&original, k.proto);
        let mut claimed = CT4.insert(reply_key, reply, u64::from(BPF_NOEXIST)).is_ok();
        if !claimed && flow.is_tcp_open() && release_if_closed(&reply_key) {
            claimed = CT4.insert(reply_key, reply, u64::from(BPF_NOEXIST)).is_ok();
        }
        if claimed {
            // `k` missed in `CT4` moments ago (the caller's lookup): put
            // in without looking it up again.
            insert(k, &original)?;
            return Ok((original, i));
        }
    }
    Err(DropReason::SnatExhausted)
}

/// Masquerade's port for probe `i` of a new flow from source port `own`
/// (network order): its own on the first probe when it lies in
/// `min..=max` (a non-empty range), a random port of the range otherwise.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`r` is below `span`, at most 65,536: it fits in 16 bits"
)]
pub fn snat_port(i: u32, own: [u8; 2], min: u16, max: u16) -> u16 {
    let own = u16::from_be_bytes(own);
    if i == 0 && own >= min && own <= max {
        return own;
    }
    let span = u32::from(max - min) + 1;
    // SAFETY: a helper without arguments.
    let r = unsafe { bpf_get_prandom_u32() } % span;
    min + r as u16
}

/// Frees a masquerade tuple held by a TCP flow that has ended (a RST, or
/// a FIN each way), or by the answers' entry of a flow whose own entry is
/// gone, for a new connection to take, as Linux's NAT does with a closed
/// connection's tuple: without this, the closing time of ended flows, not
/// the flows alive, would bound the connections a second to one peer.
/// `reply_key` is the tuple's answers' entry; both entries are removed.
/// Returns whether they were.
#[inline(always)]
fn release_if_closed(reply_key: &CtKey) -> bool {
    let Some(reply) = CT4.get_ptr(*reply_key) else {
        // Gone since the insert failed: free now.
        return true;
    };
    // SAFETY: a pointer into a map value, valid for this program run.
    let reply = unsafe { *reply };
    if reply.kind != KIND_SNAT {
        return false;
    }
    let original_key = CtKey::reply_of(&reply, reply_key.proto);
    // SAFETY: as above.
    let original = CT4.get_ptr(original_key).map(|e| unsafe { (*e).tcp_flags });
    if !claim_is_free(original, reply.tcp_flags) {
        return false;
    }
    let _ = CT4.remove(original_key);
    let _ = CT4.remove(reply_key);
    true
}

/// Forgets the flow whose entry `key` found (`entry`): both directions.
#[inline(always)]
pub fn forget(key: &CtKey, entry: &CtEntry) {
    let _ = CT4.remove(CtKey::reply_of(entry, key.proto));
    let _ = CT4.remove(*key);
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
