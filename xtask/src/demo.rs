//! `cargo xtask demo`: runs the sandboxed demo (`tests/examples/demo.rs`) in
//! throw-away network namespaces.

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    // The demo drives the real `weir` binary, which `cargo run` of the
    // example does not build.
    cmd::run(cmd::new("cargo").args(["build", "--package", "weir", "--bins"]))?;
    cmd::run(cmd::new("cargo").args([
        "run",
        "--quiet",
        "--package",
        "weir-tests",
        "--example",
        "demo",
    ]))
}
