//! The agent at scale: how long a start (load, reconcile, first API
//! answer) takes and how much memory the agent holds with 1,000 endpoints
//! and 10,000 published ports, against the same agent with none, measured
//! in the same run (`cargo xtask bench`; `--only-startup` runs this
//! alone). The targets are per endpoint over the empty agent's figures.

use std::{fmt::Write as _, io, process::Command, time::Duration};

use crate::{World, agent::Agent};

/// The targets: a start may take at most this much longer per endpoint
/// (with its ten ports) than an empty agent's ...
pub const TARGET_START_MS_PER_ENDPOINT: f64 = 10.0;
/// ... and the agent may hold at most this much more memory per endpoint.
pub const TARGET_KIB_PER_ENDPOINT: f64 = 100.0;

/// What was measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Startup {
    pub endpoints: usize,
    pub ports: usize,
    /// Medians of the starts, milliseconds.
    pub empty_start_ms: f64,
    pub start_ms: f64,
    /// Resident memory after a start, and the peak, KiB.
    pub empty_rss_kib: u64,
    pub rss_kib: u64,
    pub peak_kib: u64,
    /// How long making the endpoints and ports took, seconds.
    pub setup_secs: f64,
}

impl Startup {
    #[must_use]
    pub fn start_ms_per_endpoint(&self) -> f64 {
        (self.start_ms - self.empty_start_ms) / count(self.endpoints)
    }

    #[must_use]
    pub fn kib_per_endpoint(&self) -> f64 {
        (u64_f(self.rss_kib) - u64_f(self.empty_rss_kib)) / count(self.endpoints)
    }

    /// The figures and their targets, as Markdown.
    #[must_use]
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| measurement | empty agent | at scale | per endpoint | target |\n|---|--:|--:|--:|--:|\n",
        );
        let _ = writeln!(
            s,
            "| start to first API answer, ms | {:.0} | {:.0} | {:.2} ms | ≤ {TARGET_START_MS_PER_ENDPOINT} ms |",
            self.empty_start_ms,
            self.start_ms,
            self.start_ms_per_endpoint()
        );
        let _ = writeln!(
            s,
            "| resident memory after the start, KiB | {} | {} (peak {}) | {:.1} KiB | ≤ {TARGET_KIB_PER_ENDPOINT} KiB |",
            self.empty_rss_kib,
            self.rss_kib,
            self.peak_kib,
            self.kib_per_endpoint()
        );
        s
    }

    /// Whether both targets hold.
    #[must_use]
    pub fn meets_targets(&self) -> bool {
        self.start_ms_per_endpoint() <= TARGET_START_MS_PER_ENDPOINT
            && self.kib_per_endpoint() <= TARGET_KIB_PER_ENDPOINT
    }
}

fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

fn u64_f(v: u64) -> f64 {
    // Memory figures in KiB: far below 2^52.
    #[expect(clippy::cast_precision_loss, reason = "KiB figures")]
    let f = v as f64;
    f
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `rounds` starts of `agent`: the median time and the memory after the
/// last.
fn starts(agent: &mut Agent, rounds: u32) -> (f64, u64, u64) {
    let mut ms: Vec<f64> = (0..rounds)
        .map(|_| agent.restart_timed(Duration::from_mins(5)).as_secs_f64() * 1e3)
        .collect();
    let pid = agent.pid().expect("a running agent");
    (
        super::median(&mut ms).unwrap_or(0.0),
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:"),
    )
}

/// Measures an empty agent, then the same agent with `endpoints`
/// endpoints of `ports_per` published ports each.
pub fn measure(endpoints: usize, ports_per: usize, rounds: u32) -> io::Result<Startup> {
    let mut w = World::new()?;
    let mut agent = Agent::start(&w, &[]);
    let (empty_start_ms, empty_rss_kib, _) = starts(&mut agent, rounds);
    eprintln!("bench: startup: making {endpoints} endpoints, {ports_per} ports each");
    let t = std::time::Instant::now();
    for e in 0..endpoints {
        w.add_container(&format!("s{e}"))?;
        let netns = w.c(&format!("s{e}")).path();
        let mut cmd = Command::new(crate::agent::weir_bin());
        cmd.arg("--socket")
            .arg(&agent.socket)
            .args(["attach", "weir", "--netns"])
            .arg(&netns)
            .args(["--name", &format!("s{e}")]);
        let first = 20_000 + e * ports_per;
        let last = first + ports_per - 1;
        cmd.args(["-p", &format!("{first}-{last}:{first}-{last}")]);
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "attach s{e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    let setup_secs = t.elapsed().as_secs_f64();
    let (start_ms, rss_kib, peak_kib) = starts(&mut agent, rounds);
    Ok(Startup {
        endpoints,
        ports: endpoints * ports_per,
        empty_start_ms,
        start_ms,
        empty_rss_kib,
        rss_kib,
        peak_kib,
        setup_secs,
    })
}
