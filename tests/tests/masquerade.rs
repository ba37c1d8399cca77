//! End-to-end: masquerade of container egress with a real agent. Servers
//! in `ext` log who called: the node's uplink address, or the container's
//! own address where masquerade is off.

use std::{
    io::Read,
    net::{TcpStream, UdpSocket},
    time::Duration,
};

use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    sock::{self, Server, any, at},
    world::{self, EXT_IP, NODE_UPLINK_IP},
};

#[test]
fn a_container_reaches_ext_as_the_node_and_ping_works() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("c1"), "c1", &[]);
    let tcp = Server::tcp(&w.ext, any(80)).unwrap();
    let udp = Server::udp(&w.ext, any(53)).unwrap();
    assert_eq!(
        sock::tcp_request(w.c("c1"), at(EXT_IP, 80), b"hi").unwrap(),
        b"hi"
    );
    assert_eq!(
        sock::udp_request(w.c("c1"), None, at(EXT_IP, 53), b"q").unwrap(),
        b"q"
    );
    assert_eq!(tcp.peer_ips(), vec![NODE_UPLINK_IP]);
    assert_eq!(udp.peer_ips(), vec![NODE_UPLINK_IP]);
    assert!(world::ping(w.c("c1"), EXT_IP), "ping through masquerade");
    let flows = agent.ok(&["conntrack", "ls"]);
    assert!(flows.contains("snat"), "{flows}");
}

#[test]
fn two_containers_with_one_fixed_source_port_both_get_through_at_once() {
    let mut w = World::new().unwrap();
    w.add_container("a").unwrap();
    w.add_container("b").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("a"), "a", &[]);
    agent.attach("weir", w.c("b"), "b", &[]);
    let server = Server::udp(&w.ext, any(53)).unwrap();
    // Both sockets are open at once, bound to the same port.
    let sockets: Vec<UdpSocket> = ["a", "b"]
        .iter()
        .map(|c| {
            w.c(c).run(|| {
                let s = UdpSocket::bind("0.0.0.0:5000").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.connect(at(EXT_IP, 53)).unwrap();
                s
            })
        })
        .collect();
    for (s, msg) in sockets.iter().zip([b"from a", b"from b"]) {
        s.send(msg).unwrap();
    }
    for (s, msg) in sockets.iter().zip([b"from a", b"from b"]) {
        let mut buf = [0u8; 16];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg);
    }
    let ports: Vec<u16> = server.received().iter().map(|r| r.peer.port()).collect();
    assert_eq!(ports.len(), 2);
    assert_ne!(ports[0], ports[1], "two flows, two NAT ports");
    assert!(server.peer_ips().iter().all(|ip| *ip == NODE_UPLINK_IP));
    drop(agent);
}

#[test]
fn without_masquerade_ext_sees_the_container_address() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&[
        "network",
        "create",
        "plain",
        "--subnet",
        "10.66.0.0/24",
        "--masquerade=false",
    ]);
    let ip = agent.attach("plain", w.c("c1"), "c1", &[]);
    let server = Server::tcp(&w.ext, any(80)).unwrap();
    // ext's default route is the node, so the answer finds its way back.
    assert_eq!(
        sock::tcp_request(w.c("c1"), at(EXT_IP, 80), b"x").unwrap(),
        b"x"
    );
    assert_eq!(server.peer_ips(), vec![ip]);
}

#[test]
fn a_tiny_port_range_runs_out_visibly_and_frees_a_port_when_a_flow_ends() {
    let mut w = World::new().unwrap();
    for c in ["a", "b", "c"] {
        w.add_container(c).unwrap();
    }
    let agent = Agent::start(&w, &["--snat-ports", "2000-2001"]);
    for c in ["a", "b", "c"] {
        agent.attach("weir", w.c(c), c, &[]);
    }
    // The server greets and closes its side; the clients keep theirs
    // open, so their flows have not ended and hold their ports.
    let server = Server::banner(&w.ext, any(80)).unwrap();
    let hold = |c: &str| {
        let mut s = w
            .c(c)
            .run(|| TcpStream::connect_timeout(&at(EXT_IP, 80), Duration::from_secs(2)))
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut greeting = String::new();
        s.read_to_string(&mut greeting).unwrap();
        assert!(greeting.starts_with("hello "), "{greeting}");
        s
    };
    let (a, b) = (hold("a"), hold("b"));
    assert!(
        sock::connect_fails(w.c("c"), at(EXT_IP, 80)),
        "no port left"
    );
    let mut ports: Vec<u16> = server.received().iter().map(|r| r.peer.port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![2000, 2001]);
    let drops = agent.drops(4);
    assert!(drops >= 1, "snat-ports-exhausted counted: {drops}");
    let net: weir::api::types::NetworkView =
        serde_json::from_str(&agent.ok(&["network", "inspect", "weir"])).unwrap();
    let c = net.masquerade_stats;
    assert_eq!(c.flows, 2, "{c:?}");
    assert_eq!(
        c.exhausted, drops,
        "each dropped SYN is one exhausted flow: {c:?}"
    );
    assert!(c.packets > 0 && c.retries >= 16 * c.exhausted, "{c:?}");
    // a's flow ends (a FIN each way): its port is c's at once, long
    // before the sweep would have removed the flow.
    drop(a);
    let ended = std::time::Instant::now();
    let taken = loop {
        if let Ok(mut s) = w
            .c("c")
            .run(|| TcpStream::connect_timeout(&at(EXT_IP, 80), Duration::from_secs(2)))
        {
            let mut greeting = String::new();
            s.read_to_string(&mut greeting).unwrap();
            break ended.elapsed();
        }
        assert!(ended.elapsed() < Duration::from_secs(5), "no port freed");
    };
    assert!(taken < Duration::from_secs(5), "{taken:?}");
    let last = server.received().last().unwrap().peer;
    assert!([2000, 2001].contains(&last.port()), "{last}");
    drop(b);
}

