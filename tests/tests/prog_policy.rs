//! `BPF_PROG_TEST_RUN` on the real programs for every verdict of the
//! isolation rules: anti-spoofing, isolation between networks, icc off,
//! internal networks on `tc_from_container`; bogons, unsolicited traffic and
//! routed mode on `tc_from_uplink`; tracking of unmasqueraded egress on
//! `tc_to_uplink`. Each drop is checked with its counted reason, and the
//! events in `EVENTS` are read back.

use std::net::{Ipv4Addr, SocketAddrV4};

use weir_common::{
    ct::{CtKey, DIR_ORIGINAL, DIR_REPLY, KIND_ROUTED},
    drop::DropReason,
    network::{NET_ICC, NET_INTERNAL, NET_ROUTED},
    publish::{PROTO_TCP, PROTO_UDP, PublishKey, PublishTarget},
    stats::Hook,
};
use weir_tests::{
    packet::{self, MAC_CONTAINER, MAC_HOST, view},
    prog::{
        DEFAULT_FLAGS, Harness, Outcome, TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, net_info, node_ns,
    },
};

const CONTAINER: &str = "tc_from_container";
const UPLINK: &str = "tc_from_uplink";
const EGRESS: &str = "tc_to_uplink";
/// `TC_ACT_REDIRECT`: the fast path sent the packet on itself.
const TC_ACT_REDIRECT: i32 = 7;

const NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

/// The networks of every test: (subnet, id, flags). Gateways are `.0.1`.
const FRONT: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 88, 0, 0), 1, DEFAULT_FLAGS);
const BACK: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 99, 0, 0), 2, DEFAULT_FLAGS);
const QUIET: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 77, 0, 0), 3, DEFAULT_FLAGS & !NET_ICC);
const VAULT: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 66, 0, 0), 4, NET_ICC | NET_INTERNAL);
const ROUTED: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 55, 0, 0), 5, NET_ICC | NET_ROUTED);

/// Address `.0.n` of a network.
fn at(net: (Ipv4Addr, u32, u32), n: u8) -> Ipv4Addr {
    let [a, b, ..] = net.0.octets();
    Ipv4Addr::new(a, b, 0, n)
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn harness() -> Harness {
    let mut h = Harness::load();
    for net in [FRONT, BACK, QUIET, VAULT, ROUTED] {
        h.network(net.0, 16, net_info(net.1, at(net, 1), net.2));
    }
    h.datapath.set_host_addrs(&[(NODE, 2)]).unwrap();
    h
}

/// Publishes `NODE:port/tcp` to `backend:80` of network `net`.
fn publish(h: &mut Harness, port: u16, backend: Ipv4Addr, net: (Ipv4Addr, u32, u32)) {
    publish_on(h, NODE, port, backend, net);
}

/// Runs `program` on each frame and checks each verdict: `None` for a
/// pass (frame untouched), `Some(reason)` for a drop counted under it.
fn expect(h: &mut Harness, program: &str, cases: &[(&str, Vec<u8>, Option<DropReason>)]) {
    for (what, frame, verdict) in cases {
        let before = verdict.map(|r| h.datapath.drop_stats(r).unwrap().packets);
        let out: Outcome = h.run_tc(program, frame);
        match verdict {
            None => {
                assert_eq!(out.verdict, TC_ACT_OK, "{what}: should pass");
                assert_eq!(&out.frame, frame, "{what}: untouched");
            }
            Some(reason) => {
                assert_eq!(out.verdict, TC_ACT_SHOT, "{what}: should be dropped");
                let after = h.datapath.drop_stats(*reason).unwrap().packets;
                assert_eq!(after, before.unwrap() + 1, "{what}: counted as {reason:?}");
            }
        }
    }
}

/// A frame with its Ethernet source or destination MAC replaced.
fn with_macs(mut frame: Vec<u8>, dst: Option<[u8; 6]>, src: Option<[u8; 6]>) -> Vec<u8> {
    if let Some(d) = dst {
        frame[..6].copy_from_slice(&d);
    }
    if let Some(s) = src {
        frame[6..12].copy_from_slice(&s);
    }
    frame
}

/// An IPv4 packet of protocol 47 (GRE), neither TCP, UDP nor ICMP.
fn gre4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut f = packet::udp4(sa(src, 1), sa(dst, 1), b"gre");
    f[14 + 9] = 47;
    f
}

