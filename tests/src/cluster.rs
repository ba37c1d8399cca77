//! Nodes of a dual-stack Kubernetes cluster in namespaces: a `lan`
//! namespace whose bridge is the segment, `node1`…`nodeN` on it
//! (`uplink0`, `198.51.100.N/24` and `fd00:198:51:100::N/64`) each with its
//! weir agent and a dual-stack pod network (`10.245.N.0/24`,
//! `fd00:245:0:N::/64`), and `ext`, a host outside the cluster on the same
//! segment (`198.51.100.100`, `fd00:198:51:100::100`). Pods are namespaces
//! attached by the node's agent. The agents learn the nodes (each one's
//! two `InternalIP`s and two pod CIDRs) from a node list as `kubectl get
//! nodes -o json` prints it (`--cluster-nodes`, [`Cluster::new`]) or from
//! the Kubernetes API (`--kube-api`, [`Cluster::with_api`]: a stand-in
//! apiserver on `ext`, see [`crate::apiserver`]), which makes each its pod
//! network and the routes between the nodes' pod CIDRs of both families
//! (host-gw). Dropping it stops the agents and the apiserver and deletes
//! every namespace and file.

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

use crate::{Netns, agent::Agent, apiserver::ApiServer, kube, netns, world::veth_into};

/// The cluster's pod addresses (`--cluster-cidr`).
pub const CLUSTER_CIDR: &str = "10.245.0.0/16";
/// The nodes' addresses on the segment (`--node-cidr`): `.1` to `.14`,
/// not `ext`'s.
pub const NODE_CIDR: &str = "198.51.100.0/28";
/// The cluster's Service addresses (`--service-cidr`).
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The host outside the cluster, on the nodes' segment.
pub const EXT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// The cluster's IPv6 pod addresses: every node's IPv6 pod CIDR is a /64
/// of it.
pub const CLUSTER_CIDR6: &str = "fd00:245::/56";
/// The nodes' IPv6 addresses on the segment: `::1` to `::f`, not
/// `ext`'s.
pub const NODE_CIDR6: &str = "fd00:198:51:100::/124";
/// The cluster's IPv6 Service addresses.
pub const SERVICE_CIDR6: &str = "fd00:96::/112";
/// `ext`'s IPv6 address.
pub const EXT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x51, 0x100, 0, 0, 0, 0x100);
/// Every node's uplink.
pub const UPLINK: &str = "uplink0";

/// Node `n`'s address on the segment (1-based).
#[must_use]
pub fn node_ip(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, u8::try_from(n).expect("a few nodes"))
}

/// Node `n`'s IPv6 address on the segment.
#[must_use]
pub fn node_ip6(n: usize) -> Ipv6Addr {
    let n = u16::try_from(n).expect("a few nodes");
    Ipv6Addr::new(0xfd00, 0x198, 0x51, 0x100, 0, 0, 0, n)
}

/// Node `n`'s pod CIDR.
#[must_use]
pub fn pod_cidr(n: usize) -> String {
    format!("10.245.{n}.0/24")
}

/// Node `n`'s IPv6 pod CIDR.
#[must_use]
pub fn pod_cidr6(n: usize) -> String {
    format!("fd00:245:0:{n}::/64")
}

/// One node: its namespace and agent, its pods.
pub struct Node {
    // Dropped in this order: the agent, the pods, the node.
    pub agent: Agent,
    pods: Vec<Netns>,
    pub ns: Netns,
    stem: String,
}

impl Node {
    /// A pod: a namespace attached to the node's pod network as `name`;
    /// its address.
    pub fn pod(&mut self, name: &str) -> io::Result<(usize, Ipv4Addr)> {
        let ns = Netns::create(&format!("{}-{name}", self.stem))?;
        let ip = self.agent.attach("pods", &ns, name, &[]);
        self.pods.push(ns);
        Ok((self.pods.len() - 1, ip))
    }

    /// Pod `i`'s namespace.
    #[must_use]
    pub fn pod_ns(&self, i: usize) -> &Netns {
        &self.pods[i]
    }

    /// The IPv6 address of the node's pod `name`, as its agent lists it.
    #[must_use]
    pub fn pod_ip6(&self, name: &str) -> Ipv6Addr {
        let ep = self
            .agent
            .endpoint_json(name)
            .unwrap_or_else(|| panic!("no pod {name}"));
        ep["ip6"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("pod {name} has no IPv6 address: {ep}"))
    }

    /// Loads kube-proxy's rules for `services` into the node, as kube-proxy
    /// (iptables mode, one proxier a family) writes them on every node:
    /// the IPv4 Services' with `iptables-restore`, the IPv6 ones' with
    /// `ip6tables-restore`.
    pub fn kube_proxy(&self, services: &[kube::Service]) -> io::Result<()> {
        use crate::bench::netfilter::feed;
        let text = kube::rules(services, CLUSTER_CIDR);
        feed(&self.ns, "iptables-restore", &["--noflush"], &text)?;
        let text6 = kube::rules(services, CLUSTER_CIDR6);
        feed(&self.ns, "ip6tables-restore", &["--noflush"], &text6)
    }
}

