//! containerd (Debian's 1.6, with its CRI plugin: kubelet's runtime) in a
//! node of the bed: started in the node's network namespace (`nsenter
//! --net`) but in the machine's mount namespace, as a real node's runs
//! beside its CNI agent (the pods' namespace files it makes must be the
//! agent's to open), its root, state, sockets and those namespace files
//! under a directory of its own, `weir-cni` as its only
//! CNI network, and images imported from `busybox-static` (no registry),
//! and a client of its CRI API speaking kubelet's calls (the `k8s-cri`
//! crate over the Unix socket). Dropping it removes every pod (CNI DEL),
//! stops containerd and removes its directory.

use std::{
    collections::HashMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, PortMapping, Protocol, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StatusRequest, StopPodSandboxRequest,
    runtime_service_client::RuntimeServiceClient,
};
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{Netns, eventually};

/// The pod sandbox ("pause") image and the workload image, both imported.
pub const PAUSE: &str = "weirtest/pause:1";
pub const BUSYBOX: &str = "weirtest/busybox:1";

/// One containerd in a node.
pub struct Containerd {
    child: Option<Child>,
    /// The node's network namespace.
    node: PathBuf,
    pub dir: PathBuf,
    pub socket: PathBuf,
    runtime: tokio::runtime::Runtime,
    cri: RuntimeServiceClient<Channel>,
    /// The pods it made, removed on drop.
    pods: Vec<String>,
}

/// A pod's published port (kubelet's `hostPort`).
#[derive(Clone, Copy, Debug)]
pub struct HostPort {
    pub container_port: u16,
    pub host_port: u16,
    pub udp: bool,
}

