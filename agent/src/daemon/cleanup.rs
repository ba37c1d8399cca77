//! `weir agent --cleanup`: takes weir off the node. With the agent stopped,
//! removes every pin (links first, which detaches the programs; then
//! programs and maps), the bridges and veths it made, the namespaces of
//! `weir run`, and the state.

use std::{fs, io, path::Path};

use tracing::info;

use super::{State, endpoint::is_host_veth_name, is_bridge_name};
use crate::{
    error::AgentError,
    mounts,
    netlink::Netlink,
    netns,
    owner::Owner,
    paths::{Paths, run_netns_path},
};

/// Removes everything of weir's at `paths` in the calling thread's
/// network namespace; returns what it removed, one line each.
pub async fn cleanup(paths: &Paths) -> Result<Vec<String>, AgentError> {
    if tokio::net::UnixStream::connect(&paths.socket).await.is_ok() {
        return Err(AgentError::RunningDuringCleanup {
            socket: paths.socket.clone(),
        });
    }
    let mut removed = Vec::new();
    let state = State::load(paths)?;
    // The pins as this process reaches them (maybe in the mount namespace
    // it was started from), named as given.
    let pins = mounts::bpffs(&paths.bpffs)?;
    let reach = paths.with_pin_root(&pins.path);
    let shown = |p: &Path| paths.bpffs.join(p.strip_prefix(&pins.path).unwrap_or(p));
    // The pins first: once the links are gone no program runs, so nothing
    // acts on a veth while it is being deleted.
    for dir in [reach.links_dir(), reach.progs_dir(), reach.maps_dir()] {
        for pin in entries(&dir)? {
            remove(&pin, |p| fs::remove_file(p))?;
            removed.push(format!("pin {}", shown(&pin).display()));
        }
        remove(&dir, |p| fs::remove_dir(p))?;
    }
    remove(&reach.bpffs, |p| fs::remove_dir(p))?;
    let nl = Netlink::connect()?;
    for (_, link) in nl.links().await? {
        // Never an engine's bridge or veth (Docker's): those are its own.
        let engines = |l: &str| {
            state
                .registry
                .iter()
                .any(|n| n.bridge == l && matches!(n.owner, Owner::Docker { .. }))
                || state
                    .endpoints
                    .values()
                    .any(|e| e.host_if == l && matches!(e.owner, Owner::Docker { .. }))
        };
        let ours = !engines(&link)
            && (is_bridge_name(&link)
                || is_host_veth_name(&link)
                || state.registry.iter().any(|n| n.bridge == link)
                || state.endpoints.values().any(|e| e.host_if == link));
        if ours && nl.delete_link(&link).await? {
            removed.push(format!("link {link}"));
        }
    }
    // The routes to other nodes' pods (`--cluster-nodes`).
    for route in nl.weir_routes().await? {
        nl.del_weir_route(route).await?;
        removed.push(format!("route {route}"));
    }
    let runs = run_netns_path(&paths.socket, "x")
        .parent()
        .map(Path::to_path_buf);
    if let Some(dir) = runs {
        for ns in entries(&dir)? {
            netns::remove(&ns).map_err(AgentError::io(format!("removing {}", ns.display())))?;
            removed.push(format!("namespace {}", ns.display()));
        }
        remove(&dir, |p| fs::remove_dir(p))?;
    }
    let state_file = paths.state_file();
    if state_file.exists() {
        remove(&state_file, |p| fs::remove_file(p))?;
        removed.push(format!("state {}", state_file.display()));
    }
    // The directories too, if nothing else lives there.
    let _ = fs::remove_dir(&paths.state_dir);
    info!(removed = removed.len(), "cleaned up");
    Ok(removed)
}

/// The entries of `dir` (none if it does not exist).
fn entries(dir: &Path) -> Result<Vec<std::path::PathBuf>, AgentError> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()
            .map_err(AgentError::io(format!("reading {}", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(AgentError::io(format!("reading {}", dir.display()))(e)),
    }
}

/// Runs `op` on `path`; absent is fine.
fn remove(path: &Path, op: fn(&Path) -> io::Result<()>) -> Result<(), AgentError> {
    match op(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(AgentError::io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}
