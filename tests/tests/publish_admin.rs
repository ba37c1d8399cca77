//! End-to-end: managing published ports: unpublish and re-publish with
//! live flows, conflicts and bad specs, restarts, and the sockets that
//! hold host ports.

use std::{
    net::{Ipv4Addr, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use weir_tests::{
    World,
    agent::Agent,
    eventually,
    sock::{self, Server, any, at},
    world::{EXT_IP, NODE_UPLINK_IP},
};

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
        assert!(sock::connect_fails(&w.ext, at(NODE_UPLINK_IP, 7000)));
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
        let err = agent.refused(args);
        assert!(err.contains(want), "weir {args:?}: {err}");
    }
    assert!(
        agent
            .refused(&["publish", "nobody", "1:1"])
            .contains("endpoint `nobody` not found")
    );
    // An attach whose ports cannot be published is undone entirely.
    let path = w.c("c").path();
    let err = agent.refused(&[
        "attach",
        "weir",
        "--netns",
        path.to_str().unwrap(),
        "--name",
        "c",
        "-p",
        "8080:80",
    ]);
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
        let lo = Ipv4Addr::LOCALHOST.into();
        let port = r.reserve(Proto::Tcp, lo, 0).expect("a free port");
        assert!(port > 0 && r.holds(Proto::Tcp, lo, port));
        assert!(std::net::TcpListener::bind((lo, port)).is_err(), "held");
        r.reserve(Proto::Udp, lo, port)
            .expect("the same number is free for UDP");
        let mut other = Reservations::default();
        assert!(matches!(
            other.reserve(Proto::Tcp, Ipv4Addr::UNSPECIFIED.into(), port),
            Err(ReserveError::InUse { .. })
        ));
        // IPv6's sockets are IPv6 only: `[::]` leaves IPv4's port alone.
        let any6 = std::net::Ipv6Addr::UNSPECIFIED.into();
        other
            .reserve(Proto::Tcp, any6, port)
            .expect("[::] beside 127.0.0.1");
        assert!(matches!(
            Reservations::default().reserve(Proto::Tcp, any6, port),
            Err(ReserveError::InUse { .. })
        ));
        other.release(Proto::Tcp, any6, port);
        r.release(Proto::Tcp, lo, port);
        // Free once our descriptor is closed; a child that another test
        // thread is forking at this moment holds a copy of it until its
        // exec (close-on-exec), so allow that moment.
        let free = eventually(Duration::from_secs(2), || {
            std::net::TcpListener::bind((lo, port)).ok()
        });
        assert!(free.is_some(), "released");
        assert!(matches!(
            r.reserve(Proto::Tcp, Ipv4Addr::new(192, 0, 2, 77).into(), 0),
            Err(ReserveError::NotLocal { .. })
        ));
        assert!(matches!(
            r.reserve(Proto::Sctp, lo, 0),
            Err(ReserveError::Unsupported { .. })
        ));
    });
}
