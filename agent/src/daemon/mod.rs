//! The agent itself: owns the desired state, the bridges and veths, and the
//! datapath, and reconciles the kernel to the state on start.

mod allow;
mod attach;
mod cleanup;
mod cluster;
mod cni;
mod conntrack;
mod endpoint;
mod foreign;
mod forwarding;
mod maps;
mod netavark;
mod networks;
mod publish;
mod runtime;
mod state;
mod stats;
mod uplinks;

use std::{collections::HashMap, fs, path::PathBuf};

use tracing::{debug, info, warn};
use weir_common::publish::{PublishKey, PublishKey6};

pub use self::{
    cleanup::cleanup,
    cluster::POD_NETWORK,
    conntrack::monotonic_ns,
    endpoint::{Entry, Plumbing},
    state::{Change, State},
    stats::prometheus,
    uplinks::follow_host,
};
use crate::{
    api::types::{Endpoint, Status},
    datapath::{Datapath, MapOrigin, XdpChoice},
    error::{AgentError, Chain},
    monitor::{Hub, MonitorEvent},
    mounts,
    netlink::Netlink,
    network::{NetworkError, NetworkSpec},
    paths::Paths,
    publish::{PortRange, Reservations},
    state as store,
};

/// How the agent was started.
#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Paths,
    /// `--uplink`; empty: the device of the default route.
    pub uplinks: Vec<String>,
    /// The default network to make on first start (`None`:
    /// `--no-default-network`).
    pub default_network: Option<NetworkSpec>,
    /// The cgroup (v2) the socket programs attach to; `None`: the root of
    /// the cgroup2 mount, which covers every process.
    pub cgroup: Option<PathBuf>,
    /// The ports masquerade uses (`--snat-ports`); they must lie outside
    /// the node's `ip_local_port_range`.
    pub snat_ports: PortRange,
    /// Whether and how `xdp_from_uplink` runs on the uplinks (`--xdp`).
    pub xdp: XdpChoice,
    /// Where a network created without a subnet gets one
    /// (`--default-address-pool`), in order.
    pub pools: Vec<crate::network::Pool>,
    /// Where the networks' DNS asks the names it does not know
    /// (`--dns-forward`).
    pub dns_forward: Vec<std::net::SocketAddr>,
    /// `--restore-state`: put the last good copy of the state back first.
    pub restore_state: bool,
    /// `--reset`: start from an empty state even though weir's bridges
    /// and veths are there (they are removed).
    pub reset: bool,
    /// `--trace`: the IPv4 address whose packets every hook records
    /// (`weir monitor` shows them).
    pub trace: Option<std::net::Ipv4Addr>,
    /// The Kubernetes cluster the node is in, if any.
    pub cluster: Cluster,
}

/// The address ranges of the Kubernetes cluster a node is in
/// (`--cluster-cidr`, `--node-cidr`, `--service-cidr`, each of either
/// family), written to `CLUSTER4` and `CLUSTER6`; all empty off a cluster.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub pods: Vec<crate::network::Cidr>,
    pub nodes: Vec<crate::network::Cidr>,
    pub services: Vec<crate::network::Cidr>,
    /// This node's name among the cluster's nodes (`--node-name`).
    pub node_name: String,
}

impl Cluster {
    /// `CLUSTER4`'s and `CLUSTER6`'s entries: (range address, prefix,
    /// `CLUSTER_*` flags), the flags of one range given twice or-ed
    /// together.
    #[must_use]
    pub fn entries(&self) -> Vec<(std::net::IpAddr, u8, u32)> {
        use weir_common::network::{CLUSTER_NODES, CLUSTER_PODS, CLUSTER_SERVICES};
        let mut out: Vec<(std::net::IpAddr, u8, u32)> = Vec::new();
        let all = [
            (&self.pods, CLUSTER_PODS),
            (&self.nodes, CLUSTER_NODES),
            (&self.services, CLUSTER_SERVICES),
        ];
        for (subnets, flag) in all {
            for s in subnets {
                let at = (s.network(), s.prefix());
                match out.iter_mut().find(|(a, p, _)| (*a, *p) == at) {
                    Some(e) => e.2 |= flag,
                    None => out.push((at.0, at.1, flag)),
                }
            }
        }
        out
    }
}

