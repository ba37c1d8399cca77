//! `BPF_PROG_TEST_RUN` on masquerade: `tc_to_uplink` translates container
//! egress, `tc_from_uplink` translates the answers back. Each test runs in
//! a namespace of its own (the test run's skb comes in on its `lo`, which
//! the tests declare as the uplink).

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    Icmpv4Type,
    icmpv4::{DestUnreachableHeader, TimeExceededCode},
};
use weir_common::{
    ct::{CtKey, DIR_ORIGINAL, KIND_ROUTED, KIND_SNAT},
    drop::DropReason,
    network::{CLUSTER_NODES, CLUSTER_PODS, CLUSTER_SERVICES, NET_ICC, NET_MASQUERADE},
    publish::PROTO_ICMP,
};
use weir_tests::{
    fuzz::frame::refresh,
    packet::{self, off, verify_checksums, view},
    prog::{
        Harness, MASQ_NODE, TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, in_own_ns,
        masquerading_node,
    },
};

const EGRESS: &str = "tc_to_uplink";
const INGRESS: &str = "tc_from_uplink";
/// The node address `masquerading_node` gives the uplink.
const NODE: Ipv4Addr = MASQ_NODE;
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
const C1: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const C2: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 3);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

#[test]
fn egress_is_masqueraded_tracked_and_its_answer_comes_back() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE | NET_ICC, (1024, 32767));
        // A source port outside the range is replaced by one inside it.
        let syn = packet::tcp_syn4(sa(C1, 40000), sa(PEER, 80), 1);
        let out = h.run_tc(EGRESS, &syn);
        assert_eq!(out.verdict, TC_ACT_OK);
        verify_checksums(&out.frame).expect("checksums after SNAT");
        let v = view(&out.frame);
        assert_eq!((v.src, v.dst, v.dport), (NODE, PEER, 80));
        assert!((1024..=32767).contains(&v.sport), "port {}", v.sport);
        for i in packet::changed(&syn, &out.frame) {
            assert!(
                off::SADDR.contains(&i)
                    || off::SPORT.contains(&i)
                    || off::IP_CSUM.contains(&i)
                    || off::TCP_CSUM.contains(&i),
                "byte {i} changed"
            );
        }
        let flows = h.datapath.conntrack::<CtKey>().unwrap();
        assert_eq!(flows.len(), 2);
        let orig = flows.iter().find(|f| f.entry.dir == DIR_ORIGINAL).unwrap();
        assert_eq!(orig.entry.kind, KIND_SNAT);
        assert_eq!(orig.entry.nat_saddr, NODE.octets());

        let answer = packet::tcp_ack4(sa(PEER, 80), sa(NODE, v.sport), 9, 2, true);
        let back = h.run_tc(INGRESS, &answer);
        assert_eq!(back.verdict, TC_ACT_OK);
        verify_checksums(&back.frame).unwrap();
        let b = view(&back.frame);
        assert_eq!((b.src, b.sport, b.dst, b.dport), (PEER, 80, C1, 40000));

        // A retransmitted SYN keeps its mapping.
        assert_eq!(view(&h.run_tc(EGRESS, &syn).frame).sport, v.sport);
        assert_eq!(h.datapath.conntrack::<CtKey>().unwrap().len(), 2);
        // Network 1's counters: one flow, three packets (SYN, answer, SYN).
        let c = h.datapath.nat_stats(1).unwrap();
        assert_eq!((c.flows, c.packets, c.exhausted), (1, 3, 0));
        assert_eq!(c.bytes, (2 * syn.len() + answer.len()) as u64);
    });
}

#[test]
fn a_port_in_range_is_kept_and_a_second_flow_on_the_same_tuple_gets_another() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (1024, 32767));
        let a = h.run_tc(EGRESS, &packet::udp4(sa(C1, 5000), sa(PEER, 53), b"a"));
        let b = h.run_tc(EGRESS, &packet::udp4(sa(C2, 5000), sa(PEER, 53), b"b"));
        let (va, vb) = (view(&a.frame), view(&b.frame));
        assert_eq!((va.src, va.sport), (NODE, 5000), "the source port is kept");
        assert_eq!(vb.src, NODE);
        assert_ne!(vb.sport, 5000, "the second flow cannot share the tuple");
        verify_checksums(&b.frame).unwrap();
        let back = h.run_tc(
            INGRESS,
            &packet::udp4(sa(PEER, 53), sa(NODE, vb.sport), b"B"),
        );
        let v = view(&back.frame);
        assert_eq!((v.dst, v.dport), (C2, 5000));
    });
}

