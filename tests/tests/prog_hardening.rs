//! Regression tests for what the packet fuzzer (`weir_tests::fuzz`) found,
//! one per defect, by `BPF_PROG_TEST_RUN` on the real programs:
//!
//! - a masquerading network's container's packet that masquerade cannot
//!   translate (an ICMP error about no flow, an IPv6 packet with an
//!   extension header) left the uplink with its private address;
//! - an echo reply of no request was "masqueraded" with a checksum made
//!   from the wrong identifier;
//! - a container's packet to a class E address left untranslated (taken
//!   for multicast);
//! - an internal network's packet reaching an uplink (a later fragment
//!   above all) left as itself;
//! - an ICMP error whose quote ran past the IP total length into the
//!   frame's padding was translated there, its checksum left wrong.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use etherparse::{Icmpv4Type, PacketBuilder, icmpv4::TimeExceededCode};
use weir_common::{
    ct::CtKey,
    drop::DropReason,
    network::{NET_ICC, NET_INTERNAL, NET_MASQUERADE},
};
use weir_tests::{
    fuzz::{
        cases::frame6,
        frame::{checksums, refresh},
    },
    packet::{self, MAC_CONTAINER, MAC_HOST, view},
    prog::{
        Harness, MASQ_NODE, TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, in_own_ns, masquerading_node,
        net_info,
    },
};

const EGRESS: &str = "tc_to_uplink";
const INGRESS: &str = "tc_from_uplink";
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
const C: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn dropped(h: &Harness, reason: DropReason) -> u64 {
    h.datapath.drop_stats(reason).unwrap().packets
}

#[test]
fn what_masquerade_cannot_translate_never_leaves_as_the_container() {
    in_own_ns("harden", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE | NET_ICC, (30000, 30999));
        // An error about a packet of no flow of the container's.
        let stray = packet::tcp_ack4(sa(PEER, 80), sa(C, 40010), 1, 2, true);
        let error = packet::icmp_error4(
            C,
            PEER,
            &stray,
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        );
        // A protocol without ports (GRE).
        let mut gre = packet::udp4(sa(C, 1), sa(PEER, 1), b"gre!");
        gre[23] = 47;
        refresh(&mut gre);
        for (what, frame) in [("ICMP error", error), ("GRE", gre)] {
            let out = h.run_tc(EGRESS, &frame);
            assert_eq!(out.verdict, TC_ACT_SHOT, "{what}");
        }
        assert_eq!(dropped(&h, DropReason::Untranslatable), 2);
        // The node's own errors pass as they are.
        let own = packet::icmp_error4(
            MASQ_NODE,
            PEER,
            &stray,
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        );
        assert_eq!(h.run_tc(EGRESS, &own).verdict, TC_ACT_OK);
    });
}

#[test]
fn an_echo_reply_of_no_request_is_not_masqueraded() {
    in_own_ns("harden", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (30000, 30999));
        let reply = packet::icmp_echo_reply4(C, PEER, 0x7765, 1);
        assert_eq!(h.run_tc(EGRESS, &reply).verdict, TC_ACT_SHOT);
        assert_eq!(dropped(&h, DropReason::Untranslatable), 1);
        assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
        // A request is, its checksum right.
        let out = h.run_tc(EGRESS, &packet::icmp_echo4(C, PEER, 0x7765, 1));
        assert_eq!(out.verdict, TC_ACT_OK);
        checksums(&out.frame).unwrap();
        assert_eq!(view(&out.frame).src, MASQ_NODE);
    });
}

#[test]
fn a_class_e_destination_is_masqueraded_like_any_unicast_one() {
    in_own_ns("harden", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (30000, 30999));
        let far = Ipv4Addr::new(252, 0, 113, 2);
        let out = h.run_tc(EGRESS, &packet::tcp_syn4(sa(C, 40000), sa(far, 80), 1));
        assert_eq!(out.verdict, TC_ACT_OK);
        assert_eq!(view(&out.frame).src, MASQ_NODE);
        // Multicast still passes as it was (it is not routed out).
        let group = Ipv4Addr::new(239, 1, 2, 3);
        let mcast = packet::udp4(sa(C, 5000), sa(group, 5000), b"m");
        assert_eq!(h.run_tc(EGRESS, &mcast).frame, mcast);
    });
}

