//! `BPF_PROG_TEST_RUN` on `xdp_from_uplink`: what it drops (bogons,
//! anything unsolicited to a container address), counted under the same
//! stable reasons as tc's and told in `EVENTS` with its own hook; what it
//! passes to tc untouched (answers, routed mode's open ports and pings,
//! everything to the node, ICMP errors, later fragments, ARP), and a
//! published port's flows among them: XDP forwards nothing itself.

use std::net::{Ipv4Addr, SocketAddrV4};

use weir_common::{
    ct::CtKey,
    drop::DropReason,
    network::{NET_ICC, NET_ROUTED},
    publish::{PROTO_TCP, PublishKey, PublishTarget},
    stats::Hook,
};
use weir_tests::{
    packet,
    prog::{
        DEFAULT_FLAGS, Harness, TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, XDP_DROP, XDP_PASS, net_info,
    },
};

const XDP: &str = "xdp_from_uplink";
const NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const NAT_NET: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 0);
const ROUTED_NET: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 0);
const C: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const R: Ipv4Addr = Ipv4Addr::new(10, 55, 0, 2);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn harness() -> Harness {
    let mut h = Harness::load();
    h.network(
        NAT_NET,
        16,
        net_info(1, Ipv4Addr::new(10, 88, 0, 1), DEFAULT_FLAGS),
    );
    h.network(
        ROUTED_NET,
        16,
        net_info(2, Ipv4Addr::new(10, 55, 0, 1), NET_ICC | NET_ROUTED),
    );
    h.datapath.set_host_addrs(&[(NODE, 1)]).unwrap();
    h
}

#[test]
fn xdp_drops_what_must_never_enter_and_counts_it_as_tc_would() {
    let mut h = harness();
    let cases = [
        (
            "loopback source",
            packet::udp4(sa(Ipv4Addr::LOCALHOST, 53), sa(NODE, 53), b"q"),
            DropReason::Bogon,
        ),
        (
            "a local container subnet as source",
            packet::tcp_syn4(sa(C, 4000), sa(NODE, 80), 1),
            DropReason::Bogon,
        ),
        (
            "loopback destination",
            packet::tcp_syn4(sa(EXT, 4000), sa(Ipv4Addr::LOCALHOST, 80), 1),
            DropReason::Bogon,
        ),
        (
            "TCP to a container address",
            packet::tcp_syn4(sa(EXT, 4000), sa(C, 80), 1),
            DropReason::Unsolicited,
        ),
        (
            "UDP to a container address",
            packet::udp4(sa(EXT, 4000), sa(C, 53), b"q"),
            DropReason::Unsolicited,
        ),
        (
            "ping to a NAT container",
            packet::icmp_echo4(EXT, C, 7, 1),
            DropReason::Unsolicited,
        ),
        (
            "a routed container's closed port",
            packet::tcp_syn4(sa(EXT, 4000), sa(R, 22), 1),
            DropReason::Unsolicited,
        ),
    ];
    for (what, frame, reason) in &cases {
        let before = h.datapath.drop_stats(*reason).unwrap().packets;
        let out = h.run_xdp(XDP, frame);
        assert_eq!(out.verdict, XDP_DROP, "{what}");
        assert_eq!(
            h.datapath.drop_stats(*reason).unwrap().packets,
            before + 1,
            "{what}: counted as {reason:?}"
        );
    }
    let events = h.events();
    assert_eq!(events.len(), cases.len());
    assert!(
        events
            .iter()
            .all(|e| u32::from(e.hook) == Hook::XdpFromUplink.index())
    );
    assert_eq!(events[3].daddr, C.octets());
    assert_eq!(events[3].dport, 80u16.to_be_bytes());
    assert_eq!(
        h.datapath.hook_stats(Hook::XdpFromUplink).unwrap().packets,
        7
    );
}

#[test]
fn xdp_passes_everything_tc_must_judge_untouched() {
    let mut h = harness();
    // Routed mode: an open port and ping are the container's to answer.
    h.datapath
        .set_open_ports(&[(PublishKey::new(R.octets(), 80, PROTO_TCP), 2)])
        .unwrap();
    // An answer to a flow the container opened (tracked by tc's egress).
    let out = h.run_tc(
        "tc_to_uplink",
        &packet::tcp_syn4(sa(R, 40000), sa(EXT, 443), 1),
    );
    assert_eq!(out.verdict, TC_ACT_OK);
    let quoted = packet::udp4(sa(C, 4000), sa(EXT, 53), b"q");
    let cases = [
        (
            "to the node's published port",
            packet::tcp_syn4(sa(EXT, 4000), sa(NODE, 8080), 1),
        ),
        (
            "to a gateway (a node address)",
            packet::tcp_syn4(sa(EXT, 4000), sa(Ipv4Addr::new(10, 88, 0, 1), 22), 1),
        ),
        (
            "an answer to the routed container's flow",
            packet::tcp_ack4(sa(EXT, 443), sa(R, 40000), 9, 2, true),
        ),
        (
            "a routed container's open port",
            packet::tcp_syn4(sa(EXT, 4000), sa(R, 80), 1),
        ),
        (
            "ping to a routed container",
            packet::icmp_echo4(EXT, R, 7, 1),
        ),
        (
            "an ICMP error to a container",
            packet::icmp_port_unreachable4(EXT, C, &quoted),
        ),
        (
            "a later fragment to a container",
            packet::later_fragment4(EXT, C, 17, 9, 185, false, &[1; 16]),
        ),
        ("ARP", packet::arp_request(EXT, NODE)),
    ];
    for (what, frame) in &cases {
        let out = h.run_xdp(XDP, frame);
        assert_eq!(out.verdict, XDP_PASS, "{what}");
        assert_eq!(&out.frame, frame, "{what}: untouched");
    }
    assert!(h.events().is_empty(), "nothing was dropped");
}

/// A published port's flow from outside is tc's from its first packet to
/// its last: XDP passes the SYN and the packets after it as they came,
/// and neither makes nor refreshes a `CT4` entry (tc's counts stay tc's).
#[test]
fn xdp_leaves_a_published_ports_flow_to_tc() {
    let mut h = harness();
    h.container(C, 1);
    let key = PublishKey::new([0; 4], 8080, PROTO_TCP);
    h.datapath.ensure_port_stats(key).unwrap();
    let to = PublishTarget {
        ip: C.octets(),
        port: 80u16.to_be_bytes(),
        pad: [0; 2],
        ifindex: TEST_IFINDEX,
        network_id: 1,
    };
    h.datapath.insert_publish(key, to).unwrap();
    let syn = packet::tcp_syn4(sa(EXT, 4000), sa(NODE, 8080), 1);
    let out = h.run_xdp(XDP, &syn);
    assert_eq!((out.verdict, &out.frame), (XDP_PASS, &syn), "the SYN");
    assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
    // tc takes the SYN: the flow's entries are made there.
    assert_ne!(h.run_tc("tc_from_uplink", &syn).verdict, TC_ACT_SHOT);
    let before = h.datapath.conntrack::<CtKey>().unwrap();
    assert_eq!(before.len(), 2, "{before:?}");
    let ack = packet::tcp_ack4(sa(EXT, 4000), sa(NODE, 8080), 2, 10, false);
    let out = h.run_xdp(XDP, &ack);
    assert_eq!((out.verdict, &out.frame), (XDP_PASS, &ack), "the ACK");
    assert_eq!(
        h.datapath.conntrack::<CtKey>().unwrap(),
        before,
        "CT4 as tc left it"
    );
    assert!(h.events().is_empty(), "nothing was dropped");
}
