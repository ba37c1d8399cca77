//! `cargo xtask demo`: runs the sandboxed demo (`tests/examples/demo.rs`) in
//! throw-away network namespaces.

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    cmd::run(cmd::new("cargo").args([
        "run",
        "--quiet",
        "--package",
        "weir-tests",
        "--example",
        "demo",
    ]))
}
