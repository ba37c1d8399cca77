//! The benchmark's output: the machine it ran on, a table with the ratios,
//! the results as JSON and a chart as SVG.

use std::{collections::BTreeMap, fmt::Write as _, fs, io, path::Path, process::Command};

use super::{Better, Metric, Results, Setup, testrun};

/// Kernel, CPU, cores, memory and the netfilter tools' versions.
#[must_use]
pub fn machine() -> BTreeMap<&'static str, String> {
    let first_line = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let mem_kb: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    BTreeMap::from([
        ("kernel", first_line("uname", &["-r"])),
        ("cpu", field("model name")),
        ("cores", cores.to_string()),
        ("memory", format!("{} GiB", mem_kb.div_ceil(1024 * 1024))),
        ("iptables", first_line("iptables", &["--version"])),
        ("nft", first_line("nft", &["--version"])),
        ("docker", first_line("dockerd", &["--version"])),
        ("date", first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
    ])
}

/// The results as a Markdown table (the README shows it as it is).
#[must_use]
pub fn table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| measurement | unit | A | B | B2 | C | C/A | C/B | C/B2 |\n|---|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    for m in &r.metrics {
        let cell = |k: &str| m.median(k).map_or("—".to_owned(), |v| number(v, m.unit));
        let ratio = |k: &str| m.ratio(k).map_or("—".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.title,
            m.unit,
            cell("A"),
            cell("B"),
            cell("B2"),
            cell("C"),
            ratio("A"),
            ratio("B"),
            ratio("B2"),
        );
    }
    s
}

/// Real dockerd with its own rules (D) against dockerd with weir (E).
#[must_use]
pub fn docker_table(r: &Results) -> String {
    pair_table(&r.docker, "D", "E")
}

/// Two setups' medians as a Markdown table, `ours` against `theirs`.
#[must_use]
pub(crate) fn pair_table(metrics: &[Metric], theirs: &str, ours: &str) -> String {
    let mut s = format!(
        "| measurement | unit | {theirs} | {ours} | {ours}/{theirs} |\n|---|---|--:|--:|--:|\n"
    );
    for m in metrics {
        let cell = |k: &str| m.median(k).map_or("—".to_owned(), |v| number(v, m.unit));
        let ratio = m
            .ratio_of(ours, theirs)
            .map_or("—".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {ratio} |",
            m.title,
            m.unit,
            cell(theirs),
            cell(ours)
        );
    }
    s
}

/// Per-packet costs as a Markdown table.
#[must_use]
pub fn testrun_table(r: &Results) -> String {
    let mut s = String::from("| program | packet | ns, cold | ns, hot |\n|---|---|--:|--:|\n");
    for c in &r.testrun.costs {
        let hot = c
            .hot_ns
            .map_or_else(|| "-".to_owned(), |ns| format!("{ns:.0}"));
        let _ = writeln!(s, "| `{}` | {} | {:.0} | {hot} |", c.program, c.case, c.ns);
    }
    s
}

/// Program sizes as a Markdown table.
#[must_use]
pub fn sizes_table(r: &Results) -> String {
    let mut s = String::from("| program | BPF instructions | JIT bytes |\n|---|--:|--:|\n");
    for p in &r.testrun.sizes {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} |",
            p.program, p.instructions, p.jited_bytes
        );
    }
    s
}

/// Errors seen by the load (failed transactions or connections).
#[must_use]
pub fn errors(r: &Results) -> Vec<String> {
    r.metrics
        .iter()
        .chain(&r.docker)
        .chain(&r.flood)
        .chain(&r.cluster)
        .flat_map(|m| {
            m.errors
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(move |(k, n)| format!("{}: {k} had {n} errors", m.title))
        })
        .collect()
}

/// The machine as every report names it: CPU, cores, memory, kernel,
/// the netfilter tools' versions, the date.
#[must_use]
pub fn machine_line(m: &BTreeMap<&'static str, String>) -> String {
    let get = |k: &str| m.get(k).map_or("", String::as_str);
    format!(
        "{}, {} cores, {}, Linux {}; {}; {}; {}",
        get("cpu"),
        get("cores"),
        get("memory"),
        get("kernel"),
        get("iptables"),
        get("nft"),
        get("date")
    )
}

