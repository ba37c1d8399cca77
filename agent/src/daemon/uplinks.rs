//! The uplinks: the interfaces weir's traffic leaves and enters the node
//! by (`--uplink`, or else the devices of the default routes), followed as
//! the host's network changes. A default route that appears or moves
//! attaches the programs to its device and detaches them from the one it
//! left; an address added to an uplink is masquerade's and the published
//! ports' at once, and a masqueraded flow whose address is gone is ended
//! (as the kernel's MASQUERADE forgets its flows when the device's
//! address goes), so that its next packet leaves with the new one.
//!
//! The agent learns of changes from the kernel's announcements
//! ([`crate::netlink::watch`]); its 2 s tick runs the same check, for an
//! announcement lost to a full socket buffer.

use std::{sync::Arc, time::Duration};

use tokio::sync::Mutex;
use tracing::{info, warn};
use weir_common::{ct::KIND_SNAT, ct6::CtKey6};

use super::{Agent, conntrack, is_bridge_name};
use crate::{
    datapath::{CtRecord as _, CtTable, XdpChoice},
    error::{AgentError, Chain},
    netlink::watch::{Change, Watch},
};

/// How long a burst of changes (a link up, its addresses, its routes) is
/// gathered before the agent looks: one look for the burst.
const SETTLE: Duration = Duration::from_millis(50);

/// What the agent says when it has no uplink, at start and when the last
/// one goes.
pub(super) const NO_UPLINK: &str = "no uplink: no default route and no --uplink; traffic stays on the node until a default route appears";

/// Why the uplinks are what they are, for `weir status`.
pub(super) fn why_none() -> String {
    "none: no default route (weir attaches to its device when one appears)".to_owned()
}

impl Agent {
    /// Makes the attached uplinks the ones wanted now: attaches the
    /// programs to a new one, detaches them from one that is no longer
    /// wanted or is gone.
    pub(super) async fn follow_uplinks(&mut self) -> Result<(), AgentError> {
        let (wanted, why) = self.wanted_uplinks().await?;
        self.uplinks_why = why;
        if wanted == self.uplinks {
            return Ok(());
        }
        for name in self.uplinks.clone() {
            if !wanted.contains(&name) {
                self.datapath.detach_uplink(&name)?;
                info!(uplink = %name, "uplink detached: no longer the default route's device, or gone");
            }
        }
        for name in &wanted {
            if !self.uplinks.contains(name) {
                self.attach_uplink(name).await?;
            }
        }
        if wanted.is_empty() {
            warn!("{NO_UPLINK}");
        }
        self.uplinks = wanted;
        Ok(())
    }

    /// The uplinks wanted now, and why.
    async fn wanted_uplinks(&self) -> Result<(Vec<String>, String), AgentError> {
        if self.config.uplinks.is_empty() {
            let devices: Vec<String> = self
                .nl
                .default_route_devices()
                .await?
                .into_iter()
                .filter(|d| !is_bridge_name(d))
                .collect();
            let why = if devices.is_empty() {
                why_none()
            } else {
                "the default route's device".to_owned()
            };
            return Ok((devices, why));
        }
        let (mut present, mut absent) = (Vec::new(), Vec::new());
        for name in &self.config.uplinks {
            if self.nl.link_index(name).await?.is_some() {
                present.push(name.clone());
            } else {
                absent.push(name.as_str());
            }
        }
        let why = if absent.is_empty() {
            "--uplink".to_owned()
        } else {
            format!(
                "--uplink; {} absent (attached when it comes back)",
                absent.join(", ")
            )
        };
        Ok((present, why))
    }

    async fn attach_uplink(&mut self, uplink: &str) -> Result<(), AgentError> {
        let xdp = match self.config.xdp {
            // Native XDP on a veth turns every frame into an XDP buffer
            // first (measured here: a TCP stream through a published port
            // at a quarter of its speed); `auto` leaves it to tc.
            XdpChoice::Auto if self.nl.is_veth(uplink).await? => {
                info!(uplink = %uplink, "a veth uplink: no XDP (--xdp native forces it)");
                XdpChoice::Off
            }
            other => other,
        };
        if let Some(mode) = self.datapath.attach_uplink(uplink, xdp)? {
            info!(uplink = %uplink, mode, "uplink attached, xdp_from_uplink too");
        } else {
            info!(uplink = %uplink, "uplink attached (tc)");
        }
        Ok(())
    }

    /// Follows the host: the uplinks, then the node's addresses, then the
    /// masqueraded flows of an address that is no longer an uplink's.
    pub async fn follow_host(&mut self) -> Result<(), AgentError> {
        self.follow_uplinks().await?;
        let before = self.masquerade_addrs.clone();
        self.refresh_host_addrs().await?;
        if self.masquerade_addrs != before {
            info!(addresses = ?self.masquerade_addrs, "masquerade addresses changed");
            let ended = self.end_masquerade_of_gone_addrs()?;
            if ended > 0 {
                info!(
                    flows = ended,
                    "ended masqueraded flows of an address the uplinks no longer have"
                );
            }
        }
        Ok(())
    }

    /// Ends the masqueraded flows, of both families, that leave with an
    /// address no uplink has now; returns how many.
    fn end_masquerade_of_gone_addrs(&mut self) -> Result<usize, AgentError> {
        Ok(self.end_masquerade::<weir_common::ct::CtKey>()? + self.end_masquerade::<CtKey6>()?)
    }

    fn end_masquerade<K: CtTable>(&mut self) -> Result<usize, AgentError> {
        let flows = self.datapath.conntrack::<K>()?;
        let stale: Vec<Vec<_>> = conntrack::pairs(&flows)
            .into_iter()
            .filter(|p| {
                p.original.is_some_and(|o| {
                    o.entry.kind() == KIND_SNAT
                        && !self.masquerade_addrs.contains(&o.entry.to_src().ip())
                })
            })
            .map(|p| p.flows())
            .collect();
        let keys: Vec<K> = stale.iter().flatten().map(|f| f.key).collect();
        self.datapath.remove_conntrack(&keys)?;
        Ok(stale.len())
    }

    /// Whether `change` can move an uplink or an address: links come and
    /// go with every container, and only the uplinks' own matter.
    fn concerns(&self, change: &Change) -> bool {
        match change {
            Change::Address | Change::DefaultRoute => true,
            Change::Link(name) => name
                .as_ref()
                .is_none_or(|n| self.uplinks.contains(n) || self.config.uplinks.contains(n)),
        }
    }
}

/// Follows the host's network for `agent` until the announcements stop:
/// each burst of changes (gathered for [`SETTLE`]) is one look.
pub async fn follow_host(agent: Arc<Mutex<Agent>>, mut watch: Watch) {
    while let Some(first) = watch.next().await {
        tokio::time::sleep(SETTLE).await;
        let mut burst = vec![first];
        while let Some(more) = watch.queued() {
            burst.push(more);
        }
        let mut agent = agent.lock().await;
        if !burst.iter().any(|c| agent.concerns(c)) {
            continue;
        }
        if let Err(e) = agent.follow_host().await {
            warn!("following the host's network: {}", Chain(&e));
        }
    }
    warn!(
        "the kernel's link, address and route announcements stopped; the 2 s tick still follows the host"
    );
}
