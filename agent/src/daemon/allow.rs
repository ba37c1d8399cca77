//! User rules (`weir allow`): each listed host port's sources, in the
//! state and in `ALLOW_PORTS4`/`ALLOW4`, which `ct::create` asks before
//! any new flow to a publication (from outside, by tc or XDP, and
//! hairpin from containers; the node's own connections are not filtered,
//! as `DOCKER-USER` sees no local traffic).

use tracing::info;

use super::Agent;
use crate::{
    error::AgentError,
    publish::{AllowRule, AllowedPort},
};

impl Agent {
    /// Sets `rule.port`'s list to `rule.sources` (replacing one it had).
    /// It applies to new flows; `weir conntrack flush` ends the others.
    pub fn allow(&mut self, rule: AllowRule) -> Result<AllowRule, AgentError> {
        if rule.sources.is_empty() {
            return Err(AgentError::AllowEmpty {
                port: rule.port.to_string(),
            });
        }
        let mut rule = rule;
        rule.sources.sort();
        rule.sources.dedup();
        self.state.allow.retain(|r| r.port != rule.port);
        self.state.allow.push(rule.clone());
        self.state.allow.sort_by_key(|r| r.port);
        self.sync_allow()?;
        self.save()?;
        info!(port = %rule.port, sources = ?rule.sources.iter().map(ToString::to_string).collect::<Vec<_>>(), "allow list set");
        Ok(rule)
    }

    /// Every list.
    #[must_use]
    pub fn allow_list(&self) -> Vec<AllowRule> {
        self.state.allow.clone()
    }

    /// Removes `port`'s list: everyone may reach it again.
    pub fn allow_rm(&mut self, port: AllowedPort) -> Result<AllowRule, AgentError> {
        let Some(i) = self.state.allow.iter().position(|r| r.port == port) else {
            return Err(AgentError::AllowNotFound {
                port: port.to_string(),
            });
        };
        let rule = self.state.allow.remove(i);
        self.sync_allow()?;
        self.save()?;
        info!(port = %port, "allow list removed");
        Ok(rule)
    }

    /// Makes `ALLOW_PORTS4` and `ALLOW4` hold exactly the state's lists.
    pub(super) fn sync_allow(&mut self) -> Result<(), AgentError> {
        let ports: Vec<_> = self.state.allow.iter().map(|r| r.port.key()).collect();
        let sources: Vec<_> = self
            .state
            .allow
            .iter()
            .flat_map(|r| {
                r.sources
                    .iter()
                    .map(|s| (r.port.key(), s.network(), s.prefix()))
            })
            .collect();
        self.datapath.set_allow(&ports, &sources)?;
        Ok(())
    }
}
