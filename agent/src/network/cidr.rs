//! An address range of either family, as a Kubernetes cluster names them
//! (`--cluster-cidr 10.245.0.0/16 --cluster-cidr fd00:245::/56`, a node's
//! `spec.podCIDRs`): IPv4 any prefix, IPv6 any prefix up to /128. Never a
//! network of weir's (those are [`Subnet`] and [`Subnet6`] themselves).

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Serialize};

use super::{Subnet, Subnet6, Subnet6Error, SubnetError};

/// An IPv4 or IPv6 range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Cidr {
    V4(Subnet),
    V6(Subnet6),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error(transparent)]
    V4(#[from] SubnetError),
    #[error(transparent)]
    V6(#[from] Subnet6Error),
}

impl Cidr {
    /// The range of `prefix` that holds `addr` (its host bits cleared);
    /// `None` for a prefix too long for the family or a special IPv6 one.
    #[must_use]
    pub fn containing(addr: IpAddr, prefix: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(a) => Subnet::containing(a, prefix).map(Self::V4),
            IpAddr::V6(a) => {
                let bits = if prefix == 0 || prefix > 128 {
                    return None;
                } else {
                    u128::from(a) & (u128::MAX << (128 - u32::from(prefix)))
                };
                Subnet6::of_range(bits.into(), prefix).ok().map(Self::V6)
            }
        }
    }

    /// The range's first address.
    #[must_use]
    pub fn network(self) -> IpAddr {
        match self {
            Self::V4(s) => s.network().into(),
            Self::V6(s) => s.network().into(),
        }
    }

    #[must_use]
    pub fn prefix(self) -> u8 {
        match self {
            Self::V4(s) => s.prefix(),
            Self::V6(s) => s.prefix(),
        }
    }

    /// Whether `addr` is of the range's family (a route's gateway must be).
    #[must_use]
    pub fn same_family(self, addr: IpAddr) -> bool {
        matches!(
            (self, addr),
            (Self::V4(_), IpAddr::V4(_)) | (Self::V6(_), IpAddr::V6(_))
        )
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(s) => s.fmt(f),
            Self::V6(s) => s.fmt(f),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            let (addr, prefix) = super::v6::split(s)?;
            Ok(Self::V6(Subnet6::of_range(addr, prefix)?))
        } else {
            Ok(Self::V4(s.parse()?))
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_both_families_parse_and_print() {
        for text in [
            "10.245.0.0/16",
            "198.51.100.0/28",
            "fd00:245::/56",
            "fd00:96::/112",
            "fd00:198:51:100::1/128",
        ] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), text);
        }
        assert!(matches!("fd00::/112".parse(), Ok(Cidr::V6(_))));
        assert!(matches!(
            "fd00::1/64".parse::<Cidr>(),
            Err(CidrError::V6(Subnet6Error::HostBits { .. }))
        ));
        assert!("fe80::/64".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        assert!("10.0.0.1/8".parse::<Cidr>().is_err());
        let c = Cidr::containing("fd00:245:2::7".parse().unwrap(), 64).unwrap();
        assert_eq!(c.to_string(), "fd00:245:2::/64");
        assert!(c.same_family("fd00::1".parse().unwrap()));
        assert!(!c.same_family("10.0.0.1".parse().unwrap()));
        assert_eq!(
            Cidr::containing("10.245.2.9".parse().unwrap(), 24)
                .unwrap()
                .to_string(),
            "10.245.2.0/24"
        );
    }
}
