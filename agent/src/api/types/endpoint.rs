//! Endpoints: what attaching asks for and what an endpoint is.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::{owner::Owner, publish::PortMapping};

/// What `weir attach` asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttachRequest {
    pub network: String,
    pub netns: std::path::PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address on a dual-stack network (default: the next free).
    #[serde(default)]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// Ports to publish (`-p` specs).
    #[serde(default)]
    pub ports: Vec<String>,
    /// The interface's name in the namespace (default `eth0`).
    #[serde(default)]
    pub ifname: Option<String>,
    /// Its MAC (default: `02:42` and the address, as Docker's).
    #[serde(default)]
    pub mac: Option<String>,
    /// Further networks to connect it to (`--network` more than once):
    /// an interface on each, after the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
}

/// What `weir connect` asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectRequest {
    pub network: String,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip6: Option<std::net::Ipv6Addr>,
}

/// The container-side interface name when none is asked for.
pub const DEFAULT_IFNAME: &str = "eth0";

/// A container attached to a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: u32,
    pub name: String,
    pub network: String,
    /// The network namespace file the container lives in.
    pub netns: PathBuf,
    /// Its IPv4 address; none on an IPv6-only network.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv6 address, on a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The container's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The host-side veth (`weirv<id>`), a port of the network's bridge.
    pub host_if: String,
    /// Its published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Who made it (an engine's endpoint: its veth and address are the
    /// engine's, its ports too).
    #[serde(default, skip_serializing_if = "Owner::is_weir")]
    pub owner: Owner,
    /// For a container's interface on a further network (`weir connect`):
    /// the endpoint of its first one, which keeps the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

impl Endpoint {
    /// Its MAC's octets (an unreadable record's: `02:42` and the address,
    /// as it was made).
    #[must_use]
    pub fn mac_octets(&self) -> [u8; 6] {
        crate::network::parse_mac(&self.mac)
            .unwrap_or_else(|| crate::network::mac_of(self.ip, self.ip6))
    }

    /// Its addresses, IPv4 first, space-separated (`10.88.0.2
    /// fd00:88::2`, or one of them).
    #[must_use]
    pub fn addresses(&self) -> String {
        let v4 = self.ip.map(|a| a.to_string());
        let v6 = self.ip6.map(|a| a.to_string());
        [v4, v6].into_iter().flatten().collect::<Vec<_>>().join(" ")
    }

    /// The address publication `m` leads to: the IPv6 one for a
    /// publication over IPv6 only or an endpoint without IPv4.
    #[must_use]
    pub fn target_of(&self, m: &PortMapping) -> Option<std::net::IpAddr> {
        match (self.ip, self.ip6) {
            (Some(ip), _) if !m.is_ipv6_only() => Some(ip.into()),
            (_, Some(ip6)) => Some(ip6.into()),
            (ip, None) => ip.map(Into::into),
        }
    }
}

/// A published port and who publishes it (`weir port`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortView {
    pub endpoint: String,
    pub container_ip: Option<IpAddr>,
    #[serde(flatten)]
    pub mapping: PortMapping,
}
