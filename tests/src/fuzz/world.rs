//! The node the fuzzer drives: every kind of network, endpoint and
//! publication the maps hold, entered as the agent would enter them, and
//! what the checks need to know of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{HashMap, MapData};
use weir_common::{
    ct::{CtEntry, CtKey},
    ct6::{CtEntry6, CtKey6},
    frag::{FragEntry, FragKey},
    network::{NET_ICC, NET_INTERNAL, NET_MASQUERADE, NET_ROUTED},
    publish::{PROTO_TCP, PROTO_UDP, PublishKey, PublishKey6, PublishTarget, PublishTarget6},
};

use crate::{
    packet::MAC_CONTAINER,
    prog::{Harness, MASQ_NODE, TEST_IFINDEX, net_info},
};

/// The node's uplink address (on `lo`, the test run's device).
pub const NODE: Ipv4Addr = MASQ_NODE;
pub const NODE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// A client outside (a resolved neighbour in [`crate::prog::node_ns`]).
pub const PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1);
/// A client a port's allow list holds, and one it does not.
pub const FRIEND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
pub const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
/// The masquerade port range.
pub const SNAT_PORTS: (u16, u16) = (30000, 30999);

/// A network: id, IPv4 subnet (/16), flags, IPv6 subnet (/64) if any.
pub struct Net {
    pub id: u32,
    pub subnet: Ipv4Addr,
    pub flags: u32,
    pub subnet6: Option<Ipv6Addr>,
}

/// Masquerading with icc; internal; routed; masquerading with icc off.
pub const NETS: [Net; 4] = [
    Net {
        id: 1,
        subnet: Ipv4Addr::new(10, 88, 0, 0),
        flags: NET_ICC | NET_MASQUERADE,
        subnet6: Some(Ipv6Addr::new(0xfd00, 0x88, 0, 0, 0, 0, 0, 0)),
    },
    Net {
        id: 2,
        subnet: Ipv4Addr::new(10, 99, 0, 0),
        flags: NET_ICC | NET_INTERNAL,
        subnet6: None,
    },
    Net {
        id: 3,
        subnet: Ipv4Addr::new(10, 77, 0, 0),
        flags: NET_ICC | NET_ROUTED,
        subnet6: None,
    },
    Net {
        id: 4,
        subnet: Ipv4Addr::new(10, 66, 0, 0),
        flags: NET_MASQUERADE,
        subnet6: None,
    },
];

/// An endpoint: its addresses, MAC and network (an index into [`NETS`]).
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
    pub net: usize,
}

pub const C1: usize = 0;
pub const C2: usize = 1;
pub const INTERNAL: usize = 2;
pub const ROUTED: usize = 3;
pub const NO_ICC: usize = 4;

pub const ENDPOINTS: [Endpoint; 6] = [
    Endpoint {
        ip: Ipv4Addr::new(10, 88, 0, 2),
        ip6: Some(Ipv6Addr::new(0xfd00, 0x88, 0, 0, 0, 0, 0, 2)),
        mac: MAC_CONTAINER,
        net: 0,
    },
    Endpoint {
        ip: Ipv4Addr::new(10, 88, 0, 3),
        ip6: None,
        mac: [2, 0, 0, 0, 0, 3],
        net: 0,
    },
    Endpoint {
        ip: Ipv4Addr::new(10, 99, 0, 2),
        ip6: None,
        mac: [2, 0, 0, 0, 0, 4],
        net: 1,
    },
    Endpoint {
        ip: Ipv4Addr::new(10, 77, 0, 2),
        ip6: None,
        mac: [2, 0, 0, 0, 0, 5],
        net: 2,
    },
    Endpoint {
        ip: Ipv4Addr::new(10, 66, 0, 2),
        ip6: None,
        mac: [2, 0, 0, 0, 0, 6],
        net: 3,
    },
    Endpoint {
        ip: Ipv4Addr::new(10, 66, 0, 3),
        ip6: None,
        mac: [2, 0, 0, 0, 0, 7],
        net: 3,
    },
];

