//! `BPF_PROG_TEST_RUN` on the real programs for every verdict of the
//! isolation rules a container meets on `tc_from_container`:
//! anti-spoofing, isolation between networks, icc off, internal networks,
//! publications across networks. Each drop is checked with its counted
//! reason, and the events in `EVENTS` are read back. What comes in from
//! outside is `prog_outside.rs`'s; both build on
//! `weir_tests::policy_bed`.

use std::net::Ipv4Addr;

use weir_common::{drop::DropReason, publish::PROTO_UDP, stats::Hook};
use weir_tests::{
    packet::{self, MAC_CONTAINER, MAC_HOST, view},
    policy_bed::{
        BACK, CONTAINER, EXT, FRONT, NODE, OTHER_MAC, QUIET, ROUTED, TC_ACT_REDIRECT, UPLINK,
        VAULT, at, expect, gre4, harness, publish, publish_on, raw_l2, sa, with_macs,
    },
    prog::{TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, node_ns},
};

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