/// The whole report as printed: machine, setups, tables, how to read them.
#[must_use]
pub fn text(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Machine: {}.\n", machine_line(&r.machine));
    let o = &r.options;
    if !r.metrics.is_empty() {
        for (k, label) in &r.setups {
            let _ = writeln!(
                s,
                "- {k}: {}",
                label.trim_start_matches(|c| c != ' ').trim()
            );
        }
        let _ = writeln!(
            s,
            "\nMedians of {} rounds of {} s each (scale: {} rounds), setups interleaved. \
             Load: the bench's own Rust clients and servers on blocking sockets \
             (`tests/src/bench/load.rs`); TCP_CRR with {} client threads. \
             Ratios above 1 mean weir is ahead: C/other for rates, other/C for times and CPU; \
             each is the median of the rounds' own ratios. At each scale A (nothing \
             published) is measured too: C/A across sizes shows C's slope without \
             the machine's drift between sizes.\n",
            o.rounds, o.secs, o.scale_rounds, o.crr_workers
        );
        s.push_str(&table(r));
        super::share::text(&mut s, r);
    }
    if !r.docker.is_empty() {
        let _ = writeln!(
            s,
            "\nUnder real dockerd ({}), the same container (`-p 8080:80` on Docker's \
             default network, the bench's echo server in its namespace), in two worlds \
             of their own, interleaved, {} rounds. Above 1 means Docker with weir is ahead:\n",
            r.machine.get("docker").map_or("", String::as_str),
            o.rounds
        );
        for k in ["D", "E"] {
            if let Some((_, label)) = r.docker_setups.iter().find(|(key, _)| *key == k) {
                let _ = writeln!(
                    s,
                    "- {k}: {}",
                    label.trim_start_matches(|c| c != ' ').trim()
                );
            }
        }
        s.push('\n');
        s.push_str(&docker_table(r));
    }
    if !r.flood.is_empty() {
        super::flood::text(&mut s, r);
    }
    if !r.cluster.is_empty() {
        super::cluster_bed::text(&mut s, r);
    }
    if !r.testrun.costs.is_empty() {
        let _ = writeln!(
            s,
            "\nPer packet, `BPF_PROG_TEST_RUN` on the real programs, the kernel's own \
             run time of the program, the median of {} rounds. Cold: {} single runs \
             a case, each on a fresh frame. Hot: `repeat` {} on one skb, the program \
             on its own output, each run still the same case (an established flow's \
             rewritten tuple is given an entry that rewrites it on, so every run is \
             a hit). The `-` rows are the floor: a program that only returns, one \
             that makes one helper call, and two on an LRU hash of `CT4`'s sizes, \
             one looking up a key that is there (a known flow's packet), one \
             inserting a new one (each new flow makes two such inserts, one per \
             direction):\n",
            testrun::ROUNDS,
            r.testrun.runs,
            testrun::HOT_REPEAT
        );
        s.push_str(&testrun_table(r));
        s.push('\n');
        s.push_str(&sizes_table(r));
    }
    if let Some(st) = &r.startup {
        s.push('\n');
        s.push_str(&startup_text(r, st));
    }
    let errs = errors(r);
    if !errs.is_empty() {
        s.push_str("\nErrors:\n");
        for e in errs {
            let _ = writeln!(s, "- {e}");
        }
    }
    s
}