#[test]
fn ping_uses_the_identifier_as_its_port() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (1024, 32767));
        let out = h.run_tc(EGRESS, &packet::icmp_echo4(C1, PEER, 7, 1));
        verify_checksums(&out.frame).expect("ICMP checksum after SNAT");
        let v = view(&out.frame);
        assert_eq!((v.proto, v.src), (PROTO_ICMP, NODE));
        let reply = packet::icmp_echo_reply4(PEER, NODE, v.sport, 1);
        let back = h.run_tc(INGRESS, &reply);
        verify_checksums(&back.frame).unwrap();
        let b = view(&back.frame);
        assert_eq!(
            (b.dst, b.sport),
            (C1, 7),
            "the container's identifier is back"
        );
    });
}

#[test]
fn what_must_not_be_masqueraded_passes_untouched() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (1024, 32767));
        let cases = [
            (
                "to another local network",
                packet::udp4(sa(C1, 5000), sa(Ipv4Addr::new(10, 88, 9, 9), 53), b"x"),
            ),
            (
                "multicast",
                packet::udp4(sa(C1, 5353), sa(Ipv4Addr::new(224, 0, 0, 251), 5353), b"x"),
            ),
            (
                "from the node itself",
                packet::udp4(sa(NODE, 5000), sa(PEER, 53), b"x"),
            ),
        ];
        for (what, frame) in &cases {
            let out = h.run_tc(EGRESS, frame);
            assert_eq!(out.verdict, TC_ACT_OK, "{what}");
            assert_eq!(&out.frame, frame, "{what}");
        }
        assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
        // A network with masquerade off: untouched, tracked untranslated
        // (so that its answers, and only they, get back in).
        masquerading_node(&mut h.datapath, 0, (1024, 32767));
        let frame = packet::tcp_syn4(sa(C1, 40000), sa(PEER, 80), 1);
        assert_eq!(h.run_tc(EGRESS, &frame).frame, frame);
        let flows = h.datapath.conntrack::<CtKey>().unwrap();
        assert_eq!(flows.len(), 2);
        assert!(flows.iter().all(|f| f.entry.kind == KIND_ROUTED));
    });
}

#[test]
fn exhaustion_is_a_counted_drop_never_a_shared_tuple() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (2000, 2001));
        let mut ports = Vec::new();
        for c in [C1, C2] {
            let out = h.run_tc(EGRESS, &packet::tcp_syn4(sa(c, 40000), sa(PEER, 80), 1));
            assert_eq!(out.verdict, TC_ACT_OK);
            ports.push(view(&out.frame).sport);
        }
        ports.sort_unstable();
        assert_eq!(ports, vec![2000, 2001]);
        let third = packet::tcp_syn4(sa(Ipv4Addr::new(10, 88, 0, 4), 40000), sa(PEER, 80), 1);
        let out = h.run_tc(EGRESS, &third);
        assert_eq!(out.verdict, TC_ACT_SHOT);
        let dropped = h.datapath.drop_stats(DropReason::SnatExhausted).unwrap();
        assert_eq!(dropped.packets, 1);
        let c = h.datapath.nat_stats(1).unwrap();
        assert_eq!((c.flows, c.exhausted), (2, 1));
        assert!(
            c.retries >= 16,
            "16 for the dropped flow, more if a probe of the second collided: {c:?}"
        );
        // Another peer port is another tuple: the same NAT ports serve it.
        let other = packet::tcp_syn4(sa(C1, 40001), sa(PEER, 443), 1);
        assert_eq!(h.run_tc(EGRESS, &other).verdict, TC_ACT_OK);
    });
}

