//! netavark's plugin protocol as `weir-netavark` speaks it (netavark 1.6
//! and later, `plugin-API.md` and `src/network/types.rs` in netavark's
//! source): the JSON netavark and Podman write on stdin, the answers on
//! stdout, and their translation into weir's API types. Pure: no I/O.
//!
//! Fields weir does not read are kept as they came (`rest`), so that
//! `create` answers Podman's whole configuration with weir's parts filled
//! in, never dropping what Podman wrote.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::NetavarkError;
use crate::{
    api::types::{CniAttachment, CniRef, NetavarkSetup, NetworkView},
    network::{Mode, NetworkSpec, Subnet, Subnet6},
    publish::{PortMapping, Proto},
};

/// The plugin API version netavark speaks (`plugin::API_VERSION`).
pub const API_VERSION: &str = "1.0.0";

/// The network option naming the agent's socket (else `WEIR_SOCKET`, else
/// the default socket).
pub const SOCKET_OPTION: &str = "weir_socket";

/// The options weir takes, besides [`SOCKET_OPTION`].
const OPTIONS: &str = "icc, isolate, masquerade, mode (nat or routed), snat_ip, weir_socket";

/// A network's configuration (netavark's `Network`), as Podman keeps it
/// in its `networks/NAME.json` and hands it to `create` and, inside
/// [`PluginExec`], to `setup` and `teardown`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    #[serde(default)]
    pub id: String,
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<NetSubnet>>,
    #[serde(default)]
    pub ipv6_enabled: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub dns_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_dns_servers: Option<Vec<IpAddr>>,
    /// `created`, `labels` and whatever a later netavark adds.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One subnet of a [`Network`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSubnet {
    /// CIDR, either family.
    pub subnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_range: Option<Value>,
}

/// `setup` and `teardown`'s stdin (netavark's `NetworkPluginExec`): one
/// network of a container.
#[derive(Clone, Debug, Deserialize)]
pub struct PluginExec {
    pub container_id: String,
    #[serde(default)]
    pub container_name: String,
    #[serde(default)]
    pub port_mappings: Option<Vec<PortMap>>,
    pub network: Network,
    pub network_options: PerNetwork,
}

/// The container's options on one network (`PerNetworkOptions`).
#[derive(Clone, Debug, Deserialize)]
pub struct PerNetwork {
    pub interface_name: String,
    #[serde(default)]
    pub static_ips: Option<Vec<IpAddr>>,
    #[serde(default)]
    pub static_mac: Option<String>,
    /// Names for the container on this network: weir's resolver knows a
    /// container by its name, not by aliases (netavark's rule: a network
    /// without DNS of its own ignores them).
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
}

/// A published port or range of ports (netavark's `PortMapping`).
#[derive(Clone, Debug, Deserialize)]
pub struct PortMap {
    pub container_port: u16,
    /// Empty: every address.
    #[serde(default)]
    pub host_ip: String,
    pub host_port: u16,
    /// `tcp`, `udp`, `sctp` or several, comma-separated.
    #[serde(default)]
    pub protocol: String,
    /// How many consecutive ports; 0 and 1 are one.
    #[serde(default)]
    pub range: u16,
}

/// `setup`'s answer (netavark's `StatusBlock`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusBlock {
    pub dns_search_domains: Vec<String>,
    pub dns_server_ips: Vec<IpAddr>,
    pub interfaces: BTreeMap<String, NetInterface>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetInterface {
    pub mac_address: String,
    pub subnets: Vec<NetAddress>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetAddress {
    /// The interface's address with its subnet's prefix.
    pub ipnet: String,
    pub gateway: IpAddr,
}

/// `info`'s answer: the version and API version netavark asks for, and a
/// description (extra fields are allowed).
#[must_use]
pub fn info() -> Value {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": API_VERSION,
        "description": "weir: container networks on eBPF, through the weir agent's API",
    })
}

/// The agent's socket for `network`: its `weir_socket` option, else
/// `env` (`WEIR_SOCKET`), else `default`.
#[must_use]
pub fn socket(network: &Network, env: Option<&str>, default: &Path) -> PathBuf {
    network
        .options
        .as_ref()
        .and_then(|o| o.get(SOCKET_OPTION))
        .map(String::as_str)
        .or(env)
        .filter(|s| !s.is_empty())
        .map_or_else(|| default.to_owned(), PathBuf::from)
}

/// Go's `strconv.ParseBool`, which Podman's options are written for.
fn boolean(network: &str, key: &str, value: &str) -> Result<bool, NetavarkError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(unsupported(
            network,
            format!("option `{key}` is `{value}`, not true or false"),
        )),
    }
}

fn unsupported(network: &str, what: impl Into<String>) -> NetavarkError {
    NetavarkError::Unsupported {
        network: network.to_owned(),
        what: what.into(),
    }
}

