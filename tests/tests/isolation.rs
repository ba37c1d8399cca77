//! End-to-end: isolation with a real agent. Three networks (the default
//! `weir`, `back` with `--icc=false`, `vault` with `--internal`), a routed
//! network, containers with echo servers, and `ext` routing every container
//! subnet to the node. Each rule is probed with TCP, UDP and ping, in both
//! directions where it applies, and each drop is found under its reason.

use std::net::{Ipv4Addr, UdpSocket};

use weir_common::drop::DropReason;
use weir_tests::{
    Netns, World,
    agent::Agent,
    packet,
    reach::{self, Case, Probe},
    sock::{self, Server, any, at},
    world::{EXT_IP, NODE_UPLINK_IP, UPLINK, netfilter_rules},
};

/// An echo server on TCP 80 and UDP 53, and one on TCP 81, in `ns`.
fn servers(ns: &Netns) -> Vec<Server> {
    vec![
        Server::tcp(ns, any(80)).unwrap(),
        Server::udp(ns, any(53)).unwrap(),
        Server::tcp(ns, any(81)).unwrap(),
    ]
}

fn case<'a>(label: &str, from: &'a Netns, probe: Probe, reaches: bool) -> Case<'a> {
    Case {
        label: label.to_owned(),
        from,
        probe,
        reaches,
    }
}

fn check(cases: &[Case<'_>]) {
    let failed = reach::failures(cases);
    assert!(
        failed.is_empty(),
        "{} of {} probes wrong:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

fn drops(agent: &Agent, reason: DropReason) -> u64 {
    agent.drops(reason.number())
}

/// Every ordered pair of containers, by address: across networks never;
/// within one, as its icc says (off only in `back`, the `b*` ones).
fn pairs<'a>(w: &'a World, ips: &[(&str, Ipv4Addr)]) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for &(from, _) in ips {
        for &(to, ip) in ips {
            if from == to {
                continue;
            }
            let reaches = from[..1] == to[..1] && !from.starts_with('b');
            for probe in Probe::all(ip, 80, 53) {
                cases.push(case(&format!("{from} -> {to}"), w.c(from), probe, reaches));
            }
        }
    }
    cases
}

/// TCP and UDP to a port of the node's uplink address.
fn node_port(port: u16) -> [Probe; 2] {
    [
        Probe::Tcp(at(NODE_UPLINK_IP, port)),
        Probe::Udp(at(NODE_UPLINK_IP, port)),
    ]
}

/// Publications through the node: from every container of a network that
/// is not internal (a neighbour with icc off included) and from ext; an
/// internal network's (8003) only from the node and from its own network,
/// whose containers reach nothing else.
fn publications(w: &World) -> Vec<Case<'_>> {
    let mut cases = Vec::new();
    for from in ["f1", "f2", "b1", "b2"] {
        for port in [8001, 8002] {
            for p in node_port(port) {
                cases.push(case(from, w.c(from), p, true));
            }
        }
        for p in node_port(8003) {
            cases.push(case(from, w.c(from), p, false));
        }
        for p in Probe::all(EXT_IP, 80, 53) {
            cases.push(case(&format!("{from} -> ext"), w.c(from), p, true));
        }
    }
    for port in [8001, 8002] {
        for p in node_port(port) {
            cases.push(case("ext", &w.ext, p, true));
        }
    }
    for p in node_port(8003) {
        cases.push(case("ext", &w.ext, p, false));
    }
    for from in ["v1", "v2"] {
        for port in [8001, 8002, 8003] {
            for p in node_port(port) {
                cases.push(case(from, w.c(from), p, false));
            }
        }
        for p in Probe::all(EXT_IP, 80, 53) {
            cases.push(case(&format!("{from} -> ext"), w.c(from), p, false));
        }
    }
    let vault_gw = Ipv4Addr::new(10, 62, 0, 1);
    cases.push(case(
        "v2 via its gateway",
        w.c("v2"),
        Probe::Tcp(at(vault_gw, 8003)),
        true,
    ));
    cases.push(case(
        "v2 via its gateway",
        w.c("v2"),
        Probe::Udp(at(vault_gw, 8003)),
        true,
    ));
    cases.push(case(
        "v2 -> its gateway",
        w.c("v2"),
        Probe::Ping(vault_gw),
        true,
    ));
    cases.push(case(
        "node",
        &w.node,
        Probe::Tcp(at(Ipv4Addr::LOCALHOST, 8003)),
        true,
    ));
    cases.push(case(
        "node",
        &w.node,
        Probe::Tcp(at(Ipv4Addr::LOCALHOST, 8002)),
        true,
    ));
    cases
}

