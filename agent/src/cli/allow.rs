//! `weir allow`: the sources that may reach a published host port
//! (Docker's `DOCKER-USER`), `weir allow ls`, `weir allow rm`.

use std::{path::Path, process::ExitCode};

use clap::{Args, Subcommand};

use super::output::{self, JsonFlag};
use crate::{
    api::client::Client,
    network::Subnet,
    publish::{AllowRule, AllowedPort},
};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AllowArgs {
    #[command(subcommand)]
    cmd: Option<AllowCmd>,
    /// The host port, as published: `[HOST_IP:]HOST_PORT[/tcp|udp]`.
    port: Option<AllowedPort>,
    /// The sources that may reach it (CIDRs); everyone else is dropped.
    sources: Vec<Subnet>,
}

#[derive(Subcommand)]
enum AllowCmd {
    /// List every port's sources.
    Ls(JsonFlag),
    /// Remove a port's list: everyone may reach it again.
    Rm { port: AllowedPort },
}

impl AllowArgs {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let client = Client::new(socket);
        match (self.cmd, self.port) {
            (Some(AllowCmd::Ls(flag)), _) => {
                let rules: Vec<AllowRule> = client.get("/v1/allow").await?;
                if flag.json {
                    output::json(&rules)?;
                } else {
                    let rows: Vec<Vec<String>> = rules
                        .iter()
                        .map(|r| {
                            let sources: Vec<String> =
                                r.sources.iter().map(ToString::to_string).collect();
                            vec![r.port.to_string(), sources.join(",")]
                        })
                        .collect();
                    output::table(&["PORT", "ALLOWED"], &rows);
                }
            }
            (Some(AllowCmd::Rm { port }), _) => {
                let _: AllowRule = client.delete_with("/v1/allow", &port).await?;
                println!("{port}");
            }
            (None, Some(port)) => {
                let rule = AllowRule {
                    port,
                    sources: self.sources,
                };
                let set: AllowRule = client.post("/v1/allow", &rule).await?;
                let sources: Vec<String> = set.sources.iter().map(ToString::to_string).collect();
                println!("{} {}", set.port, sources.join(","));
            }
            (None, None) => anyhow::bail!("give a port and its sources, or `ls` or `rm PORT`"),
        }
        Ok(ExitCode::SUCCESS)
    }
}