/// A non-IP frame (the local experimental ethertype) to `dst`.
fn raw_l2(dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC_CONTAINER);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&[0; 46]);
    f
}

const OTHER_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x58, 0x00, 0x03];

#[test]
fn a_container_speaks_only_with_its_own_mac_and_address() {
    let mut h = harness();
    let me = at(FRONT, 2);
    h.container(me, FRONT.1);
    let udp = |src| packet::udp4(sa(src, 4000), sa(EXT, 53), b"q");
    let mut arp_other_mac = packet::arp_request(me, at(FRONT, 1));
    arp_other_mac[22..28].copy_from_slice(&OTHER_MAC);
    expect(
        &mut h,
        CONTAINER,
        &[
            ("its own", udp(me), None),
            (
                "another source MAC",
                with_macs(udp(me), None, Some(OTHER_MAC)),
                Some(DropReason::SpoofedMac),
            ),
            (
                "another source address",
                udp(at(FRONT, 9)),
                Some(DropReason::SpoofedIp),
            ),
            (
                "an address of another network",
                udp(at(BACK, 2)),
                Some(DropReason::SpoofedIp),
            ),
            (
                "ARP for another address",
                packet::arp_request(at(FRONT, 9), at(FRONT, 1)),
                Some(DropReason::SpoofedIp),
            ),
            (
                "ARP with another sender MAC",
                arp_other_mac,
                Some(DropReason::SpoofedMac),
            ),
            (
                "an ARP probe (sender 0.0.0.0)",
                packet::arp_request(Ipv4Addr::UNSPECIFIED, me),
                None,
            ),
            ("its own ARP", packet::arp_request(me, at(FRONT, 1)), None),
        ],
    );

    // Each drop left one event with the reason, hook, interface and tuple.
    let events = h.events();
    assert_eq!(events.len(), 5, "{events:?}");
    let spoofed = events[1];
    assert_eq!(spoofed.reason, DropReason::SpoofedIp.number());
    assert_eq!(u32::from(spoofed.hook), Hook::FromContainer.index());
    assert_eq!(spoofed.ifindex, TEST_IFINDEX);
    assert_eq!(spoofed.proto, PROTO_UDP);
    assert_eq!(
        (spoofed.saddr, spoofed.daddr),
        (at(FRONT, 9).octets(), EXT.octets())
    );
    assert_eq!(
        (spoofed.sport, spoofed.dport),
        (4000u16.to_be_bytes(), 53u16.to_be_bytes())
    );
    assert_eq!(spoofed.smac, MAC_CONTAINER);
    assert_eq!(events[0].smac, OTHER_MAC);
    assert_eq!(events[3].ethertype, [0x08, 0x06]);
    assert_eq!(events[3].saddr, at(FRONT, 9).octets(), "ARP's sender");
    assert_eq!(events[3].reason, DropReason::SpoofedIp.number());
    assert_eq!(events[4].reason, DropReason::SpoofedMac.number());
}

#[test]
fn a_veth_the_agent_has_not_entered_is_shut() {
    let mut h = harness();
    let frame = packet::udp4(sa(at(FRONT, 2), 1), sa(EXT, 2), b"x");
    expect(
        &mut h,
        CONTAINER,
        &[(
            "no ENDPOINTS entry",
            frame,
            Some(DropReason::UnknownEndpoint),
        )],
    );
}

