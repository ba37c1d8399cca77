//! Endpoints: a veth pair per container, the host side a port of the
//! network's bridge with `tc_from_container` on its tcx ingress, the other
//! side `eth0` in the container's namespace.

use std::{fs::File, net::Ipv4Addr, os::fd::AsRawFd, path::Path};

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Agent, Endpoint};
use crate::{
    error::AgentError,
    netlink::{NetlinkError, ethtool},
    netns,
    network::{IpamError, mac_of, mac_string, parse_mac, registry::validate_name},
};

/// What `weir attach` asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttachRequest {
    pub network: String,
    pub netns: std::path::PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address on a dual-stack network (default: the next free).
    #[serde(default)]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// Ports to publish (`-p` specs).
    #[serde(default)]
    pub ports: Vec<String>,
    /// The interface's name in the namespace (default `eth0`).
    #[serde(default)]
    pub ifname: Option<String>,
    /// Its MAC (default: `02:42` and the address, as Docker's).
    #[serde(default)]
    pub mac: Option<String>,
    /// Further networks to connect it to (`--network` more than once):
    /// an interface on each, after the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
}

/// What `weir connect` asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectRequest {
    pub network: String,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip6: Option<std::net::Ipv6Addr>,
}

/// The container-side interface name when none is asked for.
pub const DEFAULT_IFNAME: &str = "eth0";

