//! The cluster row: two nodes of a Kubernetes cluster on one segment, the
//! host-gw routes between their pod CIDRs and kube-proxy's iptables rules
//! (`crate::kube`) on each, a client pod on node 1 and a server pod on
//! node 2, wired two ways:
//!
//! - R, the reference CNI plugins (Debian's `containernetworking-plugins`:
//!   `bridge` with `host-local`, then `portmap`, the chain of containerd's
//!   example conflist, with `ipMasq` off and ip-masq-agent's one rule,
//!   so that pods see each other's addresses), the routes added as
//!   flannel's host-gw adds them;
//! - K, weir in cluster mode (`crate::cluster`'s bed: its agents make the
//!   routes from the node list).
//!
//! Measured: pod to pod across the nodes, and pod to a cluster IP whose
//! backend is that pod on the other node, request/response and new
//! connections.

use std::{
    fmt::Write as _,
    io,
    net::{Ipv4Addr, SocketAddrV4},
    path::PathBuf,
};

use super::{
    Better, Metric, Options, RR_CPU, Results, Setup,
    load::{self, Mode, Server},
};
use crate::{
    Netns,
    cluster::{self, CLUSTER_CIDR, Cluster, node_ip, pod_cidr},
    kube, netns,
};

/// The setups of the cluster comparison.
pub const SETUPS: [Setup; 2] = [Setup::ClusterReference, Setup::ClusterWeir];

/// The server pod's echo port.
const ECHO_PORT: u16 = 7000;
/// The Service in front of it.
const SERVICE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 20), 80);
/// Debian's reference plugins.
const CNI_BIN: &str = "/usr/lib/cni";

/// The nodes, by the way they are wired.
enum Nodes {
    Weir(Cluster),
    Reference(Reference),
}

pub struct ClusterBed {
    pub setup: Setup,
    // The server goes before the namespaces it serves in.
    pub echo: Server,
    server_ip: Ipv4Addr,
    nodes: Nodes,
}

impl ClusterBed {
    pub fn new(setup: Setup) -> io::Result<Self> {
        let (nodes, server_ip) = match setup {
            Setup::ClusterWeir => {
                let mut c = Cluster::new(2, &[])?;
                c.node_mut(1).pod("client")?;
                let (_, server_ip) = c.node_mut(2).pod("server")?;
                (Nodes::Weir(c), server_ip)
            }
            Setup::ClusterReference => {
                let mut r = Reference::new(2)?;
                r.pod(1, "client")?;
                let server_ip = r.pod(2, "server")?;
                (Nodes::Reference(r), server_ip)
            }
            other => return Err(io::Error::other(format!("{other:?} is not a cluster"))),
        };
        let service = kube::Service {
            namespace: "default".to_owned(),
            name: "echo".to_owned(),
            port_name: String::new(),
            protocol: "tcp",
            cluster_ip: (*SERVICE.ip()).into(),
            port: SERVICE.port(),
            node_port: None,
            endpoints: vec![(server_ip.into(), ECHO_PORT)],
        };
        let text = kube::rules(&[service], CLUSTER_CIDR);
        let node_list: Vec<&Netns> = match &nodes {
            Nodes::Weir(c) => c.nodes.iter().map(|n| &n.ns).collect(),
            Nodes::Reference(r) => r.nodes.iter().collect(),
        };
        for node in node_list {
            super::netfilter::feed(node, "iptables-restore", &["--noflush"], &text)?;
        }
        let echo = Server::start(server_of(&nodes), ECHO_PORT, Mode::Echo)?;
        let bed = Self {
            setup,
            echo,
            server_ip,
            nodes,
        };
        for (k, v) in [
            ("net.ipv4.tcp_tw_reuse", "1"),
            ("net.ipv4.ip_local_port_range", "10000 65000"),
        ] {
            bed.client().sysctl(k, v)?;
        }
        Ok(bed)
    }

    /// The client pod, on node 1.
    #[must_use]
    pub fn client(&self) -> &Netns {
        match &self.nodes {
            Nodes::Weir(c) => c.node(1).pod_ns(0),
            Nodes::Reference(r) => &r.pods[0],
        }
    }

    /// The server pod's echo, by its own address.
    #[must_use]
    pub fn pod_target(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.server_ip, ECHO_PORT)
    }

    /// The same echo through its Service's cluster IP.
    #[must_use]
    pub const fn service_target() -> SocketAddrV4 {
        SERVICE
    }
}

/// The server pod, on node 2.
fn server_of(nodes: &Nodes) -> &Netns {
    match nodes {
        Nodes::Weir(c) => c.node(2).pod_ns(0),
        Nodes::Reference(r) => &r.pods[1],
    }
}

/// The nodes wired with the reference plugins: the same segment, nodes,
/// addresses and `ext` as [`Cluster`], no agent. Dropping it deletes the
/// namespaces and host-local's store.
pub struct Reference {
    // Pods before the nodes, the nodes before the segment.
    pods: Vec<Netns>,
    nodes: Vec<Netns>,
    _ext: Netns,
    _lan: Netns,
    stem: String,
    /// host-local's store (`dataDir`), not the machine's.
    dir: PathBuf,
}