/// The cluster's nodes and the host outside it.
pub struct Cluster {
    // Nodes before the apiserver they watch, both before the segment.
    pub nodes: Vec<Node>,
    /// Where the agents learn the nodes.
    pub source: Source,
    pub ext: Netns,
    pub lan: Netns,
}

/// Where the agents of a [`Cluster`] learn the nodes.
pub enum Source {
    /// `--cluster-nodes FILE`: this node list.
    File(PathBuf),
    /// `--kube-api --kubeconfig FILE`: this apiserver, on `ext`.
    Api {
        server: ApiServer,
        kubeconfig: PathBuf,
    },
}

/// Node `n` (1-based) as the API serves it: its name, pod CIDR
/// (`spec.podCIDR` and `spec.podCIDRs`) and addresses.
#[must_use]
pub fn node_object(n: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": format!("node{n}")},
        "spec": {"podCIDR": pod_cidr(n), "podCIDRs": [pod_cidr(n), pod_cidr6(n)]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": node_ip(n).to_string()},
            {"type": "InternalIP", "address": node_ip6(n).to_string()},
            {"type": "Hostname", "address": format!("node{n}")}
        ]}
    })
}

/// A `NodeList` of nodes `which` (1-based), as `kubectl get nodes -o
/// json` prints one.
#[must_use]
pub fn node_list(which: &[usize]) -> String {
    let items: Vec<serde_json::Value> = which.iter().map(|&n| node_object(n)).collect();
    serde_json::json!({"apiVersion": "v1", "kind": "NodeList", "items": items}).to_string()
}

/// The IPv4 routes weir made in `node` (`proto 87`), as `ip route` prints
/// them.
#[must_use]
pub fn weir_routes(node: &Netns) -> Vec<String> {
    routes_of_weir(node, "-4")
}

/// The IPv6 routes weir made in `node`, as `ip -6 route` prints them.
#[must_use]
pub fn weir_routes6(node: &Netns) -> Vec<String> {
    routes_of_weir(node, "-6")
}

