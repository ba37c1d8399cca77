//! What `weir-netavark` asks the agent (`/v1/netavark/*`), in weir's
//! terms: the plugin has already read netavark's JSON. `create` is a
//! [`crate::network::NetworkSpec`] and answers a `NetworkView`; teardown
//! is a [`super::CniRef`] (a container's id and interface name) and
//! setup answers a [`super::CniAttachment`], as CNI's do: a runtime's
//! interface is one thing whichever door it came through.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::{
    network::{Subnet, Subnet6},
    publish::PortMapping,
};

/// setup: one interface of a container on one network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetavarkSetup {
    pub container_id: String,
    /// Podman's name for the container (the endpoint's, when it is free).
    pub container_name: String,
    /// The interface in the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    pub netns: PathBuf,
    pub network: String,
    /// The subnets Podman's configuration of the network names: each must
    /// be the weir network's, or the status Podman is told would not be
    /// what it configured.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    #[serde(default)]
    pub subnets6: Vec<Subnet6>,
    /// `static_ips`, one of each family at most.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// `static_mac`.
    #[serde(default)]
    pub mac: Option<String>,
    /// Every port the container publishes, one host port each (netavark's
    /// ranges and protocol lists already expanded).
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}
