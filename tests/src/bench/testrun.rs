//! The per-packet cost of each program, from `BPF_PROG_TEST_RUN` on the
//! real object: a new flow, an established one, a miss (a packet the
//! program looks at and lets pass untouched) and a drop, at tc and at XDP.
//!
//! Two figures per case. Cold: each packet is its own run (`repeat` 1)
//! on a fresh copy of the frame, so the program meets caches and branch
//! predictors as a syscall left them. Hot: `repeat` [`HOT_REPEAT`] on one
//! skb, the program on its own output again and again, as in a burst of
//! packets. The kernel reuses the skb across those runs, so a case is hot
//! only where every run is still the same case: a miss and a packet
//! forwarded untranslated are (their TTL starts at 255, and each run
//! takes one off), an established flow is made so ([`loop_flow`]: the
//! flow's tuple after the rewrite gets an entry of its own that rewrites
//! it as the real one did, so run after run is a hit, each rewriting
//! addresses, ports and checksums). A new flow has no hot figure, nor has
//! a container's translated packet (the answer of a published port, a
//! masqueraded flow's packet): its rewritten source is a node address,
//! which the next run would drop as spoofed.
//!
//! The time is the kernel's own account of the program
//! (`BPF_ENABLE_STATS`: `run_time_ns` / `run_cnt`, what `bpftool prog`
//! shows), which starts and stops around the program alone, not around
//! the syscall or the skb it builds. Cases run in rounds, each round
//! through all of them, and each figure is the median of its rounds.
//! Two programs of our own ([`super::floor`]) set the floor: what running
//! any program costs by this measure, and what one helper call adds.
use std::net::{Ipv4Addr, SocketAddrV4};

use aya::{
    maps::HashMap,
    programs::ProgramInfo,
    sys::{Stats, enable_stats},
};

use std::cell::RefCell;

use weir::datapath::map_names;
use weir_common::{
    ct::{CtEntry, CtKey},
    publish::{PROTO_TCP, PublishKey, PublishTarget},
};

use super::{floor::Floor, median};
use crate::{
    packet::{self, view},
    prog::{DEFAULT_FLAGS, Harness, TC_ACT_SHOT, TEST_IFINDEX, XDP_DROP, net_info, node_ns6},
};

mod six;

const NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
/// A second container, behind another veth: the established DNAT loop
/// alternates between the two, each a redirect into a container.
const BACKEND2: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 3);
/// The masquerade address (the uplink's), in a network of its own: the
/// established SNAT loop's second entry is keyed by it, and
/// `tc_to_uplink` looks up only flows from a network's addresses.
const SNAT_IP: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);

/// One program on one kind of packet.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Cost {
    pub program: &'static str,
    pub case: &'static str,
    /// Nanoseconds per packet, cold: the mean of single runs.
    pub ns: f64,
    /// Nanoseconds per packet, hot: the mean of runs [`HOT_REPEAT`] at a
    /// time on one skb; `None` where a run changes the case for the next.
    pub hot_ns: Option<f64>,
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
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Costs {
    pub runs: u32,
    pub costs: Vec<Cost>,
    pub sizes: Vec<Size>,
}

/// Rounds of every case; each case's figure is the median of its rounds.
pub const ROUNDS: u32 = 5;

/// Runs per `BPF_PROG_TEST_RUN` for the hot figures: fewer than the 254
/// a TTL of 255 allows a program that takes one off each run.
pub const HOT_REPEAT: u32 = 200;

