//! Networks and their addresses: subnets, IPAM. Pure logic; the bridges and
//! veths that realise a network live in `netlink/`.

pub mod ipam;
pub mod subnet;

pub use ipam::{Ipam, IpamError};
pub use subnet::{Subnet, SubnetError};
