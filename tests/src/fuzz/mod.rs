//! Packet fuzzing of the real datapath programs by `BPF_PROG_TEST_RUN`:
//! valid frames of every kind the maps hold ([`cases`]), mutated
//! ([`mutate`]), run through the hooks that meet them in the order they
//! meet them, and judged ([`check`]) on every run:
//!
//! - the verdict is one the program may give;
//! - a drop is counted under exactly one stable reason, and nothing else is
//!   counted; `EVENTS` tells each drop with the same reason;
//! - a frame the program changed has right IP and L4 checksums (when the
//!   frame it got had);
//! - nothing leaves an uplink with a masquerading or internal network's
//!   address;
//! - nothing from outside reaches a container unless it belongs to a flow
//!   there already or is a new flow to a publication (or a routed
//!   container's open port) whose policy lets it in, with the client's
//!   address kept;
//! - the conntrack and fragment tables grow by at most two entries (one)
//!   per frame passed.
//!
//! Frames come from a seeded generator: a failure names the seed and the
//! frame's number, and reruns the same way.

pub mod cases;
pub mod check;
pub mod frame;
pub mod mutate;
pub mod world;

use std::{collections::BTreeMap, time::Instant};

use rand::{Rng, RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use weir_common::{
    ct::{CtEntry, CtKey},
    ct6::{CtEntry6, CtKey6},
    drop::DropReason,
    frag::{FragEntry, FragKey},
};

use cases::{Case, Hook};
use check::TC_OK;
use world::{NODE, NODE6, SENDERS, World};

/// How many frames, from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub frames: u64,
    pub seed: u64,
}

/// Frames between two turns of the endpoint behind the test run's device
/// (each turn re-seeds the flows and checks the tables' sizes).
const BATCH: u64 = 256;

/// A broken invariant.
#[derive(Debug)]
pub struct Failure {
    pub frame_no: u64,
    pub program: &'static str,
    pub invariant: String,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub frames: u64,
    /// Program runs (a frame may meet two hooks).
    pub runs: u64,
    /// Per program and verdict, the runs that gave it.
    pub verdicts: BTreeMap<(&'static str, i32), u64>,
    /// Per drop reason, the drops counted.
    pub drops: BTreeMap<&'static str, u64>,
    /// Per mutation, the frames it was applied to.
    pub mutations: BTreeMap<String, u64>,
    pub failures: Vec<Failure>,
    /// Frames the kernel's test run refused before a program saw them.
    pub refused: u64,
    pub seconds: f64,
    /// The most entries `CT4` held at a batch's end.
    pub max_ct4: usize,
}

impl Report {
    /// Frames per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
        // Exact below 2^52 frames.
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let frames = self.frames as f64;
        frames / self.seconds.max(1e-9)
    }
}

/// The run in progress.
struct Fuzz {
    w: World,
    report: Report,
    frame_no: u64,
    /// Drops counted since the batch's events were last read, by reason.
    batch_drops: Vec<u32>,
    /// Runs that passed their frame in this batch.
    passed: usize,
}

/// Runs the fuzzer. Call it in a network namespace of its own
/// ([`crate::prog::node_ns`]): the fast paths' FIB lookups see its routes.
#[must_use]
pub fn run(cfg: Config) -> Report {
    let start = Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut f = Fuzz {
        w: World::load(),
        report: Report::default(),
        frame_no: 0,
        batch_drops: Vec::new(),
        passed: 0,
    };
    let mut turn = 0;
    while f.frame_no < cfg.frames {
        f.w.enter(SENDERS[turn % SENDERS.len()]);
        turn += 1;
        let seeds = cases::seed(&mut f.w, &mut |w, hook, frame| seed_run(w, hook, frame));
        let _ = f.events();
        let base = f.sizes();
        f.passed = 0;
        f.batch_drops.clear();
        let all = cases::all(&f.w, &seeds);
        let end = (f.frame_no + BATCH).min(cfg.frames);
        while f.frame_no < end {
            let case = &all[rng.random_range(0..all.len())];
            let frame = f.mutated(case, &mut rng);
            f.frame(case.hook, &frame);
            f.frame_no += 1;
        }
        f.end_batch(base);
    }
    f.report.frames = f.frame_no;
    f.report.seconds = start.elapsed().as_secs_f64();
    f.report
}

