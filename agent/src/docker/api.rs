//! The few parts of Docker's Engine API (v1.41, Docker 20.10 and later)
//! that the follower reads, on the engine's Unix socket. Only the fields
//! weir uses are declared; the rest of each answer is ignored.

use std::{collections::HashMap, path::PathBuf};

use http_body_util::BodyExt as _;
use hyper::{Method, StatusCode};
use serde::{Deserialize, de::DeserializeOwned};

use crate::api::http::{self, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach Docker at {socket}: {cause}")]
    Unreachable {
        socket: PathBuf,
        cause: std::io::Error,
    },
    #[error("Docker answered {status} to {path}: {message}")]
    Refused {
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("talking to Docker")]
    Http(#[from] hyper::Error),
    #[error("Docker's answer to {path} is not what weir expects")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// `GET /networks` (one element) and `GET /networks/{id}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(rename = "EnableIPv6", default)]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM", default)]
    pub ipam: Ipam,
    #[serde(default)]
    pub options: Option<HashMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(default)]
    pub config: Option<Vec<IpamConfig>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
}

/// `GET /containers/json` (one element).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
}

/// `GET /containers/{id}/json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub id: String,
    /// `/web`.
    pub name: String,
    pub state: ContainerState,
    #[serde(default)]
    pub host_config: HostConfig,
    pub network_settings: NetworkSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub pid: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// `default`, `bridge`, a network's name, `host`, `none`,
    /// `container:<id>`.
    #[serde(default)]
    pub network_mode: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// `"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]`; a port
    /// exposed but not published maps to `null`.
    #[serde(default)]
    pub ports: Option<HashMap<String, Option<Vec<PortBinding>>>>,
    #[serde(default)]
    pub networks: HashMap<String, EndpointSettings>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    #[serde(default)]
    pub host_ip: String,
    #[serde(default)]
    pub host_port: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    #[serde(rename = "GlobalIPv6Address", default)]
    pub global_ipv6_address: String,
    #[serde(default)]
    pub mac_address: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(rename = "IPv6Gateway", default)]
    pub ipv6_gateway: String,
    /// Docker 28's `--network name=N,gw-priority=P` (API 1.48): the
    /// highest gives the default gateway; 0 before.
    #[serde(default)]
    pub gw_priority: i64,
}

/// One line of `GET /events`.
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Action", default)]
    pub action: String,
    #[serde(rename = "Actor", default)]
    pub actor: Actor,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: HashMap<String, String>,
}

/// A client of one engine's socket.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

/// The events the follower acts on.
pub const EVENTS_PATH: &str =
    "/events?filters=%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D%7D";

impl Client {
    #[must_use]
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    #[must_use]
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    pub async fn networks(&self) -> Result<Vec<Network>, DockerError> {
        self.get("/networks").await
    }

    /// Running containers only: a stopped one has no network namespace.
    pub async fn running(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        self.get("/containers/json").await
    }

    /// A container, or `None` when Docker has no such container (any more).
    pub async fn container(&self, id: &str) -> Result<Option<Container>, DockerError> {
        match self.get(&format!("/containers/{id}/json")).await {
            Err(DockerError::Refused {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// Follows the event stream: `subscribed` once Docker has accepted it
    /// (every later event comes), then each event to `each`, until Docker
    /// ends it or the connection breaks.
    pub async fn events_with(
        &self,
        subscribed: impl FnOnce(),
        mut each: impl FnMut(Event) -> Result<(), DockerError>,
    ) -> Result<(), DockerError> {
        let response = self.request(EVENTS_PATH).await?;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            return Err(refused(EVENTS_PATH, status, &bytes));
        }
        subscribed();
        http::lines(body, |line| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            each(decode(EVENTS_PATH, line)?)
        })
        .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DockerError> {
        let response = self.request(path).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(refused(path, status, &bytes));
        }
        decode(path, &bytes)
    }

    async fn request(
        &self,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, DockerError> {
        // The version prefix pins the answers' shape (Docker 20.10's).
        let versioned = format!("/v1.41{path}");
        http::request(&self.socket, "docker", Method::GET, &versioned, None)
            .await
            .map_err(|e| match e {
                TransportError::Connect(cause) => DockerError::Unreachable {
                    socket: self.socket.clone(),
                    cause,
                },
                TransportError::Http(e) => DockerError::Http(e),
            })
    }
}

fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, DockerError> {
    serde_json::from_slice(bytes).map_err(|source| DockerError::Decode {
        path: path.to_owned(),
        source,
    })
}

fn refused(path: &str, status: StatusCode, bytes: &[u8]) -> DockerError {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let message = serde_json::from_slice::<Message>(bytes).map_or_else(
        |_| String::from_utf8_lossy(bytes).into_owned(),
        |m| m.message,
    );
    DockerError::Refused {
        path: path.to_owned(),
        status,
        message,
    }
}
