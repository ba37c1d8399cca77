//! `BPF_PROG_TEST_RUN` on IPv6's fast paths (`fwd6`), as `prog_dnat`
//! checks IPv4's: a tracked flow's packet from outside, translated on the
//! uplink, goes straight into its container (`EP_BY_IP6`,
//! `bpf_redirect_peer`: `TC_ACT_REDIRECT`, the container's MAC, the hop
//! limit lowered), its answers translated on the veth; a container's
//! packet the FIB routes out of an uplink
//! is sent to its next hop (the MACs the lookup found, or the neighbour
//! layer's when it has none yet), untranslated: the uplink's egress
//! masquerades it. What is not the fast path's (no container here, the
//! cluster, a spent hop limit, no uplink on the route) goes to the stack
//! as before.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::PacketBuilder;
use weir_common::{
    network::{CLUSTER_PODS, CLUSTER_SERVICES, NET_MASQUERADE},
    publish::{PublishKey6, PublishTarget6},
};
use weir_tests::{
    packet::{MAC_CONTAINER, MAC_HOST},
    prog::{
        DEFAULT_FLAGS, Harness, NODE_NS_MAC, NODE_NS_NEIGHBOUR_MAC, TC_ACT_OK, TEST_IFINDEX,
        in_own_ns, node_ns6,
    },
    prog6::{C, NODE6, PEER, POD_THERE, SERVICE, a},
};

/// `TC_ACT_REDIRECT`: the fast path sent the packet on itself.
const TC_ACT_REDIRECT: i32 = 7;

/// Behind `2001:db8:1::3`, whose MAC is not known yet.
const FAR: &str = "2001:db8:7::1";

/// A masquerading dual-stack network with container `C` behind
/// [`TEST_IFINDEX`], the node's address `NODE6` on uplink `uplink`.
fn harness(uplink: u32) -> Harness {
    let mut h = Harness::dual_stack(DEFAULT_FLAGS | NET_MASQUERADE);
    h.container(Ipv4Addr::new(10, 89, 0, 2), 1);
    h.datapath
        .set_endpoint6(TEST_IFINDEX, Some(C.parse().unwrap()), MAC_CONTAINER)
        .unwrap();
    h.datapath
        .set_uplinks6(&[(uplink, NODE6.parse().unwrap())])
        .unwrap();
    h.datapath
        .set_host_addrs6(&[(NODE6.parse().unwrap(), uplink)])
        .unwrap();
    h
}

/// A TCP SYN (or, with `ack`, a SYN-ACK) from `src:sport` to
/// `dst:dport`, hop limit `hops`, from `from` to `to` (MACs).
fn tcp6(src: &str, dst: &str, ports: (u16, u16), ack: bool, hops: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST).ipv6(a(src), a(dst), hops);
    let mut tcp = b.tcp(ports.0, ports.1, 1, 64240).syn();
    if ack {
        tcp = tcp.ack(1);
    }
    let mut f = Vec::new();
    tcp.write(&mut f, &[]).unwrap();
    f
}

fn addrs(f: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
    let src: [u8; 16] = f[22..38].try_into().unwrap();
    let dst: [u8; 16] = f[38..54].try_into().unwrap();
    (src.into(), dst.into())
}

const HOPS: usize = 14 + 7;

#[test]
fn a_masqueraded_flows_answer_goes_straight_into_its_container() {
    in_own_ns("fwd6", || {
        let mut h = harness(TEST_IFINDEX);
        let out = h.run_tc("tc_to_uplink", &tcp6(C, PEER, (40000, 443), false, 64));
        assert_eq!(out.verdict, TC_ACT_OK);
        let nat_port = u16::from_be_bytes([out.frame[54], out.frame[55]]);
        // The answer, as it arrives on the uplink: to the node's MAC.
        let mut answer = tcp6(PEER, NODE6, (443, nat_port), true, 60);
        answer[..6].copy_from_slice(&NODE_NS_MAC);
        answer[6..12].copy_from_slice(&NODE_NS_NEIGHBOUR_MAC);
        let back = h.run_tc("tc_from_uplink", &answer);
        assert_eq!(back.verdict, TC_ACT_REDIRECT, "into the container");
        assert_eq!(back.frame[..6], MAC_CONTAINER, "to the container's MAC");
        assert_eq!(back.frame[6..12], NODE_NS_MAC, "from the MAC it came to");
        assert_eq!(
            back.frame[HOPS], 59,
            "the hop limit, as forwarding lowers it"
        );
        assert_eq!(addrs(&back.frame).1, C.parse::<Ipv6Addr>().unwrap());
        // A spent hop limit is the stack's to answer (time exceeded).
        let mut spent = answer.clone();
        spent[HOPS] = 1;
        let out = h.run_tc("tc_from_uplink", &spent);
        assert_eq!((out.verdict, out.frame[HOPS]), (TC_ACT_OK, 1));
        // With no container at the address any more: to the stack.
        h.datapath
            .remove_endpoint(None, Some(C.parse().unwrap()))
            .unwrap();
        assert_eq!(h.run_tc("tc_from_uplink", &answer).verdict, TC_ACT_OK);
    });
}

