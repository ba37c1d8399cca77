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
//! | `GET /v1/ports`                 |                 | `[PortView]`        |
//! | `GET /v1/endpoints/{name}/ports`|                 | `[PortView]`        |
//! | `POST /v1/endpoints/{name}/ports` | `PortsRequest` | `[PortMapping]` (201) |
//! | `DELETE /v1/endpoints/{name}/ports` | `PortsRequest` | `[PortMapping]`   |
//! | `GET /v1/conntrack`             |                 | `[FlowView]`        |
//! | `DELETE /v1/conntrack`          |                 | `Removed`           |
//! | `POST /v1/cni/add`              | `CniAdd`        | `CniAttachment`     |
//! | `POST /v1/cni/del`              | `CniRef`        | endpoint name or null |
//! | `POST /v1/cni/check`            | `CniAdd`        | null                |
//! | `POST /v1/cni/gc`               | `CniGc`         | `[name]`            |
//!
//! Errors answer 400, 404, 409 or 500 with `{"error": "..."}`; a body that
//! is not the JSON asked for 400 or 422, one over 1 MiB 413, one slower
//! than 5 s 408, an unknown route 404, a wrong method 405, each with the
//! same body ([`serve`]).
//!
//! The socket is mode 0660, owned by root (and `weir agent
//! --socket-group GROUP`'s group): whoever can write it is root on the node.

pub mod client;
pub mod http;
pub mod serve;
pub mod server;

use serde::{Deserialize, Serialize};

/// The body of `publish` and `unpublish`: Docker `-p` specs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortsRequest {
    pub specs: Vec<String>,
}

/// The body of every error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