#[test]
fn networks_are_isolated_for_every_protocol_but_their_gateways_are_the_node() {
    let mut h = harness();
    let me = at(FRONT, 2);
    h.container(me, FRONT.1);
    let other = at(BACK, 2);
    expect(
        &mut h,
        CONTAINER,
        &[
            (
                "TCP to another network",
                packet::tcp_syn4(sa(me, 4000), sa(other, 80), 1),
                Some(DropReason::Isolation),
            ),
            (
                "UDP to another network",
                packet::udp4(sa(me, 4000), sa(other, 53), b"q"),
                Some(DropReason::Isolation),
            ),
            (
                "ping to another network",
                packet::icmp_echo4(me, other, 7, 1),
                Some(DropReason::Isolation),
            ),
            (
                "GRE to another network",
                gre4(me, other),
                Some(DropReason::Isolation),
            ),
            (
                "to the routed network",
                packet::tcp_syn4(sa(me, 4000), sa(at(ROUTED, 2), 80), 1),
                Some(DropReason::Isolation),
            ),
            (
                "another network's gateway (a node address)",
                packet::tcp_syn4(sa(me, 4000), sa(at(BACK, 1), 22), 1),
                None,
            ),
            (
                "its own gateway",
                packet::icmp_echo4(me, at(FRONT, 1), 7, 1),
                None,
            ),
            (
                "a neighbour (icc on)",
                packet::udp4(sa(me, 4000), sa(at(FRONT, 3), 53), b"q"),
                None,
            ),
            (
                "a neighbour's MAC (icc on)",
                with_macs(
                    packet::udp4(sa(me, 1), sa(at(FRONT, 3), 2), b"q"),
                    Some(OTHER_MAC),
                    None,
                ),
                None,
            ),
            (
                "the outside",
                packet::tcp_syn4(sa(me, 4000), sa(EXT, 80), 1),
                None,
            ),
            ("GRE to the outside", gre4(me, EXT), None),
            (
                "multicast",
                packet::udp4(sa(me, 5353), sa(Ipv4Addr::new(224, 0, 0, 251), 5353), b"m"),
                None,
            ),
        ],
    );
}

#[test]
fn with_icc_off_only_the_gateway_is_a_destination_at_l2_and_l3() {
    let mut h = harness();
    let me = at(QUIET, 2);
    h.container(me, QUIET.1);
    let neighbour = at(QUIET, 3);
    expect(
        &mut h,
        CONTAINER,
        &[
            (
                "TCP to a neighbour via the gateway MAC",
                packet::tcp_syn4(sa(me, 4000), sa(neighbour, 80), 1),
                Some(DropReason::Icc),
            ),
            (
                "ping to a neighbour",
                packet::icmp_echo4(me, neighbour, 7, 1),
                Some(DropReason::Icc),
            ),
            (
                "to the outside, framed to a neighbour's MAC",
                with_macs(
                    packet::udp4(sa(me, 1), sa(EXT, 53), b"q"),
                    Some(OTHER_MAC),
                    None,
                ),
                Some(DropReason::Icc),
            ),
            (
                "broadcast UDP",
                with_macs(
                    packet::udp4(sa(me, 68), sa(Ipv4Addr::BROADCAST, 67), b"b"),
                    Some([0xff; 6]),
                    None,
                ),
                Some(DropReason::Icc),
            ),
            (
                "ARP for a neighbour",
                packet::arp_request(me, neighbour),
                Some(DropReason::Icc),
            ),
            (
                "a raw frame to a neighbour",
                raw_l2(OTHER_MAC),
                Some(DropReason::Icc),
            ),
            (
                "a raw broadcast frame",
                raw_l2([0xff; 6]),
                Some(DropReason::Icc),
            ),
            (
                "ARP for the gateway",
                packet::arp_request(me, at(QUIET, 1)),
                None,
            ),
            ("a raw frame to the gateway", raw_l2(MAC_HOST), None),
            (
                "its gateway",
                packet::tcp_syn4(sa(me, 4000), sa(at(QUIET, 1), 22), 1),
                None,
            ),
            (
                "the outside",
                packet::udp4(sa(me, 4000), sa(EXT, 53), b"q"),
                None,
            ),
            (
                "another network still isolated",
                packet::udp4(sa(me, 4000), sa(at(FRONT, 2), 53), b"q"),
                Some(DropReason::Isolation),
            ),
        ],
    );
}

