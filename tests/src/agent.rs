//! A real `weir agent` process inside a world's node, and the `weir` CLI
//! pointed at it. Each agent has its own socket, state directory and bpffs
//! root, named after the world, so agents of parallel tests never meet.
//!
//! By default the agent enters the node's network namespace with `setns`
//! only, as `nsenter --net` does; [`Launch`] also starts it the two ways
//! people sandbox a daemon (`ip netns exec` gives it a mount namespace of
//! its own, with `/sys` remounted). Its pins and the namespaces `weir run`
//! makes stay visible to the test either way.

use std::{
    fs::{self, File},
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use crate::{Netns, World, eventually};

/// The `weir` binary, built next to the test executables.
#[must_use]
pub fn weir_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("weir");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p weir` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// The `xtask` binary beside `weir` (`cargo xtask` builds it; so does
/// `cargo build -p xtask`).
#[must_use]
pub fn xtask_bin() -> PathBuf {
    let bin = weir_bin().with_file_name("xtask");
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask test` builds it",
        bin.display()
    );
    bin
}

/// How the agent process gets into the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `setns` into the node's network namespace between fork and exec.
    Setns,
    /// `ip netns exec NODE weir agent ...`: a mount namespace of its own,
    /// with a fresh sysfs on `/sys` (no bpffs, no cgroup2 there).
    IpNetnsExec,
    /// `nsenter --net=/run/netns/NODE weir agent ...`.
    NsenterNet,
}

pub struct Agent {
    child: Option<Child>,
    launch: Launch,
    netns: PathBuf,
    netns_name: String,
    args: Vec<String>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub bpffs: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// Starts an agent in `world`'s node with extra `args`, and waits until
    /// it answers.
    #[must_use]
    pub fn start(world: &World, args: &[&str]) -> Self {
        Self::launch(world, Launch::Setns, args)
    }

    /// Like [`Agent::start`], started the way `launch` says.
    #[must_use]
    pub fn launch(world: &World, launch: Launch, args: &[&str]) -> Self {
        let mut agent = Self::unstarted(world, launch, args);
        agent.spawn();
        agent
    }

    /// Starts an agent in `node` (a node of a bed other than a [`World`]'s),
    /// its files and pins named after `stem`, with `args`.
    #[must_use]
    pub fn start_in(node: &Netns, stem: &str, args: &[&str]) -> Self {
        let mut agent = Self::unstarted_in(node, stem, Launch::Setns, args);
        agent.spawn();
        agent
    }

    /// An agent not started yet; a `--bpffs DIR` among `args` replaces
    /// the world's own root.
    fn unstarted(world: &World, launch: Launch, args: &[&str]) -> Self {
        Self::unstarted_in(&world.node, world.stem(), launch, args)
    }

