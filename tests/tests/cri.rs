//! End-to-end: pods made through containerd's CRI (Debian's containerd
//! 1.6, its CRI plugin), the way kubelet drives it, on a node of a
//! two-node cluster bed in cluster mode: containerd calls `weir-cni`
//! (its only CNI network, `pods`, the node's pod CIDR from the node list),
//! which asks the node's agent. `RunPodSandbox` with a `hostPort`,
//! `PodSandboxStatus`'s IP, `CreateContainer`/`StartContainer` of the
//! busybox image, pod to pod across nodes, cluster IPs and a node port
//! through kube-proxy's rules, out masqueraded, `StopPodSandbox` and
//! `RemovePodSandbox` (CNI DEL). No kubelet runs here: the test is the
//! CRI client, making kubelet's calls.

use std::net::Ipv4Addr;

use weir_tests::{
    agent::weir_bin,
    cluster::{Cluster, EXT_IP, node_ip},
    containerd::{Containerd, HostPort},
    kube::Service,
    sock::{self, Server, any, at},
};

/// The busybox image's `httpd`, serving `/cgi-bin/who` on 8080.
const HTTPD: &[&str] = &["httpd", "-f", "-p", "0.0.0.0:8080", "-h", "/www"];

fn who(ns: &weir_tests::Netns, url: &str) -> Option<String> {
    ns.curl(url).map(|b| b.trim().to_owned())
}

#[test]
fn a_pod_of_containerd_s_cri_with_a_host_port_across_a_cluster() {
    let mut cluster = Cluster::new(2, &[]).unwrap();
    let (ia2, a2) = cluster.node_mut(2).pod("a2").unwrap();
    let _a2_server = Server::banner(cluster.node(2).pod_ns(ia2), any(7070)).unwrap();
    let node1 = cluster.node(1);
    let weir_cni = weir_bin().with_file_name("weir-cni");
    let mut containerd = Containerd::start(
        &node1.ns,
        node1.ns.name(),
        &weir_cni,
        &node1.agent.socket,
        "pods",
    );
    let ports = [HostPort {
        container_port: 8080,
        host_port: 30500,
        udp: false,
    }];
    let id = containerd
        .run_pod("web", &ports)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log()));
    // The IP containerd reports is the endpoint weir made, on the node's
    // pod CIDR, named after the pod.
    let ip: Ipv4Addr = containerd
        .pod_ip(&id)
        .unwrap()
        .parse()
        .expect("an IPv4 pod IP");
    assert!(
        ip.octets()[..3] == [10, 245, 1],
        "{ip} is not on node1's pod CIDR"
    );
    let ep = node1.agent.endpoint_json("web").expect("weir has the pod");
    assert_eq!(ep["ip"], ip.to_string());
    assert_eq!(ep["owner"]["kind"], "cni");
    containerd
        .start_container(&id, "web", &ports, HTTPD)
        .unwrap_or_else(|e| panic!("CreateContainer/StartContainer: {e}\n{}", containerd.log()));
    // The hostPort from outside, the client's own address seen; from the
    // node itself.
    let from_ext = weir_tests::eventually(std::time::Duration::from_secs(5), || {
        who(
            &cluster.ext,
            &format!("http://{}:30500/cgi-bin/who", node_ip(1)),
        )
        .filter(|b| b.starts_with("hello"))
    });
    assert_eq!(from_ext.as_deref(), Some(&*format!("hello {EXT_IP}")));
    assert!(
        who(&node1.ns, "http://127.0.0.1:30500/cgi-bin/who")
            .is_some_and(|b| b.starts_with("hello")),
        "the node's own 127.0.0.1:30500"
    );
    // Pod to pod across the nodes, both ways, with real addresses.
    let netns = ep["netns"].as_str().expect("a netns path").to_owned();
    let pod = weir_tests::Netns::attach(&format!("{}-web", node1.ns.name()), pid_in(&netns))
        .expect("the pod's namespace");
    let answer = sock::tcp_request(&pod, at(a2, 7070), b"").unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.contains(&ip.to_string()),
        "a2 saw {answer:?}, not {ip}"
    );
    assert_eq!(
        who(
            cluster.node(2).pod_ns(ia2),
            &format!("http://{ip}:8080/cgi-bin/who")
        )
        .as_deref(),
        Some(&*format!("hello {a2}"))
    );
    through_kube_proxy(&cluster, &pod, ip, (ia2, a2));
    // The agent killed and started again under the running pod, then
    // containerd restarted: the pod keeps its endpoint and its port.
    let url = format!("http://{}:30500/cgi-bin/who", node_ip(1));
    cluster.nodes[0].agent.kill();
    assert_eq!(
        who(&cluster.ext, &url).as_deref(),
        Some(&*format!("hello {EXT_IP}")),
        "no agent: the pinned datapath serves the port"
    );
    cluster.nodes[0].agent.restart();
    containerd.restart();
    assert_eq!(containerd.pod_ip(&id).unwrap(), ip.to_string());
    assert_eq!(
        who(&cluster.ext, &url).as_deref(),
        Some(&*format!("hello {EXT_IP}"))
    );
    let node1 = cluster.node(1);
    assert!(
        node1.agent.endpoint_json("web").is_some(),
        "the restarted agent kept the pod"
    );
    // CNI DEL: the endpoint and the port go.
    containerd.remove_pod(&id).unwrap();
    assert!(
        node1.agent.endpoint_json("web").is_none(),
        "weir kept the pod"
    );
    assert_eq!(
        who(
            &cluster.ext,
            &format!("http://{}:30500/cgi-bin/who", node_ip(1))
        ),
        None
    );
}

