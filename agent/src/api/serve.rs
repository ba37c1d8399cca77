//! Serving the API to clients that may be broken or hostile: whoever can
//! write the socket is root on the node, but a stuck script, a fuzzer or a
//! flood of clients must not stop the agent serving the others.
//!
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] and its body
//!   within [`BODY_TIMEOUT`] (a client sending a byte a second gets 408, or
//!   its connection closed), and a body is at most [`MAX_BODY`] bytes (413);
//! - at most [`MAX_CONNECTIONS`] connections are served at once; the next
//!   waits in the socket's backlog, not in the agent's memory;
//! - malformed JSON, a wrong type, an unknown route or method get a 4xx
//!   with `{"error": "..."}` like every other refusal, before the agent is
//!   locked: nothing is half applied;
//! - on SIGTERM the agent stops accepting and lets requests in flight end
//!   (a handler is never dropped half way), waiting at most
//!   [`DRAIN_TIMEOUT`] for open streams (`weir monitor`).

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::UnixListener, sync::Semaphore};

use super::ErrorBody;
use crate::error::Chain;

/// The longest a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request body (the biggest real one, a CNI ADD with its
/// runtime config, is a few KiB).
pub const MAX_BODY: usize = 1 << 20;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a stop waits for open connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An error answer: `status` with `{"error": message}`.
#[must_use]
pub fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

/// A JSON request body whose refusals (not JSON, a wrong field, too big,
/// too slow) are answered like every other error, as JSON.
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The whole body within the limit, however it trickles in (a
        // per-read timeout would let a byte a second through). Nothing
        // has been done yet, so giving up here leaves nothing half made.
        let Ok(extracted) =
            tokio::time::timeout(BODY_TIMEOUT, Json::<T>::from_request(req, state)).await
        else {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        };
        match extracted {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => {
                let status = rejection.status();
                let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("the request body is over {MAX_BODY} bytes")
                } else {
                    rejection.body_text()
                };
                Err(error(status, text))
            }
        }
    }
}

/// What no route answers: 404 naming the method and path.
pub async fn no_route(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no API route {method} {}", uri.path()),
    )
}

/// What a route without this method answers: 405.
pub async fn wrong_method(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

/// The limits every request meets, as layers of `app`.
pub fn limited(app: Router) -> Router {
    app.fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight end.
pub async fn serve(
    listener: UnixListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait, then go on.
                    tracing::warn!("accepting an API connection: {}", Chain(&e));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("stopping with API connections still open (monitor streams)");
    }
    Ok(())
}
