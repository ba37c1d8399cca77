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
    /// [`EP_XDP_TARGET`] or 0 (a byte that was padding before: entries an
    /// older agent wrote read as 0).
    pub flags: u8,
    /// Explicit padding, always zero.
    pub pad: u8,
}

/// [`EndpointRef::flags`]: the veth's container end takes XDP frames
/// (its NAPI is on: the agent made it with GRO), so XDP on an uplink may
/// redirect a published port's packets straight into it. Without it a
/// redirected frame would be lost; such endpoints (an engine's veths) are
/// left to tc.
pub const EP_XDP_TARGET: u8 = 1;

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
