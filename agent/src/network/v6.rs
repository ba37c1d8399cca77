//! A network's IPv6 side: its subnet and its addresses. A network is dual
//! stack when it has one (`--subnet` once per family); Docker's and
//! Podman's IPv6 subnets are /64 or shorter, and so are weir's, so that
//! stateless autoconfiguration and the usual tooling keep working.

use std::{collections::BTreeSet, fmt, net::Ipv6Addr, str::FromStr};

use serde::{Deserialize, Serialize};

/// The longest IPv6 prefix a network of weir's may have.
pub const MAX_PREFIX6: u8 = 64;
/// The longest an engine's network may have (Docker allows /80 and
/// longer): room for a gateway and some endpoints.
pub const MAX_ENGINE_PREFIX6: u8 = 120;

/// An IPv6 subnet: a network address (host bits zero) and a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet6 {
    network: Ipv6Addr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Subnet6Error {
    #[error("invalid subnet `{input}`: expected CIDR form like fd00:db8:1::/64")]
    Syntax { input: String },
    #[error("invalid subnet `{input}`: an IPv6 one here needs a prefix of /{max} or shorter")]
    Prefix { input: String, max: u8 },
    #[error("invalid subnet `{input}`: it should be {network} (host bits are set)")]
    HostBits { input: String, network: Subnet6 },
    #[error(
        "invalid subnet `{input}`: link-local, multicast, loopback and unspecified addresses are no network's"
    )]
    Special { input: String },
}

impl Subnet6 {
    /// The subnet of `addr/prefix`, failing when host bits are set, the
    /// prefix is longer than [`MAX_PREFIX6`], or the range is special.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, Subnet6Error> {
        Self::with_max(addr, prefix, MAX_PREFIX6)
    }

    /// An engine's subnet, which may be as long as [`MAX_ENGINE_PREFIX6`].
    pub fn of_engine(text: &str) -> Result<Self, Subnet6Error> {
        let (addr, prefix) = split(text)?;
        Self::with_max(addr, prefix, MAX_ENGINE_PREFIX6)
    }

    /// A range of any length up to /128, never a network of weir's: one
    /// a Kubernetes cluster names (`--service-cidr`'s /112, a node's pod
    /// CIDR, a node's own address).
    pub fn of_range(addr: Ipv6Addr, prefix: u8) -> Result<Self, Subnet6Error> {
        Self::with_max(addr, prefix, 128)
    }

    fn with_max(addr: Ipv6Addr, prefix: u8, max: u8) -> Result<Self, Subnet6Error> {
        let input = format!("{addr}/{prefix}");
        if prefix == 0 || prefix > max {
            return Err(Subnet6Error::Prefix { input, max });
        }
        let network = Ipv6Addr::from(u128::from(addr) & mask(prefix));
        let subnet = Self { network, prefix };
        if network != addr {
            return Err(Subnet6Error::HostBits {
                input,
                network: subnet,
            });
        }
        let first = network.segments()[0];
        if network.is_loopback()
            || network.is_unspecified()
            || first & 0xffc0 == 0xfe80
            || first & 0xff00 == 0xff00
        {
            return Err(Subnet6Error::Special { input });
        }
        Ok(subnet)
    }

    #[must_use]
    pub fn network(self) -> Ipv6Addr {
        self.network
    }

    #[must_use]
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    #[must_use]
    pub fn contains(self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask(self.prefix) == u128::from(self.network)
    }

    /// True when the two subnets share at least one address.
    #[must_use]
    pub fn overlaps(self, other: Subnet6) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The `n`th address of the subnet (0 is the subnet-router anycast
    /// address, which no host takes).
    fn nth(self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) | n)
    }
}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet6 {
    type Err = Subnet6Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = split(s)?;
        Self::new(addr, prefix)
    }
}

/// `addr/prefix`, read.
pub(super) fn split(s: &str) -> Result<(Ipv6Addr, u8), Subnet6Error> {
    let syntax = || Subnet6Error::Syntax {
        input: s.to_owned(),
    };
    let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
    let addr: Ipv6Addr = addr.parse().map_err(|_| syntax())?;
    let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
    Ok((addr, prefix))
}

