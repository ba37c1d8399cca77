//! `cargo xtask install` and `uninstall`: weir on a host like any system
//! daemon. The release binaries (`weir`, `weir-cni`, and `weir-netavark`
//! as `libexec/netavark/weir`, where Podman 5 finds it), the systemd unit
//! (`deploy/systemd/weir.service`, `ExecStart` pointed at the installed
//! binary), shell completions and man pages (both made by the installed
//! `weir` from its own command line), and a list of what went where, so
//! that `uninstall` removes exactly that (never the state in
//! `/var/lib/weir`). Installing again replaces each file whole (a
//! running agent's binary included): idempotent.
//!
//! `--destdir D` stages everything under D (as packaging does); `--from
//! DIR` takes the binaries from DIR instead of building them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::cmd;

/// `weir-netavark` under the prefix: netavark runs the plugin named
/// after a network's driver.
pub const NETAVARK_PLUGIN: &str = "libexec/netavark/weir";

/// Where an installation goes.
pub struct Target {
    /// `/usr/local` by default: the paths the unit and the list name.
    pub prefix: PathBuf,
    /// Prepended to every path written (empty: the machine itself).
    pub destdir: Option<PathBuf>,
}

impl Target {
    /// `path` (under the prefix) as written: under the destdir if any.
    fn staged(&self, path: &Path) -> PathBuf {
        match &self.destdir {
            Some(d) => d.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_owned(),
        }
    }

    fn under_prefix(&self, rel: &str) -> PathBuf {
        self.prefix.join(rel)
    }

    /// The list of installed files.
    fn manifest(&self) -> PathBuf {
        self.under_prefix("share/weir/installed-files")
    }
}

/// The files of an installation: (path under the prefix, contents, mode).
fn files(from: &Path, t: &Target) -> anyhow::Result<Vec<(PathBuf, Vec<u8>, u32)>> {
    let mut out = Vec::new();
    let weir = from.join("weir");
    // The netavark plugin goes where Podman 5 looks for netavark's
    // plugins (containers.conf's default `netavark_plugin_dirs` has
    // `/usr/local/libexec/netavark` and `/usr/libexec/netavark`), named
    // after the driver it is (`podman network create -d weir`).
    for (bin, rel) in [
        ("weir", "bin/weir"),
        ("weir-cni", "bin/weir-cni"),
        ("weir-netavark", NETAVARK_PLUGIN),
    ] {
        let src = from.join(bin);
        let bytes = fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
        out.push((t.under_prefix(rel), bytes, 0o755));
    }
    let unit = fs::read_to_string(cmd::workspace_root().join("deploy/systemd/weir.service"))
        .context("reading deploy/systemd/weir.service")?;
    let bindir = t.under_prefix("bin");
    let unit = unit.replace("@BINDIR@", &bindir.to_string_lossy());
    out.push((
        t.under_prefix("lib/systemd/system/weir.service"),
        unit.into_bytes(),
        0o644,
    ));
    for (shell, rel) in [
        ("bash", "share/bash-completion/completions/weir"),
        ("zsh", "share/zsh/site-functions/_weir"),
        ("fish", "share/fish/vendor_completions.d/weir.fish"),
    ] {
        let script = cmd::stdout(std::process::Command::new(&weir).args(["completions", shell]));
        if script.is_empty() {
            bail!("`weir completions {shell}` printed nothing");
        }
        out.push((t.under_prefix(rel), script.into_bytes(), 0o644));
    }
    let pages = tempdir()?;
    cmd::run(std::process::Command::new(&weir).arg("man").arg(&pages))?;
    let mut names: Vec<_> = fs::read_dir(&pages)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let bytes = fs::read(pages.join(&name))?;
        let rel = format!("share/man/man1/{}", name.to_string_lossy());
        out.push((t.under_prefix(&rel), bytes, 0o644));
    }
    let _ = fs::remove_dir_all(&pages);
    Ok(out)
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("weir-install-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Replaces `path` with `bytes` whole (a rename, so a running binary is
/// replaced, never written over).
fn replace(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().context("a file in a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".weir-new");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

pub fn install(t: &Target, from: Option<&Path>) -> anyhow::Result<()> {
    let built;
    let from = if let Some(dir) = from {
        dir
    } else {
        cmd::run(cmd::new("cargo").args(["build", "--release", "--package", "weir", "--bins"]))?;
        built = cmd::workspace_root().join("target/release");
        &built
    };
    let files = files(from, t)?;
    let mut list = String::new();
    for (path, bytes, mode) in &files {
        replace(&t.staged(path), bytes, *mode)?;
        list.push_str(&path.to_string_lossy());
        list.push('\n');
        println!("install: {}", path.display());
    }
    replace(&t.staged(&t.manifest()), list.as_bytes(), 0o644)?;
    let unit = t.staged(&t.under_prefix("lib/systemd/system/weir.service"));
    verify_unit(t, &unit)?;
    if t.destdir.is_none() && Path::new("/run/systemd/system").exists() {
        cmd::run(cmd::new("systemctl").arg("daemon-reload"))?;
        println!("install: done; start it with `systemctl enable --now weir`");
    }
    Ok(())
}

/// `systemd-analyze verify` on the installed unit, where systemd is. A
/// staged unit is checked as a copy whose `ExecStart` names the staged
/// binary (the staging root has no systemd of its own); man pages are
/// not looked up (the host's man database has none of weir's yet).
fn verify_unit(t: &Target, unit: &Path) -> anyhow::Result<()> {
    if !cmd::succeeds(cmd::new("systemd-analyze").arg("--version")) {
        println!("install: no systemd-analyze here; the unit is not verified");
        return Ok(());
    }
    let text = fs::read_to_string(unit)?;
    let bin = t.under_prefix("bin/weir");
    let staged = t.staged(&bin);
    let dir = tempdir()?;
    let copy = dir.join("weir.service");
    fs::write(
        &copy,
        text.replace(&*bin.to_string_lossy(), &staged.to_string_lossy()),
    )?;
    let out = cmd::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .context("running systemd-analyze verify")?;
    let _ = fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("weir.service"))
        .collect();
    if !out.status.success() || !ours.is_empty() {
        bail!("systemd-analyze verify {}:\n{said}", unit.display());
    }
    println!("install: systemd-analyze verify: ok");
    Ok(())
}

pub fn uninstall(t: &Target) -> anyhow::Result<()> {
    let manifest = t.staged(&t.manifest());
    let list = match fs::read_to_string(&manifest) {
        Ok(list) => list,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("uninstall: nothing installed under {}", t.prefix.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", manifest.display())),
    };
    for line in list.lines().filter(|l| !l.is_empty()) {
        let path = t.staged(Path::new(line));
        match fs::remove_file(&path) {
            Ok(()) => println!("uninstall: {line}"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    fs::remove_file(&manifest)?;
    if let Some(dir) = manifest.parent() {
        let _ = fs::remove_dir(dir);
    }
    println!(
        "uninstall: done (the state in /var/lib/weir and the pins stay: `weir agent --cleanup` removes them)"
    );
    Ok(())
}
