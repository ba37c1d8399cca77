//! A Debian 12 (bookworm) root for the package's tests: made once by
//! `mmdebstrap` (a download of about 60 MB, two minutes or so) and kept
//! as a tarball in [`CACHE_DIR`], named after what went into it, so that
//! later runs (and CI, which keeps that directory) only unpack it, in
//! seconds. Each test unpacks a root of its own and deletes it at the
//! end.
//!
//! [`Jail`] runs commands in such a root as a machine without systemd
//! would: `chroot` (and `dpkg --root`, which runs the maintainer scripts
//! chrooted), in a network namespace of the test bed's and a mount
//! namespace of its own with `/proc` and a bpffs of its own mounted, so
//! that nothing done there reaches the machine's interfaces or pins.

use std::{
    fs,
    io::{self, Write as _},
    os::unix::{fs::OpenOptionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use sha2::{Digest as _, Sha256};

use crate::{Netns, eventually, netns::unique_stem};

/// The release the roots are.
pub const SUITE: &str = "bookworm";

/// What the roots hold beyond `minbase` (Essential, apt): systemd as init
/// (to boot them), iproute2 (weir's dependency), busybox (a web server
/// for the published port), bpftool (weir's recommendation, and a way to
/// see pins), dbus (as a Debian system has it).
pub const PACKAGES: &[&str] = &["systemd-sysv", "dbus", "iproute2", "busybox", "bpftool"];

/// Where made roots are cached (`WEIR_TEST_CACHE` names another).
pub const CACHE_DIR: &str = "/var/cache/weir-tests";

/// The mirror (`WEIR_DEBIAN_MIRROR` names another).
pub const MIRROR: &str = "http://deb.debian.org/debian";

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// The cached tarball of a root, made when missing; `Err` says why none
/// can be had (no mmdebstrap, the mirror out of reach), for a test to
/// name when it skips.
pub fn tarball() -> Result<PathBuf, String> {
    let cache = PathBuf::from(env_or("WEIR_TEST_CACHE", CACHE_DIR));
    let mirror = env_or("WEIR_DEBIAN_MIRROR", MIRROR);
    let recipe = format!("{SUITE} minbase {mirror} {}", PACKAGES.join(","));
    let key = data_encoding::HEXLOWER.encode(&Sha256::digest(recipe.as_bytes())[..8]);
    let stem = format!("{SUITE}-minbase-");
    let tar = cache.join(format!("{stem}{key}.tar"));
    fs::create_dir_all(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    // One maker at a time across processes; the others wait and find it.
    let lock = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(cache.join(".lock"))
        .map_err(|e| format!("locking {}: {e}", cache.display()))?;
    // SAFETY: flock on a descriptor this function owns; released on close.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(format!("flock: {}", io::Error::last_os_error()));
    }
    if tar.exists() {
        return Ok(tar);
    }
    if !Command::new("mmdebstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Err("mmdebstrap is missing (cargo xtask setup installs it)".into());
    }
    let partial = cache.join(format!("{stem}{key}.partial-{}.tar", std::process::id()));
    eprintln!(
        "debian: making a {SUITE} root with mmdebstrap ({recipe}), cached as {}",
        tar.display()
    );
    let started = std::time::Instant::now();
    let out = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        .args([SUITE])
        .arg(&partial)
        .arg(&mirror)
        .output()
        .map_err(|e| format!("running mmdebstrap: {e}"))?;
    if !out.status.success() {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "mmdebstrap {SUITE} from {mirror} failed (is the mirror reachable?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fs::rename(&partial, &tar).map_err(|e| format!("{}: {e}", tar.display()))?;
    eprintln!("debian: made in {} s", started.elapsed().as_secs());
    // Roots of other recipes are stale: one tarball in the cache.
    for e in fs::read_dir(&cache).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&stem) && e.path() != tar {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(tar)
}

/// A root unpacked from the tarball onto a tmpfs of its own, unmounted
/// on drop. Not on disk: deleting ten thousand files once written back
/// takes this machine's disk 20 to 30 s, unmounting a tmpfs nothing.
/// `cargo xtask test` unmounts the tmpfs of a killed run when it sweeps
/// the test bed's leftovers (named like its namespaces).
pub struct Root {
    pub path: PathBuf,
}

impl Root {
    /// Unpacks `tarball` into a directory of the test's own.
    #[must_use]
    pub fn unpack(tarball: &Path) -> Self {
        let path = std::env::temp_dir().join(format!("{}-root", unique_stem()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("root directory");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount");
        let _ = crate::stdout_ok("a tmpfs for the root", &out);
        let root = Self { path };
        let out = Command::new("tar")
            .arg("-C")
            .arg(&root.path)
            .arg("-xf")
            .arg(tarball)
            .output()
            .expect("tar");
        let _ = crate::stdout_ok("unpacking the root", &out);
        root
    }

    /// `rel` (a path inside the root, absolute or not) as seen from here.
    #[must_use]
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel.trim_start_matches('/'))
    }

    /// Writes `text` to `rel` inside the root, creating its directory.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.join(rel);
        fs::create_dir_all(path.parent().expect("a file in a directory")).expect("mkdir");
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.path).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("debian: umount {}: {out:?}", self.path.display());
            // Busy (a process still in it): detached now, freed with it.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        if let Err(e) = fs::remove_dir(&self.path) {
            eprintln!("debian: removing {}: {e}", self.path.display());
        }
    }
}

