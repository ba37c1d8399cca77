//! End-to-end: published ports (`-p`) with a real agent in a test-bed node,
//! real sockets in `ext`, in the node and in containers. Every server logs
//! the peer it saw, so "the container sees the client's address" is
//! checked, not assumed.

use std::{
    io::Read,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    thread,
    time::Duration,
};

use weir::api::types::{FlowView, PortView};
use weir_tests::{
    World,
    agent::Agent,
    eventually, packet,
    sock::{self, Server, any, at},
    world::{self, EXT_IP, NODE_UPLINK_IP},
};

#[test]
fn http_from_ext_and_from_the_node_reaches_the_container_which_sees_the_client() {
    let mut w = World::new().unwrap();
    w.add_container("web").unwrap();
    let agent = Agent::start(&w, &[]);
    let ip = agent.attach(
        "weir",
        w.c("web"),
        "web",
        &["-p", "8080:80", "-p", "2222:22"],
    );
    let http = Server::http(w.c("web"), any(80)).unwrap();
    let banner = Server::banner(w.c("web"), any(22)).unwrap();

    // From outside, to the uplink address: the container sees ext itself.
    let body = w
        .ext
        .curl(&format!("http://{NODE_UPLINK_IP}:8080/"))
        .unwrap();
    assert_eq!(
        body,
        format!("hello {EXT_IP}:{}\n", http.received()[0].peer.port())
    );
    assert_eq!(http.peer_ips(), vec![EXT_IP]);
    assert!(String::from_utf8_lossy(&http.received()[0].data).starts_with("GET / HTTP/1.1"));

    // A protocol where the server speaks first.
    let mut greeting = String::new();
    w.ext.run(|| {
        let mut s =
            TcpStream::connect_timeout(&at(NODE_UPLINK_IP, 2222), Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_to_string(&mut greeting).unwrap();
    });
    assert!(
        greeting.starts_with(&format!("hello {EXT_IP}:")),
        "{greeting}"
    );
    assert_eq!(banner.peer_ips(), vec![EXT_IP]);

    // From the node itself: 127.0.0.1, the uplink address, the gateway.
    let gateway = Ipv4Addr::new(10, 203, 0, 1);
    for host in [Ipv4Addr::LOCALHOST, NODE_UPLINK_IP, gateway] {
        let body = w.node.curl(&format!("http://{host}:8080/")).unwrap();
        assert!(body.starts_with("hello "), "via {host}: {body:?}");
    }
    // The node's sockets were pointed straight at the container, so they
    // come from the node's address on the container's bridge.
    assert_eq!(http.peer_ips()[1..], [gateway, gateway, gateway]);

    // `weir port` says what Docker's would.
    assert_eq!(
        agent.ok(&["port", "web"]),
        "80/tcp -> 0.0.0.0:8080\n22/tcp -> 0.0.0.0:2222\n"
    );
    let ports: Vec<PortView> = serde_json::from_str(&agent.ok(&["port", "--json"])).unwrap();
    assert_eq!(ports.len(), 2);
    assert!(
        ports
            .iter()
            .all(|p| p.endpoint == "web" && p.container_ip == Some(ip.into()))
    );

    // Conntrack has the flows from ext, with the client's real address.
    let flows: Vec<FlowView> =
        serde_json::from_str(&agent.ok(&["conntrack", "ls", "--json"])).unwrap();
    let from_ext: Vec<&FlowView> = flows.iter().filter(|f| f.src.ip() == EXT_IP).collect();
    assert_eq!(from_ext.len(), 2, "{flows:?}");
    assert!(
        from_ext
            .iter()
            .all(|f| f.kind == "dnat" && f.to_dst.ip() == ip && f.to_src.ip() == EXT_IP)
    );
    assert!(
        agent
            .ok(&["conntrack", "flush"])
            .contains("flushed 2 flows")
    );
}

#[test]
fn udp_echo_and_each_port_of_a_range_reach_their_own_listener() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("c1"),
        "c1",
        &["-p", "5353:53/udp", "-p", "8000-8002:9000-9002"],
    );
    let dns = Server::udp(w.c("c1"), any(53)).unwrap();
    let answer = sock::udp_request(&w.ext, None, at(NODE_UPLINK_IP, 5353), b"query").unwrap();
    assert_eq!(answer, b"query");
    assert_eq!(dns.peer_ips(), vec![EXT_IP]);

    // From the node, unconnected: the answer comes from the address asked.
    let (answer, from) = w.node.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(b"local", at(Ipv4Addr::LOCALHOST, 5353)).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!(answer, b"local");
    assert_eq!(
        from,
        at(Ipv4Addr::LOCALHOST, 5353),
        "recvmsg4 shows the published address"
    );

    let servers: Vec<Server> = (9000..=9002)
        .map(|p| Server::tcp(w.c("c1"), any(p)).unwrap())
        .collect();
    for (i, host_port) in (8000..=8002).enumerate() {
        let msg = format!("to {host_port}");
        let reply =
            sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, host_port), msg.as_bytes()).unwrap();
        assert_eq!(reply, msg.as_bytes());
        assert_eq!(
            servers[i].received().len(),
            1,
            "port {host_port} reached its own listener"
        );
        assert_eq!(servers[i].received()[0].data, msg.as_bytes());
    }
}