fn routes_of_weir(node: &Netns, family: &str) -> Vec<String> {
    let out = node
        .ip(&[family, "route", "show", "proto", "87"])
        .expect("ip route");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

impl Cluster {
    /// `n` nodes, each with its agent (`--cluster-cidr`, `--node-cidr`,
    /// `--service-cidr` and `more`) and a network `pods` on its pod CIDR,
    /// the host-gw routes between them, and `ext`. The agents follow a
    /// node list file (`--cluster-nodes`).
    pub fn new(n: usize, more: &[&str]) -> io::Result<Self> {
        Self::build(n, more, false)
    }

    /// Like [`Cluster::new`], the agents following the Node objects of a
    /// stand-in apiserver on `ext` (`--kube-api --kubeconfig FILE`,
    /// `http://198.51.100.100:6443`).
    pub fn with_api(n: usize, more: &[&str]) -> io::Result<Self> {
        Self::build(n, more, true)
    }

    fn build(n: usize, more: &[&str], api: bool) -> io::Result<Self> {
        let stem = netns::unique_stem();
        let (lan, ext) = segment(&stem)?;
        let all: Vec<usize> = (1..=n).collect();
        let (source, flags) = if api {
            let addr = SocketAddr::from((EXT_IP, crate::apiserver::PORT));
            let server = ApiServer::new(&ext, addr, all.iter().map(|&i| node_object(i)).collect())?;
            let kubeconfig = std::env::temp_dir().join(format!("{stem}-kubeconfig"));
            std::fs::write(&kubeconfig, server.kubeconfig())?;
            let path = kubeconfig.to_str().expect("utf-8 path").to_owned();
            let flags = vec!["--kube-api".to_owned(), "--kubeconfig".to_owned(), path];
            (Source::Api { server, kubeconfig }, flags)
        } else {
            let file = std::env::temp_dir().join(format!("{stem}-nodes.json"));
            std::fs::write(&file, node_list(&all))?;
            let path = file.to_str().expect("utf-8 path").to_owned();
            (Source::File(file), vec!["--cluster-nodes".to_owned(), path])
        };
        // From here on, dropping the cluster removes the file.
        let mut cluster = Self {
            nodes: Vec::new(),
            source,
            ext,
            lan,
        };
        for i in 1..=n {
            let node = cluster.start_node(&stem, i, n, &flags, more)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// Node `i` of `n`: its namespace on the segment, its agent (with
    /// `flags` saying where the nodes come from, and `more`), once that has
    /// made the pod network and the routes to the `n - 1` others.
    fn start_node(
        &self,
        stem: &str,
        i: usize,
        n: usize,
        flags: &[String],
        more: &[&str],
    ) -> io::Result<Node> {
        let ns = plain_node(stem, &self.lan, i)?;
        let node_stem = format!("{stem}-n{i}");
        let name = format!("node{i}");
        let mut args = vec![
            "--uplink",
            UPLINK,
            "--no-default-network",
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--node-cidr",
            NODE_CIDR,
            "--service-cidr",
            SERVICE_CIDR,
            "--cluster-cidr",
            CLUSTER_CIDR6,
            "--node-cidr",
            NODE_CIDR6,
            "--service-cidr",
            SERVICE_CIDR6,
            "--node-name",
            &name,
        ];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(more);
        let agent = Agent::start_in(&ns, &node_stem, &args);
        // The nodes make the pod network and the routes.
        let ready = crate::eventually(std::time::Duration::from_secs(10), || {
            let nets = agent.json(&["network", "ls"]);
            let has = nets.as_array()?.iter().any(|n| n["name"] == "pods");
            let routes = weir_routes(&ns).len() == n - 1 && weir_routes6(&ns).len() == n - 1;
            (has && routes).then_some(())
        });
        if ready.is_none() {
            return Err(io::Error::other(format!(
                "node{i} made no pod network or routes from {flags:?}:\n{}",
                agent.log_text()
            )));
        }
        Ok(Node {
            agent,
            pods: Vec::new(),
            ns,
            stem: node_stem,
        })
    }

    /// Makes the nodes nodes `which` alone (a node removed, or added back
    /// as it was): the node list rewritten, or the API's Node objects
    /// deleted and added.
    pub fn set_nodes(&self, which: &[usize]) -> io::Result<()> {
        match &self.source {
            Source::File(file) => {
                // A new file put in place whole, as a writer should.
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, node_list(which))?;
                std::fs::rename(&tmp, file)
            }
            Source::Api { server, .. } => {
                for n in 1..=14 {
                    let name = format!("node{n}");
                    match (which.contains(&n), server.node(&name).is_some()) {
                        (true, false) => {
                            server.apply(node_object(n));
                        }
                        (false, true) => server.delete(&name),
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }

    /// The stand-in apiserver the agents watch ([`Cluster::with_api`]).
    #[must_use]
    pub fn api(&self) -> &ApiServer {
        match &self.source {
            Source::Api { server, .. } => server,
            Source::File(_) => panic!("this cluster's nodes come from a file"),
        }
    }

    /// Node `n` (1-based).
    #[must_use]
    pub fn node(&self, n: usize) -> &Node {
        &self.nodes[n - 1]
    }

    /// Node `n` (1-based), to add pods.
    pub fn node_mut(&mut self, n: usize) -> &mut Node {
        &mut self.nodes[n - 1]
    }
}

/// The segment: `lan` (its bridge `br0`) and `ext` on it, named after
/// `stem`.
pub fn segment(stem: &str) -> io::Result<(Netns, Netns)> {
    let lan = Netns::create(&format!("{stem}-lan"))?;
    lan.ip(&["link", "add", "br0", "type", "bridge"])?;
    lan.ip(&["link", "set", "br0", "up"])?;
    let ext = Netns::create(&format!("{stem}-ext"))?;
    plug(&lan, "ext", &ext, (EXT_IP, EXT_IP6), "eth0")?;
    Ok((lan, ext))
}

/// Node `i` (1-based) on the segment, as a cluster's node is before its
/// CNI: its uplink, its default route via `ext`, forwarding on, and
/// netfilter seeing bridged packets (kube-proxy's answers between pods of
/// one bridge; what clusters load `br_netfilter` for).
pub fn plain_node(stem: &str, lan: &Netns, i: usize) -> io::Result<Netns> {
    let ns = Netns::create(&format!("{stem}-node{i}"))?;
    plug(
        lan,
        &format!("n{i}"),
        &ns,
        (node_ip(i), node_ip6(i)),
        UPLINK,
    )?;
    ns.ip(&["route", "add", "default", "via", &EXT_IP.to_string()])?;
    ns.ip(&["-6", "route", "add", "default", "via", &EXT_IP6.to_string()])?;
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    ns.sysctl("net.bridge.bridge-nf-call-iptables", "1")?;
    ns.sysctl("net.bridge.bridge-nf-call-ip6tables", "1")?;
    Ok(ns)
}

/// A veth from `ns` (`name` inside, `ip/24` and `ip6/64` without
/// duplicate address detection, up) to port `port` of the segment's
/// bridge.
fn plug(
    lan: &Netns,
    port: &str,
    ns: &Netns,
    (ip, ip6): (Ipv4Addr, Ipv6Addr),
    name: &str,
) -> io::Result<()> {
    veth_into(lan, port, ns)?;
    if name != "eth0" {
        ns.ip(&["link", "set", "eth0", "name", name])?;
    }
    lan.ip(&["link", "set", port, "master", "br0", "up"])?;
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", name])?;
    ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{ip6}/64"),
        "dev",
        name,
        "nodad",
    ])?;
    ns.ip(&["link", "set", name, "up"])?;
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let file = match &self.source {
            Source::File(file) => file,
            Source::Api { kubeconfig, .. } => kubeconfig,
        };
        let _ = std::fs::remove_file(file);
    }
}
