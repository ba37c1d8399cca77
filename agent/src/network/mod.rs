//! Networks and their addresses: subnets, IPAM. Pure logic; the bridges and
//! veths that realise a network live in `netlink/`.

pub mod cidr;
pub mod ipam;
pub mod pool;
pub mod registry;
pub mod subnet;
pub mod v6;

pub use cidr::{Cidr, CidrError};
pub use ipam::{Ipam, IpamError};
pub use pool::{Pool, PoolError};
pub use registry::{Addresses, Mode, Network, NetworkError, NetworkSpec, Registry, addresses};
pub use subnet::{Subnet, SubnetError};
pub use v6::{Ipam6, Ipam6Error, Subnet6, Subnet6Error};

/// The MAC of an address of a network: a locally administered one derived
/// from the address, as Docker does. Containers get their address's; a
/// bridge gets its gateway's (fixed, so the datapath can know it).
#[must_use]
pub fn mac_for(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// The MAC of an endpoint or bridge with these addresses: Docker's rule
/// on the IPv4 one ([`mac_for`]); without one, the same on the IPv6
/// one's last four bytes.
#[must_use]
pub fn mac_of(ip: Option<std::net::Ipv4Addr>, ip6: Option<std::net::Ipv6Addr>) -> [u8; 6] {
    let last4 = |a: std::net::Ipv6Addr| {
        let o = a.octets();
        std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15])
    };
    mac_for(
        ip.or_else(|| ip6.map(last4))
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
    )
}

/// `02:42:0a:00:00:02` read back; `None` if it is not a MAC.
#[must_use]
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// `02:42:0a:00:00:02`.
#[must_use]
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_read_back_what_they_print() {
        let mac = [0x02, 0x42, 0xac, 0x1f, 0xfa, 0x02];
        assert_eq!(parse_mac(&mac_string(mac)), Some(mac));
        assert_eq!(parse_mac("02:42:ac:1f:fa"), None);
        assert_eq!(parse_mac("02:42:ac:1f:fa:2"), None);
        assert_eq!(parse_mac("zz:42:ac:1f:fa:02"), None);
    }
}
