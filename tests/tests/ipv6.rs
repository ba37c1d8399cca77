//! End-to-end: dual-stack networks. Containers of a network with an IPv6
//! `--subnet` get an address of each family and a default route of each,
//! and reach each other and their gateway over IPv6; their IPv6 leaves
//! masqueraded as the node's uplink address (NAT66: ping6 and TCP, the
//! server seeing the node, the flows in `weir conntrack ls` and the
//! network's masquerade counters, no ip6tables rule); one `-p 8080:80`
//! is reached from ext over both families, the client's IPv6 address seen
//! by the container, and over IPv6 from a neighbour and from its own
//! container (hairpin); nothing unsolicited comes
//! in from outside (`unsolicited`),
//! even with `ext` routing the prefix to the node; a routed network's
//! containers reach `ext` with their own addresses, and `ext` reaches
//! their published container ports and pings them at those addresses,
//! nothing else; an `--internal` one's stay in (`internal-network`); a
//! container cannot speak for a neighbour's IPv6 address; `weir monitor`
//! shows an IPv6 drop with its addresses; the addresses
//! survive a restart; with `--icc=false` IPv6 finds the gateway and the
//! outside but no neighbour; an IPv6-only network's containers have no IPv4 at
//! all and everything else; bad `--subnet` sets are refused with their
//! reason.

use std::{
    net::{Ipv6Addr, SocketAddr},
    time::Duration,
};

use weir_common::drop::DropReason;
use weir_tests::{
    Netns, World,
    agent::Agent,
    sock::{self, Server},
    world,
};

const SUBNET6: &str = "fd00:89::/64";
const ROUTED6: &str = "fd00:8a::/64";
const GATEWAY6: &str = "fd00:89::1";
const NODE6: &str = "2001:db8:1::1";
const EXT6: &str = "2001:db8:1::2";
const _: () = assert!(
    world::NODE_UPLINK_IP6.segments()[7] == 1 && world::EXT_IP6.segments()[7] == 2,
    "NODE6 and EXT6 are the world's"
);

/// One echo answered within 3 s (a first contact waits for neighbour
/// discovery, which here takes up to a second).
fn ping6(from: &Netns, to: &str) -> bool {
    echo6(from, to, "3")
}

/// One echo, not answered within a second.
fn no_ping6(from: &Netns, to: &str) -> bool {
    !echo6(from, to, "1")
}

fn echo6(from: &Netns, to: &str, wait: &str) -> bool {
    from.exec("ping", &["-6", "-c", "1", "-W", wait, to])
        .is_ok_and(|o| o.status.success())
}

fn ip6_of(agent: &Agent, name: &str) -> Ipv6Addr {
    let eps = agent.json(&["ps"]);
    eps.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["ip6"].as_str())
        .unwrap_or_else(|| panic!("no ip6 for {name}: {eps}"))
        .parse()
        .unwrap()
}

/// The uplink and ext speak IPv6 too, and ext routes the container
/// prefixes to the node: only weir keeps the unsolicited out.
fn dual_stack_uplink(w: &World) {
    w.add_ipv6().unwrap();
    for prefix in [SUBNET6, ROUTED6] {
        w.ext
            .ip(&["-6", "route", "add", prefix, "via", NODE6])
            .unwrap();
    }
}

/// A world whose uplink and ext speak IPv6 ([`dual_stack_uplink`]),
/// with `containers`, and its agent.
fn bed(containers: &[&str]) -> (World, Agent) {
    let mut w = World::new().unwrap();
    for c in containers {
        w.add_container(c).unwrap();
    }
    dual_stack_uplink(&w);
    let agent = Agent::start(&w, &[]);
    (w, agent)
}

/// Who a TCP server in ext on `port` sees when `from` calls it.
fn seen_by_ext(w: &World, from: &Netns, port: u16) -> Ipv6Addr {
    let at: SocketAddr = format!("[{EXT6}]:{port}").parse().unwrap();
    let server = Server::tcp(&w.ext, at).unwrap();
    assert_eq!(sock::tcp_request(from, at, b"x").unwrap(), b"x");
    match server.received()[0].peer {
        SocketAddr::V6(a) => *a.ip(),
        SocketAddr::V4(a) => panic!("an IPv4 peer: {a}"),
    }
}

