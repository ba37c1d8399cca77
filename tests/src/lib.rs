//! The weir test bed.
//!
//! Every world is built from network namespaces that a test makes itself:
//! `node` (the host under test), `ext` (an external host on the node's
//! uplink) and containers. Nothing in the machine's own namespace is touched,
//! names are unique per test so tests run in parallel, and `Drop` tears the
//! world down even when a test panics.
//!
//! - [`netns`]: one namespace, entering it from a thread, running commands;
//! - [`world`]: the topology (node, ext, containers);
//! - [`sock`]: TCP/UDP servers and clients inside a namespace that record
//!   what arrived and from which address;
//! - [`packet`]: building and checking frames (lengths, checksums);
//! - [`prog`]: `BPF_PROG_TEST_RUN` on the real datapath programs.

pub mod netns;
pub mod packet;
pub mod prog;
pub mod sock;
pub mod world;

pub use netns::Netns;
pub use world::World;
