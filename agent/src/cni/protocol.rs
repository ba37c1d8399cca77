//! The CNI protocol as `weir-cni` speaks it (the CNI spec 0.3.0 to 1.1.0):
//! the network configuration on stdin, the environment, the results and
//! errors on stdout.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::types::{CniAttachment, CniPort};

/// The spec versions weir-cni speaks.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest of them.
pub const LATEST: &str = "1.1.0";

/// The spec's error codes, and weir's own from 100.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// The weir agent does not answer on its socket.
    pub const AGENT_UNREACHABLE: u32 = 100;
    /// The network the configuration names is not one of the agent's.
    pub const UNKNOWN_NETWORK: u32 = 101;
    /// The agent refused the request (an address or port in use, ...).
    pub const REFUSED: u32 = 102;
    /// The agent failed doing it (netlink, the datapath).
    pub const AGENT_FAILED: u32 = 103;
}

/// A CNI error result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    #[must_use]
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The JSON the spec prints on stdout.
    #[must_use]
    pub fn to_json(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

/// `runtimeConfig`: what the runtime fills in for the capabilities the
/// plugin declares (`portMappings`, `ips`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RuntimeConfig {
    #[serde(rename = "portMappings", default)]
    pub port_mappings: Vec<CniPort>,
    /// Static addresses (the `ips` convention): one a family at most,
    /// each `ADDRESS` or `ADDRESS/PREFIX`.
    #[serde(default)]
    pub ips: Vec<String>,
}

/// The addresses `ips` asks for: (IPv4, IPv6).
pub fn static_ips(ips: &[String]) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), CniError> {
    let (mut v4, mut v6) = (None, None);
    for text in ips {
        let bad = |why: &str| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("runtimeConfig.ips entry `{text}` {why}"),
                "",
            )
        };
        let address = text.split_once('/').map_or(text.as_str(), |(a, _)| a);
        // The same address twice is one (`podman network reload` appends
        // the addresses a container has to those it was given).
        match address.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if v4.is_none_or(|had| had == a) => v4 = Some(a),
            Ok(IpAddr::V6(a)) if v6.is_none_or(|had| had == a) => v6 = Some(a),
            Ok(_) => return Err(bad("is a second address of its family")),
            Err(_) => return Err(bad("is not an IP address")),
        }
    }
    Ok((v4, v6))
}

/// `cni.dev/valid-attachments` (GC).
#[derive(Clone, Debug, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The plugin's network configuration, as the runtime passes it.
#[derive(Clone, Debug, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The weir network (default: `name`).
    #[serde(default)]
    pub network: Option<String>,
    /// The agent's socket (default `/run/weir/weir.sock`).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
    /// Passed through to the result's `dns`.
    #[serde(default)]
    pub dns: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let conf: Self = serde_json::from_str(text).map_err(|e| {
            CniError::new(
                code::DECODE,
                "the network configuration on stdin is not valid JSON of a CNI config",
                e.to_string(),
            )
        })?;
        Ok(conf)
    }

    /// The version to answer in: the config's, when weir-cni speaks it.
    pub fn version(&self) -> Result<&str, CniError> {
        let v = if self.cni_version.is_empty() {
            "0.3.0"
        } else {
            self.cni_version.as_str()
        };
        if SUPPORTED.contains(&v) {
            Ok(v)
        } else {
            Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("CNI version {v} is not supported"),
                format!("weir-cni speaks {}", SUPPORTED.join(", ")),
            ))
        }
    }

    #[must_use]
    pub fn network(&self) -> &str {
        self.network.as_deref().unwrap_or(&self.name)
    }
}

/// `CNI_ARGS`: `K=V` pairs separated by `;`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub pod_name: Option<String>,
}

