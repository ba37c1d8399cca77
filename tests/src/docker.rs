//! A real Docker engine (Debian's `docker.io`) inside a world's node, as
//! `../shared/ENGINES.md` verified it on this machine kind: `dockerd` in the
//! node's network namespace with a private mount namespace of its own
//! (`nsenter --net` plus `unshare --mount --propagation slave`), its data
//! and exec roots and socket under a temporary directory, Docker's
//! iptables, ip6tables and userland proxy off. An image is made from
//! `busybox-static` (`image`) with `docker import`, with no registry.
//!
//! Dropping it removes every container, stops dockerd and removes what it
//! leaves on the machine (`/etc/docker/key.json`, `/run/docker` when they
//! were not there before).

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{Netns, agent::Agent, eventually};

/// Debian's Docker CLI (the image may have a newer one first in `PATH`).
pub const DOCKER_CLI: &str = "/usr/bin/docker";
/// The image every test container runs.
pub const IMAGE: &str = "weirtest/busybox";

/// Whose rules do Docker's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// dockerd's defaults, its iptables rules and `docker-proxy`, with its
    /// ip6tables rules too (`--ip6tables`, behind `--experimental` in
    /// 20.10), as a dual-stack user sets dockerd.
    Docker,
    /// `--iptables=false --ip6tables=false --userland-proxy=false`: weir's
    /// (or nobody's).
    Off,
}

pub struct Docker {
    child: Option<Child>,
    rules: Rules,
    netns: PathBuf,
    bip: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// Files dockerd leaves outside its directory that were not there.
    leftovers: Vec<PathBuf>,
}

impl Docker {
    /// Starts dockerd in `node` with its default network on `bip`
    /// (`172.31.250.1/24`), waits for its API and imports the image.
    #[must_use]
    pub fn start(node: &Netns, stem: &str, bip: &str) -> Self {
        Self::start_with(node, stem, bip, Rules::Off)
    }

    /// Like [`Docker::start`], with `rules` doing Docker's job.
    #[must_use]
    pub fn start_with(node: &Netns, stem: &str, bip: &str, rules: Rules) -> Self {
        let dir = std::env::temp_dir().join(format!("{stem}-docker"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("docker dir");
        let leftovers = [
            Path::new("/etc/docker/key.json"),
            Path::new("/etc/docker"),
            Path::new("/run/docker"),
        ]
        .into_iter()
        .filter(|p| !p.exists())
        .map(Path::to_path_buf)
        .collect();
        let mut docker = Self {
            child: None,
            rules,
            netns: node.path(),
            bip: bip.to_owned(),
            socket: dir.join("docker.sock"),
            dir,
            leftovers,
        };
        docker.spawn();
        docker.import_image();
        docker
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("dockerd log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .args(["unshare", "--mount", "--propagation", "slave", "dockerd"])
            .args(match self.rules {
                Rules::Off => &[
                    "--iptables=false",
                    "--ip6tables=false",
                    "--userland-proxy=false",
                ][..],
                Rules::Docker => &["--experimental", "--ip6tables"][..],
            })
            .args(["--bip", &self.bip])
            // Containers that ignore SIGTERM (a shell loop as PID 1) stop
            // in a second when dockerd does, not ten.
            .args(["--shutdown-timeout", "1"])
            .arg("--data-root")
            .arg(self.dir.join("root"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd (is docker.io installed? cargo xtask setup installs it)");
        self.child = Some(child);
        let up = eventually(Duration::from_secs(20), || {
            self.cli(&["version"]).status.success().then_some(())
        });
        assert!(up.is_some(), "dockerd did not come up:\n{}", self.log());
    }

    /// Stops dockerd (SIGTERM: its containers stop) and starts it again
    /// with the same data: what a Docker upgrade or `systemctl restart
    /// docker` does.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a plain kill(2) on our own child (nsenter execs unshare,
            // which execs dockerd: the pid is dockerd's).
            unsafe {
                libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGTERM);
            }
            let stopped = eventually(Duration::from_secs(15), || child.try_wait().ok().flatten());
            if stopped.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn import_image(&self) {
        let tar = crate::image::busybox_tar(&self.dir.join("rootfs"));
        let mut import = self
            .command()
            .args(["import", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import");
        import
            .stdin
            .take()
            .expect("stdin")
            .write_all(&tar)
            .expect("write the image");
        assert!(import.wait().expect("docker import").success());
    }

    /// `docker -H unix://SOCKET`.
    #[must_use]
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(DOCKER_CLI);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()));
        cmd
    }

    /// Runs the Docker CLI.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run docker")
    }

    /// Runs the Docker CLI and panics unless it succeeds; returns stdout,
    /// trimmed.
    #[expect(
        clippy::must_use_candidate,
        reason = "callers often want only the success check"
    )]
    pub fn ok(&self, args: &[&str]) -> String {
        crate::stdout_ok(&format!("docker {args:?}"), &self.cli(args))
    }