/// The default network's name: it has no names (Docker's rule for its
/// default bridge).
pub const DEFAULT_NETWORK: &str = "weir";

/// Changes the journal holds before the state file is written afresh.
const JOURNAL_MAX: usize = 256;

/// The default `--snat-ports`: below Linux's default
/// `ip_local_port_range` (32768-60999), above the privileged ports.
pub const DEFAULT_SNAT_PORTS: &str = "1024-32767";

pub struct Agent {
    config: Config,
    state: State,
    /// Changes since the state file was last written.
    journal: store::Journal,
    /// What `OPEN_PORTS4` and `OPEN_PORTS6` were last set to (`None`: not
    /// yet by this agent).
    open_ports: Option<OpenPorts>,
    /// The interfaces the uplink programs are attached to now.
    uplinks: Vec<String>,
    /// Why they are these (`weir status`).
    uplinks_why: String,
    /// The uplinks' addresses masquerade uses now (`UPLINKS`, `UPLINKS6`).
    masquerade_addrs: Vec<std::net::IpAddr>,
    nl: Netlink,
    datapath: Datapath,
    /// The sockets that hold published host ports.
    reservations: Reservations,
    /// Drop events for `weir monitor`.
    monitor: Hub,
    /// The `--bpffs` directory as this process reaches it (held open when
    /// it is another mount namespace's).
    pins: mounts::Reached,
    /// The cgroup the socket programs are attached to.
    cgroup: mounts::Reached,
    /// The networks' names, answered at their gateways.
    dns: crate::dns::Dns,
}

/// `OPEN_PORTS4`'s and `OPEN_PORTS6`'s entries, as last written.
type OpenPorts = (Vec<(PublishKey, u32)>, Vec<(PublishKey6, u32)>);

impl Agent {
    /// Loads the state, prepares the node (bpffs, forwarding), loads the
    /// datapath and reconciles the kernel to the state.
    pub async fn start(config: Config) -> Result<Self, AgentError> {
        let nl = Netlink::connect()?;
        let mut state = load_state(&config)?;
        if !config.reset {
            refuse_lost_state(&nl, &config.paths).await?;
        }
        // A named uplink must be there at start (a typo is refused); one
        // that goes later is attached again when it comes back.
        for name in &config.uplinks {
            nl.require_index(name).await?;
        }
        check_snat_ports(config.snat_ports)?;
        let pins = mounts::bpffs(&config.paths.bpffs)?;
        let cgroup = mounts::cgroup2(config.cgroup.as_deref())?;
        raise_fd_limit();
        forwarding::enable_ipv4()?;
        let (mut datapath, origins) =
            Datapath::open(&config.paths.with_pin_root(&pins.path).pin_dirs())?;
        log_map_origins(&origins);
        let monitor = Hub::default();
        monitor
            .spawn_reader(datapath.take_events()?)
            .map_err(AgentError::io("polling the drop event ring".to_owned()))?;
        datapath.configure((config.snat_ports.start(), config.snat_ports.end()))?;
        datapath.set_cluster(&config.cluster.entries())?;
        if !config.cluster.entries().is_empty() {
            info!(pods = ?config.cluster.pods, nodes = ?config.cluster.nodes,
                services = ?config.cluster.services, "in a Kubernetes cluster");
        }
        if let Some(addr) = config.trace {
            crate::trace::spawn_reader(datapath.ebpf_mut(), monitor.sender())
                .map_err(AgentError::Trace)?;
            datapath.set_trace(Some(addr))?;
            info!(address = %addr, "tracing its packets through every hook (weir monitor shows them)");
        }
        datapath.attach_sockets(&cgroup.path)?;
        if let Some(spec) = &config.default_network
            && !state.initialized
        {
            let network = state.registry.plan(spec)?;
            state.registry.insert(network);
        }
        state.initialized = true;
        let journal = store::Journal::new(config.paths.journal_file());
        let dns_forward = config.dns_forward.clone();
        let mut agent = Self {
            config,
            state,
            journal,
            open_ports: None,
            uplinks: Vec::new(),
            uplinks_why: uplinks::why_none(),
            masquerade_addrs: Vec::new(),
            nl,
            datapath,
            reservations: Reservations::default(),
            monitor,
            pins,
            cgroup,
            dns: crate::dns::Dns::new(dns_forward),
        };
        agent.follow_uplinks().await?;
        if agent.uplinks.is_empty() {
            warn!("{}", uplinks::NO_UPLINK);
        }
        agent.reconcile().await?;
        agent.sync_networks()?;
        agent.sync_open_ports()?;
        agent.sync_allow()?;
        agent.refresh_host_addrs().await?;
        agent.prune().await?;
        agent.save()?;
        Ok(agent)
    }