/// A root entered as a machine without systemd: a process (`sleep`, PID
/// 1 of a PID namespace of its own, in `netns`) holds a mount namespace
/// of its own where the root's `/proc` (of that PID namespace) and a
/// fresh bpffs, at both `/sys/fs/bpf` and the root's `/sys/fs/bpf`, are
/// mounted; every command runs in its namespaces. Dropping it (or the
/// test process dying) ends the holder, and with it whatever runs there
/// (the kernel ends a PID namespace with its PID 1) and the mounts.
pub struct Jail<'a> {
    pub root: &'a Root,
    /// The holder's network namespace, which must outlive it.
    _netns: &'a Netns,
    /// `unshare`, the holder's parent.
    unshare: Child,
    holder: u32,
    running: Vec<Child>,
}

impl<'a> Jail<'a> {
    #[must_use]
    pub fn new(root: &'a Root, netns: &'a Netns) -> Self {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.path().display()))
            .args(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(["--mount", "--propagation", "private", "sleep", "infinity"])
            .stdin(Stdio::null());
        crate::die_with_parent(&mut cmd);
        let unshare = cmd.spawn().expect("spawn the jail's holder");
        // The holder: unshare's child, once it is sleep.
        let holder = eventually(Duration::from_secs(5), || {
            let (pid, _) = crate::children(unshare.id()).into_iter().next()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "sleep").then_some(pid)
        });
        let jail = Self {
            root,
            _netns: netns,
            unshare,
            holder: holder.expect("the jail's holder"),
            running: Vec::new(),
        };
        // The root's /proc is the PID namespace's (mounted from inside
        // it), so that the root's programs see themselves and its PID 1.
        let r = root.path.display();
        let script = format!(
            "mkdir -p {r}/proc {r}/sys/fs/bpf && mount -t proc proc {r}/proc && \
             mount -t bpf bpf /sys/fs/bpf && mount --bind /sys/fs/bpf {r}/sys/fs/bpf"
        );
        let _ = crate::stdout_ok("mounting the jail", &jail.host_sh(&script));
        jail
    }

    /// `nsenter` into the holder's namespaces (it forks: the program is
    /// in the PID namespace, nsenter waits for it).
    fn nsenter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.to_string())
            .args(["--mount", "--net", "--pid", "--"]);
        cmd
    }

    /// A shell script run in the jail's namespaces, outside the root.
    #[must_use]
    pub fn host_sh(&self, script: &str) -> Output {
        self.nsenter()
            .args(["sh", "-c", script])
            .output()
            .expect("nsenter")
    }

    /// `dpkg --root` the root with `args`, run where the jail is: the
    /// maintainer scripts run chrooted into it.
    #[must_use]
    pub fn dpkg(&self, args: &[&str]) -> Output {
        self.nsenter()
            .arg("dpkg")
            .arg(format!("--root={}", self.root.path.display()))
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("dpkg")
    }

    /// A command chrooted into the root.
    #[must_use]
    pub fn chroot(&self, program: &str) -> Command {
        let mut cmd = self.nsenter();
        cmd.arg("chroot").arg(&self.root.path).arg(program);
        cmd
    }

    /// Starts `program args` chrooted, its output appended to `log` (a
    /// path outside the root); it ends with the jail. Its parent is
    /// outside its PID namespace, so its launcher (where the agent looks
    /// for bpffs) is the namespace's PID 1, the holder: the jail's mount
    /// namespace, as a daemon's init is on its own machine.
    pub fn spawn(&mut self, program: &str, args: &[&str], log: &Path) -> u32 {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let mut cmd = self.chroot(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // A group of its own: nsenter and the program it forked.
            .process_group(0);
        crate::die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn in the jail");
        let pid = child.id();
        self.running.push(child);
        pid
    }

    /// Ends what [`Jail::spawn`] started (SIGTERM, as an init stops a
    /// daemon) and waits until it is gone.
    pub fn stop_all(&mut self) {
        for mut child in self.running.drain(..) {
            // The group: nsenter passes no signal on to its child.
            let group = -child.id().cast_signed();
            // SAFETY: a signal to the process group our child leads.
            unsafe { libc::kill(group, libc::SIGTERM) };
            let _ = child.wait();
            // SAFETY: signal 0 only asks whether the group has members.
            let gone = eventually(Duration::from_secs(10), || {
                (unsafe { libc::kill(group, 0) } != 0).then_some(())
            });
            assert!(gone.is_some(), "a program of the jail ignored SIGTERM");
        }
    }
}

