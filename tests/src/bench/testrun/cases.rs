//! The cases [`super::measure`] times and how: what runs a case (a
//! program of the datapath, traced or not, or one of the floor's), the
//! frames it runs on, and the cold and hot timings by the kernel's own
//! account of the program.

use std::{cell::RefCell, net::Ipv4Addr};

use aya::programs::ProgramInfo;
use weir_common::ct::CtKey;

use super::{Cost, HOT_REPEAT, ROUNDS, packets};
use crate::{
    bench::{floor::Floor, median},
    packet,
    prog::{Harness, TC_ACT_SHOT, XDP_DROP},
};

/// Every case `runs` times in [`ROUNDS`] rounds, each round through all
/// cases (against drift between them), cold and, where it can be, hot;
/// each figure is the median of its rounds' means.
pub(super) fn rounds(h: &mut Harness, cases: &[Case], runs: u32) -> Vec<Cost> {
    let per_round = (runs / ROUNDS).max(1);
    let mut cold = vec![Vec::new(); cases.len()];
    let mut hot = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (i, c) in cases.iter().enumerate() {
            cold[i].push(time(h, c, round * per_round, per_round));
            if c.hot != Hot::No {
                hot[i].push(time_hot(h, c, per_round));
            }
        }
    }
    cases
        .iter()
        .zip(cold.iter_mut().zip(&mut hot))
        .map(|(c, (cold, hot))| Cost {
            program: c.run.name(),
            case: c.packet,
            ns: median(cold).expect("at least one round"),
            hot_ns: median(hot),
        })
        .collect()
}

/// The trace's records, read and dropped.
pub(super) type Records = aya_log::EbpfLogger<Discard>;

pub(super) struct Discard;

impl log::Log for Discard {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {}
    fn flush(&self) {}
}

/// What runs a case: a program of the datapath, or one of the floor's.
pub(super) enum Run<'a> {
    Tc(&'static str),
    /// A tc program with `weir agent --trace` on for this address; its
    /// records are read (and dropped) after each call, as the agent would.
    Traced(&'static str, Ipv4Addr, &'a RefCell<Records>),
    Xdp(&'static str),
    Floor(&'a Floor),
}

impl Run<'_> {
    fn name(&self) -> &'static str {
        match self {
            Run::Tc(name) | Run::Traced(name, ..) | Run::Xdp(name) => name,
            Run::Floor(_) => "-",
        }
    }

    /// The verdict that drops.
    fn drop_verdict(&self) -> i32 {
        match self {
            Run::Xdp(_) => XDP_DROP,
            Run::Tc(_) | Run::Traced(..) | Run::Floor(_) => TC_ACT_SHOT,
        }
    }

    /// Runs `repeat` times on one skb made from `frame`; returns the last
    /// verdict.
    fn run(&self, h: &mut Harness, frame: &[u8], repeat: u32) -> i32 {
        match self {
            Run::Tc(program) => h.run_tc_repeated(program, frame, repeat).verdict,
            Run::Traced(program, addr, records) => {
                h.datapath.set_trace(Some(*addr)).expect("CONFIG");
                let verdict = h.run_tc_repeated(program, frame, repeat).verdict;
                h.datapath.set_trace(None).expect("CONFIG");
                records.borrow_mut().flush();
                verdict
            }
            Run::Xdp(program) => h.run_xdp_repeated(program, frame, repeat).verdict,
            Run::Floor(f) => {
                let (verdict, _) = f.run_repeated(frame, repeat).expect("BPF_PROG_TEST_RUN");
                i32::from_ne_bytes(verdict.to_ne_bytes())
            }
        }
    }

    /// The kernel's account so far: nanoseconds run, runs.
    fn account(&self, h: &mut Harness) -> (u128, u64) {
        match self {
            Run::Tc(program) | Run::Traced(program, ..) | Run::Xdp(program) => {
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
pub(super) struct Case<'a> {
    run: Run<'a>,
    packet: &'static str,
    frame: Box<dyn Fn(u32) -> Vec<u8> + 'a>,
    hot: Hot,
}

/// Whether a case has a hot figure, and how its runs stay that case.
#[derive(PartialEq, Eq)]
pub(super) enum Hot {
    /// No: a run makes the next one another case.
    No,
    /// The program's output is the same case again.
    Same,
    /// An established flow looped by [`loop_flow`]: these entries' packet
    /// counts must grow by one a run.
    Loop(Vec<CtKey>),
}

pub(super) fn case<'a>(
    run: Run<'a>,
    packet: &'static str,
    frame: impl Fn(u32) -> Vec<u8> + 'a,
) -> Case<'a> {
    Case {
        run,
        packet,
        frame: Box::new(frame),
        hot: Hot::No,
    }
}

impl Case<'_> {
    pub(super) fn hot(self, hot: Hot) -> Self {
        Self { hot, ..self }
    }
}

/// Mean nanoseconds per run, by the kernel's account, over `runs` runs
/// numbered from `first`; a drop where none is meant (or none where one
/// is) is a mistake of the benchmark, not a figure.
fn time(h: &mut Harness, c: &Case, first: u32, runs: u32) -> f64 {
    let before = c.run.account(h);
    let drop = c.run.drop_verdict();
    for i in first..first + runs {
        let verdict = c.run.run(h, &(c.frame)(i), 1);
        assert_eq!(
            verdict == drop,
            c.packet.starts_with("drop"),
            "{}: verdict {verdict}",
            c.packet
        );
    }
    per_run(before, c.run.account(h))
}

/// Mean nanoseconds per run, by the kernel's account, over `calls`
/// calls of [`HOT_REPEAT`] runs each on the case's first frame, its TTL
/// 255. Every call must end with the verdict one run has (the case did
/// not turn into another), and a looped flow must have counted every run.
fn time_hot(h: &mut Harness, c: &Case, calls: u32) -> f64 {
    let mut frame = (c.frame)(0);
    packet::set_ttl(&mut frame, 255);
    let want = c.run.run(h, &frame, 1);
    let counted = |h: &mut Harness| match &c.hot {
        Hot::Loop(keys) => packets(h, keys),
        _ => 0,
    };
    let (before, packets_before) = (c.run.account(h), counted(h));
    for _ in 0..calls {
        let verdict = c.run.run(h, &frame, HOT_REPEAT);
        assert_eq!(verdict, want, "{}: a hot run became another case", c.packet);
    }
    let after = c.run.account(h);
    if let Hot::Loop(_) = c.hot {
        let runs = u64::from(calls * HOT_REPEAT);
        assert_eq!(
            counted(h) - packets_before,
            runs,
            "{}: a run missed",
            c.packet
        );
    }
    per_run(before, after)
}

/// Mean nanoseconds per run between two accounts.
fn per_run(before: (u128, u64), after: (u128, u64)) -> f64 {
    let ns = after.0.saturating_sub(before.0);
    let count = after.1.saturating_sub(before.1);
    #[expect(clippy::cast_precision_loss, reason = "far below 2^52")]
    let per = ns as f64 / count.max(1) as f64;
    per
}

pub(super) fn info(h: &mut Harness, program: &str) -> ProgramInfo {
    if program.starts_with("xdp_") {
        h.xdp_program(program).info()
    } else {
        h.tc_program(program).info()
    }
    .expect("the program's info")
}
