//! End-to-end: crash consistency. A storm of API calls (network create
//! and rm, attach, detach, publish, unpublish, `weir run`; some refused
//! on purpose) runs against a real agent that is killed with SIGKILL at a random
//! moment, then restarted, round after round from a fixed seed. After
//! each restart the state, the kernel and the maps must agree: every call
//! answered with success is there, every refused one changed nothing, the
//! one cut off by the kill is all there or not at all; no bridge, veth,
//! container interface, `ENDPOINTS` or `PUBLISH4` entry, reserved port or
//! `weir run` namespace without its object, none missing.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use rand::{Rng, RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use weir::api::types::{Endpoint, NetworkView};
use weir_tests::{
    Netns, World,
    agent::{Agent, weir_bin},
};

const CONTAINERS: usize = 4;
const NETWORKS: usize = 3;
const PORTS: [u16; 6] = [8001, 8002, 8003, 8004, 8005, 8006];
const ROUNDS: usize = 16;

#[derive(Clone, Copy, Debug)]
enum Op {
    Create(usize),
    Remove(usize),
    Attach(usize, usize),
    Detach(usize),
    Publish(usize, u16),
    Unpublish(usize, u16),
    /// `weir run` on a network: attached, `true` run, detached.
    Run(usize, usize),
}

/// What the calls answered with success made: networks, endpoints (on
/// which network), published host ports per endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    nets: BTreeSet<usize>,
    eps: BTreeMap<usize, usize>,
    ports: BTreeMap<usize, BTreeSet<u16>>,
}

impl Model {
    /// The model after `op` succeeded.
    fn after(&self, op: Op) -> Model {
        let mut m = self.clone();
        match op {
            Op::Create(n) => {
                m.nets.insert(n);
            }
            Op::Remove(n) => {
                m.nets.remove(&n);
            }
            Op::Attach(c, n) => {
                m.eps.insert(c, n);
                m.ports.insert(c, BTreeSet::new());
            }
            Op::Detach(c) => {
                m.eps.remove(&c);
                m.ports.remove(&c);
            }
            Op::Publish(c, p) => {
                m.ports.entry(c).or_default().insert(p);
            }
            Op::Unpublish(c, p) => {
                m.ports.entry(c).or_default().remove(&p);
            }
            // Gone again when it ends, answered or cut off.
            Op::Run(..) => {}
        }
        m
    }
}

/// The `weir` arguments of `op`.
fn args(op: Op, containers: &[PathBuf]) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    match op {
        Op::Create(n) => s(&[
            "network",
            "create",
            &format!("n{n}"),
            "--subnet",
            &format!("10.{}.0.0/24", 120 + n),
        ]),
        Op::Remove(n) => s(&["network", "rm", &format!("n{n}")]),
        Op::Attach(c, n) => s(&[
            "attach",
            &format!("n{n}"),
            "--netns",
            containers[c].to_str().unwrap(),
            "--name",
            &format!("e{c}"),
        ]),
        Op::Detach(c) => s(&["detach", &format!("e{c}")]),
        Op::Publish(c, p) => s(&["publish", &format!("e{c}"), &format!("{p}:80")]),
        Op::Unpublish(c, p) => s(&["unpublish", &format!("e{c}"), &format!("{p}:80")]),
        Op::Run(c, n) => s(&[
            "run",
            "--network",
            &format!("n{n}"),
            "--name",
            &format!("r{c}"),
            "--",
            "true",
        ]),
    }
}

/// A call likely to succeed most of the time, sometimes one the agent
/// must refuse (a network in use, a port taken, an endpoint missing).
fn pick(m: &Model, rng: &mut impl Rng) -> Op {
    let c = rng.random_range(0..CONTAINERS);
    let n = rng.random_range(0..NETWORKS);
    let p = PORTS[rng.random_range(0..PORTS.len())];
    match rng.random_range(0..10) {
        0 | 1 if !m.nets.contains(&n) => Op::Create(n),
        0 => Op::Remove(n),
        1..=3 if !m.eps.contains_key(&c) && !m.nets.is_empty() => {
            let nets: Vec<_> = m.nets.iter().copied().collect();
            Op::Attach(c, nets[rng.random_range(0..nets.len())])
        }
        1..=3 => Op::Detach(c),
        4..=6 => Op::Publish(c, p),
        7 => Op::Unpublish(c, p),
        8 if !m.nets.is_empty() => {
            let nets: Vec<_> = m.nets.iter().copied().collect();
            Op::Run(c, nets[rng.random_range(0..nets.len())])
        }
        _ => Op::Create(n),
    }
}

