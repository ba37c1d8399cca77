//! End-to-end: published ports (`-p`) with a real agent in a test-bed node,
//! real sockets in `ext`, in the node and in containers. Every server logs
//! the peer it saw, so "the container sees the client's address" is
//! checked, not assumed.

use std::{
    io::Read,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use weir::daemon::{FlowView, PortView};
use weir_tests::{
    World,
    agent::Agent,
    eventually, packet,
    sock::{self, Server},
    world::{EXT_IP, NODE_UPLINK_IP},
};

fn at(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

fn any(port: u16) -> SocketAddr {
    at(Ipv4Addr::UNSPECIFIED, port)
}

fn peer_ips(server: &Server) -> Vec<Ipv4Addr> {
    server
        .received()
        .iter()
        .map(|r| match r.peer {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => panic!("IPv6 peer"),
        })
        .collect()
}

/// curl from `ns`: the body, or `None` when it fails.
fn curl(ns: &weir_tests::Netns, url: &str) -> Option<String> {
    let out = ns.exec("curl", &["-sS", "--max-time", "5", url]).ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn connect_refused_or_times_out(ns: &weir_tests::Netns, to: SocketAddr) -> bool {
    ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_err())
}

fn err_text(agent: &Agent, args: &[&str]) -> String {
    let out = agent.weir(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "weir {args:?} should be refused"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
    let body = curl(&w.ext, &format!("http://{NODE_UPLINK_IP}:8080/")).unwrap();
    assert_eq!(
        body,
        format!("hello {EXT_IP}:{}\n", http.received()[0].peer.port())
    );
    assert_eq!(peer_ips(&http), vec![EXT_IP]);
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
    assert_eq!(peer_ips(&banner), vec![EXT_IP]);

    // From the node itself: 127.0.0.1, the uplink address, the gateway.
    let gateway = Ipv4Addr::new(10, 203, 0, 1);
    for host in [Ipv4Addr::LOCALHOST, NODE_UPLINK_IP, gateway] {
        let body = curl(&w.node, &format!("http://{host}:8080/")).unwrap();
        assert!(body.starts_with("hello "), "via {host}: {body:?}");
    }
    // The node's sockets were pointed straight at the container, so they
    // come from the node's address on the container's bridge.
    assert_eq!(peer_ips(&http)[1..], [gateway, gateway, gateway]);

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
            .all(|p| p.endpoint == "web" && p.container_ip == ip)
    );

    // Conntrack has the flows from ext, with the client's real address.
    let flows: Vec<FlowView> =
        serde_json::from_str(&agent.ok(&["conntrack", "ls", "--json"])).unwrap();
    let from_ext: Vec<&FlowView> = flows.iter().filter(|f| *f.src.ip() == EXT_IP).collect();
    assert_eq!(from_ext.len(), 2, "{flows:?}");
    assert!(
        from_ext
            .iter()
            .all(|f| f.kind == "dnat" && *f.to_dst.ip() == ip && *f.to_src.ip() == EXT_IP)
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
    assert_eq!(peer_ips(&dns), vec![EXT_IP]);

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
    assert!(connect_refused_or_times_out(
        &w.ext,
        at(NODE_UPLINK_IP, 8081)
    ));
    // ...and the uplink-bound one is not on loopback.
    assert!(connect_refused_or_times_out(
        &w.node,
        at(Ipv4Addr::LOCALHOST, 8082)
    ));
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
        peer_ips(&server),
        vec![NODE_UPLINK_IP, nb, other, nb, other],
        "web is {web}"
    );
}

#[test]
fn unpublish_kills_the_port_and_republish_takes_a_running_udp_flow_at_once() {
    let mut w = World::new().unwrap();
    w.add_container("old").unwrap();
    w.add_container("new").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("old"),
        "old",
        &["-p", "6000:53/udp", "-p", "7000:80"],
    );
    agent.attach("weir", w.c("new"), "new", &[]);
    let old = Server::udp(w.c("old"), any(53)).unwrap();
    let new = Server::udp(w.c("new"), any(53)).unwrap();
    let web = Server::tcp(w.c("old"), any(80)).unwrap();
    assert_eq!(
        sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, 7000), b"x").unwrap(),
        b"x"
    );

    // One socket in ext keeps sending from the same port, every 10 ms.
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            w.ext.run(|| {
                let sock = UdpSocket::bind("0.0.0.0:41000").unwrap();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let _ = sock.send_to(&n.to_be_bytes(), at(NODE_UPLINK_IP, 6000));
                    n += 1;
                    thread::sleep(Duration::from_millis(10));
                }
            });
        });
        eventually(Duration::from_secs(3), || {
            (old.received().len() > 5).then_some(())
        })
        .expect("the flow reaches the old container");

        agent.ok(&["unpublish", "old", "6000:53/udp", "80"]);
        assert!(connect_refused_or_times_out(
            &w.ext,
            at(NODE_UPLINK_IP, 7000)
        ));
        thread::sleep(Duration::from_millis(200));
        let after_unpublish = old.received().len();
        thread::sleep(Duration::from_millis(300));
        assert_eq!(old.received().len(), after_unpublish, "the port is dead");
        assert!(new.received().is_empty());

        agent.ok(&["publish", "new", "6000:53/udp"]);
        let reached = eventually(Duration::from_secs(2), || {
            (new.received().len() > 3).then_some(())
        });
        stop.store(true, Ordering::Relaxed);
        reached.expect("the same flow reaches the new container without stopping");
    });
    // One flow throughout: the same source socket reached both.
    assert!(
        old.received()
            .iter()
            .chain(new.received().iter())
            .all(|r| r.peer == at(EXT_IP, 41000))
    );
    assert_eq!(web.received().len(), 1);
    assert!(agent.ok(&["port"]).contains("new"));
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
    assert!(peer_ips(&server).iter().all(|ip| *ip == EXT_IP));
}

