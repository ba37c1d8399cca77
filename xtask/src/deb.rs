//! `cargo xtask deb`: a Debian package of the same files `install` puts
//! in place (prefix `/usr`), built with `dpkg-deb` from a staged root:
//! no tool beyond dpkg's own. No maintainer scripts: the unit is enabled
//! by the admin (`systemctl enable --now weir`), as after `install`, and
//! removing the package leaves the state and the pins (`weir agent
//! --cleanup` first takes weir off the node).

use std::{fs, path::Path};

use anyhow::Context as _;

use crate::{cmd, install};

pub fn build(from: Option<&Path>, out: Option<&Path>) -> anyhow::Result<std::path::PathBuf> {
    let root = cmd::workspace_root();
    let stage = root.join("target/deb/root");
    let _ = fs::remove_dir_all(&stage);
    let target = install::Target {
        prefix: "/usr".into(),
        destdir: Some(stage.clone()),
    };
    install::install(&target, from)?;
    // A package's files are the package database's: no list of ours.
    fs::remove_dir_all(stage.join("usr/share/weir")).context("dropping the install list")?;
    // Without their debug information, as Debian ships binaries.
    for bin in ["bin/weir", "bin/weir-cni", install::NETAVARK_PLUGIN] {
        cmd::run(
            cmd::new("strip")
                .arg("--strip-debug")
                .arg(stage.join("usr").join(bin)),
        )?;
    }
    let arch = cmd::stdout(cmd::new("dpkg").arg("--print-architecture"));
    let arch = arch.trim();
    let version = env!("CARGO_PKG_VERSION");
    let control = format!(
        "Package: weir\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: weir developers <weir@localhost>\n\
         Section: net\n\
         Priority: optional\n\
         Depends: libc6, iproute2\n\
         Recommends: bpftool\n\
         Homepage: https://github.com/weir\n\
         Description: container networking with eBPF instead of iptables\n \
         weir's node agent and CLI: SNAT masquerade, DNAT port publishing and\n \
         isolation for containers as eBPF programs on tc and XDP hooks with\n \
         pinned BPF maps; a Docker follower, a CNI plugin (weir-cni) and a\n \
         netavark plugin for Podman 5 (driver weir).\n"
    );
    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    fs::write(debian.join("control"), control)?;
    let out = match out {
        Some(p) => p.to_owned(),
        None => root.join(format!("target/deb/weir_{version}_{arch}.deb")),
    };
    cmd::run(
        cmd::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&stage)
            .arg(&out),
    )?;
    println!("deb: {}", out.display());
    Ok(out)
}
