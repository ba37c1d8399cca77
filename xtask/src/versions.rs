//! The versions of the tools and engines the tests drive, checked by
//! `cargo xtask setup` after it installed them (`setup.rs`): each must be
//! the one, or newer than the one, the tests were written against, else
//! setup stops and names both.

use std::process::Command;

use anyhow::bail;

use crate::{
    cmd,
    setup::{parse_major, report},
};

/// Debian 12's mmdebstrap, the one the tests' cached root is made with
/// (`tests/src/debian.rs`: `--variant=minbase --include`, a tarball made
/// as root, with the device nodes a chroot needs).
const MMDEBSTRAP_MIN: (u32, u32) = (1, 3);

/// Debian 12's systemd-nspawn: the tests boot a Debian 12 root (systemd
/// 252 inside) with `--network-veth-extra`, `--keep-unit` and
/// `--register=no` on a host whose PID 1 may be no systemd.
const NSPAWN_MIN: (u32, u32) = (252, 0);

/// Debian 12's lintian: the tags `deploy/debian/lintian-overrides` names
/// are its names (lintian renames tags between releases), and the test
/// passes `--tag-display-limit`.
const LINTIAN_MIN: (u32, u32) = (2, 116);

/// The oldest Docker engine whose API (v1.41) the follower speaks.
const DOCKER_MIN: (u32, u32) = (20, 10);

/// The oldest `docker-compose` the Compose tests' files are written for
/// (file format 2.4 with `enable_ipv6`, `--scale`): Debian 12's 1.29.
const COMPOSE_MIN: (u32, u32) = (1, 29);

/// dockerd is new enough for `weir agent --docker` (API v1.41).
pub fn check_docker() -> anyhow::Result<()> {
    let out = cmd::stdout(Command::new("dockerd").arg("--version"));
    // `Docker version 20.10.24+dfsg1, build 297e128`
    let version = out
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_end_matches(',');
    at_least(
        ("dockerd --version", &out, "docker.io"),
        version,
        DOCKER_MIN,
        "whose API (v1.41) weir follows",
    )
}

/// Checks that `version` (`MAJOR.MINOR...`, read from what `command`
/// printed, `said`; `package` installs it) is `min` or later, which `why`
/// needs; says so.
fn at_least(
    (command, said, package): (&str, &str, &str),
    version: &str,
    min: (u32, u32),
    why: &str,
) -> anyhow::Result<()> {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        bail!(
            "`{command}` said `{}`: is {package} installed?",
            said.trim()
        );
    };
    if (major, minor) < min {
        bail!(
            "{package} {version} is older than {}.{}, {why}",
            min.0,
            min.1
        );
    }
    report(&format!("{package} {version}"), false);
    Ok(())
}

/// protoc can compile the CRI's protobufs (proto3 `optional`: 3.15).
pub fn check_protoc() -> anyhow::Result<()> {
    let out = cmd::stdout(Command::new("protoc").arg("--version"));
    // `libprotoc 3.21.12`
    let version = out.split_whitespace().nth(1).unwrap_or_default();
    at_least(
        ("protoc --version", &out, "protobuf-compiler"),
        version,
        (3, 15),
        "which the CRI's protobufs need",
    )
}

/// `docker-compose` is new enough for the Compose tests' files.
pub fn check_compose() -> anyhow::Result<()> {
    let out = cmd::stdout(Command::new("docker-compose").args(["version", "--short"]));
    // `1.29.2`
    at_least(
        ("docker-compose version --short", &out, "docker-compose"),
        out.trim(),
        COMPOSE_MIN,
        "which the Compose tests' files need",
    )
}
/// The package's tests' tools are new enough: mmdebstrap, systemd-nspawn,
/// lintian.
pub fn check_package_tools() -> anyhow::Result<()> {
    let out = cmd::stdout(Command::new("mmdebstrap").arg("--version"));
    // `mmdebstrap 1.3.5`
    at_least(
        ("mmdebstrap --version", &out, "mmdebstrap"),
        out.split_whitespace().nth(1).unwrap_or_default(),
        MMDEBSTRAP_MIN,
        "with which the tests' Debian root is made",
    )?;
    let out = cmd::stdout(Command::new("systemd-nspawn").arg("--version"));
    // `systemd 252 (252.39-1~deb12u2)`
    let version = out
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_matches(['(', ')']);
    at_least(
        ("systemd-nspawn --version", &out, "systemd-container"),
        version,
        NSPAWN_MIN,
        "with which the tests boot a Debian 12 root",
    )?;
    let out = cmd::stdout(Command::new("lintian").arg("--version"));
    // `Lintian v2.116.3+deb12u1`
    let version = out.split_whitespace().nth(1).unwrap_or_default();
    at_least(
        ("lintian --version", &out, "lintian"),
        version.trim_start_matches('v'),
        LINTIAN_MIN,
        "whose tag names deploy/debian/lintian-overrides uses",
    )
}

/// Podman 4: the tests run it with its CNI backend, which Podman 5 removed.
pub fn check_podman() -> anyhow::Result<()> {
    let out = cmd::stdout(Command::new("podman").arg("--version"));
    // `podman version 4.3.1`
    let version = out.split_whitespace().nth(2).unwrap_or_default().to_owned();
    match parse_major(&version) {
        Some(4) => {
            report(&format!("podman {version} (CNI backend)"), false);
            Ok(())
        }
        Some(major) => bail!(
            "podman {version}: the tests need Podman 4 (its CNI backend; Podman {major} has {})",
            if major >= 5 {
                "only netavark"
            } else {
                "no CNI network config dir"
            }
        ),
        None => bail!(
            "`podman --version` said `{}`: is podman installed?",
            out.trim()
        ),
    }
}
