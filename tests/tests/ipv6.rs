//! End-to-end: dual-stack networks, as far as IPv6 goes today. Containers
//! of a network with an IPv6 `--subnet` get an address of each family and
//! a default route of each, and reach each other and their gateway over
//! IPv6; nothing IPv6 leaves their network (`ipv6-beyond-network`) and
//! nothing unsolicited comes in from outside (`unsolicited`), even with
//! the node forwarding IPv6 and `ext` routing the prefix to it; a
//! container cannot speak for a neighbour's IPv6 address; the addresses
//! survive a restart; bad `--subnet` sets are refused with their reason.

use std::net::Ipv6Addr;

use weir_common::drop::DropReason;
use weir_tests::{Netns, World, agent::Agent, world::UPLINK};

const SUBNET6: &str = "fd00:89::/64";
const GATEWAY6: &str = "fd00:89::1";
const NODE6: &str = "2001:db8:1::1";
const EXT6: &str = "2001:db8:1::2";

fn ping6(from: &Netns, to: &str) -> bool {
    from.exec("ping", &["-6", "-c", "1", "-W", "1", to])
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

#[test]
fn a_dual_stack_network_speaks_ipv6_inside_and_nothing_crosses_its_edge() {
    let mut w = World::new().unwrap();
    for c in ["a", "b"] {
        w.add_container(c).unwrap();
    }
    // The uplink and ext speak IPv6 too, and the node forwards it: only
    // weir keeps the containers' IPv6 addresses in.
    w.node
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{NODE6}/64"),
            "dev",
            UPLINK,
            "nodad",
        ])
        .unwrap();
    w.ext
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{EXT6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    w.ext
        .ip(&["-6", "route", "add", SUBNET6, "via", NODE6])
        .unwrap();
    w.node.sysctl("net.ipv6.conf.all.forwarding", "1").unwrap();
    let mut agent = Agent::start(&w, &[]);
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

    // Inside: each other and the gateway.
    assert!(ping6(w.c("a"), &b6.to_string()), "a to b over IPv6");
    assert!(ping6(w.c("b"), GATEWAY6), "b to its gateway over IPv6");
    // Beyond the network: not yet, and counted.
    let beyond = agent.drops(DropReason::Ipv6Beyond.number());
    assert!(!ping6(w.c("a"), EXT6), "a's IPv6 address left its network");
    assert!(agent.drops(DropReason::Ipv6Beyond.number()) > beyond);
    // From outside, with a route to the prefix: shut.
    let unsolicited = agent.drops(DropReason::Unsolicited.number());
    assert!(!ping6(&w.ext, &a6.to_string()), "ext reached a container");
    assert!(agent.drops(DropReason::Unsolicited.number()) > unsolicited);
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
    assert!(
        !ping6(&w.ext, &b6.to_string()),
        "ext reached b after a restart"
    );
    // Detached, its address is free again.
    agent.ok(&["detach", "b"]);
    w.add_container("c").unwrap();
    agent.attach("dual", w.c("c"), "c", &["--ip6", "fd00:89::b"]);
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
        (&["--subnet", "fd00:1::/64"][..], "IPv6-only network"),
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