/// A seeding run: the hooks' last frame out, unless one dropped it.
fn seed_run(w: &mut World, hook: Hook, frame: &[u8]) -> Option<Vec<u8>> {
    let mut out = frame.to_vec();
    for program in programs(hook) {
        let o = exec(w, program, &out)?;
        if check::verdict_kind(program, o.verdict) != Some(false) {
            return None;
        }
        out = o.frame;
    }
    Some(out)
}

fn programs(hook: Hook) -> &'static [&'static str] {
    match hook {
        Hook::FromContainer => &["tc_from_container"],
        Hook::ToUplink => &["tc_to_uplink"],
        Hook::FromUplink => &["xdp_from_uplink", "tc_from_uplink"],
        Hook::TcFromUplink => &["tc_from_uplink"],
        Hook::FromBridge => &["tc_from_bridge"],
    }
}

/// One run of `program` on `frame`; `None` when the kernel refuses the
/// frame before the program sees it (`BPF_PROG_TEST_RUN` wants an IPv4
/// or IPv6 frame to hold at least the fixed IP header).
fn exec(w: &mut World, program: &str, frame: &[u8]) -> Option<crate::prog::Outcome> {
    let r = if program.starts_with("xdp") {
        w.h.try_run_xdp(program, frame, 1)
    } else {
        w.h.try_run_tc(program, frame, 1)
    };
    r.ok()
}

impl Fuzz {
    /// `case`'s frame, unchanged one time in eight, else with one to three
    /// mutations and, half the time, its checksums made right again.
    fn mutated(&mut self, case: &Case, rng: &mut impl Rng) -> Vec<u8> {
        let mut frame = case.frame.clone();
        if rng.random_range(0..8) == 0 {
            return frame;
        }
        for _ in 0..rng.random_range(1..=3) {
            let m = mutate::ALL[rng.random_range(0..mutate::ALL.len())];
            mutate::apply(&mut frame, m, rng);
            *self.report.mutations.entry(format!("{m:?}")).or_default() += 1;
        }
        if rng.random_bool(0.5) {
            frame::refresh(&mut frame);
        }
        frame
    }

    /// Runs `frame` through `hook`'s programs, judging each run and what
    /// comes out at the end.
    fn frame(&mut self, hook: Hook, input: &[u8]) {
        let known = matches!(hook, Hook::FromUplink | Hook::TcFromUplink)
            && check::known_flow(&mut self.w, input);
        let mut cur = input.to_vec();
        let mut last = ("", TC_OK);
        for program in programs(hook) {
            let Some((out, verdict)) = self.step(program, &cur) else {
                return;
            };
            last = (program, verdict);
            cur = out;
        }
        match hook {
            Hook::FromUplink | Hook::TcFromUplink => {
                let r = check::inbound(input, &cur, known);
                self.judge(last.0, r, input, &cur);
            }
            Hook::ToUplink => self.judge(last.0, check::outbound(&cur), input, &cur),
            Hook::FromContainer if leaves(&cur) => {
                // Routed out of an uplink: its egress hook meets it next.
                if let Some((out, _)) = self.step("tc_to_uplink", &cur) {
                    self.judge("tc_to_uplink", check::outbound(&out), &cur, &out);
                }
            }
            _ => {}
        }
    }

