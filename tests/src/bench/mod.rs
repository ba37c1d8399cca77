//! `cargo xtask bench`: the same topology four ways, measured in one run,
//! interleaved, several rounds, medians.
//!
//! - A, no NAT: `ext` routes straight to the container's address over the
//!   same bridge and veth;
//! - B, iptables: the rules Docker writes, replayed with `iptables-restore`;
//! - B2, nftables: the same job with one map for the published ports;
//! - C, weir;
//!
//! each dual stack, measured over IPv4 and (request/response, new
//! connections in and out) over IPv6 against ip6tables' and nftables'
//! NAT66;
//!
//! and, apart, the comparison Docker users make ([`docker_bed`]): D, real
//! dockerd with its defaults (its own iptables rules and `docker-proxy`),
//! against E, dockerd with `iptables=false` and `weir agent --docker`.
//!
//! and, apart, a Kubernetes cluster ([`cluster_bed`]): R, two nodes with
//! the reference CNI plugins and kube-proxy's rules, against K, the same
//! nodes with weir in cluster mode.
//!
//! [`bed`] builds a world per setup, [`netfilter`] writes B's and B2's
//! rules, [`load`] is the traffic, [`testrun`] times the programs one
//! packet at a time, [`report`] prints the table and writes JSON and SVG.

pub mod bed;
pub mod cluster_bed;
pub mod docker_bed;
pub mod flood;
pub mod floor;
pub mod load;
pub mod netfilter;
pub mod profile;
pub mod report;
pub mod share;
pub mod startup;
pub mod testrun;

use std::{collections::BTreeMap, io};

use bed::Bed;

/// One way of wiring the same topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Setup {
    NoNat,
    Iptables,
    Nftables,
    Weir,
    /// weir with `--xdp native` (the flood comparison).
    WeirXdp,
    DockerOwn,
    DockerWeir,
    /// Kubernetes nodes with the reference CNI plugins.
    ClusterReference,
    /// Kubernetes nodes with weir in cluster mode.
    ClusterWeir,
}

impl Setup {
    /// The setups of the main comparison.
    pub const ALL: [Setup; 4] = [Setup::NoNat, Setup::Iptables, Setup::Nftables, Setup::Weir];
    /// The setups of the comparison under real dockerd.
    pub const DOCKER: [Setup; 2] = [Setup::DockerOwn, Setup::DockerWeir];

    /// The column name: A, B, B2, C.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Setup::NoNat => "A",
            Setup::Iptables => "B",
            Setup::Nftables => "B2",
            Setup::Weir => "C",
            Setup::WeirXdp => "X",
            Setup::DockerOwn => "D",
            Setup::DockerWeir => "E",
            Setup::ClusterReference => "R",
            Setup::ClusterWeir => "K",
        }
    }

    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Setup::NoNat => "A no NAT (routed to the container)",
            Setup::Iptables => "B iptables (Docker's rules, iptables-restore)",
            Setup::Nftables => "B2 nftables (one map for the published ports)",
            Setup::Weir => "C weir",
            Setup::WeirXdp => "X weir with XDP on the uplink (--xdp native)",
            Setup::DockerOwn => {
                "D Docker with its own rules (dockerd defaults: iptables, docker-proxy)"
            }
            Setup::DockerWeir => {
                "E Docker with weir (iptables=false, userland-proxy=false, weir agent --docker)"
            }
            Setup::ClusterReference => {
                "R the reference CNI plugins (bridge, host-local, portmap), host-gw routes, kube-proxy's iptables rules"
            }
            Setup::ClusterWeir => {
                "K weir in cluster mode (weir-cni's agent: --cluster-cidr, --node-cidr, --service-cidr, the node list), kube-proxy's iptables rules"
            }
        }
    }
}

