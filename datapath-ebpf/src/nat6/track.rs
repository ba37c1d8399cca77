//! A new IPv6 flow's two `CT6` entries, built in `SCRATCH6` off the
//! stack: a masqueraded or routed flow out ([`create`], after `egress`
//! found it new), and the pair every tracked flow gets ([`pair`], also
//! for the flows `publish` tracks).

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_coarse_ns};
use weir_common::{
    ct::{CT_INNER, DIR_ORIGINAL, DIR_REPLY, KIND_ROUTED, KIND_SNAT, is_tcp_open},
    ct6::{CtEntry6, Scratch6},
    drop::DropReason,
    publish::PublishKey6,
    stats::NatCounters,
};

use super::{Flow6, reopen};
use crate::{
    ct::{SNAT_TRIES, snat_port},
    maps::{CT6, SCRATCH6},
    stats,
};

/// Starts tracking the flow `egress` found new (its tuple, address,
/// network, range and kind in `SCRATCH6`). Masquerade: a port of the
/// range (the container's own when it lies there and is free), claimed
/// by inserting the answers' entry with `BPF_NOEXIST`; a SYN takes the
/// port of a TCP flow that has ended ([`reopen::release_if_closed`]). Routed: the
/// tuple as it is (a stale entry on it is replaced, as `CT4`'s routed
/// flows do). Its entries are built in the slot too, off the stack; the
/// flow's own packet is counted when `egress` finds the entry.
#[inline(never)]
pub fn create() -> Result<(), DropReason> {
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: a per-CPU array slot of ours for this program run.
    let (flow, nat_ip, network_id, ports, kind, stack) = unsafe {
        (
            &*(&raw const (*s).flow).cast::<Flow6>(),
            &(*s).nat_ip,
            (*s).network_id,
            (*s).ports,
            (*s).kind,
            (*s).stack,
        )
    };
    let claim = if kind == KIND_ROUTED {
        0
    } else {
        u64::from(BPF_NOEXIST)
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`ports` packs the range's two 16-bit ends, `max` in its low half"
    )]
    let (min, max) = ((ports >> 16) as u16, ports as u16);
    if min == 0 || max < min {
        return Err(DropReason::SnatExhausted);
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let k = &flow.key;
    // SAFETY: a per-CPU array slot of ours for this program run; the
    // port is written in both entries before they are inserted.
    unsafe {
        let o = &raw mut (*s).original;
        (*o).nat_saddr = *nat_ip;
        (*o).nat_daddr = k.daddr;
        (*o).nat_sport = k.sport;
        (*o).nat_dport = k.dport;
        pair(s, kind, (CT_INNER | stack, stack), network_id, now);
        (*o).publication = PublishKey6::default();
        (*s).reply.publication = PublishKey6::default();
    }
    for i in 0..SNAT_TRIES {
        let port = snat_port(i, k.sport, min, max);
        // SAFETY: as above; the map helpers read the slot's bytes.
        unsafe {
            (*s).reply_key.dport = port.to_be_bytes();
            let mut claimed = CT6.insert(&(*s).reply_key, &(*s).reply, claim).is_ok();
            if !claimed && is_tcp_open(k.proto, (*s).tcp_flags) && reopen::release_if_closed(s) {
                claimed = CT6.insert(&(*s).reply_key, &(*s).reply, claim).is_ok();
            }
            if claimed {
                (*s).original.nat_sport = port.to_be_bytes();
                CT6.insert(k, &(*s).original, 0)
                    .map_err(|_| DropReason::CtInsertFailed)?;
                if kind == KIND_SNAT {
                    stats::nat(
                        network_id,
                        NatCounters {
                            flows: 1,
                            retries: u64::from(i),
                            ..NatCounters::default()
                        },
                    );
                }
                return Ok(());
            }
        }
    }
    stats::nat(
        network_id,
        NatCounters {
            retries: u64::from(SNAT_TRIES),
            exhausted: 1,
            ..NatCounters::default()
        },
    );
    Err(DropReason::SnatExhausted)
}

/// A new flow's two entries in the slot, the original's tuple written by
/// the caller: both begun (`flags`: the original's, the answers'), the
/// answers' entry leading back to the tuple the flow came with, and
/// keyed by the reverse of the tuple it leaves with.
///
/// # Safety
///
/// `s` is this program run's `SCRATCH6` slot, its flow read.
#[inline(always)]
pub(super) unsafe fn pair(s: *mut Scratch6, kind: u8, flags: (u8, u8), network_id: u32, now: u64) {
    // SAFETY: the caller's slot.
    unsafe {
        let k = &(*s).flow;
        let o = &raw mut (*s).original;
        begin(o, DIR_ORIGINAL, kind, flags.0, network_id, now);
        (*o).tcp_flags = (*s).tcp_flags;
        let r = &raw mut (*s).reply;
        (*r).nat_saddr = k.daddr;
        (*r).nat_daddr = k.saddr;
        (*r).nat_sport = k.dport;
        (*r).nat_dport = k.sport;
        begin(r, DIR_REPLY, kind, flags.1, network_id, now);
        let rk = &raw mut (*s).reply_key;
        (*rk).saddr = (*o).nat_daddr;
        (*rk).daddr = (*o).nat_saddr;
        (*rk).sport = (*o).nat_dport;
        (*rk).dport = (*o).nat_sport;
        (*rk).proto = k.proto;
        (*rk).pad = [0; 3];
    }
}

/// One direction's entry begun in the slot: its direction, kind, flags
/// and network, created and seen `now`, no packet or TCP flag yet (its
/// tuple and publication are the caller's to write).
///
/// # Safety
///
/// `e` points into the caller's `SCRATCH6` slot.
#[inline(always)]
unsafe fn begin(e: *mut CtEntry6, dir: u8, kind: u8, flags: u8, network_id: u32, now: u64) {
    // SAFETY: the caller's pointer, into a slot of ours.
    unsafe {
        (*e).dir = dir;
        (*e).kind = kind;
        (*e).tcp_flags = 0;
        (*e).flags = flags;
        (*e).network_id = network_id;
        (*e).pad = 0;
        (*e).created_ns = now;
        (*e).last_seen_ns = now;
        (*e).packets = 0;
        (*e).bytes = 0;
        (*e).pad2 = [0; 4];
    }
}
