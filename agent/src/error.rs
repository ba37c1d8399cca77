//! The agent's errors. Each says what was wrong and, where it helps, what to
//! do; the API turns [`AgentError::kind`] into an HTTP status.
//!
//! One text per error: an error either prints its cause in its message or
//! returns it from `source()`, never both (`#[error("doing X")]` with
//! `#[source]`/`#[from]`, or `#[error(transparent)]`). Whatever shows an
//! error to a person (the CLI, the API's `{"error": ...}`, a log record)
//! prints the whole chain with [`Chain`]. `error/tests.rs` checks every
//! variant of every error type in this crate.

use std::{fmt, io, net::Ipv4Addr, path::PathBuf};

use crate::{
    datapath::DatapathError,
    mounts::MountError,
    netlink::NetlinkError,
    network::{IpamError, NetworkError},
    publish::{ReserveError, SpecError},
    state::StateError,
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("network namespace {path} does not exist")]
    NetnsMissing { path: PathBuf },
    #[error("{path} is not a network namespace")]
    NotANetns { path: PathBuf },
    #[error("namespace {path} already has an {ifname}")]
    IfnameExists { path: PathBuf, ifname: String },
    #[error("invalid interface name `{name}`: 1 to 15 characters, no `/`, `:` or spaces")]
    InvalidIfname { name: String },
    #[error("invalid MAC address `{mac}`: expected six hex pairs like 02:42:0a:00:00:02")]
    InvalidMac { mac: String },
    #[error(
        "invalid endpoint name `{name}`: use 1 to 64 characters from [a-zA-Z0-9_.-], starting with a letter or digit"
    )]
    InvalidEndpointName { name: String },
    #[error(
        "the state file {} is missing, but weir's links are on this node ({links}): the state was lost, not empty. {}",
        path.display(),
        recovery(last_good.as_deref(), "put the file back (or give --state-dir its directory)")
    )]
    StateLost {
        path: PathBuf,
        links: String,
        last_good: Option<PathBuf>,
    },
    #[error("{error}. {}", recovery(last_good.as_deref(), "fix the file"))]
    StateBroken {
        error: StateError,
        last_good: Option<PathBuf>,
    },
    #[error("--trace: reading the datapath's trace records: {0}")]
    Trace(aya_log::Error),
    #[error("--restore-state: there is no last good copy of the state ({})", path.display())]
    NoLastGood { path: PathBuf },
    #[error("an allow list for {port} needs at least one source CIDR")]
    AllowEmpty { port: String },
    #[error("{port} has no allow list (see `weir allow ls`)")]
    AllowNotFound { port: String },
    #[error("endpoint `{endpoint}` is already on network `{network}`")]
    AlreadyConnected { endpoint: String, network: String },
    #[error("endpoint `{endpoint}` is not connected to network `{network}`")]
    NotConnected { endpoint: String, network: String },
    #[error(
        "`{network}` is endpoint `{endpoint}`'s first network, which keeps its default route: `weir detach {endpoint}` takes it off"
    )]
    FirstNetwork { endpoint: String, network: String },
    #[error(
        "endpoint `{endpoint}` is a further interface of `{first}`: connect `{first}` to other networks"
    )]
    NotFirstInterface { endpoint: String, first: String },
    #[error("endpoint `{name}` already exists")]
    EndpointExists { name: String },
    #[error("endpoint `{name}` not found")]
    EndpointNotFound { name: String },
    #[error("address {ip} is already used by endpoint `{endpoint}`")]
    AddressInUse { ip: Ipv4Addr, endpoint: String },
    #[error("address {ip} is already used by endpoint `{endpoint}`")]
    Address6InUse {
        ip: std::net::Ipv6Addr,
        endpoint: String,
    },
    #[error(
        "no free subnet left in the address pools ({pools}): give --subnet, or start the agent with another --default-address-pool"
    )]
    PoolsFull { pools: String },
    #[error("network `{network}` has no IPv4 subnet for --ip {ip}: it is IPv6-only")]
    NoIpv4 { network: String, ip: Ipv4Addr },
    #[error("network `{network}` has no IPv6 subnet for --ip6 {ip6}")]
    NoIpv6 {
        network: String,
        ip6: std::net::Ipv6Addr,
    },
    #[error("network `{name}` has endpoints attached ({}); detach them first", endpoints.join(", "))]
    NetworkInUse {
        name: String,
        endpoints: Vec<String>,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "Bind for {bind} failed: port is already allocated (published by endpoint `{endpoint}`)"
    )]
    PortAllocated { bind: String, endpoint: String },
    #[error("no free port in {range} on {ip} for `{spec}`")]
    NoFreePort {
        spec: String,
        range: String,
        ip: std::net::IpAddr,
    },
    #[error(
        "`{spec}` publishes over {family} only, and endpoint `{endpoint}` has no {family} address (its network `{network}` has no {family} subnet)"
    )]
    PublishNoFamily {
        spec: String,
        endpoint: String,
        network: String,
        family: &'static str,
    },
    #[error(
        "endpoint `{endpoint}` publishes nothing that matches `{spec}` (see `weir port {endpoint}`)"
    )]
    NotPublished { endpoint: String, spec: String },
    #[error(transparent)]
    Reserve(#[from] ReserveError),
    #[error(
        "--snat-ports {range} overlaps the node's ip_local_port_range {local}: choose a range outside it"
    )]
    SnatPortsOverlap { range: String, local: String },
    #[error("an agent is already serving {socket}")]
    AlreadyRunning { socket: PathBuf },
    #[error("an agent is serving {socket}: stop it before `weir agent --cleanup`")]
    RunningDuringCleanup { socket: PathBuf },
    #[error("{what} is {engine}'s: {hint}")]
    EngineOwned {
        what: String,
        engine: &'static str,
        hint: &'static str,
    },
    #[error("container {container_id} already has {ifname} as endpoint `{endpoint}` elsewhere")]
    CniAttached {
        container_id: String,
        ifname: String,
        endpoint: String,
    },
    #[error("weir has no attachment of container {container_id} as {ifname}")]
    CniUnknown {
        container_id: String,
        ifname: String,
    },
    #[error("endpoint `{endpoint}` is not as ADD left it: {what}")]
    CniDiffers { endpoint: String, what: String },
    #[error("invalid port mapping: {what}")]
    CniPort { what: String },
    #[error("network `{name}` exists with {what}")]
    NetworkDiffers { name: String, what: String },
    #[error(
        "network `{network}` has no subnet {subnet}: Podman's configuration of it is not weir's (remove it from Podman and create it again with `podman network create -d weir`)"
    )]
    SubnetNotOnNetwork { network: String, subnet: String },
    #[error("the name `{name}` is taken by a network or endpoint of {owner}'s")]
    NameTaken { name: String, owner: &'static str },
    #[error("bridge {bridge} of network `{network}` does not exist on the node")]
    BridgeMissing { bridge: String, network: String },
    #[error("namespace {netns} has no interface with MAC {mac}")]
    NoSuchInterface { netns: PathBuf, mac: String },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// An error and its causes, each once, joined by `": "` as anyhow's `{:#}`
/// joins them. A cause whose text the link printed before it already holds
/// is skipped: some libraries' errors print their source and return it too
/// (aya's `EbpfError::MapError`, kube's `Error::HyperError`).
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl<'a> Chain<'a> {
    /// The texts [`Chain`] prints, in order.
    pub fn links(self) -> impl Iterator<Item = String> + 'a {
        let mut next = Some(self.0);
        let mut last = String::new();
        std::iter::from_fn(move || {
            while let Some(e) = next {
                next = e.source();
                let text = e.to_string();
                if !last.contains(&text) || last.is_empty() {
                    last.clone_from(&text);
                    return Some(text);
                }
            }
            None
        })
    }
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, text) in self.links().enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            f.write_str(&text)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How a failure is reported over the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (400).
    BadRequest,
    /// What it names does not exist (404).
    NotFound,
    /// It clashes with what exists (409).
    Conflict,
    /// The agent or the kernel failed (500).
    Internal,
}

