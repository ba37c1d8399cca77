//! End-to-end: three nodes of a Kubernetes cluster on one segment, each
//! with a weir agent in cluster mode (`--cluster-cidr`, `--node-cidr`,
//! `--service-cidr`), the host-gw routes between their pod CIDRs, and
//! kube-proxy's iptables rules (`weir_tests::kube`, as kube-proxy writes
//! them) for a few Services. Kubernetes' network model: every pod reaches
//! every pod by its address, nodes reach every pod, only traffic leaving
//! the cluster is masqueraded; and kube-proxy keeps working: cluster IPs
//! with a backend on this node, on the other and outside; node ports from
//! outside to either node's pods. The pods here are attached with weir's
//! own verbs (what containerd's CRI does through `weir-cni` is next).
//! The cluster is dual stack: the same over IPv6 (each node's IPv6 pod
//! CIDR routed via its IPv6 `InternalIP`, kube-proxy's ip6tables rules for
//! the Services' IPv6 sides, pods out masqueraded by NAT66).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use weir_tests::{
    cluster::{self, Cluster, EXT_IP, EXT_IP6, node_ip, node_ip6},
    kube::Service,
    sock::{self, Server, any, at},
};

struct Bed {
    cluster: Cluster,
    /// (node, pod index, address) of the pods.
    a1: (usize, usize, Ipv4Addr),
    b1: (usize, usize, Ipv4Addr),
    a2: (usize, usize, Ipv4Addr),
    /// Their IPv6 addresses.
    a1_6: Ipv6Addr,
    b1_6: Ipv6Addr,
    a2_6: Ipv6Addr,
    servers: Vec<Server>,
}

const HTTP: u16 = 8080;
const WEB_LOCAL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const WEB_REMOTE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const WEB_OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);
const EXT_PORT: u16 = 9000;
const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 53);
const DNS_OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 54);
const DNS_PORT: u16 = 5353;
/// The IPv6 sides of the web Services (a dual-stack Service has a cluster
/// IP of each family, one node port for both).
const WEB6_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10);
const WEB6_REMOTE: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x11);
const WEB6_OUTSIDE: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x12);
const DNS6_OUTSIDE: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x54);

fn service(
    name: &str,
    ip: impl Into<IpAddr>,
    node_port: Option<u16>,
    to: (impl Into<IpAddr>, u16),
) -> Service {
    Service {
        namespace: "default".to_owned(),
        name: name.to_owned(),
        port_name: "http".to_owned(),
        protocol: "tcp",
        cluster_ip: ip.into(),
        port: 80,
        node_port,
        endpoints: vec![(to.0.into(), to.1)],
    }
}

weir_tests::shared!(bed: Bed = {
    let mut cluster = Cluster::new(3, &[]).unwrap();
    let (ia1, a1) = cluster.node_mut(1).pod("a1").unwrap();
    let (ib1, b1) = cluster.node_mut(1).pod("b1").unwrap();
    let (ia2, a2) = cluster.node_mut(2).pod("a2").unwrap();
    let a1_6 = cluster.node(1).pod_ip6("a1");
    let b1_6 = cluster.node(1).pod_ip6("b1");
    let a2_6 = cluster.node(2).pod_ip6("a2");
    let mut servers = Vec::new();
    for (node, pod, ip6) in [(1, ib1, b1_6), (2, ia2, a2_6), (1, ia1, a1_6)] {
        let ns = cluster.node(node).pod_ns(pod);
        servers.push(Server::banner(ns, any(HTTP)).unwrap());
        // The same port over IPv6, on the pod's own address (beside the
        // IPv4 wildcard).
        servers.push(Server::banner(ns, SocketAddr::from((ip6, HTTP))).unwrap());
    }
    servers.push(Server::banner(&cluster.ext, SocketAddr::from((EXT_IP6, EXT_PORT))).unwrap());
    servers.push(Server::udp(&cluster.ext, SocketAddr::from((EXT_IP6, DNS_PORT))).unwrap());
    servers.push(Server::banner(&cluster.ext, at(EXT_IP, EXT_PORT)).unwrap());
    // Name servers, as CoreDNS answers every pod: UDP echo servers.
    servers.push(Server::udp(cluster.node(2).pod_ns(ia2), any(DNS_PORT)).unwrap());
    servers.push(Server::udp(&cluster.ext, at(EXT_IP, DNS_PORT)).unwrap());
    let udp = |name: &str, ip: IpAddr, to: IpAddr| Service {
        port_name: "dns".to_owned(),
        protocol: "udp",
        port: 53,
        ..service(name, ip, None, (to, DNS_PORT))
    };
    let services = [
        service("web-local", WEB_LOCAL, Some(30081), (b1, HTTP)),
        service("web-remote", WEB_REMOTE, Some(30082), (a2, HTTP)),
        service("web-outside", WEB_OUTSIDE, None, (EXT_IP, EXT_PORT)),
        udp("dns", DNS.into(), a2.into()),
        udp("dns-outside", DNS_OUTSIDE.into(), EXT_IP.into()),
        // Their IPv6 sides.
        service("web-local", WEB6_LOCAL, Some(30081), (b1_6, HTTP)),
        service("web-remote", WEB6_REMOTE, Some(30082), (a2_6, HTTP)),
        service("web-outside", WEB6_OUTSIDE, None, (EXT_IP6, EXT_PORT)),
        udp("dns-outside", DNS6_OUTSIDE.into(), EXT_IP6.into()),
    ];
    for node in &cluster.nodes {
        node.kube_proxy(&services).unwrap();
    }
    Bed {
        cluster,
        a1: (1, ia1, a1),
        b1: (1, ib1, b1),
        a2: (2, ia2, a2),
        a1_6,
        b1_6,
        a2_6,
        servers,
    }
});