#[test]
fn an_internal_networks_packet_never_leaves_an_uplink() {
    in_own_ns("harden", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (30000, 30999));
        let i = Ipv4Addr::new(10, 99, 0, 2);
        h.network(
            Ipv4Addr::new(10, 88, 0, 0),
            16,
            net_info(1, Ipv4Addr::new(10, 88, 0, 1), NET_MASQUERADE),
        );
        h.network(
            Ipv4Addr::new(10, 99, 0, 0),
            16,
            net_info(2, Ipv4Addr::new(10, 99, 0, 1), NET_INTERNAL),
        );
        let later = packet::later_fragment4(i, PEER, 17, 7, 4, false, &[0; 16]);
        let syn = packet::tcp_syn4(sa(i, 40000), sa(PEER, 80), 1);
        for frame in [later, syn] {
            assert_eq!(h.run_tc(EGRESS, &frame).verdict, TC_ACT_SHOT);
        }
        assert_eq!(dropped(&h, DropReason::Internal), 2);
        assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
    });
}

#[test]
fn an_ipv6_packet_masquerade_cannot_translate_never_leaves() {
    in_own_ns("harden", || {
        let mut h = Harness::load();
        h.datapath.configure((30000, 30999)).unwrap();
        h.network(
            Ipv4Addr::new(10, 89, 0, 0),
            24,
            net_info(1, Ipv4Addr::new(10, 89, 0, 1), NET_MASQUERADE),
        );
        h.network6("fd00:89::/64", 1, NET_MASQUERADE, "fd00:89::1");
        let node6: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        h.datapath.set_uplinks6(&[(TEST_IFINDEX, node6)]).unwrap();
        let (c6, peer6): (Ipv6Addr, Ipv6Addr) = (
            "fd00:89::2".parse().unwrap(),
            "2001:db8:9::1".parse().unwrap(),
        );
        // A hop-by-hop header before TCP: not parsed, so not translated.
        let mut hbh = Vec::new();
        PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
            .ipv6(c6.octets(), peer6.octets(), 64)
            .tcp(40000, 80, 1, 64240)
            .syn()
            .write(&mut hbh, &[])
            .unwrap();
        let next = hbh[20];
        hbh.splice(54..54, [next, 0, 1, 4, 0, 0, 0, 0]);
        hbh[20] = 0;
        hbh[19] += 8;
        // An ICMPv6 error about no flow.
        let about = frame6(peer6, c6, (80, 40010), 6, true);
        let mut error = Vec::new();
        PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
            .ipv6(c6.octets(), peer6.octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::TimeExceeded(
                etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
            ))
            .write(&mut error, &about[14..])
            .unwrap();
        for frame in [hbh, error] {
            assert_eq!(h.run_tc(EGRESS, &frame).verdict, TC_ACT_SHOT);
        }
        assert_eq!(dropped(&h, DropReason::Untranslatable), 2);
        // Its plain TCP is translated.
        let out = h.run_tc(EGRESS, &frame6(c6, peer6, (40000, 80), 6, false));
        assert_eq!(
            (out.verdict, &out.frame[22..38]),
            (TC_ACT_OK, &node6.octets()[..])
        );
    });
}

#[test]
fn a_quote_past_the_ip_total_length_is_not_translated() {
    in_own_ns("harden", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (30000, 30999));
        let syn = packet::udp4(sa(C, 5000), sa(PEER, 53), b"q");
        let port = view(&h.run_tc(EGRESS, &syn).frame).sport;
        // The peer's error about the flow, cut to 10 bytes of quote by its
        // total length, the rest of the quote in the frame's padding.
        let sent = packet::udp4(sa(MASQ_NODE, port), sa(PEER, 53), b"q");
        let mut error = packet::icmp_port_unreachable4(PEER, MASQ_NODE, &sent);
        let total = u16::try_from(20 + 8 + 10).unwrap();
        error[16..18].copy_from_slice(&total.to_be_bytes());
        refresh(&mut error);
        let out = h.run_tc(INGRESS, &error);
        assert!(
            out.verdict == TC_ACT_SHOT || out.frame == error,
            "translated in the padding: {:02x?}",
            out.frame
        );
        // Whole, it is translated, with right checksums.
        let whole = packet::icmp_port_unreachable4(PEER, MASQ_NODE, &sent);
        let out = h.run_tc(INGRESS, &whole);
        assert_eq!(out.verdict, TC_ACT_OK);
        checksums(&out.frame).unwrap();
        assert_eq!(view(&out.frame).dst, C);
    });
}