/// What to run.
#[derive(Clone, Debug, serde::Serialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one switch per part of the bench, as its command line has"
)]
pub struct Options {
    pub rounds: u32,
    pub secs: f64,
    /// Client threads of the new-connection tests.
    pub crr_workers: usize,
    /// Other ports published in the scale runs.
    pub scale: Vec<u16>,
    pub scale_rounds: u32,
    /// Single runs per case in the per-packet measurements.
    pub testrun_runs: u32,
    /// Also the comparison under real dockerd (D and E).
    pub docker: bool,
    /// Also the flood comparison (X, C, B, B2).
    pub flood: bool,
    /// Also the cluster comparison (R and K).
    pub cluster: bool,
    /// The main comparison, its scale runs and the per-packet costs
    /// (`--only-flood` leaves them out).
    pub main: bool,
    /// Also the agent's start and memory at scale: endpoints, ports each
    /// (`--no-startup` leaves it out).
    pub startup: Option<(usize, usize)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 9,
            secs: 2.0,
            crr_workers: 2,
            scale: vec![1, 1000, 10_000],
            scale_rounds: 5,
            testrun_runs: 2000,
            docker: true,
            flood: true,
            cluster: true,
            main: true,
            startup: Some((1000, 10)),
        }
    }
}

/// Whether a bigger figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Better {
    Higher,
    Lower,
}

/// One figure, measured for some setups in every round.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Metric {
    pub id: String,
    pub title: String,
    pub unit: &'static str,
    pub better: Better,
    /// Every round's value, by setup key.
    pub samples: BTreeMap<&'static str, Vec<f64>>,
    /// Failed transactions or connections, by setup key (should be 0).
    pub errors: BTreeMap<&'static str, u64>,
}

impl Metric {
    pub(crate) fn new(id: &str, title: &str, unit: &'static str, better: Better) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            unit,
            better,
            samples: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, setup: Setup, value: f64, errors: u64) {
        self.samples.entry(setup.key()).or_default().push(value);
        *self.errors.entry(setup.key()).or_default() += errors;
    }

    /// The median of a setup's samples.
    #[must_use]
    pub fn median(&self, key: &str) -> Option<f64> {
        median(&mut self.samples.get(key)?.clone())
    }

    /// C against `other`, so that above 1 means weir is ahead: C/X for
    /// rates, X/C for times and costs. The median of the rounds' own
    /// ratios (each round measures every setup within seconds, so the
    /// machine's drift between rounds cancels); the ratio of the medians
    /// when the setups have not the same number of rounds.
    #[must_use]
    pub fn ratio(&self, other: &str) -> Option<f64> {
        self.ratio_of("C", other)
    }

    /// Setup `ours` against `other`, as [`Metric::ratio`] does for C.
    #[must_use]
    pub fn ratio_of(&self, ours: &str, other: &str) -> Option<f64> {
        let (cs, xs) = (self.samples.get(ours)?, self.samples.get(other)?);
        let of = |c: f64, x: f64| match self.better {
            Better::Higher => c / x,
            Better::Lower => x / c,
        };
        let r = if cs.len() == xs.len() {
            let mut each: Vec<f64> = cs.iter().zip(xs).map(|(&c, &x)| of(c, x)).collect();
            median(&mut each)?
        } else {
            of(self.median(ours)?, self.median(other)?)
        };
        r.is_finite().then_some(r)
    }
}

/// The median of `v` (sorted in place); `None` when it is empty.
#[must_use]
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    })
}

/// Everything one run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Results {
    pub machine: BTreeMap<&'static str, String>,
    pub options: Options,
    pub setups: Vec<(&'static str, &'static str)>,
    pub metrics: Vec<Metric>,
    /// D against E (empty when not run).
    pub docker_setups: Vec<(&'static str, &'static str)>,
    pub docker: Vec<Metric>,
    /// The flood (empty when not run).
    pub flood_setups: Vec<(&'static str, &'static str)>,
    pub flood: Vec<Metric>,
    /// R against K (empty when not run).
    pub cluster_setups: Vec<(&'static str, &'static str)>,
    pub cluster: Vec<Metric>,
    pub testrun: testrun::Costs,
    /// The programs' share of C's connections (empty when not run).
    pub share: Vec<share::Share>,
    /// The agent at scale (none when not run).
    pub startup: Option<startup::Startup>,
}