/// Host-side veths the agent made: `weirv<id>`.
pub fn is_host_veth_name(name: &str) -> bool {
    name.strip_prefix("weirv")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

fn host_veth(id: u32) -> String {
    format!("weirv{id}")
}

/// The container side's name while it is still in the node namespace.
fn peer_veth(id: u32) -> String {
    format!("weirp{id}")
}

impl Agent {
    pub async fn attach(&mut self, req: &AttachRequest) -> Result<Endpoint, AgentError> {
        let ep = self.attach_as(req, None).await?;
        // All or nothing: a further network that cannot be joined undoes
        // the attach.
        for network in &req.networks {
            if let Err(e) = self.connect(&ep.name, network, None, None).await {
                let _ = self.detach(&ep.name).await;
                return Err(e);
            }
        }
        Ok(ep)
    }

    /// [`Agent::attach`] of a container's first interface (`primary`
    /// none: it has the default routes) or of a further one, whose
    /// endpoint is `primary`'s.
    async fn attach_as(
        &mut self,
        req: &AttachRequest,
        primary: Option<&str>,
    ) -> Result<Endpoint, AgentError> {
        self.refuse_foreign_network(&req.network)?;
        let network = self.state.registry.get(&req.network)?.clone();
        let id = self.state.next_endpoint;
        let name = req.name.clone().unwrap_or_else(|| format!("ep{id}"));
        validate_name(&name).map_err(|_| AgentError::InvalidEndpointName { name: name.clone() })?;
        if self.state.endpoints.contains_key(&name) {
            return Err(AgentError::EndpointExists { name });
        }
        for spec in &req.ports {
            spec.parse::<crate::publish::PortSpec>()?;
        }
        let ifname = req.ifname.as_deref().unwrap_or(DEFAULT_IFNAME);
        validate_ifname(ifname)?;
        let mac = match &req.mac {
            Some(text) => {
                Some(parse_mac(text).ok_or_else(|| AgentError::InvalidMac { mac: text.clone() })?)
            }
            None => None,
        };
        check_netns(&req.netns)?;
        if netns::with_netlink(&req.netns, async |nl| nl.link_index(ifname).await)?.is_some() {
            return Err(AgentError::IfnameExists {
                path: req.netns.clone(),
                ifname: ifname.to_owned(),
            });
        }
        let ip = self.allocate4(&network.name, req.ip)?;
        let ip6 = match self.allocate6(&network.name, req.ip6) {
            Ok(ip6) => ip6,
            Err(e) => {
                if let (Ok(n), Some(ip)) = (self.state.registry.get_mut(&network.name), ip) {
                    n.ipam.as_mut().map(|i| i.release(ip));
                }
                return Err(e);
            }
        };
        let endpoint = Endpoint {
            id,
            name: name.clone(),
            network: network.name.clone(),
            netns: req.netns.clone(),
            ip,
            ip6,
            mac: mac_string(mac.unwrap_or_else(|| mac_of(ip, ip6))),
            host_if: host_veth(id),
            ports: Vec::new(),
            owner: crate::owner::Owner::Weir,
            primary: primary.map(str::to_owned),
        };
        self.state.next_endpoint = id + 1;
        let made = match self.ensure_bridge(&network).await {
            Ok(bridge) => self.plumb(&endpoint, bridge, Some(ifname)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            // Leave nothing half made: the veth pair (both ends go with the
            // host side), the attachment, the map entries, the address.
            let _ = self.nl.delete_link(&endpoint.host_if).await;
            let _ = self.nl.delete_link(&peer_veth(id)).await;
            let _ = self.datapath.detach_from_container(&endpoint.host_if);
            if let Ok(n) = self.state.registry.get_mut(&network.name) {
                n.release(ip, ip6);
            }
            return Err(e);
        }
        self.state.endpoints.insert(name.clone(), endpoint.clone());
        self.save()?;
        info!(endpoint = %name, network = %network.name, ip = ?ip, ip6 = ?ip6, "attached");
        if !req.ports.is_empty() {
            match self.publish(&name, &req.ports).await {
                Ok(ports) => {
                    return Ok(Endpoint { ports, ..endpoint });
                }
                Err(e) => {
                    // All or nothing: an attach whose ports cannot be
                    // published is undone.
                    let _ = self.remove_endpoint(&name).await;
                    return Err(e);
                }
            }
        }
        Ok(endpoint)
    }

    /// Makes the veth pair and everything on it, with the host side a port
    /// of `bridge` (the network's bridge, already there). `create`: make the
    /// pair, its container side named so; otherwise the pair exists and only
    /// the node side is redone.
    async fn plumb(
        &mut self,
        ep: &Endpoint,
        bridge: u32,
        create: Option<&str>,
    ) -> Result<(), AgentError> {
        let network = self.state.registry.get(&ep.network)?.clone();
        let mac = parse_mac(&ep.mac).unwrap_or_else(|| mac_of(ep.ip, ep.ip6));
        if let Some(ifname) = create {
            let peer = peer_veth(ep.id);
            self.nl.create_veth(&ep.host_if, &peer).await?;
            let ns = File::open(&ep.netns)
                .map_err(AgentError::io(format!("opening {}", ep.netns.display())))?;
            self.nl.move_to_netns(&peer, ns.as_raw_fd()).await?;
            let v4 = network
                .ipam
                .as_ref()
                .zip(ep.ip)
                .map(|(i, ip)| (ip, i.subnet().prefix(), i.gateway()));
            let v6 = network
                .ipam6
                .as_ref()
                .zip(ep.ip6)
                .map(|(i, ip6)| (ip6, i.subnet().prefix(), i.gateway()));
            // The default routes are the first interface's.
            let default_route = ep.primary.is_none();
            netns::with_netlink(&ep.netns, async |nl| {
                nl.configure_container_side((&peer, ifname), mac, v4, default_route)
                    .await?;
                match v6 {
                    Some(v6) => {
                        nl.configure_container_side6(ifname, v6, default_route)
                            .await
                    }
                    None => Ok(()),
                }
            })?;
        } else {
            // An older agent made it without GRO: on now, or XDP's
            // redirects into it would be lost.
            let ifname = match &ep.owner {
                crate::owner::Owner::Cni { ifname, .. } => ifname.clone(),
                _ => DEFAULT_IFNAME.to_owned(),
            };
            netns::with_netlink(&ep.netns, async |_| {
                ethtool::set(&ifname, ethtool::Feature::Gro, true).map_err(NetlinkError::Feature)
            })?;
        }
        // The endpoint's entry first, then the program, then the bridge:
        // the program shuts a veth it has no entry for, and no frame
        // crosses before both are in place.
        let ifindex = self.nl.require_index(&ep.host_if).await?;
        self.datapath
            .insert_endpoint(ifindex, ep.ip, mac, network.id, true)?;
        self.datapath.set_endpoint6(ifindex, ep.ip6)?;
        self.datapath.attach_from_container(&ep.host_if)?;
        self.nl.attach_to_bridge(&ep.host_if, bridge).await?;
        Ok(())
    }

    /// On start, with `bridge` its network's bridge (made by the caller): an
    /// endpoint whose veth still exists gets its bridge port,
    /// attachment and map entries back. One whose veth is gone is an error
    /// (its namespace went away while the agent was down).
    pub(super) async fn restore_endpoint(
        &mut self,
        name: &str,
        bridge: u32,
    ) -> Result<(), AgentError> {
        let ep = self.state.endpoints.get(name).cloned().ok_or_else(|| {
            AgentError::EndpointNotFound {
                name: name.to_owned(),
            }
        })?;
        let Some(index) = self.nl.link_index(&ep.host_if).await? else {
            return Err(AgentError::NetnsMissing { path: ep.netns });
        };
        if matches!(ep.owner, crate::owner::Owner::Docker { .. }) {
            // The engine's veth, already its bridge's port.
            let network_id = self.state.registry.get(&ep.network)?.id;
            let mac = parse_mac(&ep.mac).unwrap_or_else(|| mac_of(ep.ip, ep.ip6));
            self.datapath
                .insert_endpoint(index, ep.ip, mac, network_id, false)?;
            self.datapath.set_endpoint6(index, ep.ip6)?;
            self.datapath.attach_from_container(&ep.host_if)?;
        } else {
            self.plumb(&ep, bridge, None).await?;
        }
        self.install(&ep, &ep.ports).await?;
        // Engines and CNI runtimes hold their own ports.
        if ep.owner.is_weir() {
            self.rereserve(&ep);
        }
        Ok(())
    }

    /// Drops an endpoint from the state and frees its addresses.
    pub(super) fn forget_endpoint(&mut self, name: &str) -> Option<Endpoint> {
        let ep = self.state.endpoints.remove(name)?;
        if let Ok(n) = self.state.registry.get_mut(&ep.network) {
            n.release(ep.ip, ep.ip6);
        }
        Some(ep)
    }

    /// An IPv4 address for an endpoint of network `name`: `wanted`, or the
    /// next free; none on an IPv6-only network (where asking for one is an
    /// error).
    fn allocate4(
        &mut self,
        name: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Option<Ipv4Addr>, AgentError> {
        let network = self.state.registry.get_mut(name)?;
        let Some(ipam) = network.ipam.as_mut() else {
            return match wanted {
                None => Ok(None),
                Some(ip) => Err(AgentError::NoIpv4 {
                    network: name.to_owned(),
                    ip,
                }),
            };
        };
        match ipam.allocate(wanted) {
            Err(IpamError::Taken { ip }) => {
                let holder = self.state.endpoints.values().find(|e| e.ip == Some(ip));
                Err(match holder {
                    Some(e) => AgentError::AddressInUse {
                        ip,
                        endpoint: e.name.clone(),
                    },
                    None => IpamError::Taken { ip }.into(),
                })
            }
            other => Ok(Some(other?)),
        }
    }

    /// An IPv6 address for an endpoint of network `name`: `wanted`, or the
    /// next free; none on a network without IPv6 (where asking for one is
    /// an error).
    fn allocate6(
        &mut self,
        name: &str,
        wanted: Option<std::net::Ipv6Addr>,
    ) -> Result<Option<std::net::Ipv6Addr>, AgentError> {
        let network = self.state.registry.get_mut(name)?;
        match (network.ipam6.as_mut(), wanted) {
            (None, None) => Ok(None),
            (None, Some(ip6)) => Err(AgentError::NoIpv6 {
                network: name.to_owned(),
                ip6,
            }),
            (Some(ipam6), wanted) => {
                match ipam6.allocate(wanted) {
                    Err(crate::network::Ipam6Error::Taken { ip }) => {
                        let holder = self.state.endpoints.values().find(|e| e.ip6 == Some(ip));
                        Err(match holder {
                            Some(e) => AgentError::Address6InUse {
                                ip,
                                endpoint: e.name.clone(),
                            },
                            None => crate::network::NetworkError::from(
                                crate::network::Ipam6Error::Taken { ip },
                            )
                            .into(),
                        })
                    }
                    other => Ok(Some(other.map_err(crate::network::NetworkError::from)?)),
                }
            }
        }
    }

    /// Undoes an attach, with the container's interfaces on further
    /// networks. Works when the container's namespace is already gone
    /// (its veths went with it).
    pub async fn detach(&mut self, name: &str) -> Result<Endpoint, AgentError> {
        self.refuse_foreign_endpoint(name, "detach")?;
        for further in self.further_of(name) {
            self.remove_endpoint(&further).await?;
        }
        self.remove_endpoint(name).await
    }

    /// The endpoints of `name`'s container on further networks.
    fn further_of(&self, name: &str) -> Vec<String> {
        self.state
            .endpoints
            .values()
            .filter(|e| e.primary.as_deref() == Some(name))
            .map(|e| e.name.clone())
            .collect()
    }

    /// The endpoint of `name`'s container on further network `network`.
    fn further_on(&self, name: &str, network: &str) -> Option<String> {
        self.state
            .endpoints
            .values()
            .find(|e| e.primary.as_deref() == Some(name) && e.network == network)
            .map(|e| e.name.clone())
    }

    /// `weir connect`: endpoint `name`'s container gets an interface on
    /// `network` too (the next free `ethN`), its endpoint `NAME.NETWORK`,
    /// with the network's rules and no default route (the first network
    /// keeps it).
    pub async fn connect(
        &mut self,
        name: &str,
        network: &str,
        ip: Option<Ipv4Addr>,
        ip6: Option<std::net::Ipv6Addr>,
    ) -> Result<Endpoint, AgentError> {
        self.refuse_foreign_endpoint(name, "connect")?;
        let ep = self.endpoint(name)?.clone();
        if let Some(first) = &ep.primary {
            return Err(AgentError::NotFirstInterface {
                endpoint: name.to_owned(),
                first: first.clone(),
            });
        }
        if ep.network == network || self.further_on(name, network).is_some() {
            return Err(AgentError::AlreadyConnected {
                endpoint: name.to_owned(),
                network: network.to_owned(),
            });
        }
        let ifname = netns::with_netlink(&ep.netns, async |nl| {
            for n in 1..64 {
                let candidate = format!("eth{n}");
                if nl.link_index(&candidate).await?.is_none() {
                    return Ok(Some(candidate));
                }
            }
            Ok(None)
        })?
        .ok_or_else(|| AgentError::IfnameExists {
            path: ep.netns.clone(),
            ifname: "eth1 to eth63".to_owned(),
        })?;
        let req = AttachRequest {
            network: network.to_owned(),
            netns: ep.netns.clone(),
            name: Some(format!("{name}.{network}")),
            ip,
            ip6,
            ports: Vec::new(),
            ifname: Some(ifname),
            mac: None,
            networks: Vec::new(),
        };
        self.attach_as(&req, Some(name)).await
    }

    /// `weir disconnect`: takes endpoint `name`'s container off `network`,
    /// one it was connected to (its first network stays: detach it).
    pub async fn disconnect(&mut self, name: &str, network: &str) -> Result<Endpoint, AgentError> {
        self.refuse_foreign_endpoint(name, "disconnect")?;
        let ep = self.endpoint(name)?;
        if ep.network == network && ep.primary.is_none() {
            return Err(AgentError::FirstNetwork {
                endpoint: name.to_owned(),
                network: network.to_owned(),
            });
        }
        let Some(further) = self.further_on(name, network) else {
            return Err(AgentError::NotConnected {
                endpoint: name.to_owned(),
                network: network.to_owned(),
            });
        };
        self.remove_endpoint(&further).await
    }

    /// Undoes an endpoint weir plumbed, whoever asked for it.
    pub(super) async fn remove_endpoint(&mut self, name: &str) -> Result<Endpoint, AgentError> {
        let ep = self.state.endpoints.get(name).cloned().ok_or_else(|| {
            AgentError::EndpointNotFound {
                name: name.to_owned(),
            }
        })?;
        self.withdraw(&ep.ports)?;
        self.datapath.detach_from_container(&ep.host_if)?;
        self.datapath.remove_endpoint(ep.ip, ep.ip6)?;
        self.nl.delete_link(&ep.host_if).await?;
        self.forget_endpoint(name);
        self.sync_open_ports()?;
        self.save()?;
        info!(endpoint = %name, "detached");
        Ok(ep)
    }
}

/// A Linux interface name: 1 to 15 bytes, no `/`, no white space.
fn validate_ifname(name: &str) -> Result<(), AgentError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(AgentError::InvalidIfname {
            name: name.to_owned(),
        })
    }
}

fn check_netns(path: &Path) -> Result<(), AgentError> {
    if !path.exists() {
        return Err(AgentError::NetnsMissing {
            path: path.to_owned(),
        });
    }
    if !netns::is_netns(path) {
        return Err(AgentError::NotANetns {
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs() {
        assert!(
            is_host_veth_name("weirv7")
                && !is_host_veth_name("weirv")
                && !is_host_veth_name("weir7")
        );
        assert_eq!(
            mac_string(mac_of(Some(Ipv4Addr::new(10, 203, 0, 2)), None)),
            "02:42:0a:cb:00:02"
        );
    }
}
