//! Published ports (`-p`), as the datapath sees them.
//!
//! - `PUBLISH4`: [`PublishKey`] -> [`PublishTarget`]. A key's `host_ip` is
//!   `0.0.0.0` for a port published on every address of the node.
//! - `HOST_ADDRS4`: IPv4 address of the node (`[u8; 4]`, network order) ->
//!   ifindex. Docker's `--dst-type LOCAL`: a wildcard publication only
//!   matches traffic to an address of the node.
//! - `OPEN_PORTS4`: [`PublishKey`] with the *container's* address and port
//!   -> its network id. Routed mode: the container ports that outsiders may
//!   reach directly at the container's address.
//! - `PUBLISH6`: [`PublishKey6`] -> [`PublishTarget6`]: a port published
//!   on every address of the node (`-p 8080:80`) is published on its IPv6
//!   addresses too (key `::`), to the container's IPv6 address, for an
//!   endpoint that has one.
//! - `OPEN_PORTS6`: [`PublishKey6`] with the container's IPv6 address and
//!   port -> its network id: `OPEN_PORTS4` for IPv6.
//! - `ALLOW_PORTS4`: [`PublishKey`] -> `u32` (1): the publications with a
//!   list of allowed sources (`weir allow`); `ALLOW4`: [`AllowKey`] (LPM)
//!   -> `u32` (1): the list's sources.

/// IP protocol numbers the datapath translates.
pub const PROTO_ICMP: u8 = 1;
/// See [`PROTO_ICMP`].
pub const PROTO_TCP: u8 = 6;
/// See [`PROTO_TCP`].
pub const PROTO_UDP: u8 = 17;
/// `ICMPv6`, as IPv6's next header.
pub const PROTO_ICMPV6: u8 = 58;

/// A published host port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PublishKey {
    /// The host address it is bound to, network order; `0.0.0.0`: all.
    pub host_ip: [u8; 4],
    /// The host port, network order.
    pub port: [u8; 2],
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// Explicit padding, always zero.
    pub pad: u8,
}

/// Where a published port leads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishTarget {
    /// The container's address, network order.
    pub ip: [u8; 4],
    /// The container's port, network order.
    pub port: [u8; 2],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
    /// Host-side ifindex of the container's veth.
    pub ifindex: u32,
    /// The container's network id.
    pub network_id: u32,
}

/// A host port published over IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PublishKey6 {
    /// The host address it is bound to; `::`: all of the node's.
    pub host_ip: [u8; 16],
    /// The host port, network order.
    pub port: [u8; 2],
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// Explicit padding, always zero.
    pub pad: u8,
}

impl PublishKey6 {
    #[must_use]
    pub const fn new(host_ip: [u8; 16], port: u16, proto: u8) -> Self {
        Self {
            host_ip,
            port: port.to_be_bytes(),
            proto,
            pad: 0,
        }
    }
}

/// Where a port published over IPv6 leads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishTarget6 {
    /// The container's IPv6 address.
    pub ip: [u8; 16],
    /// The container's port, network order.
    pub port: [u8; 2],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
    /// The container's network id.
    pub network_id: u32,
}

/// `ALLOW4`'s key (an LPM trie): a publication's key, then a source
/// address. An entry's prefix is 64 (the publication) plus the source
/// CIDR's length; `ALLOW_PORTS4` holds the publications that have a list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllowKey {
    pub publication: PublishKey,
    pub saddr: [u8; 4],
}

/// The bits of an [`AllowKey`] before the source: the publication's.
pub const ALLOW_PREFIX: u32 = 64;
/// Capacity of `ALLOW4` (sources, over every list).
pub const MAX_ALLOWED: u32 = 16_384;

/// Capacity of `PUBLISH4`.
pub const MAX_PUBLISHED: u32 = 65_536;
/// Capacity of `OPEN_PORTS4`.
pub const MAX_OPEN_PORTS: u32 = 65_536;
/// Capacity of `HOST_ADDRS4`.
pub const MAX_HOST_ADDRS: u32 = 1_024;

impl PublishKey {
    #[must_use]
    pub const fn new(host_ip: [u8; 4], port: u16, proto: u8) -> Self {
        Self {
            host_ip,
            port: port.to_be_bytes(),
            proto,
            pad: 0,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for PublishKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for PublishTarget {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for PublishKey6 {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for PublishTarget6 {}
#[cfg(feature = "user")]
// SAFETY: repr(C), two byte arrays' worth, every bit pattern valid.
unsafe impl aya::Pod for AllowKey {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<PublishKey>(), 8);
        assert_eq!(size_of::<PublishTarget>(), 16);
        assert_eq!(size_of::<PublishKey6>(), 20);
        assert_eq!(size_of::<PublishTarget6>(), 24);
        assert_eq!(size_of::<AllowKey>(), 12);
    }

    #[test]
    fn ports_are_kept_in_network_order() {
        assert_eq!(PublishKey::new([0; 4], 8080, PROTO_TCP).port, [0x1f, 0x90]);
    }
}
