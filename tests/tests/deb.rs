//! The Debian package (`cargo xtask deb`) as a Debian admin meets it, in
//! a Debian 12 root made by mmdebstrap (`weir_tests::debian`, cached):
//!
//! - lintian has nothing to say but what the overrides explain;
//! - where no systemd runs (a chroot, `dpkg --root`): install, upgrade,
//!   remove and purge, the maintainer scripts never failing for want of
//!   systemd, the unit enabled by its links, a purge undoing what an
//!   agent run by hand left and refusing while that agent answers, the
//!   root as it was afterwards; an admin's "disabled" kept across a
//!   removal and a reinstallation;
//! - under a real systemd (`weir_tests::nspawn`, in `deb_systemd.rs`).
//!
//! Each world is a root of its own in namespaces of the test bed.

use std::{
    collections::BTreeSet,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use weir_tests::{
    World,
    debian::{self, Debs, Jail, Root},
    eventually,
    netns::unique_stem,
    shared,
};

shared!(debs: Debs = Debs::build());

/// The cached root's tarball, or `None` after saying why the test skips,
/// on the real stderr (libtest shows a passing test's output only with
/// `--nocapture`).
fn tarball_or_skip(test: &str) -> Option<PathBuf> {
    match debian::tarball() {
        Ok(tar) => Some(tar),
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: no Debian root: {why}");
            None
        }
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn dpkg_ok(jail: &Jail<'_>, args: &[&str]) -> String {
    let out = jail.dpkg(args);
    assert!(out.status.success(), "dpkg {args:?}: {}", text(&out));
    text(&out)
}

/// `dpkg-query`'s status of weir in the root (`install ok installed`,
/// `deinstall ok config-files`, or empty when dpkg knows nothing of it).
fn status(jail: &Jail<'_>) -> String {
    let out = jail.dpkg(&["--status", "weir"]);
    text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("Status: "))
        .unwrap_or_default()
        .to_owned()
}

const WANTS: &str = "etc/systemd/system/multi-user.target.wants/weir.service";

/// The unit's enablement link, where it points.
fn wants_link(root: &Root) -> Option<PathBuf> {
    std::fs::read_link(root.join(WANTS)).ok()
}

/// Every path under `root` but the kernel's (`proc`, `sys`, `dev`).
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut all = BTreeSet::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let rel = e.path().strip_prefix(root).unwrap().to_owned();
            if ["proc", "sys", "dev"].iter().any(|k| rel.starts_with(k)) {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
            all.insert(rel);
        }
    }
    all
}

/// The package's files are installed, its man pages compressed.
fn assert_files(jail: &Jail<'_>, root: &Root) {
    let listed = dpkg_ok(jail, &["--listfiles", "weir"]);
    for want in [
        "/usr/bin/weir",
        "/usr/bin/weir-cni",
        "/usr/libexec/netavark/weir",
        "/usr/lib/systemd/system/weir.service",
        "/usr/share/man/man1/weir.1.gz",
        "/usr/share/man/man1/weir-agent.1.gz",
        "/usr/share/bash-completion/completions/weir",
        "/usr/share/doc/weir/copyright",
        "/usr/share/doc/weir/changelog.gz",
        "/usr/share/lintian/overrides/weir",
    ] {
        assert!(
            listed.lines().any(|l| l == want),
            "{want} not in the package: {listed}"
        );
        assert!(root.join(want).exists(), "{want} not installed");
    }
    assert!(
        !listed
            .lines()
            .any(|l| Path::new(l).extension().is_some_and(|e| e == "1")),
        "an uncompressed man page: {listed}"
    );
}

/// `after` is `before` but for dpkg's own database and log, which keep
/// a trace of any package dpkg knew.
fn assert_same_but_dpkg(before: &BTreeSet<PathBuf>, after: &BTreeSet<PathBuf>) {
    let dpkg_own =
        |p: &&PathBuf| p.starts_with("var/lib/dpkg") || p == &Path::new("var/log/dpkg.log");
    let added: Vec<_> = after.difference(before).filter(|p| !dpkg_own(p)).collect();
    let lost: Vec<_> = before.difference(after).filter(|p| !dpkg_own(p)).collect();
    assert!(
        added.is_empty() && lost.is_empty(),
        "left {added:?}, lost {lost:?}"
    );
}

