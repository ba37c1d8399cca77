//! `weir-cni`: the CNI plugin, a thin client of the agent's API like
//! Cilium's `cilium-cni`. It reads the CNI environment and the network
//! configuration, asks the agent (`/v1/cni/*` on its socket) and prints the
//! result or a CNI error; the agent owns addresses, endpoints and ports
//! (`daemon::cni`). It holds no state of its own.

pub mod protocol;

use std::{io::Read as _, path::PathBuf, process::ExitCode};

use hyper::StatusCode;
use serde_json::Value;

use self::protocol::{
    Args, CniError, Env, LATEST, NetConf, add_result, code, static_ips, version_result,
};
use crate::{
    api::client::{Client, ClientError},
    api::types::{CniAdd, CniAttachment, CniGc, CniRef},
    network::NetworkError,
    paths::DEFAULT_SOCKET,
};

/// The binary's whole life: one command, one answer on stdout.
#[must_use]
pub fn main() -> ExitCode {
    let env = Env::from_process();
    let mut stdin = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut stdin) {
        return fail(
            LATEST,
            &CniError::new(code::IO_FAILURE, "reading stdin", e.to_string()),
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                LATEST,
                &CniError::new(code::IO_FAILURE, "starting the runtime", e.to_string()),
            );
        }
    };
    let version = NetConf::parse(&stdin)
        .ok()
        .and_then(|c| c.version().ok().map(str::to_owned))
        .unwrap_or_else(|| LATEST.to_owned());
    match runtime.block_on(run(&env, &stdin)) {
        Ok(Some(answer)) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => fail(&version, &e),
    }
}

fn fail(version: &str, e: &CniError) -> ExitCode {
    println!("{}", e.to_json(version));
    ExitCode::FAILURE
}

/// Runs the command `env` names with the configuration `stdin`; the JSON
/// to print, if the command answers with any.
pub async fn run(env: &Env, stdin: &str) -> Result<Option<Value>, CniError> {
    let command = env.require(env.command.as_ref(), "CNI_COMMAND")?;
    let conf = NetConf::parse(stdin)?;
    let version = conf.version()?;
    if command == "VERSION" {
        return Ok(Some(version_result(version)));
    }
    if !conf.kind.is_empty() && conf.kind != "weir-cni" {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "the configuration is for plugin `{}`, not weir-cni",
                conf.kind
            ),
            "",
        ));
    }
    if conf.network().is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "the configuration names no network (`network`, or the config's `name`)",
            "",
        ));
    }
    let socket = conf
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let client = Client::new(&socket);
    match command {
        "ADD" => add(env, &conf, &client).await.map(Some),
        "DEL" => del(env, &conf, &client).await.map(|()| None),
        "CHECK" => check(env, &conf, &client).await.map(|()| None),
        "STATUS" => status(&conf, &client).await.map(|()| None),
        "GC" => gc(&conf, &client).await.map(|()| None),
        other => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("unknown CNI_COMMAND `{other}`"),
            "weir-cni knows ADD, DEL, CHECK, STATUS, GC and VERSION",
        )),
    }
}

fn request(env: &Env, conf: &NetConf) -> Result<CniAdd, CniError> {
    let args = Args::parse(env.args.as_deref().unwrap_or(""))?;
    let (ip, ip6) = static_ips(&conf.runtime_config.ips)?;
    if let (Some(a), Some(b)) = (ip, args.ip)
        && a != b
    {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("runtimeConfig.ips asks for {a}, CNI_ARGS for IP={b}"),
            "",
        ));
    }
    Ok(CniAdd {
        container_id: env
            .require(env.container_id.as_ref(), "CNI_CONTAINERID")?
            .to_owned(),
        ifname: env.require(env.ifname.as_ref(), "CNI_IFNAME")?.to_owned(),
        netns: PathBuf::from(env.require(env.netns.as_ref(), "CNI_NETNS")?),
        network: conf.network().to_owned(),
        ip: ip.or(args.ip),
        ip6,
        mac: args.mac,
        name: args.pod_name,
        ports: conf.runtime_config.port_mappings.clone(),
    })
}

