//! What an engine's follower (`crate::docker`) hands the endpoint core:
//! the engine's networks and its containers' interfaces as plain data.

use std::{net::Ipv4Addr, path::PathBuf};

use crate::{network::NetworkSpec, owner::Owner, publish::PortMapping};

/// A network an engine made, as weir takes it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignNetwork {
    pub spec: NetworkSpec,
    /// The engine's bridge (`docker0`, `br-<id>`).
    pub bridge: String,
    pub owner: Owner,
}

/// A container's interface an engine made on one of its networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignEndpoint {
    /// The endpoint's name in weir (the container's name).
    pub name: String,
    pub owner: Owner,
    /// The weir network (a [`ForeignNetwork`]'s name).
    pub network: String,
    /// The container's network namespace.
    pub netns: PathBuf,
    /// Its IPv4 address; none on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address, on a network where the engine enabled IPv6.
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The container-side interface's MAC (which finds it in `netns`).
    pub mac: [u8; 6],
    /// The ports the engine published to it (and holds on the node).
    pub ports: Vec<PortMapping>,
}