#[test]
fn lintian_has_nothing_to_say_but_the_explained_overrides() {
    let debs = debs();
    // lintian leaves a file in TMPDIR at each run: one of the test's own.
    let tmp = std::env::temp_dir().join(format!("{}-lintian", unique_stem()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new("lintian")
        .env("TMPDIR", &tmp)
        // Every level (info, pedantic, experimental), each tag explained,
        // the overridden ones shown.
        .args([
            "--display-info",
            "--pedantic",
            "--display-experimental",
            "--info",
        ])
        .args(["--show-overrides", "--tag-display-limit", "0"])
        .arg(&debs.first)
        .output()
        .expect("lintian (cargo xtask setup installs it)");
    let _ = std::fs::remove_dir_all(&tmp);
    let said = text(&out);
    // Tags are `E:`, `W:`, `I:`, `P:` (pedantic), `X:` (experimental),
    // `C:` (classification), `M:` (masked); `O:` is an overridden one.
    // An override no longer needed is lintian's `unused-override`, a
    // tag too; the spelling match in machine code comes and goes with
    // the build (the overrides file says so).
    let tags: Vec<&str> = said
        .lines()
        .filter(|l| {
            ["E:", "W:", "I:", "P:", "X:", "C:", "M:"]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .filter(|l| !l.starts_with("I: weir: unused-override spelling-error-in-binary "))
        .collect();
    assert!(out.status.success() && tags.is_empty(), "lintian:\n{said}");
    assert!(
        said.lines().any(|l| l.starts_with("O: ")),
        "no override shown:\n{said}"
    );
}

#[test]
fn without_systemd_install_upgrade_remove_and_purge_in_a_chroot() {
    let Some(tar) = tarball_or_skip("without_systemd_install_upgrade_remove_and_purge_in_a_chroot")
    else {
        return;
    };
    let debs = debs();
    let world = World::new().unwrap();
    let root = Root::unpack(&tar);
    let mut jail = Jail::new(&root, &world.node);
    let before = tree(&root.path);

    // Installed: the files, the unit enabled by its link, nothing started
    // (no systemd to start it).
    dpkg_ok(&jail, &["--install", debs.first.to_str().unwrap()]);
    assert_eq!(status(&jail), "install ok installed");
    assert_files(&jail, &root);
    assert_eq!(
        wants_link(&root).as_deref(),
        Some(Path::new("/lib/systemd/system/weir.service"))
    );
    assert!(
        !root.join("run/weir/weir.sock").exists(),
        "something started an agent"
    );

    // An agent run by hand, as an init other than systemd would.
    let log = root.path.with_extension("agent.log");
    jail.spawn("/usr/bin/weir", &["agent"], &log);
    let weir_status = |jail: &Jail<'_>| jail.chroot("/usr/bin/weir").arg("status").output();
    let up = eventually(std::time::Duration::from_secs(20), || {
        weir_status(&jail).ok().filter(|o| o.status.success())
    });
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(up.is_some(), "the agent did not come up: {}", agent_log());
    assert!(
        world.node.ip(&["link", "show", "weir0"]).is_ok(),
        "no weir0"
    );
    let pinned = |jail: &Jail<'_>| {
        let script = format!("test -d {}/sys/fs/bpf/weir/links", root.path.display());
        jail.host_sh(&script).status.success()
    };
    assert!(pinned(&jail), "no pins: {}", agent_log());

    // Upgraded: no systemd to restart anything; the agent goes on.
    dpkg_ok(&jail, &["--install", debs.second.to_str().unwrap()]);
    let version = dpkg_ok(&jail, &["--status", "weir"]);
    assert!(
        version.contains(&format!("Version: {}", Debs::SECOND)),
        "{version}"
    );
    assert!(
        weir_status(&jail).unwrap().status.success(),
        "{}",
        agent_log()
    );
    assert!(wants_link(&root).is_some(), "the upgrade lost the link");

    // Removed: the link goes (nothing dangles), the state and the
    // datapath stay, the binary is kept for a purge.
    dpkg_ok(&jail, &["--remove", "weir"]);
    assert_eq!(status(&jail), "deinstall ok config-files");
    assert_eq!(
        wants_link(&root),
        None,
        "a dangling link to the removed unit"
    );
    assert!(!root.join("usr/bin/weir").exists());
    assert!(
        root.join("var/lib/weir/state.json").exists(),
        "the state went"
    );
    assert!(
        root.join("var/lib/weir/cleanup/weir").exists(),
        "nothing kept for a purge"
    );
    assert!(pinned(&jail), "the removal took the datapath");

    // A purge while the hand-run agent answers refuses and keeps all.
    let out = jail.dpkg(&["--purge", "weir"]);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "purged under a running agent: {said}"
    );
    assert!(said.contains("`weir agent --cleanup` failed"), "{said}");
    assert!(root.join("var/lib/weir/cleanup/weir").exists(), "{said}");
    assert!(pinned(&jail), "{said}");

    // Stopped, purged: weir off the node and out of the root.
    jail.stop_all();
    let said = dpkg_ok(&jail, &["--purge", "weir"]);
    assert!(said.contains("removed link weir0"), "{said}");
    assert_eq!(status(&jail), "");
    assert!(!pinned(&jail), "pins left: {said}");
    assert!(
        world.node.ip(&["link", "show", "weir0"]).is_err(),
        "weir0 left"
    );
    assert_same_but_dpkg(&before, &tree(&root.path));
    let _ = std::fs::remove_file(&log);
}

#[test]
fn an_admins_choice_to_enable_or_disable_survives_removal_and_reinstallation() {
    let Some(tar) = tarball_or_skip(
        "an_admins_choice_to_enable_or_disable_survives_removal_and_reinstallation",
    ) else {
        return;
    };
    let debs = debs();
    let world = World::new().unwrap();
    let root = Root::unpack(&tar);
    let jail = Jail::new(&root, &world.node);
    let deb = debs.first.to_str().unwrap();
    let systemctl = |verb: &str| {
        let out = jail
            .chroot("systemctl")
            .args([verb, "weir.service"])
            .output();
        assert!(out.as_ref().is_ok_and(|o| o.status.success()), "{out:?}");
    };
    dpkg_ok(&jail, &["--install", deb]);
    assert!(wants_link(&root).is_some());
    // Disabled by the admin: removed and installed again, still disabled.
    systemctl("disable");
    dpkg_ok(&jail, &["--remove", "weir"]);
    dpkg_ok(&jail, &["--install", deb]);
    assert_eq!(wants_link(&root), None, "the admin's disable was forgotten");
    assert!(
        !root.join("var/lib/weir/cleanup").exists(),
        "the kept binary stayed"
    );
    // Enabled again: removed (no link left), installed: enabled.
    systemctl("enable");
    dpkg_ok(&jail, &["--remove", "weir"]);
    assert_eq!(
        wants_link(&root),
        None,
        "a dangling link to the removed unit"
    );
    dpkg_ok(&jail, &["--install", deb]);
    assert!(
        wants_link(&root).is_some(),
        "the enabled unit came back disabled"
    );
    // Purged: deb-systemd-helper remembers nothing of weir.
    dpkg_ok(&jail, &["--purge", "weir"]);
    let helper = jail.host_sh(&format!(
        "grep -rl weir {}/var/lib/systemd/ || true",
        root.path.display()
    ));
    assert_eq!(
        text(&helper).trim(),
        "",
        "deb-systemd-helper's state of weir"
    );
    assert_eq!(wants_link(&root), None);
}