impl Containerd {
    /// Starts containerd in `node` with `weir-cni` (at `weir_cni`) talking
    /// to the agent at `agent_socket` on network `network`.
    #[must_use]
    pub fn start(
        node: &Netns,
        stem: &str,
        weir_cni: &Path,
        agent_socket: &Path,
        network: &str,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("{stem}-containerd"));
        let _ = fs::remove_dir_all(&dir);
        let (bin, conf) = (dir.join("cni/bin"), dir.join("cni/net.d"));
        fs::create_dir_all(&bin).expect("cni bin dir");
        fs::create_dir_all(&conf).expect("cni conf dir");
        std::os::unix::fs::symlink(weir_cni, bin.join("weir-cni")).expect("weir-cni link");
        // containerd always adds a loopback network.
        std::os::unix::fs::symlink("/usr/lib/cni/loopback", bin.join("loopback"))
            .expect("loopback link (containernetworking-plugins; cargo xtask setup installs it)");
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [{
                "type": "weir-cni",
                "network": network,
                "socket": agent_socket,
                "capabilities": {"portMappings": true}
            }]
        });
        fs::write(conf.join("10-weir.conflist"), conflist.to_string()).expect("conflist");
        let socket = dir.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
            bin = bin.display(),
            conf = conf.display(),
        );
        fs::write(dir.join("config.toml"), config).expect("config.toml");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let child = spawn(&node.path(), &dir, &socket);
        let cri = connect(&runtime, &socket);
        let mut containerd = Self {
            child: Some(child),
            node: node.path(),
            dir,
            socket,
            runtime,
            cri,
            pods: Vec::new(),
        };
        containerd.ready();
        containerd.import(PAUSE, &["/bin/sleep", "1000000"]);
        containerd.import(BUSYBOX, &["/bin/sh"]);
        containerd
    }

    /// Imports the busybox root filesystem as image `name` with `cmd`, a
    /// `docker save` archive made here, into the CRI's namespace.
    fn import(&self, name: &str, cmd: &[&str]) {
        let archive = docker_archive(&self.dir.join("rootfs"), name, cmd);
        let mut ctr = Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", "k8s.io", "images", "import", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr");
        ctr.stdin
            .take()
            .expect("stdin")
            .write_all(&archive)
            .expect("write the image");
        let out = ctr.wait_with_output().expect("ctr import");
        assert!(
            out.status.success(),
            "ctr images import {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `RunPodSandbox` as kubelet sends it for pod `name` with `ports`;
    /// its sandbox id.
    pub fn run_pod(&mut self, name: &str, ports: &[HostPort]) -> Result<String, tonic::Status> {
        let config = sandbox_config(name, ports, &self.dir);
        fs::create_dir_all(&config.log_directory).expect("log dir");
        let id = self
            .runtime
            .block_on(self.cri.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            }))?
            .into_inner()
            .pod_sandbox_id;
        self.pods.push(id.clone());
        Ok(id)
    }

    /// The pod's IP, as `PodSandboxStatus` reports it.
    pub fn pod_ip(&mut self, id: &str) -> Result<String, tonic::Status> {
        let status = self
            .runtime
            .block_on(self.cri.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_owned(),
                verbose: false,
            }))?
            .into_inner();
        Ok(status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default())
    }

    /// `CreateContainer` and `StartContainer` of `args` in the busybox
    /// image in pod `id` (named `name`, made with `ports`).
    pub fn start_container(
        &mut self,
        id: &str,
        name: &str,
        ports: &[HostPort],
        args: &[&str],
    ) -> Result<String, tonic::Status> {
        let container = self
            .runtime
            .block_on(self.cri.create_container(CreateContainerRequest {
                pod_sandbox_id: id.to_owned(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "main".to_owned(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: BUSYBOX.to_owned(),
                        ..Default::default()
                    }),
                    command: args.iter().map(|&a| a.to_owned()).collect(),
                    log_path: "main.log".to_owned(),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox_config(name, ports, &self.dir)),
            }))?
            .into_inner()
            .container_id;
        self.runtime
            .block_on(self.cri.start_container(StartContainerRequest {
                container_id: container.clone(),
            }))?;
        Ok(container)
    }

    /// `StopPodSandbox` (CNI DEL) and `RemovePodSandbox` of pod `id`.
    pub fn remove_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .block_on(self.cri.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            }))?;
        self.runtime
            .block_on(self.cri.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            }))?;
        self.pods.retain(|p| p != id);
        Ok(())
    }

    /// containerd's log.
    #[must_use]
    pub fn log(&self) -> String {
        read(&self.dir.join("containerd.log"))
    }

    /// Stops containerd (SIGTERM: its pods live on in their shims) and
    /// starts it again on the same directory, as an upgrade or
    /// `systemctl restart containerd` does.
    pub fn restart(&mut self) {
        self.stop();
        let _ = fs::remove_file(&self.socket);
        self.child = Some(spawn(&self.node, &self.dir, &self.socket));
        self.cri = connect(&self.runtime, &self.socket);
        self.ready();
    }

    /// Waits until the CRI says its runtime and network are ready (its
    /// socket answers before its server is initialised).
    fn ready(&mut self) {
        let ready = eventually(Duration::from_secs(20), || {
            let status = self
                .runtime
                .block_on(self.cri.status(StatusRequest { verbose: false }))
                .ok()?
                .into_inner()
                .status?;
            let up = status
                .conditions
                .iter()
                .filter(|c| c.r#type == "RuntimeReady" || c.r#type == "NetworkReady")
                .filter(|c| c.status)
                .count();
            (up == 2).then_some(())
        });
        assert!(
            ready.is_some(),
            "containerd's CRI never got ready:\n{}",
            self.log()
        );
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a plain kill(2) on our own child (nsenter execs
            // containerd: the pid is containerd's).
            unsafe {
                libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGTERM);
            }
            if eventually(Duration::from_secs(10), || child.try_wait().ok().flatten()).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts containerd in network namespace `node` with the configuration
/// in `dir`; waits for its socket.
fn spawn(node: &Path, dir: &Path, socket: &Path) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .expect("log");
    let child = Command::new("nsenter")
        .arg(format!("--net={}", node.display()))
        .arg("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn containerd (is containerd installed? cargo xtask setup installs it)");
    let up = eventually(Duration::from_secs(20), || socket.exists().then_some(()));
    assert!(
        up.is_some(),
        "containerd did not come up:\n{}",
        read(&dir.join("containerd.log"))
    );
    child
}

/// A client of the CRI at `socket`.
fn connect(runtime: &tokio::runtime::Runtime, socket: &Path) -> RuntimeServiceClient<Channel> {
    let path = socket.to_owned();
    let channel = runtime
        .block_on(async move {
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
        })
        .expect("the CRI socket");
    RuntimeServiceClient::new(channel)
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.pods.clone() {
            let _ = self.remove_pod(&id);
        }
        self.stop();
        // The shims (one per pod) outlive containerd: end them; then what
        // is still mounted under the directory (a rootfs, a namespace file).
        let _ = Command::new("pkill")
            .args(["-f", &format!("containerd-shim.*{}", self.dir.display())])
            .status();
        let _ = Command::new("umount")
            .args(["-R", "-l"])
            .arg(&self.dir)
            .status();
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let dir = self.dir.display().to_string();
        for target in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
            if target.starts_with(&dir) {
                let _ = Command::new("umount").args(["-l", target]).status();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The sandbox config kubelet sends for pod `name` with `ports` (its own
/// network namespace, the container's PID namespace, a log directory).
fn sandbox_config(name: &str, ports: &[HostPort], dir: &Path) -> PodSandboxConfig {
    let uid = format!("{:x}", Sha256::digest(name.as_bytes()))[..32].to_owned();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.clone(),
            namespace: "default".to_owned(),
            attempt: 0,
        }),
        hostname: name.to_owned(),
        log_directory: dir
            .join("pods")
            .join(format!("default_{name}_{uid}"))
            .display()
            .to_string(),
        port_mappings: ports
            .iter()
            .map(|p| PortMapping {
                protocol: if p.udp { Protocol::Udp } else { Protocol::Tcp } as i32,
                container_port: i32::from(p.container_port),
                host_port: i32::from(p.host_port),
                host_ip: String::new(),
            })
            .collect(),
        labels: HashMap::from([("app".to_owned(), name.to_owned())]),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A `docker save` archive of the busybox root filesystem (made in
/// `rootfs`) as image `name` running `cmd`: one layer, its config and the
/// manifest, which `ctr images import` reads.
fn docker_archive(rootfs: &Path, name: &str, cmd: &[&str]) -> Vec<u8> {
    let layer = crate::image::busybox_tar(rootfs);
    let diff_id = format!("{:x}", Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]}
    })
    .to_string();
    let config_id = format!("{:x}", Sha256::digest(config.as_bytes()));
    let manifest = serde_json::json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": [name],
        "Layers": [format!("{diff_id}/layer.tar")]
    }])
    .to_string();
    let staging = rootfs.with_extension(format!("archive-{config_id}"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(staging.join(&diff_id)).expect("archive dir");
    fs::write(staging.join(&diff_id).join("layer.tar"), &layer).expect("layer");
    fs::write(staging.join(format!("{config_id}.json")), config).expect("config");
    fs::write(staging.join("manifest.json"), manifest).expect("manifest");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&staging)
        .args(["-c", "."])
        .output()
        .expect("tar");
    assert!(tar.status.success(), "tar of {}", staging.display());
    let _ = fs::remove_dir_all(&staging);
    tar.stdout
}