#[test]
fn host_ip_binding_loopback_stays_on_the_node() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("c1"),
        "c1",
        &[
            "-p",
            "127.0.0.1:8081:80",
            "-p",
            &format!("{NODE_UPLINK_IP}:8082:80"),
            "-p",
            "127.0.0.1:5454:53/udp",
            "-p",
            "5455:53/udp",
        ],
    );
    let web = Server::tcp(w.c("c1"), any(80)).unwrap();
    let dns = Server::udp(w.c("c1"), any(53)).unwrap();

    assert_eq!(
        sock::tcp_request(&w.node, at(Ipv4Addr::LOCALHOST, 8081), b"a").unwrap(),
        b"a"
    );
    assert_eq!(
        sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, 8082), b"b").unwrap(),
        b"b"
    );
    // The loopback-bound port is not on the uplink address...
    assert!(sock::connect_fails(&w.ext, at(NODE_UPLINK_IP, 8081)));
    // ...and the uplink-bound one is not on loopback.
    assert!(sock::connect_fails(&w.node, at(Ipv4Addr::LOCALHOST, 8082)));
    assert_eq!(web.received().len(), 2);

    // A host that routes 127.0.0.0/8 to the node still reaches nothing:
    // frames to 127.0.0.1 from ext's wire. A control frame to the uplink
    // address, sent the same way, shows the path works.
    let node_mac = mac_of(&w.node, "uplink0");
    let ext_mac = mac_of(&w.ext, "eth0");
    let frame = |dst: Ipv4Addr, port: u16, payload: &[u8]| {
        let mut f = packet::udp4(
            SocketAddrV4::new(EXT_IP, 40000),
            SocketAddrV4::new(dst, port),
            payload,
        );
        f[..6].copy_from_slice(&node_mac);
        f[6..12].copy_from_slice(&ext_mac);
        f
    };
    w.ext.run(|| {
        sock::send_raw("eth0", &frame(Ipv4Addr::LOCALHOST, 5454, b"sneaky"));
        sock::send_raw("eth0", &frame(Ipv4Addr::LOCALHOST, 5455, b"sneaky"));
        sock::send_raw("eth0", &frame(NODE_UPLINK_IP, 5455, b"control"));
    });
    eventually(Duration::from_secs(3), || {
        (!dns.received().is_empty()).then_some(())
    })
    .expect("the control frame arrives");
    thread::sleep(Duration::from_millis(300));
    let got: Vec<Vec<u8>> = dns.received().into_iter().map(|r| r.data).collect();
    assert_eq!(got, vec![b"control".to_vec()]);
}

