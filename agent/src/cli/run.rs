//! `weir run`: a container without an image. A fresh network namespace,
//! attached to a network; the command runs inside it with the terminal's
//! input and output; when it exits the endpoint is detached and the
//! namespace removed, and `weir run` exits with the command's code;
//! SIGTERM and SIGHUP are passed on to the command, so they end in a
//! detach too. On a
//! network with names the command's `/etc/resolv.conf` (a private mount)
//! points at the network's gateway, where the agent answers them.

use std::{
    fs::File,
    path::Path,
    process::{Command, ExitCode},
};

use anyhow::Context as _;
use clap::Args;

use super::agent::DEFAULT_NETWORK;
use crate::{
    api::client::Client,
    api::types::{AttachRequest, Endpoint, NetworkView},
    netns,
    paths::run_netns_path,
};

#[derive(Args)]
pub struct RunArgs {
    /// The network to attach to; more than once for an interface on each
    /// (the first keeps the default route).
    #[arg(long = "network", default_value = DEFAULT_NETWORK)]
    networks: Vec<String>,
    /// The endpoint's name (default: run<pid>).
    #[arg(long)]
    name: Option<String>,
    /// Publish a port, as `docker run -p`: `[HOST_IP:][HOST_PORT[-END]:]CPORT[-END][/tcp|udp]`.
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    ports: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl RunArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let name = self
            .name
            .unwrap_or_else(|| format!("run{}", std::process::id()));
        let path = run_netns_path(socket, &name);
        let signals = Signals::catch()?;
        netns::create(&path).with_context(|| format!("creating namespace {}", path.display()))?;
        let client = Client::new(socket);
        let mut networks = self.networks.into_iter();
        let req = AttachRequest {
            network: networks
                .next()
                .unwrap_or_else(|| DEFAULT_NETWORK.to_owned()),
            netns: path.clone(),
            name: Some(name.clone()),
            ip: None,
            ip6: None,
            ports: self.ports,
            ifname: None,
            mac: None,
            networks: networks.collect(),
        };
        let ep: Endpoint = match client.post("/v1/endpoints", &req).await {
            Ok(ep) => ep,
            Err(e) => {
                let _ = netns::remove(&path);
                return Err(e.into());
            }
        };
        eprintln!("weir: {} on {} as {}", ep.name, ep.network, ep.addresses());
        for m in &ep.ports {
            eprintln!("weir: published {m}");
        }
        // The terminal's ^C goes to the command; weir run stays to clean up.
        tokio::spawn(async {
            loop {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        // Whatever happens once attached (the agent gone mid-way too), the
        // endpoint is detached and the namespace removed.
        let outcome = attached(&client, &path, &ep, &self.command, signals).await;
        let detached = client
            .delete::<Endpoint>(&format!("/v1/endpoints/{name}"))
            .await;
        let removed = netns::remove(&path);
        let status = outcome?;
        detached?;
        removed.with_context(|| format!("removing namespace {}", path.display()))?;
        Ok(ExitCode::from(
            u8::try_from(status.code().unwrap_or(128)).unwrap_or(1),
        ))
    }
}

/// The command run in the attached namespace at `path`, with a
/// `resolv.conf` of the network's names server where it has one.
async fn attached(
    client: &Client,
    path: &Path,
    ep: &Endpoint,
    command: &[String],
    signals: Signals,
) -> anyhow::Result<std::process::ExitStatus> {
    let view: NetworkView = client.get(&format!("/v1/networks/{}", ep.network)).await?;
    let resolv = match view.dns {
        Some(server) => {
            let file = path.with_extension("resolv.conf");
            std::fs::write(&file, crate::dns::resolv_conf(server))
                .context("writing the command's resolv.conf")?;
            Some(file)
        }
        None => None,
    };
    let outcome = run_in(path, resolv.as_deref(), command, signals).await;
    if let Some(file) = &resolv {
        let _ = std::fs::remove_file(file);
    }
    outcome
}

async fn run_in(
    netns_path: &Path,
    resolv_conf: Option<&Path>,
    argv: &[String],
    signals: Signals,
) -> anyhow::Result<std::process::ExitStatus> {
    let ns = File::open(netns_path)?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    netns::spawn_in(&mut cmd, &ns);
    if let Some(file) = resolv_conf {
        netns::resolv_conf_in(&mut cmd, file)?;
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting `{}`", argv[0]))?;
    let forwarding = forward_signals(signals, child.id())?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    forwarding.abort();
    drop(ns);
    Ok(status)
}

/// Passes SIGTERM and SIGHUP (`systemctl stop`, `timeout`, a closed
/// terminal) on to the command, so that `weir run` outlives it and
/// detaches; SIGINT is ignored as ever (a terminal's ^C reaches the
/// command itself).
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Caught from the start, before anything is made: one that comes
    /// before the command does is passed on as soon as it runs.
    fn catch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("catching SIGHUP")?,
        })
    }
}

fn forward_signals(
    Signals { mut term, mut hup }: Signals,
    pid: u32,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let pid = libc::pid_t::try_from(pid).context("the command's pid")?;
    Ok(tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
            };
            // SAFETY: a signal to the child this process started and
            // has not reaped yet (the wait is still running).
            unsafe { libc::kill(pid, sig) };
        }
    }))
}
