//! The benchmark (`cargo xtask bench`): weir against iptables, nftables
//! and no NAT at all, in the same test-bed topology (`weir_tests::bench`).
//! Prints the report and writes it under `--out`.

use std::path::PathBuf;

use anyhow::Context as _;
use weir_tests::bench::{self, Options, report};

fn main() -> anyhow::Result<()> {
    let mut opts = Options::default();
    let mut out = PathBuf::from("bench/results");
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
            "--only-flood" => {
                opts.main = false;
                opts.docker = false;
            }
            "--quick" => {
                opts.rounds = 1;
                opts.secs = 0.5;
                opts.scale = vec![1, 100];
                opts.scale_rounds = 1;
                opts.testrun_runs = 200;
            }
            other => anyhow::bail!(
                "unknown argument {other}; known: --out DIR --rounds N --secs S \
                 --scale N,N,... --scale-rounds N --no-docker --no-flood --only-flood --quick"
            ),
        }
    }
    let results = bench::run(&opts)?;
    println!("{}", report::text(&results));
    report::write(&results, &out).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "Written: {0}/results.json, {0}/results.md, {0}/chart.svg",
        out.display()
    );
    Ok(())
}
