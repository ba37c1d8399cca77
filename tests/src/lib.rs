//! The weir test bed.
//!
//! Every world is built from network namespaces that a test makes itself:
//! `node` (the host under test), `ext` (an external host on the node's
//! uplink) and containers. Nothing in the machine's own namespace is touched,
//! names are unique per test so tests run in parallel, and `Drop` tears the
//! world down even when a test panics.
//!
//! - [`netns`]: one namespace, entering it from a thread, running commands;
//! - [`world`]: the topology (node, ext, containers);
//! - [`sock`]: TCP/UDP servers and clients inside a namespace that record
//!   what arrived and from which address;
//! - [`packet`]: building and checking frames (lengths, checksums);
//! - [`prog`]: `BPF_PROG_TEST_RUN` on the real datapath programs;
//! - [`fuzz`]: generated and mutated frames through those programs, every
//!   run judged against the datapath's invariants (`cargo xtask fuzz`);
//! - [`reach`]: who reaches whom, many probes at once (isolation tests);
//! - [`stream`]: a long TCP transfer and its trace (restart tests);
//! - [`docker`]: a real dockerd inside a world's node, with an image made
//!   from busybox;
//! - [`containerd`]: containerd with its CRI plugin in a node, `weir-cni`
//!   its network, and a client of its CRI API making kubelet's calls;
//! - [`compose`]: Docker Compose apps on it, and their reachability
//!   tables, to compare weir with Docker's own rules;
//! - [`podman`]: real Podman with its CNI backend and `weir-cni`;
//! - [`netavark`]: the real netavark (Podman 5's network stack) driven as
//!   Podman drives it, `weir-netavark` its plugin;
//! - [`debian`]: a Debian 12 root made by mmdebstrap (cached), and a
//!   chroot jail to install the package in where no systemd runs;
//! - [`nspawn`]: that root booted by its own systemd in
//!   `systemd-nspawn`, to install the package where systemd runs;
//! - [`image`]: the busybox image both engines import;
//! - [`journal`]: a journald socket of the test's and `weir agent` started
//!   as systemd starts it, in mount and PID namespaces of its own;
//! - [`kube`]: kube-proxy's iptables rules for a list of Services;
//! - [`cluster`]: nodes of a Kubernetes cluster on one segment, each with
//!   its agent;
//! - [`apiserver`]: a stand-in for kube-apiserver's Node list and watch;
//! - [`bench`]: `cargo xtask bench`, weir against iptables, nftables and
//!   no NAT in the same topology.

pub mod agent;
pub mod apiserver;
pub mod bench;
pub mod cluster;
pub mod compose;
pub mod containerd;
pub mod debian;
pub mod docker;
pub mod fuzz;
pub mod image;
pub mod journal;
pub mod kube;
pub mod netavark;
pub mod netns;
pub mod nspawn;
pub mod packet;
pub mod podman;
pub mod policy_bed;
pub mod prog;
pub mod prog6;
pub mod reach;
pub mod sock;
pub mod stream;
pub mod world;

pub use netns::Netns;
pub use world::World;

use std::time::{Duration, Instant};

/// `fn NAME() -> Arc<TYPE>`: one value the tests of a file share (an
/// engine that takes seconds to start and stop), made by `MAKE` for the
/// first test that asks, dropped at exit after libtest's last test (its
/// `Drop` tears the namespaces and daemons down).
#[macro_export]
macro_rules! shared {
    ($name:ident: $ty:ty = $make:expr) => {
        fn $name() -> std::sync::Arc<$ty> {
            static SLOT: std::sync::Mutex<Option<std::sync::Arc<$ty>>> =
                std::sync::Mutex::new(None);
            extern "C" fn tear_down() {
                let value = SLOT.lock().ok().and_then(|mut s| s.take());
                drop(value);
            }
            let mut slot = SLOT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(value) = slot.as_ref() {
                return value.clone();
            }
            let value = std::sync::Arc::new($make);
            // SAFETY: registering a plain extern "C" function; it runs at
            // exit, after libtest's last test.
            unsafe { libc::atexit(tear_down) };
            *slot = Some(value.clone());
            value
        }
    };
}

/// The stdout of a command `what` ran, trimmed; panics with its stderr
/// unless it succeeded.
#[must_use]
pub fn stdout_ok(what: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `probe` until it returns `Some`, for at most `timeout`. For state
/// that the kernel updates asynchronously (a frame queued on a veth backlog
/// is processed by a softirq, maybe after the sender returned).
pub fn eventually<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Makes the program `cmd` starts get SIGKILL when the thread that
/// started it ends (`PR_SET_PDEATHSIG`): a daemon a test starts never
/// outlives a test process that was killed. A test's own teardown stops
/// it first, from the same thread.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// The processes whose parent is `parent` (from `/proc`), with the
/// `NSpid:` line of each (its pid in every PID namespace it is in, the
/// innermost last).
#[must_use]
pub fn children(parent: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
            let ppid: u32 = field("PPid:")?.trim().parse().ok()?;
            (ppid == parent).then(|| (child, field("NSpid:").unwrap_or("").trim().to_owned()))
        })
        .collect()
}
