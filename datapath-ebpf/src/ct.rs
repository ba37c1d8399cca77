//! Connection tracking in `CT4`: one lookup per packet of a known flow, two
//! inserts when a flow starts (both directions at once).

use aya_ebpf::helpers::bpf_ktime_get_ns;
use weir_common::{
    ct::{CtEntry, CtKey, DIR_ORIGINAL, DIR_REPLY},
    drop::DropReason,
    publish::PublishTarget,
};

use crate::{maps::CT4, parse::Flow};

/// The entry of a known flow, its counters and flags brought up to date.
/// A TCP segment that opens a flow (SYN without ACK) is never "known": it
/// starts the flow again from the publications as they are now.
#[inline(always)]
pub fn lookup(flow: &Flow, len: u32) -> Option<CtEntry> {
    if flow.is_tcp_open() {
        return None;
    }
    let entry = CT4.get_ptr_mut(flow.key)?;
    // SAFETY: a pointer into a map value, valid for this program run.
    // Plain stores: one flow direction is almost always handled by one CPU
    // at a time; a lost race costs a count, never a translation.
    unsafe {
        (*entry).last_seen_ns = bpf_ktime_get_ns();
        (*entry).tcp_flags |= flow.tcp_flags;
        (*entry).packets += 1;
        (*entry).bytes += u64::from(len);
        Some(*entry)
    }
}

/// Starts tracking a translated flow: `flow` leaves as `original`'s
/// tuple, and the answers, which come back as the reverse of that tuple,
/// leave as the reverse of `flow`'s. Returns the original direction's entry.
#[inline(always)]
pub fn create(
    flow: &Flow,
    len: u32,
    kind: u8,
    target: &PublishTarget,
    snat_to_host: bool,
) -> Result<CtEntry, DropReason> {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let k = &flow.key;
    let original = CtEntry {
        nat_saddr: if snat_to_host { k.daddr } else { k.saddr },
        nat_daddr: target.ip,
        nat_sport: k.sport,
        nat_dport: target.port,
        dir: DIR_ORIGINAL,
        kind,
        tcp_flags: flow.tcp_flags,
        pad: 0,
        backend_ifindex: target.ifindex,
        pad2: 0,
        created_ns: now,
        last_seen_ns: now,
        packets: 1,
        bytes: u64::from(len),
    };
    let reply = CtEntry {
        nat_saddr: k.daddr,
        nat_daddr: k.saddr,
        nat_sport: k.dport,
        nat_dport: k.sport,
        dir: DIR_REPLY,
        tcp_flags: 0,
        packets: 0,
        bytes: 0,
        ..original
    };
    CT4.insert(CtKey::reply_of(&original, k.proto), reply, 0)
        .map_err(|_| DropReason::CtInsertFailed)?;
    CT4.insert(*k, original, 0)
        .map_err(|_| DropReason::CtInsertFailed)?;
    Ok(original)
}
