//! Published ports (Docker's `-p`): the spec and its parser, the mappings
//! the agent keeps, and the sockets that reserve their host ports. The
//! datapath side is `PUBLISH4` (see `datapath::tables`).

pub mod allow;
pub mod mapping;
pub mod reserve;
pub mod spec;

pub use allow::{AllowError, AllowRule, AllowedPort};
pub use mapping::PortMapping;
pub use reserve::{Reservations, ReserveError};
pub use spec::{PortRange, PortSpec, Proto, SpecError};
