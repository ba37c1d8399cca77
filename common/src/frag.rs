//! IPv4 fragments of translated flows. Only a datagram's first fragment
//! carries the ports that conntrack keys on; the datapath records the
//! translation that fragment got, and gives each later fragment of the
//! datagram (same addresses, protocol and IP identification, as it
//! arrived) the same address rewrite.
//!
//! - `FRAG4`: [`FragKey`] (the datagram as it arrived) -> [`FragEntry`]

/// A datagram as its fragments arrive: addresses, IP identification,
/// protocol; network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub id: [u8; 2],
    pub proto: u8,
    /// Explicit padding, always zero.
    pub pad: u8,
}

impl FragKey {
    #[must_use]
    #[inline]
    pub const fn new(saddr: [u8; 4], daddr: [u8; 4], id: [u8; 2], proto: u8) -> Self {
        Self {
            saddr,
            daddr,
            id,
            proto,
            pad: 0,
        }
    }
}

/// The addresses the first fragment left with, and how many later
/// fragments were given them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragEntry {
    pub nat_saddr: [u8; 4],
    pub nat_daddr: [u8; 4],
    /// Later fragments translated (a plain add: a rare race can miss one).
    pub fragments: u32,
    /// Explicit padding, always zero.
    pub pad: u32,
}

/// Capacity of `FRAG4`: datagrams in flight in fragments (LRU).
pub const MAX_FRAGMENTED: u32 = 8192;

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for FragKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for FragEntry {}

#[cfg(test)]
mod tests {
    use super::{FragEntry, FragKey};

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(core::mem::size_of::<FragKey>(), 12);
        assert_eq!(core::mem::size_of::<FragEntry>(), 16);
        let k = FragKey::new([10, 0, 0, 2], [203, 0, 113, 2], [0x12, 0x34], 17);
        assert_eq!((k.id, k.proto, k.pad), ([0x12, 0x34], 17, 0));
    }
}
