//! Docker Compose apps in the test bed: Debian's `docker-compose` (1.29)
//! driving a [`Docker`] engine, and the probes that make an app's
//! reachability table (who reaches whom, from outside, from the node, by
//! name, and which address the other end sees), so that the same app can
//! be compared under weir and under Docker's own rules.
//!
//! Addresses differ between two engines (each hands out its subnets in
//! the order its networks are made), so the table names them: `ext`,
//! `node`, a compose service's container (`web`, any replica alike), a
//! network's gateway (`gateway front`).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{
    Netns, World,
    docker::Docker,
    sock::Server,
    world::{EXT_IP, EXT_IP6, NODE_UPLINK_IP, NODE_UPLINK_IP6},
};

/// The compose files, under `tests/compose/`.
#[must_use]
pub fn file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compose")
        .join(name)
}

/// One compose project on one engine, taken down when dropped.
pub struct Project<'a> {
    pub docker: &'a Docker,
    pub name: String,
    file: PathBuf,
}

impl<'a> Project<'a> {
    /// `docker-compose up -d` of `file` as project `name`, waiting until
    /// its containers run.
    #[must_use]
    pub fn up(docker: &'a Docker, name: &str, file: PathBuf) -> Self {
        let project = Self {
            docker,
            name: name.to_owned(),
            file,
        };
        project.ok(&["up", "-d"]);
        project
    }

    /// `docker-compose -p NAME -f FILE ARGS` against this engine.
    #[must_use]
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.env(
            "DOCKER_HOST",
            format!("unix://{}", self.docker.socket.display()),
        )
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .arg("--no-ansi")
        .args(["-p", &self.name, "-f"])
        .arg(&self.file)
        .args(args);
        cmd
    }

    /// Runs docker-compose; panics unless it succeeds; stdout, trimmed.
    #[expect(
        clippy::must_use_candidate,
        reason = "callers often want only the success check"
    )]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run docker-compose");
        crate::stdout_ok(&format!("docker-compose {args:?}"), &out)
    }

    /// The container of `service` number `n` (compose 1.29's name).
    #[must_use]
    pub fn container(&self, service: &str, n: u32) -> String {
        format!("{}_{service}_{n}", self.name)
    }

    /// Runs `script` with `sh -c` in a container; its output.
    #[must_use]
    pub fn exec(&self, container: &str, script: &str) -> Output {
        self.docker
            .command()
            .args(["exec", container, "sh", "-c", script])
            .output()
            .expect("docker exec")
    }

    /// Every address of the project's containers and networks, named.
    #[must_use]
    pub fn names(&self) -> BTreeMap<IpAddr, String> {
        let mut names = BTreeMap::from([
            (IpAddr::from(EXT_IP), "ext".to_owned()),
            (IpAddr::from(EXT_IP6), "ext".to_owned()),
            (IpAddr::from(NODE_UPLINK_IP), "node".to_owned()),
            (IpAddr::from(NODE_UPLINK_IP6), "node".to_owned()),
        ]);
        let label = format!("label=com.docker.compose.project={}", self.name);
        let prefix = format!("{}_", self.name);
        let ids = self.docker.ok(&["ps", "-q", "--filter", &label]);
        for id in ids.split_whitespace() {
            let c: serde_json::Value =
                serde_json::from_str(&self.docker.ok(&["inspect", id])).expect("inspect json");
            let c = &c[0];
            // `PROJECT_SERVICE_N` is named by its service: replicas alike.
            let name = c["Name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/');
            let name = name.strip_prefix(&prefix).unwrap_or(name);
            let name = name
                .rsplit_once('_')
                .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                .map_or(name, |(service, _)| service)
                .to_owned();
            for net in c["NetworkSettings"]["Networks"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for key in ["IPAddress", "GlobalIPv6Address"] {
                    if let Some(ip) = net[key].as_str().and_then(|s| s.parse().ok()) {
                        names.insert(ip, name.clone());
                    }
                }
            }
        }
        let nets = self.docker.ok(&["network", "ls", "-q", "--filter", &label]);
        for id in nets.split_whitespace() {
            let n: serde_json::Value =
                serde_json::from_str(&self.docker.ok(&["network", "inspect", id]))
                    .expect("network json");
            let n = &n[0];
            let name = n["Name"].as_str().unwrap_or_default();
            let name = name.strip_prefix(&prefix).unwrap_or(name);
            for config in n["IPAM"]["Config"].as_array().into_iter().flatten() {
                if let Some(ip) = config["Gateway"].as_str().and_then(|s| s.parse().ok()) {
                    names.insert(ip, format!("gateway {name}"));
                }
            }
        }
        names
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        let _ = self.command(&["down", "-v", "-t", "1"]).output();
    }
}

/// How a probe ended: `ok: <who the other end saw>`, or `no`.
fn outcome(answer: Option<String>, names: &BTreeMap<IpAddr, String>) -> String {
    let Some(answer) = answer else {
        return "no".to_owned();
    };
    // `hello ADDRESS` (the image's `/cgi-bin/who`) or `hello ADDRESS:PORT`
    // (the bed's banner server).
    let Some(who) = answer.lines().find_map(|l| l.trim().strip_prefix("hello ")) else {
        return "no".to_owned();
    };
    // busybox httpd writes an IPv6 peer in brackets, the banner server
    // `[ADDRESS]:PORT`.
    let bare = who.trim_start_matches('[').trim_end_matches(']');
    let ip: Option<IpAddr> = bare
        .parse()
        .ok()
        .or_else(|| who.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
    let ip = ip.map(|ip| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    });
    match ip {
        Some(ip) => format!(
            "ok: {}",
            names.get(&ip).cloned().unwrap_or_else(|| ip.to_string())
        ),
        None => format!("ok: {who}"),
    }
}

