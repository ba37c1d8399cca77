//! The endpoint core: one life cycle for every way in. weir's own verbs
//! (`attach.rs`), CNI (`cni.rs`), an engine's adoption (`foreign.rs`) and
//! the restore at start all enter an endpoint with [`Agent::enter`],
//! release it with [`Agent::release`] and publish through
//! [`Agent::publish_as`] (`publish.rs`). The rules live here once: the
//! addresses from one allocator, the map entry before the program before
//! the bridge, all or nothing, the ports planned against every other
//! endpoint's.
//!
//! A door that owns its veth (Docker) differs by one value,
//! [`Plumbing::Adopt`]: weir then finds the engine's veth instead of
//! making one, records the engine's addresses, holds none of its ports
//! and never deletes the veth.

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use tracing::info;

use super::{Agent, publish::Hold};
use crate::{
    api::types::Endpoint,
    error::AgentError,
    netlink::DefaultRoute,
    netns,
    network::{
        Ipam6Error, IpamError, NetworkError, mac_of, mac_string, parse_mac, registry::validate_name,
    },
    owner::Owner,
    publish::PortSpec,
};

/// How an endpoint's veth comes to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plumbing {
    /// weir makes the veth pair, the container's side named `ifname` in
    /// its namespace with the endpoint's addresses and (on its first
    /// network) the default routes, the node's side a port of the
    /// network's bridge.
    Make { ifname: String },
    /// The engine made the pair and put the node side, `host_if`, on its
    /// bridge. The addresses are the engine's: one weir thinks taken is
    /// the engine's to give, and an IPv6 one on a network weir knows
    /// without IPv6 is left out.
    Adopt { host_if: String },
}

/// An endpoint to enter, whoever asks.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub owner: Owner,
    pub network: String,
    /// The container's network namespace.
    pub netns: PathBuf,
    pub plumbing: Plumbing,
    /// The addresses asked for; `None`: the next free (with
    /// [`Plumbing::Adopt`], none).
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    /// The container side's MAC; `None`: `02:42` and the address.
    pub mac: Option<[u8; 6]>,
    /// For a container's interface on a further network: the endpoint of
    /// its first one.
    pub primary: Option<String>,
    /// The ports to publish, all or none with the endpoint. A runtime's
    /// (any owner but weir) binding to IPv6 is left out of an endpoint
    /// without IPv6: runtimes ask for both families whatever the network.
    pub ports: Vec<PortSpec>,
}

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

/// The id of an endpoint whose veth an engine made (ids name weir's veths).
const ADOPTED: u32 = u32::MAX;

/// `text` as a MAC, for a request that may name one.
pub(super) fn mac_arg(text: Option<&str>) -> Result<Option<[u8; 6]>, AgentError> {
    text.map(|t| parse_mac(t).ok_or_else(|| AgentError::InvalidMac { mac: t.to_owned() }))
        .transpose()
}

/// Why an address could not be had, before it is named for the caller.
enum Refusal {
    /// The network has no address of that family.
    NoFamily(IpAddr),
    Taken(IpAddr),
    Other(AgentError),
}

impl From<IpamError> for Refusal {
    fn from(e: IpamError) -> Self {
        match e {
            IpamError::Taken { ip } => Refusal::Taken(ip.into()),
            other => Refusal::Other(other.into()),
        }
    }
}

impl From<Ipam6Error> for Refusal {
    fn from(e: Ipam6Error) -> Self {
        match e {
            Ipam6Error::Taken { ip } => Refusal::Taken(ip.into()),
            other => Refusal::Other(NetworkError::from(other).into()),
        }
    }
}

/// How an endpoint's addresses are found when none is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// The lowest free (Docker's default, weir's own endpoints).
    Lowest,
    /// The next free after the last given, wrapping around (host-local's
    /// order, for CNI runtimes and netavark, whose Podman allocator
    /// rotates too: a freed address, and the MAC made from it, is not
    /// handed out again at once while peers may still hold it in their
    /// ARP and conntrack tables).
    Rotate,
    /// Exactly what the engine gave (see [`Plumbing::Adopt`]).
    Engine,
}

