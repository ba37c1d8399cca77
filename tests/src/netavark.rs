//! The real netavark (2.1, which `cargo xtask setup` builds from
//! crates.io; Debian's Podman 4.3 brings 1.4, which runs no plugins) in a
//! world's node, driven as Podman 5 drives it (`libnetwork/netavark` of
//! containers/common, `exec.go` and `run.go`):
//!
//! ```text
//! netavark --config RUN_DIR --rootless=false --aardvark-binary=PATH \
//!          --plugin-directory DIR setup /run/netns/CTR < options.json
//! ```
//!
//! with Podman's `NetworkOptions` on stdin (`container_id`,
//! `container_name`, `port_mappings`, `networks`, and `network_info`: each
//! network's configuration as `create` answered it and Podman stored it),
//! the status blocks or `{"error": ...}` on stdout. `weir-netavark` is in
//! the plugin directory as driver `weir` (netavark runs the file named
//! after a network's `driver`). The JSON's shapes are the files under
//! `tests/netavark/`, which [`template`] reads.
//!
//! Podman runs netavark in the host's namespaces; here the node's network
//! namespace (`nsenter --net`), the machine's mount namespace (the
//! container namespaces under `/run/netns` are the agent's to open too).
//! Dropping it removes its directory; what it set up is the test's to tear
//! down (the agent's bed removes the rest with the node).

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::Netns;

/// The driver name of weir's networks: the plugin's file name.
pub const DRIVER: &str = "weir";

/// Where Podman's aardvark-dns would be (it is passed whether it exists or
/// not; netavark runs it for its own bridge networks only).
const AARDVARK: &str = "/usr/libexec/podman/aardvark-dns";

/// The netavark setup installed (`$CARGO_HOME/weir-netavark/bin`, see
/// `xtask/src/setup.rs`), or `WEIR_NETAVARK`.
#[must_use]
pub fn netavark_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_NETAVARK") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("CARGO_HOME").map_or_else(
        || Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"),
        PathBuf::from,
    );
    let bin = home.join("weir-netavark/bin/netavark");
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask setup` installs netavark (or set WEIR_NETAVARK)",
        bin.display()
    );
    bin
}

/// One of the JSON files under `tests/netavark/`.
#[must_use]
pub fn template(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("netavark")
        .join(file);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// netavark for one node.
pub struct Netavark {
    node: PathBuf,
    pub dir: PathBuf,
    plugin: PathBuf,
}

impl Netavark {
    /// netavark in `node`, its run directory and plugin directory (with
    /// `weir-netavark`, at `plugin`, as driver [`DRIVER`]) named after
    /// `stem`.
    #[must_use]
    pub fn new(node: &Netns, stem: &str, plugin: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!("{stem}-netavark"));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["run", "plugins"] {
            fs::create_dir_all(dir.join(sub)).expect("netavark dirs");
        }
        std::os::unix::fs::symlink(plugin, dir.join("plugins").join(DRIVER)).expect("plugin link");
        Self {
            node: node.path(),
            dir,
            plugin: plugin.to_owned(),
        }
    }

    /// Runs `netavark ARGS` in the node as Podman does, with `stdin`:
    /// what it printed (`Null` for nothing), or the error it printed.
    pub fn run(&self, args: &[&str], stdin: &Value) -> Result<Value, String> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.node.display()))
            .arg(netavark_bin())
            .arg("--config")
            .arg(self.dir.join("run"))
            .arg("--rootless=false")
            .arg(format!("--aardvark-binary={AARDVARK}"))
            .arg("--plugin-directory")
            .arg(self.dir.join("plugins"))
            .args(args)
            .env("RUST_LOG", "netavark=warn");
        exchange(cmd, stdin)
    }

    /// `netavark create`, as Podman's newer libnetwork (go.podman.io)
    /// creates a network: `config` is its `NetworkCreateConfig`; netavark
    /// runs the plugin's `create` for a driver it does not have.
    pub fn create(&self, config: &Value) -> Result<Value, String> {
        self.run(&["create"], config)
    }

    /// The plugin's own `create`, as Podman 5 (containers/common's
    /// `createPlugin`) runs it: the network configuration alone.
    pub fn plugin_create(&self, network: &Value) -> Result<Value, String> {
        exchange(
            {
                let mut cmd = Command::new(&self.plugin);
                cmd.arg("create");
                cmd
            },
            network,
        )
    }

    /// `netavark setup NETNS`: the status block of each network, by name.
    pub fn setup(&self, netns: &Path, options: &Value) -> Result<Value, String> {
        self.run(&["setup", &netns.display().to_string()], options)
    }

    /// `netavark teardown NETNS`.
    pub fn teardown(&self, netns: &Path, options: &Value) -> Result<(), String> {
        self.run(&["teardown", &netns.display().to_string()], options)
            .map(drop)
    }
}

impl Drop for Netavark {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` with `stdin` on its standard input: its stdout as JSON on
/// success, or its `{"error": ...}` (or whatever it said) on failure.
fn exchange(mut cmd: Command, stdin: &Value) -> Result<Value, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.to_string().as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "{e}: {text}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    if out.status.success() {
        Ok(parsed)
    } else {
        Err(parsed["error"].as_str().map_or_else(
            || format!("{text} {}", String::from_utf8_lossy(&out.stderr)),
            str::to_owned,
        ))
    }
}

/// Podman's `NetworkOptions` for container `name` (id `id`) on
/// `networks` (each its configuration as Podman stored it, and the
/// container's options on it), publishing `ports`: `tests/netavark/
/// setup.json` with these filled in.
#[must_use]
pub fn options(id: &str, name: &str, networks: &[(&Value, Value)], ports: &Value) -> Value {
    let mut v = template("setup.json");
    v["container_id"] = id.into();
    v["container_name"] = name.into();
    v["container_hostname"] = name.into();
    v["port_mappings"] = ports.clone();
    v["networks"] = Value::Object(
        networks
            .iter()
            .map(|(n, per)| (n["name"].as_str().expect("name").to_owned(), per.clone()))
            .collect(),
    );
    v["network_info"] = Value::Object(
        networks
            .iter()
            .map(|(n, _)| (n["name"].as_str().expect("name").to_owned(), (*n).clone()))
            .collect(),
    );
    v
}

/// A container id as Podman makes them: 64 hex digits.
#[must_use]
pub fn container_id(seed: &str) -> String {
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(seed.as_bytes()))
}
