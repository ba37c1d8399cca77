//! `weir agent --docker`: weir does the job of Docker's iptables rules for
//! Docker's own bridge networks. The follower reads the engine's API on its
//! Unix socket (this crate's hyper client, see `api`), turns what it says
//! into weir's plain data (`picture`) and hands that to the agent's library
//! (`daemon::foreign`), which owns every rule.
//!
//! Like an informer it never trusts the event stream alone: it subscribes
//! to events, then reconciles the whole picture (every bridge network,
//! every running container), then applies events one container at a time;
//! when the stream breaks (Docker restarting) it backs off, subscribes and
//! reconciles again. While Docker is away the datapath keeps what it has.

pub mod api;
pub mod picture;

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::{Mutex, mpsc};
use tracing::{debug, info, warn};

use self::{
    api::{Client, DockerError, Event},
    picture::Followed,
};
use crate::{
    api::types::{ForeignEndpoint, ForeignNetwork},
    daemon::Agent,
    error::{AgentError, Chain},
    owner::Owner,
};

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("Docker ended the event stream")]
    StreamEnded,
}

/// The first wait after a lost stream, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Follows the engine at `client` for as long as the agent runs.
pub async fn follow(client: Client, agent: Arc<Mutex<Agent>>) {
    warn_if_docker_writes_rules();
    let mut wait = BACKOFF.0;
    loop {
        match follow_once(&client, &agent, &mut wait).await {
            Ok(()) => {}
            Err(e) => {
                warn!(
                    socket = %client.socket().display(), retry_in = ?wait,
                    "not following Docker: {}", Chain(&e)
                );
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(BACKOFF.1);
    }
}

/// One subscription: events first (so none is missed), the whole picture,
/// then the events until the stream ends. `wait` goes back to its least
/// once the picture is in.
async fn follow_once(
    client: &Client,
    agent: &Arc<Mutex<Agent>>,
    wait: &mut Duration,
) -> Result<(), FollowError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let events = client.clone();
    let reader = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let result = events
            .events_with(
                || {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                },
                |e| {
                    let _ = tx.send(e);
                    Ok(())
                },
            )
            .await;
        if let Err(e) = &result {
            debug!("Docker event stream ended: {}", Chain(e));
        }
        result
    });
    if ready_rx.await.is_err() {
        // The subscription failed before it started: say why.
        return match reader.await {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(FollowError::StreamEnded),
        };
    }
    sync_all(client, agent).await?;
    *wait = BACKOFF.0;
    info!(socket = %client.socket().display(), "following Docker");
    while let Some(event) = rx.recv().await {
        if let Err(e) = on_event(client, agent, &event).await {
            warn!(
                kind = %event.kind, action = %event.action, id = %event.actor.id,
                "a Docker event could not be applied ({}); the whole picture is read again",
                Chain(&e)
            );
            sync_all(client, agent).await?;
        }
    }
    match reader.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Err(FollowError::StreamEnded),
    }
}

/// The engine's whole picture, applied at once.
async fn sync_all(client: &Client, agent: &Arc<Mutex<Agent>>) -> Result<(), FollowError> {
    let networks = followed_networks(client).await?;
    let ids = followed(
        networks
            .iter()
            .map(|n| (&n.owner, n.spec.name.clone(), n.spec.internal)),
    );
    let mut endpoints = Vec::new();
    for summary in client.running().await? {
        if let Some(c) = client.container(&summary.id).await? {
            endpoints.extend(picture::endpoints(&c, &ids));
        }
    }
    agent
        .lock()
        .await
        .sync_foreign(&docker_engine(), &networks, &endpoints)
        .await?;
    Ok(())
}

async fn followed_networks(client: &Client) -> Result<Vec<ForeignNetwork>, FollowError> {
    let mut out = Vec::new();
    for n in client.networks().await? {
        match picture::network(&n) {
            Ok(f) => out.push(f),
            Err(why) => debug!(network = %n.name, %why, "not a network weir follows"),
        }
    }
    Ok(out)
}

/// Docker network id -> the weir network, of networks given as (owner,
/// weir name, internal).
fn followed<'a>(
    networks: impl Iterator<Item = (&'a Owner, String, bool)>,
) -> HashMap<String, Followed> {
    networks
        .filter_map(|(owner, name, internal)| {
            Some((owner.docker_id()?.to_owned(), Followed { name, internal }))
        })
        .collect()
}

/// Any Docker object: what a full sync covers.
fn docker_engine() -> Owner {
    Owner::Docker { id: String::new() }
}

async fn on_event(
    client: &Client,
    agent: &Arc<Mutex<Agent>>,
    event: &Event,
) -> Result<(), FollowError> {
    debug!(kind = %event.kind, action = %event.action, id = %event.actor.id, "Docker event");
    let container = match (event.kind.as_str(), event.action.as_str()) {
        ("network", "create" | "destroy") => return sync_all(client, agent).await,
        ("network", "connect" | "disconnect") => event.actor.attributes.get("container").cloned(),
        ("container", "start" | "die" | "destroy" | "restart" | "unpause") => {
            Some(event.actor.id.clone())
        }
        _ => None,
    };
    let Some(id) = container else {
        return Ok(());
    };
    sync_container(client, agent, &id).await
}

/// One container's endpoints, as Docker has them now (none when it is not
/// running or gone).
async fn sync_container(
    client: &Client,
    agent: &Arc<Mutex<Agent>>,
    id: &str,
) -> Result<(), FollowError> {
    let endpoints: Vec<ForeignEndpoint> = match client.container(id).await? {
        Some(c) => {
            if let Some(why) = picture::not_followed(&c)
                && c.state.running
            {
                info!(container = %c.name.trim_start_matches('/'), mode = %c.host_config.network_mode,
                    "{why}: weir leaves its network alone");
            }
            let networks = agent.lock().await.foreign_networks(&docker_engine());
            let ids = followed(networks.iter().map(|(o, n, i)| (o, n.clone(), *i)));
            picture::endpoints(&c, &ids)
        }
        None => Vec::new(),
    };
    agent
        .lock()
        .await
        .sync_foreign_owner(&Owner::Docker { id: id.to_owned() }, &endpoints)
        .await?;
    Ok(())
}

/// Docker writes its own NAT rules unless told not to: two datapaths must
/// not both translate. Says so, with the fix, when its `DOCKER` chain is in
/// the node's nat table.
fn warn_if_docker_writes_rules() {
    let Ok(out) = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
    else {
        return;
    };
    let rules = String::from_utf8_lossy(&out.stdout);
    if docker_chain_present(&rules) {
        warn!(
            "Docker writes its own iptables rules on this node (the nat table has a DOCKER chain): \
             set \"iptables\": false, \"ip6tables\": false and \"userland-proxy\": false in \
             /etc/docker/daemon.json and restart dockerd, or Docker and weir both translate"
        );
    }
}

fn docker_chain_present(nat: &str) -> bool {
    nat.lines().any(|l| l.starts_with(":DOCKER "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_s_nat_chain_is_recognised() {
        let docker = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n";
        assert!(docker_chain_present(docker));
        assert!(!docker_chain_present(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n"
        ));
    }
}
