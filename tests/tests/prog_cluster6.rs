//! `BPF_PROG_TEST_RUN` on a node of a Kubernetes cluster over IPv6
//! (`CLUSTER6`): a container's packets to the cluster's pods and nodes
//! leave as they are, untracked, and theirs come in to the stack; to
//! anywhere else (a Service address left untranslated among them), and
//! from anyone else, as off a cluster: masqueraded out, unsolicited in.

use std::net::Ipv6Addr;

use etherparse::Icmpv6Type;
use weir_common::network::{CLUSTER_NODES, CLUSTER_PODS, CLUSTER_SERVICES};
use weir_tests::{
    prog::{Harness, TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, in_own_ns},
    prog6::{
        C, NODE_THERE, NODE6, PEER, POD_THERE, SERVICE, ct6, frame6, harness, icmp6_error, view,
    },
};

/// `harness(true)` on a node of a dual-stack cluster: its IPv6 pods,
/// nodes and Services in `CLUSTER6` (an IPv4 range beside them, in
/// `CLUSTER4`).
fn in_cluster() -> Harness {
    let mut h = harness(true);
    h.cluster(&[
        ("10.245.0.0", 16, CLUSTER_PODS),
        ("fd00:245::", 56, CLUSTER_PODS),
        ("fd00:198:51:100::", 124, CLUSTER_NODES),
        ("fd00:96::", 112, CLUSTER_SERVICES),
    ]);
    h
}

#[test]
fn a_containers_ipv6_packets_to_the_cluster_leave_as_they_are() {
    in_own_ns("nat6", || {
        for to in [POD_THERE, NODE_THERE] {
            for (proto, dport) in [(6u8, 8080), (17, 53), (58, 0)] {
                let mut h = in_cluster();
                let f = frame6(C, to, 40000, dport, proto);
                let out = h.run_tc("tc_to_uplink", &f);
                assert_eq!(out.verdict, TC_ACT_OK, "to {to}, proto {proto}");
                assert_eq!(out.frame, f, "to {to}, proto {proto}: its own address");
                assert!(ct6(&mut h).is_empty(), "to {to}: not tracked");
            }
        }
        // An ICMPv6 error about a flow of the cluster's (nothing tracked)
        // leaves too; to outside it cannot be translated.
        let mut h = in_cluster();
        let quoted = frame6(POD_THERE, C, 40000, 53, 17);
        let unreachable =
            Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port);
        let err = icmp6_error(C, POD_THERE, unreachable, &quoted[14..]);
        let out = h.run_tc("tc_to_uplink", &err);
        assert_eq!((out.verdict, out.frame), (TC_ACT_OK, err));
        let quoted = frame6(PEER, C, 40000, 53, 17);
        let err = icmp6_error(C, PEER, unreachable, &quoted[14..]);
        assert_eq!(h.run_tc("tc_to_uplink", &err).verdict, TC_ACT_SHOT);
        // Anywhere else (a Service address left untranslated, outside):
        // masqueraded as off a cluster.
        for to in [PEER, SERVICE] {
            let out = h.run_tc("tc_to_uplink", &frame6(C, to, 40001, 443, 6));
            assert_eq!(out.verdict, TC_ACT_OK);
            assert_eq!(
                view(&out.frame).0,
                NODE6.parse::<Ipv6Addr>().unwrap(),
                "to {to}"
            );
        }
    });
}

#[test]
fn ipv6_from_the_clusters_pods_and_nodes_comes_in_to_the_stack() {
    in_own_ns("nat6", || {
        let mut h = in_cluster();
        for from in [POD_THERE, NODE_THERE] {
            for (proto, sport, dport) in [(6u8, 40000, 8080), (17, 40000, 53), (58, 7, 0)] {
                let f = frame6(from, C, sport, dport, proto);
                let out = h.run_tc("tc_from_uplink", &f);
                assert_eq!(out.verdict, TC_ACT_OK, "from {from}, proto {proto}");
                assert_eq!(out.frame, f, "from {from}: untouched, to the stack");
                assert_eq!(h.run_xdp("xdp_from_uplink", &f).verdict, XDP_PASS);
            }
            // Not a flow (an ICMPv6 error quoting nothing tracked): in too.
            let quoted = frame6(C, from, 40000, 53, 17);
            let err = icmp6_error(
                from,
                C,
                Icmpv6Type::PacketTooBig { mtu: 1280 },
                &quoted[14..],
            );
            assert_eq!(h.run_tc("tc_from_uplink", &err).verdict, TC_ACT_OK);
        }
        assert!(ct6(&mut h).is_empty(), "nothing tracked");
        // Anyone else (a Service address is no pod) is still unsolicited.
        for from in [PEER, SERVICE] {
            let f = frame6(from, C, 40000, 8080, 6);
            assert_eq!(
                h.run_tc("tc_from_uplink", &f).verdict,
                TC_ACT_SHOT,
                "{from}"
            );
            assert_eq!(h.run_xdp("xdp_from_uplink", &f).verdict, XDP_DROP, "{from}");
        }
    });
}
