//! What `weir-cni` asks the agent (`/v1/cni/*`) and what it answers.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::{
    error::AgentError,
    publish::{PortMapping, Proto},
};

/// A CNI `portMappings` entry (`runtimeConfig.portMappings`). Runtimes
/// spell the keys two ways: the CNI convention's `hostPort` (Podman,
/// libcni's own), and Go's field names, `HostPort`, that containerd's CRI
/// sends (go-cni's `PortMapping` has no JSON tags; Go's decoder, and so the
/// reference `portmap` plugin, match keys without regard to case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniPort {
    #[serde(alias = "HostPort")]
    pub host_port: u16,
    #[serde(alias = "ContainerPort")]
    pub container_port: u16,
    #[serde(default = "tcp", alias = "Protocol")]
    pub protocol: String,
    #[serde(default, rename = "hostIP", alias = "HostIP", alias = "hostIp")]
    pub host_ip: Option<String>,
}

fn tcp() -> String {
    "tcp".to_owned()
}

/// ADD (and CHECK): what the runtime asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CniAdd {
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub network: String,
    /// The IPv4 address asked for: `runtimeConfig.ips`, or `IP=` in
    /// `CNI_ARGS`.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address asked for (`runtimeConfig.ips`).
    #[serde(default)]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// `MAC=` in `CNI_ARGS`.
    #[serde(default)]
    pub mac: Option<String>,
    /// A name for `weir ps` (`K8S_POD_NAME`, Podman's container name).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ports: Vec<CniPort>,
}

/// What ADD made, for the plugin's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniAttachment {
    pub endpoint: String,
    pub host_if: String,
    pub host_mac: String,
    pub ifname: String,
    pub mac: String,
    /// The IPv4 address, its prefix and gateway; none on an IPv6-only
    /// network.
    pub ip: Option<(Ipv4Addr, u8, Ipv4Addr)>,
    /// The IPv6 address, its prefix and gateway, on a dual-stack or
    /// IPv6-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<(std::net::Ipv6Addr, u8, std::net::Ipv6Addr)>,
    /// The ports published, as `-p` specs were.
    pub ports: Vec<crate::publish::PortMapping>,
    /// Where the network's names are answered (weir's resolver at its
    /// gateway), if it has names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<IpAddr>,
}

/// DEL: one attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniRef {
    pub container_id: String,
    pub ifname: String,
}

/// GC: the attachments of `network` the runtime still has.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CniGc {
    pub network: String,
    pub valid: Vec<CniRef>,
}

impl CniPort {
    /// The mapping it asks for. No `hostIP` is every address (of both
    /// families); an IPv6 one is that address (`::` every IPv6 one).
    pub fn mapping(&self) -> Result<PortMapping, AgentError> {
        let proto = match self.protocol.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            other => {
                return Err(AgentError::CniPort {
                    what: format!("protocol `{other}`"),
                });
            }
        };
        let host_ip = match self.host_ip.as_deref().filter(|h| !h.is_empty()) {
            None => PortMapping::EVERY,
            Some(h) => h.parse::<IpAddr>().map_err(|_| AgentError::CniPort {
                what: format!("hostIP `{h}`"),
            })?,
        };
        Ok(PortMapping {
            proto,
            host_ip,
            host_port: self.host_port,
            container_port: self.container_port,
        })
    }
}
