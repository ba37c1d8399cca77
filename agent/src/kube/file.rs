//! `--cluster-nodes FILE`: the cluster's nodes from a file, for clusters
//! whose API the agent does not read. The file is a `NodeList` as the API
//! serves it, or as `kubectl get nodes -o json` prints it (`"kind":
//! "List"`, each item a `Node`): its items are k8s-openapi's `Node`, each
//! turned into a [`ClusterNode`] by [`super::cluster_node`].

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{api::types::ClusterNode, daemon::Agent, error::Chain};

/// Why a node list cannot be had from a file.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Kubernetes NodeList (kubectl get nodes -o json)")]
    Parse {
        path: PathBuf,
        #[source]
        source: NodeListError,
    },
}

/// Why a text is not a node list.
#[derive(Debug, thiserror::Error)]
pub enum NodeListError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("its item {index} has no metadata.name")]
    Nameless { index: usize },
}

/// The items of a list of nodes. Not k8s-openapi's `NodeList`
/// (`List<Node>`): that one refuses any `kind` but `NodeList`, and
/// `kubectl get nodes -o json` prints `"kind": "List"`. The items are
/// checked as `Node`s all the same (a `kind` other than `Node` is refused).
#[derive(Deserialize)]
struct Items {
    items: Vec<Node>,
}

/// The nodes of a `NodeList`'s JSON, in its order.
pub fn parse_nodes(json: &str) -> Result<Vec<ClusterNode>, NodeListError> {
    let list: Items = serde_json::from_str(json)?;
    list.items
        .iter()
        .enumerate()
        .map(|(index, n)| super::cluster_node(n).ok_or(NodeListError::Nameless { index }))
        .collect()
}

/// Reads the node list at `path`.
pub fn read_nodes(path: &Path) -> Result<Vec<ClusterNode>, NodesError> {
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
                        warn!("the cluster's nodes could not be applied: {}", Chain(&e));
                    } else {
                        info!(nodes = nodes.len(), file = %path.display(), "the cluster's nodes");
                    }
                }
                Err(e) => {
                    warn!(
                        "keeping the routes of the last good node list: {}",
                        Chain(&e)
                    );
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

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
        assert_eq!(nodes[1].internal_ip6, "fd00::2".parse().ok());
        assert_eq!(
            nodes[1].pod_cidrs[0].to_string(),
            "10.245.2.0/24",
            "the older podCIDR"
        );
        assert!(nodes[2].internal_ip.is_none() && nodes[2].pod_cidrs.is_empty());
        assert!(parse_nodes(r#"{"items":[{"spec":{}}]}"#).is_err());
    }

    /// kubectl's own output: `"kind": "List"`, each item with its kind.
    #[test]
    fn kubectls_list_of_nodes_and_what_is_not_one() {
        let json = r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},
          "items":[{"apiVersion":"v1","kind":"Node","metadata":{"name":"node1"},
            "spec":{"podCIDRs":["10.245.1.0/24"]},
            "status":{"addresses":[{"type":"InternalIP","address":"198.51.100.1"}]}}]}"#;
        let nodes = parse_nodes(json).unwrap();
        assert_eq!(nodes[0].internal_ip, Some(Ipv4Addr::new(198, 51, 100, 1)));
        let pods =
            r#"{"kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}"#;
        assert!(matches!(parse_nodes(pods), Err(NodeListError::Json(_))));
        assert!(matches!(
            parse_nodes(r#"{"items":[{"metadata":{"name":"a"}},{"metadata":{}}]}"#),
            Err(NodeListError::Nameless { index: 1 })
        ));
    }
}