/// One family's address from its pool (`None`: the network has none of
/// that family): `wanted`, or the next free; `engine`: exactly what the
/// engine gave, taken or not, and nothing where it gave nothing.
fn claim<A: Copy + Into<IpAddr>>(
    pool: Option<impl FnOnce(Option<A>) -> Result<A, Refusal>>,
    wanted: Option<A>,
    engine: bool,
) -> Result<Option<A>, Refusal> {
    match (pool, wanted) {
        (None, Some(a)) if !engine => Err(Refusal::NoFamily(a.into())),
        (None, _) => Ok(None),
        (Some(_), None) if engine => Ok(None),
        (Some(take), wanted) => match take(wanted) {
            Err(Refusal::Taken(_)) if engine => Ok(wanted),
            other => other.map(Some),
        },
    }
}

impl Agent {
    /// Enters an endpoint: its addresses, its veth made or adopted, its
    /// map entries, program and bridge port, then its ports; all or
    /// nothing.
    pub async fn enter(&mut self, entry: Entry) -> Result<Endpoint, AgentError> {
        let adopt = matches!(entry.plumbing, Plumbing::Adopt { .. });
        if !adopt {
            self.refuse_foreign_network(&entry.network)?;
        }
        let network = self.state.registry.get(&entry.network)?.clone();
        let name = entry.name.clone();
        validate_name(&name).map_err(|_| AgentError::InvalidEndpointName { name: name.clone() })?;
        if self.state.endpoints.contains_key(&name) {
            return Err(AgentError::EndpointExists { name });
        }
        let (id, host_if) = match &entry.plumbing {
            Plumbing::Make { ifname } => {
                validate_ifname(ifname)?;
                check_netns(&entry.netns)?;
                if netns::with_netlink(&entry.netns, async |nl| nl.link_index(ifname).await)?
                    .is_some()
                {
                    return Err(AgentError::IfnameExists {
                        path: entry.netns.clone(),
                        ifname: ifname.clone(),
                    });
                }
                let id = self.state.next_endpoint;
                (id, host_veth(id))
            }
            Plumbing::Adopt { host_if } => (ADOPTED, host_if.clone()),
        };
        let order = match (&entry.owner, adopt) {
            (_, true) => Order::Engine,
            (owner, false) if owner.attachment().is_some() => Order::Rotate,
            _ => Order::Lowest,
        };
        let (ip, ip6) = self.allocate(&network.name, (entry.ip, entry.ip6), order)?;
        let endpoint = Endpoint {
            id,
            name: name.clone(),
            network: network.name.clone(),
            netns: entry.netns.clone(),
            ip,
            ip6,
            mac: mac_string(entry.mac.unwrap_or_else(|| mac_of(ip, ip6))),
            host_if,
            ports: Vec::new(),
            owner: entry.owner.clone(),
            primary: entry.primary.clone(),
        };
        if !adopt {
            self.state.next_endpoint = id + 1;
        }
        if let Err(e) = self.plumb(&endpoint, &entry.plumbing).await {
            // Leave nothing half made: the pair (both ends go with the
            // node's side, or the container's is still here), the program,
            // the entries, the addresses.
            let _ = self.unwire(&endpoint).await;
            if !adopt {
                let _ = self.nl.delete_link(&peer_veth(id)).await;
            }
            if let Ok(n) = self.state.registry.get_mut(&network.name) {
                n.release(ip, ip6);
            }
            return Err(e);
        }
        self.state.endpoints.insert(name.clone(), endpoint.clone());
        self.save()?;
        info!(endpoint = %name, network = %network.name, ip = ?ip, ip6 = ?ip6,
            host_if = %endpoint.host_if, owner = endpoint.owner.engine(), "entered");
        let ports: Vec<PortSpec> = entry
            .ports
            .into_iter()
            .filter(|s| entry.owner.is_weir() || ip6.is_some() || !s.is_ipv6_only())
            .collect();
        if ports.is_empty() {
            return Ok(endpoint);
        }
        match self.publish_as(&name, &ports, Hold::of(&entry.owner)).await {
            Ok(ports) => Ok(Endpoint { ports, ..endpoint }),
            Err(e) => {
                let _ = self.release(&name).await;
                Err(e)
            }
        }
    }