fn mac_of(ns: &weir_tests::Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", ifname]).unwrap();
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = links[0]["address"].as_str().unwrap().to_owned();
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

#[test]
fn hairpin_from_itself_a_neighbour_and_another_network() {
    let mut w = World::new().unwrap();
    for c in ["web", "nb", "other"] {
        w.add_container(c).unwrap();
    }
    let agent = Agent::start(&w, &[]);
    agent.ok(&["network", "create", "blue", "--subnet", "10.77.0.0/24"]);
    let web = agent.attach("weir", w.c("web"), "web", &["-p", "8080:80"]);
    let nb = agent.attach("weir", w.c("nb"), "nb", &[]);
    let other = agent.attach("blue", w.c("other"), "other", &[]);
    let server = Server::tcp(w.c("web"), any(80)).unwrap();
    for (c, via) in [
        ("web", NODE_UPLINK_IP),
        ("nb", NODE_UPLINK_IP),
        ("other", NODE_UPLINK_IP),
        ("nb", Ipv4Addr::new(10, 203, 0, 1)),
        ("other", Ipv4Addr::new(10, 77, 0, 1)),
    ] {
        let msg = format!("{c} via {via}");
        let reply = sock::tcp_request(w.c(c), at(via, 8080), msg.as_bytes())
            .unwrap_or_else(|e| panic!("{msg}: {e}"));
        assert_eq!(reply, msg.as_bytes());
    }
    // The container calling itself sees the node address it called; the
    // others are seen with their own addresses.
    assert_eq!(
        server.peer_ips(),
        vec![NODE_UPLINK_IP, nb, other, nb, other],
        "web is {web}"
    );
}

#[test]
fn a_thousand_sequential_and_two_hundred_concurrent_connections() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("c1"), "c1", &["-p", "8080:80"]);
    let server = Server::tcp(w.c("c1"), any(80)).unwrap();
    let to = at(NODE_UPLINK_IP, 8080);
    w.ext.run(|| {
        for i in 0..1000u32 {
            let msg = format!("seq {i}");
            let reply = tcp_roundtrip(to, msg.as_bytes()).unwrap_or_else(|e| panic!("{msg}: {e}"));
            assert_eq!(reply, msg.as_bytes());
        }
    });
    let ext_path = w.ext.path();
    thread::scope(|s| {
        let handles: Vec<_> = (0..200u32)
            .map(|i| {
                let ext_path = ext_path.clone();
                s.spawn(move || {
                    weir::netns::enter(&ext_path).unwrap();
                    let msg = format!("conc {i}");
                    let reply =
                        tcp_roundtrip(to, msg.as_bytes()).unwrap_or_else(|e| panic!("{msg}: {e}"));
                    assert_eq!(reply, msg.as_bytes());
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(server.received().len(), 1200);
    assert!(server.peer_ips().iter().all(|ip| *ip == EXT_IP));
}

/// Through one published port under load: connect within 10 s, answers
/// within 30 s.
fn tcp_roundtrip(to: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    sock::tcp_exchange(to, data, Duration::from_secs(10), Duration::from_secs(30))
}

#[test]
fn no_iptables_or_nftables_rule_is_made() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("c1"),
        "c1",
        &["-p", "8080:80", "-p", "53:53/udp"],
    );
    let server = Server::tcp(w.c("c1"), any(80)).unwrap();
    assert_eq!(
        sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, 8080), b"x").unwrap(),
        b"x"
    );
    assert_eq!(server.received().len(), 1);
    // Masquerade too: the container reaches a server in ext.
    let outside = Server::tcp(&w.ext, any(81)).unwrap();
    assert_eq!(
        sock::tcp_request(w.c("c1"), at(EXT_IP, 81), b"y").unwrap(),
        b"y"
    );
    assert_eq!(outside.peer_ips(), vec![NODE_UPLINK_IP]);
    let rules = world::netfilter_rules(&w.node);
    assert!(rules.is_empty(), "netfilter rules: {rules:?}");
}
