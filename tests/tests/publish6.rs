//! End-to-end: the node's own IPv6 sockets and published ports, as
//! Docker's `-p H:C` (which listens on `0.0.0.0` and `[::]`) gives them:
//! `[::1]:H` and the node's IPv6 addresses reach the container, TCP and
//! connected UDP; the socket
//! sees the address it asked for (`getpeername`, `recvfrom`); a port bound
//! to `127.0.0.1` is not on `[::1]` but is on `[::ffff:127.0.0.1]`.
//! And publications over IPv6 only, each reached at its addresses alone:
//! `-p [::]:H:C` (every IPv6 address of the node, from outside and from
//! the node, not over IPv4), `-p [2001:db8:1::1]:H:C` (that address),
//! `-p [::1]:H:C` (the node alone, TCP and unconnected UDP), each counted
//! in `weir stats`; refused for
//! an endpoint without an IPv6 address and where `0.0.0.0` holds the port.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use weir_tests::{
    World,
    agent::Agent,
    sock::{self, Server, any},
    world::{self, UPLINK},
};

fn v6(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// From `ns`: sends `data` to `to` over TCP; the answer, and the peer
/// the socket says it reached (`getpeername`).
fn exchange(ns: &weir_tests::Netns, to: SocketAddr, data: &[u8]) -> (Vec<u8>, SocketAddr) {
    ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let peer = s.peer_addr().unwrap();
        s.write_all(data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        (back, peer)
    })
}

#[test]
fn the_nodes_ipv6_sockets_reach_published_ports_on_loopback() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    w.node
        .ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            UPLINK,
            "nodad",
        ])
        .unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("c1"),
        "c1",
        &[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:8081:80",
            "-p",
            "5455:53/udp",
        ],
    );
    let web = Server::tcp(w.c("c1"), any(80)).unwrap();
    let _dns = Server::udp(w.c("c1"), any(53)).unwrap();

    let (echo, peer) = exchange(&w.node, v6("[::1]:8080"), b"over ipv6");
    assert_eq!(echo, b"over ipv6");
    assert_eq!(
        peer,
        v6("[::1]:8080"),
        "getpeername shows what was asked for"
    );
    assert_eq!(web.received().len(), 1);

    // Bound to 127.0.0.1: not on [::1], but on its v4-mapped form.
    assert!(sock::connect_fails(&w.node, v6("[::1]:8081")));
    assert_eq!(
        sock::tcp_request(&w.node, v6("[::ffff:127.0.0.1]:8081"), b"mapped").unwrap(),
        b"mapped"
    );

    // UDP, connected: the answer comes from the address it was sent to.
    let (answer, from) = w.node.run(|| {
        let s = UdpSocket::bind(v6("[::]:0")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.connect(v6("[::1]:5455")).unwrap();
        s.send(b"q6").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!(answer, b"q6");
    assert_eq!(from, v6("[::1]:5455"), "recvfrom shows what was asked for");

    // The node's own IPv6 address, as Docker's [::] binding covers it.
    assert_eq!(
        sock::tcp_request(&w.node, v6("[2001:db8:1::1]:8080"), b"node6").unwrap(),
        b"node6"
    );

    // An unpublished port on [::1] stays the node's own (nothing listens).
    assert!(sock::connect_fails(&w.node, v6("[::1]:8089")));
}

#[test]
fn ipv6_bound_publications_are_reached_at_their_addresses_only() {
    let mut w = World::new().unwrap();
    w.add_ipv6().unwrap();
    w.add_container("web").unwrap();
    w.add_container("old").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&[
        "network",
        "create",
        "dual",
        "--subnet",
        "10.87.0.0/24",
        "--subnet",
        "fd00:87::/64",
    ]);
    let node6 = world::NODE_UPLINK_IP6;
    agent.attach(
        "dual",
        w.c("web"),
        "web",
        &[
            "-p",
            "[::]:8090:80",
            "-p",
            &format!("[{node6}]:8091:80"),
            "-p",
            "[::1]:8092:80",
            "-p",
            "[::1]:5456:53/udp",
            // Beside `[::]:8090`, IPv4's loopback may have the port.
            "-p",
            "127.0.0.1:8090:81",
        ],
    );
    let web = Server::tcp(w.c("web"), v6("[::]:80")).unwrap();
    let web4 = Server::tcp(w.c("web"), any(81)).unwrap();
    let _dns = Server::udp(w.c("web"), v6("[::]:53")).unwrap();
    reached_from_outside(&w, &web);
    reached_from_the_node(&w, &web, &web4);
    // Counted as the publication's: ext's flow and the node's.
    let stats = agent.json(&["stats"]);
    let bound = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["host_port"] == 8091)
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(bound["host_ip"], node6.to_string(), "{bound}");
    assert_eq!(bound["container_ip"], "fd00:87::2", "{bound}");
    assert_eq!(bound["flows"], 2, "{bound}");
    assert!(bound["packets_in"].as_u64() > Some(0) && bound["packets_out"].as_u64() > Some(0));

    let ports = agent.ok(&["port", "web"]);
    for line in [
        "80/tcp -> [::]:8090",
        "80/tcp -> [2001:db8:1::1]:8091",
        "80/tcp -> [::1]:8092",
        "53/udp -> [::1]:5456",
    ] {
        assert!(ports.contains(line), "{line} in {ports}");
    }
    // `0.0.0.0` is IPv6's every address too: the port is taken.
    let clash = agent.refused(&["publish", "web", "8090:82"]);
    assert!(clash.contains("already allocated"), "{clash}");
    // No IPv6 address to lead to.
    agent.attach("weir", w.c("old"), "old", &[]);
    let no6 = agent.refused(&["publish", "old", "[::]:8095:80"]);
    assert!(no6.contains("no IPv6 address"), "{no6}");
    assert!(!agent.ok(&["port", "old"]).contains("8095"));
    // Withdrawn: gone from outside.
    agent.ok(&["unpublish", "web", "[::]:8090:80"]);
    assert!(sock::connect_fails(&w.ext, at6(8090)));
    assert_eq!(
        sock::tcp_request(&w.ext, at6(8091), b"kept").unwrap(),
        b"kept"
    );
    let rules = world::netfilter_rules(&w.node);
    assert!(rules.is_empty(), "netfilter rules: {rules:?}");
}

