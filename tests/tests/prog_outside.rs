//! `BPF_PROG_TEST_RUN` on the real programs for what comes in from
//! outside and what leaves untranslated: bogons and unsolicited traffic
//! and routed mode on `tc_from_uplink`, tracking of unmasqueraded egress on
//! `tc_to_uplink`, an engine's bridge. Each drop is checked with its
//! counted reason. The networks and checks are `weir_tests::policy_bed`'s,
//! shared with `prog_policy.rs`.

use std::net::Ipv4Addr;

use weir_common::{
    ct::{CtKey, DIR_ORIGINAL, DIR_REPLY, KIND_ROUTED},
    drop::DropReason,
    publish::{PROTO_TCP, PublishKey},
    stats::Hook,
};
use weir_tests::{
    packet::{self, view},
    policy_bed::{
        BACK, EGRESS, EXT, FRONT, NODE, ROUTED, TC_ACT_REDIRECT, UPLINK, VAULT, at, expect, gre4,
        harness, sa,
    },
    prog::node_ns,
};

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
