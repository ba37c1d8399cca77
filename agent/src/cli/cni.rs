//! `weir cni config NETWORK`: a ready CNI network configuration (a
//! `.conflist`) for `weir-cni` on one of the agent's networks.

use std::{path::Path, process::ExitCode};

use clap::Subcommand;

use crate::{api::client::Client, api::types::NetworkView};

#[derive(Subcommand)]
pub enum CniCmd {
    /// Print a conflist for NETWORK (put it in /etc/cni/net.d/ or the
    /// runtime's `network_config_dir`).
    Config {
        network: String,
        /// The CNI version the conflist says.
        #[arg(long, default_value = "1.0.0")]
        cni_version: String,
    },
}

impl CniCmd {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        match self {
            CniCmd::Config {
                network,
                cni_version,
            } => {
                // The network must exist: a conflist for nothing would
                // fail at the first container.
                let _: NetworkView = Client::new(socket)
                    .get(&format!("/v1/networks/{network}"))
                    .await?;
                let conflist = serde_json::json!({
                    "cniVersion": cni_version,
                    "name": network,
                    "plugins": [{
                        "type": "weir-cni",
                        "network": network,
                        "socket": socket,
                        "capabilities": {"portMappings": true, "ips": true},
                    }],
                });
                println!("{}", serde_json::to_string_pretty(&conflist)?);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