/// Runs the whole benchmark, printing progress on stderr.
pub fn run(opts: &Options) -> io::Result<Results> {
    let machine = report::machine();
    let (metrics, share, testrun) = if opts.main {
        main_rounds(opts)?
    } else {
        (Vec::new(), Vec::new(), testrun::Costs::default())
    };
    let docker = if opts.docker {
        docker_rounds(opts)?
    } else {
        Vec::new()
    };
    let flood = if opts.flood {
        flood::rounds(opts)?
    } else {
        Vec::new()
    };
    let cluster = if opts.cluster {
        cluster_bed::rounds(opts)?
    } else {
        Vec::new()
    };
    let startup = match opts.startup {
        Some((endpoints, ports)) => Some(startup::measure(endpoints, ports, 3)?),
        None => None,
    };
    Ok(Results {
        machine,
        options: opts.clone(),
        setups: Setup::ALL.iter().map(|s| (s.key(), s.label())).collect(),
        metrics,
        docker_setups: Setup::DOCKER.iter().map(|s| (s.key(), s.label())).collect(),
        docker,
        flood_setups: flood::SETUPS.iter().map(|s| (s.key(), s.label())).collect(),
        flood,
        cluster_setups: cluster_bed::SETUPS
            .iter()
            .map(|s| (s.key(), s.label()))
            .collect(),
        cluster,
        testrun,
        share,
        startup,
    })
}

/// A, B, B2 and C, round by round, then the programs' share of C's
/// connections, then at each scale, then the programs' per-packet costs.
fn main_rounds(opts: &Options) -> io::Result<(Vec<Metric>, Vec<share::Share>, testrun::Costs)> {
    eprintln!("bench: building the four worlds");
    let mut beds = Setup::ALL
        .iter()
        .map(|&s| Bed::new(s))
        .collect::<io::Result<Vec<_>>>()?;
    for b in &beds {
        check(b)?;
    }
    let mut m = main_metrics();
    for round in 0..opts.rounds {
        eprintln!("bench: round {}/{}", round + 1, opts.rounds);
        for i in 0..beds.len() {
            // A different order each round, so no setup always goes first.
            let bed = &beds[(i + round as usize) % beds.len()];
            measure_round(bed, opts, &mut m);
        }
    }
    eprintln!("bench: the programs' share of C's connections");
    let c = beds
        .iter()
        .find(|b| b.setup == Setup::Weir)
        .expect("C is among the setups");
    let progs = c.pinned_programs().expect("C has an agent");
    let shares = share::measure(c, &progs, opts)?;
    let mut scale = Vec::new();
    for &n in &opts.scale {
        eprintln!("bench: {n} other ports published");
        let mut crr = Metric::new(
            &format!("scale_crr_{n}"),
            &format!("new conn/s, published port, {n} other ports"),
            "conn/s",
            Better::Higher,
        );
        let mut publish = Metric::new(
            &format!("scale_publish_{n}"),
            &format!("publish one more port, {n} published"),
            "ms",
            Better::Lower,
        );
        for bed in beds.iter_mut().filter(|b| b.setup != Setup::NoNat) {
            bed.grow_to(n)?;
        }
        for round in 0..opts.scale_rounds {
            for i in 0..beds.len() {
                let bed = &beds[(i + round as usize) % beds.len()];
                // A has nothing to publish; its rate at each size is the
                // yardstick for the machine's drift between sizes.
                let r = load::crr(bed.ext(), bed.echo_target(), opts.secs, opts.crr_workers);
                crr.add(bed.setup, r.per_sec, r.errors);
                if bed.setup == Setup::NoNat {
                    continue;
                }
                let took = bed.publish_one_more(31_000 + u16::try_from(round).unwrap_or(0))?;
                publish.add(bed.setup, took.as_secs_f64() * 1e3, 0);
            }
        }
        scale.push(crr);
        scale.push(publish);
    }
    m.extend(scale);
    drop(beds);
    eprintln!("bench: per-packet cost ({} runs a case)", opts.testrun_runs);
    Ok((m, shares, testrun::measure(opts.testrun_runs)))
}

