//! `weir agent`: the daemon.

use std::{path::Path, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Args;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::Mutex,
};
use tracing::info;

use crate::{
    api::server,
    daemon::{Agent, Config, DEFAULT_SNAT_PORTS, cleanup},
    datapath::XdpChoice,
    error::Chain,
    logs::LogFormat,
    network::{NetworkSpec, Subnet},
    paths::{DEFAULT_BPFFS, DEFAULT_DOCKER_SOCKET, DEFAULT_STATE_DIR, Paths},
    publish::PortRange,
};

/// The default network's name; its bridge is `weir0`.
pub const DEFAULT_NETWORK: &str = crate::daemon::DEFAULT_NETWORK;
/// The default network's subnet: clear of Docker's 172.17/16 and Podman's
/// 10.88/16.
pub const DEFAULT_SUBNET: &str = "10.203.0.0/16";

#[derive(Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches, each its own flag"
)]
pub struct AgentArgs {
    /// The uplink(s) (default: the device of the default route).
    #[arg(long = "uplink")]
    uplinks: Vec<String>,
    /// Where the desired state is kept.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The bpffs directory for pinned maps, links and programs.
    #[arg(long, default_value = DEFAULT_BPFFS)]
    bpffs: PathBuf,
    /// Do not create the default network on first start.
    #[arg(long)]
    no_default_network: bool,
    /// The default network's subnet.
    #[arg(long, default_value = DEFAULT_SUBNET)]
    default_subnet: Subnet,
    /// Where a network created without `--subnet` gets one, as dockerd's
    /// flag: `base=CIDR,size=N`, repeatable, tried in order (default:
    /// Docker's, 172.17.0.0/16 to 172.31.0.0/16, then 192.168.0.0/16 in /20s).
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    default_address_pools: Vec<crate::network::Pool>,
    /// Where names the networks' DNS does not know are asked
    /// (`IP[:PORT]`, repeatable; default: `/etc/resolv.conf`'s nameservers).
    #[arg(long = "dns-forward", value_name = "ADDR", value_parser = dns_server)]
    dns_forward: Vec<std::net::SocketAddr>,
    /// The cgroup v2 directory for the socket hooks (default: the root of
    /// the cgroup2 mount, so every process's connections are seen).
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// The ports masquerade uses, outside the node's `ip_local_port_range`.
    #[arg(long, default_value = DEFAULT_SNAT_PORTS)]
    snat_ports: PortRange,
    /// XDP on the uplinks: `auto` (native where the driver has it, else
    /// none), `native` (refused without it) or `off` (tc does everything).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    xdp: XdpChoice,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (off by default).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Follow the Docker engine on SOCKET (default
    /// `unix:///var/run/docker.sock`): its bridge networks, containers and
    /// published ports become weir's (start dockerd with `"iptables":
    /// false`, `"ip6tables": false`, `"userland-proxy": false`).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1,
          default_missing_value = DEFAULT_DOCKER_SOCKET, value_parser = docker_socket)]
    docker: Option<PathBuf>,
    /// Let this group use the API socket (mode 0660, owned by root and
    /// GROUP, a name or a number): its members can do anything weir can,
    /// as root can (default: root alone).
    #[arg(long, value_name = "GROUP", value_parser = group_id)]
    socket_group: Option<u32>,
    /// How the agent logs: `auto` (the journal under systemd, else
    /// `text`), `journald` (the journal's native protocol: priorities and
    /// fields), `text` (lines on stderr, coloured on a terminal; under
    /// systemd each with its priority as `<N>` and no timestamp) or `json`
    /// (one object a line on stderr, for log collectors).
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    log_format: LogFormat,
    /// Start over: take a missing state file for an empty state even though
    /// weir's bridges and veths are on the node (they are removed); a
    /// state file that cannot be read is moved aside (`state.broken.json`).
    #[arg(long, conflicts_with = "restore_state")]
    reset: bool,
    /// Start from the last good copy of the state (`state.last-good.json`,
    /// written after the state file at each save): the way back from a
    /// state file lost or broken.
    #[arg(long)]
    restore_state: bool,
    /// Record every packet from or to this IPv4 address at every hook it
    /// meets, as it came and as it left, with the verdict; `weir monitor`
    /// shows the records (off by default: then a packet pays one map read
    /// per hook).
    #[arg(long, value_name = "ADDR")]
    trace: Option<std::net::Ipv4Addr>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Do not run: take weir off this node (the agent must be stopped).
    /// Removes every pin under --bpffs (which detaches the programs), the
    /// bridges and veths weir made, `weir run` namespaces, and the state.
    #[arg(long)]
    cleanup: bool,
}

