//! `--kube-api`: the cluster's nodes from the Kubernetes API, as an
//! informer follows them: kube-rs's watcher lists `/api/v1/nodes` (paged),
//! then watches from the list's `resourceVersion`, resumes a watch that
//! ended (or failed to start) from the last version it saw, and lists
//! again when the API says that version is gone (410). Its errors
//! are retried with kube-rs's default backoff (0.8 s doubling to 30 s,
//! jittered); meanwhile the routes stay as the last good set made them.
//! After a complete list, and after every change of a node that changes
//! its [`ClusterNode`] (not the status heartbeats), the agent is given the
//! whole set of nodes.

use std::{collections::BTreeMap, path::Path, path::PathBuf, sync::Arc, time::Duration};

use ::kube::{
    Api, Client, Config,
    config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError},
    runtime::{WatchStreamExt as _, watcher},
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{api::types::ClusterNode, daemon::Agent, error::Chain};

/// Why the API cannot be reached at all (a watch that fails later is
/// retried, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("no Kubernetes credentials (neither a kubeconfig nor a pod's service account)")]
    Infer(#[source] InferConfigError),
    #[error("a client of the Kubernetes API")]
    Client(#[source] ::kube::Error),
}

/// A client of the cluster's API: with the credentials of `kubeconfig`
/// when given, else as kubectl and client-go find them (`KUBECONFIG` or
/// `~/.kube/config`, else the pod's service account: the in-cluster
/// `KUBERNETES_SERVICE_HOST`/`_PORT`, token and CA).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ApiError> {
    let config = match kubeconfig {
        Some(path) => {
            let bad = |source| ApiError::Kubeconfig {
                path: path.to_owned(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(bad)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(bad)?
        }
        None => Config::infer().await.map_err(ApiError::Infer)?,
    };
    info!(server = %config.cluster_url, "the Kubernetes API");
    Client::try_from(config).map_err(ApiError::Client)
}

/// The nodes the watch has shown so far, by name, each as the agent
/// routes it.
#[derive(Debug, Default)]
struct Nodes {
    known: BTreeMap<String, ClusterNode>,
    /// A list under way (`Init` seen, `InitDone` not yet): it replaces
    /// `known` whole when complete.
    listing: Option<BTreeMap<String, ClusterNode>>,
}

impl Nodes {
    /// Takes one event of the watcher; returns every node when the agent
    /// has to be told: after each complete list, and when a node came,
    /// went or changed its name, `InternalIP` or pod CIDRs.
    fn on(&mut self, event: watcher::Event<Node>) -> Option<Vec<ClusterNode>> {
        match event {
            watcher::Event::Init => {
                self.listing = Some(BTreeMap::new());
                None
            }
            watcher::Event::InitApply(node) => {
                if let (Some(listing), Some(n)) = (&mut self.listing, super::cluster_node(&node)) {
                    listing.insert(n.name.clone(), n);
                }
                None
            }
            watcher::Event::InitDone => {
                self.known = self.listing.take().unwrap_or_default();
                Some(self.all())
            }
            watcher::Event::Apply(node) => {
                let n = super::cluster_node(&node)?;
                if self.known.get(&n.name) == Some(&n) {
                    return None;
                }
                self.known.insert(n.name.clone(), n);
                Some(self.all())
            }
            watcher::Event::Delete(node) => {
                self.known.remove(node.metadata.name.as_deref()?)?;
                Some(self.all())
            }
        }
    }

    fn all(&self) -> Vec<ClusterNode> {
        self.known.values().cloned().collect()
    }
}

/// How long a set of nodes the agent could not apply waits before it is
/// tried again (unless a newer one comes first).
const RETRY: Duration = Duration::from_secs(5);

/// Follows the cluster's nodes through `client` for as long as the agent
/// runs, making the agent's routes and pod network match them.
pub async fn follow_api(client: Client, agent: Arc<Mutex<Agent>>) {
    let nodes: Api<Node> = Api::all(client);
    let events = watcher(nodes, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut seen = Nodes::default();
    // A set not applied yet (new, or failed and waiting for RETRY).
    let mut pending: Option<Vec<ClusterNode>> = None;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Some(all) = seen.on(event) {
                        pending = Some(all);
                    }
                }
                Some(Err(e)) => {
                    warn!(
                        "watching the cluster's nodes failed ({}); retried, the routes stay as the last good set made them",
                        Chain(&e)
                    );
                }
                None => return,
            },
            () = tokio::time::sleep(RETRY), if pending.is_some() => {}
        }
        let Some(all) = pending.take() else { continue };
        match agent.lock().await.sync_cluster_nodes(&all).await {
            Ok(()) => info!(nodes = all.len(), "the cluster's nodes, from the API"),
            Err(e) => {
                warn!(
                    "the cluster's nodes could not be applied ({}); trying again",
                    Chain(&e)
                );
                pending = Some(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use watcher::Event;

    use super::*;

    fn node(name: &str, ip: &str, cidr: &str, version: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "resourceVersion": version},
            "spec": {"podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
        }))
        .unwrap()
    }

    /// A client for an `https://` API is made (rustls with ring, the one
    /// crypto provider built in); nothing is asked of the server yet.
    #[tokio::test]
    async fn a_client_of_an_https_api_from_a_kubeconfig() {
        let path = std::env::temp_dir().join(format!("weir-kubeconfig-{}", std::process::id()));
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: c, cluster: {server: 'https://192.0.2.1:6443', insecure-skip-tls-verify: true}}]\n\
             contexts: [{name: c, context: {cluster: c, user: u}}]\n\
             users: [{name: u, user: {token: t}}]\n",
        )
        .unwrap();
        let made = client(Some(&path)).await;
        std::fs::remove_file(&path).unwrap();
        made.unwrap();
        let missing = client(Some(Path::new("/nonexistent/kubeconfig"))).await;
        assert!(matches!(missing, Err(ApiError::Kubeconfig { .. })));
    }

    fn names(all: Option<Vec<ClusterNode>>) -> Option<Vec<String>> {
        all.map(|v| v.into_iter().map(|n| n.name).collect())
    }

    #[test]
    fn the_agent_is_told_after_a_whole_list_and_at_each_change_that_matters() {
        let mut seen = Nodes::default();
        assert_eq!(seen.on(Event::Init), None);
        let a = node("a", "198.51.100.1", "10.245.1.0/24", "1");
        assert_eq!(
            seen.on(Event::InitApply(a.clone())),
            None,
            "not before the end of the list"
        );
        assert_eq!(
            seen.on(Event::InitApply(node(
                "b",
                "198.51.100.2",
                "10.245.2.0/24",
                "2"
            ))),
            None
        );
        assert_eq!(
            names(seen.on(Event::InitDone)),
            Some(vec!["a".into(), "b".into()])
        );
        // A heartbeat: a new resourceVersion, nothing weir routes by.
        assert_eq!(
            seen.on(Event::Apply(node(
                "a",
                "198.51.100.1",
                "10.245.1.0/24",
                "3"
            ))),
            None
        );
        let moved = seen
            .on(Event::Apply(node(
                "a",
                "198.51.100.9",
                "10.245.1.0/24",
                "4",
            )))
            .unwrap();
        assert_eq!(moved[0].internal_ip, Some("198.51.100.9".parse().unwrap()));
        assert_eq!(
            names(seen.on(Event::Apply(node(
                "c",
                "198.51.100.3",
                "10.245.3.0/24",
                "5"
            )))),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            names(seen.on(Event::Delete(a.clone()))),
            Some(vec!["b".into(), "c".into()])
        );
        assert_eq!(seen.on(Event::Delete(a)), None, "gone already");
        // A new list (the watch lost) replaces the set whole: c is gone.
        assert_eq!(seen.on(Event::Init), None);
        assert_eq!(
            seen.on(Event::InitApply(node(
                "b",
                "198.51.100.2",
                "10.245.2.0/24",
                "9"
            ))),
            None
        );
        assert_eq!(names(seen.on(Event::InitDone)), Some(vec!["b".into()]));
    }
}