    /// Makes (or finds) the veth and wires it.
    async fn plumb(&mut self, ep: &Endpoint, plumbing: &Plumbing) -> Result<(), AgentError> {
        let Plumbing::Make { ifname } = plumbing else {
            return self.wire(ep, None).await;
        };
        let network = self.state.registry.get(&ep.network)?.clone();
        let bridge = self.ensure_bridge(&network).await?;
        let peer = peer_veth(ep.id);
        self.nl.create_veth(&ep.host_if, &peer).await?;
        let ns = File::open(&ep.netns)
            .map_err(AgentError::io(format!("opening {}", ep.netns.display())))?;
        self.nl.move_to_netns(&peer, ns.as_raw_fd()).await?;
        let (v4, v6) = network.on_link(ep.ip, ep.ip6);
        // The default routes are the first interface's.
        let default_route = match (&ep.primary, &ep.owner) {
            (Some(_), _) => DefaultRoute::No,
            (None, owner) if owner.attachment().is_some() => DefaultRoute::Behind,
            (None, _) => DefaultRoute::Only,
        };
        let mac = ep.mac_octets();
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
        self.wire(ep, Some(bridge)).await
    }

    /// The one order every endpoint is wired in: its map entries first,
    /// then the program, then (a veth weir made) the bridge port. The
    /// program shuts a veth it has no entry for, and no frame crosses
    /// before both are in place. `bridge`: the network's bridge for a veth
    /// weir made; `None` for an engine's, already its bridge's port.
    async fn wire(&mut self, ep: &Endpoint, bridge: Option<u32>) -> Result<(), AgentError> {
        let network_id = self.state.registry.get(&ep.network)?.id;
        let mac = ep.mac_octets();
        let ifindex = self.nl.require_index(&ep.host_if).await?;
        self.datapath
            .insert_endpoint(ifindex, ep.ip, mac, network_id)?;
        self.datapath.set_endpoint6(ifindex, ep.ip6, mac)?;
        self.datapath.attach_from_container(&ep.host_if)?;
        if let Some(bridge) = bridge {
            self.nl.attach_to_bridge(&ep.host_if, bridge).await?;
        }
        Ok(())
    }

    /// Undoes [`Agent::wire`] and deletes the veth when weir made it.
    /// Works when the container's namespace is already gone (its veths
    /// went with it).
    async fn unwire(&mut self, ep: &Endpoint) -> Result<(), AgentError> {
        self.datapath.detach_from_container(&ep.host_if)?;
        self.datapath.remove_endpoint(ep.ip, ep.ip6)?;
        if ep.id != ADOPTED {
            self.nl.delete_link(&ep.host_if).await?;
        }
        Ok(())
    }

    /// Releases endpoint `name`, whoever entered it: its publications
    /// (and the flows that came in by them), its program and map entries,
    /// its veth if weir made it, its addresses. `None`: weir has no such
    /// endpoint.
    pub(super) async fn release(&mut self, name: &str) -> Result<Option<Endpoint>, AgentError> {
        let Some(ep) = self.state.endpoints.get(name).cloned() else {
            return Ok(None);
        };
        self.withdraw(&ep.ports)?;
        self.unwire(&ep).await?;
        self.forget_endpoint(name);
        self.sync_open_ports()?;
        self.save()?;
        info!(endpoint = %name, owner = ep.owner.engine(), "released");
        Ok(Some(ep))
    }