impl Reference {
    /// `n` nodes, each with host-gw routes to the others' pod CIDRs and
    /// ip-masq-agent's masquerade of what leaves the cluster.
    pub fn new(n: usize) -> io::Result<Self> {
        let stem = netns::unique_stem();
        let dir = std::env::temp_dir().join(format!("{stem}-cni"));
        let (lan, ext) = cluster::segment(&stem)?;
        let mut nodes = Vec::new();
        for i in 1..=n {
            let ns = cluster::plain_node(&stem, &lan, i)?;
            for j in (1..=n).filter(|&j| j != i) {
                ns.ip(&["route", "add", &pod_cidr(j), "via", &node_ip(j).to_string()])?;
            }
            let masq = format!(
                "*nat\n-A POSTROUTING -s {} ! -d {CLUSTER_CIDR} -m addrtype ! --dst-type LOCAL \
                 -m comment --comment ip-masq-agent -j MASQUERADE\nCOMMIT\n",
                pod_cidr(i)
            );
            super::netfilter::feed(&ns, "iptables-restore", &["--noflush"], &masq)?;
            nodes.push(ns);
        }
        Ok(Self {
            pods: Vec::new(),
            nodes,
            _ext: ext,
            _lan: lan,
            stem,
            dir,
        })
    }

    /// A pod on node `n` (1-based), wired by `bridge` (with `host-local`)
    /// and `portmap` as a CRI runtime runs the chain: its address.
    pub fn pod(&mut self, n: usize, name: &str) -> io::Result<Ipv4Addr> {
        let pod = Netns::create(&format!("{}-{name}", self.stem))?;
        let node = &self.nodes[n - 1];
        let bridge = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": pod_cidr(n)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.dir.join(format!("node{n}")),
            }
        });
        let result = cni_add(node, &pod, name, "bridge", &bridge)?;
        let portmap = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "prevResult": result,
        });
        let result = cni_add(node, &pod, name, "portmap", &portmap)?;
        let ip = result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no address in {result}")))?;
        self.pods.push(pod);
        Ok(ip)
    }
}

/// Runs CNI plugin `plugin`'s ADD in `node` for `pod`: its result.
fn cni_add(
    node: &Netns,
    pod: &Netns,
    id: &str,
    plugin: &str,
    conf: &serde_json::Value,
) -> io::Result<serde_json::Value> {
    use std::io::Write as _;
    let mut child = node
        .command(&format!("{CNI_BIN}/{plugin}"))
        .envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", id),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", CNI_BIN),
        ])
        .env("CNI_NETNS", pod.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{plugin} ADD failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_str(&text).map_err(|e| io::Error::other(format!("{plugin}: {e}: {text}")))
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The figures of the cluster row, in the order [`rounds`] fills them.
fn metrics() -> Vec<Metric> {
    let m = |id: &str, title: &str, unit, better| Metric::new(id, title, unit, better);
    vec![
        m(
            "cluster_rr_pod",
            "pod to pod on another node, 1-byte TCP_RR",
            "trans/s",
            Better::Higher,
        ),
        m(
            "cluster_crr_pod",
            "pod to pod on another node, TCP_CRR",
            "conn/s",
            Better::Higher,
        ),
        m(
            "cluster_rr_svc",
            "pod to ClusterIP (backend on another node), 1-byte TCP_RR",
            "trans/s",
            Better::Higher,
        ),
        m(
            "cluster_crr_svc",
            "pod to ClusterIP (backend on another node), TCP_CRR",
            "conn/s",
            Better::Higher,
        ),
        m(
            "cluster_crr_svc_cpu",
            "kernel CPU per connection to the ClusterIP",
            "us",
            Better::Lower,
        ),
    ]
}

/// R and K, interleaved round by round.
pub fn rounds(opts: &Options) -> io::Result<Vec<Metric>> {
    eprintln!("bench: building the two clusters");
    let beds = SETUPS
        .iter()
        .map(|&s| ClusterBed::new(s))
        .collect::<io::Result<Vec<_>>>()?;
    for b in &beds {
        for to in [b.pod_target(), ClusterBed::service_target()] {
            if load::rr(b.client(), to, 0.05, None).transactions == 0 {
                return Err(io::Error::other(format!(
                    "{}: no answer from {to}",
                    b.setup.label()
                )));
            }
        }
    }
    let mut m = metrics();
    for round in 0..opts.rounds {
        eprintln!("bench: cluster round {}/{}", round + 1, opts.rounds);
        for i in 0..beds.len() {
            let b = &beds[(i + round as usize) % beds.len()];
            let s = b.setup;
            for (k, to) in [(0, b.pod_target()), (2, ClusterBed::service_target())] {
                b.echo.pin(Some(RR_CPU));
                let rr = load::rr(b.client(), to, opts.secs, Some(RR_CPU));
                b.echo.pin(None);
                let crr = load::crr(b.client(), to, opts.secs, opts.crr_workers);
                m[k].add(s, rr.per_sec, rr.errors);
                m[k + 1].add(s, crr.per_sec, crr.errors);
                if k == 2 {
                    m[4].add(s, crr.kernel_us, 0);
                }
            }
        }
    }
    Ok(m)
}

/// K against R as a Markdown table.
#[must_use]
pub fn table(r: &Results) -> String {
    super::report::pair_table(&r.cluster, "R", "K")
}

/// The cluster row's part of the report.
pub fn text(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "\nA Kubernetes cluster: two nodes on one segment, host-gw routes between \
         their pod CIDRs, kube-proxy's iptables rules for a Service, a client pod \
         on node 1, its server on node 2 (reached by its address and through the \
         ClusterIP), {} rounds, interleaved. Above 1 means weir is ahead:\n",
        r.options.rounds
    );
    for (k, label) in &r.cluster_setups {
        let _ = writeln!(
            s,
            "- {k}: {}",
            label.trim_start_matches(|c| c != ' ').trim()
        );
    }
    s.push('\n');
    s.push_str(&table(r));
}
