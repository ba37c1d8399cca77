//! The node in its Kubernetes cluster: the routes to the other nodes' pod
//! CIDRs (host-gw: each via its node's `InternalIP` of the CIDR's family,
//! as flannel's host-gw and Cilium's `autoDirectNodeRoutes` make them) and
//! this node's pod network, from the nodes the Kubernetes door
//! (`crate::kube`) reads. Only routes weir made (`RTPROT_WEIR`) are ever
//! changed.

use std::net::IpAddr;

use tracing::{info, warn};

use super::Agent;
use crate::{
    api::types::ClusterNode,
    error::AgentError,
    netlink::routes::WeirRoute,
    network::{Cidr, Mode, NetworkSpec, Subnet, Subnet6, v6::MAX_PREFIX6},
};

/// The network this node's pods are on: its pod CIDRs, the one `weir-cni`
/// is configured with (`weir cni config pods`).
pub const POD_NETWORK: &str = "pods";

impl Agent {
    /// Makes the node's routes and pod network match `nodes`: every other
    /// node's pod CIDRs routed via its `InternalIP` of their family, weir's
    /// routes to nodes gone (or moved) removed, and this node's
    /// (`--node-name`) first pod CIDR of each family the network
    /// [`POD_NETWORK`], made if missing (dual stack when there are both).
    pub async fn sync_cluster_nodes(&mut self, nodes: &[ClusterNode]) -> Result<(), AgentError> {
        let me = self.config.cluster.node_name.clone();
        let mut want: Vec<WeirRoute> = Vec::new();
        for node in nodes {
            if node.name == me {
                self.ensure_pod_network(&node.pod_cidrs).await?;
                continue;
            }
            let via = |cidr: &Cidr| match cidr {
                Cidr::V4(_) => node.internal_ip.map(IpAddr::V4),
                Cidr::V6(_) => node.internal_ip6.map(IpAddr::V6),
            };
            want.extend(
                node.pod_cidrs
                    .iter()
                    .filter_map(|c| WeirRoute::new(*c, via(c)?)),
            );
        }
        let have = self.nl.weir_routes().await?;
        for route in have.iter().filter(|r| !want.contains(r)) {
            self.nl.del_weir_route(*route).await?;
            info!(%route, "removed the route to a node's pods");
        }
        for route in want.iter().filter(|r| !have.contains(r)) {
            self.nl.add_weir_route(*route).await?;
            info!(%route, "routed a node's pods");
        }
        Ok(())
    }

    /// Makes [`POD_NETWORK`] exist on this node's first pod CIDR of each
    /// family (an IPv6 one must be a /64 or shorter, as every network of
    /// weir's); one that exists on other subnets is left as it is (its
    /// pods keep their addresses), and the log says so.
    async fn ensure_pod_network(&mut self, cidrs: &[Cidr]) -> Result<(), AgentError> {
        let v4: Option<Subnet> = cidrs.iter().find_map(|c| match c {
            Cidr::V4(s) => Some(*s),
            Cidr::V6(_) => None,
        });
        let v6: Option<Subnet6> = cidrs.iter().find_map(|c| match c {
            Cidr::V6(s) => Some(*s),
            Cidr::V4(_) => None,
        });
        let v6 = match v6 {
            Some(s) if s.prefix() > MAX_PREFIX6 => {
                warn!(network = POD_NETWORK, pod_cidr = %s,
                    "the node's IPv6 pod CIDR is longer than a network of weir's may be (/{MAX_PREFIX6}); its pods get no IPv6");
                None
            }
            v6 => v6,
        };
        if v4.is_none() && v6.is_none() {
            return Ok(());
        }
        let has = self.state.registry.get(POD_NETWORK).map(|n| {
            (
                n.ipam.as_ref().map(crate::network::Ipam::subnet),
                n.ipam6.as_ref().map(crate::network::Ipam6::subnet),
            )
        });
        match has {
            Ok(has) if has == (v4, v6) => Ok(()),
            Ok(has) => {
                warn!(network = POD_NETWORK, has = ?has, node_says = ?(v4, v6),
                    "the pod network's subnets are not the node's pod CIDRs; left as it is");
                Ok(())
            }
            Err(_) => {
                // Docker's defaults, as `NetworkSpec::new` has them.
                let spec = NetworkSpec {
                    name: POD_NETWORK.to_owned(),
                    subnet: v4,
                    gateway: None,
                    subnet6: v6,
                    gateway6: None,
                    internal: false,
                    icc: true,
                    masquerade: true,
                    mode: Mode::Nat,
                    snat_ip: None,
                };
                self.create_network(&spec).await?;
                info!(network = POD_NETWORK, subnet = ?v4, subnet6 = ?v6, "the node's pod network");
                Ok(())
            }
        }
    }
}
