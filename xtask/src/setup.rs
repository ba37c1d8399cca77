//! `cargo xtask setup`: makes a fresh machine able to build and test weir.
//! Every step checks first and only acts when something is missing or of
//! the wrong version, so a second run takes seconds and changes nothing.
//!
//! The eBPF object is built by the nightly named in
//! `datapath-ebpf/rust-toolchain.toml` and linked by bpf-linker, which must
//! be built against the same LLVM major as that nightly (an object from
//! rustc's LLVM 23 read by an LLVM 22 linker fails with `Invalid record`).
//! Setup derives that major from the nightly itself, installs Debian's
//! LLVM of that major, and rebuilds bpf-linker when the one installed links
//! another.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    cmd,
    toolchain::EbpfToolchain,
    versions::{check_compose, check_docker, check_package_tools, check_podman, check_protoc},
};

/// The bpf-linker release setup installs (it has `llvm-21`..`llvm-23`
/// features; its default is 23).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages besides LLVM: bpftool, the tools the test bed and
/// benchmarks drive, and what `cargo xtask deb` runs.
const APT_PACKAGES: &[&str] = &[
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "iputils-ping",
    "procps",
    "curl",
    "socat",
    "iperf3",
    // `cargo xtask bench --only-stream-profile` samples with perf.
    "linux-perf",
    "iptables",
    "nftables",
    // The real engines the integration tests drive (`../shared/ENGINES.md`).
    "docker.io",
    "docker-compose",
    "containerd",
    "runc",
    "busybox-static",
    "podman",
    // containerd's CRI always runs the `loopback` plugin beside weir-cni.
    "containernetworking-plugins",
    // The CRI tests' client (`k8s-cri`) compiles the CRI's protobufs.
    "protobuf-compiler",
    // `cargo xtask deb`: dpkg-shlibdeps for the package's Depends.
    "dpkg-dev",
];

/// Debian packages only the tests drive (`Scope::Tests`): the package's
/// tests make a Debian 12 root (`mmdebstrap`), boot it with its own
/// systemd (`systemd-nspawn`, in `systemd-container`) and check the
/// package (`lintian`).
const TEST_APT_PACKAGES: &[&str] = &["mmdebstrap", "systemd-container", "lintian"];

const BPFFS: &str = "/sys/fs/bpf";

/// The netavark the Podman 5 tests drive (`tests/src/netavark.rs`):
/// Debian's Podman 4.3 comes with netavark 1.4, which runs no plugins.
/// 2.1.0 is the newest 2.1 on crates.io; it builds with rustc 1.88 and
/// later, and needs `protoc` (protobuf-compiler, above) for its DHCP
/// proxy's gRPC.
pub const NETAVARK_VERSION: &str = "2.1.0";

/// Where setup installs netavark (`cargo install --root`): a root of its
/// own under cargo's home, not `~/.cargo/bin`, so that the netavark the
/// tests drive is never on `PATH` for a Podman or a user to pick up by
/// chance, and the tests name one binary (`WEIR_NETAVARK` names
/// another). The same path is written in `tests/src/netavark.rs`.
#[must_use]
pub fn netavark_root() -> std::path::PathBuf {
    cmd::cargo_bin_dir()
        .parent()
        .map_or_else(
            || std::path::PathBuf::from("/root/.cargo"),
            Path::to_path_buf,
        )
        .join("weir-netavark")
}

/// What a task needs installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Building weir and running it: the toolchains, the packages, bpffs
    /// (`demo`, `bench`, `fuzz`, `install`, `deb`).
    Build,
    /// That, and what only the tests drive: netavark built from crates.io
    /// (minutes on two cores the first time), for `setup` and `test`.
    Tests,
}

/// What setup found (or made), printed at its end so that every log says
/// which toolchain built what it tests.
pub struct Versions {
    pub rustc: String,
    pub ebpf: EbpfToolchain,
    pub bpf_linker: Linker,
}

impl std::fmt::Display for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "toolchain: host {}", self.rustc)?;
        writeln!(
            f,
            "toolchain: eBPF {} = {} (LLVM {}), from {}",
            self.ebpf.channel,
            self.ebpf.release,
            self.ebpf.llvm,
            crate::toolchain::FILE
        )?;
        write!(
            f,
            "toolchain: bpf-linker {} (LLVM {})",
            self.bpf_linker.version,
            self.bpf_linker
                .llvm_major
                .map_or_else(|| "unknown".to_owned(), |m| m.to_string())
        )
    }
}

pub fn run(scope: Scope) -> anyhow::Result<Versions> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("setup installs packages and the tests make network namespaces: run as root");
    }
    let ebpf = ebpf_toolchain()?;
    let major = ebpf.llvm_major()?;
    apt_packages(major, scope)?;
    check_llvm(major)?;
    let bpf_linker = bpf_linker(major)?;
    check_docker()?;
    check_compose()?;
    check_protoc()?;
    br_netfilter()?;
    check_podman()?;
    if scope == Scope::Tests {
        netavark()?;
        check_package_tools()?;
    }
    bpffs()?;
    let versions = Versions {
        rustc: first_line(&cmd::stdout(cmd::new("rustc").arg("--version"))),
        ebpf,
        bpf_linker,
    };
    eprintln!("{versions}");
    Ok(versions)
}