/// The weir network `create` asks for: its subnets (none: one from the
/// agent's pools), `internal`, and the options weir has. What weir has no
/// counterpart for is refused, not ignored.
pub fn spec_of(n: &Network) -> Result<NetworkSpec, NetavarkError> {
    let bad = |what: String| unsupported(&n.name, what);
    let mut spec = NetworkSpec {
        name: n.name.clone(),
        subnet: None,
        gateway: None,
        internal: n.internal,
        icc: true,
        masquerade: true,
        mode: Mode::Nat,
        snat_ip: None,
        subnet6: None,
        gateway6: None,
    };
    for s in n.subnets.iter().flatten() {
        if s.lease_range.as_ref().is_some_and(|l| !l.is_null()) {
            return Err(bad(format!(
                "subnet {} has a lease range: weir hands out the whole subnet",
                s.subnet
            )));
        }
        let second = || bad(format!("subnet {} is a second one of its family", s.subnet));
        let wrong = |e: &dyn std::fmt::Display| bad(format!("subnet {}: {e}", s.subnet));
        if s.subnet.contains(':') {
            if spec.subnet6.is_some() {
                return Err(second());
            }
            spec.subnet6 = Some(s.subnet.parse::<Subnet6>().map_err(|e| wrong(&e))?);
            spec.gateway6 = match s.gateway {
                Some(IpAddr::V6(g)) => Some(g),
                Some(g) => return Err(wrong(&format!("gateway {g} is not IPv6"))),
                None => None,
            };
        } else {
            if spec.subnet.is_some() {
                return Err(second());
            }
            spec.subnet = Some(s.subnet.parse::<Subnet>().map_err(|e| wrong(&e))?);
            spec.gateway = match s.gateway {
                Some(IpAddr::V4(g)) => Some(g),
                Some(g) => return Err(wrong(&format!("gateway {g} is not IPv4"))),
                None => None,
            };
        }
    }
    if n.ipv6_enabled && spec.subnet6.is_none() {
        return Err(bad(
            "IPv6 needs an IPv6 --subnet: weir has no IPv6 address pool".to_owned(),
        ));
    }
    let addressed = spec.subnet.is_some() || spec.subnet6.is_some();
    match n.ipam_options.as_ref().and_then(|o| o.get("driver")) {
        None => {}
        Some(d) if d.is_empty() || d == "host-local" => {}
        // `none` with subnets is what `create` answers (Podman refuses it
        // from a user): the configuration given back.
        Some(d) if d == "none" && addressed => {}
        Some(d) => {
            return Err(bad(format!(
                "the ipam driver is `{d}`: weir gives its networks' addresses itself"
            )));
        }
    }
    if n.routes.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(bad("weir adds no static routes to a network".to_owned()));
    }
    if n.network_dns_servers
        .as_ref()
        .is_some_and(|d| !d.is_empty())
    {
        return Err(bad(
            "weir's resolver at the gateway asks the agent's --dns-forward servers, not a network's own"
                .to_owned(),
        ));
    }
    for (key, value) in n.options.iter().flatten() {
        match key.as_str() {
            SOCKET_OPTION => {}
            // weir's networks are always apart from each other.
            "isolate" if value == "strict" || boolean(&n.name, key, value)? => {}
            "isolate" => {
                return Err(bad(
                    "isolate is false: weir's networks never reach each other".to_owned(),
                ));
            }
            "icc" => spec.icc = boolean(&n.name, key, value)?,
            "masquerade" => spec.masquerade = boolean(&n.name, key, value)?,
            "mode" => spec.mode = value.parse::<Mode>().map_err(bad)?,
            "snat_ip" => {
                spec.snat_ip = Some(value.parse().map_err(|_| {
                    bad(format!("option snat_ip `{value}` is not an IPv4 address"))
                })?);
            }
            other => {
                return Err(bad(format!(
                    "option `{other}` is not one weir has (it takes {OPTIONS})"
                )));
            }
        }
    }
    Ok(spec)
}

/// `create`'s answer: Podman's configuration with weir's network in it:
/// its subnets and gateways, its bridge, `internal`; the ipam driver
/// `none`, so that Podman allocates nothing and weir, the network's one
/// allocator, gives the addresses; `dns_enabled` off, since Podman's
/// aardvark-dns has no part in it (weir's resolver at the gateway answers
/// the names, and `setup` names it to the container).
#[must_use]
pub fn created(mut n: Network, view: &NetworkView) -> Network {
    let w = &view.network;
    let v4 = w.ipam.as_ref().map(|i| NetSubnet {
        subnet: i.subnet().to_string(),
        gateway: Some(i.gateway().into()),
        lease_range: None,
    });
    let v6 = w.ipam6.as_ref().map(|i| NetSubnet {
        subnet: i.subnet().to_string(),
        gateway: Some(i.gateway().into()),
        lease_range: None,
    });
    n.subnets = Some(v4.into_iter().chain(v6).collect());
    n.ipv6_enabled = w.ipam6.is_some();
    n.internal = w.internal;
    n.dns_enabled = false;
    n.network_interface = Some(w.bridge.clone());
    n.ipam_options
        .get_or_insert_with(BTreeMap::new)
        .insert("driver".to_owned(), "none".to_owned());
    n
}

