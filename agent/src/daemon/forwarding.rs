//! The node's forwarding switches: weir's networks reach the outside
//! through the node's routes, so the node must forward each family its
//! networks use (as Docker sets them).

use std::fs;

use tracing::{info, warn};

use crate::error::AgentError;

const IPV4: &str = "/proc/sys/net/ipv4/ip_forward";
const IPV6: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// Turns `net.ipv4.ip_forward` on.
pub fn enable_ipv4() -> Result<(), AgentError> {
    if enable(IPV4, "net.ipv4.ip_forward")? {
        info!("enabled net.ipv4.ip_forward");
    }
    Ok(())
}

/// Turns `net.ipv6.conf.all.forwarding` on, for a dual-stack network
/// that reaches beyond the node. A forwarding node ignores router
/// advertisements on an interface whose `accept_ra` is 1: each uplink
/// that relies on them is named, with the setting that keeps them.
pub fn enable_ipv6(uplinks: &[String]) -> Result<(), AgentError> {
    if !enable(IPV6, "net.ipv6.conf.all.forwarding")? {
        return Ok(());
    }
    info!("enabled net.ipv6.conf.all.forwarding (a dual-stack network reaches beyond the node)");
    for uplink in uplinks {
        let path = format!("/proc/sys/net/ipv6/conf/{uplink}/accept_ra");
        if fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
            warn!(
                uplink = %uplink,
                "IPv6 forwarding ignores router advertisements where accept_ra is 1: set net.ipv6.conf.{uplink}.accept_ra=2 if the uplink takes its IPv6 route from them"
            );
        }
    }
    Ok(())
}

/// Writes 1 to the switch at `path` unless it is on; whether it wrote.
fn enable(path: &str, name: &str) -> Result<bool, AgentError> {
    let now = fs::read_to_string(path).map_err(AgentError::io(format!("reading {name}")))?;
    if now.trim() == "1" {
        return Ok(false);
    }
    fs::write(path, "1").map_err(AgentError::io(format!("enabling {name}")))?;
    Ok(true)
}