/// How a call ended.
enum Answer {
    Done,
    Refused,
    /// Cut off: the agent died before it answered.
    Cut,
}

fn call(socket: &std::path::Path, args: &[String]) -> Answer {
    let out = Command::new(weir_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Answer::Done
    } else if err.contains("cannot reach the weir agent") || err.contains("talking to the agent") {
        Answer::Cut
    } else {
        Answer::Refused
    }
}

/// What the agent says it has, in the model's terms.
fn actual(agent: &Agent) -> Model {
    let nets: Vec<NetworkView> =
        serde_json::from_str(&agent.ok(&["network", "ls", "--json"])).unwrap();
    let eps: Vec<Endpoint> = serde_json::from_str(&agent.ok(&["ps", "--json"])).unwrap();
    let index = |s: &str, prefix: char| s.strip_prefix(prefix).and_then(|n| n.parse().ok());
    let mut m = Model {
        nets: nets
            .iter()
            .filter_map(|n| index(&n.network.name, 'n'))
            .collect(),
        ..Model::default()
    };
    for e in &eps {
        assert!(
            !e.name.starts_with('r'),
            "`weir run`'s endpoint {} outlived its run",
            e.name
        );
        let c = index(&e.name, 'e').expect("an endpoint of the storm's");
        m.eps
            .insert(c, index(&e.network, 'n').expect("a storm network"));
        m.ports
            .insert(c, e.ports.iter().map(|p| p.host_port).collect());
    }
    m
}

/// The node's links: name -> ifindex.
fn links(ns: &Netns) -> BTreeMap<String, u32> {
    let out = ns.ip(&["-o", "link"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(": ");
            let index = f.next()?.parse().ok()?;
            let name = f.next()?.split('@').next()?.to_owned();
            Some((name, index))
        })
        .collect()
}

/// The keys of a pinned hash map, as bpftool prints them.
fn map_keys(agent: &Agent, map: &str) -> Vec<Vec<u8>> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(agent.bpffs.join("maps").join(map))
        .output()
        .unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    entries
        .iter()
        .map(|e| {
            e["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
                })
                .collect()
        })
        .collect()
}

/// The kernel and the maps agree with what the agent says it has.
fn agrees(w: &World, agent: &Agent, m: &Model) -> Result<(), String> {
    let eps: Vec<Endpoint> = serde_json::from_str(&agent.ok(&["ps", "--json"])).unwrap();
    let nets: Vec<NetworkView> =
        serde_json::from_str(&agent.ok(&["network", "ls", "--json"])).unwrap();
    let node = links(&w.node);
    let bridges: BTreeSet<&str> = nets.iter().map(|n| n.network.bridge.as_str()).collect();
    for name in node.keys() {
        let is_bridge = name
            .strip_prefix("weir")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_bridge && !bridges.contains(name.as_str()) {
            return Err(format!("bridge {name} of no network"));
        }
        if name.starts_with("weirv") && !eps.iter().any(|e| &e.host_if == name) {
            return Err(format!("veth {name} of no endpoint"));
        }
    }
    let binds = agent.socket.parent().unwrap().join("netns");
    if let Some(left) = std::fs::read_dir(&binds).ok().and_then(|mut d| d.next()) {
        return Err(format!("`weir run` left a namespace: {left:?}"));
    }
    if let Some(b) = bridges.iter().find(|b| !node.contains_key(**b)) {
        return Err(format!("network bridge {b} missing"));
    }
    let mut ifindexes = BTreeSet::new();
    for e in &eps {
        let i = node
            .get(&e.host_if)
            .ok_or(format!("{}'s veth {} missing", e.name, e.host_if))?;
        ifindexes.insert(*i);
    }
    for c in 0..CONTAINERS {
        let has = links(w.c(&format!("c{c}"))).contains_key("eth0");
        if has != m.eps.contains_key(&c) {
            return Err(format!(
                "c{c} has eth0: {has}, endpoint: {}",
                m.eps.contains_key(&c)
            ));
        }
    }
    let in_map: BTreeSet<u32> = map_keys(agent, "ENDPOINTS")
        .iter()
        .map(|k| u32::from_le_bytes(k[..4].try_into().unwrap()))
        .collect();
    if in_map != ifindexes {
        return Err(format!(
            "ENDPOINTS {in_map:?}, endpoints' veths {ifindexes:?}"
        ));
    }
    let published: BTreeSet<u16> = m.ports.values().flatten().copied().collect();
    let keys: BTreeSet<u16> = map_keys(agent, "PUBLISH4")
        .iter()
        .map(|k| u16::from_be_bytes([k[4], k[5]]))
        .collect();
    if keys != published {
        return Err(format!("PUBLISH4 {keys:?}, published {published:?}"));
    }
    for p in PORTS {
        // A published port's socket is held; no other is.
        let free = w
            .node
            .run(|| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok());
        if free == published.contains(&p) {
            return Err(format!(
                "port {p}: free {free}, published {}",
                published.contains(&p)
            ));
        }
    }
    Ok(())
}

