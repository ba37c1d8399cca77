//! Endpoints a CNI runtime asks for through `weir-cni` (Podman, containerd,
//! kubelet): ADD, DEL, CHECK and GC mapped onto the endpoint core
//! (`endpoint.rs`) through what every runtime's interfaces share
//! (`runtime.rs`), keyed by the runtime's container id and interface name
//! (`Owner::Cni`). The plugin binary only maps the CNI protocol onto the
//! API.

use tracing::info;

use super::{Agent, runtime::Attach};
use crate::{
    api::types::{CniAdd, CniAttachment, CniGc, CniPort, CniRef, Endpoint},
    error::AgentError,
    netns,
    owner::{Owner, Runtime},
    publish::PortMapping,
};

impl Agent {
    fn cni_endpoint(&self, container_id: &str, ifname: &str) -> Option<&Endpoint> {
        self.runtime_endpoint(Runtime::Cni, container_id, ifname)
    }

    /// CNI ADD: the interface, its address and its ports, all or nothing.
    /// Asked again for the same container, interface and namespace, it
    /// answers what it made.
    pub async fn cni_add(&mut self, req: &CniAdd) -> Result<CniAttachment, AgentError> {
        let ports = req
            .ports
            .iter()
            .map(CniPort::mapping)
            .collect::<Result<Vec<_>, _>>()?;
        let attach = Attach {
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
            network: req.network.clone(),
            ip: req.ip,
            ip6: req.ip6,
            mac: req.mac.clone(),
            name: req.name.clone(),
            ports,
        };
        self.runtime_add(Runtime::Cni, &attach).await
    }

    /// CNI DEL: removes the attachment if weir has it (its publications
    /// and their flows with it); nothing to remove is done, too. Its ports
    /// move to another attachment of the container, if it has one (the
    /// runtime asked each for them).
    pub async fn cni_del(&mut self, r: &CniRef) -> Result<Option<String>, AgentError> {
        self.runtime_del(Runtime::Cni, &r.container_id, &r.ifname)
            .await
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
            .container_ports(Runtime::Cni, &req.container_id)
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
    use crate::publish::PortSpec;

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