pub(crate) fn number(v: f64, unit: &str) -> String {
    if matches!(unit, "trans/s" | "conn/s" | "pps" | "frames") {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Writes `results.json`, `results.md` and `chart.svg` into `dir`.
pub fn write(r: &Results, dir: &Path) -> io::Result<()> {
    write_startup(r, dir)?;
    let json = serde_json::to_string_pretty(r).map_err(io::Error::other)?;
    fs::write(dir.join("results.json"), json + "\n")?;
    fs::write(dir.join("results.md"), text(r))?;
    fs::write(dir.join("chart.svg"), svg(r))?;
    if !r.docker.is_empty() {
        fs::write(dir.join("docker.svg"), docker_svg(r))?;
    }
    Ok(())
}

/// The cluster row alone (`--only-cluster`): `cluster.json` and
/// `cluster.md`; the other results stay as the last full run wrote them.
pub fn write_cluster(r: &Results, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let part = serde_json::json!({
        "machine": r.machine,
        "options": r.options,
        "setups": r.cluster_setups,
        "metrics": r.cluster,
    });
    let json = serde_json::to_string_pretty(&part).map_err(io::Error::other)?;
    fs::write(dir.join("cluster.json"), json + "\n")?;
    let mut s = String::new();
    super::cluster_bed::text(&mut s, r);
    fs::write(dir.join("cluster.md"), s.trim_start())
}

/// The agent-at-scale figures alone: `startup.json` and `startup.md`.
pub fn write_startup(r: &Results, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let Some(st) = &r.startup else {
        return Ok(());
    };
    let json = serde_json::to_string_pretty(st).map_err(io::Error::other)?;
    fs::write(dir.join("startup.json"), json + "\n")?;
    fs::write(dir.join("startup.md"), startup_text(r, st))
}

/// The agent-at-scale section.
fn startup_text(r: &Results, st: &super::startup::Startup) -> String {
    format!(
        "Agent start and memory with {} endpoints and {} published ports against an empty agent, \
         same run ({}, {} cores; making them took {:.0} s); medians of 3 starts (kill, start, first API answer); \
         targets {}:\n\n{}",
        st.endpoints,
        st.ports,
        r.machine.get("cpu").map_or("", String::as_str),
        r.machine.get("cores").map_or("", String::as_str),
        st.setup_secs,
        if st.meets_targets() { "met" } else { "NOT met" },
        st.table()
    )
}

const COLORS: [(&str, &str); 4] = [
    ("A", "#9e9e9e"),
    ("B", "#d9822b"),
    ("B2", "#c23b22"),
    ("C", "#2b6cb0"),
];

/// Two panels: every rate and time relative to iptables (B = 1, higher
/// is better), and new connections per second against ports published.
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "a handful of bars and points")]
pub fn svg(results: &Results) -> String {
    let bars: Vec<&Metric> = results
        .metrics
        .iter()
        .filter(|m| !m.id.starts_with("scale_") && m.id != "rr_p99")
        .collect();
    let (width, height) = (900.0, 620.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"20\" y=\"24\" font-size=\"15\">weir vs iptables (B = 1.0, higher is better)</text>\n"
    );
    // Panel 1: grouped bars.
    let (x0, y0, ph) = (60.0, 50.0, 220.0);
    let relative = |m: &Metric, k: &str| -> Option<f64> {
        let (v, b) = (m.median(k)?, m.median("B")?);
        Some(match m.better {
            Better::Higher => v / b,
            Better::Lower => b / v,
        })
    };
    let top = bars
        .iter()
        .flat_map(|m| COLORS.iter().filter_map(|(k, _)| relative(m, k)))
        .fold(1.5_f64, f64::max)
        .ceil();
    axis(&mut s, x0, y0, ph, 820.0, top, "×");
    let group = 820.0 / bars.len().max(1) as f64;
    for (i, m) in bars.iter().enumerate() {
        let gx = x0 + group * i as f64;
        for (j, (k, color)) in COLORS.iter().enumerate() {
            let Some(v) = relative(m, k) else { continue };
            let bh = ph * v / top;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"/>",
                gx + 10.0 + j as f64 * (group - 20.0) / 4.0,
                y0 + ph - bh,
                (group - 20.0) / 4.0 - 2.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
            gx + group / 2.0,
            y0 + ph + 14.0,
            short(&m.id)
        );
    }
    legend(&mut s, 60.0, 300.0);
    // Panel 2: scale.
    let crr: Vec<(&Metric, f64)> = results
        .metrics
        .iter()
        .filter_map(|m| Some((m, m.id.strip_prefix("scale_crr_")?.parse().ok()?)))
        .collect();
    if crr.is_empty() {
        s.push_str("</svg>\n");
        return s;
    }
    let _ = writeln!(
        s,
        "<text x=\"20\" y=\"345\" font-size=\"15\">new connections/s via the published port vs other ports published</text>"
    );
    let (x0, y0, ph, pw) = (60.0, 365.0, 200.0, 820.0);
    let ymax = crr
        .iter()
        .flat_map(|(m, _)| COLORS.iter().filter_map(|(k, _)| m.median(k)))
        .fold(1.0_f64, f64::max)
        * 1.1;
    axis(&mut s, x0, y0, ph, pw, ymax, "");
    let xs = |i: usize| x0 + 40.0 + (pw - 80.0) * i as f64 / (crr.len() - 1).max(1) as f64;
    for (k, color) in &COLORS[1..] {
        let pts: Vec<String> = crr
            .iter()
            .enumerate()
            .filter_map(|(i, (m, _))| {
                let v = m.median(k)?;
                Some(format!("{:.1},{:.1}", xs(i), y0 + ph - ph * v / ymax))
            })
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\"/>",
            pts.join(" ")
        );
    }
    for (i, (_, n)) in crr.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n} ports</text>",
            xs(i),
            y0 + ph + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// E relative to D (D = 1, higher is better), one pair of bars a figure.
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "a handful of bars")]
pub fn docker_svg(r: &Results) -> String {
    let (width, height) = (700.0, 320.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"20\" y=\"24\" font-size=\"15\">Docker with weir (E) vs Docker's own rules (D = 1.0, higher is better)</text>\n"
    );
    let (x0, y0, ph, pw) = (60.0, 50.0, 200.0, 620.0);
    let bars: Vec<(&Metric, f64)> = r
        .docker
        .iter()
        .filter_map(|m| Some((m, m.ratio_of("E", "D")?)))
        .collect();
    let top = bars.iter().map(|(_, v)| *v).fold(1.5_f64, f64::max).ceil();
    axis(&mut s, x0, y0, ph, pw, top, "×");
    let group = pw / bars.len().max(1) as f64;
    for (i, (m, v)) in bars.iter().enumerate() {
        let gx = x0 + group * i as f64;
        for (j, (value, color)) in [(1.0, "#d9822b"), (*v, "#2b6cb0")].iter().enumerate() {
            let bh = ph * value / top;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"/>",
                gx + 20.0 + j as f64 * (group - 40.0) / 2.0,
                y0 + ph - bh,
                (group - 40.0) / 2.0 - 4.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{} ({v:.2}×)</text>",
            gx + group / 2.0,
            y0 + ph + 14.0,
            m.title.replace(" via the published port", " in")
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"60\" y=\"290\" width=\"12\" height=\"12\" fill=\"#d9822b\"/>\
         <text x=\"76\" y=\"300\" font-size=\"10\">D: dockerd defaults (iptables, docker-proxy)</text>\
         <rect x=\"330\" y=\"290\" width=\"12\" height=\"12\" fill=\"#2b6cb0\"/>\
         <text x=\"346\" y=\"300\" font-size=\"10\">E: dockerd iptables=false + weir agent --docker</text>"
    );
    s.push_str("</svg>\n");
    s
}

fn axis(s: &mut String, x0: f64, y0: f64, ph: f64, pw: f64, top: f64, suffix: &str) {
    for t in 0..=4 {
        let v = top * f64::from(t) / 4.0;
        let y = y0 + ph - ph * f64::from(t) / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">{}{suffix}</text>",
            x0 + pw,
            x0 - 6.0,
            y + 4.0,
            if top >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        );
    }
}

