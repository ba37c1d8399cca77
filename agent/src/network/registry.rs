//! The networks an agent owns, and the rules a new one must pass before
//! anything is made in the kernel: a valid, unused name; a subnet that
//! overlaps no other; a gateway inside it.

use std::{
    collections::BTreeMap,
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

use super::{
    Ipam, IpamError, Subnet,
    v6::{Ipam6, Ipam6Error, Subnet6},
};
use crate::owner::Owner;

/// How a network reaches the outside (`--mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Container addresses stay private; egress is masqueraded.
    #[default]
    Nat,
    /// Container addresses are routed; only published ports are reachable.
    Routed,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Nat => "nat",
            Mode::Routed => "routed",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nat" => Ok(Mode::Nat),
            "routed" => Ok(Mode::Routed),
            other => Err(format!("invalid mode `{other}`: expected nat or routed")),
        }
    }
}

/// What `weir network create` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    /// The IPv4 subnet; none for an IPv6-only network.
    #[serde(default)]
    pub subnet: Option<Subnet>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default = "yes")]
    pub icc: bool,
    #[serde(default = "yes")]
    pub masquerade: bool,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub snat_ip: Option<Ipv4Addr>,
    /// The IPv6 subnet of a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Subnet6>,
    /// Its gateway (default: `::1` of the subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
}

fn yes() -> bool {
    true
}

impl NetworkSpec {
    /// A network with Docker's defaults: gateway = first address, icc and
    /// masquerade on, not internal, nat mode.
    #[must_use]
    pub fn new(name: &str, subnet: Subnet) -> Self {
        Self {
            name: name.to_owned(),
            subnet: Some(subnet),
            gateway: None,
            internal: false,
            icc: yes(),
            masquerade: yes(),
            mode: Mode::Nat,
            snat_ip: None,
            subnet6: None,
            gateway6: None,
        }
    }
}

/// A network the agent owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Small number, unique on this agent; the datapath's network id.
    pub id: u32,
    pub name: String,
    /// The Linux bridge that realises the network.
    pub bridge: String,
    /// The IPv4 side; none on an IPv6-only network.
    #[serde(default)]
    pub ipam: Option<Ipam>,
    /// The IPv6 side of a dual-stack or IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam6: Option<Ipam6>,
    pub internal: bool,
    pub icc: bool,
    pub masquerade: bool,
    pub mode: Mode,
    pub snat_ip: Option<Ipv4Addr>,
    /// Who made the network and its bridge.
    #[serde(default, skip_serializing_if = "Owner::is_weir")]
    pub owner: Owner,
    /// The bridge's MAC, when weir did not make the bridge (weir's own
    /// bridges have `mac_for(gateway)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_mac: Option<[u8; 6]>,
    /// The address pool its subnet came from (created without `--subnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<super::Pool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "invalid network name `{name}`: use 1 to 64 characters from [a-zA-Z0-9_.-], starting with a letter or digit"
    )]
    InvalidName { name: String },
    #[error("network `{name}` already exists")]
    Exists { name: String },
    #[error("subnet {subnet} overlaps {other} of network `{network}`")]
    Overlap {
        subnet: Subnet,
        other: Subnet,
        network: String,
    },
    #[error(
        "--snat-ip is for networks that masquerade; `{name}` has --masquerade=false, --internal or --mode routed"
    )]
    SnatWithoutMasquerade { name: String },
    #[error("network `{name}` not found")]
    NotFound { name: String },
    #[error("no free network id left")]
    NoFreeId,
    #[error("subnet {subnet} overlaps {other} of network `{network}`")]
    Overlap6 {
        subnet: Subnet6,
        other: Subnet6,
        network: String,
    },
    #[error("{0}")]
    Addresses(String),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Ipam6(#[from] Ipam6Error),
}

/// A network's subnets and gateways, one of each per family (at least
/// one family).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub subnet6: Option<Subnet6>,
    pub gateway6: Option<Ipv6Addr>,
}