/// A port mapping as weir's, one host port each: a range is as many
/// consecutive ports, a protocol list one mapping per protocol.
pub fn port_mappings(maps: &[PortMap]) -> Result<Vec<PortMapping>, NetavarkError> {
    let mut out = Vec::new();
    for m in maps {
        let bad = |why: String| NetavarkError::Port {
            mapping: format!(
                "{}:{}:{}/{} range {}",
                m.host_ip, m.host_port, m.container_port, m.protocol, m.range
            ),
            why,
        };
        let host_ip = match m.host_ip.as_str() {
            "" => PortMapping::EVERY,
            h => h
                .parse::<IpAddr>()
                .map_err(|_| bad(format!("host_ip `{h}` is not an address")))?,
        };
        let protocols = if m.protocol.is_empty() {
            "tcp"
        } else {
            m.protocol.as_str()
        };
        for proto in protocols.split(',') {
            let proto = match proto.trim().to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                "sctp" => Proto::Sctp,
                other => return Err(bad(format!("protocol `{other}` is not tcp, udp or sctp"))),
            };
            for i in 0..m.range.max(1) {
                let (Some(host_port), Some(container_port)) =
                    (m.host_port.checked_add(i), m.container_port.checked_add(i))
                else {
                    return Err(bad("the range runs past port 65535".to_owned()));
                };
                out.push(PortMapping {
                    proto,
                    host_ip,
                    host_port,
                    container_port,
                });
            }
        }
    }
    Ok(out)
}

/// `setup`'s request to the agent, for the container's namespace `netns`.
pub fn setup_request(netns: &str, exec: &PluginExec) -> Result<NetavarkSetup, NetavarkError> {
    let network = &exec.network;
    let (mut subnets, mut subnets6) = (Vec::new(), Vec::new());
    for s in network.subnets.iter().flatten() {
        let wrong = |e: &dyn std::fmt::Display| {
            unsupported(&network.name, format!("subnet {}: {e}", s.subnet))
        };
        if s.subnet.contains(':') {
            subnets6.push(s.subnet.parse::<Subnet6>().map_err(|e| wrong(&e))?);
        } else {
            subnets.push(s.subnet.parse::<Subnet>().map_err(|e| wrong(&e))?);
        }
    }
    let (mut ip, mut ip6) = (None::<Ipv4Addr>, None::<Ipv6Addr>);
    for a in exec.network_options.static_ips.iter().flatten() {
        match *a {
            IpAddr::V4(a) if ip.is_none_or(|had| had == a) => ip = Some(a),
            IpAddr::V6(a) if ip6.is_none_or(|had| had == a) => ip6 = Some(a),
            other => {
                return Err(NetavarkError::StaticIps {
                    network: network.name.clone(),
                    ip: other,
                });
            }
        }
    }
    Ok(NetavarkSetup {
        container_id: exec.container_id.clone(),
        container_name: exec.container_name.clone(),
        ifname: exec.network_options.interface_name.clone(),
        netns: PathBuf::from(netns),
        network: network.name.clone(),
        subnets,
        subnets6,
        ip,
        ip6,
        mac: exec
            .network_options
            .static_mac
            .clone()
            .filter(|m| !m.is_empty()),
        ports: port_mappings(exec.port_mappings.as_deref().unwrap_or_default())?,
    })
}

/// `teardown`'s request to the agent.
#[must_use]
pub fn teardown_request(exec: &PluginExec) -> CniRef {
    CniRef {
        container_id: exec.container_id.clone(),
        ifname: exec.network_options.interface_name.clone(),
    }
}

/// `setup`'s answer for what the agent made: the interface with its MAC
/// and addresses, and weir's resolver for the network as the container's
/// name server.
#[must_use]
pub fn status_block(made: &CniAttachment) -> StatusBlock {
    let v4 = made.ip.map(|(ip, prefix, gateway)| NetAddress {
        ipnet: format!("{ip}/{prefix}"),
        gateway: gateway.into(),
    });
    let v6 = made.ip6.map(|(ip, prefix, gateway)| NetAddress {
        ipnet: format!("{ip}/{prefix}"),
        gateway: gateway.into(),
    });
    StatusBlock {
        dns_search_domains: Vec::new(),
        dns_server_ips: made.dns.into_iter().collect(),
        interfaces: BTreeMap::from([(
            made.ifname.clone(),
            NetInterface {
                mac_address: made.mac.clone(),
                subnets: v4.into_iter().chain(v6).collect(),
            },
        )]),
    }
}
