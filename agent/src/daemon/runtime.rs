//! A runtime's interfaces: what CNI ADD/DEL (`cni.rs`) and netavark's
//! setup/teardown (`netavark.rs`) share. A runtime asks for one
//! interface of a container at a time, keyed by the container's id and
//! the interface's name; weir makes it (`Plumbing::Make`), with the
//! addresses and MAC the runtime asks for, and publishes the container's
//! ports through its first interface, not holding them (the runtime does:
//! Podman's conmon binds each published port, with CNI and netavark
//! alike). The two doors differ by one value, [`Runtime`].

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use tracing::{info, warn};

use super::{
    Agent,
    endpoint::{Entry, Plumbing, mac_arg},
    publish::Hold,
};
use crate::{
    api::types::{CniAttachment, DEFAULT_IFNAME, Endpoint},
    error::{AgentError, Chain},
    network::registry::validate_name,
    owner::Runtime,
    publish::{PortMapping, PortSpec},
};

/// One interface a runtime asks for, in weir's terms.
#[derive(Clone, Debug)]
pub(super) struct Attach {
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub mac: Option<String>,
    /// A name for `weir ps` (the pod's, the container's).
    pub name: Option<String>,
    /// Every port the container publishes (a runtime passes them to each
    /// of its interfaces).
    pub ports: Vec<PortMapping>,
}

/// The prefix of an endpoint named after the container's id.
fn prefix(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Cni => "cni",
        Runtime::Netavark => "netavark",
    }
}

impl Agent {
    /// `container_id`'s interface `ifname` as `runtime` asked for it.
    pub(super) fn runtime_endpoint(
        &self,
        runtime: Runtime,
        container_id: &str,
        ifname: &str,
    ) -> Option<&Endpoint> {
        self.state
            .endpoints
            .values()
            .find(|e| e.owner.attachment() == Some((runtime, container_id, ifname)))
    }

    /// The endpoint's name: the runtime's name for it when it is a valid
    /// one nobody has, else `<runtime>-<12 of the id>` (with `-<ifname>`
    /// past the first interface).
    fn runtime_name(&self, runtime: Runtime, req: &Attach) -> String {
        let suffix = if req.ifname == DEFAULT_IFNAME {
            String::new()
        } else {
            format!("-{}", req.ifname)
        };
        if let Some(n) = &req.name {
            let n = format!("{n}{suffix}");
            if validate_name(&n).is_ok() && !self.state.endpoints.contains_key(&n) {
                return n;
            }
        }
        let id: String = req.container_id.chars().take(12).collect();
        format!("{}-{id}{suffix}", prefix(runtime))
    }

    /// The interface, its addresses and its ports, all or nothing. Asked
    /// again for the same container, interface, namespace and network, it
    /// answers what it made.
    pub(super) async fn runtime_add(
        &mut self,
        runtime: Runtime,
        req: &Attach,
    ) -> Result<CniAttachment, AgentError> {
        if let Some(ep) = self.runtime_endpoint(runtime, &req.container_id, &req.ifname) {
            if ep.netns == req.netns && ep.network == req.network {
                let ep = ep.clone();
                return self.attachment(&ep, &req.ifname).await;
            }
            return Err(AgentError::CniAttached {
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
                endpoint: ep.name.clone(),
            });
        }
        // A runtime passes a container's ports to each of its networks
        // (Podman does, with CNI and netavark): they lead to the container
        // once, through the attachment that published them first.
        let held = self.container_ports(runtime, &req.container_id);
        let ports = req
            .ports
            .iter()
            .filter(|m| !held.contains(m))
            .map(|m| PortSpec::exact(*m))
            .collect::<Result<Vec<_>, _>>()?;
        let name = self.runtime_name(runtime, req);
        self.enter(Entry {
            name: name.clone(),
            owner: runtime.owner(&req.container_id, &req.ifname),
            network: req.network.clone(),
            netns: req.netns.clone(),
            plumbing: Plumbing::Make {
                ifname: req.ifname.clone(),
            },
            ip: req.ip,
            ip6: req.ip6,
            mac: mac_arg(req.mac.as_deref())?,
            primary: None,
            ports,
        })
        .await?;
        let ep = self.endpoint(&name)?.clone();
        info!(endpoint = %name, container = %req.container_id, ifname = %req.ifname,
            runtime = prefix(runtime), "attached");
        self.attachment(&ep, &req.ifname).await
    }

    /// What a runtime is told of an interface it asked for.
    pub(super) async fn attachment(
        &self,
        ep: &Endpoint,
        ifname: &str,
    ) -> Result<CniAttachment, AgentError> {
        let network = self.state.registry.get(&ep.network)?;
        let (ip, ip6) = network.on_link(ep.ip, ep.ip6);
        let dns = self.resolver(network);
        let host_mac = self
            .nl
            .link_mac(&ep.host_if)
            .await?
            .map(crate::network::mac_string)
            .unwrap_or_default();
        Ok(CniAttachment {
            endpoint: ep.name.clone(),
            host_if: ep.host_if.clone(),
            host_mac,
            ifname: ifname.to_owned(),
            mac: ep.mac.clone(),
            ip,
            ip6,
            ports: ep.ports.clone(),
            dns,
        })
    }

    /// The ports a container's interfaces (as `runtime` asked for them)
    /// publish.
    pub(super) fn container_ports(&self, runtime: Runtime, container_id: &str) -> Vec<PortMapping> {
        self.state
            .endpoints
            .values()
            .filter(|e| {
                e.owner
                    .attachment()
                    .is_some_and(|(r, c, _)| r == runtime && c == container_id)
            })
            .flat_map(|e| e.ports.iter().copied())
            .collect()
    }

    /// Removes the interface if weir has it (its publications and their
    /// flows with it); nothing to remove is done, too. Its ports move to
    /// another interface of the container, if it has one (the runtime
    /// asked each for them).
    pub(super) async fn runtime_del(
        &mut self,
        runtime: Runtime,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<String>, AgentError> {
        let Some(name) = self
            .runtime_endpoint(runtime, container_id, ifname)
            .map(|e| e.name.clone())
        else {
            return Ok(None);
        };
        let released = self.release(&name).await?;
        info!(endpoint = %name, container = %container_id, ifname = %ifname,
            runtime = prefix(runtime), "detached");
        let ports = released.map(|e| e.ports).unwrap_or_default();
        let heir = self
            .state
            .endpoints
            .values()
            .find(|e| {
                e.owner
                    .attachment()
                    .is_some_and(|(r, c, _)| r == runtime && c == container_id)
            })
            .map(|e| (e.name.clone(), e.owner.clone()));
        if let (Some((heir, owner)), false) = (heir, ports.is_empty()) {
            let specs = ports
                .into_iter()
                .map(PortSpec::exact)
                .collect::<Result<Vec<_>, _>>()?;
            // The interface is gone whatever happens here: a port that
            // cannot move is said, not a failed removal (the runtime would
            // retry one that has nothing left to do).
            match self.publish_as(&heir, &specs, Hold::of(&owner)).await {
                Ok(moved) => info!(endpoint = %heir, ports = moved.len(),
                    "the container's ports moved to its other interface"),
                Err(e) => {
                    warn!(
                        endpoint = %heir,
                        "the container's ports could not move to its other interface: {}",
                        Chain(&e)
                    );
                }
            }
        }
        Ok(Some(name))
    }
}