    /// After reconcile: removes what the pinned maps and links still hold
    /// of endpoints and publications the state no longer has (an agent
    /// that died between a kernel change and saving its state).
    async fn prune(&mut self) -> Result<(), AgentError> {
        let mut endpoints = Vec::new();
        let (mut published, mut published6) = (Vec::new(), Vec::new());
        for ep in self.state.endpoints.values() {
            if let Some(index) = self.nl.link_index(&ep.host_if).await? {
                endpoints.push((index, ep.ip, ep.ip6));
            }
            published.extend(ep.ports.iter().filter_map(crate::publish::PortMapping::key));
            if ep.ip6.is_some() {
                published6.extend(
                    ep.ports
                        .iter()
                        .filter_map(crate::publish::PortMapping::key6),
                );
            }
        }
        self.datapath.retain_endpoints(&endpoints)?;
        self.datapath.retain_published(&published, &published6)?;
        for link in self.datapath.prune_links()? {
            info!(link = %link, "removed a pinned link the state does not have");
        }
        Ok(())
    }

    /// Makes the kernel match the state: bridges, endpoint veths, datapath
    /// attachments and map entries; removes bridges and veths of ours that
    /// the state no longer has.
    async fn reconcile(&mut self) -> Result<(), AgentError> {
        let mut bridges = HashMap::new();
        let mut gone = Vec::new();
        for network in self.state.registry.iter() {
            if network.owner.is_weir() {
                bridges.insert(network.name.clone(), self.ensure_bridge(network).await?);
            } else if let Some(index) = self.nl.link_index(&network.bridge).await? {
                self.datapath.attach_bridge(&network.bridge)?;
                bridges.insert(network.name.clone(), index);
            } else {
                // An engine's bridge is the engine's to make: gone while
                // weir was down, the network is released.
                gone.push(network.name.clone());
            }
        }
        for name in gone {
            warn!(network = %name, "the engine's bridge is gone; releasing the network");
            self.release_foreign_network(&name).await?;
        }
        let endpoints: Vec<(String, String)> = self
            .state
            .endpoints
            .values()
            .map(|e| (e.name.clone(), e.network.clone()))
            .collect();
        for (name, network) in endpoints {
            if let Some(ep) = self.abandoned_run(&name) {
                warn!(endpoint = %name, "its `weir run` is gone; releasing it");
                self.remove_run_netns(&ep);
                self.forget_endpoint(&name);
                continue;
            }
            let restored = match bridges.get(&network) {
                Some(&bridge) => self.restore_endpoint(&name, bridge).await,
                None => Err(NetworkError::NotFound { name: network }.into()),
            };
            if let Err(e) = restored {
                warn!(endpoint = %name, "endpoint is gone; releasing it: {}", Chain(&e));
                self.forget_endpoint(&name);
            }
        }
        for (_, link) in self.nl.links().await? {
            let ours_but_unwanted = (is_bridge_name(&link)
                && !self.state.registry.iter().any(|n| n.bridge == link))
                || (endpoint::is_host_veth_name(&link)
                    && !self.state.endpoints.values().any(|e| e.host_if == link));
            if ours_but_unwanted {
                info!(link = %link, "removing a link the state does not have");
                self.nl.delete_link(&link).await?;
            }
        }
        Ok(())
    }

    /// The endpoint `name`, if it is a `weir run`'s whose command is gone
    /// (cut off by SIGKILL while the agent was down): its namespace is
    /// still bound, but no process is in it.
    fn abandoned_run(&self, name: &str) -> Option<Endpoint> {
        let ep = self.state.endpoints.get(name)?;
        let empty = self.in_run_netns(ep)
            && ep.netns.exists()
            && matches!(crate::netns::has_processes(&ep.netns), Ok(false));
        empty.then(|| ep.clone())
    }

