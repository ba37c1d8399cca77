//! The Kubernetes door: where the nodes of the cluster are, so that each
//! node's pod CIDR is routed through that node (host-gw) and this node's
//! own pod CIDR is the network `weir-cni` gives its pods. The nodes come
//! from a `NodeList` as the API serves it (`kubectl get nodes -o json`:
//! each node's `metadata.name`, `spec.podCIDRs` and its `InternalIP` in
//! `status.addresses`), read from `--cluster-nodes FILE` at start and again
//! whenever the file changes. The agent's library does the rest
//! (`daemon::cluster`).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::Arc,
    time::SystemTime,
};

use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{api::types::ClusterNode, daemon::Agent, network::Cidr};

/// Why a node list cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Kubernetes NodeList (kubectl get nodes -o json): {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct NodeList {
    items: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Default, Deserialize)]
struct Spec {
    #[serde(default, rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(default, rename = "podCIDRs")]
    pod_cidrs: Vec<String>,
}

#[derive(Default, Deserialize)]
struct Status {
    #[serde(default)]
    addresses: Vec<Address>,
}

#[derive(Deserialize)]
struct Address {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

/// The nodes of a `NodeList`'s JSON: each one's name, its first
/// `InternalIP` of each family and its pod CIDRs of both (`spec.podCIDRs`,
/// else the older `spec.podCIDR`).
pub fn parse_nodes(json: &str) -> Result<Vec<ClusterNode>, serde_json::Error> {
    let list: NodeList = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .map(|n| {
            let mut cidrs = n.spec.pod_cidrs;
            if cidrs.is_empty() {
                cidrs.extend(n.spec.pod_cidr);
            }
            let internal = || n.status.addresses.iter().filter(|a| a.kind == "InternalIP");
            ClusterNode {
                name: n.metadata.name,
                internal_ip: internal().find_map(|a| a.address.parse::<Ipv4Addr>().ok()),
                internal_ip6: internal().find_map(|a| a.address.parse::<Ipv6Addr>().ok()),
                pod_cidrs: cidrs
                    .iter()
                    .filter_map(|c| c.parse::<Cidr>().ok())
                    .collect(),
            }
        })
        .collect())
}

/// Reads the node list at `path`.
pub fn read_nodes(path: &std::path::Path) -> Result<Vec<ClusterNode>, NodesError> {
    let text = std::fs::read_to_string(path).map_err(|source| NodesError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_nodes(&text).map_err(|source| NodesError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// How often the file is looked at for a change.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows the node list at `path` for as long as the agent runs: at
/// start and at every change of the file, the agent's routes and pod
/// network are made to match it. A file that cannot be read keeps what the
/// last good one made, and says why.
pub async fn follow_file(path: PathBuf, agent: Arc<Mutex<Agent>>) {
    let mut seen: Option<SystemTime> = None;
    loop {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != seen {
            seen = modified;
            match read_nodes(&path) {
                Ok(nodes) => {
                    if let Err(e) = agent.lock().await.sync_cluster_nodes(&nodes).await {
                        warn!(error = %e, "the cluster's nodes could not be applied");
                    } else {
                        info!(nodes = nodes.len(), file = %path.display(), "the cluster's nodes");
                    }
                }
                Err(e) => warn!(error = %e, "keeping the routes of the last good node list"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_list_as_kubectl_prints_it() {
        let json = r#"{"apiVersion":"v1","kind":"NodeList","items":[
          {"metadata":{"name":"node1","labels":{"kubernetes.io/hostname":"node1"}},
           "spec":{"podCIDR":"10.245.1.0/24","podCIDRs":["10.245.1.0/24","fd00:245:1::/64"]},
           "status":{"addresses":[{"type":"InternalIP","address":"198.51.100.1"},
             {"type":"Hostname","address":"node1"}]}},
          {"metadata":{"name":"node2"},"spec":{"podCIDR":"10.245.2.0/24"},
           "status":{"addresses":[{"type":"InternalIP","address":"fd00::2"},
             {"type":"InternalIP","address":"198.51.100.2"}]}},
          {"metadata":{"name":"new"},"spec":{},"status":{}}]}"#;
        let nodes = parse_nodes(json).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].name, "node1");
        assert_eq!(nodes[0].internal_ip, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(nodes[0].internal_ip6, None);
        let cidrs: Vec<String> = nodes[0].pod_cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(cidrs, ["10.245.1.0/24", "fd00:245:1::/64"], "both families");
        assert_eq!(nodes[1].internal_ip, Some(Ipv4Addr::new(198, 51, 100, 2)));
        assert_eq!(
            nodes[1].internal_ip6,
            "fd00::2".parse().ok(),
            "either order"
        );
        assert_eq!(
            nodes[1].pod_cidrs[0].to_string(),
            "10.245.2.0/24",
            "the older podCIDR"
        );
        assert!(nodes[2].internal_ip.is_none() && nodes[2].pod_cidrs.is_empty());
        assert!(parse_nodes(r#"{"items":[{"spec":{}}]}"#).is_err());
    }
}
