//! End-to-end: IPv4 datagrams larger than the path's MTU (1500 on every
//! veth here), which the sender's kernel fragments. Each fragment of a
//! translated flow is translated as its datagram's first was: a 3000-byte
//! UDP datagram both ways through a published port and through masquerade,
//! a 3000-byte ping out. A receiver reassembles only fragments with one
//! source, so a whole datagram arriving from the node's address proves
//! that none of its fragments left with the container's.

use weir_tests::{
    World,
    agent::Agent,
    packet,
    sock::{self, Server, any, at},
    world::{EXT_IP, NODE_UPLINK_IP},
};

/// Larger than two 1500-byte fragments' payloads: three fragments.
const BIG: usize = 3000;

fn big(seed: u8) -> Vec<u8> {
    (0..BIG)
        .map(|i| u8::try_from(i % 251).unwrap() ^ seed)
        .collect()
}

#[test]
fn fragmented_datagrams_cross_published_ports_and_masquerade_whole_both_ways() {
    crosses_whole(&[]);
}

/// The same with XDP on the uplink and ext behind a "wire": XDP forwards
/// what it can (the unfragmented packets) and leaves the fragments to tc.
#[test]
fn fragmented_datagrams_cross_whole_with_xdp_on_the_uplink() {
    crosses_whole(&["--xdp", "native"]);
}

fn crosses_whole(agent_args: &[&str]) {
    let mut w = World::new().unwrap();
    if !agent_args.is_empty() {
        w.ext_as_wire().unwrap();
    }
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, agent_args);
    let c1 = agent.attach("weir", w.c("c1"), "c1", &["-p", "5353:53/udp"]);

    // In: ext to the published port; the answer, fragmented by the
    // container, comes back out through the reverse translation.
    let dns = Server::udp(w.c("c1"), any(53)).unwrap();
    let query = big(1);
    let answer = sock::udp_request(&w.ext, None, at(NODE_UPLINK_IP, 5353), &query).unwrap();
    assert_eq!(answer, query, "the echo came back whole");
    assert_eq!(dns.peer_ips(), vec![EXT_IP], "the container saw the client");
    assert_eq!(dns.received()[0].data.len(), BIG);

    // Out: the container to ext through masquerade; ext's answer,
    // fragmented, comes back in.
    let echo = Server::udp(&w.ext, any(9000)).unwrap();
    let payload = big(2);
    let back = sock::udp_request(w.c("c1"), None, at(EXT_IP, 9000), &payload).unwrap();
    assert_eq!(back, payload);
    assert_eq!(
        echo.peer_ips(),
        vec![NODE_UPLINK_IP],
        "ext saw the node, whole"
    );
    assert_eq!(echo.received()[0].data.len(), BIG);

    // A 3000-byte ping out and its answer.
    let ping = w.c("c1").exec(
        "ping",
        &["-c", "1", "-W", "2", "-s", "3000", &EXT_IP.to_string()],
    );
    assert!(ping.is_ok(), "{ping:?}");

    // Nothing was dropped as an untracked fragment on the way.
    assert_eq!(agent.drops(14), 0);
    let _ = c1;
}

#[test]
fn a_fragment_whose_first_never_came_reaches_no_container() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    let agent = Agent::start(&w, &[]);
    let c1 = agent.attach("weir", w.c("c1"), "c1", &["-p", "5353:53/udp"]);
    // A later fragment alone, to the container's own address and to the
    // published port's, from ext's wire.
    let node_mac = w.node.mac("uplink0").unwrap();
    let ext_mac = w.ext.mac("eth0").unwrap();
    for dst in [c1, NODE_UPLINK_IP] {
        // Offset 1480 bytes (185 units of 8), the last fragment.
        let mut frame = packet::later_fragment4(EXT_IP, dst, 17, 0x4242, 185, false, &[0x5a; 64]);
        frame[..6].copy_from_slice(&node_mac);
        frame[6..12].copy_from_slice(&ext_mac);
        w.ext.run(|| sock::send_raw("eth0", &frame));
    }
    let counted = weir_tests::eventually(std::time::Duration::from_secs(2), || {
        (agent.drops(14) >= 1).then_some(())
    });
    assert!(
        counted.is_some(),
        "the fragment to the container was not counted"
    );
    // The one to the node's address is the node's own to reassemble.
    assert_eq!(agent.drops(14), 1);
}
