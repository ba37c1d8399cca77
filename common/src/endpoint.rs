//! Endpoints (container veths) as the datapath sees them.
//!
//! - `ENDPOINTS`: host-side ifindex (`u32`) -> [`EndpointInfo`]
//! - `EP_BY_IP4`: container IPv4 address (`[u8; 4]`, network order) ->
//!   [`EndpointRef`]
//! - `ENDPOINTS6`: host-side ifindex (`u32`) -> the container's IPv6
//!   address (`[u8; 16]`), for an endpoint of a dual-stack network

/// What the datapath knows of the endpoint behind a host-side veth.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The container's address, network order.
    pub ip: [u8; 4],
    /// The container's MAC.
    pub mac: [u8; 6],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
    /// The network's id (the agent's `Network::id`).
    pub network_id: u32,
}

/// Where a container address lives: for redirects and reverse lookups.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointRef {
    /// Host-side ifindex of the container's veth.
    pub ifindex: u32,
    /// The container's MAC.
    pub mac: [u8; 6],
    /// Always 0. It held `EP_XDP_TARGET` while XDP forwarded into veths;
    /// kept, so that the pinned map's layout (and an upgrade's entries)
    /// stay as they are.
    pub flags: u8,
    /// Explicit padding, always zero.
    pub pad: u8,
}

/// Capacity of the endpoint maps.
pub const MAX_ENDPOINTS: u32 = 16_384;

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for EndpointInfo {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for EndpointRef {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<EndpointInfo>(), 16);
        assert_eq!(size_of::<EndpointRef>(), 12);
    }
}