#[expect(clippy::cast_precision_loss, reason = "four legend entries")]
fn legend(s: &mut String, x: f64, y: f64) {
    for (i, (k, color)) in COLORS.iter().enumerate() {
        let label = Setup::ALL
            .iter()
            .find(|st| st.key() == *k)
            .map_or("", |st| st.label());
        let lx = x + 205.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
            y - 10.0,
            lx + 16.0,
            y,
            label.split(" (").next().unwrap_or(label)
        );
    }
}

fn short(id: &str) -> &str {
    match id {
        "rr_tps" => "TCP_RR trans/s",
        "rr_p50" => "RR latency p50",
        "crr_in" => "CRR in (DNAT)",
        "crr_out" => "CRR out (masq.)",
        "crr_in_cpu" => "CPU per conn. in",
        "crr_out_cpu" => "CPU per conn. out",
        "stream" => "stream Gbit/s",
        "stream_cpu" => "CPU per Gbit/s",
        "rr6_tps" => "IPv6 TCP_RR trans/s",
        "crr6_in" => "IPv6 CRR in (DNAT)",
        "crr6_out" => "IPv6 CRR out (NAT66)",
        "crr6_in_cpu" => "IPv6 CPU per conn. in",
        "crr6_out_cpu" => "IPv6 CPU per conn. out",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Metric, Options, testrun::Costs};

    fn results() -> Results {
        let mut m = Metric::new("crr_in", "CRR", "conn/s", Better::Higher);
        for (s, v) in [
            (Setup::NoNat, 10.0),
            (Setup::Iptables, 5.0),
            (Setup::Nftables, 8.0),
            (Setup::Weir, 9.0),
        ] {
            m.add(s, v, 0);
            m.add(s, v + 2.0, 0);
            m.add(s, v - 2.0, 1);
        }
        let mut lat = Metric::new("rr_p50", "p50", "us", Better::Lower);
        lat.add(Setup::Iptables, 40.0, 0);
        lat.add(Setup::Weir, 20.0, 0);
        let mut docker = Metric::new("docker_crr_in", "CRR in", "conn/s", Better::Higher);
        for (d, e) in [(100.0, 130.0), (90.0, 126.0), (110.0, 121.0)] {
            docker.add(Setup::DockerOwn, d, 0);
            docker.add(Setup::DockerWeir, e, 0);
        }
        Results {
            machine: machine(),
            options: Options::default(),
            setups: Setup::ALL.iter().map(|s| (s.key(), s.label())).collect(),
            metrics: vec![m, lat],
            docker_setups: Setup::DOCKER.iter().map(|s| (s.key(), s.label())).collect(),
            docker: vec![docker],
            flood_setups: Vec::new(),
            flood: Vec::new(),
            cluster_setups: Vec::new(),
            cluster: Vec::new(),
            testrun: Costs {
                runs: 1,
                costs: Vec::new(),
                sizes: Vec::new(),
            },
            share: Vec::new(),
            startup: None,
        }
    }

    #[test]
    fn ratios_say_how_far_weir_is_ahead_for_rates_and_times() {
        let r = results();
        assert_eq!(r.metrics[0].median("C"), Some(9.0));
        assert!((r.metrics[0].ratio("B").unwrap() - 1.8).abs() < 1e-9);
        // A lower latency is better: B/C.
        assert!((r.metrics[1].ratio("B").unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(r.metrics[1].ratio("A"), None);
        let t = table(&r);
        assert!(
            t.contains("| CRR | conn/s | 10 | 5 | 8 | 9 | 0.90 | 1.80 | 1.12 |"),
            "{t}"
        );
        assert_eq!(errors(&r).len(), 4);
    }

    #[test]
    fn the_docker_table_says_how_far_weir_puts_docker_ahead() {
        let r = results();
        let t = docker_table(&r);
        // Round ratios 1.3, 1.4, 1.1: their median.
        assert!(t.contains("| CRR in | conn/s | 100 | 126 | 1.30 |"), "{t}");
        let svg = docker_svg(&r);
        assert!(svg.starts_with("<svg") && svg.contains("(1.30×)"), "{svg}");
        assert!(text(&r).contains("E: Docker with weir"));
    }

    #[test]
    fn the_programs_share_bounds_what_freeing_them_would_give() {
        let mut r = results();
        let mut out = Metric::new("crr_out_cpu", "CPU out", "us", Better::Lower);
        out.add(Setup::Iptables, 100.0, 0);
        out.add(Setup::Weir, 80.0, 0);
        r.metrics.push(out);
        r.share = vec![
            crate::bench::share::Share {
                direction: "out",
                programs_us: 10.0,
                kernel_us: 80.0,
                programs: vec![("tc_to_uplink".to_owned(), 4.0, 500.0)],
            },
            crate::bench::share::Share {
                direction: "IPv6 out",
                programs_us: 12.0,
                kernel_us: 96.0,
                programs: Vec::new(),
            },
        ];
        let t = text(&r);
        // B 100 over C 80 less 10.
        assert!(t.contains("| out | 10.00 | 80.00 | 12% | 1.43 |"), "{t}");
        assert!(t.contains("| IPv6 out | 12.00 | 96.00 | 12% | - |"), "{t}");
        // 4 runs of 500 ns.
        assert!(
            t.contains("| out | tc_to_uplink | 4.0 | 500 | 2.00 |"),
            "{t}"
        );
    }

    #[test]
    fn a_ratio_pairs_the_setups_round_by_round() {
        let mut m = Metric::new("rr", "RR", "trans/s", Better::Higher);
        for (c, b) in [(10.0, 9.0), (30.0, 20.0), (31.0, 40.0)] {
            m.add(Setup::Weir, c, 0);
            m.add(Setup::Iptables, b, 0);
        }
        // Round ratios 1.11, 1.5, 0.78: their median, not 30 / 20.
        assert!((m.ratio("B").unwrap() - 10.0 / 9.0).abs() < 1e-9);
        // Unequal rounds: the ratio of the medians.
        m.add(Setup::Iptables, 20.0, 0);
        assert!((m.ratio("B").unwrap() - 30.0 / 20.0).abs() < 1e-9);
    }

    #[test]
    fn the_chart_is_one_svg_with_a_bar_per_setup_and_metric() {
        let svg = svg(&results());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // 4 bars for the CRR metric, 2 for latency, 4 legend squares.
        assert_eq!(svg.matches("<rect x=").count(), 4 + 2 + 4);
    }
}
