//! Networks and their addresses: subnets, IPAM. Pure logic; the bridges and
//! veths that realise a network live in `netlink/`.

pub mod ipam;
pub mod registry;
pub mod subnet;

pub use ipam::{Ipam, IpamError};
pub use registry::{Mode, Network, NetworkError, NetworkSpec, Registry};
pub use subnet::{Subnet, SubnetError};
