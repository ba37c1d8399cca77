//! `weir publish`, `weir unpublish`, `weir port`.

use std::{net::SocketAddr, path::Path, process::ExitCode};

use clap::Args;

use super::output::{self, JsonFlag};
use crate::{
    api::types::PortView,
    api::{PortsRequest, client::Client},
    publish::PortMapping,
};

#[derive(Args)]
pub struct PublishArgs {
    /// The endpoint's name.
    name: String,
    /// Docker `-p` specs: `[HOST_IP:][HOST_PORT[-END]:]CPORT[-END][/tcp|udp]`.
    #[arg(required = true, value_name = "SPEC")]
    specs: Vec<String>,
}

impl PublishArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let made: Vec<PortMapping> = Client::new(socket)
            .post(
                &format!("/v1/endpoints/{}/ports", self.name),
                &PortsRequest { specs: self.specs },
            )
            .await?;
        for m in &made {
            println!("{m}");
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `weir unpublish`: the same arguments, the other way.
    pub async fn exec_unpublish(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let gone: Vec<PortMapping> = Client::new(socket)
            .delete_with(
                &format!("/v1/endpoints/{}/ports", self.name),
                &PortsRequest { specs: self.specs },
            )
            .await?;
        for m in &gone {
            println!("{m}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args)]
pub struct PortArgs {
    /// Only this endpoint's ports (then printed as `docker port` does).
    name: Option<String>,
    #[command(flatten)]
    json: JsonFlag,
}

impl PortArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let path = match &self.name {
            Some(n) => format!("/v1/endpoints/{n}/ports"),
            None => "/v1/ports".to_owned(),
        };
        let ports: Vec<PortView> = Client::new(socket).get(&path).await?;
        if self.json.json {
            output::json(&ports)?;
        } else if self.name.is_some() {
            for p in &ports {
                println!("{}", p.mapping);
            }
        } else {
            let rows: Vec<Vec<String>> = ports
                .iter()
                .map(|p| {
                    vec![
                        p.endpoint.clone(),
                        p.mapping.proto.to_string(),
                        SocketAddr::new(p.mapping.host_ip, p.mapping.host_port).to_string(),
                        p.container_ip.map_or_else(
                            || "-".to_owned(),
                            |ip| SocketAddr::new(ip, p.mapping.container_port).to_string(),
                        ),
                    ]
                })
                .collect();
            output::table(&["ENDPOINT", "PROTO", "HOST", "CONTAINER"], &rows);
        }
        Ok(ExitCode::SUCCESS)
    }
}
