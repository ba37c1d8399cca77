//! `weir status`.

use std::{path::Path, process::ExitCode};

use super::output::{self, JsonFlag};
use crate::{api::client::Client, api::types::Status};

pub async fn exec(socket: &Path, flag: JsonFlag) -> anyhow::Result<ExitCode> {
    let status: Status = Client::new(socket).get("/v1/status").await?;
    if flag.json {
        output::json(&status)?;
    } else {
        println!("agent:      running (weir {})", status.version);
        println!("socket:     {}", status.socket.display());
        println!("state dir:  {}", status.state_dir.display());
        println!(
            "bpffs:      {} ({})",
            status.bpffs.display(),
            status.bpffs_reached
        );
        println!("cgroup:     {}", status.cgroup);
        // The uplinks as they are now, and why (an agent follows the
        // default route as it comes, goes and moves).
        let uplinks = match (status.uplinks.is_empty(), status.uplinks_why.is_empty()) {
            (true, true) => "(none)".to_owned(),
            (true, false) => status.uplinks_why.clone(),
            (false, true) => status.uplinks.join(", "),
            (false, false) => format!("{} ({})", status.uplinks.join(", "), status.uplinks_why),
        };
        println!("uplinks:    {uplinks}");
        println!("networks:   {}", status.networks);
        println!("endpoints:  {}", status.endpoints);
    }
    Ok(ExitCode::SUCCESS)
}
