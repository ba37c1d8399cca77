//! `weir stats`: the datapath's counters, per published port, per network,
//! per drop reason and per program.

use std::{path::Path, process::ExitCode};

use super::output::{self, JsonFlag};
use crate::{api::client::Client, api::types::Stats};

pub async fn exec(socket: &Path, flag: JsonFlag) -> anyhow::Result<ExitCode> {
    let stats: Stats = Client::new(socket).get("/v1/stats").await?;
    if flag.json {
        output::json(&stats)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ports: Vec<Vec<String>> = stats
        .ports
        .iter()
        .map(|p| {
            vec![
                format!("{}:{}/{}", p.host_ip, p.host_port, p.proto),
                format!("{}:{}", p.endpoint, p.container_port),
                p.flows.to_string(),
                format!("{}/{}", p.packets_in, p.packets_out),
                format!("{}/{}", p.bytes_in, p.bytes_out),
            ]
        })
        .collect();
    output::table(
        &["PORT", "TO", "FLOWS", "PACKETS IN/OUT", "BYTES IN/OUT"],
        &ports,
    );
    println!();
    let networks: Vec<Vec<String>> = stats
        .networks
        .iter()
        .map(|n| {
            let m = &n.masquerade;
            vec![
                n.network.clone(),
                m.flows.to_string(),
                m.packets.to_string(),
                m.bytes.to_string(),
                m.retries.to_string(),
                m.exhausted.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "NETWORK",
            "MASQ FLOWS",
            "PACKETS",
            "BYTES",
            "PORT RETRIES",
            "EXHAUSTED",
        ],
        &networks,
    );
    println!();
    // Only the reasons something was dropped for; `--json` has them all.
    let drops: Vec<Vec<String>> = stats
        .drops
        .iter()
        .filter(|d| d.packets > 0)
        .map(|d| {
            vec![
                format!("{} {}", d.number, d.reason),
                d.packets.to_string(),
                d.bytes.to_string(),
            ]
        })
        .collect();
    output::table(&["DROPPED FOR", "PACKETS", "BYTES"], &drops);
    println!();
    let hooks: Vec<Vec<String>> = stats
        .hooks
        .iter()
        .map(|h| {
            vec![
                h.program.clone(),
                h.packets.to_string(),
                h.bytes.to_string(),
            ]
        })
        .collect();
    output::table(&["PROGRAM", "PACKETS", "BYTES"], &hooks);
    println!(
        "\nconntrack entries: {} of {}",
        stats.conntrack_entries,
        weir_common::ct::MAX_CT_ENTRIES
    );
    println!("drop events lost (EVENTS full): {}", stats.events_lost);
    Ok(ExitCode::SUCCESS)
}
