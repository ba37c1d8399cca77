//! `cargo xtask deb`: a Debian package of the files `install` puts in
//! place (prefix `/usr`), built with `dpkg-deb` from a staged root, no
//! debhelper: what its helpers would add is done here. The binaries are
//! stripped as `dh_strip` strips them, the man pages and the changelog
//! compressed with `gzip -9n` as `dh_compress` does, `md5sums` and
//! `Installed-Size` computed as `dh_md5sums` and `dpkg-gencontrol` do,
//! `Depends` from `dpkg-shlibdeps`, and `/usr/share/doc/weir` holds the
//! copyright file (`deploy/debian/copyright`) and a changelog of one
//! entry. `lintian` has nothing to say but what
//! `deploy/debian/lintian-overrides` explains.
//!
//! The maintainer scripts (`deploy/debian/postinst`, `prerm`, `postrm`)
//! are what `dh_installsystemd` writes, by hand: the unit is enabled and
//! started on installation, restarted on an upgrade (onto the new
//! binary), stopped on removal, and systemd reloaded. Where Debian's
//! snippets stop short, weir's own lines say why: a removal also takes
//! the enablement links away (no dangling `multi-user.target.wants`
//! link, no `not-found` unit), keeping an admin's "disabled" for a
//! reinstallation. A removal leaves the datapath forwarding and the state
//! in place, as `systemctl stop` does. A purge takes weir off the node
//! (`weir agent --cleanup`) and deletes `/var/lib/weir` and `/run/weir`.
//!
//! The purge's dilemma: at `postrm purge` `/usr/bin/weir` is gone, and
//! the cleanup is weir's own code reading weir's state. Rewriting it in
//! shell (iproute2, `rm` on the pins) would make a second cleanup that
//! drifts from the first and cannot tell an engine's bridges from weir's
//! by the state. So `prerm remove` keeps the binary about to be removed
//! beside the state, `/var/lib/weir/cleanup/weir` (a hard link, a copy
//! only across file systems), `postrm purge` runs its `agent --cleanup`
//! and deletes it with the state, and `postinst` deletes it at once when
//! weir is installed again.
//!
//! `--version` builds the package under another version (the upgrade
//! tests install two); `--compress-level` is `dpkg-deb -z` (xz; the tests
//! take 0, which packs their debug binaries in 3 s rather than 47).

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::{cmd, install};

/// What `cargo xtask deb` was asked for.
pub struct Options<'a> {
    /// The binaries' directory (default: a release build).
    pub from: Option<&'a Path>,
    /// The `.deb` (default `target/deb/weir_VERSION_ARCH.deb`).
    pub out: Option<&'a Path>,
    /// The package's version (default the crate's).
    pub version: Option<&'a str>,
    /// `dpkg-deb -z`: xz's level.
    pub compress_level: u8,
}

/// The maintainer scripts, from `deploy/debian`.
const SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

const MAINTAINER: &str = "weir developers <dev@weir.invalid>";

pub fn build(opts: &Options<'_>) -> anyhow::Result<PathBuf> {
    let root = cmd::workspace_root();
    let version = opts.version.unwrap_or(env!("CARGO_PKG_VERSION"));
    if !cmd::succeeds(cmd::new("dpkg").args(["--validate-version", version])) {
        bail!("`{version}` is not a Debian version (dpkg --validate-version)");
    }
    // One staging tree per run (two builds may run at once), laid out as
    // debhelper's (`debian/weir`) so that dpkg-shlibdeps reads it as its own.
    let work = root.join(format!("target/deb/stage-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let built = stage(&work, opts.from, version).and_then(|stage| {
        let arch = cmd::stdout(cmd::new("dpkg").arg("--print-architecture"));
        let arch = arch.trim().to_owned();
        let control = control(&work, &stage, version, &arch)?;
        let debian = stage.join("DEBIAN");
        fs::create_dir_all(&debian)?;
        fs::write(debian.join("control"), control)?;
        fs::write(debian.join("md5sums"), md5sums(&stage)?)?;
        for script in SCRIPTS {
            copy(
                &root.join("deploy/debian").join(script),
                &debian.join(script),
                0o755,
            )?;
        }
        let out = opts.out.map_or_else(
            || root.join(format!("target/deb/weir_{version}_{arch}.deb")),
            Path::to_owned,
        );
        cmd::run(
            cmd::new("dpkg-deb")
                .args(["--root-owner-group", "-Zxz"])
                .arg(format!("-z{}", opts.compress_level))
                .arg("--build")
                .arg(&stage)
                .arg(&out),
        )?;
        Ok(out)
    });
    let _ = fs::remove_dir_all(&work);
    let out = built?;
    println!("deb: {}", out.display());
    Ok(out)
}