/// The Kubernetes cluster the node is in.
#[derive(clap::Args, Debug)]
struct ClusterArgs {
    /// The Kubernetes cluster's pod addresses (repeatable or
    /// comma-separated as kube-controller-manager takes them, IPv4 and
    /// IPv6: one of each in a dual-stack cluster): traffic between them and
    /// this node's containers is neither masqueraded nor refused as
    /// unsolicited (ip-masq-agent's `nonMasqueradeCIDRs`).
    #[arg(long = "cluster-cidr", value_name = "CIDR", value_delimiter = ',')]
    pods: Vec<crate::network::Cidr>,
    /// The cluster's node addresses (repeatable or comma-separated, IPv4
    /// and IPv6): like its pods.
    #[arg(long = "node-cidr", value_name = "CIDR", value_delimiter = ',')]
    nodes: Vec<crate::network::Cidr>,
    /// The cluster's Service addresses (repeatable or comma-separated,
    /// IPv4 and IPv6): a container's packets to them go through the node's
    /// stack, where kube-proxy's rules (iptables and ip6tables) translate
    /// them, never past it.
    #[arg(long = "service-cidr", value_name = "CIDR", value_delimiter = ',')]
    services: Vec<crate::network::Cidr>,
    /// The cluster's nodes, a `NodeList` as `kubectl get nodes -o json`
    /// prints it (for clusters whose API the agent does not read): each
    /// other node's pod CIDRs are routed via its `InternalIP` of their
    /// family, this node's are the network `pods` (dual stack when it has
    /// one of each); read again whenever the file changes.
    #[arg(long = "cluster-nodes", value_name = "FILE")]
    nodes_file: Option<std::path::PathBuf>,
    /// The cluster's nodes from the Kubernetes API: its Node objects,
    /// listed then watched (RBAC: get, list, watch on nodes), routed as
    /// `--cluster-nodes` routes a file's, as nodes come, change and go.
    /// Credentials: `--kubeconfig FILE`, else as kubectl finds them
    /// (`KUBECONFIG`, else `~/.kube/config`), else in a pod its service
    /// account (`KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, the
    /// token and CA under /var/run/secrets/kubernetes.io/serviceaccount).
    #[arg(long = "kube-api", conflicts_with = "nodes_file")]
    kube_api: bool,
    /// The kubeconfig `--kube-api` uses (its current context).
    #[arg(long, value_name = "FILE", requires = "kube_api")]
    kubeconfig: Option<std::path::PathBuf>,
    /// This node's name among them (default: the host name).
    #[arg(long = "node-name", value_name = "NAME")]
    node_name: Option<String>,
}

impl From<ClusterArgs> for crate::daemon::Cluster {
    fn from(a: ClusterArgs) -> Self {
        Self {
            pods: a.pods,
            nodes: a.nodes,
            services: a.services,
            node_name: a.node_name.unwrap_or_else(host_name),
        }
    }
}

/// Where the cluster's nodes come from.
enum NodesFrom {
    File(std::path::PathBuf),
    Api(::kube::Client),
}

