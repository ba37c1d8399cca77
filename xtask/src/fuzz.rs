//! `cargo xtask fuzz`: builds the packet fuzzer in release mode and runs
//! `tests/examples/fuzz.rs` (a million frames unless told otherwise).

use crate::cmd;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    cmd::run_example("fuzz", &args)
}
