//! Who made a network or an endpoint: weir itself; a container engine
//! whose objects weir follows (Docker: their bridges, veths and addresses
//! stay the engine's, weir never creates, renames or deletes them); or a
//! runtime that asks weir for a container's interfaces (a CNI runtime,
//! netavark), which weir makes and the runtime takes away.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Owner {
    /// Made with `weir network create`, `weir attach` or `weir run`.
    #[default]
    Weir,
    /// A Docker network or container endpoint (`weir agent --docker`),
    /// with Docker's id of the network or container.
    Docker { id: String },
    /// An interface a CNI runtime (Podman, containerd, kubelet) asked for
    /// through `weir-cni`: its container id and interface name.
    Cni {
        container_id: String,
        ifname: String,
    },
    /// An interface netavark (Podman 5) asked for through the
    /// `weir-netavark` plugin: the container id and interface name.
    Netavark {
        container_id: String,
        ifname: String,
    },
}

/// The runtimes that ask for a container's interfaces one at a time,
/// each keyed by the container's id and the interface's name: a CNI
/// runtime (`weir-cni`) and netavark (`weir-netavark`). Their endpoints
/// live the same life (`daemon/runtime.rs`) and differ by this value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Cni,
    Netavark,
}

impl Runtime {
    /// The owner of `container_id`'s interface `ifname`.
    #[must_use]
    pub fn owner(self, container_id: &str, ifname: &str) -> Owner {
        let (container_id, ifname) = (container_id.to_owned(), ifname.to_owned());
        match self {
            Runtime::Cni => Owner::Cni {
                container_id,
                ifname,
            },
            Runtime::Netavark => Owner::Netavark {
                container_id,
                ifname,
            },
        }
    }
}

impl Owner {
    #[must_use]
    pub fn is_weir(&self) -> bool {
        matches!(self, Owner::Weir)
    }

    /// The engine's name, for listings and refusals (`weir` for weir's own).
    #[must_use]
    pub fn engine(&self) -> &'static str {
        match self {
            Owner::Weir => "weir",
            Owner::Docker { .. } => "docker",
            Owner::Cni { .. } => "cni",
            Owner::Netavark { .. } => "netavark",
        }
    }

    /// Docker's id, if Docker owns it.
    #[must_use]
    pub fn docker_id(&self) -> Option<&str> {
        match self {
            Owner::Docker { id } => Some(id),
            Owner::Weir | Owner::Cni { .. } | Owner::Netavark { .. } => None,
        }
    }

    /// A runtime's interface: the runtime, the container's id and the
    /// interface's name.
    #[must_use]
    pub fn attachment(&self) -> Option<(Runtime, &str, &str)> {
        match self {
            Owner::Cni {
                container_id,
                ifname,
            } => Some((Runtime::Cni, container_id, ifname)),
            Owner::Netavark {
                container_id,
                ifname,
            } => Some((Runtime::Netavark, container_id, ifname)),
            Owner::Weir | Owner::Docker { .. } => None,
        }
    }
}