impl ClusterArgs {
    /// Where the nodes come from; a client of the API is made here, so
    /// that credentials that cannot be had refuse the start.
    async fn nodes_from(&self) -> anyhow::Result<Option<NodesFrom>> {
        if let Some(path) = &self.nodes_file {
            return Ok(Some(NodesFrom::File(path.clone())));
        }
        if !self.kube_api {
            return Ok(None);
        }
        let client = crate::kube::client(self.kubeconfig.as_deref())
            .await
            .context("--kube-api")?;
        Ok(Some(NodesFrom::Api(client)))
    }
}

/// Starts the followers of the engines and sources the agent was told of:
/// Docker's API, the cluster's nodes.
fn follow(agent: &Arc<Mutex<Agent>>, docker: Option<std::path::PathBuf>, nodes: Option<NodesFrom>) {
    if let Some(docker) = docker {
        info!(socket = %docker.display(), "following Docker");
        tokio::spawn(crate::docker::follow(
            crate::docker::api::Client::new(docker),
            agent.clone(),
        ));
    }
    match nodes {
        Some(NodesFrom::File(path)) => {
            info!(file = %path.display(), "following the cluster's nodes");
            tokio::spawn(crate::kube::follow_file(path, agent.clone()));
        }
        Some(NodesFrom::Api(client)) => {
            info!("following the cluster's nodes in the Kubernetes API");
            tokio::spawn(crate::kube::follow_api(client, agent.clone()));
        }
        None => {}
    }
}

/// The host's name (`uname -n`), a Kubernetes node's default name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// How often the agent refreshes the node's addresses.
const TICK: std::time::Duration = std::time::Duration::from_secs(2);
/// Every how many ticks it sweeps conntrack.
const SWEEP_EVERY: u32 = 5;

