//! A published port as the agent keeps it: one host address and port to
//! one container port. A spec (`-p`) becomes one mapping per port.
//!
//! The host address says the families: `0.0.0.0` is every address of
//! the node, IPv4 and IPv6 (`-p 8080:80`, as Docker's `0.0.0.0` and `[::]`
//! together); `::` every IPv6 address only; any other address that one.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
};

use serde::{Deserialize, Serialize};
use weir_common::publish::{PublishKey, PublishKey6};

use super::Proto;

/// One host port published to one container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    /// `0.0.0.0`: every address of the node, both families; `::`: every
    /// IPv6 address of it.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMapping {
    /// Every address of the node, both families (`0.0.0.0`).
    pub const EVERY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    /// The `PUBLISH4` key, for a mapping on IPv4.
    #[must_use]
    pub fn key(&self) -> Option<PublishKey> {
        match self.host_ip {
            IpAddr::V4(ip) => Some(PublishKey::new(
                ip.octets(),
                self.host_port,
                self.proto.number(),
            )),
            IpAddr::V6(_) => None,
        }
    }

    /// The `PUBLISH6` key, for a mapping on IPv6: one on every address of
    /// the node is on its IPv6 addresses too (`::`); one bound to an
    /// IPv4 address is not.
    #[must_use]
    pub fn key6(&self) -> Option<PublishKey6> {
        let ip = match self.host_ip {
            IpAddr::V4(ip) if ip.is_unspecified() => [0; 16],
            IpAddr::V4(_) => return None,
            IpAddr::V6(ip) => ip.octets(),
        };
        Some(PublishKey6::new(ip, self.host_port, self.proto.number()))
    }

    /// Whether it reaches the container over IPv6 only.
    #[must_use]
    pub fn is_ipv6_only(&self) -> bool {
        self.host_ip.is_ipv6()
    }

    /// Whether both cannot exist at once: the same protocol and port, and
    /// addresses that overlap (the same, or either every address of a
    /// family the other is in), as two sockets could not bind them.
    #[must_use]
    pub fn clashes(&self, other: &PortMapping) -> bool {
        let covers = |a: IpAddr, b: IpAddr| {
            a == b || a == Self::EVERY || (a.is_ipv6() && a.is_unspecified() && b.is_ipv6())
        };
        self.proto == other.proto
            && self.host_port == other.host_port
            && (covers(self.host_ip, other.host_ip) || covers(other.host_ip, self.host_ip))
    }

    /// `0.0.0.0:8080/tcp` or `[::1]:8080/tcp`, as Docker words the host
    /// side in its errors.
    #[must_use]
    pub fn host_side(&self) -> String {
        format!("{}/{}", self.host_addr(), self.proto)
    }

    /// `0.0.0.0:8080` or `[::1]:8080`.
    fn host_addr(&self) -> std::net::SocketAddr {
        (self.host_ip, self.host_port).into()
    }
}

/// `80/tcp -> 0.0.0.0:8080`, as `docker port` prints it.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.proto,
            self.host_addr()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn m(proto: Proto, ip: [u8; 4], port: u16) -> PortMapping {
        m6(proto, Ipv4Addr::from(ip).into(), port)
    }

    fn m6(proto: Proto, host_ip: IpAddr, port: u16) -> PortMapping {
        PortMapping {
            proto,
            host_ip,
            host_port: port,
            container_port: 80,
        }
    }

    #[test]
    fn clashes_like_two_binds_would() {
        let any = m(Proto::Tcp, [0; 4], 8080);
        assert!(any.clashes(&m(Proto::Tcp, [127, 0, 0, 1], 8080)));
        assert!(m(Proto::Tcp, [127, 0, 0, 1], 8080).clashes(&any));
        assert!(
            !any.clashes(&m(Proto::Udp, [0; 4], 8080)),
            "TCP and UDP are apart"
        );
        assert!(!any.clashes(&m(Proto::Tcp, [0; 4], 8081)));
        assert!(
            !m(Proto::Tcp, [127, 0, 0, 1], 8080).clashes(&m(Proto::Tcp, [10, 0, 0, 1], 8080)),
            "two addresses, one port each"
        );
    }

    #[test]
    fn ipv6_mappings_clash_within_their_family() {
        let any6 = m6(Proto::Tcp, "::".parse().unwrap(), 8080);
        let lo6 = m6(Proto::Tcp, "::1".parse().unwrap(), 8080);
        assert!(any6.clashes(&lo6) && lo6.clashes(&any6));
        assert!(
            m(Proto::Tcp, [0; 4], 8080).clashes(&lo6),
            "0.0.0.0 is IPv6's every address too"
        );
        assert!(!any6.clashes(&m(Proto::Tcp, [127, 0, 0, 1], 8080)));
        assert!(!lo6.clashes(&m6(Proto::Tcp, "2001:db8::1".parse().unwrap(), 8080)));
        assert_eq!((any6.key(), any6.key6().unwrap().host_ip), (None, [0; 16]));
        assert_eq!(lo6.key6().unwrap().host_ip, Ipv6Addr::LOCALHOST.octets());
        assert!(m(Proto::Tcp, [127, 0, 0, 1], 8080).key6().is_none());
        assert_eq!(lo6.to_string(), "80/tcp -> [::1]:8080");
        assert_eq!(any6.host_side(), "[::]:8080/tcp");
    }

    #[test]
    fn words_like_docker() {
        let x = m(Proto::Udp, [0; 4], 5353);
        assert_eq!(x.to_string(), "80/udp -> 0.0.0.0:5353");
        assert_eq!(x.host_side(), "0.0.0.0:5353/udp");
        let key = x.key().unwrap();
        assert_eq!((key.port, key.proto), (5353u16.to_be_bytes(), 17));
    }
}
