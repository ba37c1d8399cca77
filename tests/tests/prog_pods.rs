//! `BPF_PROG_TEST_RUN` on a node of a Kubernetes cluster: a TCP
//! connection between a pod of this node and a pod of another is tracked
//! from its SYN (`KIND_ROUTED`, untranslated) and takes the fast paths
//! both ways, past the stack, on the veth (`tc_from_container`, then
//! `tc_pod_flow`) and on the uplink (`tc_from_uplink`). What may be the
//! answer to a Service's translation (a SYN-ACK, a UDP datagram of no
//! tracked flow), a node's packets and a Service's go to the stack as
//! before. Each test runs in a namespace of its own whose FIB routes the
//! other node's pods through a resolved neighbour (`node_ns`).

use std::net::{Ipv4Addr, SocketAddrV4};

use weir_common::{
    ct::{CtKey, KIND_ROUTED},
    network::{CLUSTER_NODES, CLUSTER_PODS, CLUSTER_SERVICES, NET_ICC, NET_MASQUERADE},
};
use weir_tests::{
    packet::{self, verify_checksums, view},
    prog::{Harness, MASQ_NODE, NODE_NS_NEIGHBOUR_MAC, TC_ACT_OK, TEST_IFINDEX, net_info, node_ns},
};

/// `TC_ACT_REDIRECT`: the fast path sent the packet on itself.
const TC_ACT_REDIRECT: i32 = 7;
const UPLINK: &str = "tc_from_uplink";
const VETH: &str = "tc_from_container";
/// This node's pods, a pod of this node, one of another node, the other
/// node, a Service.
const POD_CIDR: Ipv4Addr = Ipv4Addr::new(10, 245, 1, 0);
const POD_HERE: Ipv4Addr = Ipv4Addr::new(10, 245, 1, 2);
const POD_HERE2: Ipv4Addr = Ipv4Addr::new(10, 245, 1, 3);
const POD_THERE: Ipv4Addr = Ipv4Addr::new(10, 245, 2, 2);
const NODE_THERE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A node of the cluster whose pods are `10.245.1.0/24` (network 1,
/// masquerading beyond the cluster), with the pod [`POD_HERE`] behind
/// [`TEST_IFINDEX`], and a route to the other node's pods through
/// [`NODE_THERE`] (`node_ns`'s resolved neighbour) on the uplink `up0`.
fn node() -> Harness {
    let ns_route = std::process::Command::new("ip")
        .args(["route", "add", "10.245.2.0/24", "via", "203.0.113.2"])
        .status()
        .expect("ip route");
    assert!(ns_route.success(), "the route to the other node's pods");
    let mut h = Harness::load();
    h.datapath.configure((30000, 30999)).unwrap();
    // `node_ns`'s veth, by which the route to the other node leaves.
    let up0 = std::ffi::CString::new("up0").unwrap();
    // SAFETY: a name lookup on a valid C string.
    let up0 = unsafe { libc::if_nametoindex(up0.as_ptr()) };
    assert_ne!(up0, 0, "up0");
    h.datapath
        .set_uplinks(&[
            (TEST_IFINDEX, MASQ_NODE),
            (up0, Ipv4Addr::new(203, 0, 113, 1)),
        ])
        .unwrap();
    h.network(
        POD_CIDR,
        24,
        net_info(1, Ipv4Addr::new(10, 245, 1, 1), NET_MASQUERADE | NET_ICC),
    );
    h.cluster(&[
        ("10.245.0.0", 16, CLUSTER_PODS),
        ("203.0.113.0", 24, CLUSTER_NODES),
        ("10.96.0.0", 16, CLUSTER_SERVICES),
    ]);
    h.container(POD_HERE, 1);
    h
}

/// The flows `CT4` holds: each direction's key and kind.
fn tracked(h: &Harness) -> Vec<(CtKey, u8)> {
    let mut flows: Vec<_> = h
        .datapath
        .conntrack::<CtKey>()
        .unwrap()
        .into_iter()
        .map(|f| (f.key, f.entry.kind))
        .collect();
    flows.sort_by_key(|(k, _)| (k.saddr, k.sport));
    flows
}

fn key(src: SocketAddrV4, dst: SocketAddrV4) -> CtKey {
    CtKey {
        saddr: src.ip().octets(),
        daddr: dst.ip().octets(),
        sport: src.port().to_be_bytes(),
        dport: dst.port().to_be_bytes(),
        proto: 6,
        pad: [0; 3],
    }
}

#[test]
fn a_pods_connection_from_another_node_is_tracked_and_goes_past_the_stack() {
    node_ns("pods").run(|| {
        let mut h = node();
        let (there, here) = (sa(POD_THERE, 40000), sa(POD_HERE, 8080));
        let syn = packet::tcp_syn4(there, here, 1);
        let out = h.run_tc(UPLINK, &syn);
        // Straight into the pod's namespace, untranslated.
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.dst, v.sport, v.dport),
            (POD_THERE, POD_HERE, 40000, 8080)
        );
        verify_checksums(&out.frame).unwrap();
        assert_eq!(
            tracked(&h),
            vec![
                (key(here, there), KIND_ROUTED),
                (key(there, here), KIND_ROUTED)
            ]
        );
        // The pod's answer finds the flow on its veth and is sent to the
        // other node's next hop itself.
        let synack = packet::tcp_ack4(here, there, 9, 2, true);
        let out = h.run_tc(VETH, &synack);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(out.frame[..6], NODE_NS_NEIGHBOUR_MAC);
        assert_eq!(view(&out.frame).src, POD_HERE);
        // And the flow's next packet from there.
        let ack = packet::tcp_ack4(there, here, 2, 10, false);
        assert_eq!(h.run_tc(UPLINK, &ack).verdict, TC_ACT_REDIRECT);
    });
}

