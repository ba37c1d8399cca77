//! Networks as the datapath sees them.
//!
//! - `NETWORKS4`: LPM trie, (prefix length, subnet address `[u8; 4]`) ->
//!   [`NetInfo`]: which network an address belongs to, and how that
//!   network reaches the outside.
//! - `UPLINKS`: uplink ifindex (`u32`) -> its masquerade address
//!   (`[u8; 4]`, network order).
//! - `NETWORKS6`: LPM trie, (prefix length, IPv6 subnet `[u8; 16]`) ->
//!   [`NetInfo6`]: the IPv6 side of dual-stack networks.

/// What the datapath knows of a network.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetInfo {
    /// The agent's network id.
    pub id: u32,
    /// The gateway (the bridge's address), network order.
    pub gateway: [u8; 4],
    /// `--snat-ip`, network order; 0.0.0.0: the uplink's address.
    pub snat_ip: [u8; 4],
    /// [`NET_MASQUERADE`] | [`NET_INTERNAL`] | [`NET_ICC`] | [`NET_ROUTED`].
    pub flags: u32,
    /// The bridge's MAC: the only unicast L2 destination of a container
    /// in a network with `--icc=false`.
    pub gateway_mac: [u8; 6],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
}

/// What the datapath knows of a network's IPv6 side.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetInfo6 {
    /// The agent's network id (the same as its IPv4 side's).
    pub id: u32,
    /// The network's [`NetInfo::flags`].
    pub flags: u32,
    /// The gateway (the bridge's IPv6 address): the node's, not a
    /// container's.
    pub gateway: [u8; 16],
}

#[cfg(feature = "user")]
// SAFETY: repr(C), no padding (two `u32`s, 16 bytes), every bit pattern valid.
unsafe impl aya::Pod for NetInfo6 {}

/// Egress to the outside is masqueraded.
pub const NET_MASQUERADE: u32 = 1;
/// No egress beyond the network and its gateway.
pub const NET_INTERNAL: u32 = 1 << 1;
/// Containers of the network may talk to each other.
pub const NET_ICC: u32 = 1 << 2;
/// `--mode routed`.
pub const NET_ROUTED: u32 = 1 << 3;

/// Capacity of `NETWORKS4`.
pub const MAX_NETWORKS: u32 = 4_096;

/// `CLUSTER4` and `CLUSTER6` (`weir agent --cluster-cidr`): the cluster's
/// pod addresses. Traffic between them and this node's containers is
/// neither masqueraded nor refused as unsolicited, as in Kubernetes' model.
pub const CLUSTER_PODS: u32 = 1;
/// `CLUSTER4`, `CLUSTER6` (`--node-cidr`): the cluster's nodes, like its
/// pods.
pub const CLUSTER_NODES: u32 = 1 << 1;
/// `CLUSTER4`, `CLUSTER6` (`--service-cidr`): the cluster's Service
/// addresses, which kube-proxy's netfilter rules translate: a container's
/// packet to one is handed to the node's stack, never sent past it.
pub const CLUSTER_SERVICES: u32 = 1 << 2;
/// Capacity of `CLUSTER4`, and of `CLUSTER6`.
pub const MAX_CLUSTER_CIDRS: u32 = 256;

/// The skb mark bit a container's packet to a Service carries when
/// `tc_from_container` hands it to the stack: `tc_to_uplink`, seeing it
/// leave after netfilter translated it, masquerades it with [`crate::ct::CT_STACK`]
/// so that its answers go back through netfilter too. (kube-proxy uses
/// `0x4000` and `0x8000`.)
pub const MARK_VIA_STACK: u32 = 0x0080_0000;
/// Capacity of `UPLINKS`.
pub const MAX_UPLINKS: u32 = 64;

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for NetInfo {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<NetInfo>(), 24);
        assert_eq!(size_of::<NetInfo6>(), 24);
    }
}