fn tcp_roundtrip(to: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    Ok(reply)
}

#[test]
fn conflicts_and_bad_specs_are_refused_and_change_nothing() {
    let mut w = World::new().unwrap();
    for c in ["a", "b", "c"] {
        w.add_container(c).unwrap();
    }
    let agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("a"),
        "a",
        &["-p", "8080:80", "-p", "127.0.0.1:9000:90"],
    );
    agent.attach("weir", w.c("b"), "b", &[]);
    // TCP and UDP on one host port, to different containers; one port on
    // two host addresses, to two containers.
    agent.ok(&["publish", "b", "8080:80/udp"]);
    agent.ok(&["publish", "b", &format!("{NODE_UPLINK_IP}:9000:90")]);
    let before = agent.ok(&["port"]);

    let local = w
        .node
        .run(|| std::net::TcpListener::bind("0.0.0.0:7070").unwrap());
    let cases: [(&[&str], &str); 8] = [
        (
            &["publish", "b", "8080:81"],
            "Bind for 0.0.0.0:8080/tcp failed: port is already allocated (published by endpoint `a`)",
        ),
        (
            &["publish", "b", "127.0.0.1:8080:81"],
            "port is already allocated (published by endpoint `a`)",
        ),
        (
            &["publish", "b", "9000:90"],
            "port is already allocated (published by endpoint `a`)",
        ),
        (
            &["publish", "b", "7070:70"],
            "0.0.0.0:7070/tcp is in use by a program on the node",
        ),
        (
            &["publish", "b", "192.0.2.9:8000:80"],
            "192.0.2.9 is not an address of this node",
        ),
        (
            &["publish", "b", "70000:80"],
            "invalid port spec `70000:80`",
        ),
        (
            &["publish", "b", "6001:60", "6001:61"],
            "already allocated (published by endpoint `(this request)`)",
        ),
        (
            &["unpublish", "b", "4444"],
            "endpoint `b` publishes nothing that matches `4444`",
        ),
    ];
    for (args, want) in cases {
        let err = err_text(&agent, args);
        assert!(err.contains(want), "weir {args:?}: {err}");
    }
    assert!(
        err_text(&agent, &["publish", "nobody", "1:1"]).contains("endpoint `nobody` not found")
    );
    // An attach whose ports cannot be published is undone entirely.
    let path = w.c("c").path();
    let err = err_text(
        &agent,
        &[
            "attach",
            "weir",
            "--netns",
            path.to_str().unwrap(),
            "--name",
            "c",
            "-p",
            "8080:80",
        ],
    );
    assert!(err.contains("already allocated"), "{err}");
    assert!(!agent.ok(&["ps"]).contains("c "));
    assert!(
        w.c("c").ip(&["link", "show", "eth0"]).is_err(),
        "no eth0 left behind"
    );
    assert_eq!(agent.ok(&["port"]), before, "nothing changed");
    // The failed 6001 request released what it had reserved.
    agent.ok(&["publish", "b", "6001:60"]);
    drop(local);

    // Detach withdraws the endpoint's ports and frees them for others.
    agent.ok(&["detach", "a"]);
    agent.ok(&["publish", "b", "8080:80"]);
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
    let save = w.node.exec("iptables-save", &[]).unwrap();
    let rules: Vec<String> = String::from_utf8_lossy(&save.stdout)
        .lines()
        .filter(|l| l.starts_with("-A") || l.contains("DNAT") || l.contains("MASQUERADE"))
        .map(str::to_owned)
        .collect();
    assert!(rules.is_empty(), "iptables rules: {rules:?}");
    let nft = w.node.exec("nft", &["list", "ruleset"]).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&nft.stdout).trim(),
        "",
        "nftables ruleset"
    );
}