    /// One program run, judged: the frame out and the verdict, or `None`
    /// when it dropped the frame.
    fn step(&mut self, program: &'static str, input: &[u8]) -> Option<(Vec<u8>, i32)> {
        let before = check::drop_counts(&mut self.w);
        let Some(out) = exec(&mut self.w, program, input) else {
            self.report.refused += 1;
            return None;
        };
        let after = check::drop_counts(&mut self.w);
        self.report.runs += 1;
        *self
            .report
            .verdicts
            .entry((program, out.verdict))
            .or_default() += 1;
        let Some(dropped) = check::verdict_kind(program, out.verdict) else {
            let r = Err(format!("verdict {}", out.verdict));
            self.judge(program, r, input, &out.frame);
            return None;
        };
        match (check::counted(&before, &after), dropped) {
            (Ok(Some(reason)), true) => {
                self.batch_drops.push(reason);
                let name = DropReason::from_number(reason).map_or("?", DropReason::name);
                *self.report.drops.entry(name).or_default() += 1;
                return None;
            }
            (Ok(None), false) => {}
            (Ok(c), _) => {
                let r = Err(format!("verdict {} with drop counted {c:?}", out.verdict));
                self.judge(program, r, input, &out.frame);
            }
            (Err(e), _) => self.judge(program, Err(e), input, &out.frame),
        }
        if dropped {
            return None;
        }
        self.passed += 1;
        let r = check::translated(input, &out.frame);
        self.judge(program, r, input, &out.frame);
        Some((out.frame, out.verdict))
    }

    fn judge(&mut self, program: &'static str, r: Result<(), String>, input: &[u8], output: &[u8]) {
        if let Err(invariant) = r
            && self.report.failures.len() < 100
        {
            self.report.failures.push(Failure {
                frame_no: self.frame_no,
                program,
                invariant,
                input: input.to_vec(),
                output: output.to_vec(),
            });
        }
    }

    fn sizes(&mut self) -> [usize; 3] {
        [
            self.w.count::<CtKey, CtEntry>("CT4"),
            self.w.count::<CtKey6, CtEntry6>("CT6"),
            self.w.count::<FragKey, FragEntry>("FRAG4"),
        ]
    }

    /// The batch's tables no bigger than its passed frames allow, and its
    /// drops each told by one event of the same reason.
    fn end_batch(&mut self, base: [usize; 3]) {
        let now = self.sizes();
        self.report.max_ct4 = self.report.max_ct4.max(now[0]);
        let limit = [2 * self.passed, 2 * self.passed, self.passed];
        for ((name, (b, n)), l) in ["CT4", "CT6", "FRAG4"]
            .iter()
            .zip(base.iter().zip(now))
            .zip(limit)
        {
            if n > b + l {
                let r = Err(format!(
                    "{name} grew from {b} to {n} with {} frames passed",
                    self.passed
                ));
                self.judge("batch", r, &[], &[]);
            }
        }
        let mut told = self.events();
        let mut counted = std::mem::take(&mut self.batch_drops);
        told.sort_unstable();
        counted.sort_unstable();
        if told != counted {
            let r = Err(format!("events {told:?} for drops {counted:?}"));
            self.judge("batch", r, &[], &[]);
        }
    }

    /// The reasons of the events waiting in `EVENTS`.
    fn events(&mut self) -> Vec<u32> {
        self.w.h.events().iter().map(|e| e.reason).collect()
    }
}

/// Whether a frame a container sent is routed out of the node: an IP
/// packet to no container network and no node address.
fn leaves(frame: &[u8]) -> bool {
    frame::outline(frame).is_some_and(|o| {
        World::net_of(o.dst).is_none()
            && o.dst != std::net::IpAddr::V4(NODE)
            && o.dst != std::net::IpAddr::V6(NODE6)
            && !o.dst.is_multicast()
    })
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frame {} at {}: {}\n  in:  {:02x?}\n  out: {:02x?}",
            self.frame_no, self.program, self.invariant, self.input, self.output
        )
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} frames, {} program runs in {:.1} s ({:.0} frames/s); CT4 at most {}",
            self.frames,
            self.runs,
            self.seconds,
            self.rate(),
            self.max_ct4
        )?;
        for ((program, verdict), n) in &self.verdicts {
            writeln!(f, "  {program:<18} verdict {verdict}: {n}")?;
        }
        for (reason, n) in &self.drops {
            writeln!(f, "  dropped as {reason}: {n}")?;
        }
        writeln!(f, "  refused by the test run: {}", self.refused)?;
        writeln!(f, "  {} invariants broken", self.failures.len())?;
        for failure in &self.failures {
            writeln!(f, "{failure}")?;
        }
        Ok(())
    }
}