impl Bed {
    fn pod(&self, p: (usize, usize, Ipv4Addr)) -> &weir_tests::Netns {
        self.cluster.node(p.0).pod_ns(p.1)
    }
}

/// Who the banner server at `to` saw connect from `from` (its address,
/// an IPv4 one v4-mapped read as IPv4), or `None` when nothing answered.
fn peer_seen(from: &weir_tests::Netns, to: SocketAddr) -> Option<IpAddr> {
    let answer = sock::tcp_request(from, to, b"").ok()?;
    let text = String::from_utf8_lossy(&answer);
    let peer = text.trim().strip_prefix("hello ")?;
    Some(peer.parse::<SocketAddr>().ok()?.ip().to_canonical())
}

/// [`peer_seen`] over IPv4.
fn seen_by(from: &weir_tests::Netns, to: Ipv4Addr, port: u16) -> Option<Ipv4Addr> {
    match peer_seen(from, at(to, port))? {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }
}

/// [`peer_seen`] over IPv6.
fn seen_by6(from: &weir_tests::Netns, to: Ipv6Addr, port: u16) -> Option<Ipv6Addr> {
    match peer_seen(from, SocketAddr::from((to, port)))? {
        IpAddr::V6(ip) => Some(ip),
        IpAddr::V4(_) => None,
    }
}

#[test]
fn pods_reach_pods_on_other_nodes_by_their_own_addresses() {
    let bed = bed();
    let (a1, a2) = (bed.a1.2, bed.a2.2);
    assert_eq!(seen_by(bed.pod(bed.a1), a2, HTTP), Some(a1));
    assert_eq!(seen_by(bed.pod(bed.a2), a1, HTTP), Some(a2));
    // And pods of one node each other, as ever.
    assert_eq!(seen_by(bed.pod(bed.a1), bed.b1.2, HTTP), Some(a1));
    // Past netfilter on both nodes, both ways: neither kernel's conntrack
    // holds a connection between them (a Service's to a2 arrives at node
    // 2 as a1 to a2 too, and takes the same way there).
    for node in [1, 2] {
        for (from, to) in [(a1, a2), (a2, a1)] {
            let flows = kernel_flows(&bed, node, from, to);
            assert!(flows.is_empty(), "node {node}'s conntrack: {flows:?}");
        }
    }
    // A Service's connection goes through node 1's netfilter, which
    // translates its answers back.
    assert_eq!(seen_by(bed.pod(bed.a1), WEB_REMOTE, 80), Some(a1));
    assert!(!kernel_flows(&bed, 1, a1, WEB_REMOTE).is_empty());
}

