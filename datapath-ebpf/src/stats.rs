//! Counting into the per-CPU counter maps. No locks: each CPU owns its slot.

use aya_ebpf::btf_maps::PerCpuArray;
use weir_common::{
    ct::DIR_ORIGINAL,
    publish::{PublishKey, PublishKey6},
    stats::{Counter, Hook, NatCounters, PortCounters},
};

use crate::maps::{HOOK_STATS, PORT_STATS, PORT_STATS6, SNAT_STATS};

/// Adds one packet of `len` bytes to slot `index` of a per-CPU counter map.
#[inline(always)]
pub fn add<const N: usize>(map: &PerCpuArray<Counter, N>, index: u32, len: u32) {
    if let Some(counter) = map.get_ptr_mut(index) {
        // SAFETY: the pointer comes from a successful lookup in a per-CPU
        // array; only this CPU writes this slot while the program runs.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += u64::from(len);
        }
    }
}

/// Counts a packet seen at `hook`.
#[inline(always)]
pub fn hook(hook: Hook, len: u32) {
    add(&HOOK_STATS, hook.index(), len);
}

/// Adds to network `network_id`'s masquerade counters.
#[inline(always)]
pub fn nat(network_id: u32, add: NatCounters) {
    if let Some(c) = SNAT_STATS.get_ptr_mut(network_id) {
        // SAFETY: this CPU's slot of a per-CPU array, as in `add`.
        unsafe {
            (*c).flows += add.flows;
            (*c).packets += add.packets;
            (*c).bytes += add.bytes;
            (*c).retries += add.retries;
            (*c).exhausted += add.exhausted;
        }
    }
}

/// Adds a packet of `len` bytes in direction `dir` (and, with `new_flow`,
/// a flow) to publication `key`'s counters. A flow that is not a
/// publication's (protocol 0) or a key the agent has no entry for counts
/// nothing.
#[inline(always)]
pub fn port(key: &PublishKey, dir: u8, len: u32, new_flow: bool) {
    if key.proto == 0 {
        return;
    }
    if let Some(c) = PORT_STATS.get_ptr_mut(key) {
        // SAFETY: this CPU's value in a per-CPU hash, as in `add`.
        unsafe { count_port(c, dir, len, new_flow) };
    }
}

/// [`port`] for a flow that came in by `PUBLISH6` (`PORT_STATS6`).
#[inline(always)]
pub fn port6(key: &PublishKey6, dir: u8, len: u32, new_flow: bool) {
    if key.proto == 0 {
        return;
    }
    if let Some(c) = PORT_STATS6.get_ptr_mut(key) {
        // SAFETY: as in `port`.
        unsafe { count_port(c, dir, len, new_flow) };
    }
}

/// # Safety
///
/// `c` is this CPU's value in a per-CPU hash of counters.
#[inline(always)]
unsafe fn count_port(c: *mut PortCounters, dir: u8, len: u32, new_flow: bool) {
    // SAFETY: the caller's pointer.
    unsafe {
        if new_flow {
            (*c).flows += 1;
        }
        if dir == DIR_ORIGINAL {
            (*c).packets_in += 1;
            (*c).bytes_in += u64::from(len);
        } else {
            (*c).packets_out += 1;
            (*c).bytes_out += u64::from(len);
        }
    }
}

/// Counts a flow of publication `key` that no packet hook sees (the
/// node's own socket, pointed at the container by the socket hooks).
#[inline(always)]
pub fn port_flow(key: &PublishKey) {
    if let Some(c) = PORT_STATS.get_ptr_mut(key) {
        // SAFETY: this CPU's value in a per-CPU hash, as in `add`.
        unsafe { (*c).flows += 1 };
    }
}

/// [`port_flow`] for a publication over IPv6 (`PORT_STATS6`).
#[inline(always)]
pub fn port_flow6(key: &PublishKey6) {
    if let Some(c) = PORT_STATS6.get_ptr_mut(key) {
        // SAFETY: as in `port_flow`.
        unsafe { (*c).flows += 1 };
    }
}
