//! Publishing ports: specs become mappings, each holding its host port
//! (a reserved socket) and a `PUBLISH4` entry; withdrawing one drops the
//! conntrack entries of the flows that came in by it, so a flow that kept
//! sending (UDP) reaches the port's next container at once instead of a
//! black hole.

use std::net::IpAddr;

use tracing::{info, warn};
use weir_common::{
    ct::{DIR_ORIGINAL, KIND_DNAT, KIND_HAIRPIN},
    ct6::CtKey6,
    publish::{PublishKey, PublishKey6, PublishTarget, PublishTarget6},
};

use super::{Agent, Change};
use crate::{
    api::types::{Endpoint, PortView},
    error::{AgentError, Chain},
    network::Mode,
    owner::Owner,
    publish::{PortMapping, PortSpec, Proto, ReserveError},
};

/// Whether publishing holds the host port with a socket of the agent's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hold {
    /// Always: a port some program holds is refused (weir's own verbs).
    Always,
    /// Never: the runtime's ports (a CNI runtime's: Podman's conmon
    /// listens on every published port itself, before the plugin runs).
    /// The datapath translates before any socket sees the packets, and
    /// the node's own connections are pointed at the container, so an
    /// idle socket of the runtime's gets nothing.
    Never,
}

impl Hold {
    /// weir's own endpoints hold their host ports; a runtime's or an
    /// engine's hold theirs themselves.
    pub(super) fn of(owner: &Owner) -> Self {
        if owner.is_weir() {
            Hold::Always
        } else {
            Hold::Never
        }
    }
}

/// How many times a kernel-picked port is picked again when it clashes.
const PICK_TRIES: usize = 16;

fn parse_specs(specs: &[String]) -> Result<Vec<PortSpec>, AgentError> {
    specs
        .iter()
        .map(|s| s.parse::<PortSpec>().map_err(AgentError::from))
        .collect()
}

impl Agent {
    /// Publishes `specs` on endpoint `name`: all of them or none.
    pub async fn publish(
        &mut self,
        name: &str,
        specs: &[String],
    ) -> Result<Vec<PortMapping>, AgentError> {
        self.refuse_foreign_endpoint(name, "publish")?;
        self.publish_as(name, &parse_specs(specs)?, Hold::Always)
            .await
    }

    /// The one publication planner, whoever asks: plans `specs` on
    /// endpoint `name` against every endpoint's mappings (clashes), holds
    /// host ports as `hold` says, installs them; all or nothing.
    pub(super) async fn publish_as(
        &mut self,
        name: &str,
        specs: &[PortSpec],
        hold: Hold,
    ) -> Result<Vec<PortMapping>, AgentError> {
        let ep = self.endpoint(name)?.clone();
        // A publication bound to one family's address needs an address of
        // that family to lead to.
        let lacks =
            |ip: IpAddr| (ip.is_ipv6() && ep.ip6.is_none()) || (ip.is_ipv4() && ep.ip.is_none());
        if let Some((spec, ip)) = specs
            .iter()
            .find_map(|s| s.host_ip.filter(|ip| lacks(*ip)).map(|ip| (s, ip)))
        {
            return Err(AgentError::PublishNoFamily {
                spec: spec.to_string(),
                endpoint: name.to_owned(),
                network: ep.network.clone(),
                family: if ip.is_ipv6() { "IPv6" } else { "IPv4" },
            });
        }
        let mut made = Vec::new();
        for spec in specs {
            if let Err(e) = self.plan(spec, &mut made, hold) {
                for m in &made {
                    self.reservations.release(m.proto, m.host_ip, m.host_port);
                }
                return Err(e);
            }
        }
        // No flow can have entered through a publication that did not
        // exist (withdraw forgets the flows of the one before), so nothing
        // in `CT4` needs to go.
        if let Err(e) = self.install(&ep, &made).await {
            let _ = self.withdraw(&made);
            return Err(e);
        }
        let change = Change::Published {
            endpoint: name.to_owned(),
            ports: made.clone(),
        };
        self.state.apply(change.clone());
        self.sync_open_ports()?;
        self.record(&change)?;
        for m in &made {
            info!(endpoint = %name, port = %m, "published");
        }
        Ok(made)
    }

