//! Finding the node's bpffs and cgroup2 hierarchy from whatever mount
//! namespace the agent runs in.
//!
//! `ip netns exec NODE weir agent` gives the agent a mount namespace of its
//! own with a fresh sysfs on `/sys`: no bpffs at `/sys/fs/bpf`, no cgroup2
//! under `/sys/fs/cgroup`. A bpffs mounted there would be a new instance
//! that dies with that namespace, and every pin, the links included, with
//! it (after `kill -9` nothing would forward). So:
//!
//! - bpffs: when the agent's namespace is not the one it was started from
//!   (its parent's, else PID 1's) and does not see that namespace's bpffs,
//!   the pins go to that namespace's bpffs, reached through
//!   `/proc/<pid>/root` and held by a directory descriptor for the agent's
//!   lifetime; when no namespace the agent can reach has one, it refuses to
//!   start and says what to run instead. A bpffs is mounted only in the
//!   namespace the agent was started from, when it has none.
//! - cgroup2 has one hierarchy, whoever mounts it: without a visible mount,
//!   the agent mounts it privately, keeps a descriptor of its root and
//!   unmounts it at once; the socket programs attach through the
//!   descriptor.

use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    },
    path::{Path, PathBuf},
};

use tracing::info;

use crate::paths;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "no bpffs at {path} in the mount namespace the agent was started from (nor in its own, \
         which is not that one: `ip netns exec` makes such a namespace, and pins made in it \
         would die with the agent): mount it there first (`mount -t bpf bpf /sys/fs/bpf`), \
         or start the agent with `nsenter --net=/run/netns/NAME weir agent ...`"
    )]
    NoHostBpffs { path: PathBuf },
    #[error("--bpffs {path} is not on a bpffs (mount one there, or choose a directory under one)")]
    NotBpffs { path: PathBuf },
    #[error(
        "no bpffs at {mount}, and no directory {mount} to mount one on: the kernel's sysfs has \
         it whenever the kernel has BPF, so /sys here is not the kernel's sysfs (or the kernel \
         has no BPF, and weir cannot run on it): mount the kernel's sysfs and bpffs on it \
         (`mount -t sysfs sysfs /sys && mount -t bpf bpf /sys/fs/bpf`), or mount bpffs on a \
         directory of your own and put the pins under it (`mkdir -p /run/weir-bpf && mount -t \
         bpf bpf /run/weir-bpf`, then `weir agent --bpffs /run/weir-bpf/weir`)"
    )]
    NoBpfDir { mount: PathBuf },
    // The cause is part of the message (not a `#[source]`), so that the
    // hint comes last when the whole chain is printed.
    #[error(
        "no bpffs at {mount}, and mounting one there failed ({cause}): mount it as root in the \
         node's mount namespace (`mount -t bpf bpf {mount}`; a container needs the host's: \
         `-v /sys/fs/bpf:/sys/fs/bpf`), or give --bpffs a directory under a bpffs"
    )]
    MountBpffs { mount: PathBuf, cause: io::Error },
    #[error(
        "the bpffs at {mount} is mounted read-only, and the pins go under it (--bpffs {path}): \
         remount it read-write (`mount -o remount,rw {mount}`), or give --bpffs a directory \
         under a writable bpffs"
    )]
    ReadOnly { mount: PathBuf, path: PathBuf },
    #[error("--cgroup {path} is not a cgroup v2 directory")]
    NotCgroup2 { path: PathBuf },
    // The cause is part of the message, as for `MountBpffs`.
    #[error(
        "no cgroup2 hierarchy: none is mounted in this mount namespace and mounting one failed \
         ({cause}); the socket hooks for the node's own localhost:PORT need it: mount cgroup2 \
         (`mount -t cgroup2 none /sys/fs/cgroup`) or pass --cgroup DIR"
    )]
    NoCgroup2 { cause: io::Error },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// A directory the agent uses, and how it reached it.
#[derive(Debug)]
pub struct Reached {
    /// The path to use from this process (maybe through `/proc/self/fd`).
    pub path: PathBuf,
    /// How it was found, for the log and `weir status`.
    pub how: String,
    /// Keeps a descriptor-based path valid.
    _fd: Option<OwnedFd>,
}

