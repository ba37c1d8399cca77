//! `weir network create | ls | inspect | rm`.

use std::{net::Ipv4Addr, path::Path, process::ExitCode};

use clap::{ArgAction, Args, Subcommand};

use super::output::{self, JsonFlag};
use crate::{
    api::client::Client,
    api::types::NetworkView,
    network::{self, Mode, NetworkSpec},
};

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network: a bridge with the gateway address, and its rules.
    Create(CreateArgs),
    /// List networks.
    Ls(JsonFlag),
    /// Show one network as JSON, with its endpoints.
    Inspect { name: String },
    /// Remove a network that has no endpoints.
    Rm { name: String },
}

#[derive(Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "Docker's flags, one field each"
)]
pub struct CreateArgs {
    name: String,
    /// The subnet, in CIDR form (e.g. 10.89.0.0/24); once more with an
    /// IPv6 one (e.g. `fd00:89::/64`) for a dual-stack network, an IPv6
    /// one alone for an IPv6-only network; none: the first free block of
    /// the agent's address pools.
    #[arg(long = "subnet")]
    subnets: Vec<String>,
    /// The gateway of a family (default: the first address of its subnet).
    #[arg(long = "gateway")]
    gateways: Vec<String>,
    /// Dual stack (Docker's flag): needs an IPv6 --subnet.
    #[arg(long)]
    ipv6: bool,
    /// No traffic beyond the network and its gateway.
    #[arg(long)]
    internal: bool,
    /// Containers of the network may talk to each other (`--icc=false` forbids).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    icc: bool,
    /// Masquerade egress behind the node's address (`--masquerade=false` to route).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    masquerade: bool,
    /// nat (private addresses) or routed (addresses reachable on published ports).
    #[arg(long, default_value_t = Mode::Nat)]
    mode: Mode,
    /// The address to masquerade behind (default: the uplink's).
    #[arg(long)]
    snat_ip: Option<Ipv4Addr>,
}

impl NetworkCmd {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let client = Client::new(socket);
        match self {
            NetworkCmd::Create(a) => {
                let addrs = network::addresses(&a.subnets, &a.gateways, a.ipv6)?;
                let spec = NetworkSpec {
                    name: a.name,
                    subnet: addrs.subnet,
                    gateway: addrs.gateway,
                    subnet6: addrs.subnet6,
                    gateway6: addrs.gateway6,
                    internal: a.internal,
                    icc: a.icc,
                    masquerade: a.masquerade,
                    mode: a.mode,
                    snat_ip: a.snat_ip,
                };
                let made: NetworkView = client.post("/v1/networks", &spec).await?;
                println!("{}", made.network.name);
            }
            NetworkCmd::Ls(flag) => {
                let networks: Vec<NetworkView> = client.get("/v1/networks").await?;
                if flag.json {
                    output::json(&networks)?;
                } else {
                    let rows: Vec<Vec<String>> = networks.iter().map(row).collect();
                    output::table(
                        &[
                            "NAME",
                            "SUBNET",
                            "GATEWAY",
                            "BRIDGE",
                            "MODE",
                            "OPTIONS",
                            "ENDPOINTS",
                            "OWNER",
                        ],
                        &rows,
                    );
                }
            }
            NetworkCmd::Inspect { name } => {
                let network: NetworkView = client.get(&format!("/v1/networks/{name}")).await?;
                output::json(&network)?;
            }
            NetworkCmd::Rm { name } => {
                client
                    .delete::<serde_json::Value>(&format!("/v1/networks/{name}"))
                    .await?;
                println!("{name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn row(v: &NetworkView) -> Vec<String> {
    let n = &v.network;
    let mut options = Vec::new();
    if n.internal {
        options.push("internal".to_owned());
    }
    if !n.icc {
        options.push("icc=false".to_owned());
    }
    if !n.masquerade {
        options.push("masquerade=false".to_owned());
    }
    if let Some(ip) = n.snat_ip {
        options.push(format!("snat-ip={ip}"));
    }
    vec![
        n.name.clone(),
        both(
            n.ipam.as_ref().map(|i| i.subnet().to_string()),
            n.ipam6.as_ref().map(|i| i.subnet().to_string()),
        ),
        both(
            n.gateway().map(|g| g.to_string()),
            n.ipam6.as_ref().map(|i| i.gateway().to_string()),
        ),
        n.bridge.clone(),
        n.mode.to_string(),
        if options.is_empty() {
            "-".to_owned()
        } else {
            options.join(",")
        },
        v.endpoints.len().to_string(),
        n.owner.engine().to_owned(),
    ]
}

/// `v4,v6`, or the one there is.
fn both(v4: Option<String>, v6: Option<String>) -> String {
    [v4, v6].into_iter().flatten().collect::<Vec<_>>().join(",")
}
