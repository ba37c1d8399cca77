//! `cargo xtask`: the project's own commands.
//!
//! - `setup`: installs what a fresh machine lacks (idempotent);
//! - `test`:  setup, then fmt, clippy and every test suite;
//! - `demo`:  setup, then the sandboxed demo in a test-bed world;
//! - `bench`: setup, then weir against iptables, nftables and no NAT;
//! - `fuzz`:  setup, then the long packet-fuzzing run of the programs;
//! - `install`, `uninstall`: weir as a system daemon (binaries, unit,
//!   completions, man pages); `deb`: the same as a Debian package.
//!
//! xtask depends on no weir crate: it has to build on a machine that has no
//! bpf-linker yet, since installing it is its job.

mod bench;
mod cmd;
mod deb;
mod demo;
mod fuzz;
mod install;
mod setup;
mod test;
mod toolchain;
mod versions;

use clap::{Parser, Subcommand};
use setup::Scope;

#[derive(Parser)]
#[command(about = "weir's development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing or of the wrong version: the pinned eBPF
    /// nightly (datapath-ebpf/rust-toolchain.toml), its LLVM, bpf-linker
    /// built against that LLVM, bpftool, iproute2 and the test tools, the
    /// engines the tests drive (netavark built from crates.io); mount
    /// bpffs. `test` runs all of it; `demo`, `bench`, `fuzz`, `install` and
    /// `deb` all but what only the tests drive (netavark).
    Setup,
    /// Setup, then cargo fmt --check, clippy -D warnings, unit,
    /// `BPF_PROG_TEST_RUN` and end-to-end tests.
    Test {
        /// Only run tests whose name contains this (fmt and clippy still run).
        filter: Option<String>,
    },
    /// Setup, then the sandboxed demo in throw-away network namespaces.
    Demo,
    /// Setup, then the benchmark: weir against iptables, nftables and no
    /// NAT in the same topology; writes bench/results/.
    Bench {
        /// Passed to the bench: --rounds N, --secs S, --scale N,N,...,
        /// --scale-rounds N, --quick.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, then the packet fuzzer on every datapath program by
    /// `BPF_PROG_TEST_RUN`: --frames N (1,000,000), --seed S (1).
    Fuzz {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup and a release build, then install weir as a system daemon:
    /// binaries, the systemd unit, completions, man pages (idempotent).
    Install {
        #[command(flatten)]
        target: TargetArgs,
        /// Take the binaries from this directory instead of building them.
        #[arg(long, value_name = "DIR")]
        from: Option<std::path::PathBuf>,
    },
    /// Setup and a release build, then a Debian package of the files
    /// `install` puts in place (prefix /usr), with maintainer scripts that
    /// enable, start, restart, stop and purge as Debian's do, built with
    /// dpkg-deb.
    Deb {
        /// Take the binaries from this directory instead of building them.
        #[arg(long, value_name = "DIR")]
        from: Option<std::path::PathBuf>,
        /// Where the .deb goes (default `target/deb/weir_VERSION_ARCH.deb`).
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// The package's version (default the crate's), e.g. a second
        /// one to test an upgrade with.
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// xz's level for the package's members (`dpkg-deb -z`): 6 is
        /// dpkg-deb's default; 0 packs debug binaries in 3 s, not 47.
        #[arg(long, value_name = "0-9", default_value_t = 6,
              value_parser = clap::value_parser!(u8).range(0..=9))]
        compress_level: u8,
    },
    /// Remove what `install` put in place (not the state, not the pins).
    Uninstall {
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(clap::Args)]
struct TargetArgs {
    /// Where the files go.
    #[arg(long, default_value = "/usr/local")]
    prefix: std::path::PathBuf,
    /// Stage everything under this directory (as packaging does).
    #[arg(long, value_name = "DIR")]
    destdir: Option<std::path::PathBuf>,
}

impl TargetArgs {
    fn target(self) -> install::Target {
        install::Target {
            prefix: self.prefix,
            destdir: self.destdir,
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(Scope::Tests).map(drop),
        Task::Test { filter } => {
            let versions = setup::run(Scope::Tests)?;
            test::run(filter.as_deref(), &versions.ebpf.channel)
        }
        Task::Demo => {
            setup::run(Scope::Build)?;
            demo::run()
        }
        Task::Bench { args } => {
            setup::run(Scope::Build)?;
            bench::run(&args)
        }
        Task::Fuzz { args } => {
            setup::run(Scope::Build)?;
            fuzz::run(&args)
        }
        Task::Install { target, from } => {
            if from.is_none() {
                setup::run(Scope::Build)?;
            }
            install::install(&target.target(), from.as_deref())
        }
        Task::Uninstall { target } => install::uninstall(&target.target()),
        Task::Deb {
            from,
            out,
            version,
            compress_level,
        } => {
            if from.is_none() {
                setup::run(Scope::Build)?;
            }
            deb::build(&deb::Options {
                from: from.as_deref(),
                out: out.as_deref(),
                version: version.as_deref(),
                compress_level,
            })
            .map(drop)
        }
    }
}
