//! Endpoints a CNI runtime asks for through `weir-cni` (Podman, containerd,
//! kubelet): ADD, DEL, CHECK and GC mapped onto the endpoint core
//! (`endpoint.rs`), keyed by the runtime's container id and interface name
//! (`Owner::Cni`). The plugin binary only maps the CNI protocol onto the
//! API.

use tracing::{info, warn};

use super::{
    Agent,
    endpoint::{Entry, Plumbing, mac_arg},
    publish::Hold,
};
use crate::{
    api::types::{CniAdd, CniAttachment, CniGc, CniPort, CniRef, DEFAULT_IFNAME, Endpoint},
    error::AgentError,
    netns,
    network::registry::validate_name,
    owner::Owner,
    publish::{PortMapping, PortSpec},
};

fn owner(container_id: &str, ifname: &str) -> Owner {
    Owner::Cni {
        container_id: container_id.to_owned(),
        ifname: ifname.to_owned(),
    }
}

impl Agent {
    fn cni_endpoint(&self, container_id: &str, ifname: &str) -> Option<&Endpoint> {
        let want = owner(container_id, ifname);
        self.state.endpoints.values().find(|e| e.owner == want)
    }

    /// The endpoint's name: the runtime's name for it when it is a valid
    /// one nobody has, else `cni-<12 of the id>` (with `-<ifname>` past
    /// the first interface).
    fn cni_name(&self, req: &CniAdd) -> String {
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
        format!("cni-{id}{suffix}")
    }

