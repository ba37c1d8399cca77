//! HTTP/1.1 over a Unix socket, one request per connection: the transport
//! of the CLI's client of the agent and of the agent's client of Docker.

use std::path::Path;

use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Response, body::Bytes, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket does not answer (nothing listens, or no such file).
    #[error(transparent)]
    Connect(std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Sends one request with an optional JSON `body` to the server on
/// `socket` (`host` is the Host header it is addressed by).
pub async fn request(
    socket: &Path,
    host: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<Response<Incoming>, TransportError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(TransportError::Connect)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(body.unwrap_or_default()))
        .expect("a valid request");
    Ok(sender.send_request(request).await?)
}

/// Reads a body of JSON lines, handing each line (without its newline)
/// to `each` until the body ends or `each` fails.
pub async fn lines<E: From<hyper::Error>>(
    mut body: Incoming,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            each(&line[..line.len() - 1])?;
        }
    }
    Ok(())
}