impl TryFrom<String> for Subnet6 {
    type Error = Subnet6Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet6> for String {
    fn from(s: Subnet6) -> String {
        s.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ipam6Error {
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutside { gateway: Ipv6Addr, subnet: Subnet6 },
    #[error("address {ip} is not inside subnet {subnet}")]
    Outside { ip: Ipv6Addr, subnet: Subnet6 },
    #[error(
        "address {ip} is reserved in {subnet} (the subnet-router anycast address or the gateway)"
    )]
    Reserved { ip: Ipv6Addr, subnet: Subnet6 },
    #[error("address {ip} is already in use")]
    Taken { ip: Ipv6Addr },
}

/// The IPv6 addresses of one network: the gateway (the bridge's), and
/// those handed to endpoints, the lowest free first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam6 {
    subnet: Subnet6,
    gateway: Ipv6Addr,
    used: BTreeSet<Ipv6Addr>,
    /// The last address [`Ipam6::allocate_next`] gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv6Addr>,
}

impl Ipam6 {
    /// IPAM for `subnet` with `gateway` (default: `::1` of the subnet).
    pub fn new(subnet: Subnet6, gateway: Option<Ipv6Addr>) -> Result<Self, Ipam6Error> {
        let gateway = gateway.unwrap_or_else(|| subnet.nth(1));
        if !subnet.contains(gateway) {
            return Err(Ipam6Error::GatewayOutside { gateway, subnet });
        }
        if gateway == subnet.network() {
            return Err(Ipam6Error::Reserved {
                ip: gateway,
                subnet,
            });
        }
        Ok(Self {
            subnet,
            gateway,
            used: BTreeSet::new(),
            last: None,
        })
    }

    #[must_use]
    pub fn subnet(&self) -> Subnet6 {
        self.subnet
    }

