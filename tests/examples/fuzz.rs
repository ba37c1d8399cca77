//! `cargo xtask fuzz [--frames N] [--seed S]`: the long packet-fuzzing
//! run ([`weir_tests::fuzz`]) in a throw-away network namespace. Prints
//! the report (frames per second, verdicts, drops by reason, every broken
//! invariant with its frames) and fails when an invariant broke.

use anyhow::{Context as _, bail};
use weir_tests::{
    fuzz::{self, Config},
    prog::node_ns,
};

fn main() -> anyhow::Result<()> {
    let mut cfg = Config {
        frames: 1_000_000,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<u64> {
            let v = args
                .next()
                .with_context(|| format!("{name} takes a number"))?;
            v.parse()
                .with_context(|| format!("{name} {v}: not a number"))
        };
        match arg.as_str() {
            "--frames" => cfg.frames = value("--frames")?,
            "--seed" => cfg.seed = value("--seed")?,
            other => bail!("unknown argument {other} (--frames N, --seed S)"),
        }
    }
    println!("fuzzing {} frames from seed {}", cfg.frames, cfg.seed);
    let report = node_ns("fuzz").run(|| fuzz::run(cfg));
    print!("{report}");
    if !report.failures.is_empty() {
        bail!(
            "{} invariants broken (seed {})",
            report.failures.len(),
            cfg.seed
        );
    }
    Ok(())
}
