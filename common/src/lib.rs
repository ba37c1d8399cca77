//! Types shared by the weir datapath (the `no_std` eBPF object) and the agent.
//!
//! Rules for everything in here (see ARCHITECTURE.md):
//! - `#[repr(C)]`, explicit padding fields, no `bool`, `Option` or enums inside
//!   anything that is stored in a map;
//! - addresses and ports in network byte order inside map keys;
//! - a layout change gets a new map name, so an agent never reads old entries
//!   with new types.
//!
//! The `user` feature adds `aya::Pod` impls for the agent.
#![no_std]

pub mod config;
pub mod ct;
pub mod ct6;
pub mod drop;
pub mod endpoint;
pub mod event;
pub mod frag;
pub mod network;
pub mod publish;
pub mod stats;
