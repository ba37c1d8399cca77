//! Every path the agent and the CLI use, built here and nowhere else.

use std::path::{Path, PathBuf};

use crate::datapath::PinDirs;

/// Default API socket (`--socket`, `WEIR_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/weir/weir.sock";
/// Default directory for the desired state (`--state-dir`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/weir";
/// Docker's socket (`weir agent --docker`).
pub const DEFAULT_DOCKER_SOCKET: &str = "unix:///var/run/docker.sock";
/// Default bpffs root for pins (`--bpffs`).
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/weir";

/// The agent's places on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            socket: DEFAULT_SOCKET.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            bpffs: DEFAULT_BPFFS.into(),
        }
    }
}

impl Paths {
    /// The desired-state file.
    #[must_use]
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    /// The last good copy of the state file, written after it at each save
    /// (`weir agent --restore-state` starts from it).
    #[must_use]
    pub fn last_good_file(&self) -> PathBuf {
        self.state_dir.join("state.last-good.json")
    }

    /// Changes made since the state file was written (see `state`).
    #[must_use]
    pub fn journal_file(&self) -> PathBuf {
        self.state_dir.join("state.journal")
    }

    /// Pinned maps.
    #[must_use]
    pub fn maps_dir(&self) -> PathBuf {
        self.bpffs.join("maps")
    }

    /// Pinned links (attachments that outlive the agent).
    #[must_use]
    pub fn links_dir(&self) -> PathBuf {
        self.bpffs.join("links")
    }

    /// Pinned programs.
    #[must_use]
    pub fn progs_dir(&self) -> PathBuf {
        self.bpffs.join("progs")
    }

    /// The same places with the pins under `root`: the `--bpffs` directory
    /// as this process reaches it (see `mounts`).
    #[must_use]
    pub fn with_pin_root(&self, root: &Path) -> Self {
        Self {
            bpffs: root.to_owned(),
            ..self.clone()
        }
    }

    /// The three pin directories, for the datapath.
    #[must_use]
    pub fn pin_dirs(&self) -> PinDirs {
        PinDirs {
            maps: self.maps_dir(),
            links: self.links_dir(),
            progs: self.progs_dir(),
        }
    }
}

/// Where bpffs is mounted by convention (the agent mounts it there when
/// the node has none).
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// This process's mounts.
pub const PROC_MOUNTS: &str = "/proc/self/mounts";

/// The root directory of process `pid` (`self` too), through which another
/// mount namespace's files are reached.
#[must_use]
pub fn proc_root(pid: &str) -> PathBuf {
    Path::new("/proc").join(pid).join("root")
}

/// The mount namespace of process `pid`.
#[must_use]
pub fn proc_ns_mnt(pid: &str) -> PathBuf {
    Path::new("/proc").join(pid).join("ns/mnt")
}

/// The network namespace of process `pid` (a container's init).
#[must_use]
pub fn proc_ns_net(pid: u32) -> PathBuf {
    Path::new("/proc").join(pid.to_string()).join("ns/net")
}

/// The absolute `path` seen below `prefix` (another namespace's root).
#[must_use]
pub fn under(prefix: &Path, path: &Path) -> PathBuf {
    prefix.join(path.strip_prefix("/").unwrap_or(path))
}

/// A path through this process's open descriptor `fd` (a directory held
/// open, maybe of another mount namespace).
#[must_use]
pub fn fd_path(fd: i32) -> PathBuf {
    Path::new("/proc/self/fd").join(fd.to_string())
}

/// Where the agent mounts cgroup2 for a moment when none is visible.
#[must_use]
pub fn private_cgroup2_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("weir-cgroup2-{pid}"))
}

/// Where `weir run` binds the namespace of run `name`: beside the agent's
/// socket, so that agents with their own sockets never share one.
#[must_use]
pub fn run_netns_path(socket: &Path, name: &str) -> PathBuf {
    socket
        .parent()
        .unwrap_or(Path::new("/run/weir"))
        .join("netns")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_namespaces_live_beside_the_socket() {
        assert_eq!(
            run_netns_path(Path::new("/tmp/a/weir.sock"), "web"),
            Path::new("/tmp/a/netns/web")
        );
    }

    #[test]
    fn another_namespace_is_seen_below_its_root() {
        assert_eq!(
            under(&proc_root("42"), Path::new("/sys/fs/bpf/weir")),
            Path::new("/proc/42/root/sys/fs/bpf/weir")
        );
        assert_eq!(fd_path(7).join("weir"), Path::new("/proc/self/fd/7/weir"));
    }

    #[test]
    fn derived_paths_live_under_their_roots() {
        let p = Paths {
            socket: "/tmp/t/weir.sock".into(),
            state_dir: "/tmp/t/state".into(),
            bpffs: "/sys/fs/bpf/weir-t".into(),
        };
        assert_eq!(p.state_file(), Path::new("/tmp/t/state/state.json"));
        assert_eq!(p.journal_file(), Path::new("/tmp/t/state/state.journal"));
        assert_eq!(p.maps_dir(), Path::new("/sys/fs/bpf/weir-t/maps"));
        assert_eq!(p.links_dir(), Path::new("/sys/fs/bpf/weir-t/links"));
        assert_eq!(p.progs_dir(), Path::new("/sys/fs/bpf/weir-t/progs"));
        assert_eq!(Paths::default().socket, Path::new(DEFAULT_SOCKET));
    }
}
