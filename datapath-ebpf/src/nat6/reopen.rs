//! What `CT6` does, as `CT4` does ([`crate::ct`]), when a TCP tuple is
//! opened again: a SYN that finds its flow's entry starts the flags of
//! both directions over (the ended flow's FIN or RST would have the new
//! one swept as closing), and a new masqueraded flow whose port probe
//! meets the claim of a flow that has ended takes that port (Linux's NAT
//! reuses a closed connection's tuple so). Without the second, at a few
//! thousand connections a second the closing time of ended flows, not
//! the flows alive, held every port of the range. Both look at the other
//! entry through the slot's `other_key`, off the stack.

use weir_common::{
    ct::{KIND_SNAT, claim_is_free},
    ct6::{CtEntry6, CtKey6, Scratch6},
};

use crate::maps::{CT6, SCRATCH6};

/// `*key` = the key of the entry of the answers to a packet that left
/// with `e`'s tuple: that tuple reversed.
///
/// # Safety
///
/// `key` points into this program run's `SCRATCH6` slot, `e` into a map
/// value or the slot.
#[inline(always)]
unsafe fn reverse_of(key: *mut CtKey6, e: *const CtEntry6, proto: u8) {
    // SAFETY: the caller's pointers.
    unsafe {
        (*key).saddr = (*e).nat_daddr;
        (*key).daddr = (*e).nat_saddr;
        (*key).sport = (*e).nat_dport;
        (*key).dport = (*e).nat_sport;
        (*key).proto = proto;
        (*key).pad = [0; 3];
    }
}

/// A SYN found `e`, its flow's entry: the flow starts over, its flags
/// this SYN's, its answers' none.
///
/// # Safety
///
/// `e` points into a `CT6` value, valid for this program run.
#[inline(always)]
pub unsafe fn start_over(e: *mut CtEntry6, proto: u8, tcp_flags: u8) {
    // SAFETY: the caller's pointer; the slot is this program run's.
    unsafe {
        (*e).tcp_flags = tcp_flags;
        let Some(s) = SCRATCH6.get_ptr_mut(0) else {
            return;
        };
        let key = &raw mut (*s).other_key;
        reverse_of(key, e, proto);
        if let Some(answers) = CT6.get_ptr_mut(&*key) {
            (*answers).tcp_flags = 0;
        }
    }
}

/// Frees the masquerade tuple whose answers' entry is under the slot's
/// `reply_key`, held by a TCP flow that has ended (a RST, or a FIN each
/// way) or by an answers' entry whose flow's own entry is gone, for the
/// new flow in the slot to take: both entries are removed. Returns
/// whether they were.
///
/// # Safety
///
/// `s` is this program run's `SCRATCH6` slot, its `reply_key` written.
#[inline(always)]
pub unsafe fn release_if_closed(s: *mut Scratch6) -> bool {
    // SAFETY: the caller's slot; map value pointers valid for this run.
    unsafe {
        let reply_key = &raw const (*s).reply_key;
        let Some(reply) = CT6.get_ptr(&*reply_key) else {
            // Gone since the insert failed: free now.
            return true;
        };
        if (*reply).kind != KIND_SNAT {
            return false;
        }
        let reply_flags = (*reply).tcp_flags;
        let original_key = &raw mut (*s).other_key;
        reverse_of(original_key, reply, (*reply_key).proto);
        let original = CT6.get_ptr(&*original_key).map(|e| (*e).tcp_flags);
        if !claim_is_free(original, reply_flags) {
            return false;
        }
        let _ = CT6.remove(&*original_key);
        let _ = CT6.remove(&*reply_key);
        true
    }
}
