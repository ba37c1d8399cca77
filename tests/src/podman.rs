//! Real Podman (Debian's 4.3) with its CNI backend in a world's node, as
//! `../shared/ENGINES.md` verified it on this machine kind: private
//! `containers.conf` and `storage.conf` under a temporary directory, the
//! CNI backend with `weir-cni` as its only plugin, `runc` (crun fails on
//! these hybrid cgroups), cgroupfs, file events, the ulimits runc can set
//! without `CAP_SYS_RESOURCE`. Podman runs in the node's network namespace
//! (`nsenter --net`); it keeps no daemon.
//!
//! Dropping it removes every container, unmounts what Podman left mounted
//! under its directory, and removes the caches it and libcni leave
//! (`/var/lib/cni`, `/var/lib/containers`) when they were not there before.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::Netns;

/// The image every Podman test container runs.
pub const IMAGE: &str = "localhost/weirtest/busybox";

pub struct Podman {
    node: PathBuf,
    pub dir: PathBuf,
    /// What Podman and libcni leave outside its directory (the CNI result
    /// cache, Podman's blob cache) that was not there before.
    leftovers: Vec<PathBuf>,
}

impl Podman {
    /// Sets Podman up in `node` with `conflists` (for `weir-cni`, linked
    /// from `plugin`) as its CNI networks, and imports the image.
    #[must_use]
    pub fn new(node: &Netns, stem: &str, plugin: &Path, conflists: &[String]) -> Self {
        let dir = std::env::temp_dir().join(format!("{stem}-podman"));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["cni/bin", "cni/net.d", "tmp", "root", "run"] {
            fs::create_dir_all(dir.join(sub)).expect("podman dirs");
        }
        std::os::unix::fs::symlink(plugin, dir.join("cni/bin/weir-cni")).expect("plugin link");
        for conflist in conflists {
            let name =
                serde_json::from_str::<serde_json::Value>(conflist).expect("conflist")["name"]
                    .as_str()
                    .expect("conflist name")
                    .to_owned();
            fs::write(dir.join(format!("cni/net.d/{name}.conflist")), conflist).expect("conflist");
        }
        let d = dir.display();
        fs::write(
            dir.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend=\"cni\"\ncni_plugin_dirs=[\"{d}/cni/bin\"]\n\
                 network_config_dir=\"{d}/cni/net.d\"\n[engine]\ncgroup_manager=\"cgroupfs\"\n\
                 events_logger=\"file\"\ntmp_dir=\"{d}/tmp\"\nruntime=\"runc\"\n[containers]\n\
                 default_ulimits=[\"nofile=20000:20000\",\"nproc=32768:32768\"]\n"
            ),
        )
        .expect("containers.conf");
        fs::write(
            dir.join("storage.conf"),
            format!("[storage]\ndriver=\"overlay\"\ngraphroot=\"{d}/root\"\nrunroot=\"{d}/run\"\n"),
        )
        .expect("storage.conf");
        let leftovers = [Path::new("/var/lib/cni"), Path::new("/var/lib/containers")]
            .into_iter()
            .filter(|p| !p.exists())
            .map(Path::to_path_buf)
            .collect();
        let podman = Self {
            node: node.path(),
            dir,
            leftovers,
        };
        let tar = crate::image::busybox_tar(&podman.dir.join("rootfs"));
        let mut import = podman
            .command()
            .args(["import", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("podman import (podman; cargo xtask setup installs it)");
        import
            .stdin
            .take()
            .expect("stdin")
            .write_all(&tar)
            .expect("write the image");
        assert!(import.wait().expect("podman import").success());
        podman
    }

    /// `podman` in the node with this world's configuration.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        let d = &self.dir;
        cmd.arg(format!("--net={}", self.node.display()))
            .arg("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"));
        cmd
    }

    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run podman")
    }

    /// Runs podman and panics unless it succeeds; returns stdout, trimmed.
    #[expect(
        clippy::must_use_candidate,
        reason = "callers often want only the success check"
    )]
    pub fn ok(&self, args: &[&str]) -> String {
        crate::stdout_ok(&format!("podman {args:?}"), &self.cli(args))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cli(&["rm", "-af", "-t", "0"]);
        // Podman mounts in the caller's mount namespace: unmount whatever
        // is left under its directory, deepest first.
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut mine: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mine {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
        let _ = fs::remove_dir_all(&self.dir);
        for p in &self.leftovers {
            let _ = fs::remove_dir_all(p);
        }
    }
}
