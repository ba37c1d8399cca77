//! `weir stats` and the Prometheus endpoint: the datapath's counters with
//! names on them (per publication, per network, per drop reason, per hook).

use std::{collections::HashMap, fmt::Write as _, net::IpAddr};

use weir_common::{
    drop::DropReason,
    publish::{PublishKey, PublishKey6},
    stats::{Hook, PortCounters},
};

use super::Agent;
use crate::{
    api::types::{DropStats, HookStats, NatStats, NetworkStats, PortStats, Stats},
    error::AgentError,
    publish::PortMapping,
};

impl Agent {
    /// Reads every counter from the maps.
    pub fn stats(&self) -> Result<Stats, AgentError> {
        let counters: HashMap<PublishKey, PortCounters> =
            self.datapath.port_stats()?.into_iter().collect();
        let counters6: HashMap<PublishKey6, PortCounters> =
            self.datapath.port_stats()?.into_iter().collect();
        let mut ports = Vec::new();
        for ep in self.state.endpoints.values() {
            for m in &ep.ports {
                // Both families' flows of the one publication.
                let c4 = m.key().and_then(|k| counters.get(&k).copied());
                let c6 = m.key6().and_then(|k| counters6.get(&k).copied());
                let c = [c4, c6]
                    .into_iter()
                    .flatten()
                    .fold(PortCounters::default(), PortCounters::plus);
                let ip = ep.target_of(m);
                ports.push(port_stats(&ep.name, &ep.network, ip, m, c));
            }
        }
        ports.sort_by_key(|p| (p.host_port, p.proto.clone(), p.host_ip));
        let networks = self
            .networks()
            .into_iter()
            .map(|n| NetworkStats {
                network: n.network.name,
                masquerade: n.masquerade_stats,
            })
            .collect();
        let drops = DropReason::ALL
            .iter()
            .map(|&r| {
                let c = self.datapath.drop_stats(r)?;
                Ok(DropStats {
                    number: r.number(),
                    reason: r.name().to_owned(),
                    packets: c.packets,
                    bytes: c.bytes,
                })
            })
            .collect::<Result<_, AgentError>>()?;
        let hooks = Hook::ALL
            .iter()
            .map(|&h| {
                let c = self.datapath.hook_stats(h)?;
                Ok(HookStats {
                    program: h.program().to_owned(),
                    packets: c.packets,
                    bytes: c.bytes,
                })
            })
            .collect::<Result<_, AgentError>>()?;
        Ok(Stats {
            ports,
            networks,
            drops,
            hooks,
            conntrack_entries: self.conntrack_entries()?,
            events_lost: self.datapath.events_lost()?,
        })
    }
}

fn port_stats(
    endpoint: &str,
    network: &str,
    ip: Option<IpAddr>,
    m: &PortMapping,
    c: weir_common::stats::PortCounters,
) -> PortStats {
    PortStats {
        endpoint: endpoint.to_owned(),
        network: network.to_owned(),
        proto: m.proto.to_string(),
        host_ip: m.host_ip,
        host_port: m.host_port,
        container_ip: ip,
        container_port: m.container_port,
        flows: c.flows,
        packets_in: c.packets_in,
        bytes_in: c.bytes_in,
        packets_out: c.packets_out,
        bytes_out: c.bytes_out,
    }
}

/// The counters in Prometheus' text format (version 0.0.4).
#[must_use]
pub fn prometheus(s: &Stats) -> String {
    let mut out = String::new();
    port_families(&mut out, s);
    network_families(&mut out, s);
    drop_and_hook_families(&mut out, s);
    family(
        &mut out,
        (
            "weir_conntrack_entries",
            "Entries in CT4 (two per flow).",
            "gauge",
        ),
        vec![(String::new(), s.conntrack_entries as u64)],
    );
    family(
        &mut out,
        (
            "weir_events_lost_total",
            "Drop events the EVENTS ring had no room for.",
            "counter",
        ),
        vec![(String::new(), s.events_lost)],
    );
    out
}