const PROGRAMS: [&str; 4] = [
    "tc_from_uplink",
    "tc_from_container",
    "tc_to_uplink",
    "xdp_from_uplink",
];

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Times every case `runs` times (in a namespace of its own, which
/// gives the FIB lookups of the fast path a route and a neighbour).
#[must_use]
pub fn measure(runs: u32) -> Costs {
    // Run-time accounting is on while this descriptor is open.
    let _stats = enable_stats(Stats::RunTime).expect("BPF_ENABLE_STATS");
    node_ns6("bench").run(|| {
        let mut h = harness();
        let (ack_in, answer, ack_out) = flows(&mut h);
        let (ack_in6, answer6, ack_out6) = six::flows(&mut h, up0());
        let records = RefCell::new(
            aya_log::EbpfLogger::init_with_logger(h.datapath.ebpf_mut(), Discard)
                .expect("the trace's ring"),
        );
        let floors = Floors::load();
        let backend2 = Some(BACKEND2);
        let mac2 = [2, 0, 0, 0, 0, 3];
        h.datapath
            .insert_endpoint(TEST_IFINDEX + 1, backend2, mac2, 1)
            .expect("ENDPOINTS");
        let dnat_loop = loop_flow(&mut h, &ack_in, Some((BACKEND2, 8080)));
        let snat_loop = loop_flow(&mut h, &ack_out, None);
        // Unsolicited to the container's own address: dropped.
        let unsolicited = packet::udp4(sa(CLIENT, 5000), sa(BACKEND, 53), b"q");
        // To a port nothing published: no flow, passed.
        let miss = packet::tcp_ack4(sa(CLIENT, 40001), sa(NODE, 9999), 1, 1, false);
        let mut cases: Vec<Case> = vec![
            // Published port, from outside.
            case(Run::Tc("tc_from_uplink"), "new flow (DNAT)", |i| {
                packet::tcp_syn4(sa(CLIENT, port(i)), sa(NODE, 8080), 1)
            }),
            case(Run::Tc("tc_from_uplink"), "established (DNAT)", |_| {
                ack_in.clone()
            })
            .hot(Hot::Loop(dnat_loop)),
            case(Run::Tc("tc_from_uplink"), "miss", |_| miss.clone()).hot(Hot::Same),
        ];
        cases.extend(traced(&records, &miss));
        cases.extend([
            case(Run::Tc("tc_from_uplink"), "drop (unsolicited)", |_| {
                unsolicited.clone()
            })
            .hot(Hot::Same),
            // XDP forwards nothing: what it does not drop, it passes to tc
            // as it came, a published port's packet as a miss.
            case(
                Run::Xdp("xdp_from_uplink"),
                "published port (passes to tc)",
                |_| ack_in.clone(),
            )
            .hot(Hot::Same),
            case(Run::Xdp("xdp_from_uplink"), "miss (passes to tc)", |_| {
                miss.clone()
            })
            .hot(Hot::Same),
            case(Run::Xdp("xdp_from_uplink"), "drop (unsolicited)", |_| {
                unsolicited.clone()
            })
            .hot(Hot::Same),
            // The container's answer.
            case(
                Run::Tc("tc_from_container"),
                "established (reverse DNAT)",
                |_| answer.clone(),
            ),
            case(Run::Tc("tc_from_container"), "established (SNAT)", |_| {
                ack_out.clone()
            }),
            case(
                Run::Tc("tc_from_container"),
                "new flow out (policy)",
                |_| packet::tcp_syn4(sa(BACKEND, 40000), sa(CLIENT, 80), 1),
            )
            .hot(Hot::Same),
            // Masquerade.
            case(Run::Tc("tc_to_uplink"), "new flow (SNAT)", |i| {
                packet::tcp_syn4(sa(BACKEND, port(i + 1)), sa(CLIENT, 443), 1)
            }),
            case(Run::Tc("tc_to_uplink"), "established (SNAT)", |_| {
                ack_out.clone()
            })
            .hot(Hot::Loop(snat_loop)),
            case(
                Run::Tc("tc_to_uplink"),
                "translated on the veth (passes)",
                |_| packet::tcp_ack4(sa(NODE, 5555), sa(CLIENT, 443), 2, 2, false),
            )
            .hot(Hot::Same),
        ]);
        cases.extend(six::cases(&ack_in6, &answer6, &ack_out6));
        cases.extend(floor_cases(&floors, &ack_in));
        let costs = rounds(&mut h, &cases, runs);
        let sizes = sizes(&mut h);
        Costs { runs, costs, sizes }
    })
}

/// The floor's programs ([`super::floor`]).
struct Floors {
    empty: Floor,
    one_helper: Floor,
    lru_lookup: Floor,
    lru_insert: Floor,
}

impl Floors {
    fn load() -> Self {
        Self {
            empty: Floor::empty().expect("a program that only returns"),
            one_helper: Floor::one_helper().expect("a program with one helper call"),
            lru_lookup: Floor::lru_lookup().expect("a program that looks up an LRU hash"),
            lru_insert: Floor::lru_insert().expect("a program that inserts into an LRU hash"),
        }
    }
}

/// What any program, a helper call, and a lookup and an insert of
/// `CT4`'s kind cost by this measure (each on `frame`, which they ignore).
fn floor_cases<'a>(f: &'a Floors, frame: &'a [u8]) -> [Case<'a>; 4] {
    [
        (&f.empty, "(floor) a program that only returns", Hot::Same),
        (&f.one_helper, "(floor) one helper call", Hot::Same),
        (
            &f.lru_lookup,
            "(floor) a CT4-sized LRU lookup, hit",
            Hot::Same,
        ),
        (
            &f.lru_insert,
            "(floor) a CT4-sized LRU insert, new key (and a random word)",
            // Every run inserts: repeated, it would fill the table.
            Hot::No,
        ),
    ]
    .map(|(floor, packet, hot)| case(Run::Floor(floor), packet, move |_| frame.to_vec()).hot(hot))
}

