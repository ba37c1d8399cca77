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

use std::cell::RefCell;

use aya::{
    maps::HashMap,
    sys::{Stats, enable_stats},
};

use weir::datapath::map_names;
use weir_common::{
    ct::{CtEntry, CtKey},
    publish::{PROTO_TCP, PublishKey, PublishTarget},
};

use super::floor::Floor;
use crate::{
    packet::{self, view},
    prog::{DEFAULT_FLAGS, Harness, TC_ACT_SHOT, TEST_IFINDEX, net_info, node_ns6},
};

mod cases;
mod six;

use cases::{Case, Discard, Hot, Records, Run, case, info, rounds};

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