#[test]
fn a_closed_flows_port_goes_to_the_next_connection_and_an_open_ones_does_not() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        // One port: every flow to the peer's port 80 wants it.
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (2000, 2000));
        let first = h.run_tc(EGRESS, &packet::tcp_syn4(sa(C1, 40000), sa(PEER, 80), 1));
        assert_eq!(view(&first.frame).sport, 2000);
        let answer = packet::tcp_ack4(sa(PEER, 80), sa(NODE, 2000), 7, 2, true);
        assert_eq!(view(&h.run_tc(INGRESS, &answer).frame).dst, C1);
        // Open: neither a SYN nor a UDP flow may take the port.
        let second = packet::tcp_syn4(sa(C2, 40001), sa(PEER, 80), 1);
        assert_eq!(h.run_tc(EGRESS, &second).verdict, TC_ACT_SHOT);
        // The first flow ends with a reset; its port is free for a SYN.
        let rst = packet::tcp_rst4(sa(C1, 40000), sa(PEER, 80), 2, 8);
        assert_eq!(h.run_tc(EGRESS, &rst).verdict, TC_ACT_OK);
        let out = h.run_tc(EGRESS, &second);
        assert_eq!(out.verdict, TC_ACT_OK);
        let v = view(&out.frame);
        assert_eq!((v.src, v.sport), (NODE, 2000));
        // The ended flow's entries are gone: only the new flow's remain,
        // and the port's answers reach the new flow's container.
        let flows = h.datapath.conntrack::<CtKey>().unwrap();
        assert_eq!(flows.len(), 2, "{flows:?}");
        assert!(
            flows
                .iter()
                .all(|f| f.key.saddr != C1.octets() && f.key.daddr != C1.octets())
        );
        assert_eq!(view(&h.run_tc(INGRESS, &answer).frame).dst, C2);
        assert_eq!(
            h.datapath
                .drop_stats(DropReason::SnatExhausted)
                .unwrap()
                .packets,
            1
        );
    });
}

#[test]
fn a_syn_that_opens_a_tuple_again_starts_its_flags_over() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (2000, 2001));
        let syn = packet::tcp_syn4(sa(C1, 40000), sa(PEER, 80), 1);
        let port = view(&h.run_tc(EGRESS, &syn).frame).sport;
        let answer = packet::tcp_ack4(sa(PEER, 80), sa(NODE, port), 7, 2, true);
        assert_eq!(view(&h.run_tc(INGRESS, &answer).frame).dst, C1);
        let rst = packet::tcp_rst4(sa(C1, 40000), sa(PEER, 80), 2, 8);
        assert_eq!(h.run_tc(EGRESS, &rst).verdict, TC_ACT_OK);
        // The container opens the same tuple again: same mapping, and
        // nothing of the ended flow's RST is left to call it closing.
        let again = h.run_tc(EGRESS, &syn);
        assert_eq!(view(&again.frame).sport, port);
        let flows = h.datapath.conntrack::<CtKey>().unwrap();
        assert_eq!(flows.len(), 2);
        for f in &flows {
            let want = if f.entry.dir == DIR_ORIGINAL { 0x02 } else { 0 };
            assert_eq!(f.entry.tcp_flags, want, "{f:?}");
        }
    });
}

#[test]
fn an_icmp_error_about_a_masqueraded_flow_reaches_the_container_restored() {
    in_own_ns("snat", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (1024, 32767));
        let probe = h.run_tc(
            EGRESS,
            &packet::udp4(sa(C1, 40000), sa(PEER, 33434), b"probe"),
        );
        let nat_port = view(&probe.frame).sport;
        // The peer's answer quotes the probe as it left the node.
        let error = packet::icmp_port_unreachable4(PEER, NODE, &probe.frame);
        let out = h.run_tc(INGRESS, &error);
        assert_eq!(out.verdict, TC_ACT_OK);
        verify_checksums(&out.frame).expect("outer IP and ICMP checksums");
        let v = view(&out.frame);
        assert_eq!((v.src, v.dst, v.proto), (PEER, C1, PROTO_ICMP));
        let (quoted, csum_ok) = packet::quoted_view(&out.frame);
        assert!(csum_ok, "the quoted IPv4 checksum is valid");
        assert_eq!(
            (quoted.src, quoted.sport, quoted.dst, quoted.dport),
            (C1, 40000, PEER, 33434),
            "the quoted probe is the container's own (NAT port was {nat_port})"
        );
        // Fragmentation needed (PMTU discovery) and time exceeded
        // (traceroute) about a masqueraded TCP flow come back the same way.
        let syn = h.run_tc(EGRESS, &packet::tcp_syn4(sa(C1, 40001), sa(PEER, 443), 1));
        for icmp_type in [
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: 1400,
            }),
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        ] {
            let error = packet::icmp_error4(PEER, NODE, &syn.frame, icmp_type.clone());
            let out = h.run_tc(INGRESS, &error);
            verify_checksums(&out.frame).unwrap_or_else(|e| panic!("{icmp_type:?}: {e}"));
            assert_eq!(view(&out.frame).dst, C1, "{icmp_type:?}");
            let (quoted, csum_ok) = packet::quoted_view(&out.frame);
            assert!(csum_ok);
            assert_eq!((quoted.src, quoted.sport), (C1, 40001), "{icmp_type:?}");
        }
        // An error about no tracked flow passes untouched.
        let stray = packet::icmp_port_unreachable4(
            PEER,
            NODE,
            &packet::udp4(sa(NODE, 999), sa(PEER, 1), b"x"),
        );
        assert_eq!(h.run_tc(INGRESS, &stray).frame, stray);
    });
}