    /// A container's init process, whose namespaces are the container's.
    #[must_use]
    pub fn pid(&self, container: &str) -> u32 {
        self.ok(&["inspect", "-f", "{{.State.Pid}}", container])
            .parse()
            .expect("a pid")
    }

    /// Runs `args` inside `container`'s network namespace, from the node
    /// (for tools the image lacks).
    #[must_use]
    pub fn in_container(&self, container: &str, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid(container)))
            .arg(program)
            .args(args)
            .output()
            .expect("nsenter")
    }

    /// The engine's log.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

/// `httpd` serving the image's `/www` (with `/cgi-bin/who`) on IPv4 port 80.
pub const HTTPD: &[&str] = &["httpd", "-f", "-p", "0.0.0.0:80", "-h", "/www"];
/// [`HTTPD`] on both families (`[::]:80`, which takes IPv4 too).
pub const HTTPD6: &[&str] = &["httpd", "-f", "-p", "[::]:80", "-h", "/www"];

/// Waits until `agent` has endpoint `name` (a container it follows) and
/// returns it as `weir ps --json` shows it.
#[expect(clippy::must_use_candidate, reason = "callers often only wait for it")]
pub fn endpoint(agent: &Agent, name: &str) -> serde_json::Value {
    eventually(Duration::from_secs(5), || agent.endpoint_json(name))
        .unwrap_or_else(|| panic!("weir never showed {name}:\n{}", agent.log_text()))
}

/// Waits until `agent` publishes exactly `n` ports for endpoint `name`
/// (0: none any more) and returns them as `weir port --json` shows them.
#[expect(clippy::must_use_candidate, reason = "callers often only wait for it")]
pub fn ports_of(agent: &Agent, name: &str, n: usize) -> Vec<serde_json::Value> {
    let found = eventually(Duration::from_secs(5), || {
        let ports = agent.json(&["port"]);
        let mine: Vec<serde_json::Value> = ports
            .as_array()?
            .iter()
            .filter(|p| p["endpoint"] == name)
            .cloned()
            .collect();
        (mine.len() == n).then_some(mine)
    });
    found.unwrap_or_else(|| {
        panic!(
            "weir never showed {n} ports of {name}: {}\n{}",
            agent.json(&["port"]),
            agent.log_text()
        )
    })
}

/// curl from `ns`, 5 s at most: the body, trimmed, or `None`.
#[must_use]
pub fn curl(ns: &Netns, url: &str) -> Option<String> {
    ns.curl(url).map(|body| body.trim().to_owned())
}

impl Drop for Docker {
    fn drop(&mut self) {
        let ids = self.cli(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let _ = self.command().args(["rm", "-f"]).args(&ids).output();
        }
        self.stop();
        // The overlay and netns mounts lived in dockerd's own mount
        // namespace, gone with it.
        let _ = fs::remove_dir_all(&self.dir);
        for p in &self.leftovers {
            let _ = fs::remove_file(p).or_else(|_| fs::remove_dir_all(p));
        }
    }
}