/// D and E, interleaved round by round like the main setups: request and
/// response and new connections through the published port, new
/// connections out of the container.
fn docker_rounds(opts: &Options) -> io::Result<Vec<Metric>> {
    eprintln!("bench: building the two Docker worlds");
    let beds = Setup::DOCKER
        .iter()
        .map(|&s| docker_bed::DockerBed::new(s))
        .collect::<io::Result<Vec<_>>>()?;
    for b in &beds {
        let r = load::rr(b.ext(), docker_bed::DockerBed::echo_target(), 0.05, None);
        let o = load::rr(b.container(), Bed::out_target(), 0.05, None);
        if r.transactions == 0 || o.transactions == 0 {
            return Err(io::Error::other(format!("{}: no answer", b.setup.label())));
        }
    }
    let mut m = vec![
        Metric::new(
            "docker_rr_tps",
            "1-byte TCP_RR via the published port",
            "trans/s",
            Better::Higher,
        ),
        Metric::new("docker_rr_p99", "TCP_RR latency p99", "us", Better::Lower),
        Metric::new(
            "docker_crr_in",
            "TCP_CRR via the published port",
            "conn/s",
            Better::Higher,
        ),
        Metric::new(
            "docker_crr_out",
            "TCP_CRR out of the container",
            "conn/s",
            Better::Higher,
        ),
        Metric::new(
            "docker_crr_in_cpu",
            "kernel CPU per connection via the published port",
            "us",
            Better::Lower,
        ),
        Metric::new(
            "docker_crr_out_cpu",
            "kernel CPU per connection out of the container",
            "us",
            Better::Lower,
        ),
    ];
    for round in 0..opts.rounds {
        eprintln!("bench: Docker round {}/{}", round + 1, opts.rounds);
        for i in 0..beds.len() {
            let b = &beds[(i + round as usize) % beds.len()];
            let s = b.setup;
            let (rr, crr, out) = connections(
                b.ext(),
                docker_bed::DockerBed::echo_target(),
                &b.echo,
                b.container(),
                Bed::out_target(),
                opts,
            );
            m[0].add(s, rr.per_sec, rr.errors);
            m[1].add(s, rr.p99_us, 0);
            m[2].add(s, crr.per_sec, crr.errors);
            m[3].add(s, out.per_sec, out.errors);
            m[4].add(s, crr.kernel_us, 0);
            m[5].add(s, out.kernel_us, 0);
        }
    }
    Ok(m)
}

/// The figures measured in every round, in the order [`measure_round`]
/// fills them.
fn main_metrics() -> Vec<Metric> {
    vec![
        Metric::new(
            "rr_tps",
            "1-byte TCP_RR via the published port",
            "trans/s",
            Better::Higher,
        ),
        Metric::new("rr_p50", "TCP_RR latency p50", "us", Better::Lower),
        Metric::new("rr_p99", "TCP_RR latency p99", "us", Better::Lower),
        Metric::new(
            "crr_in",
            "TCP_CRR via the published port",
            "conn/s",
            Better::Higher,
        ),
        Metric::new(
            "crr_out",
            "TCP_CRR out of the container (masquerade)",
            "conn/s",
            Better::Higher,
        ),
        Metric::new(
            "crr_in_cpu",
            "kernel CPU per connection via the published port",
            "us",
            Better::Lower,
        ),
        Metric::new(
            "crr_out_cpu",
            "kernel CPU per connection out of the container",
            "us",
            Better::Lower,
        ),
        Metric::new(
            "stream",
            "1 TCP stream via the published port",
            "Gbit/s",
            Better::Higher,
        ),
        Metric::new(
            "stream_cpu",
            "CPU per Gbit/s of that stream",
            "cores",
            Better::Lower,
        ),
        Metric::new(
            "rr6_tps",
            "IPv6: 1-byte TCP_RR via the published port",
            "trans/s",
            Better::Higher,
        ),
        Metric::new(
            "crr6_in",
            "IPv6: TCP_CRR via the published port",
            "conn/s",
            Better::Higher,
        ),
        Metric::new(
            "crr6_out",
            "IPv6: TCP_CRR out of the container (NAT66)",
            "conn/s",
            Better::Higher,
        ),
        Metric::new(
            "crr6_in_cpu",
            "IPv6: kernel CPU per connection via the published port",
            "us",
            Better::Lower,
        ),
        Metric::new(
            "crr6_out_cpu",
            "IPv6: kernel CPU per connection out of the container",
            "us",
            Better::Lower,
        ),
    ]
}

