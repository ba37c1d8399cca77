//! The per-packet cost of each tc program, from `BPF_PROG_TEST_RUN` on the
//! real object: a new flow, an established one, and a miss (a packet the
//! program looks at and lets pass untouched).
//!
//! The kernel reuses one skb across `repeat` runs, so a program that
//! rewrites the frame would see its own output the second time. New and
//! established flows are therefore timed one run at a time (`repeat` 1,
//! the median of many), which adds one clock read per run; that overhead
//! is measured on the miss, whose frame is never changed (the same frame
//! once vs `repeat` 10,000 times), and taken off every figure.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use weir_common::publish::{PROTO_TCP, PublishKey, PublishTarget};

use crate::{
    packet::{self, view},
    prog::{Harness, TC_ACT_SHOT, TEST_IFINDEX, node_ns},
};

const NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

/// One program on one kind of packet.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Cost {
    pub program: &'static str,
    pub case: &'static str,
    /// Nanoseconds per packet, the clock overhead taken off.
    pub ns: f64,
}

/// Per-packet costs, and the clock overhead taken off them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Costs {
    pub runs: u32,
    pub clock_ns: f64,
    pub costs: Vec<Cost>,
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Times every case `runs` times (in a namespace of its own, which
/// gives the FIB lookups of the fast path a route and a neighbour).
#[must_use]
pub fn measure(runs: u32) -> Costs {
    node_ns("bench").run(|| {
        let mut h = Harness::with_one_network();
        let dp = &mut h.datapath;
        dp.configure((1024, 32767)).expect("CONFIG");
        dp.set_uplinks(&[(TEST_IFINDEX, NODE)]).expect("UPLINKS");
        dp.set_host_addrs(&[(NODE, TEST_IFINDEX)])
            .expect("HOST_ADDRS4");
        let key = PublishKey::new([0; 4], 8080, PROTO_TCP);
        dp.ensure_port_stats(key).expect("PORT_STATS");
        dp.insert_publish(
            key,
            PublishTarget {
                ip: BACKEND.octets(),
                port: 80u16.to_be_bytes(),
                pad: [0; 2],
                ifindex: TEST_IFINDEX,
                network_id: 1,
            },
        )
        .expect("PUBLISH4");
        h.container(BACKEND, 1);

        // The clock: one run of an unchanged frame vs many in a row.
        let miss = packet::tcp_ack4(sa(CLIENT, 40001), sa(NODE, 9999), 1, 1, false);
        let single = median(runs, |_| time(&mut h, "tc_from_uplink", &miss, 1));
        let many = time(&mut h, "tc_from_uplink", &miss, 10_000);
        let clock = (single - many).max(0.0);

        let mut costs = Vec::new();
        let mut cost = |program, case, ns: f64| {
            costs.push(Cost {
                program,
                case,
                ns: ns - clock,
            });
        };
        // Published port, from outside.
        cost(
            "tc_from_uplink",
            "new flow (DNAT)",
            median(runs, |i| {
                let syn = packet::tcp_syn4(sa(CLIENT, port(i)), sa(NODE, 8080), 1);
                time(&mut h, "tc_from_uplink", &syn, 1)
            }),
        );
        let ack = packet::tcp_ack4(sa(CLIENT, port(0)), sa(NODE, 8080), 2, 2, false);
        assert_eq!(
            view(&rewritten(&mut h, "tc_from_uplink", &ack)).dst,
            BACKEND
        );
        cost(
            "tc_from_uplink",
            "established (DNAT)",
            median(runs, |_| time(&mut h, "tc_from_uplink", &ack, 1)),
        );
        cost("tc_from_uplink", "miss", single);
        // The container's answer.
        let answer = packet::tcp_ack4(sa(BACKEND, 80), sa(CLIENT, port(0)), 2, 3, false);
        assert_eq!(
            view(&rewritten(&mut h, "tc_from_container", &answer)).src,
            NODE
        );
        cost(
            "tc_from_container",
            "established (reverse DNAT)",
            median(runs, |_| time(&mut h, "tc_from_container", &answer, 1)),
        );
        let out = packet::tcp_syn4(sa(BACKEND, 40000), sa(CLIENT, 80), 1);
        cost(
            "tc_from_container",
            "new flow out (policy)",
            median(runs, |_| time(&mut h, "tc_from_container", &out, 1)),
        );
        // Masquerade.
        cost(
            "tc_to_uplink",
            "new flow (SNAT)",
            median(runs, |i| {
                let syn = packet::tcp_syn4(sa(BACKEND, port(i)), sa(CLIENT, 443), 1);
                time(&mut h, "tc_to_uplink", &syn, 1)
            }),
        );
        let ack = packet::tcp_ack4(sa(BACKEND, port(0)), sa(CLIENT, 443), 2, 2, false);
        assert_eq!(view(&rewritten(&mut h, "tc_to_uplink", &ack)).src, NODE);
        cost(
            "tc_to_uplink",
            "established (SNAT)",
            median(runs, |_| time(&mut h, "tc_to_uplink", &ack, 1)),
        );
        let own = packet::tcp_ack4(sa(NODE, 5555), sa(CLIENT, 443), 2, 2, false);
        cost(
            "tc_to_uplink",
            "miss",
            median(runs, |_| time(&mut h, "tc_to_uplink", &own, 1)),
        );
        Costs {
            runs,
            clock_ns: clock,
            costs,
        }
    })
}

/// A source port per run (new flows must not meet old ones).
fn port(i: u32) -> u16 {
    u16::try_from(32768 + i % 30000).expect("a port")
}

fn rewritten(h: &mut Harness, program: &str, frame: &[u8]) -> Vec<u8> {
    let out = h.run_tc(program, frame);
    assert_ne!(out.verdict, TC_ACT_SHOT, "{program} dropped the frame");
    packet::verify_checksums(&out.frame).expect("checksums");
    out.frame
}

/// Nanoseconds per run of `program` on `frame`, `repeat` runs in a row;
/// a drop is a mistake of the benchmark, not a figure.
fn time(h: &mut Harness, program: &str, frame: &[u8], repeat: u32) -> f64 {
    let (out, d): (_, Duration) = h.time_tc(program, frame, repeat);
    assert_ne!(out.verdict, TC_ACT_SHOT, "{program} dropped the frame");
    d.as_secs_f64() * 1e9
}

/// The median of `f` over `runs` runs.
fn median(runs: u32, f: impl FnMut(u32) -> f64) -> f64 {
    let mut v: Vec<f64> = (0..runs).map(f).collect();
    super::median(&mut v).unwrap_or(0.0)
}