/// How to get a node's state back: from its last good copy when there is
/// one, else `other`; or start over.
fn recovery(last_good: Option<&std::path::Path>, other: &str) -> String {
    match last_good {
        Some(copy) => format!(
            "Its last good copy is {}: `weir agent --restore-state` starts from it (or `weir agent --reset` starts over, removing weir's links)",
            copy.display()
        ),
        None => format!(
            "There is no last good copy: {other}, or start with `weir agent --reset` to remove weir's links and start over"
        ),
    }
}

impl AgentError {
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::Network(NetworkError::NotFound { .. })
            | AgentError::EndpointNotFound { .. }
            | AgentError::NotPublished { .. }
            | AgentError::NotConnected { .. }
            | AgentError::AllowNotFound { .. }
            | AgentError::NetnsMissing { .. }
            | AgentError::CniUnknown { .. } => ErrorKind::NotFound,
            AgentError::Network(
                NetworkError::Exists { .. }
                | NetworkError::Overlap { .. }
                | NetworkError::Overlap6 { .. }
                | NetworkError::Ipam(IpamError::Taken { .. })
                | NetworkError::Ipam6(crate::network::Ipam6Error::Taken { .. }),
            )
            | AgentError::Ipam(IpamError::Taken { .. } | IpamError::Exhausted { .. })
            | AgentError::EndpointExists { .. }
            | AgentError::AlreadyConnected { .. }
            | AgentError::AddressInUse { .. }
            | AgentError::Address6InUse { .. }
            | AgentError::IfnameExists { .. }
            | AgentError::NetworkInUse { .. }
            | AgentError::PortAllocated { .. }
            | AgentError::NoFreePort { .. }
            | AgentError::PoolsFull { .. }
            | AgentError::Reserve(ReserveError::InUse { .. })
            | AgentError::AlreadyRunning { .. }
            | AgentError::StateLost { .. }
            | AgentError::StateBroken { .. }
            | AgentError::NoLastGood { .. }
            | AgentError::RunningDuringCleanup { .. }
            | AgentError::EngineOwned { .. }
            | AgentError::NameTaken { .. }
            | AgentError::CniAttached { .. }
            | AgentError::CniDiffers { .. }
            | AgentError::NetworkDiffers { .. }
            | AgentError::SubnetNotOnNetwork { .. } => ErrorKind::Conflict,
            AgentError::Network(_)
            | AgentError::Ipam(_)
            | AgentError::NotANetns { .. }
            | AgentError::Spec(_)
            | AgentError::SnatPortsOverlap { .. }
            | AgentError::Reserve(
                ReserveError::NotLocal { .. } | ReserveError::Unsupported { .. },
            )
            | AgentError::InvalidEndpointName { .. }
            | AgentError::FirstNetwork { .. }
            | AgentError::AllowEmpty { .. }
            | AgentError::NotFirstInterface { .. }
            | AgentError::InvalidIfname { .. }
            | AgentError::InvalidMac { .. }
            | AgentError::NoIpv6 { .. }
            | AgentError::NoIpv4 { .. }
            | AgentError::PublishNoFamily { .. }
            | AgentError::CniPort { .. } => ErrorKind::BadRequest,
            AgentError::Reserve(ReserveError::Io { .. })
            | AgentError::Netlink(_)
            | AgentError::Datapath(_)
            | AgentError::Mount(_)
            | AgentError::Trace(_)
            | AgentError::BridgeMissing { .. }
            | AgentError::NoSuchInterface { .. }
            | AgentError::State(_)
            | AgentError::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> AgentError {
        let what = what.into();
        move |source| AgentError::Io { what, source }
    }
}

#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;
