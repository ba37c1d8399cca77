//! What the Kubernetes door (`crate::kube`) hands the agent: the nodes of
//! the cluster.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::network::Cidr;

/// A node of the cluster: its name, its addresses for the other nodes
/// (`InternalIP`, one per family in a dual-stack cluster) and its pods'
/// address ranges (`spec.podCIDRs`, one per family).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub name: String,
    pub internal_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub internal_ip6: Option<Ipv6Addr>,
    pub pod_cidrs: Vec<Cidr>,
}
