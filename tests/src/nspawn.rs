//! A Debian root ([`crate::debian`]) booted by its own systemd (252,
//! bookworm's) in `systemd-nspawn -b --private-network`: a machine where
//! systemd is PID 1, for the package's maintainer scripts to meet.
//!
//! ```text
//!   ext (test bed namespace)            the machine (its own network namespace)
//!   ext0 203.0.113.2/24 ── veth ─────── up0 203.0.113.1/24, default route via ext
//!                                       (systemd-networkd, configured in the root)
//! ```
//!
//! nspawn runs in `ext` (`--network-veth-extra=ext0:up0` makes the pair
//! there and moves `up0` in), in a mount namespace of its own where a
//! fresh bpffs is mounted and bound at the machine's `/sys/fs/bpf`, and a
//! tmpfs holds nspawn's `/run/systemd/nspawn` (its directory is made on
//! the host's `/run` when missing), and in a PID namespace of its own
//! that dies with the test: nothing reaches the machine's interfaces or
//! pins, and nothing outlives the test. A reboot (nspawn exits 133)
//! starts nspawn again as its unit would: a new network namespace and a
//! new bpffs, as a real reboot gives, the disk kept. Commands run inside
//! through `nsenter` into the container's init (the host has no machined
//! for `machinectl`).

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{Netns, debian::Root, eventually, netns::unique_stem};

/// The machine's address on `up0`.
pub const MACHINE_IP: &str = "203.0.113.1";
/// `ext`'s address, the machine's gateway.
pub const EXT_IP: &str = "203.0.113.2";

/// How long a boot (or a shutdown) may take on a loaded two-CPU machine.
const BOOT: Duration = Duration::from_secs(90);

/// Why this machine cannot boot a container, if it cannot: named for the
/// test's skip message.
#[must_use]
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: systemd-nspawn needs root".into());
    }
    let version = Command::new("systemd-nspawn").arg("--version").output();
    let Ok(version) = version else {
        return Some("systemd-nspawn is missing (package systemd-container)".into());
    };
    let said = String::from_utf8_lossy(&version.stdout);
    // `systemd 252 (252.39-1~deb12u2)`
    let major = said
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u32>().ok());
    if major.is_none_or(|m| m < 252) {
        return Some(format!(
            "systemd-nspawn {} is older than 252 (--network-veth-extra with --keep-unit and --register=no outside systemd)",
            said.trim()
        ));
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    for (fs, what) in [("cgroup2", "the cgroup2 hierarchy"), ("bpf", "bpffs")] {
        if !filesystems
            .lines()
            .any(|l| l.split_whitespace().last() == Some(fs))
        {
            return Some(format!(
                "the kernel has no {what} ({fs} in /proc/filesystems)"
            ));
        }
    }
    None
}

/// A booted machine; powered off (killed if it will not) on drop.
pub struct Machine<'a> {
    root: &'a Root,
    pub ext: Netns,
    name: String,
    dir: PathBuf,
    nspawn: Option<Child>,
    leader: u32,
    boots: u32,
}