    /// CNI ADD: the interface, its address and its ports, all or nothing.
    /// Asked again for the same container, interface and namespace, it
    /// answers what it made.
    pub async fn cni_add(&mut self, req: &CniAdd) -> Result<CniAttachment, AgentError> {
        if let Some(ep) = self.cni_endpoint(&req.container_id, &req.ifname) {
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
        // (Podman does): they lead to the container once, through the
        // attachment that published them first.
        let held = self.container_ports(&req.container_id);
        let mut ports = Vec::new();
        for p in &req.ports {
            let m = p.mapping()?;
            if !held.contains(&m) {
                ports.push(PortSpec::exact(m)?);
            }
        }
        let name = self.cni_name(req);
        self.enter(Entry {
            name: name.clone(),
            owner: owner(&req.container_id, &req.ifname),
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
        info!(endpoint = %name, container = %req.container_id, ifname = %req.ifname, "CNI ADD");
        self.attachment(&ep, &req.ifname).await
    }

    async fn attachment(&self, ep: &Endpoint, ifname: &str) -> Result<CniAttachment, AgentError> {
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

    /// The ports a container's attachments publish.
    fn container_ports(&self, container_id: &str) -> Vec<PortMapping> {
        self.state
            .endpoints
            .values()
            .filter(|e| matches!(&e.owner, Owner::Cni { container_id: c, .. } if c == container_id))
            .flat_map(|e| e.ports.iter().copied())
            .collect()
    }

    /// CNI DEL: removes the attachment if weir has it (its publications
    /// and their flows with it); nothing to remove is done, too. Its ports
    /// move to another attachment of the container, if it has one (the
    /// runtime asked each for them).
    pub async fn cni_del(&mut self, r: &CniRef) -> Result<Option<String>, AgentError> {
        let Some(name) = self
            .cni_endpoint(&r.container_id, &r.ifname)
            .map(|e| e.name.clone())
        else {
            return Ok(None);
        };
        let released = self.release(&name).await?;
        info!(endpoint = %name, container = %r.container_id, ifname = %r.ifname, "CNI DEL");
        let ports = released.map(|e| e.ports).unwrap_or_default();
        let heir = self
            .state
            .endpoints
            .values()
            .find(|e| matches!(&e.owner, Owner::Cni { container_id, .. } if *container_id == r.container_id))
            .map(|e| (e.name.clone(), e.owner.clone()));
        if let (Some((heir, owner)), false) = (heir, ports.is_empty()) {
            let specs = ports
                .into_iter()
                .map(PortSpec::exact)
                .collect::<Result<Vec<_>, _>>()?;
            // The attachment is gone whatever happens here: a port that
            // cannot move is said, not a failed DEL (the runtime would
            // retry a DEL that has nothing left to do).
            match self.publish_as(&heir, &specs, Hold::of(&owner)).await {
                Ok(moved) => info!(endpoint = %heir, ports = moved.len(),
                    "the container's ports moved to its other attachment"),
                Err(e) => warn!(endpoint = %heir, error = %e,
                    "the container's ports could not move to its other attachment"),
            }
        }
        Ok(Some(name))
    }

    /// CNI CHECK: the attachment is as ADD left it: weir has it on that
    /// network and namespace, the interface is there with its address and
    /// MAC, and its publications are the ones asked for.
    pub async fn cni_check(&self, req: &CniAdd) -> Result<(), AgentError> {
        let ep = self
            .cni_endpoint(&req.container_id, &req.ifname)
            .ok_or_else(|| AgentError::CniUnknown {
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
            })?
            .clone();
        let differs = |what: String| AgentError::CniDiffers {
            endpoint: ep.name.clone(),
            what,
        };
        if ep.network != req.network || ep.netns != req.netns {
            return Err(differs(format!(
                "it is on {} in {}",
                ep.network,
                ep.netns.display()
            )));
        }
        if !ep.netns.exists() {
            return Err(AgentError::NetnsMissing { path: ep.netns });
        }
        let ifname = req.ifname.clone();
        let there = netns::with_netlink(&ep.netns, async |nl| nl.link_mac(&ifname).await)?;
        if there.map(crate::network::mac_string).as_deref() != Some(ep.mac.as_str()) {
            return Err(differs(format!(
                "{} with MAC {} is not in its namespace",
                req.ifname, ep.mac
            )));
        }
        if self.nl.link_index(&ep.host_if).await?.is_none() {
            return Err(differs(format!("its veth {} is gone", ep.host_if)));
        }
        // Its own ports: those asked for, less those another attachment of
        // the container publishes.
        let mut have = ep.ports.clone();
        let elsewhere: Vec<PortMapping> = self
            .container_ports(&req.container_id)
            .into_iter()
            .filter(|m| !have.contains(m))
            .collect();
        let mut want: Vec<PortMapping> = req
            .ports
            .iter()
            .map(CniPort::mapping)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|m| ep.ip6.is_some() || !m.is_ipv6_only())
            .filter(|m| !elsewhere.contains(m))
            .collect();
        let order = |m: &PortMapping| (m.host_port, m.proto, m.host_ip, m.container_port);
        want.sort_by_key(order);
        have.sort_by_key(order);
        if want != have {
            let show = |ms: &[PortMapping]| ms.iter().map(ToString::to_string).collect::<Vec<_>>();
            return Err(differs(format!(
                "its ports are {:?}, not {:?}",
                show(&have),
                show(&want)
            )));
        }
        Ok(())
    }

    /// CNI GC: removes the CNI attachments on `network` that the runtime no
    /// longer has; returns their endpoints' names.
    pub async fn cni_gc(&mut self, gc: &CniGc) -> Result<Vec<String>, AgentError> {
        let stale: Vec<String> = self
            .state
            .endpoints
            .values()
            .filter(|e| e.network == gc.network)
            .filter(|e| match &e.owner {
                Owner::Cni {
                    container_id,
                    ifname,
                } => !gc
                    .valid
                    .iter()
                    .any(|v| &v.container_id == container_id && &v.ifname == ifname),
                _ => false,
            })
            .map(|e| e.name.clone())
            .collect();
        for name in &stale {
            self.release(name).await?;
            info!(endpoint = %name, "CNI GC");
        }
        Ok(stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_ip: Option<&str>, protocol: &str) -> CniPort {
        CniPort {
            host_port: 8080,
            container_port: 80,
            protocol: protocol.to_owned(),
            host_ip: host_ip.map(str::to_owned),
        }
    }

    #[test]
    fn port_mappings_become_specs_without_text() {
        let one = |p: CniPort| PortSpec::exact(p.mapping().unwrap()).unwrap().to_string();
        assert_eq!(one(port(None, "tcp")), "8080:80/tcp");
        assert_eq!(one(port(Some("127.0.0.1"), "UDP")), "127.0.0.1:8080:80/udp");
        assert_eq!(one(port(Some(""), "tcp")), "8080:80/tcp");
        assert_eq!(one(port(Some("::1"), "tcp")), "[::1]:8080:80/tcp");
        assert!(port(Some("nope"), "tcp").mapping().is_err());
        assert!(port(None, "icmp").mapping().is_err());
        let zero = CniPort {
            host_port: 0,
            ..port(None, "tcp")
        };
        assert!(
            PortSpec::exact(zero.mapping().unwrap()).is_err(),
            "port 0 is no port"
        );
        let parsed: CniPort = serde_json::from_str(
            r#"{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}"#,
        )
        .unwrap();
        assert_eq!(one(parsed), "127.0.0.1:5353:53/udp");
        // containerd's CRI sends go-cni's Go field names.
        let go: CniPort = serde_json::from_str(
            r#"{"HostPort":30500,"ContainerPort":8080,"Protocol":"tcp","HostIP":""}"#,
        )
        .unwrap();
        assert_eq!(one(go), "30500:8080/tcp");
        // Each spec is the mapping it came from, and says so in its text.
        for p in [
            port(None, "tcp"),
            port(Some("::1"), "tcp"),
            port(Some("10.0.0.1"), "udp"),
        ] {
            let m = p.mapping().unwrap();
            let s = PortSpec::exact(m).unwrap();
            assert_eq!(s.host_ip.unwrap_or(PortMapping::EVERY), m.host_ip);
            assert_eq!(s.pairs(), [(m.host_port, m.container_port)]);
            assert_eq!(s.is_ipv6_only(), m.host_ip.is_ipv6());
            assert_eq!(s.to_string().parse::<PortSpec>().unwrap(), s);
        }
    }
}