/// Beyond the network: masqueraded as the node, echo and TCP, listed
/// and counted.
fn leaves_as_the_node(w: &World, agent: &Agent) {
    assert!(ping6(w.c("a"), EXT6), "a's ping6 to ext");
    assert_eq!(
        seen_by_ext(w, w.c("a"), 7000),
        NODE6.parse::<Ipv6Addr>().unwrap()
    );
    let flows = agent.json(&["conntrack", "ls"]);
    let snat6: Vec<_> = flows
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "snat" && f["to_src"].as_str().unwrap().contains(NODE6))
        .collect();
    assert!(
        snat6
            .iter()
            .any(|f| f["proto"] == "tcp" && f["src"].as_str().unwrap().contains("fd00:89::2")),
        "the TCP flow: {flows}"
    );
    assert!(
        snat6.iter().any(|f| f["proto"] == "icmpv6"),
        "the echo: {flows}"
    );
    // Counted as the network's masquerade, as IPv4's is.
    let stats = agent.json(&["stats"]);
    let dual = stats["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "dual")
        .unwrap_or_else(|| panic!("{stats}"))["masquerade"]
        .clone();
    assert!(dual["flows"].as_u64().unwrap() >= 2, "{dual}");
    assert!(dual["packets"].as_u64().unwrap() >= 4, "{dual}");
}

/// One `-p 8080:80` on both families: from ext over IPv6 to the node's
/// IPv6 address, the client's address seen by the container, and over
/// IPv4 as before.
fn reached_on_both_families(w: &mut World, agent: &Agent) {
    w.add_container("web").unwrap();
    agent.attach("dual", w.c("web"), "web", &["-p", "8080:80"]);
    let web = Server::tcp(w.c("web"), "[::]:80".parse().unwrap()).unwrap();
    let node6: SocketAddr = format!("[{NODE6}]:8080").parse().unwrap();
    assert_eq!(sock::tcp_request(&w.ext, node6, b"six").unwrap(), b"six");
    let peer = web.received()[0].peer;
    assert_eq!(peer.ip(), EXT6.parse::<Ipv6Addr>().unwrap(), "{peer}");
    assert_eq!(
        sock::tcp_request(&w.ext, sock::at(world::NODE_UPLINK_IP, 8080), b"four").unwrap(),
        b"four"
    );
    // Hairpin over IPv6: a neighbour (its own address seen) and the
    // backend itself (through the node) call the node's IPv6 address.
    let before = web.received().len();
    assert_eq!(
        sock::tcp_request(w.c("a"), node6, b"hair").unwrap(),
        b"hair"
    );
    assert_eq!(
        web.received()[before].peer.ip(),
        "fd00:89::2".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        sock::tcp_request(w.c("web"), node6, b"self").unwrap(),
        b"self"
    );
    assert_eq!(
        web.received()[before + 1].peer.ip(),
        NODE6.parse::<Ipv6Addr>().unwrap(),
        "its own call comes from the node"
    );
    let flows = agent.json(&["conntrack", "ls"]);
    assert!(
        flows.as_array().unwrap().iter().any(|f| f["kind"] == "dnat"
            && f["dst"].as_str().unwrap().contains(NODE6)
            && f["to_dst"].as_str().unwrap().contains("fd00:89::")),
        "the IPv6 publication's flow: {flows}"
    );
    // One publication, both families' flows in its counters: ext over
    // each, the two hairpins over IPv6.
    let stats = agent.json(&["stats"]);
    let port = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["host_port"] == 8080)
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(port["flows"], 4, "{port}");
    // An allow list (of IPv4 sources) closes the port's IPv6 side too.
    agent.ok(&["allow", "8080", "198.51.100.0/24"]);
    let refused = agent.drops(DropReason::NotAllowed.number());
    assert!(
        sock::connect_fails(&w.ext, node6),
        "ext over IPv6 past the list"
    );
    assert!(agent.drops(DropReason::NotAllowed.number()) > refused);
    agent.ok(&["allow", "rm", "8080"]);
    assert_eq!(
        sock::tcp_request(&w.ext, node6, b"again").unwrap(),
        b"again"
    );
}