/// The endpoints that take turns behind the test run's device.
pub const SENDERS: [usize; 4] = [C1, INTERNAL, ROUTED, NO_ICC];

/// A published port: host address (unspecified: every one), port,
/// protocol, target endpoint and its port.
pub struct Publication {
    pub host_ip: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
    pub to: usize,
    pub to_port: u16,
}

pub const PUBLICATIONS: [Publication; 5] = [
    Publication {
        host_ip: Ipv4Addr::UNSPECIFIED,
        port: 8080,
        proto: PROTO_TCP,
        to: C1,
        to_port: 80,
    },
    Publication {
        host_ip: Ipv4Addr::UNSPECIFIED,
        port: 5353,
        proto: PROTO_UDP,
        to: C1,
        to_port: 53,
    },
    Publication {
        host_ip: Ipv4Addr::UNSPECIFIED,
        port: 7070,
        proto: PROTO_TCP,
        to: INTERNAL,
        to_port: 80,
    },
    Publication {
        host_ip: NODE,
        port: 9090,
        proto: PROTO_TCP,
        to: NO_ICC,
        to_port: 80,
    },
    Publication {
        host_ip: Ipv4Addr::UNSPECIFIED,
        port: ALLOW_LISTED,
        proto: PROTO_TCP,
        to: C2,
        to_port: 443,
    },
];

/// The port whose allow list holds `198.51.100.0/24` alone.
pub const ALLOW_LISTED: u16 = 8443;
/// The routed container's port open to outsiders.
pub const ROUTED_OPEN: u16 = 80;
/// `[::]:8080/tcp` is published to C1's IPv6 address, port 80.
pub const PUBLISHED6: u16 = 8080;

/// The loaded datapath and whose turn it is behind the test run's device.
pub struct World {
    pub h: Harness,
    pub sender: usize,
}

impl World {
    /// Loads the datapath and enters the networks, the node, the
    /// publications and their lists (endpoints: [`World::enter`]).
    #[must_use]
    pub fn load() -> Self {
        let mut h = Harness::load();
        let dp = &mut h.datapath;
        dp.configure(SNAT_PORTS).unwrap();
        dp.set_uplinks(&[(TEST_IFINDEX, NODE)]).unwrap();
        dp.set_uplinks6(&[(TEST_IFINDEX, NODE6)]).unwrap();
        dp.set_host_addrs(&[(NODE, TEST_IFINDEX)]).unwrap();
        dp.set_host_addrs6(&[(NODE6, TEST_IFINDEX)]).unwrap();
        for n in &NETS {
            let o = n.subnet.octets();
            let gw = Ipv4Addr::new(o[0], o[1], 0, 1);
            h.network(n.subnet, 16, net_info(n.id, gw, n.flags));
            if let Some(s6) = n.subnet6 {
                let gw6 = Ipv6Addr::from(u128::from(s6) | 1);
                h.network6(&format!("{s6}/64"), n.id, n.flags, &gw6.to_string());
            }
        }
        let allow = key(&PUBLICATIONS[4]);
        h.datapath
            .set_allow(&[allow], &[(allow, Ipv4Addr::new(198, 51, 100, 0), 24)])
            .unwrap();
        let routed = &ENDPOINTS[ROUTED];
        h.datapath
            .set_open_ports(&[(
                PublishKey::new(routed.ip.octets(), ROUTED_OPEN, PROTO_TCP),
                NETS[routed.net].id,
            )])
            .unwrap();
        let mut w = Self { h, sender: C1 };
        w.enter(C1);
        w
    }

    /// The host-side ifindex of endpoint `e` while `sender` is behind the
    /// test run's device: the sender there, the others after it.
    #[must_use]
    pub fn ifindex(&self, e: usize) -> u32 {
        let rank = u32::try_from(ENDPOINTS.len()).unwrap();
        let pos = u32::try_from(e).unwrap();
        if e == self.sender {
            TEST_IFINDEX
        } else {
            TEST_IFINDEX + 1 + (pos + rank - u32::try_from(self.sender).unwrap()) % rank
        }
    }

