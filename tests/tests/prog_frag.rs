//! `BPF_PROG_TEST_RUN` on IPv4 fragments: a datagram's first fragment is
//! translated like any packet of its flow and its translation recorded in
//! `FRAG4`; each later fragment (no L4 header) gets the same addresses,
//! with a valid IP checksum and no other byte changed; a later fragment
//! with no record is dropped where it would reach a container or leave
//! with a container's address, and passes where it is the node's own.
//! Each test runs in a namespace of its own.

use std::net::{Ipv4Addr, SocketAddrV4};

use weir::datapath::Datapath;
use weir_common::{
    drop::DropReason,
    frag::FragKey,
    network::{NET_ICC, NET_MASQUERADE},
    publish::{PROTO_UDP, PublishKey, PublishTarget},
};
use weir_tests::{
    packet::{self, off, verify_checksums, view},
    prog::{Harness, MASQ_NODE, TC_ACT_OK, TC_ACT_SHOT, in_own_ns, masquerading_node},
};

const EGRESS: &str = "tc_to_uplink";
const INGRESS: &str = "tc_from_uplink";
/// The node address `masquerading_node` gives the uplink.
const NODE: Ipv4Addr = MASQ_NODE;
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
const C1: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
/// `lo`: where a test run's skb appears to be.
const LO: u32 = 1;
/// The IP identification of the datagram of every test.
const ID: u16 = 0x1234;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn setup(dp: &mut Datapath) {
    masquerading_node(dp, NET_MASQUERADE | NET_ICC, (1024, 32767));
    dp.set_host_addrs(&[(NODE, LO)]).unwrap();
}

/// The first fragment of a UDP datagram (more follow).
fn first(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut f = packet::udp4(src, dst, &[7; 64]);
    packet::set_fragment(&mut f, ID, 0, true);
    f
}

/// A later fragment (offset 1480 bytes) of that datagram.
fn later(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    packet::later_fragment4(src, dst, PROTO_UDP, id, 185, false, &[9; 40])
}

/// The UDP ports of a first fragment (a fragment's L4 header is not
/// decoded by `view`).
fn ports(frame: &[u8]) -> (u16, u16) {
    let p = |r: std::ops::Range<usize>| u16::from_be_bytes([frame[r.start], frame[r.start + 1]]);
    (p(off::SPORT), p(off::DPORT))
}

/// Packets dropped as `fragment-untracked` so far.
fn untracked(h: &Harness) -> u64 {
    h.datapath
        .drop_stats(DropReason::FragmentUntracked)
        .unwrap()
        .packets
}

/// Only the address at `addr` and the IP checksum differ between the
/// frames.
fn only_changed(before: &[u8], after: &[u8], addr: &std::ops::Range<usize>) {
    for i in packet::changed(before, after) {
        assert!(
            addr.contains(&i) || off::IP_CSUM.contains(&i) || i < 12 || i == off::TTL,
            "byte {i} changed"
        );
    }
}