    #[must_use]
    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
    }

    /// Takes `wanted`, or the lowest free address above the gateway's.
    /// A /64 holds 2^64 of them: it does not run out.
    pub fn allocate(&mut self, wanted: Option<Ipv6Addr>) -> Result<Ipv6Addr, Ipam6Error> {
        let ip = match wanted {
            Some(ip) => {
                self.check_free(ip)?;
                ip
            }
            None => (2..=u128::MAX)
                .map(|n| self.subnet.nth(n))
                .find(|ip| *ip != self.gateway && !self.used.contains(ip))
                .expect("a /64 or shorter has room"),
        };
        self.used.insert(ip);
        Ok(ip)
    }

    /// Takes `wanted`, or the first free address after the last one given
    /// this way (host-local's order; a /64 does not wrap around in
    /// practice).
    pub fn allocate_next(&mut self, wanted: Option<Ipv6Addr>) -> Result<Ipv6Addr, Ipam6Error> {
        let ip = if let Some(ip) = wanted {
            ip
        } else {
            let host = |ip: Ipv6Addr| u128::from(ip) & !mask(self.subnet.prefix);
            let after = self.last.map_or(1, host);
            (after.saturating_add(1)..=u128::MAX)
                .chain(2..=after)
                .map(|n| self.subnet.nth(n))
                .find(|ip| *ip != self.gateway && !self.used.contains(ip))
                .expect("a /64 or shorter has room")
        };
        let ip = self.allocate(Some(ip))?;
        self.last = Some(ip);
        Ok(ip)
    }

    /// [`Ipam6::allocate_next`] when `rotate`, else [`Ipam6::allocate`].
    pub fn allocate_in_order(
        &mut self,
        wanted: Option<Ipv6Addr>,
        rotate: bool,
    ) -> Result<Ipv6Addr, Ipam6Error> {
        if rotate {
            self.allocate_next(wanted)
        } else {
            self.allocate(wanted)
        }
    }

    /// Whether `ip` could be allocated now.
    pub fn check_free(&self, ip: Ipv6Addr) -> Result<(), Ipam6Error> {
        let subnet = self.subnet;
        if !subnet.contains(ip) {
            return Err(Ipam6Error::Outside { ip, subnet });
        }
        if ip == subnet.network() || ip == self.gateway {
            return Err(Ipam6Error::Reserved { ip, subnet });
        }
        if self.used.contains(&ip) {
            return Err(Ipam6Error::Taken { ip });
        }
        Ok(())
    }

    /// Gives `ip` back; true when it was in use.
    pub fn release(&mut self, ip: Ipv6Addr) -> bool {
        self.used.remove(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Result<Subnet6, Subnet6Error> {
        text.parse()
    }

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn rotation_gives_the_next_free_after_the_last() {
        let mut p = Ipam6::new(s("fd00:1::/64").unwrap(), None).unwrap();
        assert_eq!(p.allocate_next(None).unwrap(), ip("fd00:1::2"));
        assert_eq!(p.allocate_next(None).unwrap(), ip("fd00:1::3"));
        p.release(ip("fd00:1::2"));
        assert_eq!(p.allocate_next(None).unwrap(), ip("fd00:1::4"));
        assert_eq!(
            p.allocate_next(Some(ip("fd00:1::9"))).unwrap(),
            ip("fd00:1::9")
        );
        assert_eq!(p.allocate_next(None).unwrap(), ip("fd00:1::a"));
        assert_eq!(p.allocate(None).unwrap(), ip("fd00:1::2"), "lowest free");
    }

    #[test]
    fn subnets_parse_print_and_refuse_what_no_network_is() {
        assert_eq!(s("fd00:db8:1::/64").unwrap().to_string(), "fd00:db8:1::/64");
        assert_eq!(s("2001:db8::/48").unwrap().prefix(), 48);
        assert!(matches!(
            s("fd00::1/64"),
            Err(Subnet6Error::HostBits { .. })
        ));
        assert!(matches!(s("fd00::/96"), Err(Subnet6Error::Prefix { .. })));
        assert!(matches!(s("fd00::/0"), Err(Subnet6Error::Prefix { .. })));
        assert!(matches!(s("fe80::/64"), Err(Subnet6Error::Special { .. })));
        assert!(matches!(s("ff02::/16"), Err(Subnet6Error::Special { .. })));
        assert!(matches!(s("10.0.0.0/8"), Err(Subnet6Error::Syntax { .. })));
        assert!(matches!(s("fd00::"), Err(Subnet6Error::Syntax { .. })));
    }

    #[test]
    fn an_engines_subnet_may_be_longer() {
        assert_eq!(Subnet6::of_engine("fd00:1::/80").unwrap().prefix(), 80);
        assert!(s("fd00:1::/80").is_err());
        assert!(Subnet6::of_engine("fd00:1::/126").is_err());
    }

    #[test]
    fn overlap_is_containment_either_way() {
        let wide = s("fd00:db8::/48").unwrap();
        assert!(wide.overlaps(s("fd00:db8:0:5::/64").unwrap()));
        assert!(s("fd00:db8:0:5::/64").unwrap().overlaps(wide));
        assert!(!wide.overlaps(s("fd00:db9::/64").unwrap()));
    }

    #[test]
    fn the_gateway_is_the_first_address_and_endpoints_take_the_next_free() {
        let mut ipam = Ipam6::new(s("fd00:1::/64").unwrap(), None).unwrap();
        assert_eq!(ipam.gateway(), ip("fd00:1::1"));
        assert_eq!(ipam.allocate(None).unwrap(), ip("fd00:1::2"));
        assert_eq!(
            ipam.allocate(Some(ip("fd00:1::9"))).unwrap(),
            ip("fd00:1::9")
        );
        assert_eq!(ipam.allocate(None).unwrap(), ip("fd00:1::3"));
        assert!(ipam.release(ip("fd00:1::2")));
        assert_eq!(ipam.allocate(None).unwrap(), ip("fd00:1::2"));
        assert!(matches!(
            ipam.allocate(Some(ip("fd00:1::9"))),
            Err(Ipam6Error::Taken { .. })
        ));
        assert!(matches!(
            ipam.allocate(Some(ip("fd00:1::1"))),
            Err(Ipam6Error::Reserved { .. })
        ));
        assert!(matches!(
            ipam.allocate(Some(ip("fd00:2::5"))),
            Err(Ipam6Error::Outside { .. })
        ));
        assert!(matches!(
            Ipam6::new(s("fd00:1::/64").unwrap(), Some(ip("fd00:2::1"))),
            Err(Ipam6Error::GatewayOutside { .. })
        ));
    }
}