    /// Puts endpoint `sender` behind the test run's device, every endpoint
    /// and publication entered anew with the ifindexes that follow, and
    /// forgets every flow and fragment (they named the old ones).
    pub fn enter(&mut self, sender: usize) {
        self.sender = sender;
        for (e, ep) in ENDPOINTS.iter().enumerate() {
            let ifindex = self.ifindex(e);
            self.h
                .datapath
                .insert_endpoint(ifindex, Some(ep.ip), ep.mac, NETS[ep.net].id)
                .unwrap();
            self.h
                .datapath
                .set_endpoint6(ifindex, ep.ip6, ep.mac)
                .unwrap();
        }
        for p in &PUBLICATIONS {
            let to = &ENDPOINTS[p.to];
            let target = PublishTarget {
                ip: to.ip.octets(),
                port: p.to_port.to_be_bytes(),
                pad: [0; 2],
                ifindex: self.ifindex(p.to),
                network_id: NETS[to.net].id,
            };
            self.h.datapath.ensure_port_stats(key(p)).unwrap();
            self.h.datapath.insert_publish(key(p), target).unwrap();
        }
        let c1 = &ENDPOINTS[C1];
        let key6 = PublishKey6::new([0; 16], PUBLISHED6, PROTO_TCP);
        self.h.datapath.ensure_port_stats(key6).unwrap();
        self.h
            .datapath
            .insert_publish6(
                key6,
                PublishTarget6 {
                    ip: c1.ip6.unwrap().octets(),
                    port: 80u16.to_be_bytes(),
                    pad: [0; 2],
                    network_id: NETS[c1.net].id,
                },
            )
            .unwrap();
        self.clear::<CtKey, CtEntry>("CT4");
        self.clear::<CtKey6, CtEntry6>("CT6");
        self.clear::<FragKey, FragEntry>("FRAG4");
    }

    /// Entries in map `name` (a hash map of `K` to `V`).
    #[must_use]
    pub fn count<K: aya::Pod, V: aya::Pod>(&mut self, name: &str) -> usize {
        self.table::<K, V>(name).keys().count()
    }

    fn clear<K: aya::Pod, V: aya::Pod>(&mut self, name: &str) {
        let mut map = self.table::<K, V>(name);
        let keys: Vec<K> = map.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = map.remove(&k);
        }
    }

    /// Map `name` as a hash map of `K` to `V`.
    pub fn table<K: aya::Pod, V: aya::Pod>(&mut self, name: &str) -> HashMap<&mut MapData, K, V> {
        let map = self.h.datapath.ebpf_mut().map_mut(name).expect(name);
        HashMap::try_from(map).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The endpoint at `ip`, if one is.
    #[must_use]
    pub fn endpoint_at(ip: IpAddr) -> Option<usize> {
        ENDPOINTS.iter().position(|e| match ip {
            IpAddr::V4(a) => e.ip == a,
            IpAddr::V6(a) => e.ip6 == Some(a),
        })
    }

    /// Whether `ip` is a network's gateway: the node's address on its
    /// bridge.
    #[must_use]
    pub fn is_gateway(ip: IpAddr) -> bool {
        NETS.iter().any(|n| match ip {
            IpAddr::V4(a) => u32::from(a) == u32::from(n.subnet) | 1,
            IpAddr::V6(a) => n
                .subnet6
                .is_some_and(|s| u128::from(a) == u128::from(s) | 1),
        })
    }

    /// The network (an index into [`NETS`]) whose subnet holds `ip`.
    #[must_use]
    pub fn net_of(ip: IpAddr) -> Option<usize> {
        NETS.iter().position(|n| match ip {
            IpAddr::V4(a) => u32::from(a) >> 16 == u32::from(n.subnet) >> 16,
            IpAddr::V6(a) => n
                .subnet6
                .is_some_and(|s| u128::from(a) >> 64 == u128::from(s) >> 64),
        })
    }
}

/// A publication's `PUBLISH4` key.
#[must_use]
pub fn key(p: &Publication) -> PublishKey {
    PublishKey::new(p.host_ip.octets(), p.port, p.proto)
}