/// The three flows the cases use, started and checked: a published
/// port's request and its answer, a masqueraded flow's packet.
fn flows(h: &mut Harness) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ack_in = packet::tcp_ack4(sa(CLIENT, port(0)), sa(NODE, 8080), 2, 2, false);
    assert_eq!(view(&rewritten(h, "tc_from_uplink", &ack_in)).dst, BACKEND);
    let answer = packet::tcp_ack4(sa(BACKEND, 80), sa(CLIENT, port(0)), 2, 3, false);
    assert_eq!(view(&rewritten(h, "tc_from_container", &answer)).src, NODE);
    let ack_out = packet::tcp_ack4(sa(BACKEND, port(0)), sa(CLIENT, 443), 2, 2, false);
    // The masqueraded flow starts here; the new flows' ports differ.
    assert_eq!(view(&rewritten(h, "tc_to_uplink", &ack_out)).src, SNAT_IP);
    (ack_in, answer, ack_out)
}

/// `--trace` at `tc_from_uplink`: on for another address (more than off
/// does: the same `CONFIG` read, then the headers matched), and for this
/// packet's (its record, by tail call); on the `miss` frame.
fn traced<'a>(records: &'a RefCell<Records>, miss: &'a [u8]) -> [Case<'a>; 2] {
    [
        case(
            Run::Traced("tc_from_uplink", Ipv4Addr::new(192, 0, 2, 99), records),
            "miss, trace on (another address)",
            move |_| miss.to_vec(),
        )
        .hot(Hot::Same),
        case(
            Run::Traced("tc_from_uplink", CLIENT, records),
            "miss, traced (its record)",
            move |_| miss.to_vec(),
        )
        .hot(Hot::Same),
    ]
}