    /// Withdraws the endpoint's mappings that match `specs` (a spec
    /// without a host part matches every host address and port of its
    /// container ports). Each spec must match something.
    pub fn unpublish(
        &mut self,
        name: &str,
        specs: &[String],
    ) -> Result<Vec<PortMapping>, AgentError> {
        self.refuse_foreign_endpoint(name, "unpublish")?;
        let parsed = parse_specs(specs)?;
        let ep = self.endpoint(name)?.clone();
        let mut gone = Vec::new();
        for (spec, text) in parsed.iter().zip(specs) {
            let hits: Vec<PortMapping> = ep
                .ports
                .iter()
                .filter(|m| matches(spec, m))
                .copied()
                .collect();
            if hits.is_empty() {
                return Err(AgentError::NotPublished {
                    endpoint: name.to_owned(),
                    spec: text.clone(),
                });
            }
            for m in hits {
                if !gone.contains(&m) {
                    gone.push(m);
                }
            }
        }
        self.withdraw(&gone)?;
        let change = Change::Withdrawn {
            endpoint: name.to_owned(),
            ports: gone.clone(),
        };
        self.state.apply(change.clone());
        self.sync_open_ports()?;
        self.record(&change)?;
        for m in &gone {
            info!(endpoint = %name, port = %m, "unpublished");
        }
        Ok(gone)
    }

    /// Every published port, or those of one endpoint.
    pub fn ports(&self, name: Option<&str>) -> Result<Vec<PortView>, AgentError> {
        let endpoints: Vec<&Endpoint> = match name {
            Some(n) => vec![self.endpoint(n)?],
            None => self.state.endpoints.values().collect(),
        };
        Ok(endpoints
            .into_iter()
            .flat_map(|e| {
                e.ports.iter().map(|m| PortView {
                    endpoint: e.name.clone(),
                    container_ip: e.target_of(m),
                    mapping: *m,
                })
            })
            .collect())
    }

    pub(super) fn endpoint(&self, name: &str) -> Result<&Endpoint, AgentError> {
        self.state
            .endpoints
            .get(name)
            .ok_or_else(|| AgentError::EndpointNotFound {
                name: name.to_owned(),
            })
    }