async fn add(env: &Env, conf: &NetConf, client: &Client) -> Result<Value, CniError> {
    let req = request(env, conf)?;
    if !req.netns.exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "the container's namespace {} does not exist",
                req.netns.display()
            ),
            "",
        ));
    }
    let made: CniAttachment = client
        .post("/v1/cni/add", &req)
        .await
        .map_err(|e| agent_error(&e, conf, code::AGENT_UNREACHABLE))?;
    Ok(add_result(
        conf.version()?,
        &made,
        &req.netns.display().to_string(),
        conf.dns.as_ref(),
    ))
}

/// Idempotent and best-effort: an attachment weir does not have (a DEL
/// repeated, or after its namespace went) is done. An agent that does not
/// answer is "try again later": the runtime retries, and nothing leaks.
async fn del(env: &Env, conf: &NetConf, client: &Client) -> Result<(), CniError> {
    let r = CniRef {
        container_id: env
            .require(env.container_id.as_ref(), "CNI_CONTAINERID")?
            .to_owned(),
        ifname: env.require(env.ifname.as_ref(), "CNI_IFNAME")?.to_owned(),
    };
    client
        .post::<_, Option<String>>("/v1/cni/del", &r)
        .await
        .map(drop)
        .map_err(|e| agent_error(&e, conf, code::TRY_AGAIN_LATER))
}

async fn check(env: &Env, conf: &NetConf, client: &Client) -> Result<(), CniError> {
    if conf.version()?.starts_with("0.3") {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            "CHECK needs CNI 0.4.0 or later",
            "",
        ));
    }
    let req = request(env, conf)?;
    client
        .post::<_, Value>("/v1/cni/check", &req)
        .await
        .map(drop)
        .map_err(|e| agent_error(&e, conf, code::AGENT_UNREACHABLE))
}

/// Ready when the agent answers and has the network.
async fn status(conf: &NetConf, client: &Client) -> Result<(), CniError> {
    client
        .get::<Value>(&format!("/v1/networks/{}", conf.network()))
        .await
        .map(drop)
        .map_err(|e| {
            let inner = agent_error(&e, conf, code::AGENT_UNREACHABLE);
            CniError::new(code::NOT_AVAILABLE, inner.msg, inner.details)
        })
}

async fn gc(conf: &NetConf, client: &Client) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments",
            "without it every attachment would be removed",
        )
    })?;
    let gc = CniGc {
        network: conf.network().to_owned(),
        valid: valid
            .iter()
            .map(|a| CniRef {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
            })
            .collect(),
    };
    client
        .post::<_, Vec<String>>("/v1/cni/gc", &gc)
        .await
        .map(drop)
        .map_err(|e| agent_error(&e, conf, code::AGENT_UNREACHABLE))
}

/// The agent's answer as a CNI error; `unreachable` is the code for an
/// agent that does not answer.
fn agent_error(e: &ClientError, conf: &NetConf, unreachable: u32) -> CniError {
    match e {
        ClientError::NotRunning { socket, cause } => CniError::new(
            unreachable,
            format!("cannot reach the weir agent at {}", socket.display()),
            format!(
                "{cause}; start it with `weir agent`, or set `socket` in the network configuration"
            ),
        ),
        ClientError::Refused { status, message } => {
            let not_found = NetworkError::NotFound {
                name: conf.network().to_owned(),
            }
            .to_string();
            let code = if *status == StatusCode::NOT_FOUND && *message == not_found {
                code::UNKNOWN_NETWORK
            } else if status.is_client_error() {
                code::REFUSED
            } else {
                code::AGENT_FAILED
            };
            let details = if code == code::UNKNOWN_NETWORK {
                format!(
                    "create it with `weir network create {} --subnet CIDR`",
                    conf.network()
                )
            } else {
                String::new()
            };
            CniError::new(code, message.clone(), details)
        }
        // The message says what failed, the details why.
        other => CniError::new(
            code::AGENT_FAILED,
            other.to_string(),
            std::error::Error::source(other)
                .map(|cause| crate::error::Chain(cause).to_string())
                .unwrap_or_default(),
        ),
    }
}
