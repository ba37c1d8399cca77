//! Published ports (Docker's `-p`). So far the spec and its parser; the
//! `PUBLISH4` map, conntrack and the DNAT programs come with the rest of the
//! port-publishing work.

pub mod spec;

pub use spec::{PortRange, PortSpec, Proto, SpecError};
