//! Exhaustion, by `BPF_PROG_TEST_RUN` on the real programs: more new
//! flows than `CT4` holds (an established flow kept busy goes on being
//! translated both ways, new flows keep opening, none is refused, the
//! table stays within its capacity, the least recently used entries make
//! room), and a drop flood that fills the `EVENTS` ring (nothing waits,
//! every drop counted, every event the ring had no room for counted as
//! lost).

use std::net::{Ipv4Addr, SocketAddrV4};

use weir_common::{
    ct::{CtKey, MAX_CT_ENTRIES},
    drop::DropReason,
    event::{DropEvent, EVENTS_BYTES},
    network::NET_MASQUERADE,
};
use weir_tests::{
    packet::{self, view},
    prog::{Harness, MASQ_NODE, TC_ACT_OK, TC_ACT_SHOT, in_own_ns, masquerading_node},
};

const EGRESS: &str = "tc_to_uplink";
const INGRESS: &str = "tc_from_uplink";
const C: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

#[test]
fn more_flows_than_ct4_holds_keep_the_busy_ones_and_open_new_ones() {
    in_own_ns("exhaust", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (1024, 65535));
        h.container(C, 1);
        // The busy flow: its first packet leaves by the uplink, then each
        // way a packet every 500 new flows.
        let syn = packet::tcp_syn4(sa(C, 40000), sa(PEER, 80), 1);
        let port = view(&h.run_tc(EGRESS, &syn).frame).sport;
        let out = packet::tcp_ack4(sa(C, 40000), sa(PEER, 80), 2, 10, false);
        let back = packet::tcp_ack4(sa(PEER, 80), sa(MASQ_NODE, port), 10, 2, false);
        // Each flow opens both entries: this many fill the table twice
        // over and a half.
        let flows = MAX_CT_ENTRIES + MAX_CT_ENTRIES / 4;
        for i in 0..flows {
            // A peer port per 10,000 flows: masquerade's ports for one
            // peer address and port stay far from exhausted.
            let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 88, 1, 0)) + i % 10_000);
            let dport = 1000 + u16::try_from(i / 10_000).unwrap();
            let new = packet::udp4(sa(src, 5000), sa(PEER, dport), b"n");
            let o = h.run_tc(EGRESS, &new);
            assert_eq!(o.verdict, TC_ACT_OK, "new flow {i} refused");
            if i % 500 == 0 {
                let o = h.from_container(&out, 1);
                let v = view(&o.frame);
                assert_eq!((v.src, v.sport), (MASQ_NODE, port), "after {i} flows");
                let b = h.run_tc(INGRESS, &back);
                let v = view(&b.frame);
                assert_eq!((v.dst, v.dport), (C, 40000), "after {i} flows");
            }
        }
        let present = h.datapath.conntrack::<CtKey>().unwrap().len();
        let created = 2 * (usize::try_from(flows).unwrap() + 1);
        assert!(present <= MAX_CT_ENTRIES as usize, "{present} entries");
        eprintln!(
            "{flows} flows: {present} entries of {MAX_CT_ENTRIES} held, {} made room for",
            created - present
        );
        for reason in [DropReason::CtInsertFailed, DropReason::SnatExhausted] {
            assert_eq!(h.datapath.drop_stats(reason).unwrap().packets, 0);
        }
        let c = h.datapath.nat_stats(1).unwrap();
        assert_eq!(c.flows, u64::from(flows) + 1);
    });
}

#[test]
fn a_drop_flood_fills_events_without_waiting_and_counts_what_it_lost() {
    in_own_ns("exhaust", || {
        let mut h = Harness::load();
        masquerading_node(&mut h.datapath, NET_MASQUERADE, (1024, 65535));
        // From outside with a loopback source: a bogon, every time.
        let bogon = packet::tcp_syn4(sa(Ipv4Addr::LOCALHOST, 1), sa(MASQ_NODE, 80), 1);
        let flood = 20_000;
        let o = h.run_tc_repeated(INGRESS, &bogon, flood);
        assert_eq!(o.verdict, TC_ACT_SHOT);
        let dropped = h.datapath.drop_stats(DropReason::Bogon).unwrap().packets;
        assert_eq!(dropped, u64::from(flood));
        let told = h.events().len() as u64;
        let lost = h.datapath.events_lost().unwrap();
        let room = u64::from(EVENTS_BYTES) / (size_of::<DropEvent>() as u64 + 8);
        assert!(
            told <= room && told > room / 2,
            "{told} events of room for {room}"
        );
        assert_eq!(
            told + lost,
            u64::from(flood),
            "every drop told or counted lost"
        );
        // Read, the ring takes events again.
        let _ = h.run_tc(INGRESS, &bogon);
        assert_eq!(h.events().len(), 1);
        assert_eq!(h.datapath.events_lost().unwrap(), lost);
    });
}
