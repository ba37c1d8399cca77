//! What netavark (Podman 5) asks through `weir-netavark`: `create` a
//! network, `setup` and `teardown` a container's interface on it. The
//! interfaces are a runtime's like CNI's (`runtime.rs`), keyed by the
//! container's id and interface name (`Owner::Netavark`); the networks are
//! weir's own (Podman has no call for removing one: `weir network rm`
//! does). The plugin binary only maps netavark's JSON onto the API.

use super::{Agent, runtime::Attach};
use crate::{
    api::types::{CniAttachment, CniRef, NetavarkSetup, NetworkView},
    error::AgentError,
    network::{Ipam, Ipam6, Network, NetworkSpec},
    owner::Runtime,
};

/// How `network` differs from what `spec` asks for, each thing the spec
/// names: its subnets and gateways (none named: any), whether it is
/// internal, icc, masquerade, its mode and masquerade address.
#[must_use]
pub fn differences(network: &Network, spec: &NetworkSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, has: String, asked: String| {
        if has != asked {
            out.push(format!("{what} {has}, not {asked}"));
        }
    };
    let show = |v: Option<String>| v.unwrap_or_else(|| "none".to_owned());
    if spec.subnet.is_some() || spec.subnet6.is_some() {
        let subnet = network.ipam.as_ref().map(|i| i.subnet().to_string());
        differ(
            "subnet",
            show(subnet),
            show(spec.subnet.map(|s| s.to_string())),
        );
        let subnet6 = network.ipam6.as_ref().map(|i| i.subnet().to_string());
        differ(
            "IPv6 subnet",
            show(subnet6),
            show(spec.subnet6.map(|s| s.to_string())),
        );
    }
    if let Some(g) = spec.gateway {
        differ(
            "gateway",
            show(network.gateway().map(|g| g.to_string())),
            g.to_string(),
        );
    }
    if let Some(g) = spec.gateway6 {
        let has = network.ipam6.as_ref().map(|i| i.gateway().to_string());
        differ("IPv6 gateway", show(has), g.to_string());
    }
    differ(
        "internal",
        network.internal.to_string(),
        spec.internal.to_string(),
    );
    differ("icc", network.icc.to_string(), spec.icc.to_string());
    differ(
        "masquerade",
        network.masquerade.to_string(),
        spec.masquerade.to_string(),
    );
    differ("mode", network.mode.to_string(), spec.mode.to_string());
    differ(
        "snat_ip",
        show(network.snat_ip.map(|a| a.to_string())),
        show(spec.snat_ip.map(|a| a.to_string())),
    );
    out
}

impl Agent {
    /// `create` (`podman network create -d weir`): the network `spec`
    /// asks for, with a subnet of the address pools when it names none.
    /// A weir network of that name answers as it is when it is what the
    /// spec asks for (Podman creating it again, or taking one made with
    /// `weir network create`), and is refused otherwise.
    pub async fn netavark_create(&mut self, spec: &NetworkSpec) -> Result<NetworkView, AgentError> {
        self.refuse_foreign_network(&spec.name)?;
        let Ok(network) = self.state.registry.get(&spec.name) else {
            return self.create_network(spec).await;
        };
        let what = differences(network, spec);
        if what.is_empty() {
            Ok(self.view(network))
        } else {
            Err(AgentError::NetworkDiffers {
                name: spec.name.clone(),
                what: what.join(", "),
            })
        }
    }

    /// `setup NETNS`: the container's interface on the network, its
    /// addresses (the static ones Podman passes, else weir's next free),
    /// its MAC and the container's ports; the same again answers the same.
    pub async fn netavark_setup(
        &mut self,
        req: &NetavarkSetup,
    ) -> Result<CniAttachment, AgentError> {
        let network = self.state.registry.get(&req.network)?;
        let has = (
            network.ipam.as_ref().map(Ipam::subnet),
            network.ipam6.as_ref().map(Ipam6::subnet),
        );
        let unknown = req
            .subnets
            .iter()
            .filter(|s| has.0 != Some(**s))
            .map(ToString::to_string)
            .chain(
                req.subnets6
                    .iter()
                    .filter(|s| has.1 != Some(**s))
                    .map(ToString::to_string),
            )
            .next();
        if let Some(subnet) = unknown {
            return Err(AgentError::SubnetNotOnNetwork {
                network: req.network.clone(),
                subnet,
            });
        }
        let attach = Attach {
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
            network: req.network.clone(),
            ip: req.ip,
            ip6: req.ip6,
            mac: req.mac.clone(),
            name: Some(req.container_name.clone()).filter(|n| !n.is_empty()),
            ports: req.ports.clone(),
        };
        self.runtime_add(Runtime::Netavark, &attach).await
    }

    /// `teardown NETNS`: removes the interface if weir has it; nothing to
    /// remove is done, too (Podman tears down containers whose namespace
    /// is gone, and again after a failed setup).
    pub async fn netavark_teardown(&mut self, r: &CniRef) -> Result<Option<String>, AgentError> {
        self.runtime_del(Runtime::Netavark, &r.container_id, &r.ifname)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Mode, Registry};

    fn network(spec: &NetworkSpec) -> Network {
        Registry::default().plan(spec).unwrap()
    }

    #[test]
    fn an_existing_network_is_what_a_spec_asks_for_in_each_thing_it_names() {
        let made = NetworkSpec::new("front", "10.78.0.0/24".parse().unwrap());
        let n = network(&made);
        assert!(differences(&n, &made).is_empty());
        // No subnet named: any.
        let any = NetworkSpec {
            subnet: None,
            ..made.clone()
        };
        assert!(differences(&n, &any).is_empty());
        let other = NetworkSpec::new("front", "10.79.0.0/24".parse().unwrap());
        assert_eq!(
            differences(&n, &other),
            ["subnet 10.78.0.0/24, not 10.79.0.0/24"]
        );
        let routed = NetworkSpec {
            mode: Mode::Routed,
            internal: true,
            gateway: Some("10.78.0.1".parse().unwrap()),
            ..made.clone()
        };
        assert_eq!(
            differences(&n, &routed),
            ["internal false, not true", "mode nat, not routed"]
        );
        let dual = NetworkSpec {
            subnet6: Some("fd00:78::/64".parse().unwrap()),
            ..made
        };
        assert_eq!(
            differences(&n, &dual),
            ["IPv6 subnet none, not fd00:78::/64"]
        );
    }
}
