//! `weir attach`, `weir detach`, `weir ps`.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    path::PathBuf,
    process::ExitCode,
};

use clap::Args;

use super::output::{self, JsonFlag};
use crate::{
    api::client::Client,
    api::types::{AttachRequest, ConnectRequest, Endpoint},
};

#[derive(Args)]
pub struct AttachArgs {
    /// The network to attach to.
    network: String,
    /// The network namespace file (e.g. /run/netns/NAME or /proc/PID/ns/net).
    #[arg(long)]
    netns: PathBuf,
    /// The endpoint's name (default: ep<id>).
    #[arg(long)]
    name: Option<String>,
    /// The address (default: the lowest free one).
    #[arg(long)]
    ip: Option<Ipv4Addr>,
    /// The IPv6 address, on a dual-stack network (default: the next free).
    #[arg(long)]
    ip6: Option<Ipv6Addr>,
    /// Publish a port, as `docker run -p`: `[HOST_IP:][HOST_PORT[-END]:]CPORT[-END][/tcp|udp]`.
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    ports: Vec<String>,
    /// The interface's name in the namespace.
    #[arg(long, default_value = crate::api::types::DEFAULT_IFNAME)]
    ifname: String,
    /// The interface's MAC (default: 02:42 and the address, as Docker's).
    #[arg(long = "mac-address", value_name = "MAC")]
    mac: Option<String>,
    /// A further network to connect it to (an interface on each, `eth1`
    /// and on); more than once for more.
    #[arg(long = "network", value_name = "NETWORK")]
    networks: Vec<String>,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// The network to connect to.
    network: String,
    /// The endpoint (its container gets the next free `ethN`).
    name: String,
    /// The address on that network (default: the lowest free one).
    #[arg(long)]
    ip: Option<Ipv4Addr>,
    /// The IPv6 address there (default: the next free).
    #[arg(long)]
    ip6: Option<Ipv6Addr>,
}

impl ConnectArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let req = ConnectRequest {
            network: self.network,
            ip: self.ip,
            ip6: self.ip6,
        };
        let ep: Endpoint = Client::new(socket)
            .post(&format!("/v1/endpoints/{}/networks", self.name), &req)
            .await?;
        println!("{} {}", ep.name, ep.addresses());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// The network to leave.
    network: String,
    /// The endpoint.
    name: String,
}

impl DisconnectArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        Client::new(socket)
            .delete::<Endpoint>(&format!(
                "/v1/endpoints/{}/networks/{}",
                self.name, self.network
            ))
            .await?;
        println!("{} {}", self.name, self.network);
        Ok(ExitCode::SUCCESS)
    }
}

impl AttachArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let req = AttachRequest {
            network: self.network,
            netns: self.netns,
            name: self.name,
            ip: self.ip,
            ip6: self.ip6,
            ports: self.ports,
            ifname: Some(self.ifname),
            mac: self.mac,
            networks: self.networks,
        };
        let ep: Endpoint = Client::new(socket).post("/v1/endpoints", &req).await?;
        println!("{} {}", ep.name, ep.addresses());
        for m in &ep.ports {
            println!("{m}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct DetachArgs {
    /// The endpoint's name.
    name: String,
}

impl DetachArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        Client::new(socket)
            .delete::<Endpoint>(&format!("/v1/endpoints/{}", self.name))
            .await?;
        println!("{}", self.name);
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn ps(socket: &Path, flag: JsonFlag) -> anyhow::Result<ExitCode> {
    let endpoints: Vec<Endpoint> = Client::new(socket).get("/v1/endpoints").await?;
    if flag.json {
        output::json(&endpoints)?;
    } else {
        let rows: Vec<Vec<String>> = endpoints
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.network.clone(),
                    e.ip.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                    e.ip6.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                    e.mac.clone(),
                    e.host_if.clone(),
                    e.netns.display().to_string(),
                    e.owner.engine().to_owned(),
                ]
            })
            .collect();
        output::table(
            &[
                "NAME", "NETWORK", "IP", "IP6", "MAC", "HOST IF", "NETNS", "OWNER",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}
