//! End-to-end: the agents learn the cluster's nodes from the Kubernetes
//! API (`weir agent --kube-api --kubeconfig FILE`): each agent's real
//! kube-rs client lists and watches the Node objects of a stand-in
//! apiserver on `ext` (`weir_tests::apiserver`, plain HTTP at
//! `198.51.100.100:6443`; no kube-apiserver can run on this machine), and
//! the routes (`proto 87`) follow the nodes as they come, change and go,
//! and outlive the apiserver while it is away.

use std::time::Duration;

use weir_tests::cluster::{Cluster, node_object};

/// Long enough for kube-rs's backoff after a few failed watches (0.8 s
/// doubling, jittered).
const WAIT: Duration = Duration::from_secs(40);

/// Node `n`'s routes to the others' pods, sorted.
fn routes(cluster: &Cluster, n: usize) -> Vec<String> {
    let mut routes = weir_tests::cluster::weir_routes(&cluster.node(n).ns);
    routes.sort();
    routes
}

/// Waits until node `n`'s routes are `want` (sorted).
fn wait_routes(cluster: &Cluster, n: usize, want: &[&str]) {
    let got = weir_tests::eventually(WAIT, || (routes(cluster, n) == want).then_some(()));
    assert!(
        got.is_some(),
        "node{n}'s routes are {:?}, not {want:?}; its agent said:\n{}",
        routes(cluster, n),
        cluster.node(n).agent.log_text()
    );
}

/// How many times node `n`'s agent said its watch failed.
fn watch_failures(cluster: &Cluster, n: usize) -> usize {
    cluster
        .node(n)
        .agent
        .log_text()
        .matches("watching the cluster's nodes failed (")
        .count()
}

const TO_1: &str = "10.245.1.0/24 via 198.51.100.1 dev uplink0";
const TO_2: &str = "10.245.2.0/24 via 198.51.100.2 dev uplink0";
const TO_3: &str = "10.245.3.0/24 via 198.51.100.3 dev uplink0";

#[test]
fn routes_follow_node_objects_added_changed_and_deleted_in_the_api() {
    let cluster = Cluster::with_api(3, &[]).unwrap();
    let api = cluster.api();
    wait_routes(&cluster, 1, &[TO_2, TO_3]);
    wait_routes(&cluster, 2, &[TO_1, TO_3]);
    let net: serde_json::Value =
        serde_json::from_str(&cluster.node(2).agent.ok(&["network", "inspect", "pods"])).unwrap();
    assert_eq!(net["ipam"]["subnet"], "10.245.2.0/24", "{net}");
    // kube-rs's watcher as it calls the API: a list, then a watch from the
    // list's version (3: three nodes added); nothing the stand-in does not
    // serve.
    let requests = api.requests();
    let list = requests.iter().find(|r| !r.contains("watch=")).unwrap();
    assert!(
        list.starts_with("GET /api/v1/nodes?") && list.contains("limit=500"),
        "{list}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("watch=true") && r.contains("resourceVersion=3")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().all(|r| r.starts_with("GET /api/v1/nodes?")),
        "{requests:#?}"
    );

    api.delete("node3");
    wait_routes(&cluster, 1, &[TO_2]);
    wait_routes(&cluster, 2, &[TO_1]);

    // Back, with a new pod CIDR.
    let mut node3 = node_object(3);
    node3["spec"] = serde_json::json!({"podCIDRs": ["10.245.13.0/24"]});
    api.apply(node3);
    let to_3_new = "10.245.13.0/24 via 198.51.100.3 dev uplink0";
    wait_routes(&cluster, 1, &[to_3_new, TO_2]);

    // node2's InternalIP changed: its pods are routed via the new one.
    let mut node2 = node_object(2);
    node2["status"]["addresses"][0]["address"] = "198.51.100.12".into();
    api.apply(node2);
    wait_routes(
        &cluster,
        1,
        &[to_3_new, "10.245.2.0/24 via 198.51.100.12 dev uplink0"],
    );
    wait_routes(
        &cluster,
        3,
        &[TO_1, "10.245.2.0/24 via 198.51.100.12 dev uplink0"],
    );
}

#[test]
fn the_routes_outlive_the_apiserver_and_the_watch_resumes_or_lists_again() {
    let cluster = Cluster::with_api(3, &[]).unwrap();
    let api = cluster.api();
    wait_routes(&cluster, 1, &[TO_2, TO_3]);

    // The apiserver goes away: the agents' watches fail (retried with
    // kube-rs's backoff) and the routes stay as they were.
    api.stop();
    let failed = weir_tests::eventually(WAIT, || (watch_failures(&cluster, 1) > 0).then_some(()));
    assert!(failed.is_some(), "{}", cluster.node(1).agent.log_text());
    assert_eq!(
        routes(&cluster, 1),
        [TO_2, TO_3],
        "the last good routes kept"
    );

    // node3 deleted while it was away; back, the watch resumes from the
    // version it had (3), no new list, and the deletion arrives.
    let seen = api.requests().len();
    api.delete("node3");
    api.start().unwrap();
    wait_routes(&cluster, 1, &[TO_2]);
    let after = api.requests()[seen..].to_vec();
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|r| r.contains("watch=true") && r.contains("resourceVersion=3")),
        "resumed, not listed again: {after:#?}"
    );

    // Away again, and its history compacted meanwhile (node3 back at a
    // version after it): a watch from the old version is told 410 Gone
    // and the agents list the nodes again.
    let failures = watch_failures(&cluster, 1);
    api.stop();
    let failed = weir_tests::eventually(WAIT, || {
        (watch_failures(&cluster, 1) > failures).then_some(())
    });
    assert!(failed.is_some(), "{}", cluster.node(1).agent.log_text());
    let seen = api.requests().len();
    api.apply(node_object(3));
    api.forget_history();
    api.start().unwrap();
    wait_routes(&cluster, 1, &[TO_2, TO_3]);
    let after = api.requests()[seen..].to_vec();
    assert!(
        after.iter().any(|r| !r.contains("watch=")),
        "listed again: {after:#?}"
    );
}

/// Credentials that cannot be had refuse the start, before anything is
/// made on the node.
#[test]
fn a_kubeconfig_that_cannot_be_read_refuses_the_start() {
    let w = weir_tests::World::new().unwrap();
    let missing = "/nonexistent/weir-kubeconfig";
    let err = weir_tests::agent::Agent::fails_to_start(
        &w,
        weir_tests::agent::Launch::Setns,
        &["--kube-api", "--kubeconfig", missing],
    );
    assert!(err.contains("--kube-api") && err.contains(missing), "{err}");
    let links = w.node.ip(&["-o", "link"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("weir0"),
        "a refused start made the default network"
    );
}