#[test]
fn a_port_range_inside_ip_local_port_range_is_refused_at_start() {
    let w = World::new().unwrap();
    let dir = std::env::temp_dir().join(format!("{}-refused", w.stem()));
    let out = w
        .node
        .command(weir_bin().to_str().unwrap())
        .arg("--socket")
        .arg(dir.join("weir.sock"))
        .args(["agent", "--snat-ports", "40000-40010", "--state-dir"])
        .arg(dir.join("state"))
        .arg("--bpffs")
        .arg(format!("/sys/fs/bpf/{}-refused", w.stem()))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--snat-ports 40000-40010 overlaps the node's ip_local_port_range 32768-60999"
        ),
        "{err}"
    );
}

#[test]
fn icmp_errors_cross_the_nat_both_ways_as_connection_refused() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("c1"), "c1", &["-p", "5999:53/udp"]);
    let refused = |ns: &weir_tests::Netns, to| {
        ns.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.connect(to).unwrap();
            s.send(b"anyone?").unwrap();
            let mut buf = [0u8; 16];
            s.recv(&mut buf).err().map(|e| e.kind())
        })
    };
    // Masquerade: nothing listens on ext's port 9; ext's port unreachable
    // comes back through the NAT to the container's socket.
    assert_eq!(
        refused(w.c("c1"), at(EXT_IP, 9)),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    // A published port with nothing behind it: the container's error goes
    // out as the node's, and ext's socket hears it.
    assert_eq!(
        refused(&w.ext, at(NODE_UPLINK_IP, 5999)),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
}

/// Raises this process's open-file limit to its hard limit (the test holds
/// thousands of sockets at once).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim), 0);
    }
}

#[test]
fn five_thousand_concurrent_connections_through_masquerade() {
    use std::io::{Read, Write};
    const N: usize = 5000;
    raise_fd_limit();
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("c1"), "c1", &[]);
    // An echo server in ext with a thread per connection, so that every
    // connection is served while all are open.
    let listener = w
        .ext
        .run(|| std::net::TcpListener::bind("0.0.0.0:7000"))
        .unwrap();
    let server = std::thread::spawn(move || {
        let mut peers = Vec::with_capacity(N);
        let workers: Vec<_> = (0..N)
            .map(|_| {
                let (mut s, peer) = listener.accept().unwrap();
                peers.push(peer);
                std::thread::spawn(move || {
                    let mut data = Vec::new();
                    s.read_to_end(&mut data).unwrap();
                    s.write_all(&data).unwrap();
                })
            })
            .collect();
        for t in workers {
            t.join().unwrap();
        }
        peers
    });
    let replies = w.c("c1").run(|| {
        // All N open at once, then each sends, then each reads its answer.
        let mut streams: Vec<std::net::TcpStream> = (0..N)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&at(EXT_IP, 7000), Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"))
            })
            .collect();
        for (i, s) in streams.iter_mut().enumerate() {
            s.write_all(format!("conn {i}").as_bytes()).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        streams
            .iter_mut()
            .map(|s| {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                reply
            })
            .collect::<Vec<String>>()
    });
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &format!("conn {i}"), "data of connection {i}");
    }
    let peers = server.join().unwrap();
    assert!(
        peers
            .iter()
            .all(|p| p.ip() == std::net::IpAddr::V4(NODE_UPLINK_IP))
    );
    let mut ports: Vec<u16> = peers.iter().map(std::net::SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), N, "every connection has its own NAT port");
    let net: weir::api::types::NetworkView =
        serde_json::from_str(&agent.ok(&["network", "inspect", "weir"])).unwrap();
    assert_eq!(net.masquerade_stats.flows, N as u64);
    assert_eq!(net.masquerade_stats.exhausted, 0);
}

#[test]
fn snat_ip_picks_the_address_ext_sees() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    w.node
        .ip(&["addr", "add", "203.0.113.10/24", "dev", "uplink0"])
        .unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&[
        "network",
        "create",
        "out",
        "--subnet",
        "10.67.0.0/24",
        "--snat-ip",
        "203.0.113.10",
    ]);
    agent.attach("out", w.c("c1"), "c1", &[]);
    let server = Server::tcp(&w.ext, any(80)).unwrap();
    assert_eq!(
        sock::tcp_request(w.c("c1"), at(EXT_IP, 80), b"x").unwrap(),
        b"x"
    );
    assert_eq!(
        server.peer_ips(),
        vec![std::net::Ipv4Addr::new(203, 0, 113, 10)]
    );
}
