//! weir's own verbs on endpoints (`weir attach`, `run`, `connect`,
//! `disconnect`, `detach`): their requests mapped onto the endpoint core
//! (`endpoint.rs`). A container on several networks is one endpoint per
//! interface, the further ones `NAME.NETWORK` with `primary` naming the
//! first, which keeps the default routes and is detached with them.

use std::net::{Ipv4Addr, Ipv6Addr};

use tracing::warn;

use super::{
    Agent,
    endpoint::{Entry, Plumbing, mac_arg},
};
use crate::{
    api::types::{AttachRequest, DEFAULT_IFNAME, Endpoint},
    error::{AgentError, Chain},
    netns,
    owner::Owner,
    paths::run_netns_path,
    publish::PortSpec,
};

impl Agent {
    /// `weir attach`: the endpoint, its ports and its further networks,
    /// all or nothing.
    pub async fn attach(&mut self, req: &AttachRequest) -> Result<Endpoint, AgentError> {
        let ports = req
            .ports
            .iter()
            .map(|s| s.parse::<PortSpec>())
            .collect::<Result<Vec<_>, _>>()?;
        let ep = self
            .enter(Entry {
                name: req
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("ep{}", self.state.next_endpoint)),
                owner: Owner::Weir,
                network: req.network.clone(),
                netns: req.netns.clone(),
                plumbing: Plumbing::Make {
                    ifname: req
                        .ifname
                        .clone()
                        .unwrap_or_else(|| DEFAULT_IFNAME.to_owned()),
                },
                ip: req.ip,
                ip6: req.ip6,
                mac: mac_arg(req.mac.as_deref())?,
                primary: None,
                ports,
            })
            .await?;
        for network in &req.networks {
            if let Err(e) = self.connect(&ep.name, network, None, None).await {
                let _ = self.detach(&ep.name).await;
                return Err(e);
            }
        }
        Ok(ep)
    }

    /// `weir detach`: the endpoint with the container's interfaces on
    /// further networks.
    pub async fn detach(&mut self, name: &str) -> Result<Endpoint, AgentError> {
        self.refuse_foreign_endpoint(name, "detach")?;
        self.endpoint(name)?;
        for further in self.further_of(name) {
            self.release(&further).await?;
        }
        let ep = self.released(name).await?;
        self.remove_run_netns(&ep);
        Ok(ep)
    }

    /// Whether `ep` is in a namespace `weir run` made (bound beside the
    /// agent's socket: `paths::run_netns_path`).
    pub(super) fn in_run_netns(&self, ep: &Endpoint) -> bool {
        let runs = run_netns_path(&self.config.paths.socket, &ep.name);
        ep.netns.parent().is_some() && ep.netns.parent() == runs.parent()
    }

    /// Unbinds a `weir run` namespace once its endpoint is gone (its
    /// processes, if any, keep it alive until they end).
    pub(super) fn remove_run_netns(&self, ep: &Endpoint) {
        if self.in_run_netns(ep)
            && let Err(e) = netns::remove(&ep.netns)
        {
            warn!(path = %ep.netns.display(), "the namespace of `weir run` stays: {}", Chain(&e));
        }
    }

    /// [`Agent::release`] of an endpoint that must exist.
    async fn released(&mut self, name: &str) -> Result<Endpoint, AgentError> {
        self.release(name)
            .await?
            .ok_or_else(|| AgentError::EndpointNotFound {
                name: name.to_owned(),
            })
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
        ip6: Option<Ipv6Addr>,
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
        self.enter(Entry {
            name: format!("{name}.{network}"),
            owner: Owner::Weir,
            network: network.to_owned(),
            netns: ep.netns.clone(),
            plumbing: Plumbing::Make { ifname },
            ip,
            ip6,
            mac: None,
            primary: Some(name.to_owned()),
            ports: Vec::new(),
        })
        .await
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
        self.released(&further).await
    }
}
