//! Docker's objects as weir's: a bridge network becomes a
//! [`ForeignNetwork`], a running container's interface on one a
//! [`ForeignEndpoint`] with the ports Docker published to it. Pure: the
//! follower feeds it what the API said.

use std::{collections::HashMap, net::Ipv4Addr};

use super::api;
use crate::{
    api::types::{ForeignEndpoint, ForeignNetwork},
    network::{Mode, NetworkSpec, Subnet, Subnet6, parse_mac},
    owner::Owner,
    paths,
    publish::{PortMapping, Proto},
};

const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
const OPT_GATEWAY_MODE: &str = "com.docker.network.bridge.gateway_mode_ipv4";
const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";

/// Why a Docker network is not followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("driver `{0}` is not `bridge`")]
    Driver(String),
    #[error("no IPv4 subnet, and no IPv6 one either")]
    NoSubnet,
    #[error("subnet `{0}`: {1}")]
    Subnet(String, String),
}

/// The weir network for Docker network `n`.
pub fn network(n: &api::Network) -> Result<ForeignNetwork, Skip> {
    if n.driver != "bridge" {
        return Err(Skip::Driver(n.driver.clone()));
    }
    let opts = n.options.clone().unwrap_or_default();
    let off = |key: &str| opts.get(key).is_some_and(|v| v == "false");
    let config = n.ipam.config.clone().unwrap_or_default();
    let of_family = |v6: bool| {
        config
            .iter()
            .find(|c| c.subnet.as_deref().is_some_and(|s| s.contains(':') == v6))
    };
    // Its IPv6 side, when Docker enabled it: weir must know its
    // containers' IPv6 addresses, or it would take them for spoofed.
    let v6 = of_family(true).filter(|_| n.enable_ipv6);
    let subnet6 = v6
        .map(|v6| {
            let text = v6.subnet.clone().unwrap_or_default();
            Subnet6::of_engine(&text).map_err(|e| Skip::Subnet(text.clone(), e.to_string()))
        })
        .transpose()?;
    // An IPv4 side unless Docker made the network IPv6-only
    // (`--ipv4=false`: no IPv4 subnet).
    let (subnet, gateway) = match of_family(false) {
        Some(v4) => {
            let text = v4.subnet.clone().unwrap_or_default();
            let subnet: Subnet = text.parse().map_err(|e: crate::network::SubnetError| {
                Skip::Subnet(text.clone(), e.to_string())
            })?;
            (
                Some(subnet),
                v4.gateway.as_deref().and_then(|g| g.parse().ok()),
            )
        }
        None if subnet6.is_some() => (None, None),
        None => return Err(Skip::NoSubnet),
    };
    let mut spec = NetworkSpec {
        name: n.name.clone(),
        subnet,
        gateway,
        internal: n.internal,
        icc: !off(OPT_ICC),
        masquerade: true,
        mode: Mode::Nat,
        snat_ip: None,
        subnet6,
        gateway6: v6.and_then(|v6| v6.gateway.as_deref().and_then(|g| g.parse().ok())),
    };
    // dockerd started with `--iptables=false` reports masquerade off on
    // its default network whatever `--ip-masq` says (it could not do it
    // itself): that is not the user's wish, and the default network
    // masquerades, as it does under Docker's own rules. A user network
    // says what it was created with.
    let default_bridge = opts.get(OPT_DEFAULT_BRIDGE).is_some_and(|v| v == "true");
    spec.masquerade = default_bridge || !off(OPT_MASQUERADE);
    if opts.get(OPT_GATEWAY_MODE).is_some_and(|m| m == "routed") {
        spec.mode = Mode::Routed;
    }
    let bridge = opts
        .get(OPT_BRIDGE_NAME)
        .cloned()
        .unwrap_or_else(|| format!("br-{}", n.id.get(..12).unwrap_or(&n.id)));
    Ok(ForeignNetwork {
        spec,
        bridge,
        owner: Owner::Docker { id: n.id.clone() },
    })
}

/// Why weir has nothing to do for container `c`'s network, if so: the
/// host's own (`--network host`), none (`--network none`), or another
/// container's namespace (`--network container:NAME`, Compose's
/// `network_mode: "service:…"`), whose endpoint serves both.
#[must_use]
pub fn not_followed(c: &api::Container) -> Option<&'static str> {
    let mode = c.host_config.network_mode.as_str();
    match mode {
        "host" => Some("on the host's network"),
        "none" => Some("on no network"),
        _ if mode.starts_with("container:") => Some("in another container's network namespace"),
        _ => None,
    }
}