/// Network `back`: 10.61.0.0/24 with `--icc=false`.
fn create_back(agent: &Agent) {
    agent.ok(&[
        "network",
        "create",
        "back",
        "--subnet",
        "10.61.0.0/24",
        "--icc=false",
    ]);
}

#[test]
fn three_networks_every_cross_pair_blocked_every_publication_through_the_node() {
    let mut w = World::new().unwrap();
    let names = ["f1", "f2", "b1", "b2", "v1", "v2"];
    for c in names {
        w.add_container(c).unwrap();
    }
    let agent = Agent::start(&w, &[]);
    create_back(&agent);
    agent.ok(&[
        "network",
        "create",
        "vault",
        "--subnet",
        "10.62.0.0/24",
        "--internal",
    ]);
    let publish = |port: &str| {
        vec![
            "-p".to_owned(),
            format!("{port}:80"),
            "-p".to_owned(),
            format!("{port}:53/udp"),
        ]
    };
    let mut ips = Vec::new();
    for c in names {
        let network = match &c[..1] {
            "f" => "weir",
            "b" => "back",
            _ => "vault",
        };
        let ports = match c {
            "f1" => publish("8001"),
            "b1" => publish("8002"),
            "v1" => publish("8003"),
            _ => Vec::new(),
        };
        let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
        ips.push((c, agent.attach(network, w.c(c), c, &ports)));
    }
    let _servers: Vec<Server> = names
        .iter()
        .flat_map(|c| servers(w.c(c)))
        .chain(servers(&w.ext))
        .collect();

    let mut cases = pairs(&w, &ips);
    cases.extend(publications(&w));
    check(&cases);

    for reason in [DropReason::Isolation, DropReason::Icc, DropReason::Internal] {
        assert!(drops(&agent, reason) > 0, "{reason:?} counted");
    }
    let rules = netfilter_rules(&w.node);
    assert!(rules.is_empty(), "{rules:?}");
}

#[test]
fn icc_off_stops_raw_frames_and_arp_between_neighbours() {
    let mut w = World::new().unwrap();
    for c in ["f1", "f2", "b1", "b2"] {
        w.add_container(c).unwrap();
    }
    let agent = Agent::start(&w, &[]);
    create_back(&agent);
    let f2 = {
        agent.attach("weir", w.c("f1"), "f1", &[]);
        agent.attach("weir", w.c("f2"), "f2", &[])
    };
    let b2 = {
        agent.attach("back", w.c("b1"), "b1", &[]);
        agent.attach("back", w.c("b2"), "b2", &[])
    };
    let front_server = Server::udp(w.c("f2"), any(53)).unwrap();
    let back_server = Server::udp(w.c("b2"), any(53)).unwrap();
    // A UDP frame built by hand, straight to the neighbour's MAC: no
    // route, no ARP, only the bridge between them.
    let raw = |from: &str, to: &str, ip: Ipv4Addr| {
        let mut frame = packet::udp4(at4(own_ip(w.c(from)), 4000), at4(ip, 53), b"raw");
        frame[..6].copy_from_slice(&w.c(to).mac("eth0").unwrap());
        frame[6..12].copy_from_slice(&w.c(from).mac("eth0").unwrap());
        w.c(from).run(|| sock::send_raw("eth0", &frame));
    };
    raw("f1", "f2", f2);
    raw("b1", "b2", b2);
    let got = weir_tests::eventually(std::time::Duration::from_secs(2), || {
        (!front_server.received().is_empty()).then_some(())
    });
    assert!(got.is_some(), "icc on: the raw frame arrives (control)");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(back_server.received().is_empty(), "icc off: it does not");

    // b1's ARP for b2 goes unanswered: no neighbour entry with a MAC.
    assert!(!Probe::Ping(b2).reaches(w.c("b1")));
    let neigh = w.c("b1").ip(&["neigh", "show", &b2.to_string()]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    assert!(!neigh.contains("lladdr"), "b1 learnt b2's MAC: {neigh}");
    assert!(Probe::Ping(f2).reaches(w.c("f1")));
    assert!(drops(&agent, DropReason::Icc) >= 2);
}

fn at4(ip: Ipv4Addr, port: u16) -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(ip, port)
}