/// `--subnet` and `--gateway` as Docker takes them: each given once per
/// family, an IPv6 one making the network dual stack (`--ipv6` says so
/// too, and then needs one), an IPv6 one alone IPv6-only; none at all
/// leaves the agent to pick an IPv4 one from its address pools.
pub fn addresses(
    subnets: &[String],
    gateways: &[String],
    ipv6: bool,
) -> Result<Addresses, NetworkError> {
    let bad = |e: &dyn fmt::Display| NetworkError::Addresses(e.to_string());
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for s in subnets {
        if s.contains(':') {
            v6.push(s.parse::<Subnet6>().map_err(|e| bad(&e))?);
        } else {
            v4.push(s.parse::<Subnet>().map_err(|e| bad(&e))?);
        }
    }
    let (mut g4, mut g6) = (Vec::new(), Vec::new());
    for g in gateways {
        match g.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => g4.push(a),
            Ok(std::net::IpAddr::V6(a)) => g6.push(a),
            Err(_) => return Err(bad(&format!("invalid gateway `{g}`: not an address"))),
        }
    }
    if v4.len() > 1 || v6.len() > 1 || g4.len() > 1 || g6.len() > 1 {
        return Err(bad(
            &"give at most one --subnet and one --gateway per family",
        ));
    }
    let subnet = v4.first().copied();
    let dual = v6.first().copied();
    if subnet.is_none() && dual.is_none() && !(g4.is_empty() && g6.is_empty()) {
        return Err(bad(&"a --gateway needs its --subnet"));
    }
    if !g4.is_empty() && subnet.is_none() {
        return Err(bad(&"an IPv4 --gateway needs an IPv4 --subnet"));
    }
    if ipv6 && dual.is_none() {
        return Err(bad(
            &"--ipv6 needs an IPv6 --subnet (weir has no IPv6 address pool yet)",
        ));
    }
    if !g6.is_empty() && dual.is_none() {
        return Err(bad(&"an IPv6 --gateway needs an IPv6 --subnet"));
    }
    Ok(Addresses {
        subnet,
        gateway: g4.first().copied(),
        subnet6: dual,
        gateway6: g6.first().copied(),
    })
}

/// An address on a network's link: the address, its prefix length, the
/// network's gateway.
pub type OnLink<A> = (A, u8, A);

impl Network {
    /// The IPv4 gateway, on a network with IPv4.
    #[must_use]
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.ipam.as_ref().map(Ipam::gateway)
    }

    /// An endpoint's IPv4 and IPv6 addresses on this network, each with
    /// its prefix length and gateway: what its interface is configured
    /// with and what a CNI result reports.
    #[must_use]
    pub fn on_link(
        &self,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> (Option<OnLink<Ipv4Addr>>, Option<OnLink<Ipv6Addr>>) {
        (
            self.ipam
                .as_ref()
                .zip(ip)
                .map(|(i, ip)| (ip, i.subnet().prefix(), i.gateway())),
            self.ipam6
                .as_ref()
                .zip(ip6)
                .map(|(i, ip6)| (ip6, i.subnet().prefix(), i.gateway())),
        )
    }

    /// Gives an endpoint's addresses back to the pools.
    pub fn release(&mut self, ip: Option<Ipv4Addr>, ip6: Option<Ipv6Addr>) {
        if let (Some(ipam), Some(ip)) = (self.ipam.as_mut(), ip) {
            ipam.release(ip);
        }
        if let (Some(ipam6), Some(ip6)) = (self.ipam6.as_mut(), ip6) {
            ipam6.release(ip6);
        }
    }

    /// The bridge's MAC: the engine's bridge's own, or weir's rule on the
    /// gateway's address ([`super::mac_of`]).
    #[must_use]
    pub fn bridge_mac(&self) -> [u8; 6] {
        self.bridge_mac.unwrap_or_else(|| {
            super::mac_of(self.gateway(), self.ipam6.as_ref().map(Ipam6::gateway))
        })
    }
}

/// Bridge names are `weir<id>` (at most 15 characters, the kernel's limit).
#[must_use]
pub fn bridge_name(id: u32) -> String {
    format!("weir{id}")
}

/// The most networks one agent holds (ids `0..MAX_NETWORKS`).
pub const MAX_NETWORKS: u32 = 4096;

/// Every network of an agent, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    networks: BTreeMap<String, Network>,
}