    /// Keeps `HOST_ADDRS4` and `HOST_ADDRS6` equal to the node's addresses
    /// (wildcard publications match only traffic to these), `UPLINKS` and
    /// `UPLINKS6` to each uplink's first address of the family (masquerade's
    /// address; for IPv6 not a link-local one).
    pub async fn refresh_host_addrs(&mut self) -> Result<(), AgentError> {
        let addrs = self.nl.ipv4_addresses().await?;
        self.datapath.set_host_addrs(&addrs)?;
        let addrs6 = self.nl.ipv6_addresses().await?;
        self.datapath.set_host_addrs6(&addrs6)?;
        let (mut uplinks, mut uplinks6) = (Vec::new(), Vec::new());
        for name in &self.uplinks {
            let Some(index) = self.nl.link_index(name).await? else {
                continue;
            };
            if let Some((ip, _)) = addrs.iter().find(|(_, i)| *i == index) {
                uplinks.push((index, *ip));
            }
            // IPv6 masquerade takes the first address that routes: not a
            // link-local one.
            if let Some((ip, _)) = addrs6
                .iter()
                .find(|(ip, i)| *i == index && !ip.is_unicast_link_local())
            {
                uplinks6.push((index, *ip));
            }
        }
        self.datapath.set_uplinks(&uplinks)?;
        self.datapath.set_uplinks6(&uplinks6)?;
        let masquerade = uplinks.iter().map(|(_, ip)| std::net::IpAddr::V4(*ip));
        let masquerade6 = uplinks6.iter().map(|(_, ip)| std::net::IpAddr::V6(*ip));
        self.masquerade_addrs = masquerade.chain(masquerade6).collect();
        // A gateway address that was not up yet gets its names server now.
        self.dns.listen_missing();
        Ok(())
    }

    /// A watcher of drop events, and the endpoints by host-side interface
    /// name (to name them in the events).
    #[must_use]
    pub fn watch(
        &self,
    ) -> (
        tokio::sync::broadcast::Receiver<MonitorEvent>,
        std::collections::BTreeMap<String, String>,
    ) {
        let by_if = self
            .state
            .endpoints
            .values()
            .map(|e| (e.host_if.clone(), e.name.clone()))
            .collect();
        (self.monitor.subscribe(), by_if)
    }

    /// The agent's periodic work: the host's uplinks and addresses (for a
    /// change whose announcement was lost), the conntrack sweep.
    pub async fn tick(&mut self, sweep: bool) -> Result<(), AgentError> {
        self.follow_host().await?;
        if sweep {
            self.sweep_conntrack()?;
        }
        Ok(())
    }

    /// Writes the whole state, which empties the journal.
    fn save(&mut self) -> Result<(), AgentError> {
        let paths = &self.config.paths;
        store::save(
            &paths.state_file(),
            Some(&paths.last_good_file()),
            &self.state,
        )?;
        self.journal.clear()?;
        self.update_names();
        Ok(())
    }

    /// Keeps `change`, already made to the state in memory, on disk: one
    /// line in the journal, or the whole state once the journal is long.
    fn record(&mut self, change: &Change) -> Result<(), AgentError> {
        if self.journal.len() >= JOURNAL_MAX {
            return self.save();
        }
        self.journal.append(change)?;
        Ok(())
    }

    #[must_use]
    pub fn status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uplinks: self.uplinks.clone(),
            uplinks_why: self.uplinks_why.clone(),
            networks: self.state.registry.iter().count(),
            endpoints: self.state.endpoints.len(),
            socket: self.config.paths.socket.clone(),
            state_dir: self.config.paths.state_dir.clone(),
            bpffs: self.config.paths.bpffs.clone(),
            bpffs_reached: self.pins.how.clone(),
            cgroup: self.cgroup.how.clone(),
        }
    }

    #[must_use]
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.state.endpoints.values().cloned().collect()
    }
}

