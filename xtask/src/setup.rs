//! `cargo xtask setup`: makes a fresh machine able to build and test weir.
//! Every step checks first and only acts when something is missing, so a
//! second run takes seconds and changes nothing.

use std::fs;

use anyhow::{Context as _, bail};

use crate::cmd;

/// Debian packages: LLVM 22 (bpf-linker links against it; rustc's own LLVM
/// is 22), bpftool, and the tools the test bed and benchmarks drive.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "iputils-ping",
    "procps",
    "curl",
    "socat",
    "iperf3",
    "iptables",
    "nftables",
];

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

pub fn run() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("setup installs packages and the tests make network namespaces: run as root");
    }
    apt_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    bpffs()?;
    Ok(())
}

fn report(what: &str, done: bool) {
    eprintln!(
        "setup: {what:<28} {}",
        if done { "installed" } else { "ok" }
    );
}

fn apt_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !cmd::stdout(cmd::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .contains("install ok installed")
        })
        .collect();
    if !missing.is_empty() {
        cmd::run(cmd::new("apt-get").arg("update").arg("-q"))?;
        cmd::run(
            cmd::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    for p in APT_PACKAGES {
        report(p, missing.contains(p));
    }
    Ok(())
}

fn nightly_rust_src() -> anyhow::Result<()> {
    let installed = cmd::stdout(cmd::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    let missing = !installed.lines().any(|l| l.starts_with("rust-src"));
    if missing {
        cmd::run(cmd::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    report("nightly + rust-src", missing);
    Ok(())
}

fn bpf_linker() -> anyhow::Result<()> {
    let missing = !cmd::succeeds(cmd::new("bpf-linker").arg("--version"));
    if missing {
        let path = format!(
            "{LLVM_PREFIX}/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        cmd::run(
            cmd::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--locked",
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                ])
                .env("PATH", path)
                .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX),
        )?;
    }
    report("bpf-linker (llvm-22)", missing);
    Ok(())
}

fn bpffs() -> anyhow::Result<()> {
    let mounted = fs::read_to_string("/proc/self/mounts")
        .context("reading /proc/self/mounts")?
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&BPFFS) && f.get(2) == Some(&"bpf")
        });
    if !mounted {
        cmd::run(cmd::new("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    }
    report("bpffs at /sys/fs/bpf", !mounted);
    Ok(())
}