impl Registry {
    /// Checks `spec` against the rules and the existing networks and returns
    /// the network it would become; nothing is recorded yet.
    pub fn plan(&self, spec: &NetworkSpec) -> Result<Network, NetworkError> {
        validate_name(&spec.name)?;
        if self.networks.contains_key(&spec.name) {
            return Err(NetworkError::Exists {
                name: spec.name.clone(),
            });
        }
        if let Some(subnet) = spec.subnet
            && let Some((other, network)) = self.networks.values().find_map(|n| {
                let other = n.ipam.as_ref()?.subnet();
                other.overlaps(subnet).then(|| (other, n.name.clone()))
            })
        {
            return Err(NetworkError::Overlap {
                subnet,
                other,
                network,
            });
        }
        if spec.subnet.is_none() && spec.subnet6.is_none() {
            return Err(NetworkError::Addresses(
                "a network needs a subnet of at least one family".to_owned(),
            ));
        }
        if let Some(subnet) = spec.subnet6
            && let Some((other, network)) = self.networks.values().find_map(|n| {
                let other = n.ipam6.as_ref()?.subnet();
                other.overlaps(subnet).then(|| (other, n.name.clone()))
            })
        {
            return Err(NetworkError::Overlap6 {
                subnet,
                other,
                network,
            });
        }
        if spec.snat_ip.is_some()
            && (!spec.masquerade || spec.internal || spec.mode == Mode::Routed)
        {
            return Err(NetworkError::SnatWithoutMasquerade {
                name: spec.name.clone(),
            });
        }
        let ipam = spec
            .subnet
            .map(|subnet| Ipam::new(subnet, spec.gateway))
            .transpose()?;
        let ipam6 = spec
            .subnet6
            .map(|subnet| Ipam6::new(subnet, spec.gateway6))
            .transpose()?;
        let id = (0..MAX_NETWORKS)
            .find(|id| self.networks.values().all(|n| n.id != *id))
            .ok_or(NetworkError::NoFreeId)?;
        Ok(Network {
            id,
            name: spec.name.clone(),
            bridge: bridge_name(id),
            ipam,
            ipam6,
            internal: spec.internal,
            icc: spec.icc,
            // Internal networks reach nothing outside, and routed ones
            // show their containers' addresses: neither masquerades.
            masquerade: spec.masquerade && !spec.internal && spec.mode == Mode::Nat,
            mode: spec.mode,
            snat_ip: spec.snat_ip,
            owner: Owner::Weir,
            bridge_mac: None,
            pool: None,
        })
    }

    /// Like [`Registry::plan`], for a network an engine made: its bridge is
    /// the engine's `bridge`, with the MAC it has.
    pub fn plan_foreign(
        &self,
        spec: &NetworkSpec,
        bridge: &str,
        bridge_mac: [u8; 6],
        owner: Owner,
    ) -> Result<Network, NetworkError> {
        Ok(Network {
            bridge: bridge.to_owned(),
            owner,
            bridge_mac: Some(bridge_mac),
            ..self.plan(spec)?
        })
    }

    /// Records a network returned by [`Registry::plan`].
    pub fn insert(&mut self, network: Network) {
        self.networks.insert(network.name.clone(), network);
    }

    pub fn get(&self, name: &str) -> Result<&Network, NetworkError> {
        self.networks
            .get(name)
            .ok_or_else(|| NetworkError::NotFound {
                name: name.to_owned(),
            })
    }

    pub fn get_mut(&mut self, name: &str) -> Result<&mut Network, NetworkError> {
        self.networks
            .get_mut(name)
            .ok_or_else(|| NetworkError::NotFound {
                name: name.to_owned(),
            })
    }

    pub fn remove(&mut self, name: &str) -> Result<Network, NetworkError> {
        self.networks
            .remove(name)
            .ok_or_else(|| NetworkError::NotFound {
                name: name.to_owned(),
            })
    }

