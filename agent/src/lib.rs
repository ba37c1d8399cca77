//! weir: the node agent and its library.
pub mod api;
pub mod cli;
pub mod cni;
pub mod daemon;
pub mod datapath;
pub mod dns;
pub mod docker;
pub mod error;
pub mod monitor;
pub mod mounts;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod owner;
pub mod paths;
pub mod publish;
pub mod state;
