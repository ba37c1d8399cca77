//! `BPF_PROG_TEST_RUN` on `xdp_from_uplink`'s own forwarding: a published
//! port's flows and the answers of masqueraded ones translated in the
//! frame (every byte that changes, both checksums) and redirected into the
//! container's veth, with the conntrack entries tc would have made; and
//! what it leaves to tc without touching a map (a local sender's
//! unfinished checksum, an engine's veth, TTL 1, a first fragment).

use std::net::{Ipv4Addr, SocketAddrV4};

use weir::datapath::CtFlow;
use weir_common::{
    ct::{CtKey, DIR_ORIGINAL, KIND_DNAT, KIND_SNAT},
    drop::DropReason,
    network::NET_INTERNAL,
    publish::{PROTO_TCP, PROTO_UDP, PublishKey, PublishTarget},
};
use weir_tests::{
    packet::{self, off, verify_checksums, view},
    prog::{
        DEFAULT_FLAGS, Harness, MASQ_NODE, TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, XDP_DROP,
        XDP_PASS, masquerading_node, net_info,
    },
};

const XDP: &str = "xdp_from_uplink";
/// `XDP_REDIRECT`: the program sent the frame on itself.
const XDP_REDIRECT: i32 = 4;
/// `TC_ACT_REDIRECT`: tc's fast path into the container.
const TC_ACT_REDIRECT: i32 = 7;
const NODE: Ipv4Addr = MASQ_NODE;
const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const C: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
/// A container on an engine's veth (no XDP flag).
const D: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 3);
/// A container of an `--internal` network.
const I: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn publish(h: &mut Harness, port: u16, proto: u8, to: Ipv4Addr, to_port: u16, net: u32) {
    let key = PublishKey::new([0; 4], port, proto);
    h.datapath.ensure_port_stats(key).unwrap();
    h.datapath
        .insert_publish(
            key,
            PublishTarget {
                ip: to.octets(),
                port: to_port.to_be_bytes(),
                pad: [0; 2],
                ifindex: TEST_IFINDEX,
                network_id: net,
            },
        )
        .unwrap();
}

/// A masquerading node (`NODE` on `lo`), `C` on an XDP-ready veth, `D` on
/// one that is not, `NODE:8080/tcp` and `:5353/udp` published to `C`,
/// `:9090/tcp` to `D`, `:7070/tcp` to `I` on an internal network.
fn harness() -> Harness {
    let mut h = Harness::load();
    masquerading_node(&mut h.datapath, DEFAULT_FLAGS, (30000, 30999));
    // The harness's own list of networks replaces the one above.
    h.network(
        Ipv4Addr::new(10, 88, 0, 0),
        16,
        net_info(1, Ipv4Addr::new(10, 88, 0, 1), DEFAULT_FLAGS),
    );
    h.network(
        Ipv4Addr::new(10, 99, 0, 0),
        16,
        net_info(2, Ipv4Addr::new(10, 99, 0, 1), NET_INTERNAL),
    );
    h.datapath.set_host_addrs(&[(NODE, 1)]).unwrap();
    h.container(C, 1);
    h.datapath
        .insert_endpoint(TEST_IFINDEX + 1, Some(D), [2, 0, 0, 0, 0, 3], 1, false)
        .unwrap();
    h.datapath
        .insert_endpoint(TEST_IFINDEX + 2, Some(I), [2, 0, 0, 0, 0, 4], 2, true)
        .unwrap();
    publish(&mut h, 8080, PROTO_TCP, C, 80, 1);
    publish(&mut h, 5353, PROTO_UDP, C, 53, 1);
    publish(&mut h, 9090, PROTO_TCP, D, 80, 1);
    publish(&mut h, 7070, PROTO_TCP, I, 80, 2);
    h
}

fn ct(h: &Harness) -> Vec<CtFlow> {
    let mut flows = h.datapath.conntrack::<CtKey>().unwrap();
    flows.sort_by_key(|f| f.entry.dir);
    flows
}

