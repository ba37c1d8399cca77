//! End-to-end: the node's own IPv6 sockets and published ports, as
//! Docker's `-p H:C` (which listens on `0.0.0.0` and `[::]`) gives them:
//! `[::1]:H` and the node's IPv6 addresses reach the container, TCP and
//! connected UDP; the socket
//! sees the address it asked for (`getpeername`, `recvfrom`); a port bound
//! to `127.0.0.1` is not on `[::1]` but is on `[::ffff:127.0.0.1]`.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use weir_tests::{
    World,
    agent::Agent,
    sock::{self, Server, any},
    world::UPLINK,
};

fn v6(text: &str) -> SocketAddr {
    text.parse().unwrap()
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

    let (echo, peer) = w.node.run(|| {
        let mut s = TcpStream::connect_timeout(&v6("[::1]:8080"), Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let peer = s.peer_addr().unwrap();
        s.write_all(b"over ipv6").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        (back, peer)
    });
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
