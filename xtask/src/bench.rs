//! `cargo xtask bench`: builds weir and the bench in release mode and runs
//! `tests/examples/bench.rs`, which writes `bench/results/`.

use crate::cmd;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    // The bench drives the release `weir` binary (found next to itself).
    cmd::run(cmd::new("cargo").args(["build", "--release", "--package", "weir", "--bins"]))?;
    let mut all: Vec<std::ffi::OsString> = vec![
        "--out".into(),
        cmd::workspace_root().join("bench/results").into(),
    ];
    all.extend(args.iter().map(Into::into));
    cmd::run_example("bench", &all)
}