/// The package's files under `work/debian/weir`, as they will be
/// installed; returns that directory.
fn stage(work: &Path, from: Option<&Path>, version: &str) -> anyhow::Result<PathBuf> {
    let stage = work.join("debian/weir");
    let target = install::Target {
        prefix: "/usr".into(),
        destdir: Some(stage.clone()),
    };
    install::install(&target, from)?;
    // A package's files are the package database's: no list of ours.
    fs::remove_dir_all(stage.join("usr/share/weir")).context("dropping the install list")?;
    // As dh_strip strips what Debian ships.
    for bin in ["bin/weir", "bin/weir-cni", install::NETAVARK_PLUGIN] {
        cmd::run(
            cmd::new("strip")
                .args([
                    "--remove-section=.comment",
                    "--remove-section=.note",
                    "--strip-unneeded",
                ])
                .arg(stage.join("usr").join(bin)),
        )?;
    }
    let man = stage.join("usr/share/man/man1");
    let mut pages: Vec<PathBuf> = fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    cmd::run(cmd::new("gzip").arg("-9n").args(&pages))?;
    let deploy = cmd::workspace_root().join("deploy/debian");
    let doc = stage.join("usr/share/doc/weir");
    copy(&deploy.join("copyright"), &doc.join("copyright"), 0o644)?;
    fs::write(doc.join("changelog"), changelog(version))?;
    cmd::run(cmd::new("gzip").arg("-9n").arg(doc.join("changelog")))?;
    copy(
        &deploy.join("lintian-overrides"),
        &stage.join("usr/share/lintian/overrides/weir"),
        0o644,
    )?;
    Ok(stage)
}

/// The changelog of a native package: one entry, for this build, dated
/// by the commit it was built from (the same bytes from the same commit).
fn changelog(version: &str) -> String {
    let git = |args: &[&str]| cmd::stdout(cmd::new("git").args(args)).trim().to_owned();
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let date = Some(git(&["log", "-1", "--format=%aD"]))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| cmd::stdout(cmd::new("date").arg("-R")).trim().to_owned());
    let from = if commit.is_empty() {
        String::new()
    } else {
        format!(" from commit {commit}")
    };
    format!(
        "weir ({version}) unstable; urgency=medium\n\n  \
         * Built by `cargo xtask deb`{from}.\n\n \
         -- {MAINTAINER}  {date}\n"
    )
}

/// `DEBIAN/control`: `Depends` from what the binaries link
/// (`dpkg-shlibdeps`, run in `work`, the staging tree's `debian/`'s
/// parent) and iproute2; `Installed-Size` as dpkg-gencontrol counts it.
fn control(work: &Path, stage: &Path, version: &str, arch: &str) -> anyhow::Result<String> {
    fs::write(
        work.join("debian/control"),
        "Source: weir\n\nPackage: weir\nArchitecture: any\n",
    )?;
    let mut shlibdeps = cmd::new("dpkg-shlibdeps");
    shlibdeps.current_dir(work).arg("-O");
    for bin in ["bin/weir", "bin/weir-cni", install::NETAVARK_PLUGIN] {
        shlibdeps.arg(format!("-edebian/weir/usr/{bin}"));
    }
    let out = shlibdeps.output().context("running dpkg-shlibdeps")?;
    let said = String::from_utf8_lossy(&out.stdout);
    let Some(libs) = said
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .filter(|_| out.status.success())
    else {
        bail!(
            "dpkg-shlibdeps found no dependencies: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let size = installed_size(stage)?;
    Ok(format!(
        "Package: weir\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {size}\n\
         Depends: {libs}, iproute2\n\
         Recommends: bpftool\n\
         Section: net\n\
         Priority: optional\n\
         Homepage: https://github.com/weir\n\
         Description: container networking with eBPF instead of iptables\n \
         weir's node agent and CLI: SNAT masquerade, DNAT port publishing and\n \
         isolation for containers as eBPF programs on tc and XDP hooks with\n \
         pinned BPF maps; a Docker follower, a CNI plugin (weir-cni) and a\n \
         netavark plugin for Podman 5 (driver weir).\n"
    ))
}

/// Every file and directory below `dir` but `DEBIAN`, sorted.
fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.strip_prefix(dir).is_ok_and(|r| r == Path::new("DEBIAN")) {
                continue;
            }
            if p.symlink_metadata()?.is_dir() {
                dirs.push(p.clone());
            }
            all.push(p);
        }
    }
    all.sort();
    Ok(all)
}

/// KiB, as dpkg-gencontrol counts: each file rounded up, any other object
/// (a directory, a symlink) 1.
fn installed_size(stage: &Path) -> anyhow::Result<u64> {
    let mut kib = 0;
    for p in walk(stage)? {
        let m = p.symlink_metadata()?;
        kib += if m.is_file() {
            m.size().div_ceil(1024)
        } else {
            1
        };
    }
    Ok(kib)
}

/// `DEBIAN/md5sums`, as `dh_md5sums` writes it (`md5sum` of every regular
/// file, paths relative to the root).
fn md5sums(stage: &Path) -> anyhow::Result<String> {
    let files: Vec<PathBuf> = walk(stage)?
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .map(|p| p.strip_prefix(stage).map(Path::to_owned))
        .collect::<Result<_, _>>()?;
    let out = cmd::new("md5sum")
        .current_dir(stage)
        .args(&files)
        .output()
        .context("running md5sum")?;
    if !out.status.success() {
        bail!("md5sum: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}
