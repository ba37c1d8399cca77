//! Events the datapath sends to the agent through the `EVENTS` ring buffer
//! (`weir monitor`). One record per dropped packet; when the ring is full
//! the record is lost (the drop is still counted in `DROP_STATS`).

/// A dropped packet: when, why, where, and its tuple as it arrived.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropEvent {
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub time_ns: u64,
    /// The stable [`crate::drop::DropReason`] number.
    pub reason: u32,
    /// The interface the packet arrived on (or was leaving by).
    pub ifindex: u32,
    /// The packet's length in bytes.
    pub len: u32,
    /// The [`crate::stats::Hook`] that dropped it.
    pub hook: u8,
    /// The IP protocol (0: not IPv4; for ARP, see `ethertype`).
    pub proto: u8,
    /// The Ethernet type, network order.
    pub ethertype: [u8; 2],
    /// Source and destination: IPv4 addresses, or ARP's sender and target.
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// TCP/UDP ports, or the ICMP echo identifier; network order.
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    /// The Ethernet source MAC.
    pub smac: [u8; 6],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
}

/// An IPv6 packet's drop: a [`DropEvent`] (its addresses 0, `proto` the
/// next header, the ports as for IPv4; the `ICMPv6` echo identifier) and the
/// IPv6 addresses after it. The agent tells the two by the record's
/// length; an agent that knows only [`DropEvent`] reads its first part.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropEvent6 {
    pub event: DropEvent,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Size of the `EVENTS` ring buffer in bytes (a power of two, a multiple
/// of the page size): about 4,000 events between two reads by the agent.
pub const EVENTS_BYTES: u32 = 256 * 1024;

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for DropEvent {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for DropEvent6 {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<DropEvent>(), 48);
        assert_eq!(size_of::<DropEvent6>(), 80);
    }
}
