//! Typed handles on the maps: endpoints, published ports, the node's
//! addresses, the programs' config, conntrack and counters.

use std::{
    collections::HashSet,
    net::Ipv4Addr,
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::{
    Array, HashMap, MapData,
    lpm_trie::{Key, LpmTrie},
};
use weir_common::{
    config::Config,
    endpoint::{EP_XDP_TARGET, EndpointInfo, EndpointRef},
    frag::{FragEntry, FragKey},
    network::{NetInfo, NetInfo6},
    publish::{ALLOW_PREFIX, AllowKey, PublishKey, PublishKey6, PublishTarget, PublishTarget6},
};

use super::{
    Datapath, DatapathError, absent_ok,
    ct_table::{CtRecord, CtTable, Tracked},
    found, map_err, map_names, pins, sys,
};

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
    /// Records an endpoint in `ENDPOINTS` and `EP_BY_IP4`. `xdp_target`:
    /// its veth's container end takes redirected XDP frames
    /// ([`EP_XDP_TARGET`]). An endpoint without IPv4 (of an IPv6-only
    /// network) has its network's [`no_ipv4`] address in `ENDPOINTS`
    /// and nothing in `EP_BY_IP4`.
    pub fn insert_endpoint(
        &mut self,
        ifindex: u32,
        ip: Option<Ipv4Addr>,
        mac: [u8; 6],
        network_id: u32,
        xdp_target: bool,
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
            flags: if xdp_target { EP_XDP_TARGET } else { 0 },
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
    /// endpoint behind host-side veth `ifindex` in `ENDPOINTS6`.
    pub fn set_endpoint6(
        &mut self,
        ifindex: u32,
        ip6: Option<std::net::Ipv6Addr>,
    ) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<u32, [u8; 16]>(map_names::ENDPOINTS6)?;
        match ip6 {
            Some(ip6) => map
                .insert(ifindex, ip6.octets(), 0)
                .map_err(|source| map_err(map_names::ENDPOINTS6, source)),
            None => absent_ok(map.remove(&ifindex), map_names::ENDPOINTS6),
        }
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

    /// Makes LPM trie `name` hold exactly `wanted`.
    fn set_lpm<K: aya::Pod + PartialEq, V: aya::Pod>(
        &mut self,
        name: &'static str,
        wanted: &[(Key<K>, V)],
    ) -> Result<(), DatapathError> {
        let mut trie: LpmTrie<&mut MapData, K, V> = self
            .ebpf
            .map_mut(name)
            .ok_or(DatapathError::MissingMap(name))?
            .try_into()
            .map_err(|source| map_err(name, source))?;
        let stale: Vec<Key<K>> = trie
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                !wanted
                    .iter()
                    .any(|(w, _)| w.prefix_len() == k.prefix_len() && w.data() == k.data())
            })
            .collect();
        for key in stale {
            absent_ok(trie.remove(&key), name)?;
        }
        for (key, info) in wanted {
            trie.insert(key, info, 0)
                .map_err(|source| map_err(name, source))?;
        }
        Ok(())
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
            self.set_endpoint6(ifindex, None)?;
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

    /// Publishes `key` to `target` in `PUBLISH4` (replacing what was there).
    pub fn insert_publish(
        &mut self,
        key: PublishKey,
        target: PublishTarget,
    ) -> Result<(), DatapathError> {
        self.hash_map::<PublishKey, PublishTarget>(map_names::PUBLISH4)?
            .insert(key, target, 0)
            .map_err(|source| map_err(map_names::PUBLISH4, source))
    }

    /// Removes `key` from `PUBLISH4` (absent is fine).
    pub fn remove_publish(&mut self, key: PublishKey) -> Result<(), DatapathError> {
        absent_ok(
            self.hash_map::<PublishKey, PublishTarget>(map_names::PUBLISH4)?
                .remove(&key),
            map_names::PUBLISH4,
        )
    }

    /// Publishes `key` to `target` in `PUBLISH6` (replacing what was there).
    pub fn insert_publish6(
        &mut self,
        key: PublishKey6,
        target: PublishTarget6,
    ) -> Result<(), DatapathError> {
        self.hash_map::<PublishKey6, PublishTarget6>(map_names::PUBLISH6)?
            .insert(key, target, 0)
            .map_err(|source| map_err(map_names::PUBLISH6, source))
    }

    /// Removes `key` from `PUBLISH6` (absent is fine).
    pub fn remove_publish6(&mut self, key: PublishKey6) -> Result<(), DatapathError> {
        absent_ok(
            self.hash_map::<PublishKey6, PublishTarget6>(map_names::PUBLISH6)?
                .remove(&key),
            map_names::PUBLISH6,
        )
    }

    /// The `PUBLISH6` entries.
    pub fn published6(&self) -> Result<Vec<(PublishKey6, PublishTarget6)>, DatapathError> {
        self.entries(map_names::PUBLISH6)
    }

    /// Makes `OPEN_PORTS4` hold exactly `open`: the container ports
    /// (container address, port, protocol) routed mode lets outsiders
    /// reach, with their network ids.
    pub fn set_open_ports(&mut self, open: &[(PublishKey, u32)]) -> Result<(), DatapathError> {
        self.set_hash(map_names::OPEN_PORTS4, open)
    }

    /// Makes `OPEN_PORTS6` hold exactly `open`: `set_open_ports` for the
    /// containers' IPv6 addresses.
    pub fn set_open_ports6(&mut self, open: &[(PublishKey6, u32)]) -> Result<(), DatapathError> {
        self.set_hash(map_names::OPEN_PORTS6, open)
    }

    /// Removes every `PUBLISH4` entry not in `keep` and `PUBLISH6` one not
    /// in `keep6` (left by an agent that
    /// stopped between a map write and saving its state).
    pub fn retain_published(
        &mut self,
        keep: &[PublishKey],
        keep6: &[PublishKey6],
    ) -> Result<(), DatapathError> {
        let stale: Vec<PublishKey> = self
            .published()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !keep.contains(k))
            .collect();
        for key in stale {
            self.remove_publish(key)?;
        }
        let stale6: Vec<PublishKey6> = self
            .published6()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !keep6.contains(k))
            .collect();
        for key in stale6 {
            self.remove_publish6(key)?;
        }
        self.retain_port_stats(keep)?;
        self.retain_port_stats(keep6)
    }

    /// Removes the `ENDPOINTS` entries of veths not in `keep` and the
    /// `EP_BY_IP4` entries of addresses not in `keep`.
    pub fn retain_endpoints(
        &mut self,
        keep: &[(u32, Option<Ipv4Addr>)],
    ) -> Result<(), DatapathError> {
        let stale: Vec<u32> = self
            .endpoints()?
            .into_iter()
            .map(|(i, _)| i)
            .filter(|i| !keep.iter().any(|(k, _)| k == i))
            .collect();
        let mut endpoints = self.hash_map::<u32, EndpointInfo>(map_names::ENDPOINTS)?;
        for ifindex in stale {
            absent_ok(endpoints.remove(&ifindex), map_names::ENDPOINTS)?;
        }
        let stale: Vec<[u8; 4]> = self
            .entries::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?
            .into_iter()
            .map(|(ip, _)| ip)
            .filter(|ip| {
                !keep
                    .iter()
                    .any(|(_, k)| k.is_some_and(|k| k.octets() == *ip))
            })
            .collect();
        let mut by_ip = self.hash_map::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?;
        for ip in stale {
            absent_ok(by_ip.remove(&ip), map_names::EP_BY_IP4)?;
        }
        Ok(())
    }

    /// The `PUBLISH4` entries.
    pub fn published(&self) -> Result<Vec<(PublishKey, PublishTarget)>, DatapathError> {
        self.entries(map_names::PUBLISH4)
    }

    /// Makes `HOST_ADDRS4` hold exactly `addrs` (address, ifindex).
    pub fn set_host_addrs(&mut self, addrs: &[(Ipv4Addr, u32)]) -> Result<(), DatapathError> {
        let wanted: Vec<([u8; 4], u32)> = addrs.iter().map(|(a, i)| (a.octets(), *i)).collect();
        self.set_hash(map_names::HOST_ADDRS4, &wanted)
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

    /// Makes `HOST_ADDRS6` hold exactly the node's IPv6 addresses.
    pub fn set_host_addrs6(
        &mut self,
        addrs: &[(std::net::Ipv6Addr, u32)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<([u8; 16], u32)> = addrs.iter().map(|(a, i)| (a.octets(), *i)).collect();
        self.set_hash(map_names::HOST_ADDRS6, &wanted)
    }

    /// Tells the programs which network namespace is the agent's (the one
    /// the calling thread is in) and the masquerade port range.
    pub fn configure(&mut self, snat_ports: (u16, u16)) -> Result<(), DatapathError> {
        let config = Config {
            netns_cookie: netns_cookie()?,
            snat_port_min: snat_ports.0,
            snat_port_max: snat_ports.1,
            trace4: [0; 4],
        };
        self.config_array()?
            .set(0, config, 0)
            .map_err(|source| map_err(map_names::CONFIG, source))
    }

    /// Turns the programs' trace (`CONFIG.trace4`) on for `addr`'s
    /// packets, or off.
    pub fn set_trace(&mut self, addr: Option<Ipv4Addr>) -> Result<(), DatapathError> {
        let mut array = self.config_array()?;
        let mut config = array
            .get(&0, 0)
            .map_err(|source| map_err(map_names::CONFIG, source))?;
        config.trace4 = addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets();
        array
            .set(0, config, 0)
            .map_err(|source| map_err(map_names::CONFIG, source))
    }

    fn config_array(&mut self) -> Result<Array<&mut MapData, Config>, DatapathError> {
        self.ebpf
            .map_mut(map_names::CONFIG)
            .ok_or(DatapathError::MissingMap(map_names::CONFIG))?
            .try_into()
            .map_err(|source| map_err(map_names::CONFIG, source))
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

    /// Makes `ALLOW_PORTS4` hold exactly `ports` and `ALLOW4` exactly
    /// `sources` (publication, source subnet, its prefix): `weir allow`;
    /// `ALLOW_PORTS6` the IPv6 side (`::`) of the ports on every address.
    pub fn set_allow(
        &mut self,
        ports: &[PublishKey],
        sources: &[(PublishKey, Ipv4Addr, u8)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<(PublishKey, u32)> = ports.iter().map(|k| (*k, 1)).collect();
        self.set_hash(map_names::ALLOW_PORTS4, &wanted)?;
        let wanted6: Vec<(PublishKey6, u32)> = ports
            .iter()
            .filter(|k| k.host_ip == [0; 4])
            .map(|k| {
                (
                    PublishKey6::new([0; 16], u16::from_be_bytes(k.port), k.proto),
                    1,
                )
            })
            .collect();
        self.set_hash(map_names::ALLOW_PORTS6, &wanted6)?;
        let lists: Vec<_> = sources
            .iter()
            .map(|(publication, addr, prefix)| {
                let key = AllowKey {
                    publication: *publication,
                    saddr: addr.octets(),
                };
                (Key::new(ALLOW_PREFIX + u32::from(*prefix), key), 1u32)
            })
            .collect();
        self.set_lpm(map_names::ALLOW4, &lists)
    }

    /// `ALLOW4`'s entries: (publication, source subnet, its prefix).
    pub fn allowed(&self) -> Result<Vec<(PublishKey, Ipv4Addr, u8)>, DatapathError> {
        let name = map_names::ALLOW4;
        let trie: LpmTrie<&MapData, AllowKey, u32> = self
            .ebpf
            .map(name)
            .ok_or(DatapathError::MissingMap(name))?
            .try_into()
            .map_err(|source| map_err(name, source))?;
        Ok(trie
            .keys()
            .filter_map(Result::ok)
            .map(|k| {
                let prefix = k.prefix_len().saturating_sub(ALLOW_PREFIX);
                let data = k.data();
                (
                    data.publication,
                    data.saddr.into(),
                    u8::try_from(prefix).unwrap_or(32),
                )
            })
            .collect())
    }

    /// Makes `UPLINKS` hold exactly `uplinks`: (ifindex, masquerade address).
    pub fn set_uplinks(&mut self, uplinks: &[(u32, Ipv4Addr)]) -> Result<(), DatapathError> {
        let wanted: Vec<(u32, [u8; 4])> = uplinks.iter().map(|(i, ip)| (*i, ip.octets())).collect();
        self.set_hash(map_names::UPLINKS, &wanted)
    }

    /// Every entry of `K`'s conntrack table (`CT4`, `CT6`).
    pub fn conntrack<K: CtTable>(&self) -> Result<Vec<Tracked<K>>, DatapathError> {
        Ok(self
            .entries::<K, K::Entry>(K::MAP)?
            .into_iter()
            .map(|(key, entry)| Tracked { key, entry })
            .collect())
    }

    /// Every `FRAG4` entry: datagrams whose first fragment was translated.
    pub fn fragments(&self) -> Result<Vec<(FragKey, FragEntry)>, DatapathError> {
        self.entries::<FragKey, FragEntry>(map_names::FRAG4)
    }

    /// Removes these entries of `K`'s table (absent ones are fine).
    pub fn remove_conntrack<K: CtTable>(&mut self, keys: &[K]) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<K, K::Entry>(K::MAP)?;
        for key in keys {
            absent_ok(map.remove(key), K::MAP)?;
        }
        Ok(())
    }

    /// Removes a flow's entries (of `K`'s table) as they were read (`flow`), all or
    /// none: if a packet has touched any of them since, or a new flow has
    /// taken one of their tuples (a client port used again), they all
    /// stay. Returns whether they were removed.
    ///
    /// Each entry is taken out with its value in one step and compared
    /// then, so a packet can never land between the check and the
    /// removal unseen (a connection opened again on the tuple that
    /// moment would lose its entries, and its answers would meet none).
    /// What was taken from a flow found in use goes back, unless the
    /// datapath has written the tuple anew meanwhile.
    pub fn remove_flow_if_unchanged<K: CtTable>(
        &mut self,
        flow: &[Tracked<K>],
    ) -> Result<bool, DatapathError> {
        let ct = self
            .ebpf
            .map(K::MAP)
            .ok_or(DatapathError::MissingMap(K::MAP))?;
        let fd = pins::map_data(ct)
            .ok_or(DatapathError::MissingMap(K::MAP))?
            .fd()
            .as_fd();
        let take = |e: std::io::Error| DatapathError::Take {
            map: K::MAP,
            source: e,
        };
        // Read first: a flow in use stays without being touched at all.
        let map: HashMap<_, K, K::Entry> = HashMap::try_from(ct).map_err(|e| map_err(K::MAP, e))?;
        for f in flow {
            if let Some(now) = found(map.get(&f.key, 0), K::MAP)?
                && !f.entry.same_use(&now)
            {
                return Ok(false);
            }
        }
        let mut taken = Vec::with_capacity(flow.len());
        for f in flow {
            let Some(now) = sys::map_take::<K, K::Entry>(fd, &f.key).map_err(take)? else {
                continue;
            };
            taken.push((f.key, now));
            if !f.entry.same_use(&now) {
                // In use after all: what was taken goes back, unless the
                // datapath has made the tuple anew meanwhile.
                for (key, entry) in &taken {
                    sys::map_insert_new(fd, key, entry).map_err(take)?;
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Makes hash map `map` hold exactly `wanted`: keys it has and
    /// `wanted` lacks are removed, every wanted entry written.
    fn set_hash<K: aya::Pod + Eq + std::hash::Hash, V: aya::Pod>(
        &mut self,
        map: &'static str,
        wanted: &[(K, V)],
    ) -> Result<(), DatapathError> {
        let keep: HashSet<K> = wanted.iter().map(|(k, _)| *k).collect();
        let have: Vec<(K, V)> = self.entries(map)?;
        let mut hash = self.hash_map::<K, V>(map)?;
        for (key, _) in have {
            if !keep.contains(&key) {
                absent_ok(hash.remove(&key), map)?;
            }
        }
        for (key, value) in wanted {
            hash.insert(key, value, 0)
                .map_err(|source| map_err(map, source))?;
        }
        Ok(())
    }

    pub(super) fn entries<K: aya::Pod, V: aya::Pod>(
        &self,
        map: &'static str,
    ) -> Result<Vec<(K, V)>, DatapathError> {
        let data = self.ebpf.map(map).ok_or(DatapathError::MissingMap(map))?;
        // Typed first: a map of other sizes is an error, not garbage.
        let _: HashMap<_, K, V> = HashMap::try_from(data).map_err(|source| map_err(map, source))?;
        let fd = pins::map_data(data)
            .ok_or(DatapathError::MissingMap(map))?
            .fd()
            .as_fd();
        sys::map_entries(fd).map_err(|source| DatapathError::Walk { map, source })
    }
}

/// The cookie of the calling thread's network namespace.
fn netns_cookie() -> Result<u64, DatapathError> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("0.0.0.0:0"))
        .map_err(DatapathError::NetnsCookie)?;
    let mut cookie: u64 = 0;
    let mut len: libc::socklen_t = 8; // size_of::<u64>()
    // SAFETY: a valid socket and a buffer of the length we pass.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(DatapathError::NetnsCookie(std::io::Error::last_os_error()));
    }
    Ok(cookie)
}