/// kube-proxy's rules on both nodes: a Service in front of the CRI's pod
/// (`pod`, `ip`; a node port too), one in front of node 2's pod `a2`.
/// Through them: a2 to the pod by its cluster IP (not masqueraded: a2 is
/// of the cluster), the pod to a2's, ext to the pod by node 2's node port;
/// and the pod out of the cluster, masqueraded as its node.
fn through_kube_proxy(
    cluster: &Cluster,
    pod: &weir_tests::Netns,
    ip: Ipv4Addr,
    (ia2, a2): (usize, Ipv4Addr),
) {
    let web_ip = Ipv4Addr::new(10, 96, 0, 30);
    let a2_ip = Ipv4Addr::new(10, 96, 0, 31);
    let service = |name: &str, cluster_ip: Ipv4Addr, node_port, to: (Ipv4Addr, u16)| Service {
        namespace: "default".to_owned(),
        name: name.to_owned(),
        port_name: "http".to_owned(),
        protocol: "tcp",
        cluster_ip: cluster_ip.into(),
        port: 80,
        node_port,
        endpoints: vec![(to.0.into(), to.1)],
    };
    let services = [
        service("web", web_ip, Some(30600), (ip, 8080)),
        service("a2", a2_ip, None, (a2, 7070)),
    ];
    for node in &cluster.nodes {
        node.kube_proxy(&services).unwrap();
    }
    assert_eq!(
        who(
            cluster.node(2).pod_ns(ia2),
            &format!("http://{web_ip}/cgi-bin/who")
        )
        .as_deref(),
        Some(&*format!("hello {a2}"))
    );
    let answer = sock::tcp_request(pod, at(a2_ip, 80), b"").unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.contains(&ip.to_string()),
        "a2 saw {answer:?}, not {ip}"
    );
    let node_port = who(
        &cluster.ext,
        &format!("http://{}:30600/cgi-bin/who", node_ip(2)),
    );
    assert_eq!(
        node_port.as_deref(),
        Some(&*format!("hello {}", node_ip(2)))
    );
    let outside = Server::banner(&cluster.ext, at(EXT_IP, 9100)).unwrap();
    let answer = sock::tcp_request(pod, at(EXT_IP, 9100), b"").unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.contains(&node_ip(1).to_string()),
        "ext saw {answer:?}"
    );
    drop(outside);
}

/// A process whose network namespace is the one at `path`.
fn pid_in(path: &str) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    let target = std::fs::metadata(path).expect("netns file");
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            && m.ino() == target.ino()
            && m.dev() == target.dev()
        {
            return pid;
        }
    }
    panic!("no process in {path}");
}
