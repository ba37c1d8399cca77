//! `NETWORKS4`, `NETWORKS6`, the node's addresses (`HOST_ADDRS4`,
//! `HOST_ADDRS6`) and the uplinks' masquerade addresses (`UPLINKS`,
//! `UPLINKS6`) (`weir_common::network`).

use std::net::{IpAddr, Ipv4Addr};

use aya::maps::lpm_trie::Key;
use weir_common::network::{NetInfo, NetInfo6};

use super::super::{Datapath, DatapathError, map_names};

impl Datapath {
    /// Makes `CLUSTER4` and `CLUSTER6` hold exactly `ranges`, each in its
    /// family's: (range address, prefix length, `CLUSTER_*` flags).
    pub fn set_cluster(&mut self, ranges: &[(IpAddr, u8, u32)]) -> Result<(), DatapathError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for &(addr, prefix, flags) in ranges {
            let prefix = u32::from(prefix);
            match addr {
                IpAddr::V4(a) => v4.push((Key::new(prefix, a.octets()), flags)),
                IpAddr::V6(a) => v6.push((Key::new(prefix, a.octets()), flags)),
            }
        }
        self.set_lpm(map_names::CLUSTER4, &v4)?;
        self.set_lpm(map_names::CLUSTER6, &v6)
    }

    /// Makes `NETWORKS4` hold exactly `networks`: (subnet address, prefix
    /// length, what the datapath knows of the network).
    pub fn set_networks(
        &mut self,
        networks: &[(Ipv4Addr, u8, NetInfo)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<_> = networks
            .iter()
            .map(|(addr, prefix, info)| (Key::new(u32::from(*prefix), addr.octets()), *info))
            .collect();
        self.set_lpm(map_names::NETWORKS4, &wanted)
    }

    /// Makes `NETWORKS6` hold exactly `networks`: (subnet, prefix, info).
    pub fn set_networks6(
        &mut self,
        networks: &[(std::net::Ipv6Addr, u8, NetInfo6)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<_> = networks
            .iter()
            .map(|(addr, prefix, info)| (Key::new(u32::from(*prefix), addr.octets()), *info))
            .collect();
        self.set_lpm(map_names::NETWORKS6, &wanted)
    }

    /// Makes `HOST_ADDRS4` hold exactly `addrs` (address, ifindex).
    pub fn set_host_addrs(&mut self, addrs: &[(Ipv4Addr, u32)]) -> Result<(), DatapathError> {
        let wanted: Vec<([u8; 4], u32)> = addrs.iter().map(|(a, i)| (a.octets(), *i)).collect();
        self.set_hash(map_names::HOST_ADDRS4, &wanted)
    }

    /// Makes `HOST_ADDRS6` hold exactly the node's IPv6 addresses.
    pub fn set_host_addrs6(
        &mut self,
        addrs: &[(std::net::Ipv6Addr, u32)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<([u8; 16], u32)> = addrs.iter().map(|(a, i)| (a.octets(), *i)).collect();
        self.set_hash(map_names::HOST_ADDRS6, &wanted)
    }

    /// Makes `UPLINKS` hold exactly `uplinks`: (ifindex, masquerade address).
    pub fn set_uplinks(&mut self, uplinks: &[(u32, Ipv4Addr)]) -> Result<(), DatapathError> {
        let wanted: Vec<(u32, [u8; 4])> = uplinks.iter().map(|(i, ip)| (*i, ip.octets())).collect();
        self.set_hash(map_names::UPLINKS, &wanted)
    }

    /// Makes `UPLINKS6` hold exactly `uplinks`: (ifindex, IPv6 masquerade
    /// address).
    pub fn set_uplinks6(
        &mut self,
        uplinks: &[(u32, std::net::Ipv6Addr)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<(u32, [u8; 16])> =
            uplinks.iter().map(|(i, ip)| (*i, ip.octets())).collect();
        self.set_hash(map_names::UPLINKS6, &wanted)
    }
}