    /// Networks in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, here at most 64.
pub fn validate_name(name: &str) -> Result<(), NetworkError> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, subnet: &str) -> NetworkSpec {
        NetworkSpec::new(name, subnet.parse().unwrap())
    }

    fn with(reg: &mut Registry, name: &str, subnet: &str) -> Network {
        let n = reg.plan(&spec(name, subnet)).unwrap();
        reg.insert(n.clone());
        n
    }

    #[test]
    fn ids_and_bridges_are_the_lowest_free() {
        let mut reg = Registry::default();
        assert_eq!(with(&mut reg, "a", "10.1.0.0/24").bridge, "weir0");
        assert_eq!(with(&mut reg, "b", "10.2.0.0/24").bridge, "weir1");
        reg.remove("a").unwrap();
        assert_eq!(with(&mut reg, "c", "10.3.0.0/24").id, 0);
    }

    #[test]
    fn names_duplicates_and_overlaps_are_refused() {
        let mut reg = Registry::default();
        with(&mut reg, "front", "10.1.0.0/16");
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(
                matches!(
                    reg.plan(&spec(bad, "10.9.0.0/24")),
                    Err(NetworkError::InvalidName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            reg.plan(&spec("front", "10.9.0.0/24")),
            Err(NetworkError::Exists { .. })
        ));
        let err = reg.plan(&spec("back", "10.1.2.0/24")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 10.1.2.0/24 overlaps 10.1.0.0/16 of network `front`"
        );
        assert!(matches!(
            reg.plan(&spec("back", "10.0.0.0/8")),
            Err(NetworkError::Overlap { .. })
        ));
        assert!(reg.plan(&spec("back", "10.2.0.0/16")).is_ok());
    }

    #[test]
    fn flags_are_checked_and_internal_never_masquerades() {
        let reg = Registry::default();
        let mut s = spec("i", "10.1.0.0/24");
        s.internal = true;
        assert!(!reg.plan(&s).unwrap().masquerade);
        let mut routed = spec("r", "10.3.0.0/24");
        routed.mode = Mode::Routed;
        assert!(!reg.plan(&routed).unwrap().masquerade);
        routed.snat_ip = Some("192.0.2.1".parse().unwrap());
        assert!(matches!(
            reg.plan(&routed),
            Err(NetworkError::SnatWithoutMasquerade { .. })
        ));
        s.snat_ip = Some("192.0.2.1".parse().unwrap());
        assert!(matches!(
            reg.plan(&s),
            Err(NetworkError::SnatWithoutMasquerade { .. })
        ));
        let mut s = spec("g", "10.1.0.0/24");
        s.gateway = Some("10.2.0.1".parse().unwrap());
        assert!(matches!(
            reg.plan(&s),
            Err(NetworkError::Ipam(IpamError::GatewayOutside { .. }))
        ));
    }

    #[test]
    fn missing_networks_are_named() {
        let mut reg = Registry::default();
        assert_eq!(
            reg.get("nope").unwrap_err().to_string(),
            "network `nope` not found"
        );
        assert!(reg.remove("nope").is_err());
    }

    #[test]
    fn spec_json_defaults_match_docker() {
        let s: NetworkSpec =
            serde_json::from_str(r#"{"name":"n","subnet":"10.5.0.0/24"}"#).unwrap();
        assert!(s.icc && s.masquerade && !s.internal);
        assert_eq!(s.mode, Mode::Nat);
    }

    #[test]
    fn an_ipv6_subnet_alone_is_an_ipv6_only_network() {
        let a = addresses(&["fd00:5::/64".to_owned()], &[], false).unwrap();
        assert_eq!(
            (a.subnet, a.subnet6.unwrap().to_string().as_str()),
            (None, "fd00:5::/64")
        );
        let pooled = addresses(&[], &[], false).unwrap();
        assert_eq!((pooled.subnet, pooled.subnet6), (None, None), "from a pool");
        let mut s = spec("six", "10.5.0.0/24");
        (s.subnet, s.subnet6) = (None, a.subnet6);
        let mut reg = Registry::default();
        let n = reg.plan(&s).unwrap();
        assert!(n.ipam.is_none() && n.ipam6.is_some());
        reg.insert(n);
        // Another IPv4 network overlaps nothing of it.
        assert!(reg.plan(&spec("four", "10.5.0.0/24")).is_ok());
        for (subnets, gateways, why) in [
            (vec![], vec!["10.0.0.1"], "a --gateway needs its --subnet"),
            (
                vec!["fd00:6::/64"],
                vec!["10.0.0.1"],
                "IPv4 --gateway needs",
            ),
        ] {
            let subnets: Vec<String> = subnets.into_iter().map(str::to_owned).collect();
            let gateways: Vec<String> = gateways.into_iter().map(str::to_owned).collect();
            let err = addresses(&subnets, &gateways, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
