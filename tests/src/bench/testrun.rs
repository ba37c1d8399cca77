//! The per-packet cost of each tc program, from `BPF_PROG_TEST_RUN` on the
//! real object: a new flow, an established one, and a miss (a packet the
//! program looks at and lets pass untouched).
//!
//! Each packet is its own run (`repeat` 1), on a fresh copy of the frame:
//! the kernel reuses one skb across `repeat` runs, so a program that
//! rewrites the frame would see its own output from the second run on.
//! The time is the kernel's own account of the program
//! (`BPF_ENABLE_STATS`: `run_time_ns` / `run_cnt`, what `bpftool prog`
//! shows), which starts and stops around the program alone, not around
//! the syscall or the skb it builds.
use std::net::{Ipv4Addr, SocketAddrV4};

use aya::{
    programs::ProgramInfo,
    sys::{Stats, enable_stats},
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
    /// Nanoseconds per packet, the mean of the runs.
    pub ns: f64,
}

/// A program's size after the verifier and the JIT.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Size {
    pub program: &'static str,
    /// BPF instructions, as the kernel runs them (`xlated`).
    pub instructions: u32,
    /// Bytes of machine code.
    pub jited_bytes: u32,
}

/// Per-packet costs and program sizes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Costs {
    pub runs: u32,
    pub costs: Vec<Cost>,
    pub sizes: Vec<Size>,
}

const PROGRAMS: [&str; 3] = ["tc_from_uplink", "tc_from_container", "tc_to_uplink"];

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Times every case `runs` times (in a namespace of its own, which
/// gives the FIB lookups of the fast path a route and a neighbour).
#[must_use]
pub fn measure(runs: u32) -> Costs {
    // Run-time accounting is on while this descriptor is open.
    let _stats = enable_stats(Stats::RunTime).expect("BPF_ENABLE_STATS");
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

        let mut costs = Vec::new();
        let mut cost = |h: &mut Harness, program, case, frame: &dyn Fn(u32) -> Vec<u8>| {
            costs.push(Cost {
                program,
                case,
                ns: time(h, program, runs, frame),
            });
        };
        // Published port, from outside.
        cost(&mut h, "tc_from_uplink", "new flow (DNAT)", &|i| {
            packet::tcp_syn4(sa(CLIENT, port(i)), sa(NODE, 8080), 1)
        });
        let ack = packet::tcp_ack4(sa(CLIENT, port(0)), sa(NODE, 8080), 2, 2, false);
        assert_eq!(
            view(&rewritten(&mut h, "tc_from_uplink", &ack)).dst,
            BACKEND
        );
        cost(&mut h, "tc_from_uplink", "established (DNAT)", &|_| {
            ack.clone()
        });
        cost(&mut h, "tc_from_uplink", "miss", &|_| {
            packet::tcp_ack4(sa(CLIENT, 40001), sa(NODE, 9999), 1, 1, false)
        });
        // The container's answer.
        let answer = packet::tcp_ack4(sa(BACKEND, 80), sa(CLIENT, port(0)), 2, 3, false);
        assert_eq!(
            view(&rewritten(&mut h, "tc_from_container", &answer)).src,
            NODE
        );
        cost(
            &mut h,
            "tc_from_container",
            "established (reverse DNAT)",
            &|_| answer.clone(),
        );
        cost(
            &mut h,
            "tc_from_container",
            "new flow out (policy)",
            &|_| packet::tcp_syn4(sa(BACKEND, 40000), sa(CLIENT, 80), 1),
        );
        // Masquerade.
        cost(&mut h, "tc_to_uplink", "new flow (SNAT)", &|i| {
            packet::tcp_syn4(sa(BACKEND, port(i)), sa(CLIENT, 443), 1)
        });
        let ack = packet::tcp_ack4(sa(BACKEND, port(0)), sa(CLIENT, 443), 2, 2, false);
        assert_eq!(view(&rewritten(&mut h, "tc_to_uplink", &ack)).src, NODE);
        cost(&mut h, "tc_to_uplink", "established (SNAT)", &|_| {
            ack.clone()
        });
        cost(&mut h, "tc_to_uplink", "miss", &|_| {
            packet::tcp_ack4(sa(NODE, 5555), sa(CLIENT, 443), 2, 2, false)
        });
        let sizes = PROGRAMS
            .iter()
            .map(|&program| {
                let i = info(&mut h, program);
                Size {
                    program,
                    instructions: i.size_translated().unwrap_or(0) / 8,
                    jited_bytes: i.size_jitted(),
                }
            })
            .collect();
        Costs { runs, costs, sizes }
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

/// Mean nanoseconds per run of `program`, by the kernel's account, over
/// `runs` runs, run `i` on `frame(i)`; a drop is a mistake of the
/// benchmark, not a figure.
fn time(h: &mut Harness, program: &str, runs: u32, frame: &dyn Fn(u32) -> Vec<u8>) -> f64 {
    let before = info(h, program);
    for i in 0..runs {
        let out = h.run_tc(program, &frame(i));
        assert_ne!(out.verdict, TC_ACT_SHOT, "{program} dropped the frame");
    }
    let after = info(h, program);
    let count = after.run_count().saturating_sub(before.run_count());
    let ns = after
        .run_time()
        .saturating_sub(before.run_time())
        .as_nanos();
    #[expect(clippy::cast_precision_loss, reason = "far below 2^52")]
    let per = ns as f64 / count.max(1) as f64;
    per
}

fn info(h: &mut Harness, program: &str) -> ProgramInfo {
    h.tc_program(program).info().expect("the program's info")
}