#[test]
fn a_services_connection_takes_the_tuple_a_direct_one_left() {
    let bed = bed();
    let (a1, a2) = (bed.a1.2, bed.a2.2);
    // A source port out of the ephemeral range, which no other test's
    // connection takes.
    let port = 20_123;
    let seen = |to| {
        let answer = sock::tcp_request_from(bed.pod(bed.a1), port, to, b"").ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        text.trim()
            .strip_prefix("hello ")?
            .parse::<SocketAddr>()
            .ok()
    };
    let me = Some(SocketAddr::from((a1, port)));
    // Straight to a2, past netfilter; then the same tuple, once kube-proxy
    // has translated it, through the Service: its answers must go back
    // through node 1's conntrack, not the fast path the first one left.
    assert_eq!(seen(at(a2, HTTP)), me);
    assert_eq!(seen(at(WEB_REMOTE, 80)), me);
    assert_eq!(seen(at(a2, HTTP)), me);
}

/// The TCP connections node `n`'s kernel conntrack holds from `from` to
/// `to` (the original direction), as `/proc/net/nf_conntrack` lists them.
fn kernel_flows(bed: &Bed, n: usize, from: Ipv4Addr, to: Ipv4Addr) -> Vec<String> {
    let out = bed
        .cluster
        .node(n)
        .ns
        .exec("cat", &["/proc/net/nf_conntrack"])
        .unwrap();
    let original = format!("src={from} dst={to} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            // The first tuple of a line is the original direction's.
            l.contains(" tcp ")
                && l.find(" src=")
                    .is_some_and(|i| l[i + 1..].starts_with(&original))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn nodes_reach_every_pod() {
    let bed = bed();
    let node1 = &bed.cluster.node(1).ns;
    let node2 = &bed.cluster.node(2).ns;
    assert_eq!(seen_by(node1, bed.a2.2, HTTP), Some(node_ip(1)));
    assert_eq!(seen_by(node2, bed.a1.2, HTTP), Some(node_ip(2)));
    assert!(
        seen_by(node1, bed.b1.2, HTTP).is_some(),
        "a node to its own pod"
    );
    // Not ext: it is outside the cluster, and pods take nothing unsolicited
    // from outside.
    let pod = bed.a1.2;
    bed.cluster
        .ext
        .ip(&[
            "route",
            "add",
            &cluster::pod_cidr(1),
            "via",
            &node_ip(1).to_string(),
        ])
        .unwrap();
    let from_ext = seen_by(&bed.cluster.ext, pod, HTTP);
    bed.cluster
        .ext
        .ip(&["route", "del", &cluster::pod_cidr(1)])
        .unwrap();
    assert_eq!(from_ext, None, "ext reached a pod it has no business with");
}

#[test]
fn pods_reach_cluster_ips_with_backends_here_there_and_outside() {
    let bed = bed();
    let a1 = bed.a1.2;
    let from = bed.pod(bed.a1);
    // kube-proxy's DNAT, the client's own address kept (it is in the
    // cluster: no KUBE-MARK-MASQ).
    assert_eq!(
        seen_by(from, WEB_LOCAL, 80),
        Some(a1),
        "backend on this node"
    );
    assert_eq!(
        seen_by(from, WEB_REMOTE, 80),
        Some(a1),
        "backend on the other node"
    );
    // An address outside the cluster: masqueraded as the node, and the
    // answer comes back through netfilter (the ClusterIP's own address).
    assert_eq!(
        seen_by(from, WEB_OUTSIDE, 80),
        Some(node_ip(1)),
        "backend outside"
    );
    // Again, and from the other node's pod (flows that exist already).
    for _ in 0..3 {
        assert_eq!(seen_by(from, WEB_OUTSIDE, 80), Some(node_ip(1)));
        assert_eq!(seen_by(bed.pod(bed.a2), WEB_LOCAL, 80), Some(bed.a2.2));
    }
}

/// UDP Services, as every pod's name lookups reach the cluster's DNS: a backend on
/// another node, and one outside the cluster (masqueraded, its answers
/// back through netfilter); the ext server sees the node.
#[test]
fn pods_reach_udp_cluster_ips() {
    let bed = bed();
    let from = bed.pod(bed.a1);
    for (ip, what) in [(DNS, "a pod on another node"), (DNS_OUTSIDE, "outside")] {
        let answer = sock::udp_request(from, None, at(ip, 53), b"query").ok();
        assert_eq!(
            answer.as_deref(),
            Some(&b"query"[..]),
            "UDP to {ip} ({what})"
        );
    }
    let ext = bed.servers.last().expect("ext's name server");
    assert_eq!(ext.peer_ips().last(), Some(&node_ip(1)), "ext saw the node");
    let a2 = &bed.servers[bed.servers.len() - 2];
    assert_eq!(
        a2.peer_ips().last(),
        Some(&bed.a1.2),
        "a2 saw the pod itself"
    );
}

#[test]
fn node_ports_reach_pods_on_either_node_from_outside() {
    let bed = bed();
    // node3 has no pod of either Service: it forwards to the others.
    for node in [1, 2, 3] {
        for (port, what) in [(30081, "node1's pod"), (30082, "node2's pod")] {
            let seen = seen_by(&bed.cluster.ext, node_ip(node), port);
            assert!(
                seen.is_some(),
                "ext -> node{node}:{port} ({what}) got no answer"
            );
        }
    }
    // From a pod too.
    assert!(seen_by(bed.pod(bed.a2), node_ip(1), 30081).is_some());
}

/// The node list makes each node's pod network and its routes to the
/// other nodes' pods (`proto 87`); a node taken out of the list takes its
/// routes with it, and a route weir did not make is never touched.
#[test]
fn routes_follow_the_node_list() {
    let cluster = Cluster::new(3, &[]).unwrap();
    let node1 = &cluster.node(1).ns;
    node1
        .ip(&[
            "route",
            "add",
            "10.245.9.0/24",
            "via",
            &node_ip(3).to_string(),
        ])
        .unwrap();
    let mut routes = cluster::weir_routes(node1);
    routes.sort();
    assert_eq!(
        routes,
        [
            "10.245.2.0/24 via 198.51.100.2 dev uplink0",
            "10.245.3.0/24 via 198.51.100.3 dev uplink0"
        ]
    );
    let mut routes6 = cluster::weir_routes6(node1);
    routes6.sort();
    assert_eq!(routes6.len(), 2, "{routes6:?}");
    for (route, n) in routes6.iter().zip([2, 3]) {
        let want = format!("fd00:245:0:{n}::/64 via fd00:198:51:100::{n} dev uplink0 ");
        assert!(route.starts_with(&want), "{route}");
    }
    let net: serde_json::Value =
        serde_json::from_str(&cluster.node(2).agent.ok(&["network", "inspect", "pods"])).unwrap();
    assert_eq!(net["ipam"]["subnet"], "10.245.2.0/24", "{net}");
    assert_eq!(net["ipam6"]["subnet"], "fd00:245:0:2::/64", "{net}");
    cluster.set_nodes(&[1, 2]).unwrap();
    let gone = weir_tests::eventually(std::time::Duration::from_secs(5), || {
        let left = (
            cluster::weir_routes(node1).len(),
            cluster::weir_routes6(node1).len(),
        );
        (left == (1, 1)).then_some(())
    });
    assert!(
        gone.is_some(),
        "node3's routes stayed: {:?}",
        cluster::weir_routes(node1)
    );
    assert_eq!(
        cluster::weir_routes(node1),
        ["10.245.2.0/24 via 198.51.100.2 dev uplink0"]
    );
    assert!(cluster::weir_routes6(node1)[0].starts_with("fd00:245:0:2::/64 via"));
    let all = node1.ip(&["route"]).unwrap();
    assert!(
        String::from_utf8_lossy(&all.stdout).contains("10.245.9.0/24 via 198.51.100.3"),
        "a route weir did not make went"
    );
}

#[test]
fn pods_leave_the_cluster_masqueraded_and_nothing_of_weir_is_in_netfilter() {
    let bed = bed();
    assert_eq!(seen_by(bed.pod(bed.a1), EXT_IP, EXT_PORT), Some(node_ip(1)));
    assert_eq!(seen_by(bed.pod(bed.a2), EXT_IP, EXT_PORT), Some(node_ip(2)));
    // Every rule in the nodes' tables of both families is kube-proxy's.
    for node in &bed.cluster.nodes {
        for save in ["iptables-save", "ip6tables-save"] {
            let out = node.ns.exec(save, &[]).unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text.lines().filter(|l| l.starts_with("-A ")) {
                assert!(
                    line.contains("KUBE-"),
                    "a rule that is not kube-proxy's ({save}): {line}"
                );
            }
        }
    }
    let _ = &bed.servers;
}

#[test]
fn pods_reach_pods_on_other_nodes_over_ipv6_by_their_own_addresses() {
    let bed = bed();
    let (a1, a2) = (bed.a1_6, bed.a2_6);
    assert_eq!(seen_by6(bed.pod(bed.a1), a2, HTTP), Some(a1));
    assert_eq!(seen_by6(bed.pod(bed.a2), a1, HTTP), Some(a2));
    assert_eq!(seen_by6(bed.pod(bed.a1), bed.b1_6, HTTP), Some(a1));
}

#[test]
fn nodes_reach_every_pod_over_ipv6() {
    let bed = bed();
    let node1 = &bed.cluster.node(1).ns;
    let node2 = &bed.cluster.node(2).ns;
    assert_eq!(seen_by6(node1, bed.a2_6, HTTP), Some(node_ip6(1)));
    assert_eq!(seen_by6(node2, bed.a1_6, HTTP), Some(node_ip6(2)));
    assert!(
        seen_by6(node1, bed.b1_6, HTTP).is_some(),
        "a node to its own pod"
    );
    // Not ext, outside the cluster, even routing the pod CIDR to node1.
    let route = ["-6", "route", "add", &cluster::pod_cidr6(1), "via"];
    let via = node_ip6(1).to_string();
    bed.cluster
        .ext
        .ip(&[&route[..], &[via.as_str()]].concat())
        .unwrap();
    let from_ext = seen_by6(&bed.cluster.ext, bed.a1_6, HTTP);
    bed.cluster
        .ext
        .ip(&["-6", "route", "del", &cluster::pod_cidr6(1)])
        .unwrap();
    assert_eq!(from_ext, None, "ext reached a pod over IPv6");
}

#[test]
fn pods_reach_ipv6_cluster_ips_with_backends_here_there_and_outside() {
    let bed = bed();
    let a1 = bed.a1_6;
    let from = bed.pod(bed.a1);
    assert_eq!(
        seen_by6(from, WEB6_LOCAL, 80),
        Some(a1),
        "backend on this node"
    );
    assert_eq!(
        seen_by6(from, WEB6_REMOTE, 80),
        Some(a1),
        "backend on the other node"
    );
    // Outside the cluster: NAT66 makes it the node, and the answer comes
    // back through ip6tables' conntrack (the cluster IP's own address).
    assert_eq!(
        seen_by6(from, WEB6_OUTSIDE, 80),
        Some(node_ip6(1)),
        "backend outside"
    );
    for _ in 0..3 {
        assert_eq!(seen_by6(from, WEB6_OUTSIDE, 80), Some(node_ip6(1)));
        assert_eq!(seen_by6(bed.pod(bed.a2), WEB6_LOCAL, 80), Some(bed.a2_6));
    }
    // UDP too, to a name server outside: the answer from the cluster IP.
    let answer = sock::udp_request(
        from,
        Some("[::]:0".parse().unwrap()),
        SocketAddr::from((DNS6_OUTSIDE, 53)),
        b"query6",
    );
    assert_eq!(answer.ok().as_deref(), Some(&b"query6"[..]));
    let ext = bed
        .servers
        .iter()
        .find(|s| s.addr() == SocketAddr::from((EXT_IP6, DNS_PORT)))
        .expect("ext's IPv6 name server");
    let peers: Vec<IpAddr> = ext.received().iter().map(|r| r.peer.ip()).collect();
    assert_eq!(peers.last(), Some(&IpAddr::V6(node_ip6(1))));
}

#[test]
fn pods_leave_the_cluster_over_ipv6_masqueraded() {
    let bed = bed();
    assert_eq!(
        seen_by6(bed.pod(bed.a1), EXT_IP6, EXT_PORT),
        Some(node_ip6(1))
    );
    assert_eq!(
        seen_by6(bed.pod(bed.a2), EXT_IP6, EXT_PORT),
        Some(node_ip6(2))
    );
}

#[test]
fn node_ports_over_ipv6_reach_pods_on_either_node_from_outside() {
    let bed = bed();
    for node in [1, 2, 3] {
        for (port, what) in [(30081, "node1's pod"), (30082, "node2's pod")] {
            let seen = seen_by6(&bed.cluster.ext, node_ip6(node), port);
            assert!(
                seen.is_some(),
                "ext -> [{}]:{port} ({what}) got no answer",
                node_ip6(node)
            );
        }
    }
    assert!(seen_by6(bed.pod(bed.a2), node_ip6(1), 30081).is_some());
}
