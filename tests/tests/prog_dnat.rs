//! `BPF_PROG_TEST_RUN` on the real DNAT programs: `tc_from_uplink` for
//! traffic to published ports, `tc_from_container` for the answers and for
//! hairpin. Each test runs in its own network namespace, which has a route
//! and a neighbour for the "outside" peer, so the fast path's FIB lookup
//! has a deterministic answer.

use std::net::{Ipv4Addr, SocketAddrV4};

use weir::datapath::{CtFlow, Datapath};
use weir_common::{
    ct::{CT_INNER, CtKey, DIR_ORIGINAL, DIR_REPLY, KIND_DNAT, KIND_HAIRPIN, TCP_ACK, TCP_SYN},
    drop::DropReason,
    publish::{PROTO_TCP, PROTO_UDP, PublishKey, PublishTarget},
};
use weir_tests::{
    packet::{self, changed, off, verify_checksums, view},
    prog::{Harness, NODE_NS_MAC, NODE_NS_NEIGHBOUR_MAC, TC_ACT_OK, TC_ACT_SHOT, node_ns},
};

const UPLINK: &str = "tc_from_uplink";
/// `TC_ACT_REDIRECT`: the fast path sent the packet on itself.
const TC_ACT_REDIRECT: i32 = 7;

const NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 3);
const BACKEND_IFINDEX: u32 = 7;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Publishes `NODE:8080/proto` (or every address) to `BACKEND:80`.
fn publish(dp: &mut Datapath, host: Ipv4Addr, port: u16, proto: u8, to_port: u16) {
    dp.ensure_port_stats(PublishKey::new(host.octets(), port, proto))
        .unwrap();
    dp.insert_publish(
        PublishKey::new(host.octets(), port, proto),
        PublishTarget {
            ip: BACKEND.octets(),
            port: to_port.to_be_bytes(),
            pad: [0; 2],
            ifindex: BACKEND_IFINDEX,
            network_id: 1,
        },
    )
    .unwrap();
    dp.set_host_addrs(&[(NODE, 2)]).unwrap();
}

fn ct(dp: &Datapath) -> Vec<CtFlow> {
    let mut flows = dp.conntrack::<CtKey>().unwrap();
    flows.sort_by_key(|f| f.entry.dir);
    flows
}

fn key(src: SocketAddrV4, dst: SocketAddrV4, proto: u8) -> CtKey {
    CtKey::new(
        src.ip().octets(),
        dst.ip().octets(),
        src.port().to_be_bytes(),
        dst.port().to_be_bytes(),
        proto,
    )
}

#[test]
fn an_answer_whose_next_hop_is_unresolved_goes_through_the_neighbour_layer() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
        // On the uplink's subnet, but with no neighbour entry yet.
        let stranger = Ipv4Addr::new(203, 0, 113, 3);
        let syn = packet::tcp_syn4(sa(stranger, 40000), sa(NODE, 8080), 1);
        assert_eq!(view(&h.run_tc(UPLINK, &syn).frame).dst, BACKEND);
        let synack = packet::tcp_ack4(sa(BACKEND, 80), sa(stranger, 40000), 9, 2, true);
        let out = h.from_container(&synack, 1);
        // Sent on by the kernel's neighbour layer, which resolves the MAC
        // and addresses the frame itself: the program leaves the MACs.
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(out.frame[..12], synack[..12]);
        let v = view(&out.frame);
        assert_eq!((v.src, v.sport, v.dst), (NODE, 8080, stranger));
        verify_checksums(&out.frame).unwrap();
    });
}

