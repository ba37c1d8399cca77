//! User rules (`weir allow`, Docker's `DOCKER-USER` chain at its most
//! common): the sources that may reach a published host port, whoever
//! publishes it (weir, Docker, a CNI runtime), kept apart from the
//! publications so that they outlive container churn.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};
use weir_common::publish::PublishKey;

use super::Proto;
use crate::network::Subnet;

/// A host port as `weir allow` names it: `[HOST_IP:]HOST_PORT[/PROTO]`,
/// the host address as published (default: every address, `0.0.0.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AllowedPort {
    pub host_ip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
}

/// One port's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowRule {
    #[serde(flatten)]
    pub port: AllowedPort,
    /// The sources that may reach it (at least one).
    pub sources: Vec<Subnet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port `{input}`: {reason} (expected [HOST_IP:]HOST_PORT[/tcp|udp])")]
pub struct AllowError {
    pub input: String,
    pub reason: String,
}

impl AllowedPort {
    /// The publication key its list applies to (`PUBLISH4`'s).
    #[must_use]
    pub fn key(&self) -> PublishKey {
        PublishKey::new(self.host_ip.octets(), self.port, self.proto.number())
    }

    /// The port whose list `key` is (the other way from [`Self::key`]);
    /// `None` for a protocol no list has.
    #[must_use]
    pub fn of_key(key: &PublishKey) -> Option<Self> {
        Some(Self {
            host_ip: key.host_ip.into(),
            port: u16::from_be_bytes(key.port),
            proto: Proto::from_number(key.proto)?,
        })
    }
}

impl fmt::Display for AllowedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.host_ip.is_unspecified() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(f, "{}/{}", self.port, self.proto)
    }
}

impl FromStr for AllowedPort {
    type Err = AllowError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| AllowError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, proto) = match input.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some(_) => return Err(fail("the protocol must be tcp or udp")),
            None => (input, Proto::Tcp),
        };
        let (host_ip, port) = match rest.rsplit_once(':') {
            Some((ip, port)) => (
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| fail(&format!("`{ip}` is not an IPv4 address")))?,
                port,
            ),
            None => (Ipv4Addr::UNSPECIFIED, rest),
        };
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(fail(&format!("`{port}` is not a port (1-65535)"))),
            Ok(p) => p,
        };
        Ok(Self {
            host_ip,
            port,
            proto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_published_and_say_what_is_wrong() {
        let p: AllowedPort = "8080".parse().unwrap();
        assert_eq!(
            (p.host_ip, p.port, p.proto),
            (Ipv4Addr::UNSPECIFIED, 8080, Proto::Tcp)
        );
        assert_eq!(p.to_string(), "8080/tcp");
        let p: AllowedPort = "10.0.0.1:53/udp".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.1:53/udp");
        assert_eq!(p.key(), PublishKey::new([10, 0, 0, 1], 53, 17));
        for (bad, why) in [
            ("0", "not a port"),
            ("http", "not a port"),
            ("8080/icmp", "tcp or udp"),
            ("1.2.3:80", "not an IPv4 address"),
        ] {
            let err = bad.parse::<AllowedPort>().unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("HOST_PORT"),
                "{bad}: {err}"
            );
        }
    }
}
