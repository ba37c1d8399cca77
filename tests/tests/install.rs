//! `cargo xtask install` and `uninstall` into a throw-away root
//! (`--destdir`), with the binaries `cargo xtask test` built: every file
//! in place with its mode, the unit pointed at the installed binary and
//! passing `systemd-analyze verify`, completions and man pages from the
//! CLI's own definition; a second install the same; uninstall leaving
//! nothing. Never the machine's own directories.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use weir_tests::agent::{weir_bin, xtask_bin};

fn xtask(args: &[&str], root: &Path) -> String {
    let bin = xtask_bin();
    let out = Command::new(&bin)
        .args(args)
        .arg("--destdir")
        .arg(root)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xtask {args:?}: {text}");
    text
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                all.push(p.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    all.sort();
    all
}

#[test]
fn install_puts_a_daemon_in_place_again_and_again_and_uninstall_removes_it() {
    let root = std::env::temp_dir().join(format!("weir-install-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let from = weir_bin().parent().unwrap().to_owned();
    let from = from.to_str().unwrap();
    let said = xtask(&["install", "--prefix", "/usr", "--from", from], &root);
    let installed = files(&root);
    for want in [
        "usr/bin/weir",
        "usr/bin/weir-cni",
        "usr/libexec/netavark/weir",
        "usr/lib/systemd/system/weir.service",
        "usr/share/bash-completion/completions/weir",
        "usr/share/zsh/site-functions/_weir",
        "usr/share/fish/vendor_completions.d/weir.fish",
        "usr/share/man/man1/weir.1",
        "usr/share/man/man1/weir-agent.1",
        "usr/share/man/man1/weir-network.1",
        "usr/share/weir/installed-files",
    ] {
        assert!(
            installed.contains(&PathBuf::from(want)),
            "{want} missing: {installed:?}"
        );
    }
    let mode = std::fs::metadata(root.join("usr/bin/weir"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/weir.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/weir agent"), "{unit}");
    assert!(unit.contains("Type=notify"));
    if Path::new("/usr/bin/systemd-analyze").exists() {
        assert!(said.contains("systemd-analyze verify: ok"), "{said}");
    }
    // Completions and man pages come from the CLI: its subcommands are in.
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/weir")).unwrap();
    for sub in ["agent", "publish", "allow", "completions"] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    let man = std::fs::read_to_string(root.join("usr/share/man/man1/weir-agent.1")).unwrap();
    assert!(
        man.contains("socket\\-group"),
        "weir-agent.1 lacks --socket-group"
    );
    // Again: the same files, nothing else.
    xtask(&["install", "--prefix", "/usr", "--from", from], &root);
    assert_eq!(files(&root), installed);
    xtask(&["uninstall", "--prefix", "/usr"], &root);
    assert_eq!(files(&root), Vec::<PathBuf>::new(), "uninstall left files");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_version_names_the_datapath_object_and_its_toolchain() {
    let out = Command::new(weir_bin()).arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    let pinned = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datapath-ebpf/rust-toolchain.toml"),
    )
    .unwrap();
    let channel = pinned
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(v.starts_with("weir 0."), "{v}");
    assert!(v.contains(&format!("built with {channel}")), "{v}");
    let hash = v
        .split("datapath ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert_eq!(hash.len(), 16, "{v}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
}