#[test]
fn what_may_answer_a_services_translation_goes_to_the_stack_untracked() {
    node_ns("pods").run(|| {
        let mut h = node();
        for (what, frame) in [
            // The answer of a Service's backend there to a pod here,
            // which this node's conntrack translates back.
            (
                "SYN-ACK",
                packet::tcp_ack4(sa(POD_THERE, 8080), sa(POD_HERE, 40000), 9, 2, true),
            ),
            (
                "UDP",
                packet::udp4(sa(POD_THERE, 53), sa(POD_HERE, 40000), b"answer"),
            ),
            // A node's packets: kube-proxy's NodePort traffic, masqueraded.
            (
                "node",
                packet::tcp_syn4(sa(NODE_THERE, 40000), sa(POD_HERE, 8080), 1),
            ),
        ] {
            let out = h.run_tc(UPLINK, &frame);
            assert_eq!((out.verdict, out.frame), (TC_ACT_OK, frame), "{what}");
        }
        assert!(tracked(&h).is_empty());
    });
}

#[test]
fn a_pods_syn_to_a_pod_on_another_node_is_tracked_and_sent_to_the_next_hop() {
    node_ns("pods").run(|| {
        let mut h = node();
        let (here, there) = (sa(POD_HERE, 40000), sa(POD_THERE, 8080));
        let syn = packet::tcp_syn4(here, there, 1);
        let out = h.run_tc(VETH, &syn);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(out.frame[..6], NODE_NS_NEIGHBOUR_MAC);
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.dst, v.sport, v.dport),
            (POD_HERE, POD_THERE, 40000, 8080)
        );
        assert_eq!(
            tracked(&h),
            vec![
                (key(here, there), KIND_ROUTED),
                (key(there, here), KIND_ROUTED)
            ]
        );
        // Its answer comes in straight to the pod.
        let synack = packet::tcp_ack4(there, here, 9, 2, true);
        assert_eq!(h.run_tc(UPLINK, &synack).verdict, TC_ACT_REDIRECT);
    });
}

#[test]
fn a_pods_services_its_own_nodes_pods_and_udp_go_to_the_stack() {
    node_ns("pods").run(|| {
        let mut h = node();
        h.datapath
            .insert_endpoint(TEST_IFINDEX + 1, Some(POD_HERE2), [2, 0, 0, 0, 0, 9], 1)
            .unwrap();
        for (what, frame) in [
            (
                "Service",
                packet::tcp_syn4(sa(POD_HERE, 40000), sa(SERVICE, 80), 1),
            ),
            (
                "a pod here",
                packet::tcp_syn4(sa(POD_HERE, 40001), sa(POD_HERE2, 80), 1),
            ),
            (
                "UDP",
                packet::udp4(sa(POD_HERE, 40002), sa(POD_THERE, 53), b"q"),
            ),
            (
                "a node",
                packet::tcp_syn4(sa(POD_HERE, 40003), sa(NODE_THERE, 80), 1),
            ),
        ] {
            let out = h.run_tc(VETH, &frame);
            assert_eq!((out.verdict, &out.frame), (TC_ACT_OK, &frame), "{what}");
        }
        assert!(tracked(&h).is_empty());
    });
}