/// Says what opening the pinned datapath did with each map.
fn log_map_origins(origins: &[(&'static str, MapOrigin)]) {
    let count = |f: fn(&MapOrigin) -> bool| origins.iter().filter(|(_, o)| f(o)).count();
    for (map, origin) in origins {
        if let MapOrigin::Rebuilt { differences } = origin {
            warn!(
                map,
                differences = %differences.join("; "),
                "pinned map has another layout: replaced by a new, empty map (entries are made again by reconcile; counters and tracked flows start over)"
            );
        }
    }
    info!(
        reused = count(|o| *o == MapOrigin::Reused),
        created = count(|o| *o == MapOrigin::Created),
        rebuilt = count(|o| matches!(o, MapOrigin::Rebuilt { .. })),
        "datapath loaded; maps pinned"
    );
}

/// The state: the state file with its journal, or with `--restore-state`
/// the last good copy put back first; with `--reset` a file that cannot
/// be read is moved aside (`state.broken.json`) and the state starts
/// empty. A broken file is refused otherwise, with the way back.
fn load_state(config: &Config) -> Result<State, AgentError> {
    let paths = &config.paths;
    let (file, copy) = (paths.state_file(), paths.last_good_file());
    if config.restore_state {
        if !copy.exists() {
            return Err(AgentError::NoLastGood { path: copy });
        }
        std::fs::copy(&copy, &file)
            .map_err(AgentError::io(format!("restoring {}", copy.display())))?;
        warn!(from = %copy.display(), "state restored from its last good copy");
    }
    match State::load(paths) {
        Ok(state) => Ok(state),
        Err(e) if config.reset => {
            let aside = paths.state_dir.join("state.broken.json");
            std::fs::rename(&file, &aside)
                .map_err(AgentError::io(format!("moving {} aside", file.display())))?;
            warn!(
                moved_to = %aside.display(),
                "--reset: the state could not be read ({}); starting over",
                Chain(&e)
            );
            Ok(State::default())
        }
        Err(error) => Err(AgentError::StateBroken {
            error,
            last_good: copy.exists().then_some(copy),
        }),
    }
}

/// A missing state file while weir's bridges or veths exist is a lost
/// state (a wiped state directory, one on tmpfs), not an empty one: taken
/// for empty, reconcile would remove every container's network. Refused,
/// naming the file and the way out.
async fn refuse_lost_state(nl: &Netlink, paths: &Paths) -> Result<(), AgentError> {
    let file = paths.state_file();
    if file.exists() {
        return Ok(());
    }
    let ours: Vec<String> = nl
        .links()
        .await?
        .into_iter()
        .map(|(_, name)| name)
        .filter(|n| is_bridge_name(n) || endpoint::is_host_veth_name(n))
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    let copy = paths.last_good_file();
    Err(AgentError::StateLost {
        path: file,
        links: ours.join(", "),
        last_good: copy.exists().then_some(copy),
    })
}

fn is_bridge_name(name: &str) -> bool {
    name.strip_prefix("weir")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Every published port holds a socket: lifts the soft limit on open
/// files to the hard one (as dockerd's unit does), so thousands of
/// published ports fit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let was = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) == 0 {
                debug!(from = was, to = lim.rlim_max, "open file limit raised");
            }
        }
    }
}

/// Refuses a masquerade range that shares ports with the node's own
/// ephemeral ports: a host socket and a masqueraded flow could then hold
/// one tuple.
fn check_snat_ports(range: PortRange) -> Result<(), AgentError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = fs::read_to_string(PATH).map_err(AgentError::io(format!("reading {PATH}")))?;
    let mut it = text
        .split_whitespace()
        .filter_map(|p| p.parse::<u16>().ok());
    if let (Some(low), Some(high)) = (it.next(), it.next())
        && range.start() <= high
        && low <= range.end()
    {
        return Err(AgentError::SnatPortsOverlap {
            range: range.to_string(),
            local: format!("{low}-{high}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_bridge_name;

    #[test]
    fn only_our_bridge_names_match() {
        assert!(is_bridge_name("weir0") && is_bridge_name("weir42"));
        assert!(!is_bridge_name("weir") && !is_bridge_name("weirv1") && !is_bridge_name("docker0"));
    }
}
