//! The agent's API: HTTP/JSON on a Unix socket, like Docker's, so that
//! `curl --unix-socket /run/weir/weir.sock http://weir/v1/networks` works.
//!
//! | method and path                 | body            | answer              |
//! |---------------------------------|-----------------|---------------------|
//! | `GET /v1/status`                |                 | `Status`            |
//! | `GET /v1/networks`              |                 | `[NetworkView]`     |
//! | `POST /v1/networks`             | `NetworkSpec`   | `NetworkView` (201) |
//! | `GET /v1/networks/{name}`       |                 | `NetworkView`       |
//! | `DELETE /v1/networks/{name}`    |                 | 204                 |
//! | `GET /v1/endpoints`             |                 | `[Endpoint]`        |
//! | `POST /v1/endpoints`            | `AttachRequest` | `Endpoint` (201)    |
//! | `DELETE /v1/endpoints/{name}`   |                 | `Endpoint`          |
//!
//! Errors answer 400, 404, 409 or 500 with `{"error": "..."}`.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

/// The body of every error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
