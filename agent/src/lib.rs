//! weir: the node agent and its library.
pub mod datapath;
pub mod netlink;
pub mod network;
pub mod paths;
pub mod state;
