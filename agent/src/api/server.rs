//! The API server: routes to [`Agent`] methods, one request at a time.

use std::{os::unix::fs::PermissionsExt as _, path::Path, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{MethodRouter, get},
};
use tokio::{
    net::UnixListener,
    sync::{Mutex, broadcast::error::RecvError},
};

use super::{
    serve::{Body, limited},
    types::{
        AttachRequest, CniAdd, CniGc, CniRef, ConnectRequest, ErrorBody, NetavarkSetup,
        PortsRequest,
    },
};
use crate::{
    daemon::Agent,
    error::{AgentError, Chain, ErrorKind},
    monitor,
    network::NetworkSpec,
    publish::{AllowRule, AllowedPort},
};

type Shared = Arc<Mutex<Agent>>;

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = match self.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("request failed: {}", Chain(&self));
        }
        (
            status,
            Json(ErrorBody {
                error: Chain(&self).to_string(),
            }),
        )
            .into_response()
    }
}

/// The router and [`ROUTES`] from one list: each path with its methods
/// and their handlers.
macro_rules! routes {
    ($($path:literal => $($method:ident($handler:ident)).+;)+) => {
        /// Every route the router serves: the path and its methods.
        pub const ROUTES: &[(&str, &[&str])] = &[
            $(($path, &[$(routes!(@upper $method)),+]),)+
        ];

        fn routes() -> Router<Shared> {
            Router::new()
                $(.route($path, MethodRouter::new()$(.$method($handler))+))+
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
    (@upper delete) => { "DELETE" };
}

routes! {
    "/v1/status" => get(status);
    "/v1/networks" => get(networks).post(create_network);
    "/v1/networks/{name}" => get(network).delete(remove_network);
    "/v1/endpoints" => get(endpoints).post(attach);
    "/v1/endpoints/{name}" => delete(detach);
    "/v1/endpoints/{name}/networks" => post(connect);
    "/v1/endpoints/{name}/networks/{network}" => delete(disconnect);
    "/v1/ports" => get(all_ports);
    "/v1/endpoints/{name}/ports" => get(ports).post(publish).delete(unpublish);
    "/v1/allow" => get(allow_list).post(allow).delete(allow_rm);
    "/v1/conntrack" => get(conntrack).delete(flush_conntrack);
    "/v1/monitor" => get(monitor);
    "/v1/stats" => get(stats);
    "/v1/maps" => get(maps);
    "/v1/cni/add" => post(cni_add);
    "/v1/cni/del" => post(cni_del);
    "/v1/cni/check" => post(cni_check);
    "/v1/cni/gc" => post(cni_gc);
    "/v1/netavark/create" => post(netavark_create);
    "/v1/netavark/setup" => post(netavark_setup);
    "/v1/netavark/teardown" => post(netavark_teardown);
}

pub fn router(agent: Shared) -> Router {
    limited(routes().with_state(agent))
}

/// The Prometheus endpoint (`weir agent --metrics ADDR`): `GET /metrics`.
pub fn metrics_router(agent: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(agent)
}

async fn cni_add(State(agent): State<Shared>, Body(req): Body<CniAdd>) -> Response {
    agent
        .lock()
        .await
        .cni_add(&req)
        .await
        .map(Json)
        .into_response()
}

async fn cni_del(State(agent): State<Shared>, Body(req): Body<CniRef>) -> Response {
    agent
        .lock()
        .await
        .cni_del(&req)
        .await
        .map(Json)
        .into_response()
}

async fn cni_check(State(agent): State<Shared>, Body(req): Body<CniAdd>) -> Response {
    agent
        .lock()
        .await
        .cni_check(&req)
        .await
        .map(Json)
        .into_response()
}

async fn cni_gc(State(agent): State<Shared>, Body(req): Body<CniGc>) -> Response {
    agent
        .lock()
        .await
        .cni_gc(&req)
        .await
        .map(Json)
        .into_response()
}

async fn netavark_create(State(agent): State<Shared>, Body(spec): Body<NetworkSpec>) -> Response {
    agent
        .lock()
        .await
        .netavark_create(&spec)
        .await
        .map(Json)
        .into_response()
}

async fn netavark_setup(State(agent): State<Shared>, Body(req): Body<NetavarkSetup>) -> Response {
    agent
        .lock()
        .await
        .netavark_setup(&req)
        .await
        .map(Json)
        .into_response()
}

async fn netavark_teardown(State(agent): State<Shared>, Body(req): Body<CniRef>) -> Response {
    agent
        .lock()
        .await
        .netavark_teardown(&req)
        .await
        .map(Json)
        .into_response()
}

async fn maps(State(agent): State<Shared>) -> Response {
    agent.lock().await.maps().await.map(Json).into_response()
}

async fn stats(State(agent): State<Shared>) -> Response {
    agent.lock().await.stats().map(Json).into_response()
}

async fn metrics(State(agent): State<Shared>) -> Response {
    agent
        .lock()
        .await
        .stats()
        .map(|s| {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                crate::daemon::prometheus(&s),
            )
        })
        .into_response()
}

/// Binds `socket`: mode 0660, owned by root and by `group` when given
/// (whoever may write the socket may do anything weir can: it is root on
/// the node). Refuses when another agent answers there.
pub async fn bind(socket: &Path, group: Option<u32>) -> Result<UnixListener, AgentError> {
    if tokio::net::UnixStream::connect(socket).await.is_ok() {
        return Err(AgentError::AlreadyRunning {
            socket: socket.to_owned(),
        });
    }
    let what = format!("binding the API socket {}", socket.display());
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(AgentError::io(what.clone()))?;
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(AgentError::io(what)(e));
        }
        _ => {}
    }
    let listener = UnixListener::bind(socket).map_err(AgentError::io(what.clone()))?;
    std::os::unix::fs::chown(socket, None, group).map_err(AgentError::io(what.clone()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .map_err(AgentError::io(what))?;
    Ok(listener)
}

async fn status(State(agent): State<Shared>) -> Response {
    Json(agent.lock().await.status()).into_response()
}

async fn networks(State(agent): State<Shared>) -> Response {
    Json(agent.lock().await.networks()).into_response()
}

async fn network(State(agent): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    agent.lock().await.network(&name).map(Json).into_response()
}

async fn create_network(State(agent): State<Shared>, Body(spec): Body<NetworkSpec>) -> Response {
    agent
        .lock()
        .await
        .create_network(&spec)
        .await
        .map(|n| (StatusCode::CREATED, Json(n)))
        .into_response()
}

async fn remove_network(State(agent): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    agent
        .lock()
        .await
        .remove_network(&name)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .into_response()
}

async fn endpoints(State(agent): State<Shared>) -> Response {
    Json(agent.lock().await.endpoints()).into_response()
}

async fn attach(State(agent): State<Shared>, Body(req): Body<AttachRequest>) -> Response {
    agent
        .lock()
        .await
        .attach(&req)
        .await
        .map(|e| (StatusCode::CREATED, Json(e)))
        .into_response()
}

async fn detach(State(agent): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    agent
        .lock()
        .await
        .detach(&name)
        .await
        .map(Json)
        .into_response()
}

async fn connect(
    State(agent): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Body(req): Body<ConnectRequest>,
) -> Response {
    agent
        .lock()
        .await
        .connect(&name, &req.network, req.ip, req.ip6)
        .await
        .map(|e| (StatusCode::CREATED, Json(e)))
        .into_response()
}

async fn disconnect(
    State(agent): State<Shared>,
    UrlPath((name, network)): UrlPath<(String, String)>,
) -> Response {
    agent
        .lock()
        .await
        .disconnect(&name, &network)
        .await
        .map(Json)
        .into_response()
}

async fn allow_list(State(agent): State<Shared>) -> Response {
    Json(agent.lock().await.allow_list()).into_response()
}

async fn allow(State(agent): State<Shared>, Body(rule): Body<AllowRule>) -> Response {
    agent.lock().await.allow(rule).map(Json).into_response()
}

async fn allow_rm(State(agent): State<Shared>, Body(port): Body<AllowedPort>) -> Response {
    agent.lock().await.allow_rm(port).map(Json).into_response()
}

async fn all_ports(State(agent): State<Shared>) -> Response {
    agent.lock().await.ports(None).map(Json).into_response()
}

async fn ports(State(agent): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    agent
        .lock()
        .await
        .ports(Some(&name))
        .map(Json)
        .into_response()
}

async fn publish(
    State(agent): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Body(req): Body<PortsRequest>,
) -> Response {
    agent
        .lock()
        .await
        .publish(&name, &req.specs)
        .await
        .map(|m| (StatusCode::CREATED, Json(m)))
        .into_response()
}

async fn unpublish(
    State(agent): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Body(req): Body<PortsRequest>,
) -> Response {
    agent
        .lock()
        .await
        .unpublish(&name, &req.specs)
        .map(Json)
        .into_response()
}

async fn conntrack(State(agent): State<Shared>) -> Response {
    agent.lock().await.conntrack().map(Json).into_response()
}

async fn flush_conntrack(State(agent): State<Shared>) -> Response {
    agent
        .lock()
        .await
        .flush_conntrack()
        .map(Json)
        .into_response()
}

/// Drop events as they happen, one JSON object per line, until the client
/// goes away. A watcher that falls too far behind loses the oldest.
async fn monitor(State(agent): State<Shared>) -> Response {
    let (rx, by_if) = agent.lock().await.watch();
    let lines = futures::stream::unfold((rx, by_if), |(mut rx, by_if)| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let event = monitor::with_endpoint(event, &by_if);
                    let mut line = serde_json::to_vec(&event).unwrap_or_default();
                    line.push(b'\n');
                    return Some((Ok::<_, std::convert::Infallible>(line), (rx, by_if)));
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "a monitor watcher fell behind");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}
