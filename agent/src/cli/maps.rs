//! `weir maps`: every map of the datapath, readable, for people who do not
//! want to read `bpftool map dump`.

use std::{path::Path, process::ExitCode};

use super::output::{self, JsonFlag};
use crate::{api::client::Client, api::types::MapsView};

pub async fn exec(socket: &Path, flag: JsonFlag) -> anyhow::Result<ExitCode> {
    let m: MapsView = Client::new(socket).get("/v1/maps").await?;
    if flag.json {
        output::json(&m)?;
        return Ok(ExitCode::SUCCESS);
    }
    endpoints_and_ports(&m);
    networks_and_addresses(&m);
    conntrack_and_links(&m);
    Ok(ExitCode::SUCCESS)
}

/// A titled table with its row count.
fn section(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    println!("{title} ({})", rows.len());
    if !rows.is_empty() {
        output::table(headers, rows);
    }
    println!();
}

fn endpoints_and_ports(m: &MapsView) {
    section(
        "ENDPOINTS / EP_BY_IP4",
        &[
            "IFINDEX", "VETH", "ENDPOINT", "IP", "MAC", "NETWORK", "BY IP",
        ],
        &m.endpoints
            .iter()
            .map(|e| {
                vec![
                    e.ifindex.to_string(),
                    e.interface.clone(),
                    e.endpoint.clone(),
                    e.ip.to_string(),
                    e.mac.clone(),
                    e.network.clone(),
                    if e.indexed { "yes" } else { "MISSING" }.to_owned(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    section(
        "PUBLISH4, PUBLISH6",
        &["PROTO", "HOST", "CONTAINER", "ENDPOINT", "NETWORK"],
        &m.published
            .iter()
            .map(|p| {
                vec![
                    p.proto.clone(),
                    p.host.to_string(),
                    p.container.to_string(),
                    p.endpoint.clone(),
                    p.network.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    section(
        "OPEN_PORTS4",
        &["PROTO", "CONTAINER", "NETWORK"],
        &m.open_ports
            .iter()
            .map(|p| vec![p.proto.clone(), p.container.to_string(), p.network.clone()])
            .collect::<Vec<_>>(),
    );
}

fn networks_and_addresses(m: &MapsView) {
    section(
        "NETWORKS4",
        &[
            "SUBNET",
            "NETWORK",
            "ID",
            "GATEWAY",
            "GATEWAY MAC",
            "SNAT IP",
            "FLAGS",
        ],
        &m.networks
            .iter()
            .map(|n| {
                vec![
                    n.subnet.clone(),
                    n.network.clone(),
                    n.id.to_string(),
                    n.gateway.to_string(),
                    n.gateway_mac.clone(),
                    n.snat_ip.to_string(),
                    n.flags.join(","),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let addrs = |v: &[crate::api::types::AddrEntry]| -> Vec<Vec<String>> {
        v.iter()
            .map(|a| vec![a.ip.to_string(), a.interface.clone(), a.ifindex.to_string()])
            .collect()
    };
    section(
        "HOST_ADDRS4",
        &["ADDRESS", "INTERFACE", "IFINDEX"],
        &addrs(&m.host_addrs),
    );
    section(
        "UPLINKS",
        &["MASQUERADE ADDRESS", "INTERFACE", "IFINDEX"],
        &addrs(&m.uplinks),
    );
    section(
        "ALLOW4 (weir allow)",
        &["PORT", "ALLOWED SOURCE"],
        &m.allowed
            .iter()
            .map(|a| vec![a.port.clone(), a.source.clone()])
            .collect::<Vec<_>>(),
    );
}

fn conntrack_and_links(m: &MapsView) {
    section(
        "CT4 (one line per flow, both directions)",
        &[
            "PROTO",
            "KIND",
            "FLOW",
            "TRANSLATED",
            "STATE",
            "AGE",
            "IDLE",
            "EXPIRES",
        ],
        &m.conntrack
            .iter()
            .map(|f| {
                let mut row = super::conntrack::flow_cells(f);
                row.push(format!("{}s", f.idle_s));
                row.push(format!("{}s", f.expires_s));
                row
            })
            .collect::<Vec<_>>(),
    );
    section(
        "SNAT (CT4 entries of kind snat)",
        &["CONTAINER", "LEAVES AS", "PEER"],
        &m.conntrack
            .iter()
            .filter(|f| f.kind == "snat")
            .map(|f| vec![f.src.to_string(), f.to_src.to_string(), f.dst.to_string()])
            .collect::<Vec<_>>(),
    );
    println!(
        "CONFIG: netns cookie {}, masquerade ports {}",
        m.netns_cookie, m.snat_ports
    );
    println!("SOCK_RNAT4: {} entries", m.sock_rnat_entries);
    println!("counters (HOOK_STATS, DROP_STATS, SNAT_STATS, PORT_STATS): see `weir stats`");
    println!();
    section(
        "LINKS",
        &["PIN", "LINK ID", "PROG ID", "IFINDEX"],
        &m.links
            .iter()
            .map(|l| {
                vec![
                    if l.pinned {
                        format!("links/{}", l.name)
                    } else {
                        format!("{} (not pinned)", l.name)
                    },
                    l.link_id.to_string(),
                    l.prog_id.to_string(),
                    l.ifindex.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
}
