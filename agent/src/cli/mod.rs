//! The `weir` command line. `weir agent` runs the daemon; every other
//! subcommand is a client of its API. One file per subcommand; `main.rs`
//! only calls [`main`].
//!
//! Exit codes: 0 done; 1 the agent refused or failed the request (it says
//! why); 2 the command line is wrong; 3 the agent cannot be reached.

mod agent;
mod allow;
mod cni;
mod conntrack;
mod docs;
mod endpoint;
mod maps;
mod monitor;
mod network;
mod output;
mod publish;
mod run;
mod stats;
mod status;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{api::client::ClientError, paths::DEFAULT_SOCKET};

/// `weir --version`: the crate's version, the datapath object it embeds
/// (its SHA-256, first 16 hex digits) and the nightly that built it.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (datapath ",
    env!("WEIR_DATAPATH_SHA256"),
    ", built with ",
    env!("WEIR_EBPF_TOOLCHAIN"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "weir",
    version = VERSION,
    about = "Container networking with eBPF instead of iptables"
)]
struct Cli {
    /// The agent's API socket.
    #[arg(long, global = true, env = "WEIR_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent (as root).
    Agent(agent::AgentArgs),
    /// Create, list, inspect and remove networks.
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Attach a network namespace to a network.
    Attach(endpoint::AttachArgs),
    /// Detach an endpoint (also when its namespace is already gone).
    Detach(endpoint::DetachArgs),
    /// Connect an endpoint's container to another network (Docker's `network connect`).
    Connect(endpoint::ConnectArgs),
    /// Take an endpoint's container off a network it was connected to.
    Disconnect(endpoint::DisconnectArgs),
    /// List endpoints.
    Ps(output::JsonFlag),
    /// Run a command in a fresh namespace attached to a network; detach when it exits.
    Run(run::RunArgs),
    /// Publish ports of an endpoint (Docker's -p).
    Publish(publish::PublishArgs),
    /// Withdraw published ports of an endpoint.
    Unpublish(publish::PublishArgs),
    /// List published ports (like `docker port`).
    Port(publish::PortArgs),
    /// Let only these sources reach a published port (Docker's DOCKER-USER); `ls`, `rm PORT`.
    Allow(allow::AllowArgs),
    /// List or flush tracked flows.
    #[command(subcommand)]
    Conntrack(conntrack::ConntrackCmd),
    /// Show the agent's status.
    Status(output::JsonFlag),
    /// Show packets the datapath drops, live: time, reason, interface, tuple.
    Monitor(output::JsonFlag),
    /// Show the datapath's counters: per published port, per network, per drop reason.
    Stats(output::JsonFlag),
    /// Show what every datapath map holds, named (a readable `bpftool map dump`).
    Maps(output::JsonFlag),
    /// CNI: a network configuration for `weir-cni`.
    #[command(subcommand)]
    Cni(cni::CniCmd),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(docs::CompletionsArgs),
    /// Write the man pages into a directory.
    #[command(hide = true)]
    Man(docs::ManArgs),
}

/// Parses the command line, runs it, and turns the outcome into an exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weir: error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = cli.socket;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Agent(args) => args.exec(&socket).await,
            Command::Network(cmd) => cmd.exec(&socket).await,
            Command::Attach(args) => args.exec(&socket).await,
            Command::Detach(args) => args.exec(&socket).await,
            Command::Connect(args) => args.exec(&socket).await,
            Command::Disconnect(args) => args.exec(&socket).await,
            Command::Ps(json) => endpoint::ps(&socket, json).await,
            Command::Run(args) => args.exec(&socket).await,
            Command::Publish(args) => args.exec(&socket).await,
            Command::Unpublish(args) => args.exec_unpublish(&socket).await,
            Command::Port(args) => args.exec(&socket).await,
            Command::Allow(args) => args.exec(&socket).await,
            Command::Conntrack(cmd) => cmd.exec(&socket).await,
            Command::Status(json) => status::exec(&socket, json).await,
            Command::Monitor(json) => monitor::exec(&socket, json).await,
            Command::Stats(json) => stats::exec(&socket, json).await,
            Command::Maps(json) => maps::exec(&socket, json).await,
            Command::Cni(cmd) => cmd.exec(&socket).await,
            Command::Completions(args) => args.exec(),
            Command::Man(args) => args.exec(),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weir: error: {}", crate::error::Chain(&*e));
            match e.downcast_ref::<ClientError>() {
                Some(ClientError::NotRunning { .. }) => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
