//! `cargo xtask bench`: builds weir and the bench in release mode and runs
//! `tests/examples/bench.rs`, which writes `bench/results/`.

use crate::cmd;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    // The bench drives the release `weir` binary (found next to itself).
    cmd::run(cmd::new("cargo").args(["build", "--release", "--package", "weir", "--bins"]))?;
    cmd::run(
        cmd::new("cargo")
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "weir-tests",
                "--example",
                "bench",
                "--",
                "--out",
            ])
            .arg(cmd::workspace_root().join("bench/results"))
            .args(args),
    )
}
