//! End-to-end: the agent follows the host's network without a restart.
//! A default route that appears after the agent started, one that moves
//! to a second uplink, and an uplink address that changes under a
//! masqueraded flow and a published port (a DHCP lease renewed with a new
//! address), each with real sockets on both sides.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use weir_tests::{
    Netns, World,
    agent::Agent,
    eventually,
    sock::{self, Server, any, at},
    world::{self, EXT_IP, NODE_UPLINK_IP, UPLINK},
};

/// What a published port answers from `ns` at `to` (an echo of `ping`),
/// trying once with short timeouts.
fn answers(ns: &Netns, to: SocketAddr) -> bool {
    ns.run(|| {
        sock::tcp_exchange(
            to,
            b"ping",
            Duration::from_millis(200),
            Duration::from_millis(500),
        )
    })
    .is_ok_and(|r| r == b"ping")
}

/// The pinned links of the agent's datapath (`links/<program>@<if>`).
fn pinned_links(agent: &Agent) -> Vec<String> {
    std::fs::read_dir(agent.bpffs.join("links"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn status_uplinks(agent: &Agent) -> String {
    agent
        .ok(&["status"])
        .lines()
        .find_map(|l| l.strip_prefix("uplinks:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn an_agent_started_before_the_default_route_attaches_when_it_appears() {
    let mut w = World::new().unwrap();
    w.node.ip(&["route", "del", "default"]).unwrap();
    w.add_container("web").unwrap();
    let agent = Agent::start(&w, &[]);
    let now = status_uplinks(&agent);
    assert!(now.starts_with("none: no default route"), "{now}");
    assert!(
        !pinned_links(&agent).iter().any(|l| l.contains("uplink")),
        "{:?}",
        pinned_links(&agent)
    );
    agent.attach("weir", w.c("web"), "web", &["-p", "8080:80"]);
    let echo = Server::tcp(w.c("web"), any(80)).unwrap();
    assert!(!answers(&w.ext, at(NODE_UPLINK_IP, 8080)));

    w.node
        .ip(&["route", "add", "default", "via", &EXT_IP.to_string()])
        .unwrap();
    let added = Instant::now();
    let took = eventually(Duration::from_secs(1), || {
        answers(&w.ext, at(NODE_UPLINK_IP, 8080)).then(|| added.elapsed())
    });
    let took = took.expect("the published port answers within a second of the default route");
    eprintln!("published port answering {took:?} after the default route was added");
    assert_eq!(
        echo.peer_ips().last(),
        Some(&EXT_IP),
        "the client's address kept"
    );
    assert_eq!(
        status_uplinks(&agent),
        "uplink0 (the default route's device)"
    );

    // The route goes again: the uplink is let go, and the port with it.
    w.node.ip(&["route", "del", "default"]).unwrap();
    let gone = eventually(Duration::from_secs(1), || {
        (!pinned_links(&agent).iter().any(|l| l.contains(UPLINK))).then_some(())
    });
    assert!(gone.is_some(), "{:?}", pinned_links(&agent));
    assert!(status_uplinks(&agent).starts_with("none"));
}

#[test]
fn a_default_route_moved_to_a_second_uplink_takes_masquerade_and_ports_with_it() {
    const NODE2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const EXT2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    // Beyond ext2 only: reached through the default route alone.
    const FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    let mut w = World::new().unwrap();
    let ext2 = Netns::create(&format!("{}-ext2", w.stem())).unwrap();
    world::veth_into(&w.node, "uplink1", &ext2).unwrap();
    w.node
        .ip(&["addr", "add", &format!("{NODE2}/24"), "dev", "uplink1"])
        .unwrap();
    w.node.ip(&["link", "set", "uplink1", "up"]).unwrap();
    ext2.ip(&["addr", "add", &format!("{EXT2}/24"), "dev", "eth0"])
        .unwrap();
    ext2.ip(&["addr", "add", &format!("{FAR}/32"), "dev", "lo"])
        .unwrap();
    ext2.ip(&["link", "set", "eth0", "up"]).unwrap();
    w.add_container("c").unwrap();
    let agent = Agent::start(&w, &[]);
    assert_eq!(
        status_uplinks(&agent),
        "uplink0 (the default route's device)"
    );
    agent.attach("weir", w.c("c"), "c", &["-p", "8080:80"]);
    let echo = Server::tcp(w.c("c"), any(80)).unwrap();
    let far = Server::tcp(&ext2, at(FAR, 9000)).unwrap();

    w.node
        .ip(&["route", "replace", "default", "via", &EXT2.to_string()])
        .unwrap();
    let moved = eventually(Duration::from_secs(1), || {
        (status_uplinks(&agent) == "uplink1 (the default route's device)").then_some(())
    });
    assert!(moved.is_some(), "{}", status_uplinks(&agent));
    let links = pinned_links(&agent);
    assert!(
        links.iter().any(|l| l == "tc_from_uplink@uplink1")
            && !links.iter().any(|l| l.ends_with("@uplink0")),
        "{links:?}"
    );
    // Out through the new uplink, masqueraded as its address.
    let reply = sock::tcp_request(w.c("c"), at(FAR, 9000), b"out").unwrap();
    assert_eq!(reply, b"out");
    assert_eq!(far.peer_ips(), vec![NODE2]);
    // In through it, to the published port, the client's address kept.
    assert!(answers(&ext2, at(NODE2, 8080)));
    assert_eq!(echo.peer_ips().last(), Some(&EXT2));
}

#[test]
fn a_new_uplink_address_takes_over_a_masqueraded_flow_and_the_published_ports() {
    const RENEWED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
    let mut w = World::new().unwrap();
    w.add_container("c").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("c"), "c", &["-p", "8080:80"]);
    let echo = Server::tcp(w.c("c"), any(80)).unwrap();
    let sink = Server::udp(&w.ext, any(7000)).unwrap();
    // One UDP flow out, kept open from one socket, as a VPN or a game does.
    let flow = w.c("c").run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect(at(EXT_IP, 7000)).unwrap();
        s
    });
    flow.send(b"before").unwrap();
    let seen = eventually(Duration::from_secs(2), || sink.peer_ips().last().copied());
    assert_eq!(seen, Some(NODE_UPLINK_IP));

    // A lease renewed with a new address: the old one goes (with the
    // default route through it), the new one comes, the route again.
    w.node
        .ip(&[
            "addr",
            "del",
            &format!("{NODE_UPLINK_IP}/24"),
            "dev",
            UPLINK,
        ])
        .unwrap();
    w.node
        .ip(&["addr", "add", &format!("{RENEWED}/24"), "dev", UPLINK])
        .unwrap();
    w.node
        .ip(&["route", "replace", "default", "via", &EXT_IP.to_string()])
        .unwrap();
    // The same socket's next datagrams leave with the new address.
    let renewed = eventually(Duration::from_secs(2), || {
        flow.send(b"after").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        (sink.peer_ips().last() == Some(&RENEWED)).then_some(())
    });
    assert!(renewed.is_some(), "{:?}", sink.peer_ips());
    // The published port answers at the new address.
    let took = eventually(Duration::from_secs(1), || {
        answers(&w.ext, at(RENEWED, 8080)).then_some(())
    });
    assert!(took.is_some());
    assert_eq!(echo.peer_ips().last(), Some(&EXT_IP));
    let flows = agent.ok(&["conntrack", "ls"]);
    assert!(!flows.contains(&format!("{NODE_UPLINK_IP}:")), "{flows}");
}