#[test]
fn a_dual_stack_network_speaks_ipv6_inside_and_leaves_as_the_node() {
    let (mut w, mut agent) = bed(&["a", "b"]);
    agent.ok(&[
        "network",
        "create",
        "dual",
        "--subnet",
        "10.89.0.0/24",
        "--subnet",
        SUBNET6,
    ]);
    agent.attach("dual", w.c("a"), "a", &[]);
    agent.attach("dual", w.c("b"), "b", &["--ip6", "fd00:89::b"]);
    let (a6, b6) = (ip6_of(&agent, "a"), ip6_of(&agent, "b"));
    assert_eq!(a6, "fd00:89::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(b6, "fd00:89::b".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        w.node
            .exec("sysctl", &["-n", "net.ipv6.conf.all.forwarding"])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap(),
        "1",
        "the agent turns IPv6 forwarding on for a dual-stack network"
    );

    // Inside: each other and the gateway.
    assert!(ping6(w.c("a"), &b6.to_string()), "a to b over IPv6");
    assert!(ping6(w.c("b"), GATEWAY6), "b to its gateway over IPv6");
    leaves_as_the_node(&w, &agent);
    reached_on_both_families(&mut w, &agent);
    let rules = world::netfilter_rules(&w.node);
    assert!(rules.is_empty(), "netfilter rules: {rules:?}");
    // From outside, with a route to the prefix: shut.
    let unsolicited = agent.drops(DropReason::Unsolicited.number());
    let monitor = agent.monitor();
    assert!(no_ping6(&w.ext, &a6.to_string()), "ext reached a container");
    assert!(agent.drops(DropReason::Unsolicited.number()) > unsolicited);
    // `weir monitor` names it with its IPv6 addresses.
    let event = monitor.wait_for(
        Duration::from_secs(5),
        || {
            let _ = no_ping6(&w.ext, &a6.to_string());
        },
        |e| e["reason"] == "unsolicited" && e["proto"] == "icmpv6",
    );
    let event = event.expect("no unsolicited ICMPv6 event in weir monitor");
    assert_eq!(
        (event["src"].as_str(), event["dst"].as_str()),
        (Some(EXT6), Some(a6.to_string().as_str())),
        "{event}"
    );
    // A neighbour's address, claimed: refused.
    w.c("a")
        .ip(&[
            "-6",
            "addr",
            "add",
            "fd00:89::99/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    let spoofed = agent.drops(DropReason::SpoofedIp.number());
    let claim = w.c("a").exec(
        "ping",
        &[
            "-6",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "fd00:89::99",
            &b6.to_string(),
        ],
    );
    assert!(!claim.is_ok_and(|o| o.status.success()));
    assert!(agent.drops(DropReason::SpoofedIp.number()) > spoofed);

    // The addresses and the rules come back with the agent.
    agent.kill();
    agent.restart();
    assert_eq!(ip6_of(&agent, "b"), b6);
    assert!(ping6(w.c("b"), &a6.to_string()), "b to a after a restart");
    assert!(ping6(w.c("b"), EXT6), "b to ext after a restart");
    assert!(
        no_ping6(&w.ext, &b6.to_string()),
        "ext reached b after a restart"
    );
    // Detached, its address is free again.
    agent.ok(&["detach", "b"]);
    w.add_container("c").unwrap();
    agent.attach("dual", w.c("c"), "c", &["--ip6", "fd00:89::b"]);
}

#[test]
fn routed_ipv6_leaves_as_itself_and_internal_ipv6_stays_in() {
    let (w, agent) = bed(&["r", "i"]);
    agent.ok(&[
        "network",
        "create",
        "r6",
        "--subnet",
        "10.90.0.0/24",
        "--subnet",
        ROUTED6,
        "--mode",
        "routed",
    ]);
    agent.ok(&[
        "network",
        "create",
        "i6",
        "--subnet",
        "10.91.0.0/24",
        "--subnet",
        "fd00:8b::/64",
        "--internal",
    ]);
    agent.attach("r6", w.c("r"), "r", &["-p", "8081:80"]);
    agent.attach("i6", w.c("i"), "i", &[]);
    let r6 = ip6_of(&agent, "r");

    // Routed: out with its own address, tracked; the answers come back.
    assert!(ping6(w.c("r"), EXT6), "r's ping6 to ext");
    assert_eq!(seen_by_ext(&w, w.c("r"), 7001), r6);
    let flows = agent.json(&["conntrack", "ls"]);
    assert!(
        flows
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "routed"
                && f["proto"] == "tcp"
                && f["src"].as_str().unwrap().contains(&r6.to_string())),
        "{flows}"
    );
    // Routed mode opens the published container port at the container's
    // own address, and ping, as for IPv4; nothing else comes in.
    let server = Server::tcp(w.c("r"), "[::]:80".parse().unwrap()).unwrap();
    let direct = SocketAddr::from((r6, 80));
    assert_eq!(sock::tcp_request(&w.ext, direct, b"r").unwrap(), b"r");
    assert_eq!(
        server.received()[0].peer.ip(),
        EXT6.parse::<Ipv6Addr>().unwrap()
    );
    assert!(ping6(&w.ext, &r6.to_string()), "ping to a routed container");
    let unsolicited = agent.drops(DropReason::Unsolicited.number());
    assert!(
        sock::connect_fails(&w.ext, SocketAddr::from((r6, 81))),
        "ext reached a closed port of a routed container"
    );
    assert!(agent.drops(DropReason::Unsolicited.number()) > unsolicited);

    // Internal: its gateway, nothing beyond.
    assert!(ping6(w.c("i"), "fd00:8b::1"), "i to its gateway");
    let internal = agent.drops(DropReason::Internal.number());
    assert!(
        no_ping6(w.c("i"), EXT6),
        "an internal container reached ext"
    );
    assert!(agent.drops(DropReason::Internal.number()) > internal);
}

/// `weir attach` on an IPv6-only network: the name and the IPv6 address.
fn attach6(agent: &Agent, w: &World, network: &str, name: &str, more: &[&str]) -> Ipv6Addr {
    let path = w.c(name).path();
    let mut args = vec![
        "attach",
        network,
        "--netns",
        path.to_str().unwrap(),
        "--name",
        name,
    ];
    args.extend_from_slice(more);
    let out = agent.ok(&args);
    let first = out.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.len(), 2, "one address, IPv6: {out}");
    words[1].parse().unwrap_or_else(|_| panic!("{out}"))
}