/// A frame as a local stack hands it to its device: the L4 checksum
/// holds only the pseudo-header's sum.
fn unfinished(mut frame: Vec<u8>, csum: std::ops::Range<usize>) -> Vec<u8> {
    let ip = &frame[14..34];
    let l4_len = u16::from_be_bytes([ip[2], ip[3]]) - 20;
    let mut sum = u32::from(ip[9]) + u32::from(l4_len);
    for pair in ip[12..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let sum = u16::try_from(sum).expect("folded to 16 bits");
    frame[csum].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[test]
fn a_published_port_is_translated_and_redirected_into_the_container_by_xdp() {
    let mut h = harness();
    let syn = packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 8080), 7);
    let out = h.run_xdp(XDP, &syn);
    assert_eq!(out.verdict, XDP_REDIRECT);
    verify_checksums(&out.frame).expect("checksums after XDP's DNAT");
    let v = view(&out.frame);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (EXT, 40000, C, 80));
    // Forwarded into the container; the client's address kept.
    packet::assert_dnat_into_container(&syn, &out.frame);
    // The flow is tracked as tc would have tracked it.
    let flows = ct(&h);
    assert_eq!(flows.len(), 2, "{flows:?}");
    let mut by_tc = harness();
    assert_eq!(
        by_tc.run_tc("tc_from_uplink", &syn).verdict,
        TC_ACT_REDIRECT
    );
    let tc_flows = ct(&by_tc);
    for (x, t) in flows.iter().zip(&tc_flows) {
        let mut x = *x;
        (x.entry.created_ns, x.entry.last_seen_ns) = (t.entry.created_ns, t.entry.last_seen_ns);
        assert_eq!(&x, t, "XDP's entry against tc's");
    }
    assert_eq!(
        (flows[0].entry.kind, flows[0].entry.dir),
        (KIND_DNAT, DIR_ORIGINAL)
    );
    // The flow's next packet: the entry found and counted.
    let ack = packet::tcp_ack4(sa(EXT, 40000), sa(NODE, 8080), 8, 2, false);
    let out = h.run_xdp(XDP, &ack);
    assert_eq!(out.verdict, XDP_REDIRECT);
    verify_checksums(&out.frame).unwrap();
    assert_eq!(view(&out.frame).dst, C);
    assert_eq!(ct(&h)[0].entry.packets, 2);
    let stats = h.datapath.port_stats::<PublishKey>().unwrap();
    let (_, port) = stats
        .iter()
        .find(|(k, _)| *k == PublishKey::new([0; 4], 8080, PROTO_TCP))
        .expect("the publication's counters");
    assert_eq!((port.flows, port.packets_in), (1, 2));
}

#[test]
fn udp_to_a_published_port_keeps_a_zero_checksum_and_fixes_any_other() {
    let mut h = harness();
    let q = packet::udp4(sa(EXT, 5000), sa(NODE, 5353), b"a question");
    let out = h.run_xdp(XDP, &q);
    assert_eq!(out.verdict, XDP_REDIRECT);
    verify_checksums(&out.frame).unwrap();
    assert_ne!(out.frame[off::UDP_CSUM], [0, 0]);
    let v = view(&out.frame);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (EXT, 5000, C, 53));
    let mut none = packet::udp4(sa(EXT, 5001), sa(NODE, 5353), b"no checksum");
    none[off::UDP_CSUM].copy_from_slice(&[0, 0]);
    let out = h.run_xdp(XDP, &none);
    assert_eq!(out.verdict, XDP_REDIRECT);
    assert_eq!(out.frame[off::UDP_CSUM], [0, 0], "no checksum stays none");
    assert_eq!(view(&out.frame).dst, C);
}

#[test]
fn the_answers_of_a_masqueraded_flow_are_redirected_by_xdp() {
    let mut h = harness();
    let out = h.run_tc(
        "tc_to_uplink",
        &packet::tcp_syn4(sa(C, 5000), sa(EXT, 443), 1),
    );
    assert_eq!(out.verdict, TC_ACT_OK);
    let nat = view(&out.frame);
    assert_eq!(nat.src, NODE);
    let synack = packet::tcp_ack4(sa(EXT, 443), sa(NODE, nat.sport), 9, 2, true);
    let out = h.run_xdp(XDP, &synack);
    assert_eq!(out.verdict, XDP_REDIRECT);
    verify_checksums(&out.frame).unwrap();
    let v = view(&out.frame);
    assert_eq!((v.src, v.sport, v.dst, v.dport), (EXT, 443, C, 5000));
    let reply = ct(&h)
        .into_iter()
        .find(|f| f.key.saddr == EXT.octets())
        .expect("the answers' entry");
    assert_eq!((reply.entry.kind, reply.entry.packets), (KIND_SNAT, 1));
}

