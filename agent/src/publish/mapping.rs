//! A published port as the agent keeps it: one host address and port to
//! one container port. A spec (`-p`) becomes one mapping per port.

use std::{fmt, net::Ipv4Addr};

use serde::{Deserialize, Serialize};
use weir_common::publish::{PublishKey, PublishKey6};

use super::Proto;

/// One host port published to one container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    /// `0.0.0.0`: every address of the node.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMapping {
    /// The `PUBLISH4` key.
    #[must_use]
    pub fn key(&self) -> PublishKey {
        PublishKey::new(self.host_ip.octets(), self.host_port, self.proto.number())
    }

    /// The `PUBLISH6` key: a mapping on every address of the node is on
    /// its IPv6 addresses too (`::`); one bound to an IPv4 address is not.
    #[must_use]
    pub fn key6(&self) -> Option<PublishKey6> {
        self.host_ip
            .is_unspecified()
            .then(|| PublishKey6::new([0; 16], self.host_port, self.proto.number()))
    }

    /// Whether both cannot exist at once: the same protocol and port, and
    /// the same address or either on every address (as two sockets could
    /// not bind them).
    #[must_use]
    pub fn clashes(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }

    /// `0.0.0.0:8080/tcp`, as Docker words the host side in its errors.
    #[must_use]
    pub fn host_side(&self) -> String {
        format!("{}:{}/{}", self.host_ip, self.host_port, self.proto)
    }
}

/// `80/tcp -> 0.0.0.0:8080`, as `docker port` prints it.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.container_port, self.proto, self.host_ip, self.host_port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(proto: Proto, ip: [u8; 4], port: u16) -> PortMapping {
        PortMapping {
            proto,
            host_ip: Ipv4Addr::from(ip),
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
    fn words_like_docker() {
        let x = m(Proto::Udp, [0; 4], 5353);
        assert_eq!(x.to_string(), "80/udp -> 0.0.0.0:5353");
        assert_eq!(x.host_side(), "0.0.0.0:5353/udp");
        assert_eq!(x.key().port, 5353u16.to_be_bytes());
        assert_eq!(x.key().proto, 17);
    }
}