/// The address of `eth0` in `ns`, as `address/prefix`.
fn own_cidr(ns: &Netns) -> String {
    let out = ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map_or_else(|| panic!("no address in {text}"), str::to_owned)
}

/// The address of `eth0` in `ns`.
fn own_ip(ns: &Netns) -> Ipv4Addr {
    let cidr = own_cidr(ns);
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("an address")
}

#[test]
fn from_outside_nat_mode_reaches_only_publications_routed_mode_only_published_ports() {
    let mut w = World::new().unwrap();
    w.add_container("n1").unwrap();
    w.add_container("r1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&[
        "network",
        "create",
        "r",
        "--subnet",
        "10.63.0.0/24",
        "--mode",
        "routed",
    ]);
    let n1 = agent.attach("weir", w.c("n1"), "n1", &["-p", "8080:80"]);
    let r1 = agent.attach("r", w.c("r1"), "r1", &["-p", "8081:80"]);
    let n1_servers = servers(w.c("n1"));
    let r1_servers = servers(w.c("r1"));
    let ext_servers = servers(&w.ext);

    // ext's default route is the node: it routes both subnets there.
    let mut cases = Vec::new();
    for p in Probe::all(n1, 80, 53) {
        cases.push(case("ext -> nat container", &w.ext, p, false));
    }
    for (label, probe, reaches) in [
        ("ext -> nat container", Probe::Tcp(at(n1, 81)), false),
        (
            "ext -> nat publication",
            Probe::Tcp(at(NODE_UPLINK_IP, 8080)),
            true,
        ),
        ("ext -> routed, published", Probe::Tcp(at(r1, 80)), true),
        ("ext -> routed, ping (as Docker)", Probe::Ping(r1), true),
        (
            "ext -> routed, not published",
            Probe::Tcp(at(r1, 81)),
            false,
        ),
        (
            "ext -> routed, not published",
            Probe::Udp(at(r1, 53)),
            false,
        ),
        (
            "ext -> routed publication",
            Probe::Tcp(at(NODE_UPLINK_IP, 8081)),
            true,
        ),
    ] {
        cases.push(case(label, &w.ext, probe, reaches));
    }
    for (name, ns) in [("n1", w.c("n1")), ("r1", w.c("r1"))] {
        for p in Probe::all(EXT_IP, 80, 53) {
            cases.push(case(&format!("{name} -> ext"), ns, p, true));
        }
    }
    check(&cases);
    // The routed container saw ext itself; ext saw the routed container
    // itself, and the nat one as the node.
    assert!(r1_servers[0].peer_ips().contains(&EXT_IP));
    let seen = ext_servers[0].peer_ips();
    assert!(
        seen.contains(&r1) && seen.contains(&NODE_UPLINK_IP),
        "{seen:?}"
    );
    assert!(!seen.contains(&n1));
    assert!(n1_servers[2].peer_ips().is_empty(), "nothing reached n1:81");
    assert!(drops(&agent, DropReason::Unsolicited) > 0);

    // Bogons: frames from ext with a loopback source, or a source in a
    // container subnet, reach nothing and are counted.
    let node_mac = w.node.mac(UPLINK).unwrap();
    let ext_mac = w.ext.mac("eth0").unwrap();
    let before = drops(&agent, DropReason::Bogon);
    for src in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(10, 63, 0, 99)] {
        let mut frame = packet::udp4(at4(src, 4000), at4(NODE_UPLINK_IP, 53), b"bogon");
        frame[..6].copy_from_slice(&node_mac);
        frame[6..12].copy_from_slice(&ext_mac);
        w.ext.run(|| sock::send_raw("eth0", &frame));
    }
    let counted = weir_tests::eventually(std::time::Duration::from_secs(2), || {
        (drops(&agent, DropReason::Bogon) >= before + 2).then_some(())
    });
    assert!(counted.is_some(), "bogons counted");
}