#[test]
fn xdp_leaves_to_tc_what_it_cannot_forward_and_touches_no_map_for_it() {
    let mut h = harness();
    let syn = packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 8080), 7);
    let mut ttl1 = syn.clone();
    packet::set_ttl(&mut ttl1, 1);
    let mut first_fragment = packet::udp4(sa(EXT, 5000), sa(NODE, 5353), &[7; 64]);
    packet::set_fragment(&mut first_fragment, 77, 0, true);
    let cases = [
        (
            "a local sender's unfinished TCP checksum",
            unfinished(syn.clone(), off::TCP_CSUM),
        ),
        (
            "a local sender's unfinished UDP checksum",
            unfinished(
                packet::udp4(sa(EXT, 5000), sa(NODE, 5353), b"q"),
                off::UDP_CSUM,
            ),
        ),
        (
            "an engine's veth",
            packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 9090), 7),
        ),
        ("TTL 1 (the stack answers)", ttl1),
        ("a first fragment (tc records it)", first_fragment),
        ("ping to the node", packet::icmp_echo4(EXT, NODE, 3, 1)),
        (
            "an unpublished port",
            packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 22), 7),
        ),
    ];
    for (what, frame) in &cases {
        let out = h.run_xdp(XDP, frame);
        assert_eq!(out.verdict, XDP_PASS, "{what}");
        assert_eq!(&out.frame, frame, "{what}: untouched");
        assert!(ct(&h).is_empty(), "{what}: no entry made");
    }
    // A known flow to an engine's veth: tc counts its packets, XDP not.
    assert_eq!(
        h.run_tc(
            "tc_from_uplink",
            &packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 9090), 7)
        )
        .verdict,
        TC_ACT_REDIRECT
    );
    let ack = packet::tcp_ack4(sa(EXT, 40000), sa(NODE, 9090), 8, 2, false);
    assert_eq!(h.run_xdp(XDP, &ack).verdict, XDP_PASS);
    assert_eq!(ct(&h)[0].entry.packets, 1, "declined, not counted");
}

#[test]
fn xdp_refuses_a_published_port_of_an_internal_network_as_tc_does() {
    let mut h = harness();
    let before = h.datapath.drop_stats(DropReason::Internal).unwrap().packets;
    let syn = packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 7070), 7);
    assert_eq!(h.run_xdp(XDP, &syn).verdict, XDP_DROP);
    assert_eq!(
        h.datapath.drop_stats(DropReason::Internal).unwrap().packets,
        before + 1
    );
    assert!(ct(&h).is_empty());
}

/// `weir allow`: a port with a list takes new flows from its sources
/// alone, at XDP and at tc alike (`not-allowed`, nothing tracked).
#[test]
fn a_ports_allow_list_refuses_other_sources_at_xdp_and_tc() {
    let mut h = harness();
    let key = PublishKey::new([0; 4], 8080, PROTO_TCP);
    h.datapath
        .set_allow(&[key], &[(key, Ipv4Addr::new(198, 51, 100, 0), 24)])
        .unwrap();
    let before = h
        .datapath
        .drop_stats(DropReason::NotAllowed)
        .unwrap()
        .packets;
    let syn = packet::tcp_syn4(sa(EXT, 40000), sa(NODE, 8080), 7);
    assert_eq!(h.run_xdp(XDP, &syn).verdict, XDP_DROP);
    assert_eq!(h.run_tc("tc_from_uplink", &syn).verdict, TC_ACT_SHOT);
    assert_eq!(
        h.datapath
            .drop_stats(DropReason::NotAllowed)
            .unwrap()
            .packets,
        before + 2
    );
    assert!(ct(&h).is_empty());
    // A source of the list, and a port without one, go in.
    let listed = packet::tcp_syn4(sa(Ipv4Addr::new(198, 51, 100, 9), 40000), sa(NODE, 8080), 7);
    assert_ne!(h.run_xdp(XDP, &listed).verdict, XDP_DROP);
    let other = packet::tcp_syn4(sa(EXT, 40001), sa(NODE, 9090), 7);
    assert_ne!(h.run_xdp(XDP, &other).verdict, XDP_DROP);
    // (9090 leads to a veth XDP does not redirect into: tc tracks it.)
    assert_eq!(ct(&h).len(), 2, "the listed source's flow tracked");
}
