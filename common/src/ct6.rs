//! IPv6 connection tracking: `CT6`, an LRU hash of [`CtKey6`] ->
//! [`CtEntry6`], kept the way `CT4` is ([`crate::ct`]): a translated
//! flow has an entry per direction, each keyed by the tuple as the hook
//! that meets it first sees it, each holding the tuple to rewrite it to.
//! Kinds, directions, flags and timeouts are `CT4`'s.
//!
//! - `PORT_STATS6`: per-CPU [`PublishKey6`] -> [`crate::stats::PortCounters`]:
//!   `PORT_STATS` for the flows that come in by `PUBLISH6`.
//! - `UPLINKS6`: uplink ifindex (`u32`) -> its IPv6 masquerade address
//!   (`[u8; 16]`).

use crate::publish::PublishKey6;

/// An IPv6 flow's tuple in one direction, as on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey6 {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    /// Explicit padding, always zero.
    pub pad: [u8; 3],
}

impl CtKey6 {
    /// A key with its padding zeroed.
    #[must_use]
    pub const fn new(
        saddr: [u8; 16],
        daddr: [u8; 16],
        sport: [u8; 2],
        dport: [u8; 2],
        proto: u8,
    ) -> Self {
        Self {
            saddr,
            daddr,
            sport,
            dport,
            proto,
            pad: [0; 3],
        }
    }

    /// The key the answers of a packet leaving as `e`'s tuple arrive with.
    #[must_use]
    pub const fn reply_of(e: &CtEntry6, proto: u8) -> Self {
        Self::new(e.nat_daddr, e.nat_saddr, e.nat_dport, e.nat_sport, proto)
    }
}

/// One direction of a tracked IPv6 flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry6 {
    pub nat_saddr: [u8; 16],
    pub nat_daddr: [u8; 16],
    pub nat_sport: [u8; 2],
    pub nat_dport: [u8; 2],
    /// [`crate::ct::DIR_ORIGINAL`] or [`crate::ct::DIR_REPLY`].
    pub dir: u8,
    /// [`crate::ct::KIND_SNAT`] or [`crate::ct::KIND_ROUTED`].
    pub kind: u8,
    /// TCP flags seen in this direction, or-ed together.
    pub tcp_flags: u8,
    /// [`crate::ct::CT_INNER`], or 0.
    pub flags: u8,
    /// The network of the container the flow belongs to.
    pub network_id: u32,
    /// Explicit padding, always zero.
    pub pad: u32,
    pub created_ns: u64,
    pub last_seen_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The publication the flow came in by (`PUBLISH6`'s key, its
    /// counters in `PORT_STATS6`), or all zero (protocol 0): none.
    pub publication: PublishKey6,
    /// Explicit padding, always zero.
    pub pad2: [u8; 4],
}

/// `SCRATCH6`'s slot: the packet's flow, a new flow's two entries and the
/// answers' key, built there by the program (off its stack).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scratch6 {
    /// The packet's flow as it arrived, and its TCP flags.
    pub flow: CtKey6,
    pub tcp_flags: u8,
    /// Explicit padding, always zero.
    pub pad: [u8; 7],
    pub reply_key: CtKey6,
    pub reply: CtEntry6,
    pub original: CtEntry6,
    /// A new flow's masquerade, from the lookup that missed to the call
    /// that creates it: the address, the network, the range
    /// (`min << 16 | max`), and the kind ([`crate::ct::KIND_SNAT`], or
    /// [`crate::ct::KIND_ROUTED`] for a flow that keeps its tuple).
    pub nat_ip: [u8; 16],
    pub network_id: u32,
    pub ports: u32,
    pub kind: u8,
    /// `CT_STACK` when the new flow's first packet went through the
    /// node's stack (a Service's, kube-proxy's to translate), else 0.
    pub stack: u8,
    /// Explicit padding, always zero.
    pub pad2: [u8; 6],
    /// A key of another flow's entry the program looks at (the answers
    /// of a flow opened again, an ended flow whose port a new one takes).
    pub other_key: CtKey6,
}

/// Capacity of `CT6` (entries, two per flow).
pub const MAX_CT6_ENTRIES: u32 = 65_536;

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for CtKey6 {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for CtEntry6 {}
#[cfg(feature = "user")]
// SAFETY: repr(C), made of the two above and explicit padding.
unsafe impl aya::Pod for Scratch6 {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<CtKey6>(), 40);
        assert_eq!(size_of::<CtEntry6>(), 104);
        assert_eq!(size_of::<Scratch6>(), 368);
    }

    #[test]
    fn a_reply_key_is_the_reverse_of_the_tuple_sent() {
        let e = CtEntry6 {
            nat_saddr: [1; 16],
            nat_daddr: [2; 16],
            nat_sport: [0, 1],
            nat_dport: [0, 2],
            ..CtEntry6::default()
        };
        let k = CtKey6::reply_of(&e, 6);
        assert_eq!(
            (k.saddr, k.daddr, k.sport, k.dport),
            ([2; 16], [1; 16], [0, 2], [0, 1])
        );
    }
}
