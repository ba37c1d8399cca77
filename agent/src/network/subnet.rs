//! IPv4 subnets in CIDR form.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};

/// An IPv4 subnet: a network address (host bits zero) and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("invalid subnet `{input}`: expected CIDR form like 10.89.0.0/24")]
    Syntax { input: String },
    #[error("invalid subnet `{input}`: prefix length must be 0 to 32")]
    Prefix { input: String },
    #[error("invalid subnet `{input}`: it should be {network} (host bits are set)")]
    HostBits { input: String, network: Subnet },
}

impl Subnet {
    /// The subnet of `addr/prefix`, failing when host bits are set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        let input = format!("{addr}/{prefix}");
        if prefix > 32 {
            return Err(SubnetError::Prefix { input });
        }
        let network = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        let subnet = Self { network, prefix };
        if network != addr {
            return Err(SubnetError::HostBits {
                input,
                network: subnet,
            });
        }
        Ok(subnet)
    }

    /// The subnet of prefix length `prefix` that holds `addr` (its host
    /// bits cleared); `None` past 32.
    #[must_use]
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    #[must_use]
    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    #[must_use]
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// The broadcast address (the last address of the subnet).
    #[must_use]
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    #[must_use]
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// True when the two subnets share at least one address.
    #[must_use]
    pub fn overlaps(self, other: Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The usable host addresses: all but the network and broadcast
    /// addresses (a /31 or /32 has none for containers here).
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network).saturating_add(1);
        let last = u32::from(self.broadcast()).saturating_sub(1);
        (first..=last).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || SubnetError::Syntax {
            input: s.to_owned(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| SubnetError::Prefix {
            input: s.to_owned(),
        })?;
        Self::new(addr, prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = SubnetError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let s = net("10.89.0.0/24");
        assert_eq!(s.to_string(), "10.89.0.0/24");
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 0, 255));
        assert_eq!(net("0.0.0.0/0").broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(net("192.0.2.7/32").hosts().count(), 0);
        assert_eq!(net("192.0.2.4/30").hosts().collect::<Vec<_>>().len(), 2);
    }

    #[test]
    fn rejects_bad_input_with_a_hint() {
        assert_eq!(
            "10.89.0.5/24".parse::<Subnet>(),
            Err(SubnetError::HostBits {
                input: "10.89.0.5/24".into(),
                network: net("10.89.0.0/24"),
            })
        );
        let err = "10.89.0.5/24".parse::<Subnet>().unwrap_err().to_string();
        assert!(err.contains("it should be 10.89.0.0/24"), "{err}");
        assert!(matches!(
            "10.89.0.0".parse::<Subnet>(),
            Err(SubnetError::Syntax { .. })
        ));
        assert!(matches!(
            "10.89.0/24".parse::<Subnet>(),
            Err(SubnetError::Syntax { .. })
        ));
        assert!(matches!(
            "10.89.0.0/33".parse::<Subnet>(),
            Err(SubnetError::Prefix { .. })
        ));
        assert!(matches!(
            "10.89.0.0/x".parse::<Subnet>(),
            Err(SubnetError::Prefix { .. })
        ));
    }

    #[test]
    fn containment_and_overlap() {
        let a = net("10.89.0.0/16");
        assert!(a.contains(Ipv4Addr::new(10, 89, 255, 1)));
        assert!(!a.contains(Ipv4Addr::new(10, 90, 0, 1)));
        assert!(a.overlaps(net("10.89.4.0/24")));
        assert!(net("10.89.4.0/24").overlaps(a));
        assert!(!a.overlaps(net("10.90.0.0/16")));
        assert!(net("0.0.0.0/0").overlaps(a));
    }

    #[test]
    fn serde_round_trip_validates() {
        let json = serde_json::to_string(&net("172.30.0.0/16")).unwrap();
        assert_eq!(json, "\"172.30.0.0/16\"");
        assert_eq!(
            serde_json::from_str::<Subnet>(&json).unwrap(),
            net("172.30.0.0/16")
        );
        assert!(serde_json::from_str::<Subnet>("\"172.30.0.1/16\"").is_err());
    }
}