/// A Docker network weir follows, as a container's endpoints need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    /// Its weir network's name.
    pub name: String,
    /// `Internal`: it never gives a container its default gateway.
    pub internal: bool,
}

/// libnetwork's order of a container's endpoints (`endpoint.Less` in its
/// `sandbox.go`), best first: a higher `GwPriority` (Docker 28; 0 before),
/// not `docker_gwbridge`, not internal, a gateway of both families, then
/// of IPv6 alone, then of IPv4 alone, then none; then the network's name,
/// byte by byte.
fn libnetwork_order<'a, S: std::hash::BuildHasher>(
    c: &'a api::Container,
    followed: &HashMap<String, Followed, S>,
) -> Vec<(&'a String, &'a api::EndpointSettings)> {
    let mut on: Vec<(&String, &api::EndpointSettings)> =
        c.network_settings.networks.iter().collect();
    let key = |(name, s): &(&String, &api::EndpointSettings)| {
        let internal = followed.get(&s.network_id).is_some_and(|f| f.internal);
        let gateways = match (s.gateway.is_empty(), s.ipv6_gateway.is_empty()) {
            (false, false) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (true, true) => 3,
        };
        (
            std::cmp::Reverse(s.gw_priority),
            name.as_str() == "docker_gwbridge",
            internal,
            gateways,
            name.as_bytes().to_vec(),
        )
    };
    on.sort_by_cached_key(key);
    on
}

/// The network whose endpoint gives the container its default gateway
/// (`sandbox.getGatewayEndpoint`): the first in [`libnetwork_order`] with
/// an IPv4 gateway (or, on IPv6-only networks, an IPv6 one). libnetwork
/// programs the published ports there, and moves them when a network
/// connected or disconnected changes it; an internal network's endpoint
/// gets none. A picture that names no gateway at all (Docker always
/// does) has the first in order.
fn gateway<'a>(on: &[(&'a String, &api::EndpointSettings)]) -> Option<&'a String> {
    on.iter()
        .find(|(_, s)| !s.gateway.is_empty())
        .or_else(|| on.iter().find(|(_, s)| !s.ipv6_gateway.is_empty()))
        .or_else(|| on.first())
        .map(|(name, _)| *name)
}

/// The endpoints of running container `c` on the followed networks
/// (`followed`: Docker network id -> the weir network), in libnetwork's
/// order. The one on the network that gives the container its default
/// gateway, as libnetwork chooses it ([`gateway`]), has the container's
/// name and its published ports (none if that network is internal, as
/// under Docker's own rules); the others are `<name>.<network>`. When the
/// gateway's network is not followed (another driver's), the first
/// followed endpoint has the name and none has the ports.
#[must_use]
pub fn endpoints<S: std::hash::BuildHasher>(
    c: &api::Container,
    followed: &HashMap<String, Followed, S>,
) -> Vec<ForeignEndpoint> {
    if !c.state.running || c.state.pid == 0 {
        return Vec::new();
    }
    let name = c.name.trim_start_matches('/').to_owned();
    let all = libnetwork_order(c, followed);
    let gateway = gateway(&all);
    let on: Vec<(&String, &api::EndpointSettings)> = all
        .into_iter()
        .filter(|(_, s)| followed.contains_key(&s.network_id))
        .collect();
    let primary = on
        .iter()
        .position(|(n, _)| Some(*n) == gateway)
        .unwrap_or(0);
    let ports = ports(c);
    on.iter()
        .enumerate()
        .filter_map(|(i, (docker_net, s))| {
            let ip: Option<Ipv4Addr> = s.ip_address.parse().ok();
            let mac = parse_mac(&s.mac_address)?;
            let network = followed.get(&s.network_id)?;
            let ip6: Option<std::net::Ipv6Addr> = s.global_ipv6_address.parse().ok();
            // An interface with no address yet is no endpoint yet.
            if ip.is_none() && ip6.is_none() {
                return None;
            }
            let published = Some(*docker_net) == gateway && !network.internal;
            Some(ForeignEndpoint {
                name: if i == primary {
                    name.clone()
                } else {
                    format!("{name}.{docker_net}")
                },
                owner: Owner::Docker { id: c.id.clone() },
                network: network.name.clone(),
                netns: paths::proc_ns_net(c.state.pid),
                ip,
                ip6,
                mac,
                // An IPv6 binding needs an IPv6 address to lead to.
                ports: if published {
                    ports
                        .iter()
                        .filter(|m| ip6.is_some() || !m.is_ipv6_only())
                        .copied()
                        .collect()
                } else {
                    Vec::new()
                },
            })
        })
        .collect()
}

