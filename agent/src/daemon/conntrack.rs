//! Conntrack as the agent sees it: the sweep that ends flows whose time is
//! up, and the readable listing behind `weir conntrack ls`.

use std::collections::HashMap;

use tracing::debug;
use weir_common::{
    ct::{
        CtKey, DIR_ORIGINAL, DIR_REPLY, FlowState, KIND_DNAT, KIND_HAIRPIN, KIND_ROUTED, KIND_SNAT,
        timeout_ns,
    },
    ct6::CtKey6,
    publish::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
};

use super::Agent;
use crate::{
    api::types::{FlowView, Removed},
    datapath::{CtRecord, CtTable, Tracked},
    error::AgentError,
};

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `bpf_ktime_get_ns` reads.
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// A flow's two directions, paired by their keys.
pub(super) struct Pair<K: CtTable> {
    pub(super) original: Option<Tracked<K>>,
    pub(super) reply: Option<Tracked<K>>,
}

impl<K: CtTable> Pair<K> {
    fn proto(&self) -> u8 {
        self.original.or(self.reply).map_or(0, |f| f.key.proto())
    }
    fn state(&self) -> FlowState {
        FlowState::of(
            self.proto(),
            self.original.map(|f| f.entry.tcp_flags()),
            self.reply.map(|f| f.entry.tcp_flags()),
        )
    }
    fn last_seen(&self) -> u64 {
        [self.original, self.reply]
            .iter()
            .flatten()
            .map(|f| f.entry.last_seen_ns())
            .max()
            .unwrap_or(0)
    }
    pub(super) fn flows(&self) -> Vec<Tracked<K>> {
        [self.original, self.reply].into_iter().flatten().collect()
    }
    fn keys(&self) -> Vec<K> {
        self.flows().iter().map(|f| f.key).collect()
    }
}

/// Pairs every entry with its other direction (a lone one stays alone).
pub(super) fn pairs<K: CtTable>(flows: &[Tracked<K>]) -> Vec<Pair<K>> {
    let mut replies: HashMap<K, Tracked<K>> = flows
        .iter()
        .filter(|f| f.entry.dir() == DIR_REPLY)
        .map(|f| (f.key, *f))
        .collect();
    let mut out: Vec<Pair<K>> = flows
        .iter()
        .filter(|f| f.entry.dir() == DIR_ORIGINAL)
        .map(|f| Pair {
            original: Some(*f),
            reply: replies.remove(&K::reply_of(&f.entry, f.key.proto())),
        })
        .collect();
    out.extend(replies.into_values().map(|r| Pair {
        original: None,
        reply: Some(r),
    }));
    out
}

/// The flows of `flows` whose time is up at `now`, each with its entries.
fn expired<K: CtTable>(flows: &[Tracked<K>], now: u64) -> Vec<Vec<Tracked<K>>> {
    pairs(flows)
        .into_iter()
        .filter(|p| now.saturating_sub(p.last_seen()) > timeout_ns(p.proto(), p.state()))
        .map(|p| p.flows())
        .collect()
}

fn proto_name(proto: u8) -> String {
    match proto {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        p => p.to_string(),
    }
}

impl Agent {
    /// Ends the flows whose time is up, in both tables: both entries go
    /// together, and only as they were read (a flow a packet has touched
    /// since, or a new one on the same tuple, stays: the walk of a large
    /// map takes long enough for a client to reuse its port).
    pub fn sweep_conntrack(&mut self) -> Result<Removed, AgentError> {
        let mut removed = self.sweep::<CtKey>()?;
        let removed6 = self.sweep::<CtKey6>()?;
        removed.flows += removed6.flows;
        removed.entries += removed6.entries;
        if removed.flows > 0 {
            debug!(flows = removed.flows, "conntrack sweep");
        }
        Ok(removed)
    }

    fn sweep<K: CtTable>(&mut self) -> Result<Removed, AgentError> {
        let mut removed = Removed::default();
        for flow in expired(&self.datapath.conntrack::<K>()?, monotonic_ns()) {
            if self.datapath.remove_flow_if_unchanged(&flow)? {
                removed.flows += 1;
                removed.entries += flow.len();
            }
        }
        Ok(removed)
    }

    /// Ends every tracked flow. Open TCP connections through published
    /// ports are picked up again by their next packet.
    pub fn flush_conntrack(&mut self) -> Result<Removed, AgentError> {
        let mut removed = self.flush::<CtKey>()?;
        let removed6 = self.flush::<CtKey6>()?;
        removed.flows += removed6.flows;
        removed.entries += removed6.entries;
        Ok(removed)
    }

    fn flush<K: CtTable>(&mut self) -> Result<Removed, AgentError> {
        let all = pairs(&self.datapath.conntrack::<K>()?);
        let keys: Vec<K> = all.iter().flat_map(Pair::keys).collect();
        self.datapath.remove_conntrack(&keys)?;
        Ok(Removed {
            flows: all.len(),
            entries: keys.len(),
        })
    }