/// Keys weir-cni knows; others are refused unless `IgnoreUnknown=1`.
const KNOWN_ARGS: &[&str] = &[
    "IgnoreUnknown",
    "IP",
    "MAC",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl Args {
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let pairs: BTreeMap<&str, &str> = text
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.split_once('=').ok_or_else(|| {
                    CniError::new(
                        code::INVALID_ENVIRONMENT,
                        format!("CNI_ARGS entry `{p}` is not KEY=VALUE"),
                        "",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let ignore = pairs
            .get("IgnoreUnknown")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
        if !ignore && let Some(k) = pairs.keys().find(|k| !KNOWN_ARGS.contains(k)) {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!("unknown CNI_ARGS key `{k}`"),
                "pass IgnoreUnknown=1 to ignore it",
            ));
        }
        let ip = match pairs.get("IP") {
            Some(v) => Some(v.parse().map_err(|_| {
                CniError::new(
                    code::INVALID_ENVIRONMENT,
                    format!("CNI_ARGS IP=`{v}` is not an IPv4 address"),
                    "",
                )
            })?),
            None => None,
        };
        Ok(Self {
            ip,
            mac: pairs.get("MAC").map(|v| (*v).to_owned()),
            pod_name: pairs.get("K8S_POD_NAME").map(|v| (*v).to_owned()),
        })
    }
}

/// The ADD result in `version`'s shape: the node-side and container-side
/// interfaces, the address of each family with its gateway, a default
/// route of each, DNS: the configuration's `dns` if it has one, else
/// weir's resolver for the network (Podman writes it first in the
/// container's `resolv.conf`; it answers the network's names and forwards
/// the rest).
#[must_use]
pub fn add_result(version: &str, a: &CniAttachment, netns: &str, dns: Option<&Value>) -> Value {
    let ip = |family: &str, address: String, gateway: String| {
        let mut ip = json!({"address": address, "gateway": gateway, "interface": 1});
        // 0.3.x and 0.4.0 say each address's family; 1.x dropped it.
        if version.starts_with("0.") {
            ip["version"] = json!(family);
        }
        ip
    };
    let (mut ips, mut routes) = (Vec::new(), Vec::new());
    if let Some((ip4, prefix, gateway)) = a.ip {
        ips.push(ip("4", format!("{ip4}/{prefix}"), gateway.to_string()));
        routes.push(json!({"dst": "0.0.0.0/0", "gw": gateway.to_string()}));
    }
    if let Some((ip6, prefix6, gateway6)) = a.ip6 {
        ips.push(ip("6", format!("{ip6}/{prefix6}"), gateway6.to_string()));
        routes.push(json!({"dst": "::/0", "gw": gateway6.to_string()}));
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": a.host_if, "mac": a.host_mac},
            {"name": a.ifname, "mac": a.mac, "sandbox": netns},
        ],
        "ips": ips,
        "routes": routes,
        "dns": dns.cloned().unwrap_or_else(|| match a.dns {
            Some(server) => json!({"nameservers": [server.to_string()]}),
            None => json!({}),
        }),
    })
}

/// VERSION's answer.
#[must_use]
pub fn version_result(version: &str) -> Value {
    json!({"cniVersion": version, "supportedVersions": SUPPORTED})
}

/// What the runtime says in the environment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Env {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
}