/// One side of a comparison: an engine in a world, and its table.
pub struct Table<'a> {
    pub world: &'a World,
    pub project: &'a Project<'a>,
    names: BTreeMap<IpAddr, String>,
    pub rows: Vec<(String, String)>,
}

impl<'a> Table<'a> {
    #[must_use]
    pub fn new(world: &'a World, project: &'a Project<'a>) -> Self {
        Self {
            world,
            project,
            names: project.names(),
            rows: Vec::new(),
        }
    }

    /// Learns the project's addresses again (after a restart or a scale).
    pub fn rename(&mut self) {
        self.names = self.project.names();
    }

    fn row(&mut self, what: String, answer: Option<String>) {
        let outcome = outcome(answer, &self.names);
        self.rows.push((what, outcome));
    }

    /// `GET /cgi-bin/who` from ext to the node's uplink address (`v6`: its
    /// IPv6 address) and `port`.
    pub fn from_outside(&mut self, port: u16, v6: bool) {
        let url = if v6 {
            format!("http://[{NODE_UPLINK_IP6}]:{port}/cgi-bin/who")
        } else {
            format!("http://{NODE_UPLINK_IP}:{port}/cgi-bin/who")
        };
        let answer = curl(&self.world.ext, &url);
        let family = if v6 { "IPv6" } else { "IPv4" };
        self.row(format!("outside -> node:{port} over {family}"), answer);
    }

    /// `GET /cgi-bin/who` from the node itself to `host:port`.
    pub fn from_node(&mut self, host: &str, port: u16) {
        let answer = curl(
            &self.world.node,
            &format!("http://{host}:{port}/cgi-bin/who"),
        );
        self.row(format!("node -> {host}:{port}"), answer);
    }

    /// `GET /cgi-bin/who` from `container` to `host:port` (a name Docker's
    /// DNS answers, an address).
    pub fn from_container(&mut self, container: &str, host: &str, port: u16) {
        let script =
            format!("printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port}");
        let out = self.project.exec(container, &script);
        let answer = out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned());
        let short = self.short(container);
        self.row(format!("{short} -> {host}:{port}"), answer);
    }

    /// `container` to a banner server of ext's (`v6`: on ext's IPv6
    /// address): who ext saw.
    pub fn to_outside(&mut self, container: &str, v6: bool) {
        let ext: IpAddr = if v6 { EXT_IP6.into() } else { EXT_IP.into() };
        let server = Server::banner(&self.world.ext, (ext, 0).into()).expect("banner server");
        let port = server.addr().port();
        let host = if v6 {
            format!("{EXT_IP6}")
        } else {
            ext.to_string()
        };
        let out = self
            .project
            .exec(container, &format!("nc -w 2 {host} {port} </dev/null"));
        let answer = out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            .filter(|a| !a.trim().is_empty());
        let short = self.short(container);
        let family = if v6 { "IPv6" } else { "IPv4" };
        self.row(format!("{short} -> outside over {family}"), answer);
    }

    fn short(&self, container: &str) -> String {
        let prefix = format!("{}_", self.project.name);
        container
            .strip_prefix(&prefix)
            .unwrap_or(container)
            .to_owned()
    }
}

/// curl from `ns`, 5 s at most: the body, or `None` when nothing answered.
fn curl(ns: &Netns, url: &str) -> Option<String> {
    let out = ns
        .exec("curl", &["-sS", "-g", "--max-time", "5", url])
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Panics, showing both columns, unless the two tables agree row by row.
pub fn assert_same(weir: &[(String, String)], docker: &[(String, String)]) {
    let mut text = String::new();
    let mut differ = weir.len() != docker.len();
    let _ = writeln!(text, "{:<44} {:<26} Docker's own rules", "", "weir");
    for (i, (what, w)) in weir.iter().enumerate() {
        let d = docker.get(i).map_or("(missing)", |(_, d)| d.as_str());
        let mark = if w == d { " " } else { "!" };
        differ |= w != d;
        let _ = writeln!(text, "{mark} {what:<42} {w:<26} {d}");
    }
    assert!(!differ, "the reachability tables differ:\n{text}");
    eprintln!("reachability, the same under weir and Docker's own rules:\n{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_named() {
        let names = BTreeMap::from([(IpAddr::from(EXT_IP), "ext".to_owned())]);
        let labelled = |a: &str| outcome(Some(a.to_owned()), &names);
        assert_eq!(labelled("hello 203.0.113.2"), "ok: ext");
        assert_eq!(labelled("hello [::ffff:203.0.113.2]\n"), "ok: ext");
        assert_eq!(labelled("hello 203.0.113.2:4711"), "ok: ext");
        assert_eq!(labelled("hello [fd00::1]:80"), "ok: fd00::1");
        assert_eq!(labelled("hello 127.0.0.1"), "ok: 127.0.0.1");
        assert_eq!(labelled("<html>404</html>"), "no");
        assert_eq!(outcome(None, &names), "no");
    }
}