    /// On start, with `bridge` its network's bridge (made by the caller):
    /// an endpoint whose veth still exists is wired again and gets its
    /// publications back. One whose veth is gone is an error (its
    /// namespace went away while the agent was down), and so is one weir
    /// made whose namespace's name is gone: the kernel may still be
    /// dismantling that namespace, its veth there a moment longer.
    pub(super) async fn restore_endpoint(
        &mut self,
        name: &str,
        bridge: u32,
    ) -> Result<(), AgentError> {
        let ep = self.endpoint(name)?.clone();
        let made = ep.id != ADOPTED;
        if self.nl.link_index(&ep.host_if).await?.is_none() || (made && !netns::is_netns(&ep.netns))
        {
            return Err(AgentError::NetnsMissing { path: ep.netns });
        }
        self.wire(&ep, made.then_some(bridge)).await?;
        self.install(&ep, &ep.ports).await?;
        if Hold::of(&ep.owner) == Hold::Always {
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

    /// The one address allocator: an endpoint's addresses on network
    /// `name`, both or neither. Each is the one asked for or the next free
    /// of its family; none of a family the network lacks (asking for one
    /// is an error). `engine`: see [`Plumbing::Adopt`].
    fn allocate(
        &mut self,
        name: &str,
        (ip, ip6): (Option<Ipv4Addr>, Option<Ipv6Addr>),
        order: Order,
    ) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), AgentError> {
        let network = self.state.registry.get_mut(name)?;
        let engine = order == Order::Engine;
        let rotate = order == Order::Rotate;
        let got = claim(
            network
                .ipam
                .as_mut()
                .map(|p| move |w| p.allocate_in_order(w, rotate).map_err(Refusal::from)),
            ip,
            engine,
        )
        .and_then(|v4| {
            let v6 = claim(
                network
                    .ipam6
                    .as_mut()
                    .map(|p| move |w| p.allocate_in_order(w, rotate).map_err(Refusal::from)),
                ip6,
                engine,
            );
            if v6.is_err() {
                network.release(v4, None);
            }
            Ok((v4, v6?))
        });
        got.map_err(|refusal| self.refused(name, refusal))
    }

    /// A [`Refusal`] named: who holds a taken address.
    fn refused(&self, network: &str, refusal: Refusal) -> AgentError {
        let holder = |ip: IpAddr| {
            self.state
                .endpoints
                .values()
                .find(|e| e.ip.map(IpAddr::from) == Some(ip) || e.ip6.map(IpAddr::from) == Some(ip))
                .map(|e| e.name.clone())
        };
        let network = network.to_owned();
        match refusal {
            Refusal::NoFamily(IpAddr::V4(ip)) => AgentError::NoIpv4 { network, ip },
            Refusal::NoFamily(IpAddr::V6(ip6)) => AgentError::NoIpv6 { network, ip6 },
            Refusal::Taken(ip) => match (ip, holder(ip)) {
                (IpAddr::V4(ip), Some(endpoint)) => AgentError::AddressInUse { ip, endpoint },
                (IpAddr::V6(ip), Some(endpoint)) => AgentError::Address6InUse { ip, endpoint },
                (IpAddr::V4(ip), None) => IpamError::Taken { ip }.into(),
                (IpAddr::V6(ip), None) => NetworkError::from(Ipam6Error::Taken { ip }).into(),
            },
            Refusal::Other(e) => e,
        }
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
        assert_eq!(
            mac_arg(Some("02:42:0a:cb:00:02")).unwrap(),
            Some([2, 0x42, 10, 0xcb, 0, 2])
        );
        assert!(mac_arg(Some("nope")).is_err() && mac_arg(None).unwrap().is_none());
    }

    /// A pool whose next free address ends in `next`, where `.9` is taken.
    fn pool(next: u8) -> impl FnOnce(Option<Ipv4Addr>) -> Result<Ipv4Addr, Refusal> {
        move |w: Option<Ipv4Addr>| match w {
            Some(ip) if ip.octets()[3] == 9 => Err(Refusal::Taken(ip.into())),
            Some(ip) => Ok(ip),
            None => Ok(Ipv4Addr::new(10, 0, 0, next)),
        }
    }

    #[test]
    fn one_claim_for_weir_s_addresses_and_an_engine_s() {
        let none = None::<fn(Option<Ipv4Addr>) -> Result<Ipv4Addr, Refusal>>;
        let (a, taken) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 9));
        // weir's: the one asked for or the next free; a taken one or one
        // of a family the network lacks is refused.
        assert_eq!(
            claim(Some(pool(2)), None, false).ok(),
            Some(Some(Ipv4Addr::new(10, 0, 0, 2)))
        );
        assert_eq!(claim(Some(pool(2)), Some(a), false).ok(), Some(Some(a)));
        assert!(matches!(
            claim(Some(pool(2)), Some(taken), false),
            Err(Refusal::Taken(_))
        ));
        assert!(matches!(
            claim(none, Some(a), false),
            Err(Refusal::NoFamily(_))
        ));
        assert_eq!(claim(none, None, false).ok(), Some(None));
        // An engine's: exactly what it gave, taken or not, and nothing of
        // a family it gave none of or weir's network lacks.
        assert_eq!(
            claim(Some(pool(2)), Some(taken), true).ok(),
            Some(Some(taken))
        );
        assert_eq!(claim(Some(pool(2)), None, true).ok(), Some(None));
        assert_eq!(claim(none, Some(a), true).ok(), Some(None));
    }
}
