//! The desired state the agent keeps on disk.

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{network::Registry, publish::PortMapping};

/// Everything the agent wants to exist.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Set once the first start has made the default network, so that
    /// removing it is remembered.
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub registry: Registry,
    /// Endpoints by name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The next endpoint id (ids name the host-side veths).
    #[serde(default)]
    pub next_endpoint: u32,
}

/// A container attached to a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: u32,
    pub name: String,
    pub network: String,
    /// The network namespace file the container lives in.
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    /// The container's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The host-side veth (`weirv<id>`), a port of the network's bridge.
    pub host_if: String,
    /// Its published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

impl State {
    /// Names of the endpoints on `network`, in name order.
    #[must_use]
    pub fn endpoints_of(&self, network: &str) -> Vec<String> {
        self.endpoints
            .values()
            .filter(|e| e.network == network)
            .map(|e| e.name.clone())
            .collect()
    }
}