    fn unstarted_in(node: &Netns, stem: &str, launch: Launch, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(stem);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("agent dir");
        let bpffs = args
            .iter()
            .position(|a| *a == "--bpffs")
            .and_then(|i| args.get(i + 1))
            .map_or_else(|| Path::new("/sys/fs/bpf").join(stem), PathBuf::from);
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if *a == "--bpffs" {
                it.next();
            } else {
                rest.push((*a).to_owned());
            }
        }
        Self {
            child: None,
            launch,
            netns: node.path(),
            netns_name: node.name().to_owned(),
            args: rest,
            socket: dir.join("weir.sock"),
            bpffs,
            log: dir.join("agent.log"),
            dir,
        }
    }

    /// Starts an agent the way `launch` says with `args`, expects it to
    /// refuse (exit code 1, its API socket not left behind) and returns
    /// what it said.
    #[must_use]
    pub fn fails_to_start(world: &World, launch: Launch, args: &[&str]) -> String {
        let agent = Self::unstarted(world, launch, args);
        let ns = File::open(&agent.netns).expect("node netns");
        let out = agent
            .agent_command(&ns)
            .args(&agent.args)
            .output()
            .expect("run weir agent");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "weir agent {args:?}: {err}");
        assert!(
            !agent.socket.exists(),
            "a refused start left {}",
            agent.socket.display()
        );
        err
    }

    fn spawn(&mut self) {
        self.spawn_within(Duration::from_secs(10));
    }

    /// Starts the agent and waits up to `within` for its API to answer.
    fn spawn_within(&mut self, within: Duration) {
        let ns = File::open(&self.netns).expect("node netns");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let mut cmd = self.agent_command(&ns);
        cmd.args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn weir agent"));
        let up = eventually(within, || {
            self.weir(&["status"]).status.success().then_some(())
        });
        assert!(
            up.is_some(),
            "the agent did not come up:\n{}",
            self.log_text()
        );
    }

    /// `weir agent` with this agent's socket, state directory and bpffs
    /// root, started in the node (open as `ns`) the agent's way.
    fn agent_command(&self, ns: &File) -> Command {
        let mut cmd = match self.launch {
            Launch::Setns => {
                let mut cmd = Command::new(weir_bin());
                weir::netns::spawn_in(&mut cmd, ns);
                cmd
            }
            Launch::IpNetnsExec => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &self.netns_name])
                    .arg(weir_bin());
                cmd
            }
            Launch::NsenterNet => {
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net={}", self.netns.display()))
                    .arg(weir_bin());
                cmd
            }
        };
        cmd.arg("--socket")
            .arg(&self.socket)
            .arg("agent")
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--bpffs")
            .arg(&self.bpffs)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs the `weir` CLI against this agent (from the test's namespace).
    #[must_use]
    pub fn weir(&self, args: &[&str]) -> Output {
        Command::new(weir_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run weir")
    }

    /// Like [`Agent::weir`], but panics unless it succeeds; returns stdout.
    #[expect(
        clippy::must_use_candidate,
        reason = "callers often want only the success check"
    )]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.weir(args);
        assert!(
            out.status.success(),
            "weir {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the `weir` CLI and expects the agent to refuse (exit code 1);
    /// returns what it said on stderr.
    #[must_use]
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.weir(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "weir {args:?} should be refused"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `weir attach NETWORK --netns NS --name NAME [more]`; returns the
    /// endpoint's address.
    #[expect(
        clippy::must_use_candidate,
        reason = "callers often want only the success check"
    )]
    pub fn attach(&self, network: &str, ns: &Netns, name: &str, more: &[&str]) -> Ipv4Addr {
        let path = ns.path();
        let mut args = vec![
            "attach",
            network,
            "--netns",
            path.to_str().expect("utf-8 path"),
            "--name",
            name,
        ];
        args.extend_from_slice(more);
        let out = self.ok(&args);
        out.split_whitespace()
            .nth(1)
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("weir attach printed {out:?}"))
    }

    /// Packets dropped for reason `number`, summed over CPUs, read from
    /// the pinned `DROP_STATS` with bpftool.
    #[must_use]
    pub fn drops(&self, number: u32) -> u64 {
        let path = self.bpffs.join("maps").join("DROP_STATS");
        let key: Vec<String> = number.to_le_bytes().iter().map(u8::to_string).collect();
        let mut args = vec![
            "-j",
            "map",
            "lookup",
            "pinned",
            path.to_str().expect("utf-8 path"),
            "key",
        ];
        args.extend(key.iter().map(String::as_str));
        let out = Command::new("bpftool")
            .args(&args)
            .output()
            .expect("bpftool");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        // With BTF, bpftool puts the decoded value under "formatted".
        v["formatted"]["values"]
            .as_array()
            .expect("per-CPU values")
            .iter()
            .map(|c| c["value"]["packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// `weir monitor --json`, running: its events as they come.
    #[must_use]
    pub fn monitor(&self) -> Monitor {
        let mut child = Command::new(weir_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(["monitor", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run weir monitor");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Monitor { child, rx }
    }

    /// Endpoint `name` as `weir ps --json` shows it, if the agent has it.
    #[must_use]
    pub fn endpoint_json(&self, name: &str) -> Option<serde_json::Value> {
        self.json(&["ps"])
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
    }

    /// `weir ARGS --json`, parsed.
    #[must_use]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).expect("JSON from weir")
    }

    /// Stops the agent (SIGTERM) and runs `weir agent --cleanup` in the
    /// node with the same directories; returns what it printed.
    pub fn stop_and_clean_up(&mut self) -> Output {
        self.stop();
        let ns = File::open(&self.netns).expect("node netns");
        self.agent_command(&ns)
            .arg("--cleanup")
            .output()
            .expect("run weir agent --cleanup")
    }

    /// Stops the agent with SIGTERM (a clean stop), or SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: a plain kill(2) on our own child.
            unsafe {
                libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGTERM);
            }
        }
        if let Some(mut child) = self.child.take() {
            let stopped = eventually(Duration::from_secs(5), || child.try_wait().ok().flatten());
            if stopped.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Kills the agent with SIGKILL: no cleanup of any kind runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again with the same arguments and directories.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills the agent and starts it again, waiting up to `within` for it
    /// to answer: the time from the start to the first answer (to within
    /// the 10 ms of the poll).
    pub fn restart_timed(&mut self, within: Duration) -> Duration {
        self.kill();
        let t = std::time::Instant::now();
        self.spawn_within(within);
        t.elapsed()
    }

    /// The agent process's id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Starts the agent again on the same directories with `more`
    /// arguments, for this start alone.
    pub fn restart_with(&mut self, more: &[&str]) {
        self.kill();
        let args = self.args.clone();
        self.args.extend(more.iter().map(|a| (*a).to_owned()));
        self.spawn();
        self.args = args;
    }

    /// Runs `weir agent` on this agent's directories with `more`
    /// arguments (the agent stopped), expects it to refuse (exit code 1)
    /// and returns what it said.
    #[must_use]
    pub fn refused_start(&mut self, more: &[&str]) -> String {
        self.kill();
        let ns = File::open(&self.netns).expect("node netns");
        let out = self
            .agent_command(&ns)
            .args(&self.args)
            .args(more)
            .output()
            .expect("run weir agent");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "weir agent {more:?}: {err}");
        err
    }

    /// The agent's state directory (`--state-dir`).
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Everything the agent logged so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A running `weir monitor --json`; killed when dropped.
pub struct Monitor {
    child: Child,
    rx: mpsc::Receiver<serde_json::Value>,
}

impl Monitor {
    /// The first event (a JSON object) for which `want` holds, calling
    /// `provoke` every 200 ms until one comes or `timeout` passes (the
    /// watcher subscribes a moment after it starts).
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut provoke: impl FnMut(),
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            provoke();
            while let Ok(v) = self.rx.recv_timeout(Duration::from_millis(200)) {
                if want(&v) {
                    return Some(v);
                }
            }
        }
        None
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        // Removing the pins detaches the programs (the links are pinned).
        let _ = fs::remove_dir_all(&self.bpffs);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