#[test]
fn an_internal_network_reaches_nothing_beyond_itself_and_its_gateway() {
    let mut h = harness();
    let me = at(VAULT, 2);
    h.container(me, VAULT.1);
    expect(
        &mut h,
        CONTAINER,
        &[
            (
                "the outside",
                packet::tcp_syn4(sa(me, 4000), sa(EXT, 80), 1),
                Some(DropReason::Internal),
            ),
            (
                "ping outside",
                packet::icmp_echo4(me, EXT, 7, 1),
                Some(DropReason::Internal),
            ),
            (
                "the node's uplink address",
                packet::udp4(sa(me, 4000), sa(NODE, 53), b"q"),
                Some(DropReason::Internal),
            ),
            (
                "another network's gateway",
                packet::icmp_echo4(me, at(FRONT, 1), 7, 1),
                Some(DropReason::Internal),
            ),
            (
                "another network",
                packet::icmp_echo4(me, at(FRONT, 2), 7, 1),
                Some(DropReason::Internal),
            ),
            (
                "its gateway",
                packet::icmp_echo4(me, at(VAULT, 1), 7, 1),
                None,
            ),
            (
                "a neighbour",
                packet::udp4(sa(me, 4000), sa(at(VAULT, 3), 53), b"q"),
                None,
            ),
        ],
    );
}

#[test]
fn publications_cross_networks_through_the_node_but_not_into_or_out_of_internal_ones() {
    node_ns("pol").run(|| {
        let mut h = harness();
        publish(&mut h, 8080, at(FRONT, 2), FRONT);
        publish(&mut h, 8081, at(VAULT, 2), VAULT);
        publish(&mut h, 8082, at(QUIET, 3), QUIET);

        // From another network: DNATed to the backend, the caller kept.
        let caller = at(BACK, 2);
        let syn = packet::tcp_syn4(sa(caller, 5000), sa(NODE, 8080), 1);
        let out = h.from_container(&syn, BACK.1);
        assert!(
            matches!(out.verdict, TC_ACT_OK | TC_ACT_REDIRECT),
            "{}",
            out.verdict
        );
        let v = view(&out.frame);
        assert_eq!((v.src, v.dst, v.dport), (caller, at(FRONT, 2), 80));

        // With icc off, a neighbour's publication is reached through the
        // node, and answered to the node: the two may not even ARP.
        let me = at(QUIET, 2);
        let syn = packet::tcp_syn4(sa(me, 5001), sa(NODE, 8082), 1);
        let out = h.from_container(&syn, QUIET.1);
        let v = view(&out.frame);
        assert_eq!((v.src, v.dst, v.dport), (NODE, at(QUIET, 3), 80));

        // An internal network's publication answers no other network and
        // nobody outside; its containers reach no other network's.
        let drops = [
            (
                CONTAINER,
                packet::tcp_syn4(sa(caller, 5002), sa(NODE, 8081), 1),
                BACK,
            ),
            (
                CONTAINER,
                packet::tcp_syn4(sa(at(VAULT, 3), 5003), sa(NODE, 8080), 1),
                VAULT,
            ),
            (
                UPLINK,
                packet::tcp_syn4(sa(EXT, 5004), sa(NODE, 8081), 1),
                VAULT,
            ),
        ];
        for (program, frame, from) in &drops {
            h.container(view(frame).src, from.1);
            let out = h.run_tc(program, frame);
            assert_eq!(out.verdict, TC_ACT_SHOT, "{program} {:?}", view(frame));
        }
        assert_eq!(
            h.datapath.drop_stats(DropReason::Internal).unwrap().packets,
            3
        );
        // ... but its own network's, through its gateway, it does.
        let own = packet::tcp_syn4(sa(at(VAULT, 3), 5005), sa(at(VAULT, 1), 8081), 1);
        publish_on(&mut h, at(VAULT, 1), 8081, at(VAULT, 2), VAULT);
        let out = h.from_container(&own, VAULT.1);
        assert_ne!(out.verdict, TC_ACT_SHOT);
        assert_eq!(view(&out.frame).dst, at(VAULT, 2));
    });
}

