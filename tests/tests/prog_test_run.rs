//! `BPF_PROG_TEST_RUN` on the real `tc_from_container` program.

use std::net::Ipv4Addr;

use weir_common::{drop::DropReason, stats::Counter, stats::Hook};
use weir_tests::{
    packet::{self, IPV4_OFFSET},
    prog::{Harness, TC_ACT_OK, TC_ACT_SHOT},
};

const PROG: &str = "tc_from_container";

/// A datapath with the container 10.88.0.2 of network 1 (10.88.0.0/16)
/// behind the test's interface.
fn harness() -> Harness {
    let mut h = Harness::with_one_network();
    h.container(Ipv4Addr::new(10, 88, 0, 2), 1);
    h
}

fn len(frame: &[u8]) -> u64 {
    frame.len() as u64
}

#[test]
fn valid_udp_passes_untouched_and_is_counted() {
    let mut h = harness();
    let frame = packet::udp4(
        "10.88.0.2:40000".parse().unwrap(),
        "203.0.113.2:53".parse().unwrap(),
        b"query",
    );
    let out = h.run_tc(PROG, &frame);
    assert_eq!(out.verdict, TC_ACT_OK);
    assert_eq!(out.frame, frame, "the program must not rewrite this frame");
    assert_eq!(
        h.datapath.hook_stats(Hook::FromContainer).unwrap(),
        Counter {
            packets: 1,
            bytes: len(&frame)
        }
    );
    assert_eq!(
        h.datapath.drop_stats(DropReason::Malformed).unwrap(),
        Counter::default()
    );
}

#[test]
fn tcp_icmp_and_arp_pass() {
    let mut h = harness();
    let frames = [
        packet::tcp_syn4(
            "10.88.0.2:40000".parse().unwrap(),
            "203.0.113.2:80".parse().unwrap(),
            1,
        ),
        packet::icmp_echo4(
            "10.88.0.2".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
            7,
            1,
        ),
        packet::arp_request("10.88.0.2".parse().unwrap(), "10.88.0.1".parse().unwrap()),
    ];
    for frame in &frames {
        let out = h.run_tc(PROG, frame);
        assert_eq!(out.verdict, TC_ACT_OK, "{frame:02x?}");
        assert_eq!(&out.frame, frame);
    }
    let seen = h.datapath.hook_stats(Hook::FromContainer).unwrap();
    assert_eq!(seen.packets, 3);
    assert_eq!(seen.bytes, frames.iter().map(|f| len(f)).sum::<u64>());
}

/// Each frame is a valid UDP frame broken in one way.
#[test]
fn malformed_ipv4_is_dropped_and_counted() {
    let good = packet::udp4(
        "10.88.0.2:40000".parse().unwrap(),
        "203.0.113.2:53".parse().unwrap(),
        b"query",
    );
    let mut broken: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut f = good.clone();
    f[IPV4_OFFSET] = 0x44; // header length 16 bytes
    broken.push(("ihl below 5", f));
    let mut f = good.clone();
    f[IPV4_OFFSET] = 0x65; // version 6 in an IPv4 ethertype
    broken.push(("wrong version", f));
    let mut f = good.clone();
    f[IPV4_OFFSET + 2..IPV4_OFFSET + 4].copy_from_slice(&1500u16.to_be_bytes());
    broken.push(("total length past the frame", f));
    let mut f = good.clone();
    f[IPV4_OFFSET + 2..IPV4_OFFSET + 4].copy_from_slice(&10u16.to_be_bytes());
    broken.push(("total length below the header", f));
    // A frame cut inside its IPv4 header cannot go through
    // BPF_PROG_TEST_RUN: the kernel's test runner (bpf_prog_test_run_skb)
    // refuses an ETH_P_IP skb shorter than an IP header with EINVAL. The
    // end-to-end test `truncated_frame_from_a_container_is_dropped` sends one
    // through a real veth instead.

    let mut h = harness();
    let mut dropped_bytes = 0;
    for (what, frame) in &broken {
        let out = h.run_tc(PROG, frame);
        assert_eq!(out.verdict, TC_ACT_SHOT, "{what}");
        dropped_bytes += len(frame);
    }
    assert_eq!(
        h.datapath.drop_stats(DropReason::Malformed).unwrap(),
        Counter {
            packets: broken.len() as u64,
            bytes: dropped_bytes
        }
    );
    // Dropped packets were still seen by the hook.
    assert_eq!(
        h.datapath.hook_stats(Hook::FromContainer).unwrap().packets,
        broken.len() as u64
    );
}

#[test]
fn each_load_has_its_own_maps() {
    let frame = packet::udp4(
        "10.88.0.2:1".parse().unwrap(),
        "203.0.113.2:2".parse().unwrap(),
        b"x",
    );
    let mut a = harness();
    let b = harness();
    let _ = a.run_tc(PROG, &frame);
    assert_eq!(
        a.datapath.hook_stats(Hook::FromContainer).unwrap().packets,
        1
    );
    assert_eq!(
        b.datapath.hook_stats(Hook::FromContainer).unwrap().packets,
        0
    );
}