#[test]
fn a_container_that_changes_its_address_or_mac_is_cut_off_and_the_drop_is_seen() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    let ip = agent.attach("weir", w.c("c1"), "c1", &[]);
    let _ext = servers(&w.ext);
    let c1 = w.c("c1");
    let to_ext = Probe::Tcp(at(EXT_IP, 80));
    assert!(to_ext.reaches(c1));
    let octets = ip.octets();
    let other = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3].wrapping_add(50));
    let route = c1.ip(&["route", "show", "default"]).unwrap();
    let gateway: Ipv4Addr = String::from_utf8_lossy(&route.stdout)
        .split_whitespace()
        .nth(2)
        .and_then(|g| g.parse().ok())
        .expect("a default route");
    let prefix = own_cidr(c1).split_once('/').unwrap().1.to_owned();
    let readdress = |from: Ipv4Addr, to: Ipv4Addr| {
        // Deleting a primary address takes its secondaries along: the old
        // one goes first, and the default route with it.
        c1.ip(&["addr", "del", &format!("{from}/{prefix}"), "dev", "eth0"])
            .unwrap();
        c1.ip(&["addr", "add", &format!("{to}/{prefix}"), "dev", "eth0"])
            .unwrap();
        c1.ip(&["route", "replace", "default", "via", &gateway.to_string()])
            .unwrap();
    };
    let kick = || {
        c1.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            let _ = s.send_to(b"kick", at(EXT_IP, 53));
        });
    };
    let monitor = agent.monitor();

    readdress(ip, other);
    // What is dropped first is the kick itself, or, when the container's
    // entry for the gateway's MAC has gone stale, its ARP for the gateway
    // from the new address: either way the new address is refused.
    let event = monitor
        .wait_for(std::time::Duration::from_secs(10), kick, |v| {
            v["reason"] == "spoofed-ip"
                && v["src"]
                    .as_str()
                    .is_some_and(|s| s == other.to_string() || s.starts_with(&format!("{other}:")))
        })
        .expect("weir monitor shows the spoofed address");
    assert_eq!(event["reason_number"], DropReason::SpoofedIp.number());
    assert_eq!(event["endpoint"], "c1");
    assert_eq!(event["hook"], "tc_from_container");
    if event["proto"] == "arp" {
        assert_eq!(event["dst"], gateway.to_string());
    } else {
        assert_eq!(event["dst"], format!("{EXT_IP}:53"));
    }
    assert!(!to_ext.reaches(c1), "cut off with another address");
    assert!(drops(&agent, DropReason::SpoofedIp) > 0);
    readdress(other, ip);
    assert!(to_ext.reaches(c1), "its own address works again");

    let own_mac = c1.mac("eth0").unwrap();
    c1.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:99"])
        .unwrap();
    let event = monitor
        .wait_for(std::time::Duration::from_secs(10), kick, |v| {
            v["reason"] == "spoofed-mac" && v["smac"] == "02:00:00:00:00:99"
        })
        .expect("weir monitor shows the spoofed MAC");
    assert_eq!(event["reason_number"], DropReason::SpoofedMac.number());
    assert!(
        !Probe::Ping(gateway).reaches(c1),
        "cut off with another MAC"
    );
    assert!(drops(&agent, DropReason::SpoofedMac) > 0);
    let mac = weir::network::mac_string(own_mac);
    c1.ip(&["link", "set", "eth0", "address", &mac]).unwrap();
    assert!(to_ext.reaches(c1), "its own MAC works again");
}
