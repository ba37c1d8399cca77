//! The Kubernetes door: where the nodes of the cluster are, so that each
//! node's pod CIDR is routed through that node (host-gw) and this node's
//! own pod CIDR is the network `weir-cni` gives its pods. The nodes are
//! the API's `Node` objects (k8s-openapi's type: each one's
//! `metadata.name`, `spec.podCIDRs` and its `InternalIP` in
//! `status.addresses`), from one of two places:
//!
//! - `--kube-api` ([`watch`]): the Kubernetes API itself, listed then
//!   watched with kube-rs's watcher (listed again when the watch is lost),
//!   with in-cluster or kubeconfig credentials;
//! - `--cluster-nodes FILE` ([`file`]): a `NodeList` as `kubectl get nodes
//!   -o json` prints it, for clusters whose API the agent does not read,
//!   read at start and again whenever the file changes.
//!
//! Either way a node becomes a [`ClusterNode`] through [`cluster_node`]
//! alone, and the agent's library does the rest (`daemon::cluster`).

pub mod file;
pub mod watch;

use std::net::{Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Node;

pub use file::{NodesError, follow_file, parse_nodes, read_nodes};
pub use watch::{ApiError, client, follow_api};

use crate::{api::types::ClusterNode, network::Cidr};

/// The one translation of a Kubernetes `Node` into weir's [`ClusterNode`]:
/// its name, its first `InternalIP` of each family and its pod CIDRs of
/// both (`spec.podCIDRs`, else the older `spec.podCIDR`). `None` for a node
/// without a name, which the API never serves.
#[must_use]
pub fn cluster_node(node: &Node) -> Option<ClusterNode> {
    let name = node.metadata.name.clone()?;
    let spec = node.spec.as_ref();
    let cidrs = spec
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]))
        .unwrap_or_default();
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_deref());
    let internal = || {
        addresses
            .unwrap_or_default()
            .iter()
            .filter(|a| a.type_ == "InternalIP")
    };
    Some(ClusterNode {
        name,
        internal_ip: internal().find_map(|a| a.address.parse::<Ipv4Addr>().ok()),
        internal_ip6: internal().find_map(|a| a.address.parse::<Ipv6Addr>().ok()),
        pod_cidrs: cidrs
            .iter()
            .filter_map(|c| c.parse::<Cidr>().ok())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_node_is_its_name_internal_ips_and_pod_cidrs_of_both_families() {
        let n = cluster_node(&node(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node1", "resourceVersion": "7"},
            "spec": {"podCIDR": "10.245.1.0/24",
                     "podCIDRs": ["fd00:245:1::/64", "10.245.1.0/24"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node1"},
                {"type": "ExternalIP", "address": "203.0.113.1"},
                {"type": "InternalIP", "address": "fd00::1"},
                {"type": "InternalIP", "address": "198.51.100.1"}]}
        })))
        .unwrap();
        assert_eq!(n.name, "node1");
        assert_eq!(n.internal_ip, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(n.internal_ip6, "fd00::1".parse().ok(), "either order");
        let cidrs: Vec<String> = n.pod_cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(cidrs, ["fd00:245:1::/64", "10.245.1.0/24"], "both families");
    }

    #[test]
    fn a_new_node_has_nothing_yet_and_a_nameless_one_is_none() {
        let n = cluster_node(&node(serde_json::json!({"metadata": {"name": "new"}}))).unwrap();
        assert!(n.internal_ip.is_none() && n.pod_cidrs.is_empty());
        let old = cluster_node(&node(serde_json::json!({
            "metadata": {"name": "old"}, "spec": {"podCIDR": "10.245.9.0/24", "podCIDRs": []}
        })))
        .unwrap();
        assert_eq!(
            old.pod_cidrs[0].to_string(),
            "10.245.9.0/24",
            "the older podCIDR"
        );
        assert!(cluster_node(&node(serde_json::json!({"spec": {}}))).is_none());
    }
}
