//! The node in its Kubernetes cluster: the routes to the other nodes' pod
//! CIDRs (host-gw: each via its node's `InternalIP`, as flannel's host-gw
//! and Cilium's `autoDirectNodeRoutes` make them) and this node's pod
//! network, from the nodes the Kubernetes door (`crate::kube`) reads.
//! Only routes weir made (`RTPROT_WEIR`) are ever changed.

use tracing::{info, warn};

use super::Agent;
use crate::{
    api::types::ClusterNode,
    error::AgentError,
    network::{NetworkSpec, Subnet},
};

/// The network this node's pods are on: its pod CIDR, the one `weir-cni`
/// is configured with (`weir cni config pods`).
pub const POD_NETWORK: &str = "pods";

impl Agent {
    /// Makes the node's routes and pod network match `nodes`: every other
    /// node's pod CIDRs routed via its `InternalIP`, weir's routes to
    /// nodes gone (or moved) removed, and this node's (`--node-name`)
    /// first pod CIDR the network [`POD_NETWORK`], made if missing.
    pub async fn sync_cluster_nodes(&mut self, nodes: &[ClusterNode]) -> Result<(), AgentError> {
        let me = self.config.cluster.node_name.clone();
        let mut want: Vec<(Subnet, std::net::Ipv4Addr)> = Vec::new();
        for node in nodes {
            if node.name == me {
                if let Some(cidr) = node.pod_cidrs.first() {
                    self.ensure_pod_network(*cidr).await?;
                }
                continue;
            }
            let Some(via) = node.internal_ip else {
                continue;
            };
            want.extend(node.pod_cidrs.iter().map(|c| (*c, via)));
        }
        let have = self.nl.weir_routes4().await?;
        for route in have.iter().filter(|r| !want.contains(r)) {
            self.nl.del_weir_route4(route.0, route.1).await?;
            info!(to = %route.0, via = %route.1, "removed the route to a node's pods");
        }
        for route in want.iter().filter(|r| !have.contains(r)) {
            self.nl.add_weir_route4(route.0, route.1).await?;
            info!(to = %route.0, via = %route.1, "routed a node's pods");
        }
        Ok(())
    }

    /// Makes [`POD_NETWORK`] exist on `cidr`; one on another subnet is left
    /// as it is (its pods keep their addresses), and the log says so.
    async fn ensure_pod_network(&mut self, cidr: Subnet) -> Result<(), AgentError> {
        let has = self
            .state
            .registry
            .get(POD_NETWORK)
            .map(|n| n.ipam.as_ref().map(crate::network::Ipam::subnet));
        match has {
            Ok(has) if has == Some(cidr) => Ok(()),
            Ok(has) => {
                warn!(network = POD_NETWORK, has = ?has, node_says = %cidr,
                    "the pod network's subnet is not the node's pod CIDR; left as it is");
                Ok(())
            }
            Err(_) => {
                self.create_network(&NetworkSpec::new(POD_NETWORK, cidr))
                    .await?;
                info!(network = POD_NETWORK, subnet = %cidr, "the node's pod network");
                Ok(())
            }
        }
    }
}
