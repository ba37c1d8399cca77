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
//! the syscall or the skb it builds. Cases run in rounds, each round
//! through all of them, and each figure is the median of its rounds.
//! Two programs of our own ([`super::floor`]) set the floor: what running
//! any program costs by this measure, and what one helper call adds.
use std::net::{Ipv4Addr, SocketAddrV4};

use aya::{
    programs::ProgramInfo,
    sys::{Stats, enable_stats},
};

use weir_common::publish::{PROTO_TCP, PublishKey, PublishTarget};

use super::{floor::Floor, median};
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

/// Rounds of every case; each case's figure is the median of its rounds.
pub const ROUNDS: u32 = 5;

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
        let mut h = harness();
        let ack_in = packet::tcp_ack4(sa(CLIENT, port(0)), sa(NODE, 8080), 2, 2, false);
        assert_eq!(
            view(&rewritten(&mut h, "tc_from_uplink", &ack_in)).dst,
            BACKEND
        );
        let answer = packet::tcp_ack4(sa(BACKEND, 80), sa(CLIENT, port(0)), 2, 3, false);
        assert_eq!(
            view(&rewritten(&mut h, "tc_from_container", &answer)).src,
            NODE
        );
        let ack_out = packet::tcp_ack4(sa(BACKEND, port(0)), sa(CLIENT, 443), 2, 2, false);
        // The masqueraded flow starts here; the new flows' ports differ.
        assert_eq!(view(&rewritten(&mut h, "tc_to_uplink", &ack_out)).src, NODE);
        let empty = Floor::empty().expect("a program that only returns");
        let one_helper = Floor::one_helper().expect("a program with one helper call");
        let cases: [Case; 10] = [
            // Published port, from outside.
            case(Run::Tc("tc_from_uplink"), "new flow (DNAT)", |i| {
                packet::tcp_syn4(sa(CLIENT, port(i)), sa(NODE, 8080), 1)
            }),
            case(Run::Tc("tc_from_uplink"), "established (DNAT)", |_| {
                ack_in.clone()
            }),
            case(Run::Tc("tc_from_uplink"), "miss", |_| {
                packet::tcp_ack4(sa(CLIENT, 40001), sa(NODE, 9999), 1, 1, false)
            }),
            // The container's answer.
            case(
                Run::Tc("tc_from_container"),
                "established (reverse DNAT)",
                |_| answer.clone(),
            ),
            case(
                Run::Tc("tc_from_container"),
                "new flow out (policy)",
                |_| packet::tcp_syn4(sa(BACKEND, 40000), sa(CLIENT, 80), 1),
            ),
            // Masquerade.
            case(Run::Tc("tc_to_uplink"), "new flow (SNAT)", |i| {
                packet::tcp_syn4(sa(BACKEND, port(i + 1)), sa(CLIENT, 443), 1)
            }),
            case(Run::Tc("tc_to_uplink"), "established (SNAT)", |_| {
                ack_out.clone()
            }),
            case(Run::Tc("tc_to_uplink"), "miss", |_| {
                packet::tcp_ack4(sa(NODE, 5555), sa(CLIENT, 443), 2, 2, false)
            }),
            // What any program and any helper call cost by this measure.
            case(
                Run::Floor(&empty),
                "(floor) a program that only returns",
                |_| ack_in.clone(),
            ),
            case(Run::Floor(&one_helper), "(floor) one helper call", |_| {
                ack_in.clone()
            }),
        ];
        let costs = rounds(&mut h, &cases, runs);
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

/// The datapath with one network, a container, an uplink and a port
/// published to the container.
fn harness() -> Harness {
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
    h
}
/// Every case `runs` times in [`ROUNDS`] rounds, each round through all
/// cases (against drift between them); each figure is the median of its
/// rounds' means.
fn rounds(h: &mut Harness, cases: &[Case], runs: u32) -> Vec<Cost> {
    let per_round = (runs / ROUNDS).max(1);
    let mut means = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (c, m) in cases.iter().zip(&mut means) {
            m.push(time(h, c, round * per_round, per_round));
        }
    }
    cases
        .iter()
        .zip(means)
        .map(|(c, mut m)| Cost {
            program: c.run.name(),
            case: c.packet,
            ns: median(&mut m).expect("at least one round"),
        })
        .collect()
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

/// What runs a case: a program of the datapath, or one of the floor's.
enum Run<'a> {
    Tc(&'static str),
    Floor(&'a Floor),
}

impl Run<'_> {
    fn name(&self) -> &'static str {
        match self {
            Run::Tc(name) => name,
            Run::Floor(_) => "-",
        }
    }

    /// Runs once on `frame`; returns the verdict.
    fn run(&self, h: &mut Harness, frame: &[u8]) -> i32 {
        match self {
            Run::Tc(program) => h.run_tc(program, frame).verdict,
            Run::Floor(f) => {
                i32::from_ne_bytes(f.run(frame).expect("BPF_PROG_TEST_RUN").to_ne_bytes())
            }
        }
    }

    /// The kernel's account so far: nanoseconds run, runs.
    fn account(&self, h: &mut Harness) -> (u128, u64) {
        match self {
            Run::Tc(program) => {
                let i = info(h, program);
                (i.run_time().as_nanos(), i.run_count())
            }
            Run::Floor(f) => {
                let (ns, count) = f.run_time().expect("the floor's run time");
                (u128::from(ns), count)
            }
        }
    }
}

/// One kind of packet for one program; run `i` is on `frame(i)`.
struct Case<'a> {
    run: Run<'a>,
    packet: &'static str,
    frame: Box<dyn Fn(u32) -> Vec<u8> + 'a>,
}

fn case<'a>(run: Run<'a>, packet: &'static str, frame: impl Fn(u32) -> Vec<u8> + 'a) -> Case<'a> {
    Case {
        run,
        packet,
        frame: Box::new(frame),
    }
}

/// Mean nanoseconds per run, by the kernel's account, over `runs` runs
/// numbered from `first`; a drop is a mistake of the benchmark, not a
/// figure.
fn time(h: &mut Harness, c: &Case, first: u32, runs: u32) -> f64 {
    let before = c.run.account(h);
    for i in first..first + runs {
        let verdict = c.run.run(h, &(c.frame)(i));
        assert_ne!(verdict, TC_ACT_SHOT, "{} dropped the frame", c.packet);
    }
    let after = c.run.account(h);
    let ns = after.0.saturating_sub(before.0);
    let count = after.1.saturating_sub(before.1);
    #[expect(clippy::cast_precision_loss, reason = "far below 2^52")]
    let per = ns as f64 / count.max(1) as f64;
    per
}

fn info(h: &mut Harness, program: &str) -> ProgramInfo {
    h.tc_program(program).info().expect("the program's info")
}