/// A pod on another node and a node of the cluster; a Service address.
const POD_THERE: Ipv4Addr = Ipv4Addr::new(10, 245, 2, 2);
const NODE_THERE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// A masquerading node of a cluster: its pods, nodes and Services in
/// `CLUSTER4` (an IPv6 range beside them, in `CLUSTER6`).
fn in_cluster() -> Harness {
    let mut h = Harness::load();
    masquerading_node(&mut h.datapath, NET_MASQUERADE | NET_ICC, (30000, 30999));
    h.cluster(&[
        ("10.245.0.0", 16, CLUSTER_PODS),
        ("198.18.0.0", 24, CLUSTER_NODES),
        ("10.96.0.0", 16, CLUSTER_SERVICES),
        ("fd00:245::", 56, CLUSTER_PODS),
    ]);
    h
}

#[test]
fn a_containers_packets_to_the_cluster_leave_as_they_are() {
    in_own_ns("snat", || {
        let mut h = in_cluster();
        let stray = packet::tcp_ack4(sa(POD_THERE, 80), sa(C1, 40010), 1, 2, true);
        let error = packet::icmp_error4(
            C1,
            POD_THERE,
            &stray,
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        );
        // A protocol without ports (GRE).
        let mut gre = packet::udp4(sa(C1, 1), sa(POD_THERE, 1), b"gre!");
        gre[23] = 47;
        refresh(&mut gre);
        for (what, frame) in [
            ("TCP", packet::tcp_syn4(sa(C1, 40000), sa(POD_THERE, 80), 1)),
            (
                "TCP to a node",
                packet::tcp_syn4(sa(C1, 40000), sa(NODE_THERE, 80), 1),
            ),
            ("ICMP error", error),
            ("GRE", gre),
        ] {
            let out = h.run_tc(EGRESS, &frame);
            assert_eq!((out.verdict, out.frame), (TC_ACT_OK, frame), "{what}");
        }
        assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
        // Outside the cluster, as off one.
        let out = h.run_tc(EGRESS, &packet::tcp_syn4(sa(C1, 40001), sa(PEER, 80), 1));
        assert_eq!((out.verdict, view(&out.frame).src), (TC_ACT_OK, NODE));
    });
}

#[test]
fn the_clusters_pods_and_nodes_come_in_to_the_stack() {
    in_own_ns("snat", || {
        let mut h = in_cluster();
        for from in [POD_THERE, NODE_THERE] {
            let syn = packet::tcp_syn4(sa(from, 40000), sa(C1, 8080), 1);
            let out = h.run_tc(INGRESS, &syn);
            assert_eq!((out.verdict, out.frame), (TC_ACT_OK, syn.clone()), "{from}");
            assert_eq!(h.run_xdp("xdp_from_uplink", &syn).verdict, XDP_PASS);
        }
        for from in [PEER, SERVICE] {
            let syn = packet::tcp_syn4(sa(from, 40000), sa(C1, 8080), 1);
            assert_eq!(h.run_tc(INGRESS, &syn).verdict, TC_ACT_SHOT, "{from}");
            assert_eq!(h.run_xdp("xdp_from_uplink", &syn).verdict, XDP_DROP);
        }
    });
}
