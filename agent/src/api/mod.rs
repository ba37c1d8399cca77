//! The agent's API: HTTP/JSON on a Unix socket, like Docker's, so that
//! `curl --unix-socket /run/weir/weir.sock http://weir/v1/networks` works.
//!
//! | method and path                             | body             | answer                  |
//! |---------------------------------------------|------------------|-------------------------|
//! | `GET /v1/status`                            |                  | `Status`                |
//! | `GET /v1/networks`                          |                  | `[NetworkView]`         |
//! | `POST /v1/networks`                         | `NetworkSpec`    | `NetworkView` (201)     |
//! | `GET /v1/networks/{name}`                   |                  | `NetworkView`           |
//! | `DELETE /v1/networks/{name}`                |                  | 204                     |
//! | `GET /v1/endpoints`                         |                  | `[Endpoint]`            |
//! | `POST /v1/endpoints`                        | `AttachRequest`  | `Endpoint` (201)        |
//! | `DELETE /v1/endpoints/{name}`               |                  | `Endpoint`              |
//! | `POST /v1/endpoints/{name}/networks`        | `ConnectRequest` | `Endpoint` (201)        |
//! | `DELETE /v1/endpoints/{name}/networks/{network}` |             | `Endpoint`              |
//! | `GET /v1/ports`                             |                  | `[PortView]`            |
//! | `GET /v1/endpoints/{name}/ports`            |                  | `[PortView]`            |
//! | `POST /v1/endpoints/{name}/ports`           | `PortsRequest`   | `[PortMapping]` (201)   |
//! | `DELETE /v1/endpoints/{name}/ports`         | `PortsRequest`   | `[PortMapping]`         |
//! | `GET /v1/allow`                             |                  | `[AllowRule]`           |
//! | `POST /v1/allow`                            | `AllowRule`      | `AllowRule`             |
//! | `DELETE /v1/allow`                          | `AllowedPort`    | `AllowRule`             |
//! | `GET /v1/conntrack`                         |                  | `[FlowView]`            |
//! | `DELETE /v1/conntrack`                      |                  | `Removed`               |
//! | `GET /v1/monitor`                           |                  | `MonitorEvent` lines (NDJSON), until the client goes |
//! | `GET /v1/stats`                             |                  | `Stats`                 |
//! | `GET /v1/maps`                              |                  | `MapsView`              |
//! | `POST /v1/cni/add`                          | `CniAdd`         | `CniAttachment`         |
//! | `POST /v1/cni/del`                          | `CniRef`         | endpoint name or null   |
//! | `POST /v1/cni/check`                        | `CniAdd`         | null                    |
//! | `POST /v1/cni/gc`                           | `CniGc`          | `[name]`                |
//! | `POST /v1/netavark/create`                  | `NetworkSpec`    | `NetworkView` (made, or the same one there) |
//! | `POST /v1/netavark/setup`                   | `NetavarkSetup`  | `CniAttachment`         |
//! | `POST /v1/netavark/teardown`                | `CniRef`         | endpoint name or null   |
//!
//! The bodies and answers are [`types`]: the contract, which the CLI,
//! `weir-cni`, `weir-netavark` and the engine followers depend on (never
//! on `daemon`).
//! `server::ROUTES` is the router's own list; a test holds this table to it.
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
pub mod types;

pub use self::types::{ErrorBody, PortsRequest};

#[cfg(test)]
mod tests {
    /// The routes this module's table lists, as `METHOD /path`.
    fn documented() -> Vec<String> {
        include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_table_lists_every_route_of_the_router() {
        let mut routed: Vec<String> = super::server::ROUTES
            .iter()
            .flat_map(|(path, methods)| methods.iter().map(move |m| format!("{m} {path}")))
            .collect();
        let mut listed = documented();
        routed.sort();
        listed.sort();
        assert_eq!(
            listed, routed,
            "the API table in api/mod.rs and the router differ"
        );
        assert_eq!(routed.len(), 29);
    }
}