#[test]
fn syn_to_published_port_is_dnated_and_tracked_then_answer_reversed() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
        let syn = packet::tcp_syn4(sa(CLIENT, 40000), sa(NODE, 8080), 1000);
        let out = h.run_tc(UPLINK, &syn);
        assert_eq!(out.verdict, TC_ACT_OK);
        verify_checksums(&out.frame).expect("checksums after DNAT");
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (CLIENT, 40000, BACKEND, 80)
        );
        // Nothing but the destination and the checksums changed: the client
        // address is kept, the TTL too (the stack routes it on).
        for i in changed(&syn, &out.frame) {
            assert!(
                off::DADDR.contains(&i)
                    || off::DPORT.contains(&i)
                    || off::IP_CSUM.contains(&i)
                    || off::TCP_CSUM.contains(&i),
                "byte {i} changed"
            );
        }

        let flows = ct(&h.datapath);
        assert_eq!(flows.len(), 2, "{flows:?}");
        let (orig, reply) = (flows[0], flows[1]);
        assert_eq!(orig.key, key(sa(CLIENT, 40000), sa(NODE, 8080), PROTO_TCP));
        assert_eq!((orig.entry.dir, orig.entry.kind), (DIR_ORIGINAL, KIND_DNAT));
        assert_eq!(orig.entry.nat_daddr, BACKEND.octets());
        assert_eq!(orig.entry.nat_dport, 80u16.to_be_bytes());
        assert_eq!(orig.entry.nat_saddr, CLIENT.octets());
        assert_eq!(
            (orig.entry.packets, orig.entry.bytes),
            (1, syn.len() as u64)
        );
        assert_eq!(orig.entry.tcp_flags, TCP_SYN);
        assert_eq!(orig.entry.backend_ifindex, BACKEND_IFINDEX);
        assert!(orig.entry.created_ns > 0 && orig.entry.last_seen_ns == orig.entry.created_ns);
        assert_eq!(
            reply.key,
            key(sa(BACKEND, 80), sa(CLIENT, 40000), PROTO_TCP)
        );
        assert_eq!(reply.entry.dir, DIR_REPLY);
        // The answers' key starts inside (the backend), the client's not.
        assert_eq!((orig.entry.flags, reply.entry.flags), (0, CT_INNER));
        assert_eq!(reply.entry.nat_saddr, NODE.octets());
        assert_eq!(reply.entry.nat_sport, 8080u16.to_be_bytes());
        assert_eq!(reply.entry.nat_daddr, CLIENT.octets());
        assert_eq!(reply.entry.packets, 0);
        // Both directions remember the publication they came in by (the
        // wildcard one), whose counters have the flow and its first packet.
        let wildcard = PublishKey::new([0; 4], 8080, PROTO_TCP);
        assert_eq!(
            (orig.entry.publication, reply.entry.publication),
            (wildcard, wildcard)
        );
        let port = |h: &Harness| {
            let all = h.datapath.port_stats::<PublishKey>().unwrap();
            assert_eq!(all.len(), 1);
            assert_eq!(all[0].0, wildcard);
            let c = all[0].1;
            (
                c.flows,
                c.packets_in,
                c.bytes_in,
                c.packets_out,
                c.bytes_out,
            )
        };
        assert_eq!(port(&h), (1, 1, syn.len() as u64, 0, 0));

        // The answer leaves the backend's veth with the node's address and
        // is sent on by the fast path (the FIB knows CLIENT's neighbour).
        let synack = packet::tcp_ack4(sa(BACKEND, 80), sa(CLIENT, 40000), 5000, 1001, true);
        let out = h.from_container(&synack, 1);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        verify_checksums(&out.frame).expect("checksums after reverse DNAT");
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (NODE, 8080, CLIENT, 40000)
        );
        assert_eq!(
            out.frame[off::TTL],
            synack[off::TTL] - 1,
            "forwarded: TTL - 1"
        );
        // The FIB knew the next hop's MAC: the frame is addressed to it,
        // from the uplink's own.
        assert_eq!(out.frame[..6], NODE_NS_NEIGHBOUR_MAC);
        assert_eq!(out.frame[6..12], NODE_NS_MAC);
        let flows = ct(&h.datapath);
        assert_eq!(flows[1].entry.packets, 1);
        assert_eq!(flows[1].entry.tcp_flags, TCP_SYN | TCP_ACK);
        let answered = (1, 1, syn.len() as u64, 1, synack.len() as u64);
        assert_eq!(port(&h), answered);

        // The client's ACK is found in CT4 (one lookup, no new entries).
        let ack = packet::tcp_ack4(sa(CLIENT, 40000), sa(NODE, 8080), 1001, 5001, false);
        let out = h.run_tc(UPLINK, &ack);
        assert_eq!(view(&out.frame).dst, BACKEND);
        verify_checksums(&out.frame).unwrap();
        let flows = ct(&h.datapath);
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].entry.packets, 2);
        assert_eq!(flows[0].entry.tcp_flags, TCP_SYN | TCP_ACK);
        // An established packet adds to the counters, not to the flows.
        assert_eq!(
            port(&h),
            (1, 2, (syn.len() + ack.len()) as u64, 1, synack.len() as u64)
        );
    });
}

/// A harness with port 8080 published on every node address and the
/// client's SYN to it tracked; and the client's ACK that follows.
fn tracked_flow() -> (Harness, Vec<u8>) {
    let mut h = Harness::with_one_network();
    publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
    assert_eq!(h.run_tc(UPLINK, &client_syn()).verdict, TC_ACT_OK);
    let ack = packet::tcp_ack4(sa(CLIENT, 40000), sa(NODE, 8080), 1001, 5001, false);
    (h, ack)
}

