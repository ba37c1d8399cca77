//! The benchmark (`cargo xtask bench`): weir against iptables, nftables
//! and no NAT at all, in the same test-bed topology (`weir_tests::bench`).
//! Prints the report and writes it under `--out`.

use std::path::PathBuf;

use anyhow::Context as _;
use weir_tests::bench::{self, Options, report};

fn main() -> anyhow::Result<()> {
    let mut opts = Options::default();
    let mut out = PathBuf::from("bench/results");
    let mut stream_profile = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = PathBuf::from(value()?),
            "--rounds" => opts.rounds = value()?.parse()?,
            "--secs" => opts.secs = value()?.parse()?,
            "--scale" => {
                opts.scale = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--scale-rounds" => opts.scale_rounds = value()?.parse()?,
            "--no-docker" => opts.docker = false,
            "--no-flood" => opts.flood = false,
            "--no-cluster" => opts.cluster = false,
            "--only-cluster" => {
                opts.main = false;
                opts.docker = false;
                opts.flood = false;
                opts.startup = None;
            }
            "--only-flood" => {
                opts.main = false;
                opts.docker = false;
                opts.cluster = false;
                opts.startup = None;
            }
            "--no-startup" => opts.startup = None,
            "--only-stream-profile" => stream_profile = true,
            "--only-startup" => {
                opts.main = false;
                opts.docker = false;
                opts.flood = false;
                opts.cluster = false;
            }
            "--startup" => {
                let v = value()?;
                let (e, p) = v
                    .split_once(',')
                    .with_context(|| format!("--startup ENDPOINTS,PORTS_EACH, not {v}"))?;
                opts.startup = Some((e.parse()?, p.parse()?));
            }
            "--quick" => {
                opts.rounds = 1;
                opts.secs = 0.5;
                opts.scale = vec![1, 100];
                opts.scale_rounds = 1;
                opts.testrun_runs = 200;
                opts.startup = Some((50, 10));
            }
            other => anyhow::bail!(
                "unknown argument {other}; known: --out DIR --rounds N --secs S \
                 --scale N,N,... --scale-rounds N --no-docker --no-flood --only-flood --no-cluster --only-cluster \
                 --startup E,P --no-startup --only-startup --only-stream-profile --quick"
            ),
        }
    }
    if stream_profile {
        return write_stream_profile(&opts, &out);
    }
    let only_startup = !opts.main && !opts.docker && !opts.flood && !opts.cluster;
    let only_cluster = !opts.main && !opts.docker && !opts.flood && opts.startup.is_none();
    let results = bench::run(&opts)?;
    println!("{}", report::text(&results));
    // A part run alone leaves the other results as the last full run wrote them.
    if only_startup {
        report::write_startup(&results, &out)
    } else if only_cluster {
        report::write_cluster(&results, &out)
    } else {
        report::write(&results, &out)
    }
    .with_context(|| format!("writing {}", out.display()))?;
    if only_startup {
        println!("Written: {}/startup.json, startup.md", out.display());
    } else if only_cluster {
        println!("Written: {}/cluster.json, cluster.md", out.display());
    } else {
        println!(
            "Written: {0}/results.json, {0}/results.md, {0}/chart.svg, {0}/startup.md",
            out.display()
        );
    }
    Ok(())
}

/// `--only-stream-profile`: A's, B2's and C's stream under `perf`, written
/// as `stream-profile.md` (perf's data stays in the temporary directory).
fn write_stream_profile(opts: &Options, out: &std::path::Path) -> anyhow::Result<()> {
    let named = report::machine_line(&report::machine());
    let data = std::env::temp_dir().join("weir-bench-perf");
    let profiles = bench::profile::stream(opts, &data)?;
    let text = bench::profile::text(&named, bench::profile::has_pmu(), opts.secs, &profiles);
    println!("{text}");
    std::fs::create_dir_all(out)?;
    let file = out.join("stream-profile.md");
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    println!("Written: {}", file.display());
    Ok(())
}
