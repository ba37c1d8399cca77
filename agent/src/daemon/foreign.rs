//! Networks and endpoints that a container engine made (Docker's bridge
//! networks and its containers' veths): weir takes them into its registry
//! and datapath, with the same map entries, attachments and publications as
//! its own, but never creates, renames or deletes the engine's bridges,
//! veths or addresses, and never holds the engine's host ports (the engine
//! does).
//!
//! An engine's follower (`crate::docker`) turns the engine's API into the
//! plain data here and calls these; the logic lives here only.

use std::{collections::BTreeSet, path::Path};

use tracing::{info, warn};

use super::{
    Agent,
    endpoint::{Entry, Plumbing},
};
use crate::{
    api::types::{ForeignEndpoint, ForeignNetwork},
    error::{AgentError, Chain},
    netns,
    network::mac_string,
    owner::Owner,
    publish::{PortMapping, PortSpec},
};

/// Which engine's objects a full sync covers.
fn same_engine(a: &Owner, b: &Owner) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b) && !a.is_weir()
}

impl Agent {
    /// Makes weir's picture of `engine`'s objects equal to `networks` and
    /// `endpoints` (the engine's whole picture, as at start or after a
    /// lost event stream): adopts what is new or changed, releases what
    /// the engine no longer has. One object that cannot be taken over is
    /// logged and skipped; the rest still syncs.
    pub async fn sync_foreign(
        &mut self,
        engine: &Owner,
        networks: &[ForeignNetwork],
        endpoints: &[ForeignEndpoint],
    ) -> Result<(), AgentError> {
        let keep_nets: BTreeSet<&str> = networks.iter().map(|n| n.spec.name.as_str()).collect();
        let stale_nets: Vec<String> = self
            .state
            .registry
            .iter()
            .filter(|n| same_engine(&n.owner, engine) && !keep_nets.contains(n.name.as_str()))
            .map(|n| n.name.clone())
            .collect();
        for name in stale_nets {
            self.release_foreign_network(&name).await?;
        }
        for network in networks {
            if let Err(e) = self.adopt_network(network).await {
                warn!(network = %network.spec.name, "cannot take over the network: {}", Chain(&e));
            }
        }
        self.converge(|o| same_engine(o, engine), endpoints, true)
            .await
    }

    /// Makes the endpoints of one engine object (`owner`: a container)
    /// equal to `endpoints`.
    pub async fn sync_foreign_owner(
        &mut self,
        owner: &Owner,
        endpoints: &[ForeignEndpoint],
    ) -> Result<(), AgentError> {
        self.converge(|o| o == owner, endpoints, false).await
    }

    /// Makes the endpoints whose owner `ours` selects equal to `endpoints`:
    /// every one that goes or changes is released before any is entered,
    /// since a container whose default gateway moved to another network
    /// swaps its name and its ports between its interfaces. `tolerant`:
    /// an endpoint that cannot be taken over is logged and skipped, else
    /// it is the answer.
    async fn converge(
        &mut self,
        ours: impl Fn(&Owner) -> bool,
        endpoints: &[ForeignEndpoint],
        tolerant: bool,
    ) -> Result<(), AgentError> {
        let skip = |fe: &ForeignEndpoint, e: AgentError| {
            if tolerant {
                warn!(endpoint = %fe.name, "cannot take over the endpoint: {}", Chain(&e));
                Ok(())
            } else {
                Err(e)
            }
        };
        let mut wanted = Vec::new();
        for fe in endpoints {
            match self.engine_veth(fe).await {
                Ok(host_if) => wanted.push((fe, host_if)),
                Err(e) => skip(fe, e)?,
            }
        }
        let keep: Vec<&str> = wanted
            .iter()
            .filter(|(fe, host_if)| self.adopted_as(fe, host_if))
            .map(|(fe, _)| fe.name.as_str())
            .collect();
        let gone: Vec<String> = self
            .state
            .endpoints
            .values()
            .filter(|e| ours(&e.owner) && !keep.contains(&e.name.as_str()))
            .map(|e| e.name.clone())
            .collect();
        for name in gone {
            self.release(&name).await?;
        }
        for (fe, host_if) in wanted {
            if keep.contains(&fe.name.as_str()) {
                continue;
            }
            if let Err(e) = self.adopt_endpoint(fe, host_if).await {
                skip(fe, e)?;
            }
        }
        Ok(())
    }

