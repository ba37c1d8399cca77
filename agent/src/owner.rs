//! Who made a network or an endpoint: weir itself, or a container engine
//! whose objects weir follows (their bridges, veths and addresses stay the
//! engine's: weir never creates, renames or deletes them).

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
        }
    }

    /// Docker's id, if Docker owns it.
    #[must_use]
    pub fn docker_id(&self) -> Option<&str> {
        match self {
            Owner::Docker { id } => Some(id),
            Owner::Weir | Owner::Cni { .. } => None,
        }
    }
}
