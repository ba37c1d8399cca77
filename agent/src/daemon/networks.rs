//! Networks: creating (with a subnet of an address pool when none is
//! given) and removing them, their bridges, their entries in `NETWORKS4`
//! and `NETWORKS6`, their names (DNS) and how they are shown.

use std::{collections::BTreeMap, net::IpAddr};

use tracing::info;
use weir_common::network::{NET_ICC, NET_INTERNAL, NET_MASQUERADE, NET_ROUTED, NetInfo, NetInfo6};

use super::{Agent, DEFAULT_NETWORK, forwarding};
use crate::{
    api::types::{NatStats, NetworkView},
    datapath::no_ipv4,
    error::AgentError,
    network::{Mode, Network, NetworkSpec},
};

impl Agent {
    /// Makes `network`'s bridge exist, up, with the gateway address; returns
    /// its ifindex.
    pub(super) async fn ensure_bridge(&self, network: &Network) -> Result<u32, AgentError> {
        let index = self
            .nl
            .ensure_bridge(
                &network.bridge,
                network
                    .ipam
                    .as_ref()
                    .map(|i| (i.gateway(), i.subnet().prefix())),
                network.bridge_mac(),
            )
            .await?;
        if let Some(ipam6) = &network.ipam6 {
            self.nl
                .add_address6(
                    index,
                    ipam6.gateway(),
                    ipam6.subnet().prefix(),
                    &network.bridge,
                )
                .await?;
        }
        Ok(index)
    }

    /// Makes `NETWORKS4` and `NETWORKS6` hold every network of the
    /// registry. An IPv6-only network's IPv4 side is its [`no_ipv4`]
    /// address alone, internal: the rules every frame meets find it there,
    /// and no IPv4 packet of its containers goes anywhere.
    pub(super) fn sync_networks(&mut self) -> Result<(), AgentError> {
        let flags_of = |n: &Network| {
            [
                (n.masquerade, NET_MASQUERADE),
                (n.internal, NET_INTERNAL),
                (n.icc, NET_ICC),
                (n.mode == Mode::Routed, NET_ROUTED),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |all, (_, bit)| all | bit)
        };
        let networks: Vec<_> = self
            .state
            .registry
            .iter()
            .map(|n| {
                let none = no_ipv4(n.id);
                let (net, prefix, gateway, flags) = n.ipam.as_ref().map_or(
                    (none, 32, none, (flags_of(n) & NET_ICC) | NET_INTERNAL),
                    |ipam| {
                        let subnet = ipam.subnet();
                        (
                            subnet.network(),
                            subnet.prefix(),
                            ipam.gateway(),
                            flags_of(n),
                        )
                    },
                );
                let info = NetInfo {
                    id: n.id,
                    gateway: gateway.octets(),
                    snat_ip: n
                        .snat_ip
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
                        .octets(),
                    flags,
                    gateway_mac: n.bridge_mac(),
                    pad: [0; 2],
                };
                (net, prefix, info)
            })
            .collect();
        self.datapath.set_networks(&networks)?;
        let networks6: Vec<_> = self
            .state
            .registry
            .iter()
            .filter_map(|n| {
                let ipam6 = n.ipam6.as_ref()?;
                let subnet = ipam6.subnet();
                let info6 = NetInfo6 {
                    id: n.id,
                    flags: flags_of(n),
                    gateway: ipam6.gateway().octets(),
                };
                Some((subnet.network(), subnet.prefix(), info6))
            })
            .collect();
        self.datapath.set_networks6(&networks6)?;
        if self
            .state
            .registry
            .iter()
            .any(|n| n.ipam6.is_some() && !n.internal)
        {
            forwarding::enable_ipv6(&self.uplinks)?;
        }
        Ok(())
    }

    /// Whether network `n` has names: weir's own networks but the default
    /// one (an engine's networks have the engine's DNS).
    pub(super) fn has_names(&self, n: &Network) -> bool {
        let default = self
            .config
            .default_network
            .as_ref()
            .map_or(DEFAULT_NETWORK, |s| s.name.as_str());
        n.owner.is_weir() && n.name != default
    }

    /// Where network `n`'s names are answered (its gateway), if it has
    /// names.
    pub(super) fn resolver(&self, n: &Network) -> Option<IpAddr> {
        self.has_names(n)
            .then(|| {
                n.gateway()
                    .map(IpAddr::from)
                    .or_else(|| n.ipam6.as_ref().map(|i| i.gateway().into()))
            })
            .flatten()
    }

