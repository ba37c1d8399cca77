//! `ENDPOINTS`, `ENDPOINTS6`, `EP_BY_IP4`, `EP_BY_IP6`: the endpoints by
//! host-side veth and by address (`weir_common::endpoint`).

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::HashMap;
use weir_common::endpoint::{EndpointInfo, EndpointRef};

use super::super::{Datapath, DatapathError, absent_ok, found, map_err, map_names};

/// The IPv4 address an IPv6-only network and its endpoints have in the
/// IPv4 maps (`NETWORKS4`, `ENDPOINTS`), which the rules every frame
/// meets (its MAC, `--icc=false` at L2) look the network up by: one of
/// `0.0.0.0/8` ("this network", RFC 1122), which no packet carries
/// beyond its link and the kernel drops as a martian, per network id.
#[must_use]
pub fn no_ipv4(network_id: u32) -> Ipv4Addr {
    Ipv4Addr::from(network_id + 1)
}

impl Datapath {
    /// Records an endpoint in `ENDPOINTS` and `EP_BY_IP4`. An endpoint
    /// without IPv4 (of an IPv6-only network) has its network's
    /// [`no_ipv4`] address in `ENDPOINTS` and nothing in `EP_BY_IP4`.
    pub fn insert_endpoint(
        &mut self,
        ifindex: u32,
        ip: Option<Ipv4Addr>,
        mac: [u8; 6],
        network_id: u32,
    ) -> Result<(), DatapathError> {
        let info = EndpointInfo {
            ip: ip.unwrap_or_else(|| no_ipv4(network_id)).octets(),
            mac,
            pad: [0; 2],
            network_id,
        };
        let reference = EndpointRef {
            ifindex,
            mac,
            flags: 0,
            pad: 0,
        };
        self.hash_map::<u32, EndpointInfo>(map_names::ENDPOINTS)?
            .insert(ifindex, info, 0)
            .map_err(|source| map_err(map_names::ENDPOINTS, source))?;
        let Some(ip) = ip else {
            return Ok(());
        };
        self.hash_map::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?
            .insert(ip.octets(), reference, 0)
            .map_err(|source| map_err(map_names::EP_BY_IP4, source))
    }

    /// Records (`Some`) or forgets (`None`) the IPv6 address of the
    /// endpoint behind host-side veth `ifindex` (MAC `mac`) in
    /// `ENDPOINTS6` and `EP_BY_IP6`.
    pub fn set_endpoint6(
        &mut self,
        ifindex: u32,
        ip6: Option<Ipv6Addr>,
        mac: [u8; 6],
    ) -> Result<(), DatapathError> {
        let Some(ip6) = ip6 else {
            return self.forget_endpoint6(ifindex);
        };
        self.hash_map::<u32, [u8; 16]>(map_names::ENDPOINTS6)?
            .insert(ifindex, ip6.octets(), 0)
            .map_err(|source| map_err(map_names::ENDPOINTS6, source))?;
        let reference = EndpointRef {
            ifindex,
            mac,
            flags: 0,
            pad: 0,
        };
        self.hash_map::<[u8; 16], EndpointRef>(map_names::EP_BY_IP6)?
            .insert(ip6.octets(), reference, 0)
            .map_err(|source| map_err(map_names::EP_BY_IP6, source))
    }

    /// Forgets the IPv6 address of the endpoint behind `ifindex`, in
    /// `ENDPOINTS6` and `EP_BY_IP6`.
    fn forget_endpoint6(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<u32, [u8; 16]>(map_names::ENDPOINTS6)?;
        let was = found(map.get(&ifindex, 0), map_names::ENDPOINTS6)?;
        absent_ok(map.remove(&ifindex), map_names::ENDPOINTS6)?;
        match was {
            Some(ip6) => self.forget_by_ip6(ip6),
            None => Ok(()),
        }
    }