fn client_syn() -> Vec<u8> {
    packet::tcp_syn4(sa(CLIENT, 40000), sa(NODE, 8080), 1000)
}

/// What a packet of a flow changes in its entries.
fn uses(flows: &[CtFlow]) -> Vec<(CtKey, u64, u8, u64)> {
    flows
        .iter()
        .map(|f| {
            (
                f.key,
                f.entry.packets,
                f.entry.tcp_flags,
                f.entry.last_seen_ns,
            )
        })
        .collect()
}

#[test]
fn a_packet_from_outside_that_claims_to_be_a_tracked_backends_answer_is_a_bogon() {
    node_ns("prog").run(|| {
        let (mut h, ack) = tracked_flow();
        let before = ct(&h.datapath);
        // The backend's answer, as if it came in from outside: its tuple
        // is tracked (the flow's reply key), but only ever from inside.
        let forged = packet::tcp_ack4(sa(BACKEND, 80), sa(CLIENT, 40000), 5000, 1001, false);
        assert_eq!(h.run_tc(UPLINK, &forged).verdict, TC_ACT_SHOT);
        assert_eq!(h.datapath.drop_stats(DropReason::Bogon).unwrap().packets, 1);
        assert_eq!(
            uses(&ct(&h.datapath)),
            uses(&before),
            "a bogon counts nothing and keeps no flow alive"
        );
        // The client's own next packet still goes through.
        assert_eq!(view(&h.run_tc(UPLINK, &ack).frame).dst, BACKEND);
    });
}

#[test]
fn the_sweep_removes_a_flow_only_as_it_was_read() {
    node_ns("prog").run(|| {
        let (mut h, ack) = tracked_flow();
        let read = ct(&h.datapath);
        // A packet touches the flow after the sweep read it: it stays,
        // both entries (the reply one, untouched, too).
        assert_eq!(view(&h.run_tc(UPLINK, &ack).frame).dst, BACKEND);
        assert!(!h.datapath.remove_flow_if_unchanged(&read).unwrap());
        assert_eq!(ct(&h.datapath).len(), 2);
        // The client opens a new flow on the same tuple: it stays too.
        let read = ct(&h.datapath);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(h.run_tc(UPLINK, &client_syn()).verdict, TC_ACT_OK);
        assert!(!h.datapath.remove_flow_if_unchanged(&read).unwrap());
        assert_eq!(ct(&h.datapath).len(), 2);
        // Read again and untouched since: gone, both entries.
        let read = ct(&h.datapath);
        assert!(h.datapath.remove_flow_if_unchanged(&read).unwrap());
        assert!(ct(&h.datapath).is_empty());
    });
}

#[test]
fn traffic_that_matches_no_publication_passes_untouched_and_loopback_is_a_bogon() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
        publish(&mut h.datapath, Ipv4Addr::LOCALHOST, 9090, PROTO_TCP, 80);
        let frames = [
            (
                "another port",
                packet::tcp_syn4(sa(CLIENT, 1), sa(NODE, 8081), 1),
            ),
            (
                "UDP on a TCP port",
                packet::udp4(sa(CLIENT, 1), sa(NODE, 8080), b"x"),
            ),
            (
                "an address not the node's",
                packet::tcp_syn4(sa(CLIENT, 1), sa(Ipv4Addr::new(198, 51, 100, 7), 8080), 1),
            ),
        ];
        for (what, frame) in &frames {
            let out = h.run_tc(UPLINK, frame);
            assert_eq!(out.verdict, TC_ACT_OK, "{what}");
            assert_eq!(&out.frame, frame, "{what}");
        }
        // Loopback from outside never reaches a publication: it is a
        // bogon, dropped and counted before any lookup.
        let loopback = [
            packet::tcp_syn4(sa(CLIENT, 1), sa(Ipv4Addr::LOCALHOST, 9090), 1),
            packet::tcp_syn4(sa(CLIENT, 1), sa(Ipv4Addr::LOCALHOST, 8080), 1),
        ];
        for frame in &loopback {
            assert_eq!(h.run_tc(UPLINK, frame).verdict, TC_ACT_SHOT);
        }
        assert_eq!(h.datapath.drop_stats(DropReason::Bogon).unwrap().packets, 2);
        assert!(h.datapath.conntrack::<CtKey>().unwrap().is_empty());
    });
}