    /// The networks of `engine` that weir has: (owner, weir name,
    /// internal).
    #[must_use]
    pub fn foreign_networks(&self, engine: &Owner) -> Vec<(Owner, String, bool)> {
        self.state
            .registry
            .iter()
            .filter(|n| same_engine(&n.owner, engine))
            .map(|n| (n.owner.clone(), n.name.clone(), n.internal))
            .collect()
    }

    /// Takes an engine's network into the registry and `NETWORKS4` (again,
    /// if it changed: its endpoints are released first and come back with
    /// the next sync of their containers).
    pub async fn adopt_network(&mut self, net: &ForeignNetwork) -> Result<(), AgentError> {
        if let Ok(have) = self.state.registry.get(&net.spec.name) {
            // The engine's network of that name under a new id (dockerd
            // makes its default `bridge` anew at every start) is taken
            // again; weir's own network of that name is left alone.
            if !same_engine(&have.owner, &net.owner) {
                return Err(AgentError::NameTaken {
                    name: net.spec.name.clone(),
                    owner: have.owner.engine(),
                });
            }
            let same = have.owner == net.owner
                && have.bridge == net.bridge
                && have.ipam.as_ref().map(crate::network::Ipam::subnet) == net.spec.subnet
                && net.spec.gateway.is_none_or(|g| Some(g) == have.gateway())
                && have.internal == net.spec.internal
                && have.icc == net.spec.icc
                && have.mode == net.spec.mode
                && have.masquerade
                    == (net.spec.masquerade
                        && !net.spec.internal
                        && net.spec.mode == crate::network::Mode::Nat);
            if same {
                return Ok(());
            }
            self.release_foreign_network(&net.spec.name).await?;
        }
        let mac =
            self.nl
                .link_mac(&net.bridge)
                .await?
                .ok_or_else(|| AgentError::BridgeMissing {
                    bridge: net.bridge.clone(),
                    network: net.spec.name.clone(),
                })?;
        let network =
            self.state
                .registry
                .plan_foreign(&net.spec, &net.bridge, mac, net.owner.clone())?;
        info!(network = %network.name, bridge = %network.bridge, subnet = ?net.spec.subnet,
            engine = network.owner.engine(), "took over a network");
        // The guard before anything else: a container the engine starts on
        // it from now on goes nowhere until its endpoint is entered.
        self.datapath.attach_bridge(&network.bridge)?;
        self.state.registry.insert(network);
        self.sync_networks()?;
        // Its gateway is a node address (a wildcard publication answers
        // there too).
        self.refresh_host_addrs().await?;
        self.save()
    }

    /// Forgets an engine's network (its endpoints first); its bridge stays.
    pub async fn release_foreign_network(&mut self, name: &str) -> Result<(), AgentError> {
        for ep in self.state.endpoints_of(name) {
            self.release(&ep).await?;
        }
        let network = self.state.registry.remove(name)?;
        self.datapath.detach_bridge(&network.bridge)?;
        self.sync_networks()?;
        self.save()?;
        info!(network = %name, "released a network its engine no longer has");
        Ok(())
    }

    /// The node-side veth of an engine's container interface, found
    /// through the container's namespace by its MAC.
    async fn engine_veth(&self, fe: &ForeignEndpoint) -> Result<String, AgentError> {
        let host_index = peer_of(&fe.netns, fe.mac)?;
        self.nl
            .link_name(host_index)
            .await?
            .ok_or_else(|| AgentError::NoSuchInterface {
                netns: fe.netns.clone(),
                mac: mac_string(fe.mac),
            })
    }