impl AgentArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let logs = crate::logs::init(self.log_format);
        match self.run(socket).await {
            // The journal takes the last error with its priority; on the
            // journal's stream, the CLI's line would say it again.
            Err(e) if logs.journal() => {
                tracing::error!("{}", Chain(&*e));
                if logs.stderr_is_journal {
                    Ok(ExitCode::FAILURE)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    async fn run(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let paths = Paths {
            socket: socket.to_owned(),
            state_dir: self.state_dir,
            bpffs: self.bpffs,
        };
        if self.cleanup {
            for line in cleanup(&paths).await? {
                println!("removed {line}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Before anything is changed, so bad credentials change nothing.
        let nodes = self.cluster.nodes_from().await?;
        let config = Config {
            paths,
            uplinks: self.uplinks,
            default_network: (!self.no_default_network)
                .then(|| NetworkSpec::new(DEFAULT_NETWORK, self.default_subnet)),
            cgroup: self.cgroup,
            snat_ports: self.snat_ports,
            xdp: self.xdp,
            reset: self.reset,
            restore_state: self.restore_state,
            trace: self.trace,
            cluster: self.cluster.into(),
            dns_forward: if self.dns_forward.is_empty() {
                crate::dns::resolvers(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                )
            } else {
                self.dns_forward
            },
            pools: if self.default_address_pools.is_empty() {
                crate::network::Pool::defaults()
            } else {
                self.default_address_pools
            },
        };
        let listener = server::bind(socket, self.socket_group).await?;
        // Bound before anything is changed, so a bad address changes nothing.
        let metrics = match self.metrics {
            Some(addr) => Some((
                addr,
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics address {addr}"))?,
            )),
            None => None,
        };
        // Subscribed before the agent looks at the uplinks, so that no
        // change between its look and the subscription is missed.
        let host_changes = crate::netlink::watch::Watch::open()?;
        let agent = match Agent::start(config).await {
            Ok(agent) => agent,
            Err(e) => {
                // Refused: nothing is left that says an agent runs here.
                let _ = std::fs::remove_file(socket);
                return Err(e.into());
            }
        };
        let status = agent.status();
        // Under systemd (`Type=notify`): the datapath is loaded and the API
        // is about to serve (its socket is bound, requests queue there).
        if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
            tracing::warn!("telling systemd the agent is ready: {}", Chain(&e));
        }
        info!(
            socket = %socket.display(),
            networks = status.networks,
            endpoints = status.endpoints,
            uplinks = ?status.uplinks,
            "agent ready"
        );
        let agent = Arc::new(Mutex::new(agent));
        tokio::spawn(periodic(agent.clone()));
        tokio::spawn(crate::daemon::follow_host(agent.clone(), host_changes));
        follow(&agent, self.docker, nodes);
        if let Some((addr, listener)) = metrics {
            info!(%addr, "serving Prometheus metrics at /metrics");
            let metrics = server::metrics_router(agent.clone());
            tokio::spawn(async move { axum::serve(listener, metrics).await });
        }
        let app = server::router(agent);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        crate::api::serve::serve(listener, app, async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await?;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        let _ = std::fs::remove_file(socket);
        info!(
            "agent stopped; the datapath stays attached and forwarding (pinned), bridges, veths and state stay for the next start"
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// A group by name (`/etc/group`, NSS) or number.
fn group_id(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(s).map_err(|_| format!("`{s}` is not a group name"))?;
    let mut group = std::mem::MaybeUninit::<libc::group>::uninit();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is to memory of ours of the size given; the
    // answer points into `group` and `buf`, read before they go.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            group.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &raw mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(format!("no group `{s}` on this node"));
    }
    // SAFETY: `getgrnam_r` filled `group` (found is not null).
    Ok(unsafe { group.assume_init() }.gr_gid)
}

/// `IP` (port 53) or `IP:PORT` (`[IPV6]:PORT`).
fn dns_server(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| format!("`{s}` is not IP or IP:PORT"))
}

/// `unix:///var/run/docker.sock` or a plain path.
fn docker_socket(s: &str) -> Result<PathBuf, String> {
    let path = s.strip_prefix("unix://").unwrap_or(s);
    if path.is_empty() || s.contains("://") && !s.starts_with("unix://") {
        return Err(format!(
            "`{s}` is not a Unix socket: give a path or unix:///path (Docker's -H form)"
        ));
    }
    Ok(PathBuf::from(path))
}

/// The agent's periodic work, between API requests.
async fn periodic(agent: Arc<Mutex<Agent>>) {
    let mut interval = tokio::time::interval(TICK);
    for n in 1u32.. {
        interval.tick().await;
        if let Err(e) = agent.lock().await.tick(n % SWEEP_EVERY == 0).await {
            tracing::warn!("periodic work failed: {}", Chain(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        cluster: ClusterArgs,
    }

    /// Each range flag takes both families, repeated or comma-separated
    /// (kube-controller-manager's dual-stack `--cluster-cidr` as it is).
    #[test]
    fn the_cluster_ranges_take_both_families() {
        let flags = Flags::try_parse_from([
            "weir",
            "--cluster-cidr",
            "10.245.0.0/16,fd00:245::/56",
            "--node-cidr",
            "198.51.100.0/28",
            "--node-cidr",
            "fd00:198:51:100::/124",
            "--service-cidr",
            "fd00:96::/112",
        ])
        .unwrap();
        let text =
            |v: &[crate::network::Cidr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            text(&flags.cluster.pods),
            ["10.245.0.0/16", "fd00:245::/56"]
        );
        assert_eq!(
            text(&flags.cluster.nodes),
            ["198.51.100.0/28", "fd00:198:51:100::/124"]
        );
        let cluster = crate::daemon::Cluster::from(flags.cluster);
        let v6 = cluster.entries().iter().filter(|e| e.0.is_ipv6()).count();
        assert_eq!((cluster.entries().len(), v6), (5, 3));
        assert!(Flags::try_parse_from(["weir", "--cluster-cidr", "fd00::1/64"]).is_err());
    }
}