#[test]
fn udp_is_dnated_and_a_zero_checksum_stays_zero() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, NODE, 5353, PROTO_UDP, 53);
        let with_sum = packet::udp4(sa(CLIENT, 3333), sa(NODE, 5353), b"query");
        let out = h.run_tc(UPLINK, &with_sum);
        verify_checksums(&out.frame).unwrap();
        assert_ne!(out.frame[off::UDP_CSUM], [0, 0]);
        assert_eq!(view(&out.frame).dst, BACKEND);
        assert_eq!(view(&out.frame).dport, 53);

        let mut no_sum = packet::udp4(sa(CLIENT, 4444), sa(NODE, 5353), b"query");
        no_sum[off::UDP_CSUM].copy_from_slice(&[0, 0]);
        let out = h.run_tc(UPLINK, &no_sum);
        assert_eq!(out.verdict, TC_ACT_OK);
        assert_eq!(&out.frame[off::UDP_CSUM], &[0, 0], "no checksum stays none");
        verify_checksums(&out.frame).expect("IP checksum");
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (CLIENT, 4444, BACKEND, 53)
        );
        assert_eq!(
            h.datapath.conntrack::<CtKey>().unwrap().len(),
            4,
            "two flows, two entries each"
        );
    });
}

#[test]
fn hairpin_from_a_neighbour_keeps_its_address_and_to_itself_gets_the_node_address() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
        let syn = packet::tcp_syn4(sa(NEIGHBOUR, 50000), sa(NODE, 8080), 1);
        let out = h.from_container(&syn, 1);
        verify_checksums(&out.frame).unwrap();
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (NEIGHBOUR, 50000, BACKEND, 80)
        );
        let flows = ct(&h.datapath);
        assert_eq!(flows[0].entry.kind, KIND_HAIRPIN);
        assert_eq!(
            flows[1].key,
            key(sa(BACKEND, 80), sa(NEIGHBOUR, 50000), PROTO_TCP)
        );

        // The backend calling its own published port sees the call come
        // from the node address it called, never from itself.
        let syn = packet::tcp_syn4(sa(BACKEND, 50001), sa(NODE, 8080), 1);
        let out = h.from_container(&syn, 1);
        verify_checksums(&out.frame).unwrap();
        let v = view(&out.frame);
        assert_eq!((v.src, v.sport, v.dst, v.dport), (NODE, 50001, BACKEND, 80));
        let answer = packet::tcp_ack4(sa(BACKEND, 80), sa(NODE, 50001), 9, 2, true);
        let out = h.from_container(&answer, 1);
        verify_checksums(&out.frame).unwrap();
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (NODE, 8080, BACKEND, 50001)
        );
    });
}

#[test]
fn a_new_syn_follows_the_publications_of_now_an_open_flow_its_entry() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
        let syn = packet::tcp_syn4(sa(CLIENT, 40000), sa(NODE, 8080), 1);
        assert_eq!(view(&h.run_tc(UPLINK, &syn).frame).dst, BACKEND);
        h.datapath
            .remove_publish(PublishKey::new([0; 4], 8080, PROTO_TCP))
            .unwrap();
        // The open flow keeps going on its entry...
        let ack = packet::tcp_ack4(sa(CLIENT, 40000), sa(NODE, 8080), 2, 1, false);
        assert_eq!(view(&h.run_tc(UPLINK, &ack).frame).dst, BACKEND);
        // ...but a new connection is not translated any more.
        let out = h.run_tc(UPLINK, &syn);
        assert_eq!(out.frame, syn);
    });
}

#[test]
fn a_dnated_packet_for_a_container_of_this_node_goes_straight_into_its_namespace() {
    node_ns("prog").run(|| {
        let mut h = Harness::with_one_network();
        publish(&mut h.datapath, Ipv4Addr::UNSPECIFIED, 8080, PROTO_TCP, 80);
        // The backend is an endpoint of this node (behind `lo`, ifindex 1).
        h.container(BACKEND, 1);
        let syn = packet::tcp_syn4(sa(CLIENT, 40000), sa(NODE, 8080), 1000);
        let out = h.run_tc(UPLINK, &syn);
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        verify_checksums(&out.frame).expect("checksums after DNAT and TTL - 1");
        let v = view(&out.frame);
        assert_eq!(
            (v.src, v.sport, v.dst, v.dport),
            (CLIENT, 40000, BACKEND, 80)
        );
        packet::assert_dnat_into_container(&syn, &out.frame);
        // A TTL about to run out is left to the stack (which answers
        // "time exceeded").
        let mut last_hop = packet::tcp_syn4(sa(CLIENT, 40001), sa(NODE, 8080), 1000);
        packet::set_ttl(&mut last_hop, 1);
        verify_checksums(&last_hop).unwrap();
        let out = h.run_tc(UPLINK, &last_hop);
        assert_eq!(out.verdict, TC_ACT_OK);
        assert_eq!(view(&out.frame).dst, BACKEND);
    });
}