/// `NetworkSettings.Ports` as mappings: one per binding. `""` and
/// `0.0.0.0` are every address of both families, which holds the `[::]`
/// binding Docker lists beside it for the same port; `::` alone is every
/// IPv6 address, any other address that one.
fn ports(c: &api::Container) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for (port, bindings) in c.network_settings.ports.iter().flatten() {
        let Some((number, proto)) = port.split_once('/') else {
            continue;
        };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            // SCTP is not in weir's datapath.
            _ => continue,
        };
        let Ok(container_port) = number.parse::<u16>() else {
            continue;
        };
        for b in bindings.iter().flatten() {
            let host_ip = if b.host_ip.is_empty() {
                PortMapping::EVERY
            } else {
                match b.host_ip.parse::<std::net::IpAddr>() {
                    Ok(ip) => ip,
                    Err(_) => continue,
                }
            };
            let Ok(host_port) = b.host_port.parse::<u16>() else {
                continue;
            };
            let m = PortMapping {
                proto,
                host_ip,
                host_port,
                container_port,
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    // `[::]:H` beside `0.0.0.0:H` to the same port is the same one.
    let every: Vec<PortMapping> = out
        .iter()
        .filter(|m| m.host_ip == PortMapping::EVERY)
        .copied()
        .collect();
    out.retain(|m| {
        !(m.host_ip.is_ipv6()
            && m.host_ip.is_unspecified()
            && every.iter().any(|e| {
                PortMapping {
                    host_ip: m.host_ip,
                    ..*e
                } == *m
            }))
    });
    out.sort_by_key(|m| (m.host_port, m.proto.number(), m.host_ip));
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// `GET /networks` from dockerd 20.10 (abridged): the default network
    /// and a user network with icc off.
    const NETWORKS: &str = r#"[
      {"Name":"bridge","Id":"6d41584cfb5f1d63e908b37fe43b956f9e5b0efa2ce10dbb53434b8ab638529a","Driver":"bridge",
       "Internal":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.31.250.0/24","Gateway":"172.31.250.1"}]},
       "Options":{"com.docker.network.bridge.default_bridge":"true","com.docker.network.bridge.enable_icc":"true",
         "com.docker.network.bridge.enable_ip_masquerade":"false","com.docker.network.bridge.host_binding_ipv4":"0.0.0.0",
         "com.docker.network.bridge.name":"docker0","com.docker.network.driver.mtu":"1500"}},
      {"Name":"back","Id":"0123456789abcdef0123","Driver":"bridge","Internal":true,
       "IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.91.0.0/24"}]},
       "Options":{"com.docker.network.bridge.enable_icc":"false"}},
      {"Name":"direct","Id":"abcdef0123456789abcd","Driver":"bridge","Internal":false,
       "IPAM":{"Config":[{"Subnet":"fd00:1::/64"},{"Subnet":"10.92.0.0/24","Gateway":"10.92.0.254"}]},
       "Options":{"com.docker.network.bridge.enable_ip_masquerade":"false",
         "com.docker.network.bridge.gateway_mode_ipv4":"routed"}},
      {"Name":"dual","Id":"dddd0123456789abcdef","Driver":"bridge","EnableIPv6":true,
       "IPAM":{"Config":[{"Subnet":"10.93.0.0/24"},{"Subnet":"fd00:93::/80","Gateway":"fd00:93::1"}]},
       "Options":{}},
      {"Name":"host","Id":"ffff","Driver":"host","IPAM":{"Config":[]},"Options":{}},
      {"Name":"none","Id":"eeee","Driver":"null","IPAM":{"Config":null},"Options":null},
      {"Name":"only6","Id":"cccc0123456789abcdef","Driver":"bridge","EnableIPv4":false,"EnableIPv6":true,
       "IPAM":{"Config":[{"Subnet":"fd00:94::/64","Gateway":"fd00:94::1"}]},"Options":{}},
      {"Name":"nothing","Id":"bbbb0123456789abcdef","Driver":"bridge","EnableIPv6":false,
       "IPAM":{"Config":[{"Subnet":"fd00:95::/64"}]},"Options":{}}
    ]"#;

    /// `GET /containers/ID/json` (abridged) of `docker run -d --name web
    /// -p 8080:80 -p 127.0.0.1:5353:53/udp`.
    const CONTAINER: &str = r#"{
      "Id":"40bf264cd667afb0a265159304188e44d1b9c3a67826edb7371a4c888ee7eb71","Name":"/web",
      "State":{"Running":true,"Pid":27864},"HostConfig":{"NetworkMode":"default"},
      "NetworkSettings":{"Ports":{"53/udp":[{"HostIp":"127.0.0.1","HostPort":"5353"}],
          "80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}],"443/tcp":null},
        "SandboxKey":"/tmp/dk1/exec/netns/b241bc1e4a1d",
        "Networks":{"bridge":{"NetworkID":"6d41584cfb5f1d63e908b37fe43b956f9e5b0efa2ce10dbb53434b8ab638529a",
          "EndpointID":"aa48","Gateway":"172.31.250.1","IPAddress":"172.31.250.2","IPPrefixLen":24,
          "MacAddress":"02:42:ac:1f:fa:02"},
          "back":{"NetworkID":"0123456789abcdef0123","IPAddress":"10.91.0.5","MacAddress":"02:42:0a:5b:00:05",
            "GlobalIPv6Address":"fd00:91::5"}}}}"#;

    fn follow(name: &str) -> Followed {
        Followed {
            name: name.to_owned(),
            internal: false,
        }
    }

    fn networks() -> Vec<Result<ForeignNetwork, Skip>> {
        let list: Vec<api::Network> = serde_json::from_str(NETWORKS).unwrap();
        list.iter().map(network).collect()
    }

    #[test]
    fn bridge_networks_keep_docker_s_bridge_subnet_and_options() {
        let nets = networks();
        let default = nets[0].as_ref().unwrap();
        assert_eq!(default.bridge, "docker0");
        assert_eq!(default.spec.subnet.unwrap().to_string(), "172.31.250.0/24");
        assert_eq!(default.spec.gateway, Some(Ipv4Addr::new(172, 31, 250, 1)));
        assert!(default.spec.icc && default.spec.masquerade && !default.spec.internal);
        let back = nets[1].as_ref().unwrap();
        assert_eq!(back.bridge, "br-0123456789ab");
        assert!(!back.spec.icc && back.spec.internal && back.spec.gateway.is_none());
        assert_eq!(
            back.owner,
            Owner::Docker {
                id: "0123456789abcdef0123".into()
            }
        );
        let direct = nets[2].as_ref().unwrap();
        assert_eq!(direct.spec.subnet.unwrap().to_string(), "10.92.0.0/24");
        assert_eq!(direct.spec.gateway, Some(Ipv4Addr::new(10, 92, 0, 254)));
        assert!(!direct.spec.masquerade && direct.spec.mode == Mode::Routed);
        // IPv6 subnets count only where Docker enabled IPv6, and may be
        // longer than weir's own.
        assert_eq!(direct.spec.subnet6, None);
        let dual = nets[3].as_ref().unwrap();
        assert_eq!(dual.spec.subnet6.unwrap().to_string(), "fd00:93::/80");
        assert_eq!(dual.spec.gateway6, Some("fd00:93::1".parse().unwrap()));
        assert_eq!(nets[4], Err(Skip::Driver("host".into())));
        assert_eq!(nets[5], Err(Skip::Driver("null".into())));
        // `--ipv4=false --ipv6`: an IPv6-only network.
        let only6 = nets[6].as_ref().unwrap();
        assert_eq!(only6.spec.subnet, None);
        assert_eq!(only6.spec.subnet6.unwrap().to_string(), "fd00:94::/64");
        assert_eq!(nets[7], Err(Skip::NoSubnet), "IPv6 off and no IPv4");
    }

    #[test]
    fn a_container_is_an_endpoint_per_followed_network_with_its_ports_on_the_primary() {
        let c: api::Container = serde_json::from_str(CONTAINER).unwrap();
        let mut followed = HashMap::new();
        for n in networks().into_iter().flatten() {
            followed.insert(
                n.owner.docker_id().unwrap().to_owned(),
                Followed {
                    name: n.spec.name,
                    internal: n.spec.internal,
                },
            );
        }
        let eps = endpoints(&c, &followed);
        assert_eq!(eps.len(), 2);
        let (web, back) = (&eps[0], &eps[1]);
        assert_eq!(web.name, "web");
        assert_eq!(web.network, "bridge");
        assert_eq!(web.ip, Some(Ipv4Addr::new(172, 31, 250, 2)));
        assert_eq!(web.mac, [0x02, 0x42, 0xac, 0x1f, 0xfa, 0x02]);
        assert_eq!(web.netns, PathBuf::from("/proc/27864/ns/net"));
        let shown: Vec<String> = web.ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080"]
        );
        assert_eq!(back.name, "web.back");
        assert!(back.ports.is_empty());
        assert_eq!(
            (web.ip6, back.ip6),
            (None, Some("fd00:91::5".parse().unwrap()))
        );

        // Only the followed networks count; a stopped container has none.
        followed.retain(|_, f| f.name == "back");
        assert_eq!(endpoints(&c, &followed)[0].name, "web");
        let mut stopped = c.clone();
        stopped.state.running = false;
        assert!(endpoints(&stopped, &followed).is_empty());
    }

    #[test]
    fn a_container_on_an_ipv6_only_network_has_no_ipv4_address() {
        let c: api::Container = serde_json::from_str(
            r#"{"Id":"s6","Name":"/s6","State":{"Running":true,"Pid":9},"HostConfig":{"NetworkMode":"only6"},
            "NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"::","HostPort":"8080"}]},
            "Networks":{"only6":{"NetworkID":"cccc0123456789abcdef","IPAddress":"",
              "MacAddress":"02:42:00:00:00:02","GlobalIPv6Address":"fd00:94::2"}}}}"#,
        )
        .unwrap();
        let followed = HashMap::from([("cccc0123456789abcdef".to_owned(), follow("only6"))]);
        let eps = endpoints(&c, &followed);
        assert_eq!(
            (eps[0].ip, eps[0].ip6),
            (None, Some("fd00:94::2".parse().unwrap()))
        );
        assert_eq!(eps[0].ports.len(), 1);
    }

    /// `docker run --network dual -p [::]:9090:90 -p [fd00::1]:9091:91
    /// -p 9092:92`: the IPv6 bindings are the endpoint's when it has an
    /// IPv6 address, and left out when it has none.
    #[test]
    fn ipv6_bindings_lead_to_an_ipv6_address() {
        let json = |ip6: &str| {
            format!(
                r#"{{"Id":"d1","Name":"/d1","State":{{"Running":true,"Pid":7}},"HostConfig":{{"NetworkMode":"dual"}},
                "NetworkSettings":{{"Ports":{{"90/tcp":[{{"HostIp":"::","HostPort":"9090"}}],
                  "91/tcp":[{{"HostIp":"fd00::1","HostPort":"9091"}}],
                  "92/tcp":[{{"HostIp":"0.0.0.0","HostPort":"9092"}},{{"HostIp":"::","HostPort":"9092"}}]}},
                "Networks":{{"dual":{{"NetworkID":"dddd0123456789abcdef","IPAddress":"10.93.0.2",
                  "MacAddress":"02:42:0a:5d:00:02","GlobalIPv6Address":"{ip6}"}}}}}}}}"#
            )
        };
        let followed = HashMap::from([("dddd0123456789abcdef".to_owned(), follow("dual"))]);
        let shown = |ip6: &str| -> Vec<String> {
            let c: api::Container = serde_json::from_str(&json(ip6)).unwrap();
            endpoints(&c, &followed)[0]
                .ports
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            shown("fd00:93::2"),
            [
                "90/tcp -> [::]:9090",
                "91/tcp -> [fd00::1]:9091",
                "92/tcp -> 0.0.0.0:9092"
            ]
        );
        assert_eq!(shown(""), ["92/tcp -> 0.0.0.0:9092"]);
    }

    /// A container on `nets` (name, internal, IPv4 gateway, IPv6 gateway,
    /// `GwPriority`), every one followed, published `-p 8080:80`.
    fn on(nets: &[(&str, bool, &str, &str, i64)]) -> (api::Container, HashMap<String, Followed>) {
        let mut networks = serde_json::Map::new();
        let mut followed = HashMap::new();
        for (i, (name, internal, gw, gw6, priority)) in nets.iter().enumerate() {
            let id = format!("id-{name}");
            networks.insert(
                (*name).to_owned(),
                serde_json::json!({"NetworkID": id, "IPAddress": format!("10.{i}.0.2"),
                    "MacAddress": format!("02:42:0a:0{i}:00:02"), "Gateway": gw,
                    "IPv6Gateway": gw6, "GwPriority": priority}),
            );
            followed.insert(
                id,
                Followed {
                    name: (*name).to_owned(),
                    internal: *internal,
                },
            );
        }
        let c = serde_json::json!({"Id": "c1", "Name": "/web", "State": {"Running": true, "Pid": 5},
            "HostConfig": {"NetworkMode": nets[0].0},
            "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
                "Networks": networks}});
        (serde_json::from_value(c).unwrap(), followed)
    }

    /// (endpoint name, network, whether it has the ports), in order.
    fn picture(nets: &[(&str, bool, &str, &str, i64)]) -> Vec<(String, String, bool)> {
        let (c, followed) = on(nets);
        endpoints(&c, &followed)
            .into_iter()
            .map(|e| (e.name, e.network, !e.ports.is_empty()))
            .collect()
    }

    fn shown(list: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
        list.iter()
            .map(|(n, net, p)| ((*n).to_owned(), (*net).to_owned(), *p))
            .collect()
    }

    /// Compose's `web` on `shop_back` (internal, named first as the
    /// container's network mode) and `shop_front`: the ports and the name
    /// go where libnetwork puts the default gateway, never an internal
    /// network (Docker 20.10 gives the internal one a gateway too).
    #[test]
    fn the_ports_go_to_the_endpoint_that_gives_the_default_gateway() {
        let compose = [
            ("shop_back", true, "172.20.0.1", "", 0),
            ("shop_front", false, "172.21.0.1", "", 0),
        ];
        assert_eq!(
            picture(&compose),
            shown(&[
                ("web", "shop_front", true),
                ("web.shop_back", "shop_back", false)
            ])
        );
        // Two networks alike: the first by name, whatever the network
        // mode names (`docker network connect neta` to a container run on
        // `netb` moves its ports to `neta`, as libnetwork does).
        let two = [
            ("netb", false, "10.1.0.1", "", 0),
            ("neta", false, "10.0.0.1", "", 0),
        ];
        assert_eq!(
            picture(&two),
            shown(&[("web", "neta", true), ("web.netb", "netb", false)])
        );
        // A gateway of both families before one of IPv4 alone.
        let dual = [
            ("neta", false, "10.0.0.1", "", 0),
            ("zdual", false, "10.1.0.1", "fd00::1", 0),
        ];
        assert_eq!(picture(&dual)[0], ("web".into(), "zdual".into(), true));
        // Docker 28's gw-priority before all; an internal network of
        // Docker 25 and later has no gateway at all.
        let priority = [
            ("neta", false, "10.0.0.1", "", 0),
            ("netz", false, "10.1.0.1", "", 10),
        ];
        assert_eq!(picture(&priority)[0], ("web".into(), "netz".into(), true));
        // Only internal networks: the gateway is an internal one's, and no
        // port is published (libnetwork programs none on an internal
        // network).
        let vault = [("vault", true, "10.9.0.1", "", 0)];
        assert_eq!(picture(&vault), shown(&[("web", "vault", false)]));
    }

    #[test]
    fn host_none_and_shared_namespaces_are_left_alone() {
        let mode = |m: &str| {
            let (mut c, _) = on(&[("neta", false, "10.0.0.1", "", 0)]);
            c.host_config.network_mode = m.to_owned();
            not_followed(&c)
        };
        assert!(mode("host").is_some() && mode("none").is_some());
        assert!(mode("container:40bf264cd667").is_some());
        assert!(mode("neta").is_none() && mode("default").is_none() && mode("bridge").is_none());
    }
}