    /// Every tracked flow of both families, oldest first.
    pub fn conntrack(&self) -> Result<Vec<FlowView>, AgentError> {
        let mut views = self.views::<CtKey>()?;
        views.extend(self.views::<CtKey6>()?);
        views.sort_by_key(|(created, _)| *created);
        Ok(views.into_iter().map(|(_, v)| v).collect())
    }

    /// The entries in `CT4` and `CT6`.
    pub fn conntrack_entries(&self) -> Result<usize, AgentError> {
        Ok(self.datapath.conntrack::<CtKey>()?.len() + self.datapath.conntrack::<CtKey6>()?.len())
    }

    fn views<K: CtTable>(&self) -> Result<Vec<(u64, FlowView)>, AgentError> {
        let now = monotonic_ns();
        let secs = |ns: u64| ns / 1_000_000_000;
        Ok(pairs(&self.datapath.conntrack::<K>()?)
            .into_iter()
            .filter_map(|p| {
                let o = p.original?;
                let state = p.state();
                let idle = now.saturating_sub(p.last_seen());
                let reply = p.reply.map(|r| r.entry).unwrap_or_default();
                let view = FlowView {
                    proto: proto_name(o.key.proto()),
                    kind: match o.entry.kind() {
                        KIND_DNAT => "dnat".into(),
                        KIND_HAIRPIN => "hairpin".into(),
                        KIND_SNAT => "snat".into(),
                        KIND_ROUTED => "routed".into(),
                        k => k.to_string(),
                    },
                    src: o.key.src(),
                    dst: o.key.dst(),
                    to_src: o.entry.to_src(),
                    to_dst: o.entry.to_dst(),
                    state: state.name().to_owned(),
                    age_s: secs(now.saturating_sub(o.entry.created_ns())),
                    idle_s: secs(idle),
                    expires_s: secs(timeout_ns(o.key.proto(), state).saturating_sub(idle)),
                    packets_out: o.entry.packets(),
                    bytes_out: o.entry.bytes(),
                    packets_back: reply.packets(),
                    bytes_back: reply.bytes(),
                };
                Some((o.entry.created_ns(), view))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use weir_common::ct::{CtEntry, TCP_ACK, TCP_FIN, TCP_SYN};

    use super::*;
    use crate::datapath::CtFlow;

    const S: u64 = 1_000_000_000;

    /// A DNAT flow: client -> node:8080 -> backend:80, last seen at `seen`
    /// (seconds), with these flags in each direction.
    fn flow(proto: u8, sport: u16, seen: u64, out: u8, back: Option<u8>) -> Vec<CtFlow> {
        let key = CtKey::new(
            [203, 0, 113, 2],
            [203, 0, 113, 1],
            sport.to_be_bytes(),
            8080u16.to_be_bytes(),
            proto,
        );
        let original = CtEntry {
            nat_saddr: key.saddr,
            nat_daddr: [10, 0, 0, 2],
            nat_sport: key.sport,
            nat_dport: 80u16.to_be_bytes(),
            dir: DIR_ORIGINAL,
            kind: KIND_DNAT,
            tcp_flags: out,
            last_seen_ns: seen * S,
            ..CtEntry::default()
        };
        let mut v = vec![CtFlow {
            key,
            entry: original,
        }];
        if let Some(flags) = back {
            v.push(CtFlow {
                key: CtKey::reply_of(&original, proto),
                entry: CtEntry {
                    dir: DIR_REPLY,
                    tcp_flags: flags,
                    last_seen_ns: seen * S,
                    ..CtEntry::default()
                },
            });
        }
        v
    }

    #[test]
    fn each_state_lives_its_own_timeout_and_pairs_go_together() {
        let est = TCP_ACK;
        let mut all = Vec::new();
        all.extend(flow(PROTO_TCP, 1, 1000, TCP_SYN, None)); // syn-sent, 60 s
        all.extend(flow(PROTO_TCP, 2, 1000, TCP_SYN | est, Some(TCP_SYN | est))); // 6 h
        all.extend(flow(PROTO_TCP, 3, 1000, est | TCP_FIN, Some(est | TCP_FIN))); // 10 s
        all.extend(flow(PROTO_UDP, 4, 1000, 0, Some(0))); // 60 s

        let at = |secs: u64| expired(&all, (1000 + secs) * S);
        assert!(at(5).is_empty());
        let gone = at(11);
        assert_eq!(
            gone.iter().map(Vec::len).collect::<Vec<_>>(),
            [2],
            "the closed TCP flow, both entries"
        );
        assert!(
            gone[0]
                .iter()
                .all(|f| f.key.sport == 3u16.to_be_bytes() || f.key.dport == 3u16.to_be_bytes())
        );
        assert_eq!(at(61).len(), 3, "then the half-open TCP and the UDP flow");
        assert_eq!(at(6 * 3600 + 1).len(), 4);
    }

    #[test]
    fn a_lone_reply_entry_is_swept_on_its_own() {
        let mut lone = flow(PROTO_UDP, 9, 1000, 0, Some(0));
        lone.remove(0);
        let gone = expired(&lone, 1061 * S);
        assert_eq!(gone.iter().map(Vec::len).collect::<Vec<_>>(), [1]);
    }
}