/// Where the single-connection tests run: request/response with client
/// and server on one CPU, so that a transaction's time is what the whole
/// path costs, without the cross-CPU wake-ups that dominate it and vary
/// from run to run; the stream with writer and reader on a CPU each.
pub(crate) const RR_CPU: usize = 0;
const STREAM_CPUS: (usize, usize) = (0, 1);

fn measure_round(bed: &Bed, opts: &Options, m: &mut [Metric]) {
    let s = bed.setup;
    let (rr, crr, out) = connections(
        bed.ext(),
        bed.echo_target(),
        &bed.echo,
        bed.container(),
        Bed::out_target(),
        opts,
    );
    m[0].add(s, rr.per_sec, rr.errors);
    m[1].add(s, rr.p50_us, 0);
    m[2].add(s, rr.p99_us, 0);
    m[3].add(s, crr.per_sec, crr.errors);
    m[4].add(s, out.per_sec, out.errors);
    m[5].add(s, crr.kernel_us, 0);
    m[6].add(s, out.kernel_us, 0);
    bed.sink.pin(Some(STREAM_CPUS.1));
    let st = load::stream(
        bed.ext(),
        bed.sink_target(),
        &bed.sink,
        opts.secs,
        Some(STREAM_CPUS.0),
    );
    m[7].add(s, st.gbit_per_sec, st.errors);
    m[8].add(s, st.cpu_per_gbit, 0);
    let (rr6, crr6, out6) = connections(
        bed.ext(),
        bed.echo_target6(),
        &bed.echo,
        bed.container(),
        Bed::out_target6(),
        opts,
    );
    m[9].add(s, rr6.per_sec, rr6.errors);
    m[10].add(s, crr6.per_sec, crr6.errors);
    m[11].add(s, out6.per_sec, out6.errors);
    m[12].add(s, crr6.kernel_us, 0);
    m[13].add(s, out6.kernel_us, 0);
}

/// One round's connection figures of a setup: request/response through
/// `echo_target` with client and server on [`RR_CPU`], new connections
/// through it, and new connections out of `container` to `out_target`
/// (ext's echo).
fn connections(
    ext: &crate::Netns,
    echo_target: impl Into<std::net::SocketAddr>,
    echo: &load::Server,
    container: &crate::Netns,
    out_target: impl Into<std::net::SocketAddr>,
    opts: &Options,
) -> (load::Rr, load::Crr, load::Crr) {
    let echo_target = echo_target.into();
    echo.pin(Some(RR_CPU));
    let rr = load::rr(ext, echo_target, opts.secs, Some(RR_CPU));
    echo.pin(None);
    let crr = load::crr(ext, echo_target, opts.secs, opts.crr_workers);
    let out = load::crr(container, out_target, opts.secs, opts.crr_workers);
    (rr, crr, out)
}

/// Every path a setup is measured on answers before anything is timed.
fn check(bed: &Bed) -> io::Result<()> {
    let probe = |ns, to: std::net::SocketAddr| {
        let r = load::rr(ns, to, 0.05, None);
        if r.transactions == 0 {
            return Err(io::Error::other(format!(
                "{}: no answer from {to}",
                bed.setup.label()
            )));
        }
        Ok(())
    };
    probe(bed.ext(), bed.echo_target().into())?;
    probe(bed.container(), Bed::out_target().into())?;
    probe(bed.ext(), bed.echo_target6())?;
    probe(bed.container(), Bed::out_target6())
}