impl Env {
    #[must_use]
    pub fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
        }
    }

    /// A variable the command needs.
    pub fn require<'a>(&self, value: Option<&'a String>, name: &str) -> Result<&'a str, CniError> {
        value.map(String::as_str).ok_or_else(|| {
            CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("{name} is not set"),
                format!(
                    "CNI_COMMAND={} needs {name}",
                    self.command.as_deref().unwrap_or("")
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_know_their_keys_unless_told_to_ignore() {
        let a = Args::parse("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.88.0.9;FOO=bar").unwrap();
        assert_eq!(a.pod_name.as_deref(), Some("web"));
        assert_eq!(a.ip, Some("10.88.0.9".parse().unwrap()));
        let e = Args::parse("FOO=bar").unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert_eq!(
            Args::parse("IP=nope").unwrap_err().code,
            code::INVALID_ENVIRONMENT
        );
        assert_eq!(Args::parse("").unwrap(), Args::default());
    }

    #[test]
    fn static_ips_take_one_address_a_family_with_or_without_a_prefix() {
        let ips = |v: &[&str]| static_ips(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            ips(&["10.88.0.50/16", "fd00::50"]).unwrap(),
            (
                Some("10.88.0.50".parse().unwrap()),
                Some("fd00::50".parse().unwrap())
            )
        );
        assert_eq!(ips(&[]).unwrap(), (None, None));
        assert_eq!(
            ips(&["10.0.0.1", "10.0.0.1/24"]).unwrap(),
            (Some("10.0.0.1".parse().unwrap()), None)
        );
        assert_eq!(ips(&["nope"]).unwrap_err().code, code::INVALID_CONFIG);
        assert_eq!(
            ips(&["10.0.0.1", "10.0.0.2"]).unwrap_err().code,
            code::INVALID_CONFIG
        );
        let conf = NetConf::parse(
            r#"{"cniVersion":"1.0.0","name":"w","runtimeConfig":{"ips":["10.88.0.9"],"portMappings":[]}}"#,
        )
        .unwrap();
        assert_eq!(conf.runtime_config.ips, ["10.88.0.9"]);
    }

    #[test]
    fn versions_are_checked_and_results_take_their_shape() {
        let conf =
            NetConf::parse(r#"{"cniVersion":"0.4.0","name":"w","type":"weir-cni"}"#).unwrap();
        assert_eq!(conf.version().unwrap(), "0.4.0");
        assert_eq!(conf.network(), "w");
        let bad = NetConf::parse(r#"{"cniVersion":"9.9.9","name":"w"}"#).unwrap();
        assert_eq!(bad.version().unwrap_err().code, code::INCOMPATIBLE_VERSION);
        assert_eq!(NetConf::parse("{").unwrap_err().code, code::DECODE);
        let a = CniAttachment {
            endpoint: "web".into(),
            host_if: "weirv3".into(),
            host_mac: "aa:bb:cc:dd:ee:ff".into(),
            ifname: "eth0".into(),
            mac: "02:42:0a:58:00:02".into(),
            ip: Some((
                "10.88.0.2".parse().unwrap(),
                24,
                "10.88.0.1".parse().unwrap(),
            )),
            ip6: None,
            ports: Vec::new(),
            dns: None,
        };
        let old = add_result("0.4.0", &a, "/run/netns/x", None);
        assert_eq!(old["dns"], json!({}));
        let named = CniAttachment {
            dns: Some("10.88.0.1".parse().unwrap()),
            ..a.clone()
        };
        let r = add_result("1.0.0", &named, "/run/netns/x", None);
        assert_eq!(r["dns"], json!({"nameservers": ["10.88.0.1"]}));
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][0]["address"], "10.88.0.2/24");
        assert_eq!(old["interfaces"][1]["sandbox"], "/run/netns/x");
        let new = add_result(
            "1.0.0",
            &a,
            "/run/netns/x",
            Some(&json!({"nameservers": ["10.88.0.1"]})),
        );
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["dns"]["nameservers"][0], "10.88.0.1");
        assert_eq!(new["routes"][0]["gw"], "10.88.0.1");
        assert_eq!(new["ips"].as_array().unwrap().len(), 1);
        // Dual stack: an address and a default route of each family.
        let dual = CniAttachment {
            ip6: Some((
                "fd00:88::2".parse().unwrap(),
                64,
                "fd00:88::1".parse().unwrap(),
            )),
            ..a
        };
        let r = add_result("0.4.0", &dual, "/run/netns/x", None);
        assert_eq!(r["ips"][1]["address"], "fd00:88::2/64");
        assert_eq!(r["ips"][1]["gateway"], "fd00:88::1");
        assert_eq!(r["ips"][1]["version"], "6");
        assert_eq!(r["routes"][1]["dst"], "::/0");
        let only6 = CniAttachment { ip: None, ..dual };
        let r = add_result("1.0.0", &only6, "/run/netns/x", None);
        assert_eq!(r["ips"].as_array().unwrap().len(), 1);
        assert_eq!(r["ips"][0]["address"], "fd00:88::2/64");
        assert_eq!(r["routes"], json!([{"dst": "::/0", "gw": "fd00:88::1"}]));
    }
}