pub fn report(what: &str, done: bool) {
    eprintln!(
        "setup: {what:<32} {}",
        if done { "installed" } else { "ok" }
    );
}

/// The pinned nightly with its components, installed when missing.
fn ebpf_toolchain() -> anyhow::Result<EbpfToolchain> {
    let file = crate::toolchain::File::read(&cmd::workspace_root())?;
    let installed = cmd::stdout(cmd::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        &file.channel,
        "--installed",
    ]));
    let missing = !file
        .components
        .iter()
        .all(|c| installed.lines().any(|l| l.starts_with(c.as_str())));
    if missing {
        cmd::run(
            cmd::new("rustup")
                .args([
                    "toolchain",
                    "install",
                    &file.channel,
                    "--profile",
                    "minimal",
                ])
                .args(file.components.iter().flat_map(|c| ["--component", c])),
        )?;
    }
    report(
        &format!("{} + {}", file.channel, file.components.join(", ")),
        missing,
    );
    EbpfToolchain::probe(&file.channel)
}

fn apt_packages(llvm: u32, scope: Scope) -> anyhow::Result<()> {
    let llvm_packages = [format!("llvm-{llvm}-dev"), format!("libpolly-{llvm}-dev")];
    let tests = if scope == Scope::Tests {
        TEST_APT_PACKAGES
    } else {
        &[]
    };
    let wanted: Vec<&str> = llvm_packages
        .iter()
        .map(String::as_str)
        .chain(APT_PACKAGES.iter().copied())
        .chain(tests.iter().copied())
        .collect();
    let installed = |p: &str| {
        cmd::stdout(cmd::new("dpkg-query").args(["-W", "-f=${Status}", p]))
            .contains("install ok installed")
    };
    let missing: Vec<&str> = wanted.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        cmd::run(cmd::new("apt-get").arg("update").arg("-q"))?;
        let candidate = cmd::stdout(cmd::new("apt-cache").args(["policy", &llvm_packages[0]]));
        if !candidate.contains("Candidate:") || candidate.contains("Candidate: (none)") {
            bail!(
                "the eBPF toolchain in {} uses LLVM {llvm}, but this machine's package sources \
                 have no {}: pin a nightly whose LLVM major is one the distribution ships \
                 (Debian 12: 22), or add LLVM {llvm}'s packages",
                crate::toolchain::FILE,
                llvm_packages[0]
            );
        }
        cmd::run(
            cmd::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    for p in &wanted {
        report(p, missing.contains(p));
    }
    Ok(())
}

fn llvm_prefix(major: u32) -> String {
    format!("/usr/lib/llvm-{major}")
}

/// The installed LLVM is the major its directory says.
fn check_llvm(major: u32) -> anyhow::Result<()> {
    let config = format!("{}/bin/llvm-config", llvm_prefix(major));
    let version = cmd::stdout(Command::new(&config).arg("--version"));
    if parse_major(&version) != Some(major) {
        bail!(
            "{config} reports LLVM `{}`, expected {major}.x (the eBPF toolchain's)",
            version.trim()
        );
    }
    report(&format!("LLVM {}", version.trim()), false);
    Ok(())
}

/// An installed bpf-linker: its version and the LLVM major it links.
pub struct Linker {
    pub version: String,
    pub llvm_major: Option<u32>,
}

impl Linker {
    fn probe() -> Option<Self> {
        let path = cmd::cargo_bin_dir().join("bpf-linker");
        let out = cmd::stdout(Command::new(&path).arg("--version"));
        let version = out.split_whitespace().nth(1)?.to_owned();
        Some(Self {
            version,
            llvm_major: linked_llvm_major(&path),
        })
    }
}

/// The LLVM major a bpf-linker binary uses: the `libLLVM.so.N` it loads,
/// or, for a static build, the `llvm-N` feature cargo recorded when it
/// installed it.
fn linked_llvm_major(binary: &Path) -> Option<u32> {
    let ldd = cmd::stdout(Command::new("ldd").arg(binary));
    if let Some(m) = ldd.split_whitespace().find_map(|w| {
        w.strip_prefix("libLLVM.so.")
            .or_else(|| w.strip_prefix("libLLVM-"))
            .and_then(parse_major)
    }) {
        return Some(m);
    }
    let record = binary.parent()?.parent()?.join(".crates2.json");
    let text = fs::read_to_string(record).ok()?;
    let entry = text.split("\"bpf-linker ").nth(1)?;
    let features = entry.split("\"features\":[").nth(1)?.split(']').next()?;
    features.split(',').find_map(|f| {
        f.trim_matches('"')
            .strip_prefix("llvm-")
            .and_then(parse_major)
    })
}

fn bpf_linker(major: u32) -> anyhow::Result<Linker> {
    let fits = |l: &Linker| l.version == BPF_LINKER_VERSION && l.llvm_major == Some(major);
    match Linker::probe() {
        Some(l) if fits(&l) => {
            report(
                &format!("bpf-linker {BPF_LINKER_VERSION} (LLVM {major})"),
                false,
            );
            return Ok(l);
        }
        Some(l) => eprintln!(
            "setup: bpf-linker {} links LLVM {}, the eBPF toolchain needs {BPF_LINKER_VERSION} \
             with LLVM {major}: rebuilding it",
            l.version,
            l.llvm_major
                .map_or_else(|| "(unknown)".to_owned(), |m| m.to_string()),
        ),
        None => {}
    }
    let prefix = llvm_prefix(major);
    let path = format!("{prefix}/bin:{}", std::env::var("PATH").unwrap_or_default());
    cmd::run(
        cmd::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            // llvm-sys finds LLVM through the llvm-config first on PATH.
            .env("PATH", path),
    )?;
    let built = Linker::probe().context("bpf-linker was installed but does not run")?;
    if !fits(&built) {
        bail!(
            "bpf-linker {} was built but links LLVM {:?}, while the eBPF toolchain's LLVM is \
             {major}: check that {prefix}/bin/llvm-config is first on PATH",
            built.version,
            built.llvm_major
        );
    }
    report(
        &format!("bpf-linker {BPF_LINKER_VERSION} (LLVM {major})"),
        true,
    );
    Ok(built)
}

/// Bridged IPv4 goes through netfilter where a namespace asks for it
/// (`net.bridge.bridge-nf-call-iptables`): the cluster tests' nodes do, as
/// Kubernetes nodes do, for kube-proxy's answers between pods of one
/// bridge. The module makes the setting exist.
fn br_netfilter() -> anyhow::Result<()> {
    let knob = std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
    if !knob.exists() {
        cmd::run(Command::new("modprobe").arg("br_netfilter"))?;
    }
    if !knob.exists() {
        bail!(
            "modprobe br_netfilter left no {}: the kernel has no br_netfilter",
            knob.display()
        );
    }
    report("br_netfilter", false);
    Ok(())
}

/// The version a netavark binary reports (`netavark 2.1.0`), if it runs.
fn netavark_version(binary: &Path) -> Option<String> {
    let out = cmd::stdout(Command::new(binary).arg("--version"));
    let mut words = out.split_whitespace();
    (words.next() == Some("netavark"))
        .then(|| words.next().map(str::to_owned))
        .flatten()
}

/// netavark [`NETAVARK_VERSION`] under [`netavark_root`], installed as a
/// Rust user installs it (`cargo install --locked`) when it is missing or
/// reports another version.
fn netavark() -> anyhow::Result<()> {
    let root = netavark_root();
    let binary = root.join("bin/netavark");
    let found = netavark_version(&binary);
    if found.as_deref() != Some(NETAVARK_VERSION) {
        if let Some(v) = &found {
            eprintln!(
                "setup: {} is netavark {v}, the tests drive {NETAVARK_VERSION}: reinstalling",
                binary.display()
            );
        }
        let started = std::time::Instant::now();
        cmd::run(cmd::new("cargo").args([
            "install",
            "netavark",
            "--version",
            NETAVARK_VERSION,
            "--locked",
            "--force",
            "--root",
            &root.to_string_lossy(),
        ]))?;
        eprintln!(
            "setup: netavark {NETAVARK_VERSION} built in {} s",
            started.elapsed().as_secs()
        );
        let built = netavark_version(&binary);
        if built.as_deref() != Some(NETAVARK_VERSION) {
            bail!(
                "`{} --version` says {built:?} after installing netavark {NETAVARK_VERSION}",
                binary.display()
            );
        }
    }
    report(
        &format!("netavark {NETAVARK_VERSION} ({})", binary.display()),
        found.as_deref() != Some(NETAVARK_VERSION),
    );
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

/// The major of a version such as `22.1.4` or `22.1`.
pub fn parse_major(version: &str) -> Option<u32> {
    version.trim().split('.').next()?.parse().ok()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("(rustc not found)").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_come_from_any_version_shape() {
        assert_eq!(parse_major("22.1.4"), Some(22));
        assert_eq!(parse_major("22.1\n"), Some(22));
        assert_eq!(parse_major("23"), Some(23));
        assert_eq!(parse_major("x.1"), None);
    }

    #[test]
    fn a_static_linker_tells_its_llvm_by_the_feature_cargo_recorded() {
        let dir = std::env::temp_dir().join(format!("xtask-linker-{}", std::process::id()));
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::write(
            dir.join(".crates2.json"),
            r#"{"installs":{"bpf-linker 0.13.0 (registry+x)":{"version_req":"=0.13.0","bins":["bpf-linker"],"features":["llvm-22"],"all_features":false}}}"#,
        )
        .unwrap();
        // Not a dynamic executable: ldd names no libLLVM.
        fs::write(dir.join("bin/bpf-linker"), "").unwrap();
        assert_eq!(linked_llvm_major(&dir.join("bin/bpf-linker")), Some(22));
        fs::remove_dir_all(&dir).unwrap();
    }
}