/// A network with an IPv6 subnet alone: its containers have IPv6 and
/// no IPv4, reach each other, their gateway and ext (NAT66); `-p` is
/// theirs over IPv6 only; IPv4 from them goes nowhere; kept across a
/// restart.
#[test]
fn an_ipv6_only_network_has_no_ipv4_at_all() {
    let (w, mut agent) = bed(&["s1", "s2"]);
    agent.ok(&["network", "create", "six", "--subnet", "fd00:8c::/64"]);
    let ls = agent.ok(&["network", "ls"]);
    assert!(
        ls.lines().any(|l| l.starts_with("six ")
            && l.contains("fd00:8c::/64")
            && l.contains("fd00:8c::1")),
        "{ls}"
    );
    let s1 = attach6(&agent, &w, "six", "s1", &["-p", "8093:80"]);
    let s2 = attach6(&agent, &w, "six", "s2", &["--ip6", "fd00:8c::22"]);
    assert_eq!(s1, "fd00:8c::2".parse::<Ipv6Addr>().unwrap());
    let v4 = w
        .c("s1")
        .exec("ip", &["-4", "-o", "addr", "show", "eth0"])
        .unwrap();
    assert!(v4.stdout.is_empty(), "an IPv4 address: {v4:?}");
    assert_eq!(
        agent.endpoint_json("s1").unwrap()["ip"],
        serde_json::Value::Null
    );

    assert!(ping6(w.c("s1"), "fd00:8c::1"), "s1 to its gateway");
    assert!(ping6(w.c("s1"), &s2.to_string()), "s1 to s2");
    assert_eq!(
        seen_by_ext(&w, w.c("s2"), 7001),
        NODE6.parse::<Ipv6Addr>().unwrap(),
        "s2 leaves as the node"
    );
    // Published over IPv6 only: there is no IPv4 address to lead to.
    let web = Server::tcp(w.c("s1"), "[::]:80".parse().unwrap()).unwrap();
    let node6: SocketAddr = format!("[{NODE6}]:8093").parse().unwrap();
    assert_eq!(sock::tcp_request(&w.ext, node6, b"v6").unwrap(), b"v6");
    assert_eq!(
        web.received()[0].peer.ip(),
        EXT6.parse::<Ipv6Addr>().unwrap()
    );
    assert!(sock::connect_fails(
        &w.ext,
        sock::at(world::NODE_UPLINK_IP, 8093)
    ));
    let err = agent.refused(&["publish", "s1", "127.0.0.1:8094:80"]);
    assert!(err.contains("no IPv4 address"), "{err}");
    let err = agent.refused(&[
        "attach",
        "six",
        "--netns",
        "/proc/self/ns/net",
        "--ip",
        "10.0.0.5",
    ]);
    assert!(err.contains("no IPv4 subnet"), "{err}");

    // IPv4 of its own making goes nowhere.
    w.c("s1")
        .ip(&["-4", "addr", "add", "10.99.0.5/24", "dev", "eth0"])
        .unwrap();
    let spoofed = agent.drops(DropReason::SpoofedIp.number());
    let out = w.c("s1").exec("ping", &["-c", "1", "-W", "1", "10.99.0.1"]);
    assert!(!out.is_ok_and(|o| o.status.success()));
    assert!(agent.drops(DropReason::SpoofedIp.number()) > spoofed);

    agent.kill();
    agent.restart();
    assert!(
        ping6(w.c("s2"), &s1.to_string()),
        "s2 to s1 after a restart"
    );
    assert_eq!(
        sock::tcp_request(&w.ext, node6, b"again").unwrap(),
        b"again"
    );
    agent.ok(&["detach", "s2"]);
    agent.ok(&["detach", "s1"]);
    agent.ok(&["network", "rm", "six"]);
    assert!(world::netfilter_rules(&w.node).is_empty());
}