    fn forget_by_ip6(&mut self, ip6: [u8; 16]) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<[u8; 16], EndpointRef>(map_names::EP_BY_IP6)?;
        absent_ok(map.remove(&ip6), map_names::EP_BY_IP6)
    }

    /// The host-side ifindex `EP_BY_IP4` has for the container at `ip`.
    pub fn endpoint_ifindex(&mut self, ip: Ipv4Addr) -> Result<Option<u32>, DatapathError> {
        let map = self.hash_map::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?;
        Ok(found(map.get(&ip.octets(), 0), map_names::EP_BY_IP4)?.map(|r| r.ifindex))
    }

    /// Removes every entry of the endpoint with address `ip` (IPv4) or
    /// `ip6` from `ENDPOINTS`, `ENDPOINTS6` and `EP_BY_IP4`. Works from
    /// the maps alone, so it also cleans up after a veth that is already
    /// gone.
    pub fn remove_endpoint(
        &mut self,
        ip: Option<Ipv4Addr>,
        ip6: Option<std::net::Ipv6Addr>,
    ) -> Result<(), DatapathError> {
        let mut stale: Vec<u32> = self
            .endpoints()?
            .into_iter()
            .filter(|(_, info)| ip.is_some_and(|ip| info.ip == ip.octets()))
            .map(|(ifindex, _)| ifindex)
            .collect();
        if let Some(ip6) = ip6 {
            stale.extend(
                self.entries::<u32, [u8; 16]>(map_names::ENDPOINTS6)?
                    .into_iter()
                    .filter(|(_, a)| *a == ip6.octets())
                    .map(|(ifindex, _)| ifindex),
            );
        }
        let mut endpoints = self.hash_map::<u32, EndpointInfo>(map_names::ENDPOINTS)?;
        for ifindex in &stale {
            absent_ok(endpoints.remove(ifindex), map_names::ENDPOINTS)?;
        }
        for ifindex in stale {
            self.forget_endpoint6(ifindex)?;
        }
        if let Some(ip6) = ip6 {
            self.forget_by_ip6(ip6.octets())?;
        }
        let Some(ip) = ip else {
            return Ok(());
        };
        absent_ok(
            self.hash_map::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?
                .remove(&ip.octets()),
            map_names::EP_BY_IP4,
        )
    }

    /// The `ENDPOINTS` entries, by host-side ifindex.
    pub fn endpoints(&self) -> Result<Vec<(u32, EndpointInfo)>, DatapathError> {
        let map: HashMap<_, u32, EndpointInfo> = self
            .ebpf
            .map(map_names::ENDPOINTS)
            .ok_or(DatapathError::MissingMap(map_names::ENDPOINTS))?
            .try_into()
            .map_err(|source| map_err(map_names::ENDPOINTS, source))?;
        map.iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| map_err(map_names::ENDPOINTS, source))
    }

    /// Removes the `ENDPOINTS` entries of veths not in `keep` and the
    /// `EP_BY_IP4` and `EP_BY_IP6` entries of addresses not in `keep`.
    pub fn retain_endpoints(
        &mut self,
        keep: &[(u32, Option<Ipv4Addr>, Option<Ipv6Addr>)],
    ) -> Result<(), DatapathError> {
        self.retain::<[u8; 16], EndpointRef>(map_names::EP_BY_IP6, |ip| {
            keep.iter()
                .any(|(_, _, k)| k.is_some_and(|k| k.octets() == *ip))
        })?;
        self.retain::<u32, EndpointInfo>(map_names::ENDPOINTS, |i| {
            keep.iter().any(|(k, _, _)| k == i)
        })?;
        self.retain::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4, |ip| {
            keep.iter()
                .any(|(_, k, _)| k.is_some_and(|k| k.octets() == *ip))
        })
    }

    /// Removes the entries of `map` whose key `keep` refuses.
    fn retain<K: aya::Pod, V: aya::Pod>(
        &mut self,
        map: &'static str,
        keep: impl Fn(&K) -> bool,
    ) -> Result<(), DatapathError> {
        let stale: Vec<K> = self
            .entries::<K, V>(map)?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !keep(k))
            .collect();
        let mut entries = self.hash_map::<K, V>(map)?;
        for k in stale {
            absent_ok(entries.remove(&k), map)?;
        }
        Ok(())
    }
}