fn at6(port: u16) -> SocketAddr {
    SocketAddr::from((world::NODE_UPLINK_IP6, port))
}

/// From outside: `[::]` and the bound address, over IPv6 alone.
fn reached_from_outside(w: &World, web: &Server) {
    assert_eq!(
        sock::tcp_request(&w.ext, at6(8090), b"any6").unwrap(),
        b"any6"
    );
    assert_eq!(
        web.received()[0].peer.ip(),
        world::EXT_IP6,
        "the client kept"
    );
    assert!(
        sock::connect_fails(&w.ext, sock::at(world::NODE_UPLINK_IP, 8090)),
        "[::]:8090 reached over IPv4"
    );
    assert_eq!(
        sock::tcp_request(&w.ext, at6(8091), b"bound").unwrap(),
        b"bound"
    );
    assert!(
        sock::connect_fails(&w.ext, at6(8092)),
        "[::1]:8092 reached from outside"
    );
}

/// From the node: `[::1]` and `[::]` on loopback, the bound address,
/// each socket seeing what it asked for; IPv4's loopback has its own.
fn reached_from_the_node(w: &World, web: &Server, web4: &Server) {
    let (echo, peer) = exchange(&w.node, v6("[::1]:8092"), b"lo6");
    assert_eq!((echo.as_slice(), peer), (&b"lo6"[..], v6("[::1]:8092")));
    assert_eq!(
        web.received().last().unwrap().peer.ip(),
        "fd00:87::1".parse::<std::net::IpAddr>().unwrap(),
        "the node's call comes from the gateway"
    );
    for (to, data) in [("[::1]:8090", b"any"), ("[2001:db8:1::1]:8091", b"adr")] {
        assert_eq!(
            sock::tcp_request(&w.node, v6(to), data).unwrap(),
            data,
            "{to}"
        );
    }
    assert!(
        sock::connect_fails(&w.node, v6("[::1]:8091")),
        "a bound address's port reached on [::1]"
    );
    let before = web4.received().len();
    assert_eq!(
        sock::tcp_request(
            &w.node,
            sock::at(std::net::Ipv4Addr::LOCALHOST, 8090),
            b"v4"
        )
        .unwrap(),
        b"v4"
    );
    assert_eq!(
        web4.received().len(),
        before + 1,
        "127.0.0.1:8090 is port 81's"
    );

    // UDP, unconnected (`sendmsg6`): the answer shows the address asked.
    let (answer, from) = w.node.run(|| {
        let s = UdpSocket::bind(v6("[::]:0")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(b"q", v6("[::1]:5456")).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!((answer.as_slice(), from), (&b"q"[..], v6("[::1]:5456")));
}