/// Publishes `host:port/tcp` to `backend:80`.
fn publish_on(
    h: &mut Harness,
    host: Ipv4Addr,
    port: u16,
    backend: Ipv4Addr,
    net: (Ipv4Addr, u32, u32),
) {
    h.datapath
        .insert_publish(
            PublishKey::new(host.octets(), port, PROTO_TCP),
            PublishTarget {
                ip: backend.octets(),
                port: 80u16.to_be_bytes(),
                pad: [0; 2],
                ifindex: 9,
                network_id: net.1,
            },
        )
        .unwrap();
}

#[test]
fn bogons_and_unsolicited_traffic_from_outside_are_dropped() {
    let mut h = harness();
    let c = at(FRONT, 2);
    let quoted = packet::udp4(sa(c, 4000), sa(EXT, 53), b"q");
    expect(
        &mut h,
        UPLINK,
        &[
            (
                "from loopback",
                packet::udp4(sa(Ipv4Addr::LOCALHOST, 1), sa(NODE, 53), b"x"),
                Some(DropReason::Bogon),
            ),
            (
                "to loopback",
                packet::icmp_echo4(EXT, Ipv4Addr::LOCALHOST, 1, 1),
                Some(DropReason::Bogon),
            ),
            (
                "from a container subnet",
                packet::tcp_syn4(sa(at(FRONT, 9), 1), sa(NODE, 80), 1),
                Some(DropReason::Bogon),
            ),
            (
                "TCP to a container",
                packet::tcp_syn4(sa(EXT, 4000), sa(c, 80), 1),
                Some(DropReason::Unsolicited),
            ),
            (
                "a TCP ACK to a container",
                packet::tcp_ack4(sa(EXT, 4000), sa(c, 80), 1, 1, false),
                Some(DropReason::Unsolicited),
            ),
            (
                "UDP to a container",
                packet::udp4(sa(EXT, 4000), sa(c, 53), b"q"),
                Some(DropReason::Unsolicited),
            ),
            (
                "ping to a container",
                packet::icmp_echo4(EXT, c, 1, 1),
                Some(DropReason::Unsolicited),
            ),
            (
                "GRE to a container",
                gre4(EXT, c),
                Some(DropReason::Unsolicited),
            ),
            (
                "an ICMP error about no flow",
                packet::icmp_port_unreachable4(EXT, c, &quoted),
                Some(DropReason::Unsolicited),
            ),
            (
                "to an internal network",
                packet::udp4(sa(EXT, 4000), sa(at(VAULT, 2), 53), b"q"),
                Some(DropReason::Unsolicited),
            ),
            (
                "a routed container's closed port",
                packet::tcp_syn4(sa(EXT, 4000), sa(at(ROUTED, 2), 81), 1),
                Some(DropReason::Unsolicited),
            ),
            (
                "a gateway (a node address)",
                packet::tcp_syn4(sa(EXT, 4000), sa(at(FRONT, 1), 22), 1),
                None,
            ),
            (
                "the node",
                packet::udp4(sa(EXT, 4000), sa(NODE, 53), b"q"),
                None,
            ),
            (
                "elsewhere",
                packet::udp4(sa(EXT, 4000), sa(Ipv4Addr::new(198, 51, 100, 1), 53), b"q"),
                None,
            ),
        ],
    );
    assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
}