    /// Turns one spec into mappings (pushed on `made`), reserving each
    /// host port. Clashes are checked against every endpoint's mappings
    /// and against `made` (a spec list that clashes with itself).
    fn plan(
        &mut self,
        spec: &PortSpec,
        made: &mut Vec<PortMapping>,
        hold: Hold,
    ) -> Result<(), AgentError> {
        let host_ip = spec.host_ip.unwrap_or(PortMapping::EVERY);
        let proto = spec.proto;
        if proto == Proto::Sctp {
            return Err(ReserveError::Unsupported { proto }.into());
        }
        let mapping = |host_port, container_port| PortMapping {
            proto,
            host_ip,
            host_port,
            container_port,
        };
        match spec.host_ports {
            None => {
                for c in spec.container_ports.ports() {
                    let m = self.pick(mapping(0, c), made)?;
                    made.push(m);
                }
            }
            Some(range) if spec.picks_from_host_range() => {
                let mut found = None;
                for (h, c) in spec.pairs() {
                    let m = mapping(h, c);
                    if self.holder(&m, made).is_some() {
                        continue;
                    }
                    match self.reservations.reserve(proto, host_ip, h) {
                        Ok(_) => {
                            found = Some(m);
                            break;
                        }
                        Err(ReserveError::InUse { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                made.push(found.ok_or_else(|| AgentError::NoFreePort {
                    spec: spec.to_string(),
                    range: range.to_string(),
                    ip: host_ip,
                })?);
            }
            Some(_) => {
                for (h, c) in spec.pairs() {
                    let m = mapping(h, c);
                    if let Some(endpoint) = self.holder(&m, made) {
                        return Err(AgentError::PortAllocated {
                            bind: m.host_side(),
                            endpoint,
                        });
                    }
                    if hold == Hold::Always {
                        self.reservations.reserve(proto, host_ip, h)?;
                    }
                    made.push(m);
                }
            }
        }
        Ok(())
    }

    /// A host port the kernel picks for `m`, clear of every mapping.
    fn pick(&mut self, m: PortMapping, made: &[PortMapping]) -> Result<PortMapping, AgentError> {
        for _ in 0..PICK_TRIES {
            let port = self.reservations.reserve(m.proto, m.host_ip, 0)?;
            let picked = PortMapping {
                host_port: port,
                ..m
            };
            if self.holder(&picked, made).is_none() {
                return Ok(picked);
            }
            self.reservations.release(m.proto, m.host_ip, port);
        }
        Err(AgentError::NoFreePort {
            spec: format!("{}/{}", m.container_port, m.proto),
            range: "ip_local_port_range".to_owned(),
            ip: m.host_ip,
        })
    }

    /// Who already publishes a host port that clashes with `m`.
    fn holder(&self, m: &PortMapping, made: &[PortMapping]) -> Option<String> {
        if made.iter().any(|x| x.clashes(m)) {
            return Some("(this request)".to_owned());
        }
        self.state
            .endpoints
            .values()
            .find(|e| e.ports.iter().any(|x| x.clashes(m)))
            .map(|e| e.name.clone())
    }

    /// Puts `mappings` of `ep` on IPv4 into `PUBLISH4` with their
    /// counters, and those on IPv6 into `PUBLISH6` when `ep` has an IPv6
    /// address. (A new
    /// publication then drops the conntrack entries that still lead its
    /// host ports elsewhere; a restored one keeps its flows.)
    pub(super) async fn install(
        &mut self,
        ep: &Endpoint,
        mappings: &[PortMapping],
    ) -> Result<(), AgentError> {
        // The datapath's own record first: no netlink round trip.
        let known = match ep.ip {
            Some(ip) => self.datapath.endpoint_ifindex(ip)?,
            None => None,
        };
        let ifindex = match known {
            Some(index) => index,
            None => self.nl.link_index(&ep.host_if).await?.unwrap_or(0),
        };
        let network_id = self.state.registry.get(&ep.network)?.id;
        for m in mappings {
            // An endpoint without IPv4 has its publications on IPv6 only.
            if let (Some(key), Some(ip)) = (m.key(), ep.ip) {
                let target = PublishTarget {
                    ip: ip.octets(),
                    port: m.container_port.to_be_bytes(),
                    pad: [0; 2],
                    ifindex,
                    network_id,
                };
                self.datapath.ensure_port_stats(key)?;
                self.datapath.insert_publish(key, target)?;
            }
            if let (Some(ip6), Some(key6)) = (ep.ip6, m.key6()) {
                let target6 = PublishTarget6 {
                    ip: ip6.octets(),
                    port: m.container_port.to_be_bytes(),
                    pad: [0; 2],
                    network_id,
                };
                self.datapath.ensure_port_stats(key6)?;
                self.datapath.insert_publish6(key6, target6)?;
            }
        }
        Ok(())
    }

    /// Takes `mappings` out of `PUBLISH4` and `PUBLISH6`, frees their host ports and
    /// drops their flows.
    pub(super) fn withdraw(&mut self, mappings: &[PortMapping]) -> Result<(), AgentError> {
        for m in mappings {
            if let Some(key) = m.key() {
                self.datapath.remove_publish(key)?;
                self.datapath.remove_port_stats(key)?;
            }
            if let Some(key6) = m.key6() {
                self.datapath.remove_publish6(key6)?;
                self.datapath.remove_port_stats(key6)?;
            }
            self.reservations.release(m.proto, m.host_ip, m.host_port);
        }
        self.forget_flows(mappings)
    }

    /// Makes `OPEN_PORTS4` and `OPEN_PORTS6` match the publications: in a
    /// routed network (not internal) each published container port is
    /// also open at the container's own addresses.
    pub(super) fn sync_open_ports(&mut self) -> Result<(), AgentError> {
        let (mut open, mut open6) = (Vec::new(), Vec::new());
        for ep in self.state.endpoints.values() {
            let Ok(net) = self.state.registry.get(&ep.network) else {
                continue;
            };
            if net.mode != Mode::Routed || net.internal {
                continue;
            }
            for m in &ep.ports {
                if let (Some(ip), Some(_)) = (ep.ip, m.key()) {
                    let key = PublishKey::new(ip.octets(), m.container_port, m.proto.number());
                    if !open.iter().any(|(k, _)| *k == key) {
                        open.push((key, net.id));
                    }
                }
                if let Some(ip6) = ep.ip6.filter(|_| m.key6().is_some()) {
                    let key = PublishKey6::new(ip6.octets(), m.container_port, m.proto.number());
                    if !open6.iter().any(|(k, _)| *k == key) {
                        open6.push((key, net.id));
                    }
                }
            }
        }
        // Most changes leave it as it was (a NAT network opens nothing).
        if self.open_ports.as_ref() != Some(&(open.clone(), open6.clone())) {
            self.datapath.set_open_ports(&open)?;
            self.datapath.set_open_ports6(&open6)?;
            self.open_ports = Some((open, open6));
        }
        Ok(())
    }

    /// Re-reserves the host ports of restored mappings (after a restart).
    /// A port some program took while the agent was down stays published
    /// (the datapath translates before any socket sees the packet); the
    /// log says so.
    pub(super) fn rereserve(&mut self, ep: &Endpoint) {
        for m in &ep.ports {
            if self.reservations.holds(m.proto, m.host_ip, m.host_port) {
                continue;
            }
            if let Err(e) = self.reservations.reserve(m.proto, m.host_ip, m.host_port) {
                warn!(
                    endpoint = %ep.name, port = %m,
                    "cannot hold the published port: {}", Chain(&e)
                );
            }
        }
    }

    /// Removes both entries of every tracked flow that entered through one
    /// of these publications.
    fn forget_flows(&mut self, mappings: &[PortMapping]) -> Result<(), AgentError> {
        let keys: Vec<PublishKey> = mappings.iter().filter_map(PortMapping::key).collect();
        // Both directions of an IPv4 flow name the publication it came in by.
        let stale: Vec<_> = self
            .datapath
            .conntrack::<weir_common::ct::CtKey>()?
            .into_iter()
            .filter(|f| keys.contains(&f.entry.publication))
            .map(|f| f.key)
            .collect();
        if !stale.is_empty() {
            self.datapath.remove_conntrack(&stale)?;
        }
        // An IPv6 flow's original direction is its publication's key (the
        // address called, which `::` covers, and the host port); the
        // answers' entry is found from it.
        let keys6: Vec<PublishKey6> = mappings.iter().filter_map(PortMapping::key6).collect();
        if keys6.is_empty() {
            return Ok(());
        }
        let entered = |k: &CtKey6| {
            keys6.iter().any(|p| {
                p.port == k.dport
                    && p.proto == k.proto
                    && (p.host_ip == [0; 16] || p.host_ip == k.daddr)
            })
        };
        let stale6: Vec<CtKey6> = self
            .datapath
            .conntrack::<CtKey6>()?
            .into_iter()
            .filter(|f| {
                f.entry.dir == DIR_ORIGINAL
                    && (f.entry.kind == KIND_DNAT || f.entry.kind == KIND_HAIRPIN)
                    && entered(&f.key)
            })
            .flat_map(|f| [f.key, CtKey6::reply_of(&f.entry, f.key.proto)])
            .collect();
        if !stale6.is_empty() {
            self.datapath.remove_conntrack(&stale6)?;
        }
        Ok(())
    }
}

/// Whether `m` is one of the mappings `spec` names.
fn matches(spec: &PortSpec, m: &PortMapping) -> bool {
    spec.proto == m.proto
        && spec.container_ports.ports().any(|c| c == m.container_port)
        && spec.host_ip.is_none_or(|ip| ip == m.host_ip)
        && spec
            .host_ports
            .is_none_or(|r| r.ports().any(|h| h == m.host_port))
}