#[test]
fn killed_at_random_moments_the_agent_comes_back_consistent() {
    let mut w = World::new().unwrap();
    let mut containers = Vec::new();
    for c in 0..CONTAINERS {
        w.add_container(&format!("c{c}")).unwrap();
        containers.push(w.c(&format!("c{c}")).path());
    }
    let mut agent = Agent::start(&w, &["--no-default-network"]);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xc4a5);
    let mut model = Model::default();
    let (mut calls, mut cut, mut runs) = (0, 0, 0);
    for round in 0..ROUNDS {
        let ops: Vec<Op> = {
            // The storm's calls, picked ahead from the model as it would
            // be if all succeeded; refusals keep it honest.
            let mut m = model.clone();
            let mut ops: Vec<Op> = (0..40)
                .map(|_| {
                    let op = pick(&m, &mut rng);
                    m = m.after(op);
                    op
                })
                .collect();
            // A `weir run` first in every storm that has a network to run
            // on: picked at random among 40 calls, one may never get its
            // turn before the kill on a fast or a slow machine alike (a run
            // changes no model, so the rest is as picked).
            if let Some(&n) = model.nets.iter().next() {
                ops.insert(0, Op::Run(rng.random_range(0..CONTAINERS), n));
            }
            ops
        };
        let socket = agent.socket.clone();
        let cs = containers.clone();
        let storm = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for op in ops {
                let a = call(&socket, &args(op, &cs));
                let stop = matches!(a, Answer::Cut);
                answers.push((op, a));
                if stop {
                    break;
                }
            }
            answers
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(10..400)));
        agent.kill();
        let answers = storm.join().unwrap();
        agent.restart();
        let now = actual(&agent);
        for (op, a) in &answers {
            calls += 1;
            match a {
                Answer::Done => {
                    runs += usize::from(matches!(op, Op::Run(..)));
                    model = model.after(*op);
                }
                Answer::Refused => {}
                Answer::Cut => {
                    cut += 1;
                    let done = model.after(*op);
                    assert!(
                        now == model || now == done,
                        "round {round}: {op:?} cut off left {now:?}, neither {model:?} nor {done:?}"
                    );
                    model = now.clone();
                }
            }
        }
        assert_eq!(
            now,
            model,
            "round {round}: after {answers:?}",
            answers = answers.iter().map(|(o, _)| o).collect::<Vec<_>>()
        );
        if let Err(e) = agrees(&w, &agent, &model) {
            panic!("round {round}: {e}\n{}", agent.log_text());
        }
    }
    eprintln!(
        "{ROUNDS} rounds, {calls} calls ({runs} `weir run`s done), {cut} cut off by the kill"
    );
    assert!(runs > 0, "no `weir run` got through");
    assert!(
        cut >= ROUNDS / 2,
        "the kills hit calls in flight only {cut} times"
    );
}