#[test]
fn routed_mode_opens_published_container_ports_and_ping_and_tracks_them() {
    node_ns("pol").run(|| {
        let mut h = harness();
        let c = at(ROUTED, 2);
        h.datapath
            .set_open_ports(&[(PublishKey::new(c.octets(), 80, PROTO_TCP), ROUTED.1)])
            .unwrap();
        let syn = packet::tcp_syn4(sa(EXT, 4000), sa(c, 80), 1);
        expect(&mut h, UPLINK, &[("an open port", syn.clone(), None)]);
        let mut flows = h.datapath.conntrack::<CtKey>().unwrap();
        flows.sort_by_key(|f| f.entry.dir);
        assert_eq!(flows.len(), 2, "{flows:?}");
        for f in &flows {
            assert_eq!(f.entry.kind, KIND_ROUTED);
            assert_eq!(f.entry.network_id, ROUTED.1);
            // Untranslated: each entry rewrites to the tuple it has.
            assert_eq!(
                (
                    f.entry.nat_saddr,
                    f.entry.nat_daddr,
                    f.entry.nat_sport,
                    f.entry.nat_dport
                ),
                (f.key.saddr, f.key.daddr, f.key.sport, f.key.dport)
            );
        }
        assert_eq!(
            (flows[0].entry.dir, flows[1].entry.dir),
            (DIR_ORIGINAL, DIR_REPLY)
        );
        assert_eq!(flows[0].key.daddr, c.octets());

        // The answer is known, leaves untouched but for the TTL.
        let answer = packet::tcp_ack4(sa(c, 80), sa(EXT, 4000), 9, 2, true);
        let out = h.from_container(&answer, ROUTED.1);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        let v = view(&out.frame);
        assert_eq!((v.src, v.sport, v.dst, v.dport), (c, 80, EXT, 4000));

        // Ping, as Docker's routed mode lets it in; the container's
        // endpoint is known by now, so it goes straight into its namespace.
        let ping = h.run_tc(UPLINK, &packet::icmp_echo4(EXT, c, 3, 1));
        assert_eq!(ping.verdict, TC_ACT_REDIRECT);
        assert_eq!(ping.frame[..6], packet::MAC_CONTAINER);
        assert_eq!(view(&ping.frame).dst, c);
        expect(
            &mut h,
            UPLINK,
            &[
                (
                    "UDP on the TCP port",
                    packet::udp4(sa(EXT, 4000), sa(c, 80), b"q"),
                    Some(DropReason::Unsolicited),
                ),
                (
                    "another container's same port",
                    packet::tcp_syn4(sa(EXT, 4000), sa(at(ROUTED, 3), 80), 1),
                    Some(DropReason::Unsolicited),
                ),
            ],
        );
    });
}

#[test]
fn unmasqueraded_egress_is_tracked_so_only_its_answers_get_in() {
    let mut h = harness();
    let c = at(ROUTED, 2);
    let out = packet::udp4(sa(c, 4000), sa(EXT, 53), b"q");
    expect(
        &mut h,
        EGRESS,
        &[("leaves with its own address", out, None)],
    );
    let flows = h.datapath.conntrack::<CtKey>().unwrap();
    assert_eq!(flows.len(), 2);
    assert!(flows.iter().all(|f| f.entry.kind == KIND_ROUTED));
    expect(
        &mut h,
        UPLINK,
        &[
            (
                "the answer",
                packet::udp4(sa(EXT, 53), sa(c, 4000), b"a"),
                None,
            ),
            (
                "from another port of the peer",
                packet::udp4(sa(EXT, 54), sa(c, 4000), b"a"),
                Some(DropReason::Unsolicited),
            ),
        ],
    );
}

#[test]
fn an_engine_s_bridge_lets_no_packet_of_a_container_not_yet_entered_beyond_it() {
    const BRIDGE: &str = "tc_from_bridge";
    let mut h = harness();
    let known = at(FRONT, 2);
    h.container(known, FRONT.1);
    let pending = at(FRONT, 3);
    expect(
        &mut h,
        BRIDGE,
        &[
            (
                "an entered endpoint, out",
                packet::tcp_syn4(sa(known, 4000), sa(EXT, 80), 1),
                None,
            ),
            (
                "a container not yet entered, out",
                packet::tcp_syn4(sa(pending, 4000), sa(EXT, 80), 1),
                Some(DropReason::PendingEndpoint),
            ),
            (
                "a container not yet entered, to another network",
                packet::udp4(sa(pending, 4000), sa(at(BACK, 2), 53), b"q"),
                Some(DropReason::PendingEndpoint),
            ),
            (
                "a container not yet entered, ping to its gateway",
                packet::icmp_echo4(pending, at(FRONT, 1), 7, 1),
                Some(DropReason::PendingEndpoint),
            ),
            (
                "its ARP for the gateway",
                packet::arp_request(pending, at(FRONT, 1)),
                None,
            ),
        ],
    );
    let events = h.events();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| {
        e.reason == DropReason::PendingEndpoint.number()
            && u32::from(e.hook) == Hook::FromBridge.index()
            && e.saddr == pending.octets()
    }));
}
