//! `weir-netavark`: a netavark plugin (Podman 5's network stack), a thin
//! client of the agent's API like `weir-cni`. netavark runs it as the
//! driver of a network whose `driver` is the plugin's file name in a
//! `--plugin-directory` (`weir`), with a subcommand and JSON on stdin:
//! `info`, `create` (Podman's `network create`), `setup NETNS` and
//! `teardown NETNS` (a container's start and stop, `network connect` and
//! `disconnect`). It maps that JSON onto the agent's `/v1/netavark/*`
//! routes (`protocol.rs`) and prints the answer, or `{"error": "..."}`
//! with exit code 1, which netavark and Podman show the user. The agent
//! owns networks, addresses, endpoints and ports (`daemon::netavark`); the
//! plugin holds no state.
//!
//! The agent's socket: the network's `weir_socket` option (given to
//! `podman network create -o weir_socket=PATH`), else `WEIR_SOCKET`, else
//! `/run/weir/weir.sock`.

pub mod protocol;
#[cfg(test)]
mod tests;

use std::{io::Read, net::IpAddr, path::PathBuf, process::ExitCode};

use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::protocol::{Network, PluginExec};
use crate::{
    api::{
        client::{Client, ClientError},
        types::{CniAttachment, NetworkView},
    },
    network::NetworkError,
    paths::DEFAULT_SOCKET,
};

#[derive(Debug, thiserror::Error)]
pub enum NetavarkError {
    #[error(
        "usage: weir-netavark info | create | setup NETNS | teardown NETNS, with netavark's JSON on stdin"
    )]
    Usage,
    #[error("unknown subcommand `{command}`: weir-netavark knows info, create, setup and teardown")]
    UnknownCommand { command: String },
    #[error("{command} needs the container's network namespace path as its argument")]
    NoNetns { command: String },
    // Causes are part of the messages (not `#[source]`s): netavark shows
    // the message alone.
    #[error("reading stdin: {0}")]
    Stdin(std::io::Error),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{command}: the JSON on stdin is not netavark's: {cause}")]
    Json {
        command: String,
        cause: serde_json::Error,
    },
    #[error("network `{network}`: {what}")]
    Unsupported { network: String, what: String },
    #[error("port mapping {mapping}: {why}")]
    Port { mapping: String, why: String },
    #[error(
        "network `{network}`: static_ips has {ip} as a second address of its family (weir gives an interface one of each)"
    )]
    StaticIps { network: String, ip: IpAddr },
    #[error(
        "cannot reach the weir agent at {}: {cause}; start it with `weir agent`, or name its socket in the network's `weir_socket` option or in WEIR_SOCKET",
        socket.display()
    )]
    Unreachable {
        socket: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "weir has no network `{network}`: create it with `podman network create -d weir {network}` (or `weir network create {network}`)"
    )]
    NoNetwork { network: String },
    /// The agent refused, in its own words.
    #[error("{message}")]
    Refused { message: String },
    #[error("the weir agent: {}", crate::error::Chain(.0))]
    Agent(ClientError),
    #[error("encoding the answer: {0}")]
    Encode(serde_json::Error),
}

/// The binary's whole life: one subcommand, one answer on stdout.
#[must_use]
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetavarkError::Runtime)
        .and_then(|rt| rt.block_on(run(&args, std::io::stdin())));
    match answer {
        Ok(Some(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            // Podman decodes this with unknown fields refused: `error` alone.
            println!(
                "{}",
                json!({ "error": crate::error::Chain(&e).to_string() })
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs subcommand `args[0]` (with `args[1]`, the namespace) on the JSON
/// `stdin` holds; the JSON to print, if it answers with any.
pub async fn run(args: &[String], stdin: impl Read) -> Result<Option<Value>, NetavarkError> {
    let command = args.first().map_or("info", String::as_str);
    let netns = || {
        args.get(1)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| NetavarkError::NoNetns {
                command: command.to_owned(),
            })
    };
    match command {
        "info" => Ok(Some(protocol::info())),
        "create" => {
            let network: Network = read(command, stdin)?;
            create(network).await.map(Some)
        }
        "setup" => {
            let netns = netns()?;
            let exec: PluginExec = read(command, stdin)?;
            setup(netns, &exec).await.map(Some)
        }
        "teardown" => {
            let _ = netns()?;
            let exec: PluginExec = read(command, stdin)?;
            teardown(&exec).await.map(|()| None)
        }
        "-h" | "--help" | "help" => Err(NetavarkError::Usage),
        other => Err(NetavarkError::UnknownCommand {
            command: other.to_owned(),
        }),
    }
}

fn read<T: DeserializeOwned>(command: &str, mut stdin: impl Read) -> Result<T, NetavarkError> {
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(NetavarkError::Stdin)?;
    serde_json::from_str(&text).map_err(|cause| NetavarkError::Json {
        command: command.to_owned(),
        cause,
    })
}

fn client(network: &Network) -> Client {
    let env = std::env::var("WEIR_SOCKET").ok();
    Client::new(&protocol::socket(
        network,
        env.as_deref(),
        std::path::Path::new(DEFAULT_SOCKET),
    ))
}

/// `create`: the weir network, made or found the same, and Podman's
/// configuration completed with it.
async fn create(network: Network) -> Result<Value, NetavarkError> {
    let spec = protocol::spec_of(&network)?;
    let client = client(&network);
    // A bridge name given is only ever weir's own for this network (the
    // configuration `create` answered before, given again).
    if let Some(bridge) = &network.network_interface {
        let existing = client
            .get::<NetworkView>(&format!("/v1/networks/{}", network.name))
            .await
            .ok();
        if existing.is_none_or(|v| v.network.bridge != *bridge) {
            return Err(NetavarkError::Unsupported {
                network: network.name.clone(),
                what: format!("network_interface `{bridge}`: weir names its networks' bridges"),
            });
        }
    }
    let view: NetworkView = client
        .post("/v1/netavark/create", &spec)
        .await
        .map_err(|e| agent_error(e, &network.name))?;
    serde_json::to_value(protocol::created(network, &view)).map_err(NetavarkError::Encode)
}

/// `setup NETNS`: the container's interface, and the status block.
async fn setup(netns: &str, exec: &PluginExec) -> Result<Value, NetavarkError> {
    let req = protocol::setup_request(netns, exec)?;
    let made: CniAttachment = client(&exec.network)
        .post("/v1/netavark/setup", &req)
        .await
        .map_err(|e| agent_error(e, &exec.network.name))?;
    serde_json::to_value(protocol::status_block(&made)).map_err(NetavarkError::Encode)
}

/// `teardown NETNS`: idempotent; an interface weir does not have is done.
async fn teardown(exec: &PluginExec) -> Result<(), NetavarkError> {
    client(&exec.network)
        .post::<_, Option<String>>("/v1/netavark/teardown", &protocol::teardown_request(exec))
        .await
        .map(drop)
        .map_err(|e| agent_error(e, &exec.network.name))
}

/// The agent's answer as the plugin's error.
fn agent_error(e: ClientError, network: &str) -> NetavarkError {
    match e {
        ClientError::NotRunning { socket, cause } => NetavarkError::Unreachable { socket, cause },
        ClientError::Refused { status, message }
            if status == StatusCode::NOT_FOUND
                && message
                    == NetworkError::NotFound {
                        name: network.to_owned(),
                    }
                    .to_string() =>
        {
            NetavarkError::NoNetwork {
                network: network.to_owned(),
            }
        }
        ClientError::Refused { message, .. } => NetavarkError::Refused { message },
        other => NetavarkError::Agent(other),
    }
}