/// The datapath with one network, a container, an uplink and a port
/// published to the container.
fn harness() -> Harness {
    let mut h = Harness::with_one_network();
    let dp = &mut h.datapath;
    dp.configure((1024, 32767)).expect("CONFIG");
    dp.set_uplinks(&[(TEST_IFINDEX, SNAT_IP)]).expect("UPLINKS");
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
    h.network(
        Ipv4Addr::new(10, 89, 0, 0),
        16,
        net_info(2, SNAT_IP, DEFAULT_FLAGS),
    );
    h.container(BACKEND, 1);
    h
}
/// Every case `runs` times in [`ROUNDS`] rounds, each round through all
/// cases (against drift between them), cold and, where it can be, hot;
/// each figure is the median of its rounds' means.
fn rounds(h: &mut Harness, cases: &[Case], runs: u32) -> Vec<Cost> {
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

/// Makes every run of a `repeat` on `frame`, a packet of a tracked flow,
/// a hit: the tuple its entry rewrites it to gets an entry of its own,
/// rewriting it on to `via` (a destination address and port), and `via`
/// one rewriting it back to that tuple; without `via`, back to `frame`'s
/// own tuple, which the real entry rewrites. Each is a copy of the real
/// entry but for the tuple it rewrites to. Returns the loop's keys.
fn loop_flow(h: &mut Harness, frame: &[u8], via: Option<(Ipv4Addr, u16)>) -> Vec<CtKey> {
    let mut ct: HashMap<_, CtKey, CtEntry> =
        HashMap::try_from(h.datapath.ebpf_mut().map_mut(map_names::CT4).expect("CT4"))
            .expect("a hash map");
    let v = view(frame);
    let key = CtKey::new(
        v.src.octets(),
        v.dst.octets(),
        v.sport.to_be_bytes(),
        v.dport.to_be_bytes(),
        PROTO_TCP,
    );
    let real = ct.get(&key, 0).expect("the flow is tracked");
    let to = |k: &CtKey| CtEntry {
        nat_saddr: k.saddr,
        nat_daddr: k.daddr,
        nat_sport: k.sport,
        nat_dport: k.dport,
        ..real
    };
    let out = CtKey::new(
        real.nat_saddr,
        real.nat_daddr,
        real.nat_sport,
        real.nat_dport,
        PROTO_TCP,
    );
    let mut keys = vec![key, out];
    match via {
        None => ct.insert(out, to(&key), 0).expect("CT4"),
        Some((ip, port)) => {
            let via = CtKey::new(
                out.saddr,
                ip.octets(),
                out.sport,
                port.to_be_bytes(),
                PROTO_TCP,
            );
            ct.insert(out, to(&via), 0).expect("CT4");
            ct.insert(via, to(&out), 0).expect("CT4");
            keys.push(via);
        }
    }
    keys
}

/// The packets counted so far in these `CT4` entries.
fn packets(h: &mut Harness, keys: &[CtKey]) -> u64 {
    let ct: HashMap<_, CtKey, CtEntry> =
        HashMap::try_from(h.datapath.ebpf_mut().map(map_names::CT4).expect("CT4"))
            .expect("a hash map");
    keys.iter()
        .map(|k| ct.get(k, 0).expect("a loop entry").packets)
        .sum()
}

/// The index of [`node_ns6`]'s uplink `up0`, in the calling thread's
/// namespace.
fn up0() -> u32 {
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c"up0".as_ptr()) };
    assert_ne!(index, 0, "no up0");
    index
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

/// The trace's records, read and dropped.
type Records = aya_log::EbpfLogger<Discard>;

struct Discard;

impl log::Log for Discard {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {}
    fn flush(&self) {}
}

/// What runs a case: a program of the datapath, or one of the floor's.
enum Run<'a> {
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
struct Case<'a> {
    run: Run<'a>,
    packet: &'static str,
    frame: Box<dyn Fn(u32) -> Vec<u8> + 'a>,
    hot: Hot,
}

/// Whether a case has a hot figure, and how its runs stay that case.
#[derive(PartialEq, Eq)]
enum Hot {
    /// No: a run makes the next one another case.
    No,
    /// The program's output is the same case again.
    Same,
    /// An established flow looped by [`loop_flow`]: these entries' packet
    /// counts must grow by one a run.
    Loop(Vec<CtKey>),
}

fn case<'a>(run: Run<'a>, packet: &'static str, frame: impl Fn(u32) -> Vec<u8> + 'a) -> Case<'a> {
    Case {
        run,
        packet,
        frame: Box::new(frame),
        hot: Hot::No,
    }
}

impl Case<'_> {
    fn hot(self, hot: Hot) -> Self {
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

/// Each program's size after the verifier and the JIT.
fn sizes(h: &mut Harness) -> Vec<Size> {
    PROGRAMS
        .iter()
        .map(|&program| {
            let i = info(h, program);
            Size {
                program,
                instructions: i.size_translated().unwrap_or(0) / 8,
                jited_bytes: i.size_jitted(),
            }
        })
        .collect()
}

fn info(h: &mut Harness, program: &str) -> ProgramInfo {
    if program.starts_with("xdp_") {
        h.xdp_program(program).info()
    } else {
        h.tc_program(program).info()
    }
    .expect("the program's info")
}