#[test]
fn published_ports_come_back_after_the_agent_is_killed() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let mut agent = Agent::start(&w, &[]);
    agent.attach(
        "weir",
        w.c("c1"),
        "c1",
        &["-p", "8080:80", "-p", "5353:53/udp"],
    );
    let web = Server::tcp(w.c("c1"), any(80)).unwrap();
    let dns = Server::udp(w.c("c1"), any(53)).unwrap();
    let ports = agent.ok(&["port"]);
    agent.restart();
    assert_eq!(agent.ok(&["port"]), ports);
    assert_eq!(
        sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, 8080), b"again").unwrap(),
        b"again"
    );
    assert_eq!(
        sock::udp_request(&w.ext, None, at(NODE_UPLINK_IP, 5353), b"q").unwrap(),
        b"q"
    );
    assert_eq!(
        sock::tcp_request(&w.node, at(Ipv4Addr::LOCALHOST, 8080), b"lo").unwrap(),
        b"lo"
    );
    assert_eq!((web.received().len(), dns.received().len()), (2, 1));
    // The new agent holds the host port again.
    assert!(
        w.node
            .run(|| std::net::TcpListener::bind("0.0.0.0:8080"))
            .is_err()
    );
}

/// The sockets that hold published ports, in a node of their own.
#[test]
fn a_held_port_is_refused_to_others_and_freed_on_release() {
    use weir::publish::{Proto, Reservations, ReserveError};
    let w = World::new().unwrap();
    w.node.run(|| {
        let mut r = Reservations::default();
        let lo = Ipv4Addr::LOCALHOST;
        let port = r.reserve(Proto::Tcp, lo, 0).expect("a free port");
        assert!(port > 0 && r.holds(Proto::Tcp, lo, port));
        assert!(std::net::TcpListener::bind((lo, port)).is_err(), "held");
        r.reserve(Proto::Udp, lo, port)
            .expect("the same number is free for UDP");
        let mut other = Reservations::default();
        assert!(matches!(
            other.reserve(Proto::Tcp, Ipv4Addr::UNSPECIFIED, port),
            Err(ReserveError::InUse { .. })
        ));
        r.release(Proto::Tcp, lo, port);
        assert!(std::net::TcpListener::bind((lo, port)).is_ok(), "released");
        assert!(matches!(
            r.reserve(Proto::Tcp, Ipv4Addr::new(192, 0, 2, 77), 0),
            Err(ReserveError::NotLocal { .. })
        ));
        assert!(matches!(
            r.reserve(Proto::Sctp, lo, 0),
            Err(ReserveError::Unsupported { .. })
        ));
    });
}
