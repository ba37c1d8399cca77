//! `cargo xtask fuzz`: builds the packet fuzzer in release mode and runs
//! `tests/examples/fuzz.rs` (a million frames unless told otherwise).

use crate::cmd;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    cmd::run(
        cmd::new("cargo")
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "weir-tests",
                "--example",
                "fuzz",
                "--",
            ])
            .args(args),
    )
}
