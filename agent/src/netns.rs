//! Network namespaces: entering one from a thread, running netlink inside
//! one, and making or removing a named one (`weir run`).

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{
        fd::AsRawFd,
        unix::{ffi::OsStrExt as _, process::CommandExt as _},
    },
    path::Path,
    process::Command,
    thread,
};

use crate::netlink::{Netlink, NetlinkError};

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: a plain syscall on an fd we own; it only changes this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd` start its program inside the network namespace open as `ns`
/// (`setns` between fork and exec). `ns` must stay open until the spawn.
pub fn spawn_in<'a>(cmd: &'a mut Command, ns: &File) -> &'a mut Command {
    let fd = ns.as_raw_fd();
    // SAFETY: setns is async-signal-safe, and the fd outlives the spawn
    // (the caller holds `ns`).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
    }
}

/// Makes `cmd` start its program in a mount namespace of its own (private
/// from the caller's) with `file` bound over `/etc/resolv.conf`, as `ip
/// netns exec` does with `/etc/netns/NAME/resolv.conf`.
pub fn resolv_conf_in(cmd: &mut Command, file: &Path) -> io::Result<()> {
    let src = std::ffi::CString::new(file.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: unshare and mount are async-signal-safe; the strings are
    // made before the fork and moved into the closure.
    unsafe {
        cmd.pre_exec(move || {
            let root = c"/";
            let dst = c"/etc/resolv.conf";
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Runs `f` with a netlink connection inside the namespace at `path`, on a
/// thread of its own (the caller's thread and runtime stay where they are).
pub fn with_netlink<F, T>(path: &Path, f: F) -> Result<T, NetlinkError>
where
    F: AsyncFnOnce(Netlink) -> Result<T, NetlinkError> + Send,
    T: Send,
{
    thread::scope(|s| {
        s.spawn(|| {
            enter(path).map_err(NetlinkError::Connect)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(NetlinkError::Connect)?;
            runtime.block_on(async { f(Netlink::connect()?).await })
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Creates a new, empty network namespace and binds it at `path` (the way
/// `ip netns add` does), with `lo` still down.
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    File::create(path)?;
    let target = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let made = thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare only changes this thread, which ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let source = CString::new("/proc/thread-self/ns/net").expect("no NUL");
            // SAFETY: both strings are valid C strings; a bind mount.
            let rc = unsafe {
                libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    if made.is_err() {
        let _ = fs::remove_file(path);
    }
    made
}

/// Unbinds and removes a namespace made by [`create`]. The namespace itself
/// ends when nothing else holds it.
pub fn remove(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid C string; a lazy unmount.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether any process is in the network namespace bound at `path` (its
/// `/proc/PID/ns/net` is that namespace).
pub fn has_processes(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let ns = fs::metadata(path)?;
    let target = (ns.dev(), ns.ino());
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        if !entry.file_name().as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // A process may end while we look: it is not there, then.
        if let Ok(m) = fs::metadata(entry.path().join("ns/net"))
            && (m.dev(), m.ino()) == target
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// True when `path` is a network namespace file.
#[must_use]
pub fn is_netns(path: &Path) -> bool {
    // NS_GET_NSTYPE: _IO(0xb7, 0x3); answers CLONE_NEWNET for a netns.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let Ok(file) = File::open(path) else {
        return false;
    };
    // SAFETY: an ioctl without arguments on an fd we own.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    kind == libc::CLONE_NEWNET
}