impl Drop for Jail<'_> {
    fn drop(&mut self) {
        // The holder's end ends the PID namespace, everything in it.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let _ = io::stderr().flush();
    }
}

/// The package twice, from the binaries the tests run (`cargo xtask deb
/// --from`), as [`Debs::FIRST`] and as a later version to upgrade to;
/// deleted on drop.
pub struct Debs {
    dir: PathBuf,
    pub first: PathBuf,
    pub second: PathBuf,
}

impl Debs {
    /// The crate's version.
    pub const FIRST: &str = env!("CARGO_PKG_VERSION");
    /// Later than [`Debs::FIRST`] for dpkg.
    pub const SECOND: &str = concat!(env!("CARGO_PKG_VERSION"), "+upgrade1");

    /// Builds both at once (xz level 0: seconds each).
    #[must_use]
    pub fn build() -> Self {
        let dir = std::env::temp_dir().join(format!("{}-debs", unique_stem()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("debs dir");
        let debs = Self {
            first: dir.join(format!("weir_{}.deb", Self::FIRST)),
            second: dir.join(format!("weir_{}.deb", Self::SECOND)),
            dir,
        };
        let from = crate::agent::weir_bin()
            .parent()
            .expect("target dir")
            .to_owned();
        std::thread::scope(|s| {
            for (version, out) in [(Self::FIRST, &debs.first), (Self::SECOND, &debs.second)] {
                let from = &from;
                s.spawn(move || {
                    let out = Command::new(crate::agent::xtask_bin())
                        .args(["deb", "--compress-level", "0", "--version", version])
                        .arg("--from")
                        .arg(from)
                        .arg("--out")
                        .arg(out)
                        .output()
                        .expect("xtask deb");
                    assert!(
                        out.status.success(),
                        "xtask deb --version {version}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                });
            }
        });
        debs
    }
}

impl Drop for Debs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