impl Reached {
    fn here(path: PathBuf, how: impl Into<String>) -> Self {
        Self {
            path,
            how: how.into(),
            _fd: None,
        }
    }

    /// `rest` below the directory open as `fd`, valid while `self` lives.
    fn through(fd: OwnedFd, rest: &Path, how: String) -> Self {
        Self {
            path: paths::fd_path(fd.as_raw_fd()).join(rest),
            how,
            _fd: Some(fd),
        }
    }
}

fn statfs_type(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills a zeroed struct for a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &raw mut st) } == 0).then_some(st.f_type)
}

/// The nearest ancestor of `path` (itself included) that exists below
/// `prefix` (`/` or another namespace's root), as a path without `prefix`.
fn nearest_existing(prefix: &Path, path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|a| paths::under(prefix, a).exists())
        .map(Path::to_path_buf)
}

fn mnt_ns(pid: &str) -> Option<u64> {
    fs::metadata(paths::proc_ns_mnt(pid)).ok().map(|m| m.ino())
}

/// The namespaces the agent was started from, other than its own: its
/// parent's, then PID 1's (each only if this process may look into it).
fn launcher_namespaces() -> Vec<String> {
    let own = mnt_ns("self");
    let parent = std::os::unix::process::parent_id().to_string();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for pid in [parent, "1".to_owned()] {
        if let Some(ns) = mnt_ns(&pid)
            && Some(ns) != own
            && !seen.contains(&ns)
        {
            seen.push(ns);
            out.push(pid);
        }
    }
    out
}

/// Where the pins under `root` (`--bpffs`) live.
pub fn bpffs(root: &Path) -> Result<Reached, MountError> {
    let root = std::path::absolute(root).map_err(|source| MountError::Io {
        what: format!("resolving {}", root.display()),
        source,
    })?;
    let here = nearest_existing(Path::new("/"), &root).unwrap_or_else(|| "/".into());
    let here_type = statfs_type(&here);
    let launchers = launcher_namespaces();
    // The pins' root itself may be removed (`--cleanup`) while the
    // descriptor is held: hold its parent (or the nearest that exists).
    let parent = root.parent().unwrap_or(&root);
    for pid in &launchers {
        let proc_root = paths::proc_root(pid);
        let Some(base) = nearest_existing(&proc_root, parent) else {
            continue;
        };
        let theirs = paths::under(&proc_root, &base);
        if statfs_type(&theirs) != Some(BPF_FS_MAGIC) {
            continue;
        }
        let same = here_type == Some(BPF_FS_MAGIC)
            && fs::metadata(&here).ok().map(|m| m.dev())
                == fs::metadata(&theirs).ok().map(|m| m.dev());
        refuse_read_only(&proc_root, &theirs, &root)?;
        if same {
            return Ok(Reached::here(root, "this mount namespace's bpffs (shared)"));
        }
        let fd = open_dir(&theirs)?;
        let rest = root.strip_prefix(&base).unwrap_or(Path::new(""));
        let how = format!(
            "the bpffs of the mount namespace the agent was started from (pid {pid}), \
             through {}: this namespace does not see it",
            theirs.display()
        );
        info!(bpffs = %root.display(), "pins go to {how}");
        return Ok(Reached::through(fd, rest, how));
    }
    if here_type == Some(BPF_FS_MAGIC) && launchers.is_empty() {
        refuse_read_only(Path::new("/"), &here, &root)?;
        return Ok(Reached::here(root, "this mount namespace's bpffs"));
    }
    if !launchers.is_empty() {
        return Err(MountError::NoHostBpffs { path: root });
    }
    // The namespace the agent was started from, with no bpffs where the
    // pins go: mount the standard one.
    let standard = Path::new(paths::BPFFS_MOUNT);
    if root.starts_with(standard) {
        mount(c"bpf", standard, c"bpf").map_err(|cause| {
            let mount = standard.to_owned();
            if cause.kind() == io::ErrorKind::NotFound {
                MountError::NoBpfDir { mount }
            } else {
                MountError::MountBpffs { mount, cause }
            }
        })?;
        info!("mounted bpffs at {}", standard.display());
        return Ok(Reached::here(root, "bpffs mounted by the agent"));
    }
    Err(MountError::NotBpffs { path: root })
}