    /// Hands the names server every named network's endpoints (a further
    /// interface is known by its container's first endpoint's name).
    pub(super) fn update_names(&mut self) {
        // Each named network's endpoints, in one pass over the endpoints.
        let mut by_network: BTreeMap<&str, Vec<_>> = self
            .state
            .registry
            .iter()
            .filter(|n| self.has_names(n))
            .map(|n| (n.name.as_str(), Vec::new()))
            .collect();
        for e in self.state.endpoints.values() {
            if let Some(list) = by_network.get_mut(e.network.as_str()) {
                let name = e.primary.clone().unwrap_or_else(|| e.name.clone());
                list.push((name, e.ip, e.ip6));
            }
        }
        let mut names = crate::dns::Names::default();
        for (network, endpoints) in by_network {
            let Ok(n) = self.state.registry.get(network) else {
                continue;
            };
            let gateway6 = n.ipam6.as_ref().map(crate::network::Ipam6::gateway);
            let table = std::sync::Arc::new(crate::dns::NetworkNames::new(
                network,
                (n.gateway(), gateway6),
                &endpoints,
            ));
            for server in [n.gateway().map(IpAddr::from), gateway6.map(IpAddr::from)]
                .into_iter()
                .flatten()
            {
                names.by_server.insert(server, table.clone());
            }
        }
        self.dns.update(names);
    }

    #[must_use]
    pub fn networks(&self) -> Vec<NetworkView> {
        self.state.registry.iter().map(|n| self.view(n)).collect()
    }

    pub fn network(&self, name: &str) -> Result<NetworkView, AgentError> {
        Ok(self.view(self.state.registry.get(name)?))
    }

    pub(super) fn view(&self, network: &Network) -> NetworkView {
        let c = self.datapath.nat_stats(network.id).unwrap_or_default();
        NetworkView {
            network: network.clone(),
            dns: self.resolver(network),
            endpoints: self.state.endpoints_of(&network.name),
            masquerade_stats: NatStats {
                flows: c.flows,
                packets: c.packets,
                bytes: c.bytes,
                retries: c.retries,
                exhausted: c.exhausted,
            },
        }
    }

    pub async fn create_network(&mut self, spec: &NetworkSpec) -> Result<NetworkView, AgentError> {
        let mut spec = spec.clone();
        let mut pool = None;
        if spec.subnet.is_none() && spec.subnet6.is_none() {
            let (subnet, from) = self.pick_subnet().await?;
            (spec.subnet, pool) = (Some(subnet), Some(from));
        }
        let spec = &spec;
        let mut network = self.state.registry.plan(spec)?;
        network.pool = pool;
        if let Err(e) = self.ensure_bridge(&network).await {
            let _ = self.nl.delete_link(&network.bridge).await;
            return Err(e);
        }
        self.state.registry.insert(network.clone());
        self.save()?;
        self.sync_networks()?;
        self.refresh_host_addrs().await?;
        info!(network = %network.name, bridge = %network.bridge, subnet = ?spec.subnet,
            subnet6 = ?spec.subnet6, pool = ?network.pool.map(|p| p.to_string()), "network created");
        Ok(self.view(&network))
    }

    /// The first block of the address pools that overlaps no network's
    /// subnet and no address or route of the node (the default route
    /// aside), and its pool.
    async fn pick_subnet(
        &self,
    ) -> Result<(crate::network::Subnet, crate::network::Pool), AgentError> {
        let mut taken: Vec<crate::network::Subnet> = self
            .state
            .registry
            .iter()
            .filter_map(|n| n.ipam.as_ref().map(crate::network::Ipam::subnet))
            .collect();
        taken.extend(
            self.nl
                .ipv4_routes()
                .await?
                .into_iter()
                .filter(|r| r.prefix() > 0),
        );
        taken.extend(
            self.nl
                .ipv4_addresses()
                .await?
                .into_iter()
                .filter_map(|(ip, _)| crate::network::Subnet::new(ip, 32).ok()),
        );
        crate::network::pool::pick(&self.config.pools, &taken).ok_or_else(|| {
            AgentError::PoolsFull {
                pools: self
                    .config
                    .pools
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        })
    }

    pub async fn remove_network(&mut self, name: &str) -> Result<(), AgentError> {
        self.refuse_foreign_network(name)?;
        let network = self.state.registry.get(name)?;
        let endpoints = self.state.endpoints_of(name);
        if !endpoints.is_empty() {
            return Err(AgentError::NetworkInUse {
                name: name.to_owned(),
                endpoints,
            });
        }
        self.nl.delete_link(&network.bridge.clone()).await?;
        self.state.registry.remove(name)?;
        self.save()?;
        self.sync_networks()?;
        self.refresh_host_addrs().await?;
        info!(network = %name, "network removed");
        Ok(())
    }
}
