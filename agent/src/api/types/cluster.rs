//! What the Kubernetes door (`crate::kube`) hands the agent: the nodes of
//! the cluster.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::network::Subnet;

/// A node of the cluster: its name, its address for the other nodes
/// (`InternalIP`) and its pods' address ranges (`spec.podCIDRs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub name: String,
    pub internal_ip: Option<Ipv4Addr>,
    pub pod_cidrs: Vec<Subnet>,
}