/// One metric family: its help, its type and its samples (labels, value).
fn family(out: &mut String, (name, help, kind): (&str, &str, &str), samples: Vec<(String, u64)>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn port_families(out: &mut String, s: &Stats) {
    let port = |p: &PortStats, dir: Option<&str>| {
        let dir = dir
            .map(|d| format!(",direction=\"{d}\""))
            .unwrap_or_default();
        format!(
            "{{endpoint=\"{}\",network=\"{}\",proto=\"{}\",host_ip=\"{}\",host_port=\"{}\",container_port=\"{}\"{dir}}}",
            p.endpoint, p.network, p.proto, p.host_ip, p.host_port, p.container_port
        )
    };
    family(
        out,
        (
            "weir_port_flows_total",
            "Flows opened through a published port.",
            "counter",
        ),
        s.ports.iter().map(|p| (port(p, None), p.flows)).collect(),
    );
    let both = |get: fn(&PortStats) -> (u64, u64)| -> Vec<(String, u64)> {
        s.ports
            .iter()
            .flat_map(|p| {
                let (i, o) = get(p);
                [(port(p, Some("in")), i), (port(p, Some("out")), o)]
            })
            .collect()
    };
    family(
        out,
        (
            "weir_port_packets_total",
            "Packets through a published port (in: to the container, out: its answers).",
            "counter",
        ),
        both(|p| (p.packets_in, p.packets_out)),
    );
    family(
        out,
        (
            "weir_port_bytes_total",
            "Bytes through a published port (in: to the container, out: its answers).",
            "counter",
        ),
        both(|p| (p.bytes_in, p.bytes_out)),
    );
}

/// A masquerade metric: name, help, and which counter it reads.
type NatFamily = (&'static str, &'static str, fn(&NatStats) -> u64);

fn network_families(out: &mut String, s: &Stats) {
    let net = |n: &NetworkStats| format!("{{network=\"{}\"}}", n.network);
    let families: [NatFamily; 5] = [
        (
            "weir_masquerade_flows_total",
            "Flows masqueraded (each given a port).",
            |m| m.flows,
        ),
        (
            "weir_masquerade_packets_total",
            "Packets of masqueraded flows, both directions.",
            |m| m.packets,
        ),
        (
            "weir_masquerade_bytes_total",
            "Bytes of masqueraded flows, both directions.",
            |m| m.bytes,
        ),
        (
            "weir_masquerade_port_retries_total",
            "Masquerade port probes that collided with a tuple in use.",
            |m| m.retries,
        ),
        (
            "weir_masquerade_exhausted_total",
            "New flows dropped because no masquerade port was free.",
            |m| m.exhausted,
        ),
    ];
    for (name, help, get) in families {
        family(
            out,
            (name, help, "counter"),
            s.networks
                .iter()
                .map(|n| (net(n), get(&n.masquerade)))
                .collect(),
        );
    }
}

fn drop_and_hook_families(out: &mut String, s: &Stats) {
    let reason = |d: &DropStats| format!("{{reason=\"{}\",number=\"{}\"}}", d.reason, d.number);
    family(
        out,
        (
            "weir_drop_packets_total",
            "Packets dropped, by reason.",
            "counter",
        ),
        s.drops.iter().map(|d| (reason(d), d.packets)).collect(),
    );
    family(
        out,
        (
            "weir_drop_bytes_total",
            "Bytes dropped, by reason.",
            "counter",
        ),
        s.drops.iter().map(|d| (reason(d), d.bytes)).collect(),
    );
    let hook = |h: &HookStats| format!("{{program=\"{}\"}}", h.program);
    family(
        out,
        (
            "weir_hook_packets_total",
            "Packets seen by each datapath program.",
            "counter",
        ),
        s.hooks.iter().map(|h| (hook(h), h.packets)).collect(),
    );
    family(
        out,
        (
            "weir_hook_bytes_total",
            "Bytes seen by each datapath program.",
            "counter",
        ),
        s.hooks.iter().map(|h| (hook(h), h.bytes)).collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_labelled_samples() {
        let s = Stats {
            ports: vec![PortStats {
                endpoint: "web".into(),
                network: "weir".into(),
                proto: "tcp".into(),
                host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                host_port: 8080,
                container_ip: Some(std::net::Ipv4Addr::new(10, 203, 0, 2).into()),
                container_port: 80,
                flows: 3,
                packets_in: 10,
                bytes_in: 1000,
                packets_out: 8,
                bytes_out: 9000,
            }],
            drops: vec![DropStats {
                number: 7,
                reason: "isolation".into(),
                packets: 2,
                bytes: 196,
            }],
            conntrack_entries: 6,
            ..Stats::default()
        };
        let text = prometheus(&s);
        assert!(text.contains("# TYPE weir_port_flows_total counter\n"));
        assert!(text.contains(
            "weir_port_flows_total{endpoint=\"web\",network=\"weir\",proto=\"tcp\",host_ip=\"0.0.0.0\",host_port=\"8080\",container_port=\"80\"} 3\n"
        ));
        assert!(text.contains("direction=\"out\"} 9000\n"));
        assert!(text.contains("weir_drop_packets_total{reason=\"isolation\",number=\"7\"} 2\n"));
        assert!(text.contains("weir_conntrack_entries 6\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