    /// Whether weir has `fe` as it is now (on veth `host_if`): the same
    /// network, addresses, MAC, veth and ports.
    fn adopted_as(&self, fe: &ForeignEndpoint, host_if: &str) -> bool {
        self.state.endpoints.get(&fe.name).is_some_and(|have| {
            let ports: Vec<PortMapping> = fe
                .ports
                .iter()
                .filter(|m| have.ip6.is_some() || !m.is_ipv6_only())
                .copied()
                .collect();
            have.owner == fe.owner
                && have.network == fe.network
                && have.ip == fe.ip
                && have.ip6 == fe.ip6
                && have.mac == mac_string(fe.mac)
                && have.host_if == host_if
                && have.ports == ports
        })
    }

    /// Takes an engine's container interface over: enters it
    /// ([`Plumbing::Adopt`]) on its veth `host_if` with the engine's
    /// addresses and ports. A name another owner has is refused.
    async fn adopt_endpoint(
        &mut self,
        fe: &ForeignEndpoint,
        host_if: String,
    ) -> Result<(), AgentError> {
        if let Some(have) = self.state.endpoints.get(&fe.name) {
            return Err(AgentError::NameTaken {
                name: fe.name.clone(),
                owner: have.owner.engine(),
            });
        }
        let ports = fe
            .ports
            .iter()
            .map(|m| PortSpec::exact(*m))
            .collect::<Result<Vec<_>, _>>()?;
        self.enter(Entry {
            name: fe.name.clone(),
            owner: fe.owner.clone(),
            network: fe.network.clone(),
            netns: fe.netns.clone(),
            plumbing: Plumbing::Adopt { host_if },
            ip: fe.ip,
            ip6: fe.ip6,
            mac: Some(fe.mac),
            primary: None,
            ports,
        })
        .await?;
        Ok(())
    }

    /// Refuses to change what an engine owns through weir's own verbs.
    pub(super) fn refuse_foreign_endpoint(&self, name: &str, verb: &str) -> Result<(), AgentError> {
        match self.state.endpoints.get(name).map(|e| &e.owner) {
            Some(owner @ Owner::Docker { .. }) => Err(AgentError::EngineOwned {
                what: format!("endpoint `{name}`"),
                engine: owner.engine(),
                hint: match verb {
                    "publish" | "unpublish" => {
                        "Docker owns its ports: publish with `docker run -p` (see `docker port`)"
                    }
                    _ => "remove it with `docker rm` or `docker network disconnect`",
                },
            }),
            Some(owner @ Owner::Cni { .. }) => Err(AgentError::EngineOwned {
                what: format!("endpoint `{name}`"),
                engine: owner.engine(),
                hint: match verb {
                    "publish" | "unpublish" => {
                        "its runtime owns its ports: publish with `podman run -p` or a pod's hostPort"
                    }
                    _ => "remove it through its runtime (`podman rm`, deleting the pod)",
                },
            }),
            Some(owner @ Owner::Netavark { .. }) => Err(AgentError::EngineOwned {
                what: format!("endpoint `{name}`"),
                engine: owner.engine(),
                hint: match verb {
                    "publish" | "unpublish" => {
                        "Podman owns its ports: publish with `podman run -p`"
                    }
                    _ => "remove it through Podman (`podman rm`, `podman network disconnect`)",
                },
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn refuse_foreign_network(&self, name: &str) -> Result<(), AgentError> {
        match self.state.registry.get(name).map(|n| &n.owner) {
            Ok(owner @ Owner::Docker { .. }) => Err(AgentError::EngineOwned {
                what: format!("network `{name}`"),
                engine: owner.engine(),
                hint: "use `docker network create/rm/connect` and `docker run --network`",
            }),
            _ => Ok(()),
        }
    }
}

/// The node-side ifindex of the veth whose peer, in `netns`, has `mac`.
fn peer_of(netns: &Path, mac: [u8; 6]) -> Result<u32, AgentError> {
    if !netns.exists() {
        return Err(AgentError::NetnsMissing {
            path: netns.to_owned(),
        });
    }
    netns::with_netlink(netns, async |nl| nl.peer_index_of_mac(mac).await)?.ok_or_else(|| {
        AgentError::NoSuchInterface {
            netns: netns.to_owned(),
            mac: mac_string(mac),
        }
    })
}
