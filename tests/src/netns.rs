//! Network namespaces made by the test bed, named `weirt-<pid>-<n>-<role>`
//! so that parallel tests never collide and a stale one (its process gone)
//! can be recognised and swept.

use std::{
    io,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

/// Prefix of every namespace the test bed makes. `cargo xtask test` sweeps
/// the ones whose process is gone, and fails when a run leaves any behind.
pub const PREFIX: &str = "weirt-";

/// A unique stem for the namespaces of one world: `weirt-<pid>-<n>`.
#[must_use]
pub fn unique_stem() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its `lo` up.
    pub fn create(name: &str) -> io::Result<Self> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Names the network namespace of process `pid` (a container another
    /// engine made) `name` (`ip netns attach`); dropping it removes the
    /// name only, the namespace lives on with its process.
    pub fn attach(name: &str, pid: u32) -> io::Result<Self> {
        run(Command::new("ip").args(["netns", "attach", name, &pid.to_string()]))?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, as `weir attach --netns` takes it.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NAME ARGS...`, failing with its stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// The MAC of interface `dev` in this namespace.
    pub fn mac(&self, dev: &str) -> io::Result<[u8; 6]> {
        let out = self.ip(&["-o", "link", "show", "dev", dev])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let bad = || io::Error::other(format!("no MAC for {dev} in {text:?}"));
        let hex = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(bad)?;
        let mut mac = [0u8; 6];
        let mut parts = hex.split(':');
        for byte in &mut mac {
            *byte = parts
                .next()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)?;
        }
        Ok(mac)
    }

    /// A command that runs `program` inside this namespace.
    #[must_use]
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program ARGS...` inside the namespace, failing with its stderr.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        run(self.command(program).args(args))
    }

    /// `curl` from inside the namespace, 5 s at most: the body, or `None`
    /// when it fails.
    #[must_use]
    pub fn curl(&self, url: &str) -> Option<String> {
        let out = self.exec("curl", &["-sS", "--max-time", "5", url]).ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sets a per-namespace sysctl, e.g. `net.ipv4.ip_forward`.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its
    /// result (a panic in `f` is passed on). Sockets made in `f` stay in the
    /// namespace.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = self.path();
        thread::scope(|s| {
            s.spawn(move || {
                weir::netns::enter(&path).expect("setns into the test namespace");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("test bed: deleting netns {}: {e}", self.name);
        }
    }
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