/// `--icc=false` on a dual-stack network: its containers find their
/// gateway (neighbour discovery passes) and the outside over IPv6, never
/// each other, not even through the node.
#[test]
fn with_icc_off_ipv6_reaches_the_gateway_and_beyond_but_no_neighbour() {
    let (w, agent) = bed(&["p1", "p2"]);
    agent.ok(&[
        "network",
        "create",
        "apart",
        "--subnet",
        "10.86.0.0/24",
        "--subnet",
        "fd00:86::/64",
        "--icc=false",
    ]);
    agent.attach("apart", w.c("p1"), "p1", &[]);
    agent.attach("apart", w.c("p2"), "p2", &[]);
    let p2 = ip6_of(&agent, "p2");
    assert!(ping6(w.c("p1"), "fd00:86::1"), "p1 to its gateway");
    assert_eq!(
        seen_by_ext(&w, w.c("p1"), 7002),
        NODE6.parse::<Ipv6Addr>().unwrap()
    );
    let icc = agent.drops(DropReason::Icc.number());
    assert!(no_ping6(w.c("p1"), &p2.to_string()), "p1 reached p2");
    assert!(agent.drops(DropReason::Icc.number()) > icc);
}

#[test]
fn bad_subnet_sets_are_refused_with_their_reason() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    let create = |args: &[&str]| {
        let mut all = vec!["network", "create", "n6"];
        all.extend_from_slice(args);
        agent.refused(&all)
    };
    for (args, says) in [
        (
            &["--subnet", "10.1.0.0/24", "--subnet", "10.2.0.0/24"][..],
            "at most one --subnet",
        ),
        (
            &["--subnet", "fd00:1::/64", "--gateway", "10.1.0.1"][..],
            "IPv4 --gateway needs",
        ),
        (&["--subnet", "10.1.0.0/24", "--ipv6"][..], "--ipv6 needs"),
        (
            &["--subnet", "10.1.0.0/24", "--subnet", "fd00:1::/96"][..],
            "/64 or shorter",
        ),
        (
            &["--subnet", "10.1.0.0/24", "--subnet", "fe80::/64"][..],
            "link-local",
        ),
        (
            &["--subnet", "10.1.0.0/24", "--gateway", "fd00::1"][..],
            "IPv6 --gateway needs",
        ),
    ] {
        let err = create(args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    agent.ok(&[
        "network",
        "create",
        "one",
        "--subnet",
        "10.1.0.0/24",
        "--subnet",
        "fd00:1::/48",
        "--ipv6",
    ]);
    let err = agent.refused(&[
        "network",
        "create",
        "two",
        "--subnet",
        "10.2.0.0/24",
        "--subnet",
        "fd00:1:0:5::/64",
    ]);
    assert!(err.contains("overlaps fd00:1::/48"), "{err}");
    // Nothing was made for the refused ones.
    let nets = agent.json(&["network", "ls"]);
    assert_eq!(nets.as_array().unwrap().len(), 2, "{nets}");
    // An IPv6 address on a network without IPv6.
    let mut w = w;
    w.add_container("x").unwrap();
    let path = w.c("x").path();
    let err = agent.refused(&[
        "attach",
        "weir",
        "--netns",
        path.to_str().unwrap(),
        "--ip6",
        "fd00:9::2",
    ]);
    assert!(err.contains("has no IPv6 subnet"), "{err}");
}
