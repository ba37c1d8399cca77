//! The test bed itself: worlds connect, servers see true source addresses,
//! and teardown leaves nothing behind, even after a panic.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    process::Command,
};

use weir_tests::{
    World,
    sock::{self, Server},
    world::{self, EXT_IP, NODE_UPLINK_IP},
};

fn root_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
        .collect()
}

#[test]
fn ext_and_node_reach_each_other_with_true_addresses() {
    let w = World::new().unwrap();
    assert!(world::ping(&w.ext, NODE_UPLINK_IP));
    assert!(world::ping(&w.node, EXT_IP));

    let tcp = Server::tcp(&w.ext, SocketAddr::from((EXT_IP, 8080))).unwrap();
    let reply = sock::tcp_request(&w.node, tcp.addr(), b"hello ext").unwrap();
    assert_eq!(reply, b"hello ext");
    let got = tcp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].peer.ip(), NODE_UPLINK_IP);
    assert_eq!(got[0].data, b"hello ext");

    let udp = Server::udp(&w.node, SocketAddr::from((NODE_UPLINK_IP, 5353))).unwrap();
    let from = SocketAddr::V4(SocketAddrV4::new(EXT_IP, 40001));
    let reply = sock::udp_request(&w.ext, Some(from), udp.addr(), b"dgram").unwrap();
    assert_eq!(reply, b"dgram");
    assert_eq!(udp.received()[0].peer, from);
}

#[test]
fn a_plain_container_reaches_ext_through_the_node() {
    let mut w = World::new().unwrap();
    let c_ip = Ipv4Addr::new(10, 99, 0, 2);
    w.add_plain_container("c1", "vc1", Ipv4Addr::new(10, 99, 0, 1), c_ip, 24)
        .unwrap();
    // ext has no route to 10.99/16 except its default via the node, which
    // forwards: the server sees the container's own address (no NAT here).
    let server = Server::tcp(&w.ext, SocketAddr::from((EXT_IP, 9000))).unwrap();
    assert_eq!(
        sock::tcp_request(w.c("c1"), server.addr(), b"out").unwrap(),
        b"out"
    );
    assert_eq!(server.received()[0].peer.ip(), c_ip);
}

#[test]
fn teardown_runs_after_a_panic_and_spares_the_root_namespace() {
    let links_before = root_links();
    let names = std::panic::catch_unwind(|| {
        let mut w = World::new().unwrap();
        w.add_plain_container(
            "c1",
            "vc1",
            [10, 98, 0, 1].into(),
            [10, 98, 0, 2].into(),
            24,
        )
        .unwrap();
        let names = w.namespaces();
        assert_eq!(names.len(), 3);
        std::panic::panic_any(names);
    })
    .expect_err("the closure panics")
    .downcast::<Vec<String>>()
    .expect("the names");
    let left = world::all_namespaces();
    for name in names.iter() {
        assert!(!left.contains(name), "{name} was left behind");
    }
    // Other tests run in parallel, but none of them touches the root
    // namespace either, so its links are exactly what they were.
    assert_eq!(root_links(), links_before);
}