/// The cgroup v2 directory the socket programs attach to.
pub fn cgroup2(explicit: Option<&Path>) -> Result<Reached, MountError> {
    if let Some(dir) = explicit {
        if statfs_type(dir) != Some(CGROUP2_SUPER_MAGIC) {
            return Err(MountError::NotCgroup2 { path: dir.into() });
        }
        return Ok(Reached::here(dir.into(), "--cgroup"));
    }
    let mounts = fs::read_to_string(paths::PROC_MOUNTS).map_err(|source| MountError::Io {
        what: format!("reading {}", paths::PROC_MOUNTS),
        source,
    })?;
    if let Some(dir) = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    }) && statfs_type(&dir) == Some(CGROUP2_SUPER_MAGIC)
    {
        return Ok(Reached::here(dir, "the cgroup2 mount"));
    }
    // None visible: mount the hierarchy privately, hold its root, unmount.
    let dir = paths::private_cgroup2_dir(std::process::id());
    fs::create_dir_all(&dir).map_err(|source| MountError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let mounted = mount(c"none", &dir, c"cgroup2");
    let fd = mounted.and_then(|()| {
        let fd = fs::File::open(&dir).map(OwnedFd::from);
        umount_lazy(&dir);
        fd
    });
    let _ = fs::remove_dir(&dir);
    let fd = fd.map_err(|cause| MountError::NoCgroup2 { cause })?;
    let how = "cgroup2 mounted privately (this mount namespace has no cgroup2 mount)".to_owned();
    info!("socket hooks attach to the root of {how}");
    Ok(Reached::through(fd, Path::new(""), how))
}

/// Refuses a bpffs mounted read-only: `dir`, the nearest directory of the
/// pins' root `root` that exists, seen from here below `prefix` (`/`, or
/// the root of the namespace the agent was started from).
fn refuse_read_only(prefix: &Path, dir: &Path, root: &Path) -> Result<(), MountError> {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: statvfs fills a zeroed struct for a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let read_only =
        unsafe { libc::statvfs(c.as_ptr(), &raw mut st) } == 0 && st.f_flag & libc::ST_RDONLY != 0;
    if !read_only {
        return Ok(());
    }
    // The mount point: the last ancestor on the same device.
    let dev = |p: &Path| fs::metadata(p).ok().map(|m| m.dev());
    let mount = dir
        .ancestors()
        .take_while(|a| a.starts_with(prefix) && dev(a) == dev(dir))
        .last()
        .unwrap_or(dir);
    Err(MountError::ReadOnly {
        mount: Path::new("/").join(mount.strip_prefix(prefix).unwrap_or(mount)),
        path: root.to_owned(),
    })
}

fn open_dir(path: &Path) -> Result<OwnedFd, MountError> {
    fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| MountError::Io {
            what: format!("opening {}", path.display()),
            source,
        })
}

fn mount(source: &std::ffi::CStr, target: &Path, kind: &std::ffi::CStr) -> io::Result<()> {
    let target = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: valid C strings; a plain mount with no data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn umount_lazy(target: &Path) {
    if let Ok(c) = CString::new(target.as_os_str().as_bytes()) {
        // SAFETY: a valid C string; a lazy unmount.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_existing_ancestor_is_found() {
        let tmp = std::env::temp_dir();
        let deep = tmp.join("weir-no-such-dir/a/b");
        assert_eq!(nearest_existing(Path::new("/"), &deep), Some(tmp));
    }

    #[test]
    fn a_plain_directory_is_no_cgroup2() {
        let err = cgroup2(Some(&std::env::temp_dir())).unwrap_err();
        assert!(matches!(err, MountError::NotCgroup2 { .. }), "{err}");
    }
}
