//! The desired state the agent keeps on disk: the state file, and the
//! [`Change`]s journalled since it was written.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{
    api::types::Endpoint,
    network::Registry,
    paths::Paths,
    publish::PortMapping,
    state::{self as store, Journal, StateError},
};

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
    /// User rules: the sources each listed host port lets in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<crate::publish::AllowRule>,
}

/// A change the journal records instead of the whole state: publishing
/// and withdrawing ports, the changes that come often and in numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Published {
        endpoint: String,
        ports: Vec<PortMapping>,
    },
    Withdrawn {
        endpoint: String,
        ports: Vec<PortMapping>,
    },
}

impl State {
    /// The state file, with the journal's changes replayed over it.
    pub fn load(paths: &Paths) -> Result<Self, StateError> {
        let mut state: State = store::load(&paths.state_file())?.unwrap_or_default();
        for change in Journal::new(paths.journal_file()).load()? {
            state.apply(change);
        }
        Ok(state)
    }

    /// Makes `change` to the state; making it twice is the same as once
    /// (a crash can replay a change the state file already holds).
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Published { endpoint, ports } => {
                if let Some(e) = self.endpoints.get_mut(&endpoint) {
                    let mut have = PortSet::of(&e.ports, ports.len());
                    let new: Vec<PortMapping> =
                        ports.into_iter().filter(|m| have.insert(*m)).collect();
                    e.ports.extend(new);
                }
            }
            Change::Withdrawn { endpoint, ports } => {
                if let Some(e) = self.endpoints.get_mut(&endpoint) {
                    let gone = PortSet::of(&ports, e.ports.len());
                    e.ports.retain(|m| !gone.contains(m));
                }
            }
        }
    }

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

/// Port mappings to look up: searched in place when they are few or are
/// looked up a few times (the usual change is one port against an
/// endpoint's many), else put in a hash set. Either way a change costs
/// time in proportion to the ports it and the endpoint have, not their
/// product.
enum PortSet<'a> {
    Few(&'a [PortMapping], Vec<PortMapping>),
    Many(HashSet<PortMapping>),
}

impl<'a> PortSet<'a> {
    const FEW: usize = 32;

    fn of(ports: &'a [PortMapping], lookups: usize) -> Self {
        if ports.len() <= Self::FEW || lookups <= Self::FEW {
            PortSet::Few(ports, Vec::new())
        } else {
            PortSet::Many(ports.iter().copied().collect())
        }
    }

    fn contains(&self, m: &PortMapping) -> bool {
        match self {
            PortSet::Few(ports, added) => ports.contains(m) || added.contains(m),
            PortSet::Many(set) => set.contains(m),
        }
    }

    /// Adds `m`; `false` if it was there.
    fn insert(&mut self, m: PortMapping) -> bool {
        if self.contains(&m) {
            return false;
        }
        match self {
            PortSet::Few(_, added) => added.push(m),
            PortSet::Many(set) => {
                set.insert(m);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{owner::Owner, publish::Proto};

    fn mapping(host_port: u16) -> PortMapping {
        PortMapping {
            proto: Proto::Tcp,
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            host_port,
            container_port: 80,
        }
    }

    #[test]
    fn a_change_made_twice_is_made_once() {
        let mut state = State::default();
        state.endpoints.insert(
            "c1".to_owned(),
            Endpoint {
                id: 1,
                name: "c1".to_owned(),
                network: "n".to_owned(),
                netns: "/run/netns/c1".into(),
                ip: Some(Ipv4Addr::new(10, 0, 0, 2)),
                ip6: None,
                mac: "02:00:00:00:00:01".to_owned(),
                host_if: "weirv1".to_owned(),
                ports: vec![mapping(8080)],
                owner: Owner::Weir,
                primary: None,
            },
        );
        let published = Change::Published {
            endpoint: "c1".to_owned(),
            ports: vec![mapping(8080), mapping(8081)],
        };
        state.apply(published.clone());
        state.apply(published);
        assert_eq!(state.endpoints["c1"].ports, [mapping(8080), mapping(8081)]);
        let withdrawn = Change::Withdrawn {
            endpoint: "c1".to_owned(),
            ports: vec![mapping(8080)],
        };
        state.apply(withdrawn.clone());
        state.apply(withdrawn);
        assert_eq!(state.endpoints["c1"].ports, [mapping(8081)]);
        // A change for an endpoint that is gone changes nothing.
        state.apply(Change::Published {
            endpoint: "gone".to_owned(),
            ports: vec![mapping(1)],
        });
        assert_eq!(state.endpoints.len(), 1);
        // One line in the journal, tagged by kind.
        let line = serde_json::to_string(&Change::Withdrawn {
            endpoint: "c1".to_owned(),
            ports: Vec::new(),
        })
        .unwrap();
        assert_eq!(line, r#"{"change":"withdrawn","endpoint":"c1","ports":[]}"#);
    }
}