#[test]
fn a_new_flow_to_a_port_published_over_ipv6_goes_straight_into_its_container() {
    in_own_ns("fwd6", || {
        let mut h = harness(TEST_IFINDEX);
        let key = PublishKey6::new([0; 16], 8080, 6);
        h.datapath.ensure_port_stats(key).unwrap();
        let target = PublishTarget6 {
            ip: a(C),
            port: 80u16.to_be_bytes(),
            pad: [0; 2],
            network_id: 1,
        };
        h.datapath.insert_publish6(key, target).unwrap();
        let out = h.run_tc(
            "tc_from_uplink",
            &tcp6(PEER, NODE6, (40000, 8080), false, 64),
        );
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(out.frame[..6], MAC_CONTAINER);
        assert_eq!(
            addrs(&out.frame),
            (PEER.parse().unwrap(), C.parse().unwrap()),
            "the client's address kept"
        );
        // The answer is translated on the veth, as IPv4's is (no route out
        // here: it goes on to the stack), and the uplink's egress passes it
        // as it is, with no second lookup of its flow.
        let synack = tcp6(C, PEER, (80, 40000), true, 64);
        let out = h.run_tc("tc_from_container", &synack);
        assert_eq!(out.verdict, TC_ACT_OK);
        assert_eq!(
            addrs(&out.frame),
            (NODE6.parse().unwrap(), PEER.parse().unwrap())
        );
        assert_eq!(u16::from_be_bytes([out.frame[54], out.frame[55]]), 8080);
        let on = h.run_tc("tc_to_uplink", &out.frame);
        assert_eq!((on.verdict, &on.frame), (TC_ACT_OK, &out.frame));
    });
}

#[test]
fn a_containers_packet_routed_out_of_an_uplink_goes_to_its_next_hop() {
    let ns = node_ns6("fwd6");
    ns.run(|| {
        let up0 = nix_index("up0");
        let mut h = harness(up0);
        // The next hop's MAC known: straight to the uplink, addressed.
        let f = tcp6(C, PEER, (40000, 443), false, 64);
        let out = h.run_tc("tc_from_container", &f);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(out.frame[..6], NODE_NS_NEIGHBOUR_MAC);
        assert_eq!(out.frame[6..12], NODE_NS_MAC);
        assert_eq!(out.frame[HOPS], 63);
        assert_eq!(
            out.frame[HOPS + 1..],
            f[HOPS + 1..],
            "untranslated: the uplink's egress masquerades"
        );
        // Not known yet: through the neighbour layer, which addresses it.
        let f = tcp6(C, FAR, (40001, 443), false, 64);
        let out = h.run_tc("tc_from_container", &f);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(
            out.frame[..12],
            f[..12],
            "the MACs left to the neighbour layer"
        );
        assert_eq!(out.frame[HOPS], 63);
        // The stack's: a spent hop limit, the node itself.
        for f in [
            tcp6(C, PEER, (40002, 443), false, 1),
            tcp6(C, NODE6, (40003, 22), false, 64),
        ] {
            let out = h.run_tc("tc_from_container", &f);
            assert_eq!((out.verdict, &out.frame), (TC_ACT_OK, &f));
        }
        // The cluster's pods and Services: the stack's (kube-proxy's).
        h.cluster(&[
            ("fd00:245::", 56, CLUSTER_PODS),
            ("fd00:96::", 112, CLUSTER_SERVICES),
        ]);
        for to in [POD_THERE, SERVICE] {
            let f = tcp6(C, to, (40004, 80), false, 64);
            let out = h.run_tc("tc_from_container", &f);
            assert_eq!((out.verdict, &out.frame), (TC_ACT_OK, &f), "to {to}");
        }
        // A route out of an interface that is no uplink: the stack's.
        h.datapath.set_uplinks6(&[]).unwrap();
        let f = tcp6(C, PEER, (40005, 443), false, 64);
        assert_eq!(h.run_tc("tc_from_container", &f).verdict, TC_ACT_OK);
    });
}

/// The index of interface `name` in the calling thread's namespace.
fn nix_index(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(index, 0, "no interface {name}");
    index
}
