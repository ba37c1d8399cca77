//! The plugin's translations, on JSON in the shapes Podman and netavark
//! write (netavark's `plugin-API.md`, `src/network/types.rs` and
//! `test/500-plugin.bats`; Podman's `libnetwork/netavark`).

use std::path::Path;

use serde_json::{Value, json};

use super::{
    NetavarkError,
    protocol::{
        Network, PluginExec, created, port_mappings, setup_request, socket, spec_of, status_block,
        teardown_request,
    },
    run,
};
use crate::{
    api::types::{CniAttachment, NatStats, NetworkView},
    network::{Mode, Registry},
    publish::{PortMapping, Proto},
};

const ID: &str = "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9";

/// What Podman hands `create` for `podman network create -d weir NAME`
/// with `extra` merged in.
fn asked(extra: &Value) -> Network {
    let mut v = json!({
        "name": "front",
        "id": ID,
        "driver": "weir",
        "created": "2026-05-01T10:00:00.123456789Z",
        "ipv6_enabled": false,
        "internal": false,
        "dns_enabled": true,
        "labels": {"app": "shop"},
        "ipam_options": {},
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn refusal(extra: &Value) -> String {
    spec_of(&asked(extra)).unwrap_err().to_string()
}

#[test]
fn create_maps_podman_s_network_onto_weir_s() {
    let spec = spec_of(&asked(&json!({}))).unwrap();
    assert_eq!(spec.name, "front");
    assert!(
        spec.subnet.is_none() && spec.subnet6.is_none(),
        "from the pools"
    );
    assert!(spec.icc && spec.masquerade && !spec.internal && spec.mode == Mode::Nat);

    let spec = spec_of(&asked(&json!({
        "internal": true,
        "subnets": [
            {"subnet": "10.89.0.0/24", "gateway": "10.89.0.254"},
            {"subnet": "fd00:89::/64"},
        ],
        "ipv6_enabled": true,
        "options": {"icc": "false", "isolate": "strict", "weir_socket": "/run/x.sock"},
    })))
    .unwrap();
    assert_eq!(spec.subnet.unwrap().to_string(), "10.89.0.0/24");
    assert_eq!(spec.gateway.unwrap().to_string(), "10.89.0.254");
    assert_eq!(spec.subnet6.unwrap().to_string(), "fd00:89::/64");
    assert!(spec.gateway6.is_none() && spec.internal && !spec.icc);

    let spec = spec_of(&asked(&json!({
        "options": {"mode": "routed", "masquerade": "0", "isolate": "1"},
    })))
    .unwrap();
    assert_eq!(spec.mode, Mode::Routed);
    assert!(!spec.masquerade);
    let spec = spec_of(&asked(&json!({"options": {"snat_ip": "203.0.113.9"}}))).unwrap();
    assert_eq!(spec.snat_ip.unwrap().to_string(), "203.0.113.9");
}

#[test]
fn create_refuses_what_weir_has_no_counterpart_for() {
    for (extra, says) in [
        (
            json!({"options": {"mtu": "9000"}}),
            "option `mtu` is not one weir has",
        ),
        (
            json!({"options": {"isolate": "false"}}),
            "never reach each other",
        ),
        (json!({"options": {"icc": "maybe"}}), "not true or false"),
        (
            json!({"options": {"mode": "bridge"}}),
            "invalid mode `bridge`",
        ),
        (
            json!({"options": {"snat_ip": "::1"}}),
            "not an IPv4 address",
        ),
        (
            json!({"ipam_options": {"driver": "dhcp"}}),
            "ipam driver is `dhcp`",
        ),
        (
            json!({"ipv6_enabled": true}),
            "weir has no IPv6 address pool",
        ),
        (
            json!({"subnets": [{"subnet": "10.1.0.0/24"}, {"subnet": "10.2.0.0/24"}]}),
            "10.2.0.0/24 is a second one of its family",
        ),
        (
            json!({"subnets": [{"subnet": "10.1.0.0/24",
                "lease_range": {"start_ip": "10.1.0.10"}}]}),
            "has a lease range",
        ),
        (
            json!({"subnets": [{"subnet": "10.1.0.0/24", "gateway": "fd00::1"}]}),
            "gateway fd00::1 is not IPv4",
        ),
        (
            json!({"subnets": [{"subnet": "10.1.0.1/24"}]}),
            "subnet 10.1.0.1/24",
        ),
        (
            json!({"routes": [{"destination": "10.9.0.0/16", "gateway": "10.1.0.5"}]}),
            "no static routes",
        ),
        (json!({"network_dns_servers": ["1.1.1.1"]}), "--dns-forward"),
    ] {
        let said = refusal(&extra);
        assert!(said.starts_with("network `front`: "), "{said}");
        assert!(said.contains(says), "{extra}: {said}");
    }
}

#[test]
fn create_answers_podman_s_configuration_completed_with_weir_s_network() {
    let input = asked(&json!({"options": {"weir_socket": "/run/w.sock"}}));
    let spec = spec_of(&input).unwrap();
    let network = Registry::default()
        .plan(&crate::network::NetworkSpec {
            subnet: Some("10.89.3.0/24".parse().unwrap()),
            ..spec
        })
        .unwrap();
    let view = NetworkView {
        network: network.clone(),
        dns: Some("10.89.3.1".parse().unwrap()),
        endpoints: Vec::new(),
        masquerade_stats: NatStats::default(),
    };
    let answer = serde_json::to_value(created(input, &view)).unwrap();
    assert_eq!(
        answer,
        json!({
            "name": "front",
            "id": ID,
            "driver": "weir",
            "created": "2026-05-01T10:00:00.123456789Z",
            "network_interface": network.bridge,
            "subnets": [{"subnet": "10.89.3.0/24", "gateway": "10.89.3.1"}],
            "ipv6_enabled": false,
            "internal": false,
            "dns_enabled": false,
            "labels": {"app": "shop"},
            "options": {"weir_socket": "/run/w.sock"},
            "ipam_options": {"driver": "none"},
        })
    );
    // The answer given back asks for the same network (its bridge is
    // checked against the agent's); `none` with no subnet is a user's
    // `--ipam-driver none`, refused.
    let again: Network = serde_json::from_value(answer).unwrap();
    let same = spec_of(&again).unwrap();
    assert_eq!(same.subnet.unwrap().to_string(), "10.89.3.0/24");
    assert_eq!(same.gateway.unwrap().to_string(), "10.89.3.1");
    let said = refusal(&json!({"ipam_options": {"driver": "none"}}));
    assert!(said.contains("ipam driver is `none`"), "{said}");
}

/// `setup`'s stdin as netavark writes it for one network of a container
/// (its `NetworkPluginExec`).
fn exec(per_network: &Value, ports: &Value) -> PluginExec {
    serde_json::from_value(json!({
        "container_id": "752947ff91f961eb3cb47ffe9315016979f3ffbec09e4d96a4fae3fb03391697",
        "container_name": "web",
        "port_mappings": ports,
        "network": {
            "name": "front",
            "id": ID,
            "driver": "weir",
            "network_interface": "weir1",
            "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}],
            "ipv6_enabled": false,
            "internal": false,
            "dns_enabled": false,
            "options": null,
            "ipam_options": {"driver": "none"},
        },
        "network_options": per_network,
    }))
    .unwrap()
}

#[test]
fn ports_expand_ranges_and_protocol_lists() {
    let maps = |v: Value| port_mappings(&serde_json::from_value::<Vec<_>>(v).unwrap());
    let got = maps(json!([
        {"container_port": 80, "host_ip": "", "host_port": 8080, "protocol": "tcp", "range": 1},
        {"container_port": 53, "host_ip": "127.0.0.1", "host_port": 5353, "protocol": "tcp,udp", "range": 0},
        {"container_port": 9000, "host_ip": "::1", "host_port": 19000, "protocol": "udp", "range": 3},
    ]))
    .unwrap();
    let shown: Vec<String> = got.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 6, "{shown:?}");
    assert_eq!(got[0].host_ip, PortMapping::EVERY);
    assert_eq!((got[1].proto, got[2].proto), (Proto::Tcp, Proto::Udp));
    assert_eq!(got[2].host_ip.to_string(), "127.0.0.1");
    assert_eq!(
        got[3..]
            .iter()
            .map(|m| (m.host_port, m.container_port))
            .collect::<Vec<_>>(),
        [(19000, 9000), (19001, 9001), (19002, 9002)]
    );
    let err = maps(
        json!([{"container_port": 80, "host_ip": "", "host_port": 65534,
        "protocol": "tcp", "range": 3}]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("past port 65535"), "{err}");
    let err = maps(
        json!([{"container_port": 80, "host_ip": "", "host_port": 80,
        "protocol": "icmp", "range": 1}]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("protocol `icmp`"), "{err}");
}

#[test]
fn setup_asks_for_the_interface_its_addresses_mac_and_ports() {
    let e = exec(
        &json!({
            "aliases": ["752947ff91f9"],
            "interface_name": "eth0",
            "static_ips": ["10.88.0.50", "10.88.0.50"],
            "static_mac": "aa:bb:cc:dd:aa:00",
        }),
        &json!([{"container_port": 80, "host_ip": "127.0.0.1", "host_port": 8080,
            "protocol": "tcp", "range": 1}]),
    );
    let req = setup_request("/run/netns/ctr", &e).unwrap();
    assert_eq!(req.netns, Path::new("/run/netns/ctr"));
    assert_eq!(
        (req.network.as_str(), req.ifname.as_str()),
        ("front", "eth0")
    );
    assert_eq!(req.container_name, "web");
    assert_eq!(req.ip.unwrap().to_string(), "10.88.0.50");
    assert!(req.ip6.is_none());
    assert_eq!(req.mac.as_deref(), Some("aa:bb:cc:dd:aa:00"));
    assert_eq!(req.subnets[0].to_string(), "10.88.0.0/16");
    assert_eq!(req.ports.len(), 1);
    let r = teardown_request(&e);
    assert_eq!((r.container_id.len(), r.ifname.as_str()), (64, "eth0"));

    // A second address of a family is refused; none at all is weir's pick.
    let two = exec(
        &json!({"interface_name": "eth1", "static_ips": ["10.88.0.50", "10.88.0.51"]}),
        &Value::Null,
    );
    assert!(matches!(
        setup_request("/run/netns/ctr", &two),
        Err(NetavarkError::StaticIps { .. })
    ));
    let bare = exec(&json!({"interface_name": "eth1"}), &Value::Null);
    let req = setup_request("/run/netns/ctr", &bare).unwrap();
    assert!(req.ip.is_none() && req.mac.is_none() && req.ports.is_empty());
}

#[test]
fn the_status_block_is_netavark_s() {
    let made = CniAttachment {
        endpoint: "web".to_owned(),
        host_if: "weirv3".to_owned(),
        host_mac: "02:00:00:00:00:01".to_owned(),
        ifname: "eth0".to_owned(),
        mac: "aa:bb:cc:dd:aa:00".to_owned(),
        ip: Some((
            "10.88.0.50".parse().unwrap(),
            16,
            "10.88.0.1".parse().unwrap(),
        )),
        ip6: Some((
            "fd00:88::2".parse().unwrap(),
            64,
            "fd00:88::1".parse().unwrap(),
        )),
        ports: Vec::new(),
        dns: Some("10.88.0.1".parse().unwrap()),
    };
    assert_eq!(
        serde_json::to_value(status_block(&made)).unwrap(),
        json!({
            "dns_search_domains": [],
            "dns_server_ips": ["10.88.0.1"],
            "interfaces": {"eth0": {
                "mac_address": "aa:bb:cc:dd:aa:00",
                "subnets": [
                    {"ipnet": "10.88.0.50/16", "gateway": "10.88.0.1"},
                    {"ipnet": "fd00:88::2/64", "gateway": "fd00:88::1"},
                ],
            }},
        })
    );
}

#[test]
fn the_socket_is_the_network_s_option_then_the_environment_then_the_default() {
    let default = Path::new("/run/weir/weir.sock");
    let mut n = asked(&json!({}));
    assert_eq!(socket(&n, None, default), default);
    assert_eq!(socket(&n, Some("/e.sock"), default), Path::new("/e.sock"));
    n.options = Some([("weir_socket".to_owned(), "/o.sock".to_owned())].into());
    assert_eq!(socket(&n, Some("/e.sock"), default), Path::new("/o.sock"));
}

#[tokio::test]
async fn subcommands_and_their_refusals() {
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let info = run(&args(&["info"]), &b""[..]).await.unwrap().unwrap();
    assert_eq!(info["api_version"], "1.0.0");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(run(&[], &b""[..]).await.unwrap().unwrap(), info);
    let no_netns = run(&args(&["setup"]), &b"{}"[..]).await.unwrap_err();
    assert!(
        matches!(no_netns, NetavarkError::NoNetns { .. }),
        "{no_netns}"
    );
    let bad = run(&args(&["teardown", "/run/netns/x"]), &b"{}"[..])
        .await
        .unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("teardown: the JSON on stdin is not netavark's"),
        "{bad}"
    );
    let unknown = run(&args(&["update"]), &b""[..]).await.unwrap_err();
    assert!(unknown.to_string().contains("`update`"), "{unknown}");
    // An agent that is not there is said, with where to name another.
    let conf = json!({"name": "n", "id": ID, "driver": "weir", "ipv6_enabled": false,
        "internal": false, "dns_enabled": false,
        "options": {"weir_socket": "/nonexistent/weir.sock"}});
    let down = run(&args(&["create"]), conf.to_string().as_bytes())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        down.starts_with("cannot reach the weir agent at /nonexistent/weir.sock")
            && down.contains("weir_socket"),
        "{down}"
    );
}