impl<'a> Machine<'a> {
    /// Configures `root`'s network (systemd-networkd: `up0` with
    /// [`MACHINE_IP`], the default route via [`EXT_IP`]) and boots it.
    #[must_use]
    pub fn boot(root: &'a Root) -> Self {
        root.write(
            "/etc/systemd/network/10-up0.network",
            // No router advertisement will come: waiting for one would
            // hold network-online.target (and weir) for 12 s.
            &format!(
                "[Match]\nName=up0\n\n[Network]\nAddress={MACHINE_IP}/24\nGateway={EXT_IP}\n\
                 IPv6AcceptRA=no\n"
            ),
        );
        let out = Command::new("systemctl")
            .arg(format!("--root={}", root.path.display()))
            .args(["enable", "systemd-networkd.service"])
            .output()
            .expect("systemctl --root");
        let _ = crate::stdout_ok("enabling systemd-networkd in the root", &out);
        let stem = unique_stem();
        let dir = std::env::temp_dir().join(format!("{stem}-nspawn"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bpffs")).expect("nspawn dir");
        let mut machine = Self {
            root,
            ext: Netns::create(&format!("{stem}-ext")).expect("ext namespace"),
            name: stem,
            dir,
            nspawn: None,
            leader: 0,
            boots: 0,
        };
        machine.start();
        machine
    }

    fn console(&self) -> PathBuf {
        self.dir.join(format!("console-{}.log", self.boots))
    }

    /// What the machine's console showed during this boot.
    #[must_use]
    pub fn console_text(&self) -> String {
        fs::read_to_string(self.console()).unwrap_or_default()
    }

    fn start(&mut self) {
        self.boots += 1;
        let log = fs::File::create(self.console()).expect("console log");
        let bpffs = self.dir.join("bpffs");
        let script = format!(
            "set -e\n\
             mount -t bpf bpf {bpffs}\n\
             mkdir -p /run/systemd/nspawn\n\
             mount -t tmpfs tmpfs /run/systemd/nspawn\n\
             exec systemd-nspawn --quiet -D {root} -M {name} -b --private-network \
             --network-veth-extra=ext0:up0 --bind={bpffs}:/sys/fs/bpf \
             --register=no --keep-unit --console=read-only",
            bpffs = bpffs.display(),
            root = self.root.path.display(),
            name = self.name,
        );
        // A PID namespace of its own, nspawn its PID 1, `--kill-child`:
        // when the test process dies (and with it `unshare`, by
        // PR_SET_PDEATHSIG), nspawn and the machine, whose init would
        // outlive nspawn alone, die with it. Its /proc is that
        // namespace's (`--mount-proc`): nspawn opens /proc/<getpid()>.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ext.path().display()))
            .args(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(script)
            // nspawn's seccomp filter refuses bpf(): the agent in the
            // machine could load nothing. SYSTEMD_SECCOMP=0 turns the
            // filter off (nspawn's own switch); capabilities still bound
            // what the machine may do.
            .env("SYSTEMD_SECCOMP", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        crate::die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn systemd-nspawn");
        let unshare = child.id();
        self.nspawn = Some(child);
        // ext0 comes with the container: give it its address.
        let ext0 = eventually(BOOT, || self.ext.ip(&["link", "show", "ext0"]).ok());
        assert!(
            ext0.is_some(),
            "no ext0 from nspawn:\n{}",
            self.console_text()
        );
        self.ext
            .ip(&["addr", "add", &format!("{EXT_IP}/24"), "dev", "ext0"])
            .expect("ext0 address");
        self.ext
            .ip(&["link", "set", "ext0", "up"])
            .expect("ext0 up");
        let leader = eventually(BOOT, || container_init(unshare));
        self.leader =
            leader.unwrap_or_else(|| panic!("nspawn started no init:\n{}", self.console_text()));
        // Booted: every unit of the default target started (or failed).
        // `--wait` returns then; before the manager listens it fails.
        let state = eventually(BOOT, || {
            let out = self.exec(&["systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            matches!(state.as_str(), "running" | "degraded").then_some(state)
        });
        let state = state.unwrap_or_else(|| {
            panic!(
                "the machine did not finish booting:\n{}",
                self.console_text()
            )
        });
        assert_eq!(
            state,
            "running",
            "a unit failed at boot: {}\n{}",
            self.sh("systemctl --failed --no-pager"),
            self.console_text()
        );
    }

    /// `args` run inside the machine (all its namespaces), with a plain
    /// environment.
    #[must_use]
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.leader.to_string())
            .args(["-m", "-u", "-i", "-n", "-p", "--"])
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("nsenter into the machine")
    }

    /// `args` inside, which must succeed.
    pub fn run(&self, args: &[&str]) {
        let _ = self.ok(args);
    }

    /// `args` inside, which must succeed: their stdout, trimmed.
    #[must_use]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in the machine: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A shell script inside; stdout and stderr, whatever its status.
    #[must_use]
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// `systemctl show -p PROPERTY --value UNIT`.
    #[must_use]
    pub fn property(&self, unit: &str, property: &str) -> String {
        self.ok(&["systemctl", "show", "-p", property, "--value", unit])
    }

    /// `systemctl reboot`, and the machine booted again (`unshare` exits
    /// with nspawn's status: 133 for a reboot).
    pub fn reboot(&mut self) {
        // The manager may drop the connection as it goes down: the exit
        // status says nothing.
        let _ = self.exec(&["systemctl", "reboot"]);
        let status = self.wait_exit();
        assert_eq!(
            status.code(),
            Some(133),
            "nspawn did not exit as for a reboot ({status}):\n{}",
            self.console_text()
        );
        self.start();
    }

    /// `systemctl poweroff`, waited for.
    pub fn poweroff(&mut self) {
        let _ = self.exec(&["systemctl", "poweroff"]);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "nspawn after poweroff: {status}\n{}",
            self.console_text()
        );
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let child = self.nspawn.as_mut().expect("nspawn running");
        let deadline = Instant::now() + BOOT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for nspawn") {
                self.nspawn = None;
                return status;
            }
            assert!(Instant::now() < deadline, "nspawn did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The container's init: PID 1 of its own PID namespace, nested in ours
/// (three levels of `NSpid`), a descendant of `unshare`, our child.
fn container_init(unshare: u32) -> Option<u32> {
    let mut seen = vec![unshare];
    while let Some(pid) = seen.pop() {
        for (child, nspid) in crate::children(pid) {
            let levels: Vec<&str> = nspid.split_whitespace().collect();
            if levels.len() == 3 && levels[2] == "1" {
                return Some(child);
            }
            seen.push(child);
        }
    }
    None
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.nspawn.as_mut() {
            let _ = Command::new("nsenter")
                .arg("-t")
                .arg(self.leader.to_string())
                .args(["-m", "-u", "-i", "-n", "-p", "systemctl", "poweroff"])
                .output();
            let gone = eventually(Duration::from_secs(30), || child.try_wait().ok().flatten());
            if gone.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
