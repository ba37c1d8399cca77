//! The API client the CLI uses: one HTTP/1.1 request per connection.

use std::path::{Path, PathBuf};

use http_body_util::BodyExt as _;
use hyper::{Method, StatusCode, body::Bytes};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    ErrorBody,
    http::{self, TransportError},
};

/// Where a host keeps systemd units, as the package and `cargo xtask
/// install` put `weir.service`.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// How to start the agent on the host whose root is `root`: its unit,
/// where systemd runs and has one; else `weir agent`.
#[must_use]
pub fn how_to_start(root: &Path) -> &'static str {
    let systemd = root.join("run/systemd/system").is_dir();
    if systemd
        && UNIT_DIRS
            .iter()
            .any(|d| root.join(d).join("weir.service").exists())
    {
        "`systemctl start weir`"
    } else {
        "`weir agent` (as root)"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // The cause is part of the message (not a `#[source]`), so that the
    // hint comes last when the CLI prints the whole chain.
    #[error(
        "cannot reach the weir agent at {socket}: {cause}\n\
         Is it running? Start it with {}, or point --socket / WEIR_SOCKET at its socket.",
        how_to_start(Path::new("/"))
    )]
    NotRunning {
        socket: PathBuf,
        cause: std::io::Error,
    },
    /// The agent refused the request and said why.
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    #[error("talking to the agent")]
    Http(#[from] hyper::Error),
    #[error("the agent's answer is not what this CLI expects")]
    Decode(#[from] serde_json::Error),
    #[error("writing the output")]
    Output(#[source] std::io::Error),
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    #[must_use]
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// DELETE; the answer's body (if any) is decoded as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        let bytes = self.send(Method::DELETE, path, None::<&()>).await?;
        if bytes.is_empty() {
            Ok(None)
        } else {
            Ok(Some(serde_json::from_slice(&bytes)?))
        }
    }

    /// DELETE with a body (withdrawing a set of things, like `unpublish`).
    pub async fn delete_with<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, Some(body)).await
    }

    /// GET a stream of JSON lines, handing each decoded line to `each`
    /// until the agent ends the stream (or `each` fails).
    pub async fn stream<T: DeserializeOwned>(
        &self,
        path: &str,
        mut each: impl FnMut(T) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let response = self.request(Method::GET, path, None::<&()>).await?;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            return Err(refused(status, &bytes));
        }
        http::lines(body, |line| {
            each(serde_json::from_slice(line)?).map_err(ClientError::Output)
        })
        .await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.send(method, path, body).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Bytes, ClientError> {
        let response = self.request(method, path, body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(refused(status, &bytes))
        }
    }

    async fn request<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let body = body.map(serde_json::to_vec).transpose()?.map(Bytes::from);
        http::request(&self.socket, "weir", method, path, body)
            .await
            .map_err(|e| match e {
                TransportError::Connect(cause) => ClientError::NotRunning {
                    socket: self.socket.clone(),
                    cause,
                },
                TransportError::Http(e) => ClientError::Http(e),
            })
    }
}

/// The agent's refusal, in its own words when it gave them as JSON.
fn refused(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map_or_else(|_| String::from_utf8_lossy(bytes).into_owned(), |b| b.error);
    ClientError::Refused { status, message }
}

#[cfg(test)]
mod start_hint_tests {
    use super::how_to_start;

    #[test]
    fn a_host_with_the_unit_under_systemd_is_told_to_start_the_unit() {
        let root = std::env::temp_dir().join(format!("weir-hint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("lib/systemd/system")).unwrap();
        assert_eq!(how_to_start(&root), "`weir agent` (as root)");
        std::fs::write(root.join("lib/systemd/system/weir.service"), "").unwrap();
        assert_eq!(
            how_to_start(&root),
            "`weir agent` (as root)",
            "systemd is not running"
        );
        std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
        assert_eq!(how_to_start(&root), "`systemctl start weir`");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
