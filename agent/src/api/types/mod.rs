//! The API's contract: every body the agent takes and every answer it
//! gives, in one place. The CLI, `weir-cni`, `weir-netavark` and the
//! engine followers speak to the agent in these types and depend on
//! nothing of `daemon`; the daemon implements them.

mod cluster;
mod cni;
mod endpoint;
mod engine;
mod inspect;
mod netavark;

use std::{net::IpAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

pub use self::{
    cluster::ClusterNode,
    cni::{CniAdd, CniAttachment, CniGc, CniPort, CniRef},
    endpoint::{AttachRequest, ConnectRequest, DEFAULT_IFNAME, Endpoint, PortView},
    engine::{ForeignEndpoint, ForeignNetwork},
    inspect::{
        AddrEntry, AllowedEntry, DropStats, EndpointEntry, FlowView, HookStats, LinkView, MapsView,
        NetworkEntry, NetworkStats, OpenPortEntry, PortStats, PublishedEntry, Removed, Stats,
    },
    netavark::NetavarkSetup,
};
use crate::network::Network;

/// What `weir status` reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uplinks: Vec<String>,
    /// Why the uplinks are these (the default route's device, `--uplink`),
    /// or why there is none.
    #[serde(default)]
    pub uplinks_why: String,
    pub networks: usize,
    pub endpoints: usize,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
    /// How the agent reaches `bpffs` (its own mount namespace, or the one
    /// it was started from).
    #[serde(default)]
    pub bpffs_reached: String,
    /// The cgroup the socket hooks are attached to, and how it was found.
    #[serde(default)]
    pub cgroup: String,
}

/// A network as the API shows it: the network, its endpoints' names and
/// its masquerade counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkView {
    #[serde(flatten)]
    pub network: Network,
    /// Where its names are answered (its gateway), if it has names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<IpAddr>,
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub masquerade_stats: NatStats,
}

/// Masquerade counters of a network, summed over the CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatStats {
    /// Flows masqueraded (each given a port).
    pub flows: u64,
    /// Packets and bytes of those flows, both directions.
    pub packets: u64,
    pub bytes: u64,
    /// Port probes that collided with a tuple in use.
    pub retries: u64,
    /// New flows dropped because every probe collided.
    pub exhausted: u64,
}

/// The body of `publish` and `unpublish`: Docker `-p` specs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortsRequest {
    pub specs: Vec<String>,
}

/// The body of every error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
