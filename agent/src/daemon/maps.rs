//! `weir maps`: what every map of the datapath holds, read from the
//! kernel (not from the agent's state) and named for people: endpoints,
//! publications with their containers, networks, the node's addresses,
//! conntrack with state and age, masquerade entries, the links.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddrV4},
};

use weir_common::{
    network::{NET_ICC, NET_INTERNAL, NET_MASQUERADE, NET_ROUTED},
    publish::{PROTO_TCP, PROTO_UDP, PublishKey6, PublishTarget6},
};

use super::Agent;
use crate::{
    api::types::{
        AddrEntry, AllowedEntry, EndpointEntry, MapsView, NetworkEntry, OpenPortEntry,
        PublishedEntry,
    },
    error::AgentError,
    network::{Subnet, mac_string},
};

fn proto(p: u8) -> String {
    match p {
        PROTO_TCP => "tcp".to_owned(),
        PROTO_UDP => "udp".to_owned(),
        other => other.to_string(),
    }
}

fn sock(ip: [u8; 4], port: [u8; 2]) -> SocketAddrV4 {
    SocketAddrV4::new(ip.into(), u16::from_be_bytes(port))
}

impl Agent {
    /// Reads every map and names what it can.
    /// `PUBLISH6`'s entries, each with the endpoint of its IPv6 address.
    fn published6(
        &self,
        raw: &[(PublishKey6, PublishTarget6)],
        network: impl Fn(u32) -> String,
    ) -> Vec<PublishedEntry> {
        raw.iter()
            .map(|(key, target)| {
                let ip6 = Ipv6Addr::from(target.ip);
                PublishedEntry {
                    proto: proto(key.proto),
                    host: (Ipv6Addr::from(key.host_ip), u16::from_be_bytes(key.port)).into(),
                    container: (ip6, u16::from_be_bytes(target.port)).into(),
                    endpoint: self
                        .state
                        .endpoints
                        .values()
                        .find(|e| e.ip6 == Some(ip6))
                        .map_or_else(|| "?".to_owned(), |e| e.name.clone()),
                    network: network(target.network_id),
                }
            })
            .collect()
    }

    /// The endpoint on host-side veth `ifname` ("?" if none).
    fn endpoint_on(&self, ifname: &str) -> String {
        self.state
            .endpoints
            .values()
            .find(|e| e.host_if == ifname)
            .map_or_else(|| "?".to_owned(), |e| e.name.clone())
    }

    /// `ALLOW4`'s entries, each with its port as `weir allow` names it.
    fn allowed_entries(&self) -> Result<Vec<AllowedEntry>, AgentError> {
        Ok(self
            .datapath
            .allowed()?
            .into_iter()
            .map(|(key, addr, prefix)| AllowedEntry {
                port: crate::publish::AllowedPort::of_key(&key).map_or_else(
                    || format!("{}/{}", u16::from_be_bytes(key.port), proto(key.proto)),
                    |p| p.to_string(),
                ),
                source: format!("{addr}/{prefix}"),
            })
            .collect())
    }

    pub async fn maps(&self) -> Result<MapsView, AgentError> {
        let raw = self.datapath.dump()?;
        let interfaces: BTreeMap<u32, String> = self.nl.links().await?.into_iter().collect();
        let interface = |i: u32| interfaces.get(&i).cloned().unwrap_or_else(|| "?".into());
        let network = |id: u32| {
            self.state
                .registry
                .iter()
                .find(|n| n.id == id)
                .map_or_else(|| format!("#{id}"), |n| n.name.clone())
        };
        let endpoint_on = |ifname: &str| self.endpoint_on(ifname);
        let mut view = MapsView {
            netns_cookie: raw.config.netns_cookie,
            snat_ports: format!("{}-{}", raw.config.snat_port_min, raw.config.snat_port_max),
            conntrack: self.conntrack()?,
            sock_rnat_entries: raw.sock_rnat,
            allowed: self.allowed_entries()?,
            links: self.datapath.links(),
            ..MapsView::default()
        };
        for (ifindex, info) in &raw.endpoints {
            let ifname = interface(*ifindex);
            view.endpoints.push(EndpointEntry {
                ifindex: *ifindex,
                endpoint: endpoint_on(&ifname),
                interface: ifname,
                ip: info.ip.into(),
                mac: mac_string(info.mac),
                network: network(info.network_id),
                indexed: raw
                    .by_ip
                    .iter()
                    .any(|(ip, r)| *ip == info.ip && r.ifindex == *ifindex),
            });
        }
        for (key, target) in &raw.published {
            view.published.push(PublishedEntry {
                proto: proto(key.proto),
                host: sock(key.host_ip, key.port).into(),
                container: sock(target.ip, target.port).into(),
                endpoint: endpoint_on(&interface(target.ifindex)),
                network: network(target.network_id),
            });
        }
        view.published
            .extend(self.published6(&raw.published6, network));
        for (key, id) in &raw.open_ports {
            view.open_ports.push(OpenPortEntry {
                proto: proto(key.proto),
                container: sock(key.host_ip, key.port),
                network: network(*id),
            });
        }
        for (addr, prefix, info) in &raw.networks {
            let flags = [
                (NET_MASQUERADE, "masquerade"),
                (NET_INTERNAL, "internal"),
                (NET_ICC, "icc"),
                (NET_ROUTED, "routed"),
            ]
            .iter()
            .filter(|(bit, _)| info.flags & bit != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect();
            let subnet = u8::try_from(*prefix)
                .ok()
                .and_then(|p| Subnet::new(Ipv4Addr::from(*addr), p).ok())
                .map_or_else(
                    || format!("{}/{prefix}", Ipv4Addr::from(*addr)),
                    |s| s.to_string(),
                );
            view.networks.push(NetworkEntry {
                subnet,
                network: network(info.id),
                id: info.id,
                gateway: info.gateway.into(),
                gateway_mac: mac_string(info.gateway_mac),
                snat_ip: info.snat_ip.into(),
                flags,
            });
        }
        let addr = |ip: [u8; 4], ifindex: u32| AddrEntry {
            ip: ip.into(),
            ifindex,
            interface: interface(ifindex),
        };
        view.host_addrs = raw.host_addrs.iter().map(|(ip, i)| addr(*ip, *i)).collect();
        view.uplinks = raw.uplinks.iter().map(|(i, ip)| addr(*ip, *i)).collect();
        view.endpoints.sort_by_key(|e| e.ip);
        view.published
            .sort_by_key(|p| (p.host.port(), p.proto.clone()));
        view.host_addrs.sort_by_key(|a| a.ip);
        Ok(view)
    }
}
