//! `weir conntrack ls | flush`.

use std::{path::Path, process::ExitCode};

use clap::Subcommand;

use super::output::{self, JsonFlag};
use crate::{
    api::client::Client,
    api::types::{FlowView, Removed},
};

#[derive(Subcommand)]
pub enum ConntrackCmd {
    /// List tracked flows (translated connections), oldest first.
    Ls(JsonFlag),
    /// End every tracked flow.
    Flush,
}

impl ConntrackCmd {
    pub async fn exec(self, socket: &Path) -> anyhow::Result<ExitCode> {
        let client = Client::new(socket);
        match self {
            ConntrackCmd::Ls(flag) => {
                let flows: Vec<FlowView> = client.get("/v1/conntrack").await?;
                if flag.json {
                    output::json(&flows)?;
                } else {
                    let rows: Vec<Vec<String>> = flows
                        .iter()
                        .map(|f| {
                            let mut row = flow_cells(f);
                            row.push(format!("{}s", f.expires_s));
                            row.push(format!("{}/{}", f.packets_out, f.packets_back));
                            row
                        })
                        .collect();
                    output::table(
                        &[
                            "PROTO",
                            "KIND",
                            "FLOW",
                            "TRANSLATED",
                            "STATE",
                            "AGE",
                            "EXPIRES",
                            "PACKETS OUT/BACK",
                        ],
                        &rows,
                    );
                }
            }
            ConntrackCmd::Flush => {
                let removed: Removed = client.delete_with("/v1/conntrack", &()).await?;
                println!("flushed {} flows", removed.flows);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The cells every flow table starts with: protocol, kind, the tuple as
/// sent, as translated, state and age.
pub(super) fn flow_cells(f: &FlowView) -> Vec<String> {
    vec![
        f.proto.clone(),
        f.kind.clone(),
        format!("{} -> {}", f.src, f.dst),
        format!("{} -> {}", f.to_src, f.to_dst),
        f.state.clone(),
        format!("{}s", f.age_s),
    ]
}