#[test]
fn masquerade_gives_a_datagram_s_later_fragments_the_first_s_source() {
    in_own_ns("frag", || {
        let mut h = Harness::load();
        setup(&mut h.datapath);
        let out = h.run_tc(EGRESS, &first(sa(C1, 5000), sa(PEER, 53)));
        assert_eq!(out.verdict, TC_ACT_OK);
        verify_checksums(&out.frame).expect("first fragment's checksums");
        let v = view(&out.frame);
        assert_eq!((v.src, v.dst), (NODE, PEER));
        let recorded = h.datapath.fragments().unwrap();
        assert_eq!(recorded.len(), 1);
        let (key, entry) = recorded[0];
        assert_eq!(
            key,
            FragKey::new(C1.octets(), PEER.octets(), ID.to_be_bytes(), PROTO_UDP)
        );
        assert_eq!(
            (entry.nat_saddr, entry.nat_daddr),
            (NODE.octets(), PEER.octets())
        );

        let frag = later(C1, PEER, ID);
        let out = h.run_tc(EGRESS, &frag);
        assert_eq!(out.verdict, TC_ACT_OK);
        verify_checksums(&out.frame).expect("IP checksum of the later fragment");
        assert_eq!(view(&out.frame).src, NODE, "never the container's address");
        only_changed(&frag, &out.frame, &off::SADDR);
        assert_eq!(h.datapath.fragments().unwrap()[0].1.fragments, 1);

        // Its first never came this way: dropped, never sent as 10.88.0.2.
        let before = untracked(&h);
        let out = h.run_tc(EGRESS, &later(C1, PEER, ID + 1));
        assert_eq!(out.verdict, TC_ACT_SHOT);
        assert_eq!(untracked(&h), before + 1);
        // The node's own fragments pass untouched.
        let own = later(NODE, PEER, ID + 2);
        let out = h.run_tc(EGRESS, &own);
        assert_eq!((out.verdict, out.frame), (TC_ACT_OK, own));

        // The answer's fragments come back to the container.
        let (sport, _) = ports(&h.run_tc(EGRESS, &first(sa(C1, 5000), sa(PEER, 53))).frame);
        let answer = first(sa(PEER, 53), sa(NODE, sport));
        let out = h.run_tc(INGRESS, &answer);
        assert_ne!(out.verdict, TC_ACT_SHOT);
        assert_eq!(view(&out.frame).dst, C1);
        let frag = later(PEER, NODE, ID);
        let out = h.run_tc(INGRESS, &frag);
        assert_ne!(out.verdict, TC_ACT_SHOT, "the answer's later fragment");
        verify_checksums(&out.frame).unwrap();
        assert_eq!(view(&out.frame).dst, C1);
        only_changed(&frag, &out.frame, &off::DADDR);
    });
}

#[test]
fn a_published_port_s_fragments_go_to_its_container_and_the_answer_s_leave_as_the_node() {
    in_own_ns("frag", || {
        let mut h = Harness::load();
        setup(&mut h.datapath);
        h.container(C1, 1);
        h.datapath
            .insert_publish(
                PublishKey::new([0; 4], 5353, PROTO_UDP),
                PublishTarget {
                    ip: C1.octets(),
                    port: 53u16.to_be_bytes(),
                    pad: [0; 2],
                    ifindex: LO,
                    network_id: 1,
                },
            )
            .unwrap();
        let out = h.run_tc(INGRESS, &first(sa(PEER, 4000), sa(NODE, 5353)));
        assert_ne!(out.verdict, TC_ACT_SHOT);
        let v = view(&out.frame);
        assert_eq!((v.src, v.dst, ports(&out.frame).1), (PEER, C1, 53));
        let frag = later(PEER, NODE, ID);
        let out = h.run_tc(INGRESS, &frag);
        assert_ne!(out.verdict, TC_ACT_SHOT);
        verify_checksums(&out.frame).unwrap();
        assert_eq!(view(&out.frame).dst, C1);
        only_changed(&frag, &out.frame, &off::DADDR);

        // The container's answer, fragmented: the first is reverse-DNATed
        // on its veth, the later ones get the node's address too.
        let out = h.from_container(&first(sa(C1, 53), sa(PEER, 4000)), 1);
        assert_ne!(out.verdict, TC_ACT_SHOT);
        assert_eq!((view(&out.frame).src, ports(&out.frame).0), (NODE, 5353));
        let frag = later(C1, PEER, ID);
        let out = h.from_container(&frag, 1);
        assert_ne!(out.verdict, TC_ACT_SHOT);
        verify_checksums(&out.frame).unwrap();
        assert_eq!(view(&out.frame).src, NODE);

        // From outside with no first: none reaches the container; one to
        // the node's own address is the node's to reassemble.
        let before = untracked(&h);
        let out = h.run_tc(INGRESS, &later(PEER, C1, ID + 7));
        assert_eq!(out.verdict, TC_ACT_SHOT);
        assert_eq!(untracked(&h), before + 1);
        let own = later(PEER, NODE, ID + 8);
        let out = h.run_tc(INGRESS, &own);
        assert_eq!((out.verdict, out.frame), (TC_ACT_OK, own));
    });
}
